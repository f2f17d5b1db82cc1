//! The names a PostgreSQL sink gives its prepared transactions, one owner of
//! the format: `weir:{job}:{sink uid}:{subtask}:{checkpoint}`, with the job
//! name and uid escaped (`%XX` for every byte that is not a letter, digit,
//! `-`, `_` or `.`), so that a name parses back unambiguously and never needs
//! quoting in SQL.

/// PostgreSQL's limit on a prepared transaction's name (`GIDSIZE` is 200
/// bytes with the terminating NUL).
pub(crate) const MAX_NAME_BYTES: usize = 199;

/// `{job}:{uid}`, escaped: the sink in transaction names and in the commit table.
pub(crate) fn sink_id(job: &str, uid: &str) -> String {
    format!("{}:{}", escape(job), escape(uid))
}

/// The name of the transaction `subtask` prepares at `checkpoint`.
pub(crate) fn transaction_name(sink_id: &str, subtask: usize, checkpoint: u64) -> String {
    format!("{}{subtask}:{checkpoint}", prefix(sink_id))
}

fn prefix(sink_id: &str) -> String {
    format!("weir:{sink_id}:")
}

/// The (subtask, checkpoint) of `name` if it is a transaction of `sink_id`.
pub(crate) fn parse(sink_id: &str, name: &str) -> Option<(usize, u64)> {
    let rest = name.strip_prefix(&prefix(sink_id))?;
    let (subtask, checkpoint) = rest.split_once(':')?;
    Some((subtask.parse().ok()?, checkpoint.parse().ok()?))
}

/// The longest name this sink can give (the last subtask, the largest id).
pub(crate) fn longest_name(sink_id: &str, parallelism: usize) -> usize {
    transaction_name(sink_id, parallelism.saturating_sub(1), u64::MAX).len()
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_need_no_quoting() {
        let sink = sink_id("orders: to pg", "sink'1");
        assert_eq!(sink, "orders%3A%20to%20pg:sink%271");
        let name = transaction_name(&sink, 3, 17);
        assert_eq!(name, "weir:orders%3A%20to%20pg:sink%271:3:17");
        assert_eq!(parse(&sink, &name), Some((3, 17)));
        assert!(!name.contains('\''));
    }

    #[test]
    fn other_sinks_and_malformed_names_are_not_ours() {
        let sink = sink_id("job", "a");
        assert_eq!(
            parse(&sink, &transaction_name(&sink_id("job", "ab"), 0, 1)),
            None
        );
        assert_eq!(
            parse(&sink, &transaction_name(&sink_id("jo", "b:a"), 0, 1)),
            None
        );
        assert_eq!(parse(&sink, "weir:job:a:x:1"), None);
        assert_eq!(parse(&sink, "weir:job:a:1"), None);
        assert_eq!(parse(&sink, "something else"), None);
    }

    #[test]
    fn the_longest_name_counts_the_largest_id() {
        let sink = sink_id("j", "u");
        assert_eq!(
            longest_name(&sink, 12),
            "weir:j:u:11:18446744073709551615".len()
        );
    }
}

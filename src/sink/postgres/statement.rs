//! The SQL of a PostgreSQL sink's built-in statements (inserts and upserts
//! into a table, identifiers quoted) and of its commit table.

/// `name` as a quoted identifier; a dotted name is a schema-qualified one
/// (`shop.orders` is `"shop"."orders"`).
pub(crate) fn quote_table(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// `name` as one quoted identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `INSERT INTO table (columns) VALUES ($1, ...)`.
pub(crate) fn insert(table: &str, columns: &[&str]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_table(table),
        names.join(", "),
        params.join(", ")
    )
}

/// An insert that updates the row whose `key` columns conflict: every other
/// column takes the new value (`DO NOTHING` when every column is a key).
pub(crate) fn upsert(table: &str, columns: &[&str], key: &[&str]) -> String {
    let keys: Vec<String> = key.iter().map(|c| quote(c)).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote(c)))
        .collect();
    let action = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("DO UPDATE SET {}", updates.join(", "))
    };
    format!(
        "{} ON CONFLICT ({}) {action}",
        insert(table, columns),
        keys.join(", ")
    )
}

/// Creates the commit table (one marker row per committed transaction).
pub(crate) fn create_commit_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\
         sink text NOT NULL, subtask integer NOT NULL, checkpoint bigint NOT NULL, \
         lineage text NOT NULL, job text NOT NULL, committed_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (sink, subtask, checkpoint))",
        quote_table(table)
    )
}

/// The marker a transaction writes: `$1` sink, `$2` subtask, `$3` checkpoint,
/// `$4` lineage, `$5` job.
pub(crate) fn insert_marker(table: &str) -> String {
    format!(
        "INSERT INTO {} (sink, subtask, checkpoint, lineage, job) VALUES ($1, $2, $3, $4, $5)",
        quote_table(table)
    )
}

/// Whether a transaction committed: `$1` sink, `$2` subtask, `$3`
/// checkpoint. A subtask commits its transactions in checkpoint order and a
/// commit prunes the markers before its own, so a marker at or after the
/// checkpoint says so.
pub(crate) fn find_marker(table: &str) -> String {
    format!(
        "SELECT 1 FROM {} WHERE sink = $1 AND subtask = $2 AND checkpoint >= $3 LIMIT 1",
        quote_table(table)
    )
}

/// Removes a subtask's markers older than `$3` (the latest stays: the ledger).
pub(crate) fn prune_markers(table: &str) -> String {
    format!(
        "DELETE FROM {} WHERE sink = $1 AND subtask = $2 AND checkpoint < $3",
        quote_table(table)
    )
}

/// The latest marker of each subtask of sink `$1`.
pub(crate) fn latest_markers(table: &str) -> String {
    format!(
        "SELECT DISTINCT ON (subtask) subtask, checkpoint, lineage, job FROM {} \
         WHERE sink = $1 ORDER BY subtask, checkpoint DESC",
        quote_table(table)
    )
}

/// Forgets sink `$1`'s markers.
pub(crate) fn delete_markers(table: &str) -> String {
    format!("DELETE FROM {} WHERE sink = $1", quote_table(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_upserts_quote_their_identifiers() {
        assert_eq!(
            insert("shop.orders", &["id", "total"]),
            r#"INSERT INTO "shop"."orders" ("id", "total") VALUES ($1, $2)"#
        );
        assert_eq!(
            upsert("totals", &["customer", "total", "n"], &["customer"]),
            r#"INSERT INTO "totals" ("customer", "total", "n") VALUES ($1, $2, $3) ON CONFLICT ("customer") DO UPDATE SET "total" = EXCLUDED."total", "n" = EXCLUDED."n""#
        );
        assert_eq!(
            upsert("seen", &["id"], &["id"]),
            r#"INSERT INTO "seen" ("id") VALUES ($1) ON CONFLICT ("id") DO NOTHING"#
        );
        assert_eq!(quote(r#"a"b"#), r#""a""b""#);
    }
}

//! Exactly-once audits of a job's committed output.

use std::collections::BTreeMap;

/// One output line of a keyed running count: the key, its count so far, and
/// the sum of its values so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountLine {
    /// The key.
    pub key: u64,
    /// Records of the key up to and including this one.
    pub count: u64,
    /// Sum of their values.
    pub sum: u64,
}

/// What the audit expects for one key: its number of records and their sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Records of the key.
    pub records: u64,
    /// Sum of their values.
    pub sum: u64,
}

/// Checks a committed output of running counts for loss and duplicates:
/// for every expected key the counts are exactly `1..=records`, each once,
/// and the line with the last count has the exact sum; no other key appears.
/// Returns the number of lines, or what is wrong (naming the key).
///
/// ```
/// use std::collections::BTreeMap;
/// use weir::testing::{audit_exactly_once, CountLine, Expected};
/// let lines = [CountLine { key: 1, count: 1, sum: 5 }, CountLine { key: 1, count: 2, sum: 12 }];
/// let expected = BTreeMap::from([(1, Expected { records: 2, sum: 12 })]);
/// assert_eq!(audit_exactly_once(lines, &expected), Ok(2));
/// let duplicated = [lines[0], lines[0], lines[1]];
/// assert!(audit_exactly_once(duplicated, &expected).unwrap_err().contains("key 1"));
/// ```
pub fn audit_exactly_once(
    lines: impl IntoIterator<Item = CountLine>,
    expected: &BTreeMap<u64, Expected>,
) -> Result<u64, String> {
    let mut seen: BTreeMap<u64, Vec<CountLine>> = BTreeMap::new();
    let mut total = 0;
    for line in lines {
        seen.entry(line.key).or_default().push(line);
        total += 1;
    }
    for (&key, want) in expected {
        let mut got = seen.remove(&key).unwrap_or_default();
        got.sort_by_key(|l| l.count);
        let counts: Vec<u64> = got.iter().map(|l| l.count).collect();
        if counts != (1..=want.records).collect::<Vec<_>>() {
            let duplicated = counts.windows(2).filter(|w| w[0] == w[1]).count();
            return Err(format!(
                "key {key}: {} lines for {} records ({duplicated} duplicated counts, last count {:?})",
                counts.len(),
                want.records,
                counts.last()
            ));
        }
        if got.last().map(|l| l.sum) != Some(want.sum) && want.records > 0 {
            return Err(format!(
                "key {key}: final sum {:?}, expected {}",
                got.last().map(|l| l.sum),
                want.sum
            ));
        }
    }
    match seen.into_keys().next() {
        Some(key) => Err(format!("unexpected key {key} in the output")),
        None => Ok(total),
    }
}

/// The audit of output that stopped part-way: for every key the counts are
/// exactly `1..=n` for some `n`, each once (no duplicate, no gap), whatever
/// `n` is. Returns the number of lines, or what is wrong (naming the key).
///
/// ```
/// use weir::testing::{audit_no_duplicates, CountLine};
/// let line = |key, count| CountLine { key, count, sum: 0 };
/// assert_eq!(audit_no_duplicates([line(1, 1), line(1, 2), line(2, 1)]), Ok(3));
/// assert!(audit_no_duplicates([line(1, 1), line(1, 1)]).unwrap_err().contains("key 1"));
/// ```
pub fn audit_no_duplicates(lines: impl IntoIterator<Item = CountLine>) -> Result<u64, String> {
    let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut total = 0;
    for line in lines {
        seen.entry(line.key).or_default().push(line.count);
        total += 1;
    }
    for (key, mut counts) in seen {
        counts.sort_unstable();
        if counts.iter().copied().ne(1..=counts.len() as u64) {
            let duplicated = counts.windows(2).filter(|w| w[0] == w[1]).count();
            return Err(format!(
                "key {key}: {} lines are not the counts 1..={} ({duplicated} duplicated counts)",
                counts.len(),
                counts.len()
            ));
        }
    }
    Ok(total)
}

/// The weaker audit of at-least-once: nothing lost. Every expected key
/// reaches at least its record count and its sum (replays may go beyond).
pub fn audit_no_loss(
    lines: impl IntoIterator<Item = CountLine>,
    expected: &BTreeMap<u64, Expected>,
) -> Result<u64, String> {
    let mut best: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut total = 0;
    for line in lines {
        let entry = best.entry(line.key).or_default();
        *entry = (entry.0.max(line.count), entry.1.max(line.sum));
        total += 1;
    }
    for (&key, want) in expected {
        let (count, sum) = best.get(&key).copied().unwrap_or_default();
        if count < want.records || sum < want.sum {
            return Err(format!(
                "key {key}: reached count {count} and sum {sum}: records were lost"
            ));
        }
    }
    Ok(total)
}

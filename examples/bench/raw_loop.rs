//! `raw-loop`: no engine at all: one thread counts the same records
//! (`key = i % keys`) in a [`weir::keys::KeyMap`] in a plain loop. It is the
//! ceiling that keyed jobs are compared with. Default 100M records; it
//! reports `parallelism` 1, `chaining` false and `first_record_ms` 0.

use std::time::Instant;

use serde_json::json;
use weir::keys::KeyMap;

use crate::{check, Args, BenchResult, Report};

/// Counts `i % keys` for `i` in `0..records` in a plain loop: the keyed ceiling.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let keys = args.keys;
    let mut counts: KeyMap<u64, u64> = KeyMap::default();

    let start = Instant::now();
    for i in 0..records {
        let record = std::hint::black_box(i);
        *counts.entry(record % keys).or_insert(0) += 1;
    }
    let elapsed = start.elapsed();

    check("total count", counts.values().sum(), records)?;
    check("distinct keys", counts.len() as u64, keys.min(records))?;
    let mut report = Report::new(args, records, elapsed).with("keys", json!(keys));
    report.parallelism = 1;
    report.chaining = false;
    report.first_record_ms = Some(0.0);
    Ok(report)
}

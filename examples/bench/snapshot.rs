//! `snapshot`: one keyed operator instance ([`CountPerKey`]), driven
//! directly (no engine), filled with `--keys` keys; times the synchronous part
//! of a snapshot (on the processing path), its asynchronous part
//! (serialisation), and the first batch of writes after it (copy-on-write):
//! `sync_ms`, `async_ms`, `first_1024_writes_after_ms`, and `state_bytes`.

use std::time::Instant;

use serde_json::json;
use weir::testing::OperatorHarness;

use crate::keyed_count::CountPerKey;
use crate::{millis, Args, BenchResult, Report};

/// Fills one keyed operator instance with `--keys` keys, then times the
/// synchronous part of a snapshot (on the processing path), its asynchronous
/// part (serialisation), and the first batch of writes after it (copy-on-write).
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let keys = args.keys;
    let mut harness = OperatorHarness::keyed(CountPerKey::new(), |k: &u64| *k, 0, 1, 128);
    harness.open(None)?;
    let fill = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1024) {
        harness.process(chunk.to_vec())?;
        harness.take_output();
    }
    let fill = fill.elapsed();

    let sync_start = Instant::now();
    let pending = harness.begin_snapshot(1)?;
    let sync = sync_start.elapsed();

    let write_start = Instant::now();
    harness.process((0..1024).collect())?;
    let first_writes = write_start.elapsed();

    let async_start = Instant::now();
    let snapshot = pending.finish()?;
    let asynchronous = async_start.elapsed();

    let mut report = Report::new(args, keys, fill)
        .with("keys", json!(keys))
        .with("sync_ms", json!(millis(sync)))
        .with("async_ms", json!(millis(asynchronous)))
        .with("first_1024_writes_after_ms", json!(millis(first_writes)))
        .with("state_bytes", json!(snapshot.size()));
    report.parallelism = 1;
    Ok(report)
}

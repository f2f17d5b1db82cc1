//! `slow-sink`: `generate` → `rebalance()` → a sink that sleeps
//! `--sink-delay-ms` per batch ([`SlowSink`]). The sources are far faster
//! than the sink, so this shows that credit-based flow control bounds memory:
//! see `peak_rss_mb` and `max_queued_batches` (the deepest input queue of any
//! subtask, never above `channel_credits`). Default 20M records (about 11 s at
//! parallelism 2 with 1024-record batches and 1 ms per batch). The sleep
//! blocks the sink's Arbiter; with the default two Arbiters each sink shares
//! its thread with a source, which slows that source too. `--arbiters 4`
//! gives every subtask a thread of its own, so that only the credits hold the
//! sources back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;
use weir::sink::Sink;
use weir::{Lifecycle, UserError};

use crate::{check, Args, BenchResult, Report};

/// A sink that sleeps for `delay` per batch and counts records (over all subtasks).
#[derive(Clone)]
struct SlowSink {
    delay: Duration,
    records: Arc<AtomicU64>,
    first_record_at: Arc<OnceLock<Instant>>,
}

impl Lifecycle for SlowSink {}

impl Sink<u64> for SlowSink {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        self.first_record_at.get_or_init(Instant::now);
        self.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), UserError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.first_record_at.get_or_init(Instant::now);
        self.records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Blocks the sink's Arbiter on purpose: a slow external system.
        std::thread::sleep(self.delay);
        Ok(())
    }
}

/// generate -> rebalance -> a sink that sleeps per batch.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let sink = SlowSink {
        delay: Duration::from_millis(args.sink_delay_ms),
        records: Arc::default(),
        first_record_at: Arc::default(),
    };
    env.generate(records, |i| i)
        .rebalance()
        .add_sink(sink.clone());

    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();

    let written = sink.records.load(Ordering::Relaxed);
    check("records reaching the sink", written, records)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, sink.first_record_at.get().copied())
        .engine(&env, &result, written)
        .with("sink_delay_ms", json!(args.sink_delay_ms)))
}

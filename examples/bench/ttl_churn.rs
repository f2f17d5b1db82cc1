//! `ttl-churn`: state that churns. One keyed operator instance
//! ([`RememberOnce`], driven directly through an [`OperatorHarness`] on the
//! wall clock, at full speed) sees `--records` distinct keys (default 50M),
//! each once, and keeps a `ValueState<()>` per key. With `--ttl-ms MS` the
//! state has a processing-time time to live of MS (default cleanups, plus
//! `cleanup_within(--cleanup-within-ms)` when given): the state stays as large
//! as the keys of the last MS, so peak RSS stays flat; without it, the state
//! grows with the keys.
//!
//! Every second it samples the keys stored and the entries expired so far
//! (`live_samples`: `[seconds, records, stored_keys, expired]`; stored keys on
//! the heap only). After the input it keeps the clock running (at most
//! `ttl + bound + 30 s`) until every entry is physically removed, and
//! reports `erasure_ms`: from the last entry's expiry to the removal of the
//! last one (`null` if they were not all removed in that time, as without
//! `cleanup_within` nothing touches the keys again). With `--local-dir`
//! (RocksDB) it reports the bytes in that directory at the end.

use std::time::{Duration, Instant};

use serde_json::json;
use weir::state::ttl::TtlConfig;
use weir::state::ValueStateDescriptor;
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::{millis, Args, BenchResult, Report};

/// Remembers each key (a `ValueState<()>`), emits nothing.
#[derive(Clone)]
struct RememberOnce {
    seen: ValueStateDescriptor<()>,
}

impl Lifecycle for RememberOnce {}

impl KeyedProcessFunction<u64, u64, ()> for RememberOnce {
    fn process_element(
        &mut self,
        _key: u64,
        ctx: &mut KeyedContext<u64>,
        _out: &mut Collector<()>,
    ) -> Result<(), UserError> {
        ctx.state(&self.seen)?.update(());
        Ok(())
    }
}

/// One operator instance and the wall clock it runs on.
struct Driver {
    harness: OperatorHarness<u64, ()>,
    start: Instant,
}

impl Driver {
    /// Milliseconds since the start (the operator's processing time).
    fn now(&self) -> i64 {
        self.start.elapsed().as_millis() as i64
    }

    /// Moves the operator's clock to now and runs the cleanups that are due.
    fn tick(&mut self) -> Result<i64, UserError> {
        let now = self.now();
        self.harness.set_processing_time(now);
        if self
            .harness
            .next_processing_time()
            .is_some_and(|t| t <= now)
        {
            self.harness.processing_time(now)?;
        }
        Ok(now)
    }

    /// (keys stored, entries expired so far).
    fn counts(&self) -> (Option<u64>, u64) {
        let metrics = self.harness.state_metrics();
        let stored = metrics.iter().map(|m| m.stored_keys).sum();
        (stored, metrics.iter().map(|m| m.expired()).sum())
    }
}

pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let ttl = args.ttl_ms.map(Duration::from_millis);
    let bound = args.cleanup_within_ms.map(Duration::from_millis);
    let mut seen = ValueStateDescriptor::new("seen");
    if let Some(ttl) = ttl {
        let mut config = TtlConfig::new(ttl);
        if let Some(bound) = bound {
            config = config.cleanup_within(bound);
        }
        seen = seen.with_ttl(config);
    }
    let backend = args.backend()?;
    weir::testing::with_state_backend(backend, None, || -> BenchResult<Report> {
        let harness = OperatorHarness::keyed(RememberOnce { seen }, |key: &u64| *key, 0, 1, 128);
        let mut driver = Driver {
            harness,
            start: Instant::now(),
        };
        driver.harness.open(None)?;
        let mut samples = Vec::new();
        let mut next_sample = 1000;
        let batch_size = 1024;
        let mut key = 0;
        while key < records {
            let end = (key + batch_size).min(records);
            let now = driver.tick()?;
            driver.harness.process((key..end).collect())?;
            key = end;
            if now >= next_sample {
                let (stored, expired) = driver.counts();
                samples.push(json!([now as f64 / 1e3, key, stored, expired]));
                next_sample += 1000;
            }
        }
        let elapsed = driver.start.elapsed();
        let last_write = driver.now();

        // Keep the clock running until every entry is gone (or give up).
        let mut erasure_ms = None;
        if let Some(ttl) = ttl {
            let last_expiry = last_write + ttl.as_millis() as i64;
            let give_up = last_expiry + bound.map_or(0, |b| b.as_millis() as i64) + 30_000;
            while driver.now() < give_up {
                let now = driver.tick()?;
                let (_, expired) = driver.counts();
                if expired >= records {
                    erasure_ms = Some((now - last_expiry).max(0));
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (stored, expired) = driver.counts();
        let disk_bytes = args.local_dir.as_deref().map(dir_bytes);
        let peak_rss = crate::peak_rss_mb();
        let mut report = Report::new(args, records, elapsed)
            .with("ttl_ms", json!(args.ttl_ms))
            .with("cleanup_within_ms", json!(args.cleanup_within_ms))
            .with("backend", json!(args.backend))
            .with("live_samples", json!(samples))
            .with("stored_keys_at_end", json!(stored))
            .with("expired_at_end", json!(expired))
            .with("erasure_ms", json!(erasure_ms))
            .with("local_dir_bytes_at_end", json!(disk_bytes))
            .with(
                "wall_ms_with_erasure",
                json!(millis(driver.start.elapsed())),
            );
        report.parallelism = 1;
        report.peak_rss_mb = peak_rss;
        Ok(report)
    })
}

/// The bytes of the files under `dir` (0 where it cannot be read).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

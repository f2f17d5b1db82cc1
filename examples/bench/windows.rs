//! `window-count`, `window-sliding`, `window-session`: `generate` (record
//! `i` has key `i % keys` and timestamp `i / 1000` ms: ordered, 1 000
//! records per ms) → periodic watermarks → `key_by` → a window counting its
//! records incrementally ([`Count`]) → `discard()`. `window-count`: 1 s
//! tumbling windows; `window-sliding`: 60 s windows sliding by 1 s;
//! `window-session`: sessions with a 1 s gap (each key is seen every
//! `keys / 1000` ms, so with 100 000 keys a session never closes before the
//! end: every record merges into it). Reports the windows fired, and the
//! peak RSS (sliding state grows with keys x windows).

use std::time::{Duration, Instant};

use serde_json::json;
use weir::state::AggregateFunction;
use weir::time::WatermarkStrategy;
use weir::window::{
    EventTimeSessionWindows, SlidingEventTimeWindows, TimeWindow, TumblingEventTimeWindows,
    WindowAssigner,
};

use crate::{check, Args, BenchResult, Job, Report};

/// Counts a window's records.
pub(crate) struct Count;

impl AggregateFunction for Count {
    type In = u64;
    type Acc = u64;
    type Out = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, _: u64, acc: &mut u64) {
        *acc += 1;
    }

    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }

    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

/// Runs the window job `args.job` names.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    match args.job {
        Job::WindowSliding => run_with(
            args,
            SlidingEventTimeWindows::of(Duration::from_secs(60), Duration::from_secs(1)),
        ),
        Job::WindowSession => run_with(
            args,
            EventTimeSessionWindows::with_gap(Duration::from_secs(1)),
        ),
        _ => run_with(args, TumblingEventTimeWindows::of(Duration::from_secs(1))),
    }
}

fn run_with<A: WindowAssigner<u64, W = TimeWindow>>(
    args: &Args,
    assigner: A,
) -> BenchResult<Report> {
    let records = args.records();
    let keys = args.keys;
    let env = args.env();
    let counter = env
        .generate(records, |i| i)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::monotonous_timestamps()
                .with_timestamp_assigner(|i: &u64| (*i / 1_000) as i64),
        )
        .key_by(move |i: &u64| *i % keys)
        .window(assigner)
        .aggregate(Count)
        .name("Window")
        .discard();

    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();

    check("late records", result.counter("Window", "late_records"), 0)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, counter.first_record_at())
        .engine(&env, &result, counter.records())
        .with("keys", json!(keys))
        .with("windows_fired", json!(counter.records())))
}

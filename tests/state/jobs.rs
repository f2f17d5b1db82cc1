//! Whole jobs: the keyed rolling aggregations (`reduce`, `sum`, `min`,
//! `max`, `aggregate`) at parallelism 2 end with the expected value per key;
//! a keyed function counts right at any parallelism and max parallelism,
//! also with state well beyond the caches (these run once per backend, from
//! `main.rs`); processing-time timers fire by the wall clock while a job runs
//! (a source waits for them before it ends), also when that source blocks on
//! every empty poll (a source with nothing to give is polled again after a
//! pause, so it does not starve the timers of its thread).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::source::{Source, SourceStatus};
use weir::state::{AggregateFunction, ValueStateDescriptor};
use weir::time::WatermarkStrategy;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

use crate::kit::Count;

const N: u64 = 10_000;
const GROUPS: u64 = 13;

/// The last record emitted for each key: in a job, the records of one key all
/// leave one subtask, in order, so the last is the final value.
fn last_per_key<K: Ord, V>(records: Vec<(K, V)>) -> BTreeMap<K, V> {
    records.into_iter().collect()
}

/// `(key, value)` for `i` in `0..N`: key `i % GROUPS`, value `i`.
fn generated(env: &StreamEnv) -> weir::DataStream<(u64, u64)> {
    env.generate(N, |i| (i % GROUPS, i))
}

fn expected<F: Fn(&mut dyn Iterator<Item = u64>) -> u64>(fold: F) -> BTreeMap<u64, u64> {
    (0..GROUPS)
        .map(|k| (k, fold(&mut (0..N).filter(move |i| i % GROUPS == k))))
        .collect()
}

pub(crate) fn rolling_sum_min_max_and_reduce_end_with_the_value_of_every_key() {
    let env = StreamEnv::with_parallelism(2);
    let sums = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| r.1)
        .collect();
    let mins = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .min(|r| r.1)
        .collect();
    let maxs = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .max(|r| r.1)
        .collect();
    let reduced = generated(&env)
        .map(|(k, v)| (k, v, 1u64))
        .key_by(|r: &(u64, u64, u64)| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1, a.2 + b.2))
        .collect();
    env.execute_blocking("rolling").unwrap();

    let sums = sums.take();
    assert_eq!(sums.len() as u64, N, "one result per record");
    assert_eq!(last_per_key(sums), expected(|it| it.sum()));
    let mins = mins.take();
    assert_eq!(mins.len() as u64, N);
    assert_eq!(last_per_key(mins), expected(|it| it.min().unwrap()));
    let maxs = maxs.take();
    assert_eq!(maxs.len() as u64, N);
    assert_eq!(last_per_key(maxs), expected(|it| it.max().unwrap()));

    let reduced = reduced.take();
    assert_eq!(reduced.len() as u64, N);
    let finals: BTreeMap<u64, (u64, u64)> = last_per_key(
        reduced
            .into_iter()
            .map(|(k, sum, count)| (k, (sum, count)))
            .collect(),
    );
    let counts = expected(|it| it.count() as u64);
    let sums = expected(|it| it.sum());
    for k in 0..GROUPS {
        assert_eq!(finals[&k], (sums[&k], counts[&k]), "key {k}");
    }
}

/// Per key: `(key, count, sum, largest)`; the key comes with the records.
#[derive(Clone)]
struct Stats;

impl AggregateFunction for Stats {
    type In = (u64, u64);
    type Acc = (u64, u64, u64, u64);
    type Out = (u64, u64, u64, u64);
    fn create_accumulator(&self) -> Self::Acc {
        (0, 0, 0, 0)
    }

    fn add(&self, (key, value): (u64, u64), acc: &mut Self::Acc) {
        *acc = (key, acc.1 + 1, acc.2 + value, acc.3.max(value));
    }

    fn get_result(&self, acc: &Self::Acc) -> Self::Out {
        *acc
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        *acc = (acc.0, acc.1 + other.1, acc.2 + other.2, acc.3.max(other.3));
    }
}

pub(crate) fn rolling_aggregate_ends_with_the_result_of_every_key() {
    let env = StreamEnv::with_parallelism(2);
    let out = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .aggregate(Stats)
        .collect();
    env.execute_blocking("aggregate").unwrap();
    let results = out.take();
    assert_eq!(results.len() as u64, N);
    let finals = last_per_key(
        results
            .into_iter()
            .map(|(k, count, sum, max)| (k, (count, sum, max)))
            .collect(),
    );
    let (counts, sums, maxs) = (
        expected(|it| it.count() as u64),
        expected(|it| it.sum()),
        expected(|it| it.max().unwrap()),
    );
    assert_eq!(finals.len() as u64, GROUPS);
    for k in 0..GROUPS {
        assert_eq!(finals[&k], (counts[&k], sums[&k], maxs[&k]), "key {k}");
    }
}

pub(crate) fn a_keyed_process_function_counts_every_key_in_a_job() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(N, |i| (i % GROUPS) as u32)
        .key_by(|k: &u32| *k)
        .process(Count(ValueStateDescriptor::<u64>::new("n")))
        .set_parallelism(3)
        .collect();
    env.execute_blocking("count").unwrap();
    let counts = out.take();
    assert_eq!(counts.len() as u64, N);
    // Every key counts 1, 2, ..., its number of records: the multiset of
    // counts says so without knowing which key each came from.
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for c in counts {
        *seen.entry(c).or_default() += 1;
    }
    let per_key = N / GROUPS; // 769, and N % GROUPS keys get one more
    let expected: BTreeMap<u64, u64> = (1..=per_key + 1)
        .map(|c| (c, if c <= per_key { GROUPS } else { N % GROUPS }))
        .collect();
    assert_eq!(seen, expected);
}

pub(crate) fn a_keyed_function_counts_right_when_its_state_outgrows_the_caches() {
    // 60 000 keys: state well beyond the first-level caches and a map per key
    // group that grows many times while the job runs; every key must count
    // 1, 2, 3, with and without timestamps in the batches.
    const KEYS: u64 = 60_000;
    for with_timestamps in [false, true] {
        let env = StreamEnv::with_parallelism(1);
        let keys = env.generate(3 * KEYS, |i| (i % KEYS) as u32);
        let keys = if with_timestamps {
            keys.assign_timestamps_and_watermarks(
                WatermarkStrategy::monotonous_timestamps()
                    .with_timestamp_assigner(|k: &u32| i64::from(*k)),
            )
        } else {
            keys
        };
        let out = keys
            .key_by(|k: &u32| *k)
            .process(Count(ValueStateDescriptor::<u64>::new("n")))
            .collect();
        env.execute_blocking("large-state").unwrap();
        let counts = out.take();
        assert_eq!(
            counts.len() as u64,
            3 * KEYS,
            "timestamps {with_timestamps}"
        );
        let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
        for c in counts {
            *seen.entry(c).or_default() += 1;
        }
        let expected: BTreeMap<u64, u64> = [(1, KEYS), (2, KEYS), (3, KEYS)].into();
        assert_eq!(seen, expected, "timestamps {with_timestamps}");
    }
}

pub(crate) fn a_keyed_function_with_its_own_max_parallelism_sees_every_key_at_its_owner() {
    for (parallelism, max_parallelism) in [(3, 7), (1, 1), (2, 2), (4, 1000)] {
        let env = StreamEnv::with_parallelism(2);
        let out = env
            .generate(N, |i| (i % GROUPS) as u32)
            .key_by(|k: &u32| *k)
            .process(Count(ValueStateDescriptor::<u64>::new("n")))
            .set_parallelism(parallelism)
            .set_max_parallelism(max_parallelism)
            .collect();
        env.execute_blocking("max-parallelism").unwrap();
        let counts = out.take();
        assert_eq!(
            counts.len() as u64,
            N,
            "p {parallelism}, max {max_parallelism}"
        );
        assert_eq!(
            counts.iter().max().copied(),
            Some(N.div_ceil(GROUPS)),
            "p {parallelism}, max {max_parallelism}"
        );
    }
}

/// Emits the keys `0..keys` once, then nothing until `done` is set (or a
/// deadline passes), then ends; remembers whether `done` ended it. Each poll
/// that finds nothing to emit blocks for `pause` (as a source waiting on I/O
/// would) before it returns.
#[derive(Clone)]
struct KeysThenWait {
    keys: u32,
    pause: Duration,
    sent: bool,
    done: Arc<AtomicBool>,
    deadline: Option<Instant>,
    ended_by_done: Arc<Mutex<Option<bool>>>,
}

impl Lifecycle for KeysThenWait {}

impl Source<u32> for KeysThenWait {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<u32>, _max: usize) -> Result<SourceStatus, UserError> {
        if !self.sent {
            self.sent = true;
            self.deadline = Some(Instant::now() + Duration::from_secs(30));
            out.extend(0..self.keys);
            return Ok(SourceStatus::More);
        }
        let done = self.done.load(Ordering::SeqCst);
        if done || self.deadline.is_some_and(|d| Instant::now() >= d) {
            *self.ended_by_done.lock().unwrap() = Some(done);
            return Ok(SourceStatus::Finished);
        }
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        Ok(SourceStatus::More)
    }
}

/// Registers a processing-time timer 20 ms after each record; each firing
/// emits `(key, timer time, domain, processing time at firing)` and the last
/// expected one sets `done`.
#[derive(Clone)]
struct WallClock {
    expected: usize,
    fired: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Lifecycle for WallClock {}

impl KeyedProcessFunction<u32, u32, (u32, i64, String, i64)> for WallClock {
    fn process_element(
        &mut self,
        _key: u32,
        ctx: &mut KeyedContext<u32>,
        _out: &mut Collector<(u32, i64, String, i64)>,
    ) -> Result<(), UserError> {
        let at = ctx.current_processing_time() + 20;
        ctx.register_processing_time_timer(at);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<(u32, i64, String, i64)>,
    ) -> Result<(), UserError> {
        let domain = format!("{:?}", ctx.time_domain());
        out.collect((
            *ctx.current_key(),
            timestamp,
            domain,
            ctx.current_processing_time(),
        ));
        if self.fired.fetch_add(1, Ordering::SeqCst) + 1 == self.expected {
            self.done.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs [`KeysThenWait`] (pausing `pause` per empty poll) into [`WallClock`]
/// and returns what fired, sorted by key, after checking that the timers fired
/// while the source was still running.
fn run_wall_clock(pause: Duration) -> Vec<(u32, i64, String, i64)> {
    const KEYS: u32 = 6;
    let done = Arc::new(AtomicBool::new(false));
    let ended_by_done = Arc::new(Mutex::new(None));
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .add_source(KeysThenWait {
            keys: KEYS,
            pause,
            sent: false,
            done: done.clone(),
            deadline: None,
            ended_by_done: ended_by_done.clone(),
        })
        .key_by(|k: &u32| *k)
        .process(WallClock {
            expected: KEYS as usize,
            fired: Arc::new(AtomicUsize::new(0)),
            done,
        })
        .collect();
    env.execute_blocking("wall-clock").unwrap();

    assert_eq!(
        *ended_by_done.lock().unwrap(),
        Some(true),
        "the timers fired while the source was still running"
    );
    let mut fired = out.take();
    fired.sort();
    assert_eq!(
        fired.iter().map(|f| f.0).collect::<Vec<_>>(),
        (0..KEYS).collect::<Vec<_>>()
    );
    for (key, timestamp, domain, now) in &fired {
        assert_eq!(domain, "Some(ProcessingTime)", "key {key}");
        assert!(
            now >= timestamp,
            "key {key} fired at {now}, before {timestamp}"
        );
    }
    fired
}

#[test]
fn processing_time_timers_fire_by_the_wall_clock_in_a_running_job() {
    // The source spins (returns at once) while it has nothing to emit.
    run_wall_clock(Duration::ZERO);
}

#[test]
fn processing_time_timers_are_not_starved_by_a_source_that_waits_for_input() {
    for (key, timestamp, _, now) in run_wall_clock(Duration::from_millis(2)) {
        assert!(
            now - timestamp < 500,
            "key {key}: the timer at {timestamp} fired {} ms late",
            now - timestamp
        );
    }
}

//! Event time through whole jobs: watermarks from the strategies to the
//! timers of a keyed function.
//!
//! - End of input is the maximum watermark: every event-time timer still
//!   registered fires then, in timestamp order per key, also in a stream that
//!   never had timestamps.
//! - Two sources unioned, one lagging 10 s of event time behind the other: the
//!   keyed function's watermark is the minimum over its inputs. Which records
//!   and watermarks interleave how is up to the scheduler, so the test logs
//!   every call the function gets (in order: one subtask) and checks properties
//!   that hold for any interleaving: no record is late, the watermark never
//!   passes the largest timestamp seen from a source that may still send (one
//!   whose last record is in may have ended: its input is then the maximum
//!   watermark), every timer fires
//!   once, only when the watermark reaches it, and no later than the first
//!   record after that.
//! - Punctuated watermarks (`|_, ts| Some(ts)`) make results independent of
//!   batching: batch size 1 and 1024 give the same timer firings, equal to a
//!   model of the semantics.
//! - Idleness: a source that goes quiet stops holding back the watermark once
//!   its strategy's idle timeout passes. The source waits for a timer of the
//!   keyed function to fire before it ends (with a generous deadline), so the
//!   test shows the timers fired because of idleness, not because the source
//!   ended. The building block, the `TimestampsAndWatermarks` operator, is
//!   also driven through the harness: periodic and punctuated watermarks,
//!   upstream watermarks dropped but the final one, and the idle timeout seen
//!   through the processing time the operator asks for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir::source::{Source, SourceStatus};
use weir::testing::OperatorHarness;
use weir::time::{TimestampsAndWatermarks, WatermarkStrategy, MAX_WATERMARK};
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

/// One record: which source, key, event time.
type Event = (char, u32, i64);

fn key_of(e: &Event) -> u32 {
    e.1
}

/// What [`Probe`] logs: every call it gets, with the watermark it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Call {
    Record {
        source: char,
        key: u32,
        timestamp: i64,
        watermark: i64,
    },
    Timer {
        key: u32,
        timestamp: i64,
        watermark: i64,
    },
}

/// Registers an event-time timer at `timestamp + delay` for every record and
/// logs every call.
#[derive(Clone)]
struct Probe {
    delay: i64,
    /// Set when the first timer fires.
    fired: Option<Arc<AtomicBool>>,
}

impl Lifecycle for Probe {}

impl KeyedProcessFunction<u32, Event, Call> for Probe {
    fn process_element(
        &mut self,
        (source, key, _): Event,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Call>,
    ) -> Result<(), UserError> {
        let timestamp = ctx.timestamp().ok_or("a record without a timestamp")?;
        ctx.register_event_time_timer(timestamp + self.delay);
        out.collect(Call::Record {
            source,
            key,
            timestamp,
            watermark: ctx.current_watermark(),
        });
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Call>,
    ) -> Result<(), UserError> {
        if let Some(fired) = &self.fired {
            fired.store(true, Ordering::SeqCst);
        }
        out.collect(Call::Timer {
            key: *ctx.current_key(),
            timestamp,
            watermark: ctx.current_watermark(),
        });
        Ok(())
    }
}

fn punctuated() -> WatermarkStrategy<Event> {
    WatermarkStrategy::punctuated(|_: &Event, ts| Some(ts)).with_timestamp_assigner(|e: &Event| e.2)
}

// -------------------------------------------------------------- end of input

#[test]
fn every_timer_fires_at_the_end_of_input() {
    const N: i64 = 2_000;
    // Parallelism 3 for the keyed function and the sink (forward: each sink
    // subtask keeps the order of one keyed subtask), 2 for the source.
    let env = StreamEnv::with_parallelism(3);
    let out = env
        .generate(N as u64, |i| ('g', (i % 7) as u32, i as i64))
        .set_parallelism(2)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::monotonous_timestamps().with_timestamp_assigner(|e: &Event| e.2),
        )
        .set_parallelism(2)
        .key_by(key_of)
        .process(Probe {
            delay: 1_000_000, // beyond every watermark the strategy makes
            fired: None,
        })
        .collect();
    env.execute_blocking("end-of-input").unwrap();

    let mut timers: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut records = 0;
    for call in out.take() {
        match call {
            Call::Record { .. } => records += 1,
            Call::Timer {
                key,
                timestamp,
                watermark,
            } => {
                assert_eq!(watermark, MAX_WATERMARK, "timer {timestamp} of key {key}");
                timers.entry(key).or_default().push(timestamp);
            }
        }
    }
    assert_eq!(records, N);
    assert_eq!(timers.len(), 7);
    for (key, fired) in timers {
        let expected: Vec<i64> = (0..N)
            .filter(|i| i % 7 == i64::from(key))
            .map(|i| i + 1_000_000)
            .collect();
        assert_eq!(fired, expected, "key {key}: each timer once, in order");
    }
}

/// Registers an event-time timer at 5 for every record (no timestamps needed).
#[derive(Clone)]
struct AtFive;

impl Lifecycle for AtFive {}

impl KeyedProcessFunction<u32, u32, (u32, i64)> for AtFive {
    fn process_element(
        &mut self,
        _value: u32,
        ctx: &mut KeyedContext<u32>,
        _out: &mut Collector<(u32, i64)>,
    ) -> Result<(), UserError> {
        ctx.register_event_time_timer(5);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<(u32, i64)>,
    ) -> Result<(), UserError> {
        out.collect((*ctx.current_key(), ctx.current_watermark()));
        Ok(())
    }
}

#[test]
fn the_end_of_a_stream_without_timestamps_still_fires_event_time_timers() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(100, |i| (i % 5) as u32)
        .key_by(|k: &u32| *k)
        .process(AtFive)
        .collect();
    env.execute_blocking("no-timestamps").unwrap();
    let mut fired = out.take();
    fired.sort();
    let expected: Vec<(u32, i64)> = (0..5).map(|k| (k, MAX_WATERMARK)).collect();
    assert_eq!(fired, expected, "one timer per key, at the end");
}

// ------------------------------------------------------------ lagging source

/// Checks what must hold for any interleaving of two punctuated sources into
/// one keyed subtask (see the module docs); returns the timers that fired.
fn check_min_over_inputs(
    calls: &[Call],
    delay: i64,
    last_timestamps: &BTreeMap<char, i64>,
) -> BTreeSet<(u32, i64)> {
    let mut max_seen: BTreeMap<char, i64> = BTreeMap::new();
    let mut pending: BTreeSet<(i64, u32)> = BTreeSet::new();
    let mut fired: BTreeSet<(u32, i64)> = BTreeSet::new();
    let mut last_watermark = i64::MIN;
    let mut last_timer = i64::MIN;
    for (i, call) in calls.iter().enumerate() {
        let watermark = match *call {
            Call::Record {
                source,
                key,
                timestamp,
                watermark,
            } => {
                assert!(
                    timestamp > watermark,
                    "call {i}: record {call:?} is late: the watermark passed a source's timestamps"
                );
                let max = max_seen.entry(source).or_insert(timestamp);
                *max = (*max).max(timestamp);
                pending.insert((timestamp + delay, key));
                if let Some(&(due, key)) = pending.first() {
                    assert!(
                        due > watermark,
                        "call {i}: the timer of key {key} at {due} is due at watermark {watermark} but did not fire"
                    );
                }
                watermark
            }
            Call::Timer {
                key,
                timestamp,
                watermark,
            } => {
                assert!(
                    watermark >= timestamp,
                    "call {i}: timer at {timestamp} fired at watermark {watermark}"
                );
                assert!(timestamp >= last_timer, "call {i}: timers out of order");
                last_timer = timestamp;
                assert!(
                    pending.remove(&(timestamp, key)),
                    "call {i}: timer {timestamp} of key {key} fired but was not pending"
                );
                assert!(fired.insert((key, timestamp)));
                watermark
            }
        };
        assert!(
            watermark >= last_watermark,
            "call {i}: the watermark went back"
        );
        last_watermark = watermark;
        if watermark != MAX_WATERMARK {
            for source in ['A', 'B'] {
                let max = max_seen.get(&source).copied().unwrap_or(i64::MIN);
                // Once a source's last record is in, it may have ended: its input
                // then counts as the maximum watermark and no longer bounds it.
                if last_timestamps.get(&source) == Some(&max) {
                    continue;
                }
                assert!(
                    watermark <= max,
                    "call {i}: watermark {watermark} is past the largest timestamp of source {source} ({max})"
                );
            }
        }
    }
    assert!(pending.is_empty(), "timers that never fired: {pending:?}");
    fired
}

#[test]
fn with_a_lagging_source_timers_fire_when_the_minimum_over_inputs_passes_them() {
    const N: i64 = 300;
    const DELAY: i64 = 5;
    // Source A runs 10 s of event time ahead of source B.
    let a: Vec<Event> = (0..N)
        .map(|i| ('A', (i % 4) as u32, 10_000 + i * 10))
        .collect();
    let b: Vec<Event> = (0..N).map(|i| ('B', (i % 3) as u32, i * 10 + 3)).collect();
    let env = StreamEnv::with_parallelism(1);
    let ahead = env
        .from_collection(a)
        .assign_timestamps_and_watermarks(punctuated());
    let behind = env
        .from_collection(b)
        .assign_timestamps_and_watermarks(punctuated());
    let out = ahead
        .union(behind)
        .key_by(key_of)
        .process(Probe {
            delay: DELAY,
            fired: None,
        })
        .collect();
    env.execute_blocking("lagging").unwrap();

    let calls = out.take();
    assert_eq!(
        calls.len() as i64,
        4 * N,
        "every record and one timer per record"
    );
    let last = BTreeMap::from([('A', 10_000 + (N - 1) * 10), ('B', (N - 1) * 10 + 3)]);
    let fired = check_min_over_inputs(&calls, DELAY, &last);
    assert_eq!(fired.len() as i64, 2 * N);
}

#[test]
fn the_min_over_inputs_check_catches_a_watermark_that_runs_ahead() {
    // The checker itself: a watermark from source A alone (as a valve taking the
    // maximum would give) makes B's next record late.
    let calls = vec![
        Call::Record {
            source: 'B',
            key: 0,
            timestamp: 3,
            watermark: i64::MIN,
        },
        Call::Record {
            source: 'A',
            key: 1,
            timestamp: 10_000,
            watermark: 3,
        },
        Call::Timer {
            key: 0,
            timestamp: 8,
            watermark: 10_000,
        },
    ];
    let last = BTreeMap::from([('A', 20_000), ('B', 20_000)]);
    let result = std::panic::catch_unwind(|| check_min_over_inputs(&calls, 5, &last));
    assert!(result.is_err());
}

// ---------------------------------------------------------------- punctuated

/// Counts records per key and registers a timer `WINDOW` after each; a timer
/// emits `(key, its time, the key's count then)`.
#[derive(Clone)]
struct CountAtTimer {
    count: weir::state::ValueStateWithDefault<u64>,
}

const WINDOW: i64 = 25;

impl Lifecycle for CountAtTimer {}

impl KeyedProcessFunction<u32, (u32, i64), (u32, i64, u64)> for CountAtTimer {
    fn process_element(
        &mut self,
        (_, ts): (u32, i64),
        ctx: &mut KeyedContext<u32>,
        _out: &mut Collector<(u32, i64, u64)>,
    ) -> Result<(), UserError> {
        ctx.state(&self.count)?.modify(|c| *c += 1);
        ctx.register_event_time_timer(ts + WINDOW);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<(u32, i64, u64)>,
    ) -> Result<(), UserError> {
        let count = ctx.state(&self.count)?.value().unwrap_or_default();
        out.collect((*ctx.current_key(), timestamp, count));
        Ok(())
    }
}

/// Keys and increasing timestamps in irregular steps.
fn punctuated_input() -> Vec<(u32, i64)> {
    let mut ts = 0;
    (0..3_000u32)
        .map(|i| {
            ts += i64::from((i * 7919) % 13);
            ((i * 31) % 11, ts)
        })
        .collect()
}

/// The semantics by hand: after each record its watermark (its timestamp)
/// fires every due timer; the end fires the rest.
fn punctuated_model(input: &[(u32, i64)]) -> Vec<(u32, i64, u64)> {
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut timers: BTreeSet<(i64, u32)> = BTreeSet::new();
    let mut out = Vec::new();
    let mut fire = |timers: &mut BTreeSet<(i64, u32)>, counts: &BTreeMap<u32, u64>, upto: i64| {
        while let Some(&(t, k)) = timers.first() {
            if t > upto {
                break;
            }
            timers.pop_first();
            out.push((k, t, counts[&k]));
        }
    };
    for &(k, ts) in input {
        *counts.entry(k).or_default() += 1;
        timers.insert((ts + WINDOW, k));
        fire(&mut timers, &counts, ts);
    }
    fire(&mut timers, &counts, i64::MAX);
    out.sort();
    out
}

fn run_punctuated(batch_size: usize) -> Vec<(u32, i64, u64)> {
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(batch_size);
    let out = env
        .from_collection(punctuated_input())
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &(u32, i64), ts| Some(ts))
                .with_timestamp_assigner(|r: &(u32, i64)| r.1),
        )
        // Chained to the single reader: one stream of watermarks, in order with
        // the records (at the default parallelism, 2, the records would be dealt
        // round robin to two assigners whose watermarks interleave by timing).
        .set_parallelism(1)
        .key_by(|r: &(u32, i64)| r.0)
        .process(CountAtTimer {
            count: weir::state::ValueStateDescriptor::new("count").with_default(0),
        })
        .collect();
    env.execute_blocking("punctuated").unwrap();
    let mut fired = out.take();
    fired.sort();
    fired
}

#[test]
fn punctuated_watermarks_make_results_independent_of_batch_size() {
    let model = punctuated_model(&punctuated_input());
    let one = run_punctuated(1);
    let many = run_punctuated(1024);
    assert_eq!(one, many);
    assert_eq!(one, model);
    // The counts at firing differ from the final counts: watermarks really came
    // between the records, not only at the end.
    assert!(model.iter().any(|&(_, _, c)| c < 3_000 / 11));
}

// ------------------------------------------------------------------ idleness

/// Emits one record, then nothing until a timer of the keyed function fired
/// (or a deadline passed), then ends; remembers which came first.
#[derive(Clone)]
struct QuietSource {
    sent: bool,
    fired: Arc<AtomicBool>,
    deadline: Option<Instant>,
    ended_by_timer: Arc<Mutex<Option<bool>>>,
}

impl Lifecycle for QuietSource {}

impl Source<Event> for QuietSource {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<Event>, _max: usize) -> Result<SourceStatus, UserError> {
        if !self.sent {
            self.sent = true;
            self.deadline = Some(Instant::now() + Duration::from_secs(30));
            out.push(('B', 0, 5));
            return Ok(SourceStatus::More);
        }
        let fired = self.fired.load(Ordering::SeqCst);
        if fired || self.deadline.is_some_and(|d| Instant::now() >= d) {
            *self.ended_by_timer.lock().unwrap() = Some(fired);
            return Ok(SourceStatus::Finished);
        }
        // Returns at once: a source that blocked here would delay the timers of
        // its Arbiter, the idle timeout among them (see the ignored test in
        // tests/state.rs about starved processing-time timers).
        Ok(SourceStatus::More)
    }
}

#[test]
fn an_idle_source_does_not_hold_back_the_watermark() {
    let fired = Arc::new(AtomicBool::new(false));
    let ended_by_timer = Arc::new(Mutex::new(None));
    let env = StreamEnv::with_parallelism(1);
    let active = env
        .from_collection(
            (0..20)
                .map(|i| ('A', i % 3, 100 + i64::from(i) * 10))
                .collect::<Vec<_>>(),
        )
        .assign_timestamps_and_watermarks(punctuated());
    let quiet = env
        .add_source(QuietSource {
            sent: false,
            fired: fired.clone(),
            deadline: None,
            ended_by_timer: ended_by_timer.clone(),
        })
        .assign_timestamps_and_watermarks(punctuated().with_idleness(Duration::from_millis(50)));
    let out = active
        .union(quiet)
        .key_by(key_of)
        .process(Probe {
            delay: 1,
            fired: Some(fired.clone()),
        })
        .collect();
    env.execute_blocking("idle").unwrap();

    assert_eq!(
        *ended_by_timer.lock().unwrap(),
        Some(true),
        "the quiet source held back the watermark until it ended"
    );
    let calls = out.take();
    let timers: Vec<(u32, i64, i64)> = calls
        .iter()
        .filter_map(|c| match *c {
            Call::Timer {
                key,
                timestamp,
                watermark,
            } => Some((key, timestamp, watermark)),
            Call::Record { .. } => None,
        })
        .collect();
    assert_eq!(timers.len(), 21, "one timer per record: {calls:?}");
    assert!(timers.iter().all(|&(_, t, w)| w >= t));
}

// ------------------------------------------------- the watermark operator alone

type Assigner = OperatorHarness<(u32, i64), (u32, i64)>;

fn assigner(strategy: WatermarkStrategy<(u32, i64)>) -> Assigner {
    let mut h = OperatorHarness::new(TimestampsAndWatermarks::new(strategy), 0, 1, 128);
    h.open(None).unwrap();
    h
}

const HOUR: Duration = Duration::from_secs(3_600);

#[test]
fn periodic_watermarks_trail_the_largest_timestamp_at_each_emit_interval() {
    let mut h = assigner(
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10))
            .with_timestamp_assigner(|r: &(u32, i64)| r.1)
            .with_emit_interval(HOUR),
    );
    let first_emit = h.next_processing_time().expect("a periodic emit is due");
    h.process(vec![(1, 100), (2, 50), (3, 130), (4, 120)])
        .unwrap();
    assert_eq!(
        h.take_output_with_timestamps(),
        vec![
            ((1, 100), Some(100)),
            ((2, 50), Some(50)),
            ((3, 130), Some(130)),
            ((4, 120), Some(120)),
        ],
        "records get their timestamps"
    );
    assert!(
        h.take_watermarks().is_empty(),
        "periodic: nothing before the interval"
    );
    h.processing_time(first_emit - 1).unwrap();
    assert!(h.take_watermarks().is_empty());
    h.processing_time(first_emit).unwrap();
    assert_eq!(h.take_watermarks(), vec![130 - 10 - 1]);
    let second_emit = h.next_processing_time().unwrap();
    assert_eq!(second_emit, first_emit + HOUR.as_millis() as i64);
    // Nothing new: no watermark again (it never repeats or goes back).
    h.processing_time(second_emit).unwrap();
    assert!(h.take_watermarks().is_empty());
    h.process(vec![(5, 200)]).unwrap();
    h.processing_time(h.next_processing_time().unwrap())
        .unwrap();
    assert_eq!(h.take_watermarks(), vec![189]);
}

#[test]
fn punctuated_watermarks_follow_their_records_and_never_go_back() {
    let mut h = assigner(
        WatermarkStrategy::punctuated(|r: &(u32, i64), ts| (r.0 != 0).then_some(ts))
            .with_timestamp_assigner(|r: &(u32, i64)| r.1),
    );
    h.process(vec![(1, 10), (1, 30), (1, 20), (0, 40), (1, 35), (1, 50)])
        .unwrap();
    assert_eq!(h.take_watermarks(), vec![10, 30, 35, 50]);
    assert_eq!(h.take_output().len(), 6);
}

#[test]
fn upstream_watermarks_are_dropped_except_the_final_one() {
    let mut h = assigner(
        WatermarkStrategy::punctuated(|_: &(u32, i64), ts| Some(ts))
            .with_timestamp_assigner(|r: &(u32, i64)| r.1),
    );
    h.watermark(1_000).unwrap();
    assert!(h.take_watermarks().is_empty());
    h.process(vec![(1, 7)]).unwrap();
    assert_eq!(h.take_watermarks(), vec![7]);
    h.watermark(MAX_WATERMARK).unwrap();
    assert_eq!(h.take_watermarks(), vec![MAX_WATERMARK]);
    assert_eq!(
        h.next_processing_time(),
        None,
        "nothing to do after the end"
    );
}

#[test]
fn records_without_an_assigner_keep_their_timestamps() {
    let mut h = assigner(WatermarkStrategy::punctuated(|_: &(u32, i64), ts| Some(ts)));
    h.process_with_timestamps(vec![((1, 0), 42), ((2, 0), 43)])
        .unwrap();
    assert_eq!(
        h.take_output_with_timestamps(),
        vec![((1, 0), Some(42)), ((2, 0), Some(43))]
    );
    assert_eq!(h.take_watermarks(), vec![42, 43]);
}

#[test]
fn the_idle_timeout_is_asked_for_until_the_stream_goes_idle_and_again_after_a_record() {
    // Idleness itself (the Idle(true)/Idle(false) events) is not visible through
    // the harness; what the operator asks of the clock is: while active it wants
    // to be called at the idle timeout, once idle only at the next periodic emit.
    let mut h = assigner(
        WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO)
            .with_timestamp_assigner(|r: &(u32, i64)| r.1)
            .with_emit_interval(10 * HOUR)
            .with_idleness(HOUR),
    );
    let idle_at = h.next_processing_time().unwrap();
    h.processing_time(idle_at - 1).unwrap();
    assert_eq!(h.next_processing_time(), Some(idle_at), "not idle yet");
    h.processing_time(idle_at).unwrap();
    let periodic = h.next_processing_time().unwrap();
    assert!(
        periodic >= idle_at + 8 * HOUR.as_millis() as i64,
        "idle: only the periodic emit is left ({periodic} vs {idle_at})"
    );
    assert!(h.take_watermarks().is_empty());

    // A record makes it active again: the idle timeout is asked for anew.
    h.process(vec![(1, 5)]).unwrap();
    let again = h.next_processing_time().unwrap();
    assert!(again < periodic, "active again: {again} vs {periodic}");
    assert_eq!(h.take_output(), vec![(1, 5)]);
}

//! Windows as a user writes them: a differential oracle (random out-of-order
//! streams with punctuated watermarks, every event-time assigner with and
//! without an offset, count / sum / min / max incrementally on the slice
//! engine and on the general operator, and distinct values through a
//! process function, several lateness and parallelism settings, compared with a
//! naive copy-into-every-window reference written here), then count windows,
//! triggers, evictors, `window_all`, and side outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::source::{Source, SourceStatus};
use weir::state::AggregateFunction;
use weir::time::WatermarkStrategy;
use weir::window::{
    ContinuousEventTimeTrigger, CountEvictor, CumulatingEventTimeWindows, EventTimeSessionWindows,
    EventTimeTrigger, ProcessWindowFunction, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TimeEvictor, TimeWindow, TumblingEventTimeWindows,
    TumblingProcessingTimeWindows, WindowAssigner, WindowContext, WindowListStateDescriptor,
    WindowValueStateDescriptor,
};
use weir::{
    Collector, DataStream, KeyedContext, KeyedProcessFunction, Lifecycle, OutputTag,
    ProcessContext, ProcessFunction, StreamEnv, UserError,
};

/// (key, timestamp, value)
type Rec = (u32, i64, i64);

/// What a firing reports: key, start, end, then count, sum, min, max (or
/// distinct values, count, 0, 0).
type Firing = (u32, i64, i64, u64, i64, i64, i64);

/// A small deterministic generator (xorshift), so every case is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` records over `keys` keys, mostly in order, some late by up to 3 s.
fn random_stream(seed: u64, n: usize, keys: u32) -> Vec<Rec> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut time = 0_i64;
    (0..n)
        .map(|_| {
            time += rng.below(40) as i64;
            let back = match rng.below(10) {
                0..=5 => 0,
                6..=8 => rng.below(500) as i64,
                _ => rng.below(3_000) as i64,
            };
            let key = rng.below(u64::from(keys)) as u32;
            let value = rng.below(201) as i64 - 100;
            (key, time - back, value)
        })
        .collect()
}

/// The window shapes the oracle covers, in ms.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Tumbling(i64),
    Sliding(i64, i64),
    Cumulating(i64, i64),
    Session(i64),
}

/// The reference's window assignment, written from the definitions, with
/// windows aligned at `offset` (Flink's window offset).
fn windows_of(shape: Shape, offset: i64, ts: i64) -> Vec<(i64, i64)> {
    let floor = |t: i64, n: i64| (t - offset).div_euclid(n) * n + offset;
    match shape {
        Shape::Tumbling(size) => vec![(floor(ts, size), floor(ts, size) + size)],
        Shape::Sliding(size, slide) => {
            let mut out = Vec::new();
            let mut start = floor(ts, slide);
            while start + size > ts {
                out.push((start, start + size));
                start -= slide;
            }
            out
        }
        Shape::Cumulating(max, step) => {
            let start = floor(ts, max);
            (1..=max / step)
                .map(|j| (start, start + j * step))
                .filter(|&(_, end)| end > ts)
                .collect()
        }
        Shape::Session(gap) => vec![(ts, ts + gap)],
    }
}

/// What a window's values give: count, sum, min, max; or the number of
/// distinct values.
fn summary(key: u32, (start, end): (i64, i64), values: &[i64], distinct: bool) -> Firing {
    if distinct {
        let n = values.iter().collect::<BTreeSet<_>>().len() as u64;
        return (key, start, end, n, values.len() as i64, 0, 0);
    }
    (
        key,
        start,
        end,
        values.len() as u64,
        values.iter().sum(),
        *values.iter().min().unwrap(),
        *values.iter().max().unwrap(),
    )
}

/// The reference: Flink's window semantics simulated naively, every element
/// copied into every window, the watermark after each record its timestamp
/// minus `ooo` (when that is higher), the end of input the largest watermark.
fn reference(
    records: &[Rec],
    shape: Shape,
    offset: i64,
    lateness: i64,
    ooo: i64,
    distinct: bool,
) -> (Vec<Firing>, Vec<Rec>) {
    // (key, window) -> values; a window is removed once cleaned up.
    let mut open: BTreeMap<(u32, (i64, i64)), Vec<i64>> = BTreeMap::new();
    let mut fired = Vec::new();
    let mut late = Vec::new();
    let mut watermark = i64::MIN;
    let max_ts = |w: (i64, i64)| w.1 - 1;
    for &(key, ts, value) in records {
        let mut placed = false;
        for window in windows_of(shape, offset, ts) {
            let mut window = window;
            if let Shape::Session(_) = shape {
                // Merge with the key's sessions it overlaps or touches.
                let touching: Vec<(i64, i64)> = open
                    .keys()
                    .filter(|(k, w)| *k == key && w.0 <= window.1 && w.1 >= window.0)
                    .map(|(_, w)| *w)
                    .collect();
                let mut values = Vec::new();
                for w in touching {
                    window = (window.0.min(w.0), window.1.max(w.1));
                    values.extend(open.remove(&(key, w)).unwrap());
                }
                if !values.is_empty() {
                    open.insert((key, window), values);
                }
            }
            if max_ts(window) + lateness <= watermark {
                continue; // the window was cleaned up
            }
            placed = true;
            let values = open.entry((key, window)).or_default();
            values.push(value);
            if max_ts(window) <= watermark {
                fired.push(summary(key, window, values, distinct)); // a late firing
            }
        }
        if !placed && ts + lateness <= watermark {
            late.push((key, ts, value));
        }
        let next = watermark.max(ts - ooo);
        if next > watermark {
            for (&(k, w), values) in &open {
                if max_ts(w) > watermark && max_ts(w) <= next {
                    fired.push(summary(k, w, values, distinct));
                }
            }
            open.retain(|&(_, w), _| max_ts(w) + lateness > next);
            watermark = next;
        }
    }
    for (&(k, w), values) in &open {
        if max_ts(w) > watermark {
            fired.push(summary(k, w, values, distinct));
        }
    }
    fired.sort();
    late.sort();
    (fired, late)
}

/// Count, sum, min and max, incrementally.
struct Stats;

impl AggregateFunction for Stats {
    type In = Rec;
    type Acc = (u64, i64, i64, i64);
    type Out = (u64, i64, i64, i64);

    fn create_accumulator(&self) -> Self::Acc {
        (0, 0, i64::MAX, i64::MIN)
    }

    fn add(&self, r: Rec, a: &mut Self::Acc) {
        *a = (a.0 + 1, a.1 + r.2, a.2.min(r.2), a.3.max(r.2));
    }

    fn get_result(&self, a: &Self::Acc) -> Self::Out {
        *a
    }

    fn merge(&self, a: &mut Self::Acc, b: Self::Acc) {
        *a = (a.0 + b.0, a.1 + b.1, a.2.min(b.2), a.3.max(b.3));
    }
}

/// Adds key and window to the aggregate.
#[derive(Clone)]
struct WithWindow;

impl Lifecycle for WithWindow {}

impl ProcessWindowFunction<u32, (u64, i64, i64, i64), Firing, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        key: &u32,
        ctx: &mut WindowContext<u32, TimeWindow>,
        elements: Vec<(u64, i64, i64, i64)>,
        out: &mut Collector<Firing>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        for (n, sum, min, max) in elements {
            out.collect((*key, w.start, w.end, n, sum, min, max));
        }
        Ok(())
    }
}

/// The number of distinct values, from all the window's elements.
#[derive(Clone)]
struct Distinct;

impl Lifecycle for Distinct {}

impl ProcessWindowFunction<u32, Rec, Firing, TimeWindow> for Distinct {
    fn process(
        &mut self,
        key: &u32,
        ctx: &mut WindowContext<u32, TimeWindow>,
        elements: Vec<Rec>,
        out: &mut Collector<Firing>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        let n = elements.iter().map(|r| r.2).collect::<BTreeSet<_>>().len() as u64;
        out.collect((*key, w.start, w.end, n, elements.len() as i64, 0, 0));
        Ok(())
    }
}

/// The records with punctuated watermarks (timestamp minus `ooo`), from a
/// non-parallel source.
fn timed(env: &StreamEnv, records: Vec<Rec>, ooo: i64) -> DataStream<Rec> {
    env.from_collection(records)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(move |_: &Rec, ts| Some(ts - ooo))
                .with_timestamp_assigner(|r: &Rec| r.1),
        )
        .set_parallelism(1)
}

/// How the windows under test compute.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Engine {
    /// `aggregate_with`, the default trigger: the slice engine where the
    /// assigner slices, the session engine for sessions.
    Incremental,
    /// `aggregate_with` with the event-time trigger set explicitly: the
    /// general operator, whatever the assigner.
    General,
    /// `process` over the elements (distinct values): the general operator.
    Elements,
}

fn run_weir<A: WindowAssigner<Rec, W = TimeWindow>>(
    records: &[Rec],
    assigner: A,
    lateness: i64,
    ooo: i64,
    engine: Engine,
    parallelism: usize,
) -> (Vec<Firing>, Vec<Rec>) {
    let env = StreamEnv::with_parallelism(parallelism);
    let tag = OutputTag::<Rec>::new("late");
    let windowed = timed(&env, records.to_vec(), ooo)
        .key_by(|r: &Rec| r.0)
        .window(assigner)
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .side_output_late_data(&tag);
    let fired = match engine {
        Engine::Elements => windowed.process(Distinct),
        Engine::Incremental => windowed.aggregate_with(Stats, WithWindow),
        Engine::General => windowed
            .trigger(EventTimeTrigger::create())
            .aggregate_with(Stats, WithWindow),
    };
    let late = fired.side_output(&tag).collect();
    let fired = fired.collect();
    env.execute_blocking("oracle").unwrap();
    let mut fired = fired.take();
    fired.sort();
    let mut late = late.take();
    late.sort();
    (fired, late)
}

fn check(shape: Shape, seeds: std::ops::Range<u64>) {
    let ms = |n: i64| Duration::from_millis(n as u64);
    for seed in seeds {
        let records = random_stream(seed, 600, 5);
        let lateness = [0, 60, 700][(seed % 3) as usize];
        let ooo = [0, 150][(seed % 2) as usize];
        let parallelism = 1 + (seed % 2) as usize;
        let offset = match shape {
            Shape::Session(_) => 0,
            _ => [0, 170, -230][(seed / 3 % 3) as usize],
        };
        for engine in [Engine::Incremental, Engine::General, Engine::Elements] {
            let distinct = engine == Engine::Elements;
            let expected = reference(&records, shape, offset, lateness, ooo, distinct);
            let got = match shape {
                Shape::Tumbling(size) => run_weir(
                    &records,
                    TumblingEventTimeWindows::of(ms(size)).with_offset_ms(offset),
                    lateness,
                    ooo,
                    engine,
                    parallelism,
                ),
                Shape::Sliding(size, slide) => run_weir(
                    &records,
                    SlidingEventTimeWindows::of(ms(size), ms(slide)).with_offset_ms(offset),
                    lateness,
                    ooo,
                    engine,
                    parallelism,
                ),
                Shape::Cumulating(max, step) => run_weir(
                    &records,
                    CumulatingEventTimeWindows::of(ms(max), ms(step)).with_offset_ms(offset),
                    lateness,
                    ooo,
                    engine,
                    parallelism,
                ),
                Shape::Session(gap) => run_weir(
                    &records,
                    EventTimeSessionWindows::with_gap(ms(gap)),
                    lateness,
                    ooo,
                    engine,
                    parallelism,
                ),
            };
            assert!(!expected.0.is_empty());
            assert_eq!(
                got, expected,
                "{shape:?} seed {seed} offset {offset} lateness {lateness} ooo {ooo} p{parallelism} {engine:?}"
            );
        }
    }
}

#[test]
fn tumbling_windows_agree_with_the_reference() {
    check(Shape::Tumbling(500), 0..16);
}

#[test]
fn sliding_windows_agree_with_the_reference() {
    check(Shape::Sliding(1_000, 300), 0..16);
}

#[test]
fn cumulating_windows_agree_with_the_reference() {
    check(Shape::Cumulating(1_200, 400), 0..16);
}

#[test]
fn session_windows_agree_with_the_reference() {
    check(Shape::Session(60), 0..12);
    check(Shape::Session(250), 12..20);
}

/// Sessions whose gap each element gives: the session engine (the default
/// trigger) fires exactly what the general operator (the trigger given)
/// does, late records included, over random out-of-order streams.
#[test]
fn dynamic_gap_sessions_agree_on_both_engines() {
    for seed in 40..52 {
        let records = random_stream(seed, 600, 5);
        let lateness = [0, 60, 700][(seed % 3) as usize];
        let ooo = [0, 150][(seed % 2) as usize];
        let parallelism = 1 + (seed % 2) as usize;
        // 20..=320 ms, from the value (which may be negative).
        let gap = |r: &Rec| 20 + r.2.rem_euclid(7) * 50;
        let run = |engine| {
            run_weir(
                &records,
                EventTimeSessionWindows::with_dynamic_gap(gap),
                lateness,
                ooo,
                engine,
                parallelism,
            )
        };
        let (general, general_late) = run(Engine::General);
        let (sessions, sessions_late) = run(Engine::Incremental);
        assert!(general.len() > 20, "seed {seed}: {} firings", general.len());
        assert_eq!(sessions, general, "seed {seed}: firings");
        assert_eq!(sessions_late, general_late, "seed {seed}: late records");
    }
}

/// A key whose every element is late keeps no session state (nor do the
/// others, once their sessions are cleaned up at the end of the input).
#[test]
fn a_key_with_only_late_elements_keeps_no_state() {
    let env = StreamEnv::with_parallelism(1);
    let records = vec![(1, 0, 1), (1, 5_000, 2), (2, 100, 3), (2, 150, 4)];
    let fired = timed(&env, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(
            100,
        )))
        .reduce(|a, b| (a.0, a.1, a.2 + b.2))
        .name("Sessions")
        .collect();
    let result = env.execute_blocking("late keys").unwrap();
    assert_eq!(fired.take().len(), 2);
    assert_eq!(result.counter("Sessions", "late_records"), 2);
    let stored: Vec<_> = result
        .state_metrics()
        .filter(|s| s.operator == "Sessions")
        .map(|s| (s.state.clone(), s.stored_keys))
        .collect();
    assert_eq!(stored, vec![("window-sessions".to_string(), Some(0))]);
}

#[test]
fn a_late_element_within_the_lateness_bridges_two_sessions() {
    // Sessions [0, 100) and [150, 250) of key 1; the watermark reaches 300;
    // an element at 90 (within 400 of lateness) joins both: one session
    // [0, 250) fires at once with all three elements.
    let records = vec![(1, 0, 1), (1, 150, 2), (2, 400, 0), (1, 90, 4)];
    let (fired, late) = run_weir(
        &records,
        EventTimeSessionWindows::with_gap(Duration::from_millis(100)),
        400,
        100,
        Engine::Incremental,
        2,
    );
    assert!(late.is_empty());
    assert_eq!(
        fired,
        vec![
            (1, 0, 100, 1, 1, 1, 1),
            (1, 0, 250, 3, 7, 1, 4),
            (1, 150, 250, 1, 2, 2, 2),
            (2, 400, 500, 1, 0, 0, 0),
        ]
    );
}

#[test]
fn late_records_are_counted_whether_or_not_they_go_to_a_side_output() {
    let records = vec![(1, 1_000, 1), (1, 5_000, 2), (1, 100, 3), (2, 200, 4)];
    let env = StreamEnv::with_parallelism(2);
    let sums = timed(&env, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a, b| (a.0, a.1, a.2 + b.2))
        .name("Sums")
        .collect();
    let result = env.execute_blocking("late").unwrap();
    assert_eq!(sums.take().len(), 2);
    assert_eq!(result.counter("Sums", "late_records"), 2);
    assert_eq!(result.counter("Sums", "late_records_dropped"), 2);
}

/// Values per key, for count windows.
fn values(env: &StreamEnv, n: i64) -> DataStream<Rec> {
    env.from_collection((0..n).map(|i| ((i % 2) as u32, i, i)).collect::<Vec<_>>())
        .set_parallelism(1)
}

#[test]
fn count_windows_fire_every_n_elements_and_keep_the_rest() {
    let env = StreamEnv::with_parallelism(2);
    let sums = values(&env, 11)
        .key_by(|r: &Rec| r.0)
        .count_window(3)
        .reduce(|a, b| (a.0, a.1, a.2 + b.2))
        .collect();
    env.execute_blocking("count").unwrap();
    let mut got: Vec<(u32, i64)> = sums.take().into_iter().map(|r| (r.0, r.2)).collect();
    got.sort();
    // key 0: 0 2 4 | 6 8 10 ; key 1: 1 3 5 | 7 9 (two left over: no firing)
    assert_eq!(got, vec![(0, 6), (0, 24), (1, 9)]);
}

#[test]
fn sliding_count_windows_fire_every_slide_over_the_last_size() {
    let env = StreamEnv::with_parallelism(2);
    let sums = values(&env, 12)
        .key_by(|r: &Rec| r.0)
        .count_window_sliding(4, 2)
        .reduce(|a, b| (a.0, a.1, a.2 + b.2))
        .collect();
    env.execute_blocking("count").unwrap();
    let mut got: Vec<(u32, i64)> = sums.take().into_iter().map(|r| (r.0, r.2)).collect();
    got.sort();
    // Key 0 sees 0 2 4 6 8 10 and fires every second element over the last
    // four: 0+2, 0+2+4+6, 4+6+8+10; key 1 the same with 1 3 5 7 9 11.
    assert_eq!(
        got,
        vec![(0, 2), (0, 12), (0, 28), (1, 4), (1, 16), (1, 32)]
    );
}

#[test]
fn an_evictor_trims_what_the_function_sees() {
    let env = StreamEnv::with_parallelism(1);
    let records: Vec<Rec> = (0..10).map(|i| (1, i * 100, i)).collect();
    let sums = timed(&env, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .evictor(CountEvictor::of(3))
        .reduce(|a, b| (a.0, a.1, a.2 + b.2))
        .collect();
    let times = env.clone();
    let records: Vec<Rec> = (0..10).map(|i| (1, i * 100, i)).collect();
    let recent = timed(&times, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .evictor(TimeEvictor::of(Duration::from_millis(250)))
        .process(Distinct)
        .collect();
    env.execute_blocking("evict").unwrap();
    assert_eq!(
        sums.take().iter().map(|r| r.2).collect::<Vec<_>>(),
        vec![7 + 8 + 9]
    );
    // Elements after 900 - 250: 700, 800, 900.
    assert_eq!(recent.take()[0].3, 3);
}

#[test]
fn a_continuous_trigger_fires_early_and_at_the_end() {
    let env = StreamEnv::with_parallelism(1);
    let records: Vec<Rec> = (0..10).map(|i| (1, i * 100, 1)).collect();
    let counts = timed(&env, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(300)))
        .aggregate_with(Stats, WithWindow)
        .collect();
    env.execute_blocking("early").unwrap();
    let got: Vec<u64> = counts.take().iter().map(|f| f.3).collect();
    // Fires at 300 (4 elements: 0..300), 600 (7), 900 (10), and at 999 (10).
    assert_eq!(got, vec![4, 7, 10, 10]);
}

#[test]
fn window_all_sees_every_record_in_one_subtask() {
    let env = StreamEnv::with_parallelism(3);
    let records: Vec<Rec> = (0..30).map(|i| (i as u32, i * 100, 1)).collect();
    let counts = timed(&env, records, 0)
        .window_all(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a, b| (0, a.1.max(b.1), a.2 + b.2))
        .collect();
    env.execute_blocking("all").unwrap();
    let got: Vec<i64> = counts.take().iter().map(|r| r.2).collect();
    assert_eq!(got, vec![10, 10, 10]);
}

#[test]
fn bad_window_settings_fail_the_job_once_naming_the_operator() {
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(weir::RestartStrategy::FixedDelay {
        attempts: 3,
        delay: Duration::ZERO,
    });
    let _ = timed(&env, vec![(1, 1, 1)], 0)
        .key_by(|r: &Rec| r.0)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(1),
            Duration::ZERO,
        ))
        .reduce(|a, _| a)
        .name("Broken")
        .collect();
    let error = futures::executor::block_on(async {
        let mut client = env.start("bad").await.unwrap();
        let error = client.wait().await.unwrap_err();
        assert_eq!(client.restarts(), 0, "no restart can fix a configuration");
        error
    });
    let message = error.to_string();
    assert!(
        message.contains("Broken") && message.contains("slide"),
        "{message}"
    );
}

#[test]
fn a_record_without_a_timestamp_in_an_event_time_window_is_an_error() {
    let env = StreamEnv::with_parallelism(1);
    let _ = env
        .from_collection(vec![(1_u32, 1_i64, 1_i64)])
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(|a, _| a)
        .collect();
    let err = env.execute_blocking("untimed").unwrap_err().to_string();
    assert!(err.contains("without a timestamp"), "{err}");
}

/// Sends odd values to one side output and negative ones to another.
#[derive(Clone)]
struct Split {
    odd: OutputTag<i64>,
    negative: OutputTag<String>,
}

impl Lifecycle for Split {}

impl ProcessFunction<i64, i64> for Split {
    fn process_element(
        &mut self,
        x: i64,
        ctx: &mut ProcessContext,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        if x < 0 {
            ctx.output(&self.negative, format!("negative {x}"));
        } else if x % 2 == 1 {
            ctx.output(&self.odd, x);
        } else {
            out.collect(x);
        }
        Ok(())
    }
}

impl KeyedProcessFunction<i64, i64, i64> for Split {
    fn process_element(
        &mut self,
        x: i64,
        ctx: &mut KeyedContext<i64>,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        if x < 0 {
            ctx.output(&self.negative, format!("negative {x}"));
        } else if x % 2 == 1 {
            ctx.output(&self.odd, x);
        } else {
            out.collect(x);
        }
        Ok(())
    }
}

#[test]
fn side_outputs_of_process_functions_reach_their_consumers() {
    let odd = OutputTag::<i64>::new("odd");
    let negative = OutputTag::<String>::new("negative");
    let split = Split {
        odd: odd.clone(),
        negative: negative.clone(),
    };
    let input: Vec<i64> = (-5..20).collect();
    for keyed in [false, true] {
        let env = StreamEnv::with_parallelism(2);
        let source = env.from_collection(input.clone());
        let main = if keyed {
            source.key_by(|x: &i64| *x % 3).process(split.clone())
        } else {
            source.process(split.clone())
        };
        // Side outputs consumed at another parallelism, twice, and mapped.
        let odds = main
            .side_output(&odd)
            .map(|x| x * 10)
            .set_parallelism(3)
            .collect();
        let odds_again = main.side_output(&odd).collect();
        let negatives = main.side_output(&negative).collect();
        let evens = main.collect();
        env.execute_blocking("split").unwrap();
        let sorted = |mut v: Vec<i64>| {
            v.sort();
            v
        };
        assert_eq!(sorted(evens.take()), (0..20).step_by(2).collect::<Vec<_>>());
        assert_eq!(
            sorted(odds_again.take()),
            (1..20).step_by(2).collect::<Vec<_>>()
        );
        assert_eq!(
            sorted(odds.take()),
            (1..20).step_by(2).map(|x| x * 10).collect::<Vec<_>>()
        );
        let mut negatives = negatives.take();
        negatives.sort();
        assert_eq!(negatives.len(), 5, "{negatives:?}");
    }
}

#[test]
fn an_unconsumed_side_output_is_dropped_and_the_main_output_chains_on() {
    let env = StreamEnv::with_parallelism(1);
    let split = Split {
        odd: OutputTag::new("odd"),
        negative: OutputTag::new("negative"),
    };
    let evens = env
        .from_collection((-3..6).collect::<Vec<i64>>())
        .process(split)
        .map(|x| x + 1)
        .collect();
    env.execute_blocking("unconsumed").unwrap();
    assert_eq!(evens.take(), vec![1, 3, 5]);
}

/// What [`NumberedFirings`] saw in `clear`: window start, its firing count
/// before and after clearing, and its list of earlier sums after clearing.
type Cleared = (i64, Option<u32>, Option<u32>, Vec<i64>);

/// Numbers each firing of a window and lists the sums of its earlier firings,
/// in per-window state (Flink's `windowState()`); clears both in `clear`.
#[derive(Clone)]
struct NumberedFirings {
    firings: WindowValueStateDescriptor<TimeWindow, u32>,
    sums: WindowListStateDescriptor<TimeWindow, i64>,
    cleared: Arc<Mutex<Vec<Cleared>>>,
}

impl Lifecycle for NumberedFirings {}

impl ProcessWindowFunction<u32, Rec, (u32, i64, i64, u32, Vec<i64>), TimeWindow>
    for NumberedFirings
{
    fn process(
        &mut self,
        key: &u32,
        ctx: &mut WindowContext<u32, TimeWindow>,
        elements: Vec<Rec>,
        out: &mut Collector<(u32, i64, i64, u32, Vec<i64>)>,
    ) -> Result<(), UserError> {
        let start = ctx.window().start;
        let sum = elements.iter().map(|r| r.2).sum();
        let mut firings = ctx.window_state(&self.firings)?;
        let n = firings.value().unwrap_or(0) + 1;
        firings.update(n);
        let mut sums = ctx.window_state(&self.sums)?;
        let earlier = sums.get();
        sums.add(sum);
        out.collect((*key, start, sum, n, earlier));
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<u32, TimeWindow>) -> Result<(), UserError> {
        let start = ctx.window().start;
        let before = ctx.window_state(&self.firings)?.value();
        ctx.window_state(&self.firings)?.clear();
        ctx.window_state(&self.sums)?.clear();
        let after = ctx.window_state(&self.firings)?.value();
        let sums = ctx.window_state(&self.sums)?.get();
        self.cleared
            .lock()
            .unwrap()
            .push((start, before, after, sums));
        Ok(())
    }
}

/// Per-window state through both window engines (a process function over
/// the elements, and one fed by an incremental reduce), on both backends.
fn per_window_state_case(incremental: bool, rocksdb: bool) {
    // [0, 1000) fires at watermark 1500 (sum 12), again for the late 300
    // (sum 13), and is cleaned up at 2999 (lateness 2 s) by watermark 3500;
    // [1000, 2000) and [3000, 4000) fire once, at 1999 and at the end.
    let records = vec![
        (1, 100, 5),
        (1, 500, 7),
        (1, 1_500, 0),
        (1, 300, 1),
        (1, 3_500, 0),
    ];
    let env = StreamEnv::with_parallelism(2);
    let dir = tempfile::tempdir().unwrap();
    if rocksdb {
        #[cfg(feature = "rocksdb")]
        env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([dir.path()]));
    }
    let _ = &dir;
    let cleared = Arc::new(Mutex::new(Vec::new()));
    let function = NumberedFirings {
        firings: WindowValueStateDescriptor::new("firings"),
        sums: WindowListStateDescriptor::new("sums"),
        cleared: cleared.clone(),
    };
    let windowed = timed(&env, records, 0)
        .key_by(|r: &Rec| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .allowed_lateness(Duration::from_secs(2));
    let fired = match incremental {
        true => windowed.reduce_with(|a, b| (a.0, a.1, a.2 + b.2), function),
        false => windowed.process(function),
    }
    .collect();
    env.execute_blocking("per-window state").unwrap();
    let mut fired = fired.take();
    fired.sort();
    let case = format!("incremental: {incremental}, rocksdb: {rocksdb}");
    assert_eq!(
        fired,
        vec![
            (1, 0, 12, 1, vec![]),
            (1, 0, 13, 2, vec![12]),
            (1, 1_000, 0, 1, vec![]),
            (1, 3_000, 0, 1, vec![]),
        ],
        "{case}"
    );
    let mut cleared = cleared.lock().unwrap().clone();
    cleared.sort();
    assert_eq!(
        cleared,
        vec![
            (0, Some(2), None, vec![]),
            (1_000, Some(1), None, vec![]),
            (3_000, Some(1), None, vec![]),
        ],
        "{case}"
    );
}

#[test]
fn per_window_state_numbers_late_firings_and_is_cleared_with_the_window() {
    for incremental in [false, true] {
        per_window_state_case(incremental, false);
        #[cfg(feature = "rocksdb")]
        per_window_state_case(incremental, true);
    }
}

/// Emits `(key, 0, 1)` records, one every 2 ms over two keys, until
/// `fired` counts `until` window results (or 20 s pass): a processing-time
/// job that runs exactly as long as it takes windows to fire.
#[derive(Clone)]
struct UntilFired {
    fired: Arc<AtomicUsize>,
    until: usize,
    emitted: Arc<AtomicUsize>,
    last: Option<Instant>,
    started: Option<Instant>,
}

impl Lifecycle for UntilFired {}

impl Source<Rec> for UntilFired {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<Rec>, _max: usize) -> Result<SourceStatus, UserError> {
        let started = *self.started.get_or_insert_with(Instant::now);
        if self.fired.load(Ordering::SeqCst) >= self.until
            || started.elapsed() > Duration::from_secs(20)
        {
            return Ok(SourceStatus::Finished);
        }
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(2))
        {
            self.last = Some(Instant::now());
            let n = self.emitted.fetch_add(1, Ordering::SeqCst);
            out.push(((n % 2) as u32, 0, 1));
        }
        Ok(SourceStatus::More)
    }
}

/// Processing-time windows in a whole job, on the wall clock: the slice
/// engine (tumbling, sliding) and the session engine (sessions) fire
/// windows aligned to their size, each holding records, none twice, and
/// never more records than were emitted.
#[test]
fn processing_time_windows_fire_on_the_wall_clock() {
    type Out = (u32, i64, i64, u64, i64, i64, i64);
    let cases: Vec<(&str, i64, i64)> = vec![
        ("tumbling", 100, 100),
        ("sliding", 200, 100),
        ("session", 0, 0),
    ];
    for (name, size, slide) in cases {
        let env = StreamEnv::with_parallelism(2);
        let fired = Arc::new(AtomicUsize::new(0));
        let emitted = Arc::new(AtomicUsize::new(0));
        let source = UntilFired {
            fired: fired.clone(),
            until: 6,
            emitted: emitted.clone(),
            last: None,
            started: None,
        };
        let keyed = env.add_source(source).key_by(|r: &Rec| r.0);
        let ms = |n: i64| Duration::from_millis(n as u64);
        let windows: DataStream<Out> = match name {
            "tumbling" => keyed
                .window(TumblingProcessingTimeWindows::of(ms(size)))
                .aggregate_with(Stats, WithWindow),
            "sliding" => keyed
                .window(SlidingProcessingTimeWindows::of(ms(size), ms(slide)))
                .aggregate_with(Stats, WithWindow),
            // A key's records come 4 ms apart: each is a session of its own.
            _ => keyed
                .window(ProcessingTimeSessionWindows::with_gap(ms(1)))
                .aggregate_with(Stats, WithWindow),
        };
        let counter = fired.clone();
        let out = windows
            .map(move |w: Out| {
                counter.fetch_add(1, Ordering::SeqCst);
                w
            })
            .collect();
        env.execute_blocking("processing-time windows").unwrap();
        let out = out.take();
        let emitted = emitted.load(Ordering::SeqCst) as u64;
        assert!(out.len() >= 6, "{name}: {} windows fired", out.len());
        let mut seen = BTreeSet::new();
        for &(key, start, end, count, ..) in &out {
            assert!(
                seen.insert((key, start, end)),
                "{name}: {key} [{start}, {end}) twice"
            );
            assert!(count >= 1, "{name}: an empty window fired");
            if name == "session" {
                assert!(end > start, "{name}: [{start}, {end})");
            } else {
                assert_eq!(end - start, size, "{name}: [{start}, {end})");
                assert_eq!(
                    start.rem_euclid(slide),
                    0,
                    "{name}: [{start}, {end}) not aligned"
                );
            }
        }
        let counted: u64 = out.iter().map(|w| w.3).sum();
        let copies = if name == "sliding" { 2 } else { 1 };
        assert!(
            counted <= copies * emitted,
            "{name}: {counted} counted of {emitted}"
        );
    }
}

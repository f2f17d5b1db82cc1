//! Event-time windows through failures, restores and rescales, as whole jobs.
//!
//! One job: a few thousand generated records `(key, timestamp, value)` over
//! 30 keys, out of order, from one replayable source, with punctuated
//! watermarks (the timestamp minus [`OOO`]) from an assigner of parallelism
//! 1; keyed into four window operators of the job's parallelism, each with
//! allowed lateness and a late-data side output: tumbling windows with an
//! incremental aggregate, sliding windows with a process function over their
//! elements, session windows both ways (merged elements and merged
//! accumulators). Every firing and every late record becomes a line of one
//! exactly-once file sink; the committed lines, as a multiset, must be those
//! of the same job run without failure at parallelism 2:
//! - with failures injected into the window operators (the fault plan of
//!   `weir::testing::Faults`), the job restarting from its checkpoints;
//! - stopped with a savepoint half-way at parallelism 2 and resumed from it
//!   at parallelism 3, also when the rescaled job fails again;
//! - on the heap backend and on RocksDB.
//!
//! The outcome must not depend on timing, so where a job restores from must
//! not either: the source ([`Replay`]) holds at a few fixed positions (its
//! *marks*) until a checkpoint taken there completes, and emits each stretch
//! between marks in one poll, so every checkpoint holds the source at a mark
//! (or at the start), and a failure restores from the last mark before it.
//!
//! A keyed operator's watermark is part of its checkpoint (Flink's is not):
//! a restored job resumes at the watermark it was checkpointed at, so a
//! record that was late before a failure is late after it
//! (`a_record_that_was_late_before_a_restore_is_late_after_it`, where the
//! restore point is behind the largest timestamp).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::inspect::StateReportKind;
use weir::runtime::Permanent;
use weir::sink::TransactionalFileSink;
use weir::source::{Source, SourceStatus};
use weir::state::{AggregateFunction, ListStateDescriptor, StateInitContext, StateSnapshotContext};
use weir::testing::Faults;
use weir::time::WatermarkStrategy;
use weir::window::{
    EventTimeSessionWindows, NoEvictor, ProcessWindowFunction, SlidingEventTimeWindows, TimeWindow,
    TumblingEventTimeWindows, WindowAssigner, WindowContext, WindowedStream, WINDOW_SESSIONS,
    WINDOW_SLICES, WINDOW_STATE,
};
use weir::{
    Collector, DataStream, JobResult, Lifecycle, OutputTag, RestartStrategy, StreamEnv, UserError,
};

/// (key, timestamp in ms, value)
type Rec = (u32, i64, i64);

/// Records of the generated input.
const RECORDS: usize = 4_000;
/// Keys of the generated input.
const KEYS: u32 = 30;
/// How far the watermark trails each record's timestamp, ms.
const OOO: i64 = 100;
/// The allowed lateness of every window operator, ms.
const LATENESS: u64 = 300;
/// Records per batch: at least the longest stretch between two marks, so
/// that the source emits each stretch in one poll.
const BATCH: usize = 1_024;

// ------------------------------------------------------------------ input

/// `n` records over `keys` keys, mostly in order; 30 % are up to 500 ms and
/// 10 % up to 3 s behind (xorshift from `seed`: the same input every run).
fn input(seed: u64, n: usize, keys: u32) -> Vec<Rec> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut below = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let mut time = 0_i64;
    (0..n)
        .map(|_| {
            time += below(40) as i64;
            let back = match below(10) {
                0..=5 => 0,
                6..=8 => below(500) as i64,
                _ => below(3_000) as i64,
            };
            let key = below(u64::from(keys)) as u32;
            let value = below(201) as i64 - 100;
            (key, time - back, value)
        })
        .collect()
}

/// The first position at or after `from` whose record has a larger
/// timestamp than every record before it.
fn new_largest_timestamp_from(records: &[Rec], from: usize) -> usize {
    let mut largest = i64::MIN;
    for (i, r) in records.iter().enumerate() {
        if r.1 > largest && i >= from {
            return i;
        }
        largest = largest.max(r.1);
    }
    panic!("no record after {from} has a new largest timestamp");
}

/// Marks near each of `fractions` of the input (see the module docs).
fn marks(records: &[Rec], fractions: &[f64]) -> Vec<usize> {
    let marks: Vec<usize> = fractions
        .iter()
        .map(|f| new_largest_timestamp_from(records, (records.len() as f64 * f) as usize))
        .collect();
    let mut bounds = vec![0];
    bounds.extend(&marks);
    bounds.push(records.len());
    assert!(
        bounds
            .windows(2)
            .all(|w| w[0] < w[1] && w[1] - w[0] <= BATCH),
        "marks {marks:?} must be increasing, at most {BATCH} apart"
    );
    marks
}

// ------------------------------------------------------------------ source

/// What a test sees of its [`Replay`] source, over all its runs.
#[derive(Debug, Default)]
struct Progress {
    /// The position the source holds at; `usize::MAX` when it does not.
    holding: AtomicUsize,
    /// Each restore's position, in order.
    restored: Mutex<Vec<usize>>,
}

impl Progress {
    fn new() -> Arc<Self> {
        Arc::new(Progress {
            holding: AtomicUsize::new(usize::MAX),
            restored: Mutex::default(),
        })
    }

    fn restored(&self) -> Vec<usize> {
        self.restored.lock().unwrap().clone()
    }
}

/// The records in order, from one subtask, replayable: its position is
/// operator list state (as `from_collection`'s). It holds at each mark until
/// a checkpoint it took there has completed, and at `stop_at` for good (until
/// the test stops the job); between holds it emits everything up to the next
/// one in one poll.
#[derive(Clone)]
struct Replay {
    records: Arc<Vec<Rec>>,
    marks: Arc<Vec<usize>>,
    stop_at: Option<usize>,
    progress: Arc<Progress>,
    position: usize,
    /// The first mark not passed yet.
    next_mark: usize,
    /// The checkpoint taken at the mark the source holds at.
    pending: Option<u64>,
    /// Polls in a row that found the source holding.
    held_polls: u32,
}

impl Replay {
    fn new(records: &[Rec], marks: &[usize], stop_at: Option<usize>) -> Self {
        Replay {
            records: Arc::new(records.to_vec()),
            marks: Arc::new(marks.to_vec()),
            stop_at,
            progress: Progress::new(),
            position: 0,
            next_mark: 0,
            pending: None,
            held_polls: 0,
        }
    }

    fn at_mark(&self) -> bool {
        self.marks.get(self.next_mark) == Some(&self.position)
    }
}

fn position() -> ListStateDescriptor<u64> {
    ListStateDescriptor::new("replay-position")
}

impl Lifecycle for Replay {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        if ctx.is_restored() {
            let restored = ctx.operator_state().list(&position())?.get()?;
            self.position = restored.first().map_or(0, |&p| p as usize);
            // Restored at a mark: its checkpoint completed (it is this one).
            self.next_mark = self.marks.partition_point(|&m| m <= self.position);
            self.progress.restored.lock().unwrap().push(self.position);
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&position())?
            .update(&[self.position as u64])?;
        if self.at_mark() {
            self.pending = Some(ctx.checkpoint_id());
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), UserError> {
        if self.pending == Some(id) {
            self.pending = None;
            self.next_mark += 1;
        }
        Ok(())
    }
}

impl Source<Rec> for Replay {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<Rec>, max: usize) -> Result<SourceStatus, UserError> {
        let hold = self
            .marks
            .get(self.next_mark)
            .copied()
            .into_iter()
            .chain(self.stop_at)
            .min()
            .unwrap_or(usize::MAX);
        if self.position == hold {
            self.progress.holding.store(hold, Ordering::SeqCst);
            self.held_polls += 1;
            // Polls back off to 100 ms: a minute without a checkpoint.
            if self.held_polls > 600 && self.stop_at != Some(hold) {
                return Err(Permanent::from_message(format!(
                    "no checkpoint completed at position {hold} in a minute"
                ))
                .into());
            }
            return Ok(SourceStatus::More);
        }
        self.held_polls = 0;
        self.progress.holding.store(usize::MAX, Ordering::SeqCst);
        let end = hold.min(self.records.len()).min(self.position + max);
        out.extend_from_slice(&self.records[self.position..end]);
        self.position = end;
        Ok(if end == self.records.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::More
        })
    }
}

// ------------------------------------------------------- window functions

/// Count, sum, min and max, incrementally (merged for sessions).
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

/// One line per firing of an aggregate: `kind key start end count sum min max`.
#[derive(Clone)]
struct StatsLine(&'static str);

impl Lifecycle for StatsLine {}

impl ProcessWindowFunction<u32, (u64, i64, i64, i64), String, TimeWindow> for StatsLine {
    fn process(
        &mut self,
        key: &u32,
        ctx: &mut WindowContext<u32, TimeWindow>,
        elements: Vec<(u64, i64, i64, i64)>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        for (n, sum, min, max) in elements {
            out.collect(format!(
                "{} {key} {} {} {n} {sum} {min} {max}",
                self.0, w.start, w.end
            ));
        }
        Ok(())
    }
}

/// One line per firing over all the window's elements: `kind key start end
/// count` and every (timestamp, value), sorted.
#[derive(Clone)]
struct ElementsLine(&'static str);

impl Lifecycle for ElementsLine {}

impl ProcessWindowFunction<u32, Rec, String, TimeWindow> for ElementsLine {
    fn process(
        &mut self,
        key: &u32,
        ctx: &mut WindowContext<u32, TimeWindow>,
        elements: Vec<Rec>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let w = ctx.window();
        let mut seen: Vec<(i64, i64)> = elements.iter().map(|r| (r.1, r.2)).collect();
        seen.sort_unstable();
        let seen: Vec<String> = seen.iter().map(|(t, v)| format!("{t}:{v}")).collect();
        out.collect(format!(
            "{} {key} {} {} {} {}",
            self.0,
            w.start,
            w.end,
            elements.len(),
            seen.join(",")
        ));
        Ok(())
    }
}

// -------------------------------------------------------------------- job

/// Where a job keeps its state.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Heap,
    #[cfg(feature = "rocksdb")]
    RocksDb,
}

/// One run of the job.
struct Job<'a> {
    records: &'a [Rec],
    parallelism: usize,
    backend: Backend,
    /// Checkpoints, savepoints and RocksDB files go under it.
    dir: PathBuf,
    /// The exactly-once sink's directory.
    output: PathBuf,
    marks: Vec<usize>,
    stop_at: Option<usize>,
    faults: Option<Arc<Faults>>,
    resume_from: Option<PathBuf>,
}

impl<'a> Job<'a> {
    /// A run at `parallelism` with checkpoints and savepoints under
    /// `root/name`, its output in `root/output`.
    fn new(records: &'a [Rec], backend: Backend, root: &Path, name: &str) -> Self {
        Job {
            records,
            parallelism: 2,
            backend,
            dir: root.join(name),
            output: root.join("output"),
            marks: Vec::new(),
            stop_at: None,
            faults: None,
            resume_from: None,
        }
    }

    fn env(&self) -> StreamEnv {
        let env = StreamEnv::with_parallelism(self.parallelism);
        env.set_batch_size(BATCH);
        env.enable_checkpointing(Duration::from_millis(5));
        env.set_checkpoint_dir(self.dir.join("checkpoints").to_str().unwrap());
        env.set_savepoint_dir(self.dir.join("savepoints"));
        env.set_restart_strategy(RestartStrategy::FixedDelay {
            attempts: 10,
            delay: Duration::ZERO,
        });
        if let Some(faults) = &self.faults {
            env.set_faults(faults.clone());
        }
        if let Some(from) = &self.resume_from {
            env.resume_from(&from.display().to_string());
        }
        match self.backend {
            Backend::Heap => {
                env.set_state_backend(weir::state::HeapStateBackend);
            }
            #[cfg(feature = "rocksdb")]
            Backend::RocksDb => {
                let local = self.dir.join("rocksdb");
                std::fs::create_dir_all(&local).unwrap();
                env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([local]));
            }
        }
        env
    }

    /// Declares the job on `env`; returns what its source shows.
    fn declare(&self, env: &StreamEnv) -> Arc<Progress> {
        let source = Replay::new(self.records, &self.marks, self.stop_at);
        let progress = source.progress.clone();
        let timed = env
            .add_source(source)
            .name("records")
            .uid("records")
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::punctuated(|_: &Rec, ts| Some(ts - OOO))
                    .with_timestamp_assigner(|r: &Rec| r.1),
            )
            .uid("timestamps")
            .set_parallelism(1);
        let ms = Duration::from_millis;
        let tags = ["tumbling", "sliding", "sessions", "session-stats"].map(OutputTag::<Rec>::new);
        let tumbling = windowed(&timed, TumblingEventTimeWindows::of(ms(500)), &tags[0])
            .aggregate_with(Stats, StatsLine("tumbling"));
        let sliding = windowed(
            &timed,
            SlidingEventTimeWindows::of(ms(1_000), ms(300)),
            &tags[1],
        )
        .process(ElementsLine("sliding"));
        let sessions = windowed(&timed, EventTimeSessionWindows::with_gap(ms(250)), &tags[2])
            .process(ElementsLine("sessions"));
        let session_stats = windowed(&timed, EventTimeSessionWindows::with_gap(ms(250)), &tags[3])
            .aggregate_with(Stats, StatsLine("session-stats"));
        let mut lines: Option<DataStream<String>> = None;
        for (tag, fired) in tags
            .iter()
            .zip([tumbling, sliding, sessions, session_stats])
        {
            let kind = tag.id().to_string();
            let fired = fired.name(&kind).uid(&kind);
            let late = fired
                .side_output(tag)
                .map(move |(key, t, v): Rec| format!("late-{kind} {key} {t} {v}"))
                .uid(&format!("late-{}", tag.id()));
            let both = fired.union(late);
            lines = Some(match lines {
                Some(lines) => lines.union(both),
                None => both,
            });
        }
        lines
            .unwrap()
            .write_text_files_exactly_once(&self.output)
            .uid("output");
        progress
    }

    /// Runs the job to its end.
    fn run(&self) -> (JobResult, Arc<Progress>) {
        let env = self.env();
        let progress = self.declare(&env);
        let result = env.execute_blocking("windows").unwrap_or_else(|e| {
            let plan = self
                .faults
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default();
            panic!("{e}\nfault plan:\n{plan}")
        });
        (result, progress)
    }

    /// Runs the job until its source holds at `stop_at`, then stops it with
    /// a savepoint; returns the savepoint's path.
    fn stop_with_savepoint(&self) -> (PathBuf, Arc<Progress>) {
        let stop_at = self.stop_at.expect("a position to stop at");
        let env = self.env();
        let progress = self.declare(&env);
        let path = futures::executor::block_on(async {
            let mut client = env.start("windows").await.unwrap();
            // Wait (not for a time: for a fact) until the source holds there.
            let deadline = Instant::now() + Duration::from_secs(60);
            while progress.holding.load(Ordering::SeqCst) != stop_at {
                assert!(Instant::now() < deadline, "not at {stop_at} after 60 s");
                assert!(
                    !client.status().is_terminal(),
                    "the job ended before it was stopped"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            let path = client.stop_with_savepoint(None).await.unwrap();
            client.wait().await.unwrap();
            path
        });
        (path, progress)
    }
}

/// `timed` keyed by key into windows of `assigner`, with the allowed
/// lateness and late records to `late`.
fn windowed<A: WindowAssigner<Rec, W = TimeWindow>>(
    timed: &DataStream<Rec>,
    assigner: A,
    late: &OutputTag<Rec>,
) -> WindowedStream<Rec, u32, A, A::DefaultTrigger, NoEvictor> {
    timed
        .clone()
        .key_by(|r: &Rec| r.0)
        .window(assigner)
        .allowed_lateness(Duration::from_millis(LATENESS))
        .side_output_late_data(late)
}

// ----------------------------------------------------------------- checks

/// The committed lines in `dir`, sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for file in TransactionalFileSink::committed_files(dir).unwrap() {
        let text = std::fs::read_to_string(&file).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines.sort();
    lines
}

/// Fails naming the lines that `got` lacks and has too many of.
fn assert_same_lines(got: &[String], expected: &[String], what: &str) {
    if got == expected {
        return;
    }
    let mut balance: BTreeMap<&str, i64> = BTreeMap::new();
    for line in expected {
        *balance.entry(line).or_default() += 1;
    }
    for line in got {
        *balance.entry(line).or_default() -= 1;
    }
    let missing: Vec<_> = balance.iter().filter(|(_, n)| **n > 0).collect();
    let extra: Vec<_> = balance.iter().filter(|(_, n)| **n < 0).collect();
    panic!(
        "{what}: {} lines, {} expected; {} missing (line, times), first: {:#?}\n{} too many (line, -times), first: {:#?}",
        got.len(),
        expected.len(),
        missing.len(),
        &missing[..missing.len().min(12)],
        extra.len(),
        &extra[..extra.len().min(12)]
    );
}

/// The failure-free run at parallelism 2, whose output every test expects;
/// checks that it has what the tests are about: firings of every kind, late
/// firings (a window firing again) and late records of every kind.
fn expected_output(records: &[Rec], backend: Backend, root: &Path) -> Vec<String> {
    let mut job = Job::new(records, backend, root, "reference");
    job.output = root.join("reference-output");
    let (result, _) = job.run();
    assert_eq!(result.restarts, 0);
    let lines = committed(&job.output);
    for kind in ["tumbling", "sliding", "sessions", "session-stats"] {
        let fired: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("{kind} ")))
            .collect();
        let mut windows: BTreeMap<Vec<&str>, usize> = BTreeMap::new();
        for line in &fired {
            *windows
                .entry(line.split(' ').take(4).collect())
                .or_default() += 1;
        }
        let refired = windows.values().filter(|&&n| n > 1).count();
        let late = lines
            .iter()
            .filter(|l| l.starts_with(&format!("late-{kind} ")))
            .count();
        assert!(
            fired.len() > 100 && refired > 0 && late > 0,
            "{kind}: {} firings, {refired} windows fired again, {late} late records",
            fired.len()
        );
    }
    lines
}

/// Window state and timers of every window operator (general operator,
/// slice or session engine) are in `snapshot`.
fn assert_window_state_in(snapshot: &Path) {
    let report = weir::inspect::inspect(snapshot).unwrap();
    for uid in ["tumbling", "sliding", "sessions", "session-stats"] {
        let operator = report.operators.iter().find(|o| o.uid == uid).unwrap();
        let entries = |found: &dyn Fn(&weir::inspect::StateReport) -> bool| {
            operator
                .states
                .iter()
                .filter(|s| found(s))
                .filter_map(|s| s.entries)
                .sum::<u64>()
        };
        assert!(
            entries(&|s| [WINDOW_STATE, WINDOW_SLICES, WINDOW_SESSIONS].contains(&s.name.as_str()))
                > 0
                && entries(&|s| s.kind == StateReportKind::Timers) > 0,
            "{uid}: {operator:#?}"
        );
    }
}

// ------------------------------------------------------------------ tests

/// Three failures, in three window operators, restore from three marks.
fn failures_restore_windows_exactly(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let records = input(7, RECORDS, KEYS);
    let expected = expected_output(&records, backend, root.path());

    let faults = Arc::new(Faults::new());
    faults
        .fail_at_record("tumbling", 700, Some(0))
        .fail_at_record("sessions", 1_500, Some(1))
        .fail_at_record("sliding", 2_300, None);
    let mut job = Job::new(&records, backend, root.path(), "failures");
    job.marks = marks(&records, &[0.2, 0.4, 0.6, 0.8]);
    job.faults = Some(faults.clone());
    let (result, progress) = job.run();

    let fired = faults.fired();
    assert_eq!(fired.len(), 3, "{fired:?}");
    assert_eq!(result.restarts, 3, "{fired:?}");
    // Every restore was from a checkpoint at a mark: with window state.
    let restored = progress.restored();
    assert!(
        restored.len() == 3 && restored.iter().all(|p| job.marks.contains(p)),
        "restored at {restored:?}, marks {:?}",
        job.marks
    );
    assert_same_lines(
        &committed(&job.output),
        &expected,
        &format!("{backend:?}, through failures {fired:?}, restored at {restored:?}"),
    );
}

/// Stopped with a savepoint at parallelism 2 half-way, resumed at
/// parallelism 3 (where the window operators fail `faults` if given).
fn rescale_through_a_savepoint(backend: Backend, faults: Option<Arc<Faults>>) {
    let root = tempfile::tempdir().unwrap();
    let records = input(11, RECORDS, KEYS);
    let expected = expected_output(&records, backend, root.path());
    let marks = marks(&records, &[0.25, 0.5, 0.75]);

    let mut first = Job::new(&records, backend, root.path(), "first");
    first.marks = marks[..1].to_vec();
    first.stop_at = Some(marks[1]);
    let (savepoint, progress) = first.stop_with_savepoint();
    assert!(progress.restored().is_empty());
    assert_window_state_in(&savepoint);
    let part = committed(&first.output);
    assert!(
        !part.is_empty() && part.len() < expected.len(),
        "the first run committed {} of {} lines",
        part.len(),
        expected.len()
    );

    let mut second = Job::new(&records, backend, root.path(), "second");
    second.parallelism = 3;
    second.marks = marks[2..].to_vec();
    second.resume_from = Some(savepoint);
    second.faults = faults.clone();
    let (result, progress) = second.run();
    let restored = progress.restored();
    let fired = faults.as_ref().map(|f| f.fired()).unwrap_or_default();
    let planned = faults.as_ref().map_or(0, |f| f.to_string().lines().count());
    assert_eq!(fired.len(), planned, "{fired:?}");
    assert_eq!(result.restarts as usize, fired.len(), "{fired:?}");
    assert_eq!(
        restored.len(),
        1 + fired.len(),
        "restored at {restored:?}, {fired:?}"
    );
    assert!(
        restored.iter().all(|p| marks.contains(p)),
        "restored at {restored:?}, marks {marks:?}"
    );
    assert_same_lines(
        &committed(&first.output),
        &expected,
        &format!("{backend:?}, parallelism 2 -> 3, restored at {restored:?}, {fired:?}"),
    );
}

/// Failures in the window operators of the rescaled job: one before its
/// first checkpoint (restored from the savepoint's position again), one
/// after the mark at three quarters of the input.
fn faults_after_rescale() -> Arc<Faults> {
    let faults = Arc::new(Faults::new());
    faults
        .fail_at_record("sessions", 900, Some(2))
        .fail_at_record("tumbling", 150, Some(0));
    faults
}

#[test]
fn windows_restore_from_failures_exactly_on_the_heap() {
    failures_restore_windows_exactly(Backend::Heap);
}

#[test]
fn windows_rescale_from_2_to_3_through_a_savepoint_on_the_heap() {
    rescale_through_a_savepoint(Backend::Heap, None);
}

#[test]
fn rescaled_windows_restore_from_failures_exactly_on_the_heap() {
    rescale_through_a_savepoint(Backend::Heap, Some(faults_after_rescale()));
}

#[cfg(feature = "rocksdb")]
#[test]
fn windows_restore_from_failures_exactly_on_rocksdb() {
    failures_restore_windows_exactly(Backend::RocksDb);
}

#[cfg(feature = "rocksdb")]
#[test]
fn windows_rescale_from_2_to_3_through_a_savepoint_on_rocksdb() {
    rescale_through_a_savepoint(Backend::RocksDb, None);
}

#[cfg(feature = "rocksdb")]
#[test]
fn rescaled_windows_restore_from_failures_exactly_on_rocksdb() {
    rescale_through_a_savepoint(Backend::RocksDb, Some(faults_after_rescale()));
}

/// A record late in the failure-free run, the first after a restore, is late
/// in the restored job too: the window operator's watermark is in the
/// checkpoint, so the record goes to the late side output instead of making
/// a window that was already fired and removed fire again.
///
/// Input (key 1): 0, 5 000, then (the mark: a checkpoint) 100, 6 000. The
/// watermark after 5 000 is 4 900: the windows of 0 were fired and removed
/// (tumbling [0, 500) cleaned up at 799), so 100 is late. A failure at the
/// batch holding 100 restores from the mark.
fn a_record_late_before_a_restore_is_late_after_it(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let records: Vec<Rec> = vec![(1, 0, 1), (1, 5_000, 2), (1, 100, 3), (1, 6_000, 4)];
    let mut reference = Job::new(&records, Backend::Heap, root.path(), "reference");
    reference.output = root.path().join("reference-output");
    reference.run();
    let expected = committed(&reference.output);
    assert!(expected.contains(&"late-tumbling 1 100 3".to_string()));

    let faults = Arc::new(Faults::new());
    faults.fail_at_record("tumbling", 3, None);
    let mut job = Job::new(&records, backend, root.path(), "failure");
    job.marks = vec![2];
    job.faults = Some(faults.clone());
    let (result, progress) = job.run();
    assert_eq!(result.restarts, 1, "{:?}", faults.fired());
    assert_eq!(progress.restored(), vec![2]);
    assert_same_lines(
        &committed(&job.output),
        &expected,
        "restored at the late record",
    );
}

#[test]
fn a_record_that_was_late_before_a_restore_is_late_after_it() {
    a_record_late_before_a_restore_is_late_after_it(Backend::Heap);
}

#[cfg(feature = "rocksdb")]
#[test]
fn a_record_that_was_late_before_a_restore_is_late_after_it_on_rocksdb() {
    a_record_late_before_a_restore_is_late_after_it(Backend::RocksDb);
}

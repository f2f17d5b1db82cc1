//! What the checkpoint tests share: records ([`Rec`], [`ids`], [`sorted`],
//! [`concat`]), sources that emit fixed phases ([`Feed`]) or tick
//! ([`Ticker`]), operators ([`Tally`], [`Valve`], [`Pair`]), a sink that logs
//! what it saw and can decline or slow down checkpoints ([`Recorder`]), and
//! the job plumbing ([`in_system`], [`until`], [`manual`], [`env_with`],
//! [`three_checkpoints`], ...).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::runtime::checkpoint::layout::METADATA_FILE;
use weir::runtime::checkpoint::FsStorage;
use weir::sink::Sink;
use weir::source::{Source, SourceStatus};
use weir::state::{ListStateDescriptor, MapStateDescriptor, StateSnapshotContext};
use weir::{
    CheckpointConfig, CheckpointFailure, CheckpointStats, Collector, JobError, JobResult,
    KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedContext, KeyedProcessFunction,
    Lifecycle, OneInputOperator, RecordBatch, RestartStrategy, RuntimeContext, StreamEnv,
    UserError,
};

// ------------------------------------------------------------------ records

/// A record: (key, id). Ids are unique within a job.
pub(crate) type Rec = (u32, u64);
/// What [`Tally`] emits: (key, ids) — one id per record, all of them for a probe.
pub(crate) type Tallied = (u32, Vec<u64>);

pub(crate) const KEYS: u32 = 5;
/// The id of a probe record: [`Tally`] answers it with the key's ids.
pub(crate) const PROBE: u64 = u64::MAX;

pub(crate) fn rec(id: u64) -> Rec {
    ((id % u64::from(KEYS)) as u32, id)
}

pub(crate) fn ids(range: Range<u64>) -> Vec<u64> {
    range.collect()
}

pub(crate) fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

pub(crate) fn concat(parts: &[&[u64]]) -> Vec<u64> {
    sorted(parts.iter().flat_map(|p| p.iter().copied()).collect())
}

// ------------------------------------------------------------------ sources

/// A source that emits fixed phases of records (per subtask): phase 0 at
/// once, phase `i` once it has snapshotted `i` times and the gate is at `i`
/// or more. Its raw operator state is the number of records it emitted.
#[derive(Clone)]
pub(crate) struct Feed {
    /// Per subtask, per phase, the ids it emits.
    plan: Arc<Vec<Vec<Vec<u64>>>>,
    gate: Arc<AtomicUsize>,
    /// Per subtask: phases fully emitted.
    done: Arc<Mutex<BTreeMap<usize, usize>>>,
    /// Set at the first snapshot.
    pub(crate) on_snapshot: Option<Arc<AtomicBool>>,
    /// Set once more than this many records were emitted.
    pub(crate) on_emitted: Option<(u64, Arc<AtomicBool>)>,
    /// The checkpoints it was told completed (all subtasks).
    pub(crate) completed: Arc<Mutex<Vec<u64>>>,
    subtask: usize,
    phase: usize,
    offset: usize,
    emitted: u64,
    snapshots: usize,
}

impl Feed {
    /// A source of parallelism `plan.len()`.
    pub(crate) fn new(plan: Vec<Vec<Vec<u64>>>) -> Self {
        Feed {
            plan: Arc::new(plan),
            gate: Arc::default(),
            done: Arc::default(),
            on_snapshot: None,
            on_emitted: None,
            completed: Arc::default(),
            subtask: 0,
            phase: 0,
            offset: 0,
            emitted: 0,
            snapshots: 0,
        }
    }

    /// Phase `i` goes out right after the source's `i`-th snapshot, i.e.
    /// right behind the barrier, without waiting for the test.
    pub(crate) fn released_by_snapshots(self) -> Self {
        self.gate.store(usize::MAX, Ordering::SeqCst);
        self
    }

    pub(crate) fn open_gate(&self, phase: usize) {
        self.gate.store(phase, Ordering::SeqCst);
    }

    pub(crate) fn phases_done(&self, subtask: usize) -> usize {
        self.done
            .lock()
            .unwrap()
            .get(&subtask)
            .copied()
            .unwrap_or(0)
    }
}

impl Lifecycle for Feed {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.write_raw_state(self.emitted.to_string().into_bytes());
        self.snapshots += 1;
        if let Some(flag) = &self.on_snapshot {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.completed.lock().unwrap().push(checkpoint_id);
        Ok(())
    }
}

impl Source<Rec> for Feed {
    fn poll_next(&mut self, out: &mut Vec<Rec>, max: usize) -> Result<SourceStatus, UserError> {
        let plan = &self.plan[self.subtask];
        while out.len() < max && self.phase < plan.len() {
            let released =
                self.gate.load(Ordering::SeqCst) >= self.phase && self.snapshots >= self.phase;
            if self.phase > 0 && self.offset == 0 && !released {
                break;
            }
            let phase = &plan[self.phase];
            while self.offset < phase.len() && out.len() < max {
                out.push(rec(phase[self.offset]));
                self.offset += 1;
                self.emitted += 1;
            }
            if self.offset == phase.len() {
                self.phase += 1;
                self.offset = 0;
                self.done.lock().unwrap().insert(self.subtask, self.phase);
            }
        }
        if let Some((n, flag)) = &self.on_emitted {
            if self.emitted > *n {
                flag.store(true, Ordering::SeqCst);
            }
        }
        Ok(if self.phase >= plan.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::More
        })
    }
}

/// The id of record `n` of subtask `subtask` of a [`Ticker`].
pub(crate) fn ticker_id(subtask: usize, n: u64) -> u64 {
    subtask as u64 * 1_000_000 + n
}

/// A throttled source (two records every other poll) that records, per
/// subtask, the checkpoint completions it is told of; endless, or finished
/// once it was told of `finish_after` of them. Its raw operator state is the
/// number of records it emitted.
#[derive(Clone, Default)]
pub(crate) struct Ticker {
    pub(crate) notified: Arc<Mutex<BTreeMap<usize, Vec<u64>>>>,
    pub(crate) finish_after: Option<usize>,
    pub(crate) subtask: usize,
    pub(crate) next: u64,
    pub(crate) idle: bool,
}

impl Ticker {
    /// Completions told to subtask 0.
    pub(crate) fn completions(&self) -> usize {
        self.notified.lock().unwrap().get(&0).map_or(0, Vec::len)
    }
}

impl Lifecycle for Ticker {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.write_raw_state(self.next.to_string().into_bytes());
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.notified
            .lock()
            .unwrap()
            .entry(self.subtask)
            .or_default()
            .push(checkpoint_id);
        Ok(())
    }
}

impl Source<Rec> for Ticker {
    fn poll_next(&mut self, out: &mut Vec<Rec>, max: usize) -> Result<SourceStatus, UserError> {
        let told = self
            .notified
            .lock()
            .unwrap()
            .get(&self.subtask)
            .map_or(0, Vec::len);
        if self.finish_after.is_some_and(|n| told >= n) {
            return Ok(SourceStatus::Finished);
        }
        self.idle = !self.idle;
        // A bound on the data, whatever the checkpoints do.
        if self.idle || self.next >= 20_000 {
            return Ok(SourceStatus::More);
        }
        for _ in 0..max.min(2) {
            out.push(rec(ticker_id(self.subtask, self.next)));
            self.next += 1;
        }
        Ok(SourceStatus::More)
    }
}

// ---------------------------------------------------------------- operators

/// Keeps, per key, the ids of its records (keyed list state "ids"); echoes
/// each record as `(key, [id])` and answers a probe with `(key, all ids)`.
#[derive(Clone)]
pub(crate) struct Tally {
    ids: ListStateDescriptor<u64>,
    /// Set when a record with an id in this range is processed.
    pub(crate) on_id: Option<(Range<u64>, Arc<AtomicBool>)>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            ids: ListStateDescriptor::new("ids"),
            on_id: None,
        }
    }
}

impl Lifecycle for Tally {}

impl KeyedProcessFunction<u32, Rec, Tallied> for Tally {
    fn process_element(
        &mut self,
        (key, id): Rec,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Tallied>,
    ) -> Result<(), UserError> {
        let mut ids = ctx.state(&self.ids)?;
        if id == PROBE {
            out.collect((key, ids.get()));
            return Ok(());
        }
        ids.add(id);
        if let Some((range, flag)) = &self.on_id {
            if range.contains(&id) {
                flag.store(true, Ordering::SeqCst);
            }
        }
        out.collect((key, vec![id]));
        Ok(())
    }
}

/// Passes records through; subtask 1 holds its first batch (blocking its
/// thread) until `open` is set, so that the records and the barrier behind it
/// queue up in its channel.
#[derive(Clone)]
pub(crate) struct Valve {
    pub(crate) open: Arc<AtomicBool>,
    pub(crate) subtask: usize,
}

impl Lifecycle for Valve {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }
}

impl OneInputOperator<Rec, Rec> for Valve {
    fn process_batch(
        &mut self,
        batch: RecordBatch<Rec>,
        out: &mut Collector<Rec>,
    ) -> Result<(), UserError> {
        if self.subtask == 1 {
            // A safety net: a broken test fails its assertions instead of hanging.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !self.open.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        out.extend(batch.records);
        Ok(())
    }
}

/// A keyed/broadcast two-input function that remembers the ids it saw on
/// each side and writes them as raw state: `main ids|broadcast ids`.
#[derive(Clone)]
pub(crate) struct Pair {
    pub(crate) labels: MapStateDescriptor<u64, u64>,
    pub(crate) main: Vec<u64>,
    pub(crate) side: Vec<u64>,
}

pub(crate) fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn split(text: &str) -> Vec<u64> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

impl Lifecycle for Pair {
    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let raw = format!("{}|{}", join(&self.main), join(&self.side));
        ctx.write_raw_state(raw.into_bytes());
        Ok(())
    }
}

impl KeyedBroadcastProcessFunction<u32, Rec, Rec, Tallied> for Pair {
    fn process_element(
        &mut self,
        (key, id): Rec,
        _ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Tallied>,
    ) -> Result<(), UserError> {
        self.main.push(id);
        out.collect((key, vec![id]));
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (_, id): Rec,
        ctx: &mut KeyedBroadcastContext<u32>,
        _out: &mut Collector<Tallied>,
    ) -> Result<(), UserError> {
        self.side.push(id);
        ctx.broadcast_state(&self.labels)?.put(id, id);
        Ok(())
    }
}

// -------------------------------------------------------------------- sinks

/// What a [`Recorder`] subtask saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Record(u64),
    Snapshot(u64),
    Complete(u64),
    Aborted(u64),
    Finish,
}

/// A sink that logs, per subtask, its records and checkpoint calls; it
/// declines (fails `snapshot_state` of) the checkpoints listed in `decline`,
/// once each, and sleeps in `write_batch` for its first `slow` batches.
#[derive(Clone, Default)]
pub(crate) struct Recorder {
    log: Arc<Mutex<BTreeMap<usize, Vec<Event>>>>,
    decline: Arc<Mutex<BTreeSet<u64>>>,
    slow: Arc<AtomicUsize>,
    slow_by: Duration,
    /// Checkpoints whose snapshot takes this long (the sink's thread sleeps).
    pub(crate) slow_snapshots: Arc<Mutex<BTreeMap<u64, Duration>>>,
    subtask: usize,
}

impl Recorder {
    pub(crate) fn declining(ids: &[u64]) -> Self {
        let recorder = Recorder::default();
        recorder.decline.lock().unwrap().extend(ids);
        recorder
    }

    pub(crate) fn slow(batches: usize, by: Duration) -> Self {
        let recorder = Recorder {
            slow_by: by,
            ..Recorder::default()
        };
        recorder.slow.store(batches, Ordering::SeqCst);
        recorder
    }

    fn push(&self, event: Event) {
        self.log
            .lock()
            .unwrap()
            .entry(self.subtask)
            .or_default()
            .push(event);
    }

    pub(crate) fn events(&self) -> BTreeMap<usize, Vec<Event>> {
        self.log.lock().unwrap().clone()
    }

    /// Every record, over all subtasks, sorted.
    pub(crate) fn records(&self) -> Vec<u64> {
        sorted(
            self.events()
                .values()
                .flatten()
                .filter_map(|e| match e {
                    Event::Record(id) => Some(*id),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Per subtask, the checkpoints it was told completed, in order.
    pub(crate) fn completed(&self) -> BTreeMap<usize, Vec<u64>> {
        self.filter(|e| match e {
            Event::Complete(id) => Some(*id),
            _ => None,
        })
    }

    /// Per subtask, the checkpoints it was told were aborted, in order.
    pub(crate) fn aborted(&self) -> BTreeMap<usize, Vec<u64>> {
        self.filter(|e| match e {
            Event::Aborted(id) => Some(*id),
            _ => None,
        })
    }

    fn filter(&self, f: impl Fn(&Event) -> Option<u64>) -> BTreeMap<usize, Vec<u64>> {
        self.events()
            .into_iter()
            .map(|(s, events)| (s, events.iter().filter_map(&f).collect()))
            .collect()
    }

    fn write_ids(&mut self, ids: impl IntoIterator<Item = u64>) {
        if self
            .slow
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            std::thread::sleep(self.slow_by);
        }
        for id in ids {
            self.push(Event::Record(id));
        }
    }

    fn snapshot(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let id = ctx.checkpoint_id();
        self.push(Event::Snapshot(id));
        let delay = self.slow_snapshots.lock().unwrap().get(&id).copied();
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        if self.decline.lock().unwrap().remove(&id) {
            return Err(format!("boom: the recorder refuses checkpoint {id}").into());
        }
        Ok(())
    }
}

impl Lifecycle for Recorder {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.snapshot(ctx)
    }

    fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), UserError> {
        self.push(Event::Complete(id));
        Ok(())
    }

    fn notify_checkpoint_aborted(&mut self, id: u64) -> Result<(), UserError> {
        self.push(Event::Aborted(id));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.push(Event::Finish);
        Ok(())
    }
}

impl Sink<Tallied> for Recorder {
    fn write(&mut self, (_, ids): Tallied) -> Result<(), UserError> {
        self.write_ids(ids);
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<Tallied>) -> Result<(), UserError> {
        self.write_ids(batch.into_iter().flat_map(|(_, ids)| ids));
        Ok(())
    }
}

impl Sink<Rec> for Recorder {
    fn write(&mut self, (_, id): Rec) -> Result<(), UserError> {
        self.write_ids([id]);
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<Rec>) -> Result<(), UserError> {
        self.write_ids(batch.into_iter().map(|(_, id)| id));
        Ok(())
    }
}

// ------------------------------------------------------------ job plumbing

/// Runs `f` in a fresh actix System on this thread (the job's supervisor and
/// checkpoint coordinator run on it too).
pub(crate) fn in_system<F: Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// Lets the System run until `done()` holds. The deadline only turns a
/// broken test into a failure instead of a hang; nothing depends on it.
pub(crate) async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Manual checkpoints only, every checkpoint kept, a timeout that only a
/// broken engine reaches.
pub(crate) fn manual(config: CheckpointConfig) -> CheckpointConfig {
    CheckpointConfig {
        interval: None,
        retained: 100,
        timeout: Duration::from_secs(20),
        ..config
    }
}

/// An environment with small batches, checkpoints written under `dir`.
pub(crate) fn env_with(parallelism: usize, dir: &Path, config: CheckpointConfig) -> StreamEnv {
    let env = StreamEnv::with_parallelism(parallelism);
    // Checkpoint failures must fail these jobs (with checkpointing on, the
    // default would restart them).
    env.set_restart_strategy(RestartStrategy::NoRestart);
    env.set_batch_size(4)
        .set_linger(Duration::from_millis(1))
        .set_arbiters(3)
        .set_checkpoint_config(config)
        .set_checkpoint_dir(dir.to_str().unwrap());
    env
}

pub(crate) fn storage_of(dir: &Path, job_id: &str) -> FsStorage {
    FsStorage::of_job_dir(&dir.join(job_id))
}

pub(crate) fn completed_ids(stats: &[CheckpointStats]) -> Vec<u64> {
    stats
        .iter()
        .filter(|s| s.failure.is_none())
        .map(|s| s.id)
        .collect()
}

pub(crate) fn failures(stats: &[CheckpointStats]) -> Vec<(u64, CheckpointFailure)> {
    stats
        .iter()
        .filter_map(|s| s.failure.clone().map(|f| (s.id, f)))
        .collect()
}

/// The checkpoint failure of a job that failed its checkpointing (or of a
/// checkpoint asked for that was not taken), and the error's message.
pub(crate) fn checkpoint_failure(error: JobError) -> (CheckpointFailure, String) {
    let message = error.to_string();
    match error {
        JobError::CheckpointingFailed { failure, .. }
        | JobError::CheckpointNotTaken { failure, .. } => (failure, message),
        other => panic!("expected a checkpoint failure, got {other:?}"),
    }
}

/// The `chk-<n>` directories of a job directory, with whether each has `_metadata`.
pub(crate) fn checkpoint_dirs(job_dir: &Path) -> BTreeMap<u64, bool> {
    let Ok(entries) = std::fs::read_dir(job_dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix("chk-")?.parse().ok()?;
            Some((id, e.path().join(METADATA_FILE).is_file()))
        })
        .collect()
}

/// A job that completes checkpoints 1 and 2 (manual) and 3 (final).
pub(crate) fn three_checkpoints(dir: &Path, retained: usize) -> JobResult {
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20), ids(20..30)]]);
    let config = CheckpointConfig {
        retained,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(2, dir, config);
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(Recorder::default())
        .uid("sink");
    in_system(async {
        let mut client = env.start("three").await.unwrap();
        for phase in 0..2 {
            until("a phase out", || feed.phases_done(0) > phase).await;
            client.trigger_checkpoint().await.unwrap();
            feed.open_gate(phase + 1);
        }
        client.wait().await.unwrap()
    })
}

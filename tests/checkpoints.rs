//! Checkpoints end to end: what a checkpoint holds, when it completes or
//! fails, what it leaves on disk, and the format it is written in.
//!
//! Every test is deterministic: no assertion depends on timing. Barrier
//! placement is controlled by sources that emit fixed *phases* of records
//! ([`Feed`]): phase 0 at once, phase `i` only after the source snapshotted
//! `i` times *and* the test opened the gate to `i`. A checkpoint triggered
//! with `JobClient::trigger_checkpoint` once a phase is out therefore sees
//! exactly the records of the phases before it. Each source also writes the
//! number of records it emitted before its barrier as raw operator state, so
//! any checkpoint (also a periodic one, whose barrier position is not known
//! in advance) says which records must be in it.
//!
//! State is read back from the files with `FsStorage`, decoded with
//! `SubtaskState::decode`, and keyed state is inspected by restoring the
//! keyed operator's snapshot into an [`OperatorHarness`] and *probing* each
//! key ([`Tally`] answers a probe record with the ids it holds for the key).
//! In-flight records of unaligned checkpoints (channel state, rmp-serde
//! encoded `RecordBatch`es) are decoded by the engine's own operator-state
//! decoder ([`decode_batches`]), since integration tests cannot use rmp-serde.
//!
//! What is checked:
//! - **content**: aligned (default): a checkpoint holds every record before
//!   its barrier and none after, also when the barrier of one input is held up
//!   behind a slow channel (the other input's later records are blocked);
//!   unaligned: every record before the barrier is exactly once in operator
//!   state or in channel state (input or output side), none after, and records
//!   a barrier overtook are really captured; at-least-once: every record
//!   before the barrier is reflected, and records after an early barrier may
//!   be too (shown deterministically). Topologies: one source into a keyed
//!   operator of parallelism 3, a union of two sources, a keyed/broadcast
//!   two-input operator, and a source feeding a keyed operator through two
//!   channels per subtask with periodic, concurrent checkpoints
//!   (max_concurrent 3), where every completed checkpoint is checked against
//!   the source's position. A checkpoint overtaken by a newer barrier is
//!   aborted as subsumed, not counted as a failure.
//! - **final checkpoint**: a bounded job ends with a checkpoint taken after
//!   all input ended, holding everything; sinks get `notify_checkpoint_complete`
//!   for it after `finish`, and it is the last completed checkpoint — also
//!   when a source ends before the others, when a checkpoint reaches a source
//!   while it drains, and with periodic checkpoints racing the sources' end.
//! - **failures**: a declined checkpoint is aborted (stats `failure`, sinks get
//!   `notify_checkpoint_aborted`), later ones complete when tolerated, and the
//!   job fails with `CheckpointingFailed` naming the cause when not; expired
//!   checkpoints (a slow sink) count as failures; an unwritable directory and
//!   the in-memory size limit fail checkpoints with errors naming the path, or
//!   the size and the limit.
//! - **storage**: a corrupted state file is reported with a checksum error
//!   naming it; a checkpoint without `_metadata` is not listed and not found;
//!   `retained` keeps the newest checkpoints; cancellation deletes or keeps
//!   them per `ExternalizedRetention`.
//! - **statistics**: ids increase, sizes are positive, every subtask reports,
//!   and the unaligned flag follows the configuration.
//! - **format**: insta snapshots of a hand-made `CheckpointMetadata` (debug
//!   form and the bytes of `_metadata`) and of a state file.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::keys::{key_group, KeyGroupRange};
use weir::runtime::checkpoint::format::{self, FileKind};
use weir::runtime::checkpoint::layout::METADATA_FILE;
use weir::runtime::checkpoint::metadata::{
    ChannelState, OperatorMetadata, SubtaskStateMetadata, METADATA_VERSION,
};
use weir::runtime::checkpoint::storage::{decode_metadata, encode_metadata};
use weir::runtime::checkpoint::{
    CheckpointMetadata, CheckpointStorage, FsStorage, StateHandle, StorageError, SubtaskState,
};
use weir::runtime::snapshot::{ListStateSnapshot, OperatorSnapshot, Redistribution};
use weir::sink::Sink;
use weir::source::{Source, SourceStatus};
use weir::state::{
    ListStateDescriptor, MapStateDescriptor, StateInitContext, StateSnapshotContext,
};
use weir::testing::OperatorHarness;
use weir::{
    CheckpointConfig, CheckpointMode, CheckpointStats, Collector, ExternalizedRetention, JobClient,
    JobError, JobResult, KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedContext,
    KeyedProcessFunction, Lifecycle, OneInputOperator, RecordBatch, RestartStrategy,
    RuntimeContext, StorageSpec, StreamEnv, UserError,
};

// ------------------------------------------------------------------ records

/// A record: (key, id). Ids are unique within a job.
type Rec = (u32, u64);
/// What [`Tally`] emits: (key, ids) — one id per record, all of them for a probe.
type Tallied = (u32, Vec<u64>);

const KEYS: u32 = 5;
/// The id of a probe record: [`Tally`] answers it with the key's ids.
const PROBE: u64 = u64::MAX;

fn rec(id: u64) -> Rec {
    ((id % u64::from(KEYS)) as u32, id)
}

fn ids(range: Range<u64>) -> Vec<u64> {
    range.collect()
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn concat(parts: &[&[u64]]) -> Vec<u64> {
    sorted(parts.iter().flat_map(|p| p.iter().copied()).collect())
}

// ------------------------------------------------------------------ sources

/// A source that emits fixed phases of records (per subtask): phase 0 at
/// once, phase `i` once it has snapshotted `i` times and the gate is at `i`
/// or more. Its raw operator state is the number of records it emitted.
#[derive(Clone)]
struct Feed {
    /// Per subtask, per phase, the ids it emits.
    plan: Arc<Vec<Vec<Vec<u64>>>>,
    gate: Arc<AtomicUsize>,
    /// Per subtask: phases fully emitted.
    done: Arc<Mutex<BTreeMap<usize, usize>>>,
    /// Set at the first snapshot.
    on_snapshot: Option<Arc<AtomicBool>>,
    /// Set once more than this many records were emitted.
    on_emitted: Option<(u64, Arc<AtomicBool>)>,
    /// The checkpoints it was told completed (all subtasks).
    completed: Arc<Mutex<Vec<u64>>>,
    subtask: usize,
    phase: usize,
    offset: usize,
    emitted: u64,
    snapshots: usize,
}

impl Feed {
    /// A source of parallelism `plan.len()`.
    fn new(plan: Vec<Vec<Vec<u64>>>) -> Self {
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
    fn released_by_snapshots(self) -> Self {
        self.gate.store(usize::MAX, Ordering::SeqCst);
        self
    }

    fn open_gate(&self, phase: usize) {
        self.gate.store(phase, Ordering::SeqCst);
    }

    fn phases_done(&self, subtask: usize) -> usize {
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
fn ticker_id(subtask: usize, n: u64) -> u64 {
    subtask as u64 * 1_000_000 + n
}

/// A throttled source (two records every other poll) that records, per
/// subtask, the checkpoint completions it is told of; endless, or finished
/// once it was told of `finish_after` of them. Its raw operator state is the
/// number of records it emitted.
#[derive(Clone, Default)]
struct Ticker {
    notified: Arc<Mutex<BTreeMap<usize, Vec<u64>>>>,
    finish_after: Option<usize>,
    subtask: usize,
    next: u64,
    idle: bool,
}

impl Ticker {
    /// Completions told to subtask 0.
    fn completions(&self) -> usize {
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
struct Tally {
    ids: ListStateDescriptor<u64>,
    /// Set when a record with an id in this range is processed.
    on_id: Option<(Range<u64>, Arc<AtomicBool>)>,
}

impl Tally {
    fn new() -> Self {
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
struct Valve {
    open: Arc<AtomicBool>,
    subtask: usize,
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
struct Pair {
    labels: MapStateDescriptor<u64, u64>,
    main: Vec<u64>,
    side: Vec<u64>,
}

fn join(ids: &[u64]) -> String {
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

fn split(text: &str) -> Vec<u64> {
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
enum Event {
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
struct Recorder {
    log: Arc<Mutex<BTreeMap<usize, Vec<Event>>>>,
    decline: Arc<Mutex<BTreeSet<u64>>>,
    slow: Arc<AtomicUsize>,
    slow_by: Duration,
    /// Checkpoints whose snapshot takes this long (the sink's thread sleeps).
    slow_snapshots: Arc<Mutex<BTreeMap<u64, Duration>>>,
    subtask: usize,
}

impl Recorder {
    fn declining(ids: &[u64]) -> Self {
        let recorder = Recorder::default();
        recorder.decline.lock().unwrap().extend(ids);
        recorder
    }

    fn slow(batches: usize, by: Duration) -> Self {
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

    fn events(&self) -> BTreeMap<usize, Vec<Event>> {
        self.log.lock().unwrap().clone()
    }

    /// Every record, over all subtasks, sorted.
    fn records(&self) -> Vec<u64> {
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
    fn completed(&self) -> BTreeMap<usize, Vec<u64>> {
        self.filter(|e| match e {
            Event::Complete(id) => Some(*id),
            _ => None,
        })
    }

    /// Per subtask, the checkpoints it was told were aborted, in order.
    fn aborted(&self) -> BTreeMap<usize, Vec<u64>> {
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
fn in_system<F: Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// Lets the System run until `done()` holds. The deadline only turns a
/// broken test into a failure instead of a hang; nothing depends on it.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Manual checkpoints only, every checkpoint kept, a timeout that only a
/// broken engine reaches.
fn manual(config: CheckpointConfig) -> CheckpointConfig {
    CheckpointConfig {
        interval: None,
        retained: 100,
        timeout: Duration::from_secs(20),
        ..config
    }
}

/// An environment with small batches, checkpoints written under `dir`.
fn env_with(parallelism: usize, dir: &Path, config: CheckpointConfig) -> StreamEnv {
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

fn storage_of(dir: &Path, job_id: &str) -> FsStorage {
    FsStorage::of_job_dir(&dir.join(job_id))
}

fn completed_ids(stats: &[CheckpointStats]) -> Vec<u64> {
    stats
        .iter()
        .filter(|s| s.failure.is_none())
        .map(|s| s.id)
        .collect()
}

fn failures(stats: &[CheckpointStats]) -> Vec<(u64, String)> {
    stats
        .iter()
        .filter_map(|s| s.failure.clone().map(|f| (s.id, f)))
        .collect()
}

fn checkpoint_failure(error: JobError) -> String {
    match error {
        JobError::CheckpointingFailed(message) => message,
        other => panic!("expected CheckpointingFailed, got {other:?}"),
    }
}

/// The `chk-<n>` directories of a job directory, with whether each has `_metadata`.
fn checkpoint_dirs(job_dir: &Path) -> BTreeMap<u64, bool> {
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

// ------------------------------------------------------- reading checkpoints

/// A completed checkpoint, read back from its files.
struct Loaded {
    meta: CheckpointMetadata,
    parts: Vec<(SubtaskStateMetadata, SubtaskState)>,
}

fn load(storage: &FsStorage, id: u64) -> Loaded {
    let meta = storage
        .read_metadata(id)
        .unwrap_or_else(|e| panic!("checkpoint {id}: {e}"));
    assert_eq!(meta.checkpoint_id, id);
    let parts = meta
        .subtasks
        .iter()
        .map(|s| {
            let bytes = storage
                .read_state(id, &s.handle)
                .unwrap_or_else(|e| panic!("checkpoint {id}: {e}"));
            assert_eq!(bytes.len() as u64, s.handle.size(), "{s:?}");
            let state = SubtaskState::decode(&bytes).unwrap();
            assert_eq!(state.checkpoint_id, id);
            (s.clone(), state)
        })
        .collect();
    Loaded { meta, parts }
}

/// A snapshot of an operator: (subtask index, snapshot).
type Snapshots = Vec<(usize, OperatorSnapshot)>;

impl Loaded {
    fn operator(&self, uid: &str) -> &OperatorMetadata {
        self.meta
            .operators
            .iter()
            .find(|o| o.uid == uid)
            .unwrap_or_else(|| panic!("no operator {uid} in {:?}", self.meta.operators))
    }

    /// The snapshots of operator `uid`, by subtask.
    fn snapshots(&self, uid: &str) -> Snapshots {
        let mut out: Snapshots = self
            .parts
            .iter()
            .filter_map(|(m, s)| {
                let (_, snapshot) = s.operators.iter().find(|(u, _)| u == uid)?;
                Some((m.subtask, snapshot.clone()))
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        assert_eq!(out.len(), self.operator(uid).parallelism, "{uid}");
        out
    }

    /// The raw state of operator `uid` per subtask, as text.
    fn raw(&self, uid: &str) -> BTreeMap<usize, String> {
        self.snapshots(uid)
            .into_iter()
            .map(|(s, snap)| (s, String::from_utf8(snap.raw.unwrap_or_default()).unwrap()))
            .collect()
    }

    /// The positions of source `uid` (records emitted before its barrier), per subtask.
    fn positions(&self, uid: &str) -> BTreeMap<usize, u64> {
        self.raw(uid)
            .into_iter()
            .map(|(s, raw)| (s, raw.parse().unwrap()))
            .collect()
    }

    /// Every id in the keyed state of the [`Tally`] `uid`, over all subtasks, sorted.
    fn tallied(&self, uid: &str) -> Vec<u64> {
        let op = self.operator(uid).clone();
        let mut all = Vec::new();
        for (subtask, snapshot) in self.snapshots(uid) {
            let mut harness = OperatorHarness::<Rec, Tallied>::keyed(
                Tally::new(),
                |r: &Rec| r.0,
                subtask,
                op.parallelism,
                op.max_parallelism,
            );
            harness.open(Some(snapshot)).unwrap();
            for key in 0..KEYS {
                let owner = KeyGroupRange::owner_of(
                    key_group(&key, op.max_parallelism),
                    op.max_parallelism,
                    op.parallelism,
                );
                if owner == subtask {
                    harness.process(vec![(key, PROBE)]).unwrap();
                }
            }
            for (key, ids) in harness.take_output() {
                assert!(
                    ids.iter().all(|&id| rec(id).0 == key),
                    "key {key} holds foreign ids {ids:?}"
                );
                all.extend(ids);
            }
        }
        sorted(all)
    }

    /// Every record in channel state (input and output side, all subtasks), sorted.
    fn in_flight(&self) -> Vec<u64> {
        sorted(
            self.parts
                .iter()
                .flat_map(|(_, s)| s.input_channels.iter().chain(&s.output_channels))
                .flat_map(|c| decode_batches(&c.batches))
                .map(|(_, id)| id)
                .collect(),
        )
    }

    /// Whether any subtask captured in-flight records.
    fn has_channel_state(&self) -> bool {
        self.parts
            .iter()
            .any(|(_, s)| !s.input_channels.is_empty() || !s.output_channels.is_empty())
    }

    /// The state of the subtask `subtask` of the chain headed by `uid`.
    fn part(&self, uid: &str, subtask: usize) -> &SubtaskState {
        &self
            .parts
            .iter()
            .find(|(m, _)| {
                m.operators.first().map(String::as_str) == Some(uid) && m.subtask == subtask
            })
            .unwrap_or_else(|| panic!("no subtask {uid}-{subtask}"))
            .1
    }
}

/// Reads an operator list state "batches" of `RecordBatch<Rec>` elements in
/// `initialize_state`: the engine's own decoder applied to channel state.
#[derive(Clone)]
struct BatchDecoder(Arc<Mutex<Vec<RecordBatch<Rec>>>>);

impl Lifecycle for BatchDecoder {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let batches = ListStateDescriptor::<RecordBatch<Rec>>::new("batches");
        *self.0.lock().unwrap() = ctx.operator_state().list(&batches)?.get()?;
        Ok(())
    }
}

impl OneInputOperator<u8, u8> for BatchDecoder {
    fn process_batch(
        &mut self,
        _batch: RecordBatch<u8>,
        _out: &mut Collector<u8>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// The records of captured in-flight batches (each an rmp-serde `RecordBatch<Rec>`).
fn decode_batches(batches: &[Vec<u8>]) -> Vec<Rec> {
    if batches.is_empty() {
        return Vec::new();
    }
    let decoded = Arc::default();
    let mut harness = OperatorHarness::<u8, u8>::new(BatchDecoder(Arc::clone(&decoded)), 0, 1, 128);
    let snapshot = OperatorSnapshot {
        lists: vec![ListStateSnapshot::new(
            "batches",
            Redistribution::EvenSplit,
            batches.to_vec(),
        )],
        ..OperatorSnapshot::default()
    };
    harness
        .open(Some(snapshot))
        .unwrap_or_else(|e| panic!("channel state is not a batch of (u32, u64): {e}"));
    let batches = std::mem::take(&mut *decoded.lock().unwrap());
    batches.into_iter().flat_map(|b| b.records).collect()
}

fn channel_records(channels: &[ChannelState]) -> Vec<u64> {
    channels
        .iter()
        .flat_map(|c| decode_batches(&c.batches))
        .map(|(_, id)| id)
        .collect()
}

// ============================================================ content tests

/// Source (p=1) → keyed `Tally` (p=3) → `Recorder` (chained), manual
/// checkpoints between phases: each holds exactly the phases before it.
#[test]
fn an_aligned_checkpoint_holds_exactly_the_records_before_its_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let phases = [ids(0..20), ids(100..120), ids(200..220)];
    let feed = Feed::new(vec![phases.to_vec()]);
    let sink = Recorder::default();
    let env = env_with(3, dir.path(), manual(CheckpointConfig::default()));
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");

    let (result, storage) = in_system(async {
        let mut client = env.start("aligned").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        for phase in 0..2 {
            until("a phase out", || feed.phases_done(0) > phase).await;
            let stats = client.trigger_checkpoint().await.unwrap();
            assert_eq!(stats.id, phase as u64 + 1);
            let chk = load(&storage, stats.id);
            let before: Vec<&[u64]> = phases[..=phase].iter().map(Vec::as_slice).collect();
            assert_eq!(
                chk.tallied("tally"),
                concat(&before),
                "checkpoint {}",
                stats.id
            );
            assert_eq!(
                chk.positions("feed"),
                BTreeMap::from([(0, 20 * (phase as u64 + 1))])
            );
            assert!(
                !chk.has_channel_state(),
                "aligned checkpoints capture no channel state"
            );
            feed.open_gate(phase + 1);
        }
        (client.wait().await.unwrap(), storage)
    });

    // The final checkpoint, after all input ended, holds everything.
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2, 3]);
    let last = load(&storage, 3);
    assert_eq!(
        last.tallied("tally"),
        concat(&[&phases[0], &phases[1], &phases[2]])
    );
    assert_eq!(last.positions("feed"), BTreeMap::from([(0, 60)]));
    assert_eq!(
        sink.records(),
        concat(&[&phases[0], &phases[1], &phases[2]]),
        "every record reaches the sink exactly once"
    );
}

/// How the valve is opened in [`valve_job`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Aligned,
    Unaligned,
    AtLeastOnce,
}

/// What [`valve_job`] found in checkpoint 1.
struct ValveRun {
    chk: Loaded,
    stats: CheckpointStats,
    result: JobResult,
    sink: Recorder,
    /// Where checkpoint 1 is.
    chk_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

const A0: Range<u64> = 0..20;
const A1: Range<u64> = 100..120;
const B0: Range<u64> = 1000..1006;
const B1: Range<u64> = 1100..1106;

/// Two sources into one keyed subtask, one of them through a held-up channel:
///
/// ```text
/// A (p=1): A0, then A1 right behind its barrier ───────────────┐
/// B (p=1): B0, then B1 after checkpoint 1 ── rebalance → Valve (p=2) ─┴→ Tally (p=1) → Recorder
/// ```
///
/// With one record per batch and one credit per channel, valve subtask 1
/// holds B's second record, so B's sixth record waits in B's output for
/// credit and B's barrier queues behind it. The valve opens: when A has
/// emitted an A1 record (aligned: the A channel is blocked meanwhile), at
/// B's snapshot (unaligned: B's barrier overtakes the waiting record), or
/// when `Tally` processed an A1 record (at-least-once: nothing blocks, so the
/// snapshot at the last barrier holds it).
fn valve_job(mode: Mode) -> ValveRun {
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let mut a = Feed::new(vec![vec![ids(A0), ids(A1)]]).released_by_snapshots();
    let mut b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let mut tally = Tally::new();
    let config = match mode {
        Mode::Aligned => {
            a.on_emitted = Some((A0.end - A0.start, valve.clone()));
            CheckpointConfig::default()
        }
        Mode::Unaligned => {
            b.on_snapshot = Some(valve.clone());
            CheckpointConfig {
                unaligned: true,
                ..CheckpointConfig::default()
            }
        }
        Mode::AtLeastOnce => {
            tally.on_id = Some((A1, valve.clone()));
            CheckpointConfig {
                mode: CheckpointMode::AtLeastOnce,
                ..CheckpointConfig::default()
            }
        }
    };
    let sink = Recorder::default();
    let env = env_with(1, dir.path(), manual(config));
    env.set_batch_size(1).set_channel_credits(1);
    let through_valve = env
        .add_source(b.clone())
        .uid("b")
        .rebalance()
        .transform(
            "Valve",
            Valve {
                open: valve.clone(),
                subtask: 0,
            },
        )
        .set_parallelism(2)
        .uid("valve");
    env.add_source(a.clone())
        .uid("a")
        .union(through_valve)
        .key_by(|r: &Rec| r.0)
        .process(tally)
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");

    let (chk, stats, result) = in_system(async {
        let mut client = env.start(&format!("valve-{mode:?}")).await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        let chk = load(&storage, 1);
        b.open_gate(1);
        let result = client.wait().await.unwrap();
        (chk, stats, result)
    });
    assert!(valve.load(Ordering::SeqCst));
    assert_eq!(
        sink.records(),
        concat(&[&ids(A0), &ids(A1), &ids(B0), &ids(B1)]),
        "every record reaches the sink exactly once"
    );
    assert_eq!(chk.positions("a"), BTreeMap::from([(0, 20)]));
    assert_eq!(chk.positions("b"), BTreeMap::from([(0, 6)]));
    let chk_dir = storage_of(dir.path(), &result.job_id)
        .paths()
        .checkpoint_dir(1);
    ValveRun {
        chk,
        stats,
        result,
        sink,
        chk_dir,
        _dir: dir,
    }
}

#[test]
fn an_aligned_checkpoint_blocks_the_early_channel_until_every_barrier_arrived() {
    let run = valve_job(Mode::Aligned);
    // A emitted an A1 record before the keyed subtask could snapshot (the
    // valve opened only then), yet the snapshot holds none of A1.
    assert_eq!(run.chk.tallied("tally"), concat(&[&ids(A0), &ids(B0)]));
    assert!(!run.chk.has_channel_state());
    assert!(!run.stats.unaligned);
    assert_eq!(completed_ids(&run.result.checkpoints), vec![1, 2]);
}

#[test]
fn an_unaligned_checkpoint_holds_every_record_before_its_barrier_once_in_operator_or_channel_state()
{
    let run = valve_job(Mode::Unaligned);
    let in_state = run.chk.tallied("tally");
    let in_flight = run.chk.in_flight();
    let mut union = [in_state.clone(), in_flight.clone()].concat();
    union.sort_unstable();
    assert_eq!(
        union,
        concat(&[&ids(A0), &ids(B0)]),
        "state {in_state:?} + in flight {in_flight:?}: each record before the barrier exactly once, none after"
    );
    // B's last B0 record waited for credit when B's barrier overtook it: it
    // is in B's output channel state, not (yet) in the keyed state.
    let b_out = channel_records(&run.chk.part("b", 0).output_channels);
    assert!(!b_out.is_empty(), "B's waiting record is captured");
    assert!(b_out.iter().all(|id| B0.contains(id)), "{b_out:?}");
    assert!(b_out.iter().all(|id| !in_state.contains(id)));
    assert!(run.stats.unaligned);
    assert!(run.stats.in_flight_bytes > 0);
    let in_flight_meta: u64 = run
        .chk
        .meta
        .subtasks
        .iter()
        .map(|s| s.in_flight_bytes)
        .sum();
    assert_eq!(in_flight_meta, run.stats.in_flight_bytes);
    // The final checkpoint is aligned, whatever the configuration.
    let last = run.result.checkpoints.last().unwrap();
    assert_eq!(
        (last.id, last.failure.clone(), last.unaligned),
        (2, None, false)
    );
}

#[test]
fn check_restore_refuses_an_unaligned_checkpoint_with_in_flight_records_at_another_parallelism() {
    let run = valve_job(Mode::Unaligned);
    assert!(run.stats.in_flight_bytes > 0);
    let plan_at = |valve_parallelism: usize| weir::JobPlan {
        job: run.chk.meta.job_name.clone(),
        operators: run
            .chk
            .meta
            .operators
            .iter()
            .map(|o| weir::runtime::restore::PlannedOperator {
                parallelism: if o.uid == "valve" {
                    valve_parallelism
                } else {
                    o.parallelism
                },
                ..o.clone()
            })
            .collect(),
        state_backend: Some("heap".into()),
        chains: Vec::new(),
    };
    let check = |plan: &weir::JobPlan| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_string(plan).unwrap()).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("check-restore")
            .arg(&run.chk_dir)
            .arg("--plan")
            .arg(file.path())
            .output()
            .unwrap()
    };
    let same = check(&plan_at(2));
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let rescaled = check(&plan_at(3));
    let text = String::from_utf8_lossy(&rescaled.stdout);
    assert_eq!(rescaled.status.code(), Some(1), "{text}");
    assert!(text.contains("IN-FLIGHT RECORDS"), "{text}");
    assert!(
        text.contains("checkpoint 1 is unaligned")
            && text.contains("`valve` runs at parallelism 3"),
        "{text}"
    );
    assert!(text.ends_with("restore NOT possible\n"), "{text}");
}

/// At-least-once only promises that every record before a barrier is
/// reflected: a subtask snapshots when the last barrier arrived, without
/// blocking the channels whose barrier came earlier, so records behind an
/// early barrier may be in the checkpoint too (and would be replayed after a
/// restore). Here that happens by construction.
#[test]
fn an_at_least_once_checkpoint_holds_every_record_before_its_barrier_and_maybe_later_ones() {
    let run = valve_job(Mode::AtLeastOnce);
    let in_state = run.chk.tallied("tally");
    let before: BTreeSet<u64> = ids(A0).into_iter().chain(ids(B0)).collect();
    let set: BTreeSet<u64> = in_state.iter().copied().collect();
    assert_eq!(
        set.len(),
        in_state.len(),
        "no record counted twice: {in_state:?}"
    );
    assert!(
        set.is_superset(&before),
        "missing {:?}",
        before.difference(&set)
    );
    let later: Vec<u64> = set.difference(&before).copied().collect();
    assert!(
        later.iter().all(|id| A1.contains(id)),
        "only records behind A's early barrier may be in it: {later:?}"
    );
    assert!(
        !later.is_empty(),
        "the A1 record that opened the valve is in it"
    );
    assert!(!run.chk.has_channel_state());
    assert!(!run.stats.unaligned);
    assert_eq!(run.sink.completed()[&0].last(), Some(&2));
}

/// A keyed main input and a broadcast input, each from its own source, into
/// a two-input operator of parallelism 2: per subtask, the broadcast side
/// holds B0 (every subtask sees every broadcast record); over all subtasks,
/// the keyed side holds A0 — in operator state or, unaligned, in channel
/// state — and never A1, which A emits right behind its barrier.
fn two_input(unaligned: bool) {
    let dir = tempfile::tempdir().unwrap();
    let a = Feed::new(vec![vec![ids(A0), ids(A1)]]).released_by_snapshots();
    let b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let labels = MapStateDescriptor::<u64, u64>::new("labels");
    let sink = Recorder::default();
    let config = CheckpointConfig {
        unaligned,
        ..CheckpointConfig::default()
    };
    let env = env_with(2, dir.path(), manual(config));
    let side = env
        .add_source(b.clone())
        .set_parallelism(1)
        .uid("b")
        .broadcast_state(std::slice::from_ref(&labels));
    env.add_source(a.clone())
        .set_parallelism(1)
        .uid("a")
        .key_by(|r: &Rec| r.0)
        .connect(side)
        .process(Pair {
            labels,
            main: Vec::new(),
            side: Vec::new(),
        })
        .uid("pair")
        .add_sink(sink.clone())
        .uid("sink");

    let chk = in_system(async {
        let mut client = env.start("two-input").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.unaligned, unaligned);
        let chk = load(&storage, stats.id);
        b.open_gate(1);
        let result = client.wait().await.unwrap();
        assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
        chk
    });
    assert_eq!(sink.records(), concat(&[&ids(A0), &ids(A1)]));

    let is_a = |id: &u64| *id < 1000;
    let mut main = Vec::new();
    let a_out = chk.part("a", 0);
    main.extend(channel_records(&a_out.output_channels));
    let b_out = chk.part("b", 0);
    for (subtask, raw) in chk.raw("pair") {
        let (m, s) = raw.split_once('|').unwrap();
        main.extend(split(m));
        let input = channel_records(&chk.part("pair", subtask).input_channels);
        main.extend(input.iter().copied().filter(is_a));
        let mut side: Vec<u64> = split(s);
        side.extend(input.iter().copied().filter(|id| !is_a(id)));
        let to_this: Vec<ChannelState> = b_out
            .output_channels
            .iter()
            .filter(|c| c.channel == subtask)
            .cloned()
            .collect();
        side.extend(channel_records(&to_this));
        assert_eq!(sorted(side), ids(B0), "broadcast side of subtask {subtask}");
    }
    assert_eq!(sorted(main), ids(A0), "keyed side over all subtasks");
    if !unaligned {
        assert!(!chk.has_channel_state());
    }
}

#[test]
fn a_two_input_operator_checkpoints_both_inputs_at_their_barriers_aligned() {
    two_input(false);
}

#[test]
fn a_two_input_operator_checkpoints_both_inputs_at_their_barriers_unaligned() {
    two_input(true);
}

/// Source (p=1) → rebalance → pass-through map (p=2) → keyed `Tally` (p=3)
/// → `Recorder` (chained), so every `Tally` subtask has two input channels;
/// periodic checkpoints every 2 ms, up to 3 at once. Once the source was told
/// of 5 completed checkpoints the job is canceled (retaining its
/// checkpoints), and every completed checkpoint is checked against the
/// source's position: it holds exactly (aligned; unaligned with its channel
/// state) or at least (at-least-once) the records emitted before it.
/// No failure is tolerated: unaligned and at-least-once, a newer barrier
/// overtaking an older checkpoint on one channel aborts that one as
/// subsumed, which is not a failure (see
/// [`a_checkpoint_overtaken_by_a_newer_barrier_is_not_a_failure`]).
fn periodic(mode: Mode) -> (Vec<CheckpointStats>, Recorder) {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        interval: Some(Duration::from_millis(2)),
        max_concurrent: 3,
        retained: 1_000,
        timeout: Duration::from_secs(20),
        unaligned: mode == Mode::Unaligned,
        mode: if mode == Mode::AtLeastOnce {
            CheckpointMode::AtLeastOnce
        } else {
            CheckpointMode::ExactlyOnce
        },
        ..CheckpointConfig::default()
    };
    let sink = Recorder::slow(10, Duration::from_millis(1));
    let ticker = Ticker::default();
    let env = env_with(3, dir.path(), config);
    env.add_source(ticker.clone())
        .set_parallelism(1)
        .uid("ticker")
        .rebalance()
        .map(|r: Rec| r)
        .set_parallelism(2)
        .uid("pass")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let (stats, job_id) = in_system(async {
        let mut client = env.start(&format!("periodic-{mode:?}")).await.unwrap();
        until("5 completed checkpoints", || ticker.completions() >= 5).await;
        client.cancel();
        let outcome = client.wait().await;
        assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
        (client.checkpoint_stats(), client.job_id().to_string())
    });
    let storage = storage_of(dir.path(), &job_id);

    let completed = completed_ids(&stats);
    assert!(completed.len() >= 5, "{completed:?}");
    assert!(
        completed.windows(2).all(|w| w[0] < w[1]),
        "completed in increasing order: {completed:?}"
    );
    let all: BTreeSet<u64> = stats.iter().map(|s| s.id).collect();
    assert_eq!(all.len(), stats.len(), "each checkpoint ends once");
    for (id, failure) in failures(&stats) {
        assert_eq!(
            failure, "subsumed by a newer completed checkpoint",
            "checkpoint {id}"
        );
    }
    for s in stats.iter().filter(|s| s.failure.is_none()) {
        assert_eq!(s.unaligned, mode == Mode::Unaligned, "{s:?}");
    }
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, completed, "every completed checkpoint is retained");
    // Sinks are told of completed checkpoints only, in order.
    for (subtask, notified) in sink.completed() {
        assert!(notified.windows(2).all(|w| w[0] < w[1]), "{notified:?}");
        assert!(
            notified.iter().all(|id| completed.contains(id)),
            "sink subtask {subtask}: {notified:?} vs {completed:?}"
        );
    }

    for &id in &completed {
        let chk = load(&storage, id);
        let position = chk.positions("ticker")[&0];
        let expected: Vec<u64> = (0..position).map(|n| ticker_id(0, n)).collect();
        let in_state = chk.tallied("tally");
        match mode {
            Mode::Aligned => {
                assert_eq!(in_state, expected, "checkpoint {id}");
                assert!(!chk.has_channel_state());
            }
            Mode::Unaligned => {
                let mut union = [in_state, chk.in_flight()].concat();
                union.sort_unstable();
                assert_eq!(union, expected, "checkpoint {id}");
            }
            Mode::AtLeastOnce => {
                let set: BTreeSet<u64> = in_state.iter().copied().collect();
                assert_eq!(set.len(), in_state.len(), "checkpoint {id}: a record twice");
                assert!(
                    expected.iter().all(|id| set.contains(id)),
                    "checkpoint {id} misses records before its barriers"
                );
            }
        }
    }
    (stats, sink)
}

#[test]
fn concurrent_periodic_aligned_checkpoints_are_each_consistent_with_the_source_position() {
    periodic(Mode::Aligned);
}

#[test]
fn concurrent_periodic_unaligned_checkpoints_are_each_consistent_with_the_source_position() {
    periodic(Mode::Unaligned);
}

#[test]
fn concurrent_periodic_at_least_once_checkpoints_hold_at_least_the_records_before_them() {
    periodic(Mode::AtLeastOnce);
}

// ========================================================= final checkpoint

/// A bounded job without periodic checkpoints still ends with one: taken
/// after every input ended, holding everything, and notified to the sinks
/// (after their `finish`) before they close.
#[test]
fn a_bounded_job_ends_with_a_final_checkpoint_that_the_sinks_are_notified_of() {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..30)]]);
    let sink = Recorder::default();
    let env = env_with(2, dir.path(), manual(CheckpointConfig::default()));
    env.add_source(feed)
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let result = in_system(env.execute("final")).unwrap();

    assert_eq!(completed_ids(&result.checkpoints), vec![1]);
    let chk = load(&storage_of(dir.path(), &result.job_id), 1);
    assert_eq!(chk.tallied("tally"), ids(0..30));
    assert_eq!(chk.positions("feed"), BTreeMap::from([(0, 30)]));
    let events = sink.events();
    assert_eq!(events.len(), 2, "both sink subtasks ran");
    for (subtask, events) in events {
        let tail: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Record(_)))
            .collect();
        assert_eq!(
            tail,
            vec![&Event::Finish, &Event::Snapshot(1), &Event::Complete(1)],
            "sink subtask {subtask}"
        );
    }
}

/// Source A ends at once while source B still runs; a checkpoint taken in
/// between is not the job's final one: the job must still finish with a
/// completed final checkpoint once B ends.
#[test]
fn a_source_that_ends_early_does_not_stop_the_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = Feed::new(vec![vec![ids(0..5)]]);
    let b = Feed::new(vec![vec![ids(100..105), ids(200..205)]]);
    let sink = Recorder::default();
    let config = CheckpointConfig {
        timeout: Duration::from_secs(2),
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    let b_stream = env.add_source(b.clone()).uid("b");
    env.add_source(a.clone())
        .uid("a")
        .union(b_stream)
        .add_sink(sink.clone())
        .uid("sink");
    let outcome = in_system(async {
        let mut client = env.start("early-end").await.unwrap();
        until("A done and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        b.open_gate(1);
        client.wait().await
    });
    let result = outcome.expect("the job finishes");
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
    assert_eq!(sink.completed()[&0].last(), Some(&2));
    assert_eq!(sink.records().len(), 15);
}

/// At-least-once, the topology of [`valve_job`] with a third phase of A
/// (A2, released behind A's second barrier): checkpoints 1 and 2 are
/// triggered back to back, and the valve opens only once `Tally` processed an
/// A2 record, so `Tally` sees barrier 2 on A's channel before barrier 1
/// arrived through the valve. Checkpoint 1 is overtaken: as in Flink
/// (`CHECKPOINT_DECLINED_SUBSUMED`, ignored by the failure manager; an
/// at-least-once barrier tracker even keeps several checkpoints pending),
/// that must not count as a failed checkpoint, so the job runs on with no
/// failure tolerated.
#[test]
fn a_checkpoint_overtaken_by_a_newer_barrier_is_not_a_failure() {
    const A2: Range<u64> = 200..220;
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let a = Feed::new(vec![vec![ids(A0), ids(A1), ids(A2)]]).released_by_snapshots();
    let b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let mut tally = Tally::new();
    tally.on_id = Some((A2, valve.clone()));
    let config = CheckpointConfig {
        mode: CheckpointMode::AtLeastOnce,
        ..manual(CheckpointConfig::default())
    };
    let sink = Recorder::default();
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1).set_channel_credits(1);
    let through_valve = env
        .add_source(b.clone())
        .uid("b")
        .rebalance()
        .transform(
            "Valve",
            Valve {
                open: valve.clone(),
                subtask: 0,
            },
        )
        .set_parallelism(2)
        .uid("valve");
    env.add_source(a.clone())
        .uid("a")
        .union(through_valve)
        .key_by(|r: &Rec| r.0)
        .process(tally)
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let (first, second, outcome, stats) = in_system(async {
        let mut client = env.start("overtaken").await.unwrap();
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let (first, second) =
            tokio::join!(client.trigger_checkpoint(), client.trigger_checkpoint());
        b.open_gate(1);
        let outcome = client.wait().await;
        (first, second, outcome, client.checkpoint_stats())
    });
    let failed = failures(&stats);
    let result = outcome.unwrap_or_else(|e| panic!("{e}; failures: {failed:?}"));
    assert_eq!(second.unwrap().id, 2);
    if let Err(e) = first {
        assert!(e.to_string().contains("subsumed"), "{e}");
    }
    assert!(completed_ids(&result.checkpoints).ends_with(&[2, 3]));
    assert_eq!(
        sink.records(),
        concat(&[&ids(A0), &ids(A1), &ids(A2), &ids(B0), &ids(B1)])
    );
}

/// One source, one sink, and nothing else going on: the source emits its
/// records and ends, but cannot deliver the last one (valve subtask 1 holds
/// the channel), so it is still draining when checkpoint 1 reaches it. That
/// checkpoint is not the job's final one (the coordinator has not heard that
/// the source finished): the job must end with the final checkpoint 2, and
/// the source and the sink must be told it completed. (The sink takes its
/// snapshot of checkpoint 2 slowly, so that checkpoint 1 completes first.)
#[test]
fn a_checkpoint_taken_while_a_source_drains_is_not_its_final_one() {
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let mut feed = Feed::new(vec![vec![ids(0..6)]]);
    feed.on_snapshot = Some(valve.clone());
    let sink = Recorder::default();
    sink.slow_snapshots
        .lock()
        .unwrap()
        .insert(2, Duration::from_millis(100));
    let config = CheckpointConfig {
        timeout: Duration::from_secs(2),
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1).set_channel_credits(1);
    env.add_source(feed.clone())
        .uid("feed")
        .rebalance()
        .transform(
            "Valve",
            Valve {
                open: valve.clone(),
                subtask: 0,
            },
        )
        .set_parallelism(2)
        .uid("valve")
        .add_sink(sink.clone())
        .set_parallelism(1)
        .uid("sink");
    let outcome = in_system(async {
        let mut client = env.start("draining").await.unwrap();
        until("every record emitted", || feed.phases_done(0) >= 1).await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        client.wait().await
    });
    let result = outcome.expect("the job finishes");
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
    assert_eq!(*feed.completed.lock().unwrap(), vec![1, 2], "the source");
    assert_eq!(
        sink.completed(),
        BTreeMap::from([(0, vec![1, 2])]),
        "the sink"
    );
    assert_eq!(sink.records(), ids(0..6));
}

/// Parallel sources (p=2) → keyed `Tally` (p=3) → `Recorder`, periodic
/// checkpoints every 2 ms (up to 3 at once); each source subtask ends once it
/// was told of 5 completed checkpoints, so periodic checkpoints keep reaching
/// the sources while they finish, at different times. Whatever the
/// interleaving, the job ends with its final checkpoint: the last completed
/// one, listed in the `JobResult`, told to every source and sink subtask, and
/// holding every record. Three runs, to meet more interleavings.
#[test]
fn a_bounded_job_with_periodic_checkpoints_ends_with_its_final_checkpoint() {
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            interval: Some(Duration::from_millis(2)),
            max_concurrent: 3,
            retained: 1_000,
            timeout: Duration::from_secs(20),
            ..CheckpointConfig::default()
        };
        let ticker = Ticker {
            finish_after: Some(5),
            ..Ticker::default()
        };
        let sink = Recorder::default();
        let env = env_with(3, dir.path(), config);
        env.add_source(ticker.clone())
            .set_parallelism(2)
            .uid("ticker")
            .key_by(|r: &Rec| r.0)
            .process(Tally::new())
            .uid("tally")
            .add_sink(sink.clone())
            .uid("sink");
        let (outcome, stats) = in_system(async {
            let mut client = env.start("bounded-periodic").await.unwrap();
            let outcome = client.wait().await;
            (outcome, client.checkpoint_stats())
        });
        let result = outcome.unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert_eq!(result.checkpoints, stats, "run {run}");
        for (id, failure) in failures(&stats) {
            assert_eq!(
                failure, "subsumed by a newer completed checkpoint",
                "run {run}, checkpoint {id}"
            );
        }
        let last = *completed_ids(&stats).last().unwrap();
        let told = ticker.notified.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "run {run}");
        for (subtask, notified) in told {
            assert_eq!(notified.last(), Some(&last), "run {run}, source {subtask}");
        }
        assert_eq!(sink.completed().len(), 3, "run {run}");
        for (subtask, notified) in sink.completed() {
            assert_eq!(notified.last(), Some(&last), "run {run}, sink {subtask}");
        }
        let chk = load(&storage_of(dir.path(), &result.job_id), last);
        let records = sink.records();
        assert_eq!(chk.tallied("tally"), records, "run {run}");
        let emitted: u64 = chk.positions("ticker").values().sum();
        assert_eq!(emitted, records.len() as u64, "run {run}");
    }
}

// ================================================================= failures

/// A job that waits (phase 1 gated) so that the test decides when it ends.
fn declining_job(dir: &Path, tolerable: u32) -> (StreamEnv, Feed, Recorder) {
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20)]]);
    let sink = Recorder::declining(&[1]);
    let config = CheckpointConfig {
        tolerable_failures: tolerable,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(2, dir, config);
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    (env, feed, sink)
}

#[test]
fn a_declined_checkpoint_is_aborted_and_later_ones_complete_when_failures_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let (env, feed, sink) = declining_job(dir.path(), 1);
    let (result, storage) = in_system(async {
        let mut client = env.start("declined").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        let declined = checkpoint_failure(client.trigger_checkpoint().await.unwrap_err());
        assert!(declined.contains("checkpoint 1 declined"), "{declined}");
        assert!(
            declined.contains("boom: the recorder refuses checkpoint 1"),
            "{declined}"
        );
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 2);
        assert_eq!(load(&storage, 2).tallied("tally"), ids(0..10));
        feed.open_gate(1);
        (client.wait().await.unwrap(), storage)
    });
    let failed = failures(&result.checkpoints);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 1);
    assert!(failed[0].1.contains("declined"), "{}", failed[0].1);
    assert!(failed[0].1.contains("boom"), "{}", failed[0].1);
    assert_eq!(completed_ids(&result.checkpoints), vec![2, 3]);
    // Every operator of every subtask heard of the abort, and of the completions.
    assert_eq!(sink.aborted(), BTreeMap::from([(0, vec![1]), (1, vec![1])]));
    assert_eq!(
        sink.completed(),
        BTreeMap::from([(0, vec![2, 3]), (1, vec![2, 3])])
    );
    // The aborted checkpoint left nothing behind.
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, vec![2, 3]);
    assert!(!checkpoint_dirs(&dir.path().join(&result.job_id)).contains_key(&1));
    assert_eq!(sink.records(), ids(0..20));
}

#[test]
fn a_declined_checkpoint_fails_the_job_when_no_failure_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let (env, feed, _sink) = declining_job(dir.path(), 0);
    let (triggered, outcome, stats) = in_system(async {
        let mut client = env.start("declined-fatal").await.unwrap();
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        let triggered = client.trigger_checkpoint().await;
        let outcome = client.wait().await;
        (triggered, outcome, client.checkpoint_stats())
    });
    assert!(triggered.is_err());
    let message = checkpoint_failure(outcome.unwrap_err());
    assert!(message.contains("checkpoint 1 declined"), "{message}");
    assert!(
        message.contains("boom: the recorder refuses checkpoint 1"),
        "{message}"
    );
    assert!(message.contains("0 tolerated"), "{message}");
    assert_eq!(failures(&stats).len(), 1);
}

/// A sink sleeping 40 ms on each of its first 4 batches, checkpoints every
/// 5 ms with a 15 ms timeout: a checkpoint whose barrier waits behind those
/// batches expires. The source never ends (its phase 1 stays gated). With
/// failures tolerated, the test waits for an expired checkpoint and a
/// completed one after it, then cancels the job.
fn slow_sink_job(tolerable: u32) -> (Result<JobResult, JobError>, Vec<CheckpointStats>) {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        interval: Some(Duration::from_millis(5)),
        timeout: Duration::from_millis(15),
        tolerable_failures: tolerable,
        ..CheckpointConfig::default()
    };
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1);
    let sink = Recorder::slow(4, Duration::from_millis(40));
    env.add_source(Feed::new(vec![vec![ids(0..4), ids(4..8)]]))
        .uid("feed")
        .add_sink(sink.clone())
        .uid("sink");
    in_system(async {
        let mut client = env.start("slow-sink").await.unwrap();
        if tolerable > 0 {
            until("an expired checkpoint, then a completed one", || {
                let stats = client.checkpoint_stats();
                let expired = stats
                    .iter()
                    .filter(|s| s.failure.as_deref().is_some_and(|f| f.contains("expired")))
                    .map(|s| s.id)
                    .min();
                expired.is_some_and(|e| completed_ids(&stats).iter().any(|&c| c > e))
            })
            .await;
            client.cancel();
        }
        let outcome = client.wait().await;
        (outcome, client.checkpoint_stats())
    })
}

#[test]
fn checkpoints_that_expire_behind_a_slow_sink_count_as_failures() {
    let (outcome, stats) = slow_sink_job(1_000);
    assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
    let expired: Vec<u64> = failures(&stats)
        .into_iter()
        .filter(|(_, f)| f == "expired before all subtasks acknowledged")
        .map(|(id, _)| id)
        .collect();
    assert!(!expired.is_empty(), "{stats:?}");
    assert!(completed_ids(&stats).iter().any(|&c| c > expired[0]));

    let (outcome, stats) = slow_sink_job(0);
    let message = checkpoint_failure(outcome.unwrap_err());
    assert!(
        message.contains("expired before all subtasks acknowledged"),
        "{message}"
    );
    assert!(
        message.contains("(1 failed in a row, 0 tolerated)"),
        "{message}"
    );
    assert!(failures(&stats).iter().any(|(_, f)| f.contains("expired")));
}

#[test]
fn a_checkpoint_directory_that_is_a_file_stops_the_job_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let root = file.join("checkpoints");
    let env = env_with(1, &root, manual(CheckpointConfig::default()));
    let seen = Recorder::default();
    env.add_source(Feed::new(vec![vec![ids(0..5)]]))
        .uid("feed")
        .add_sink(seen.clone())
        .uid("sink");
    let error =
        in_system(async { env.start("unwritable").await.err() }).expect("the job must not start");
    let message = error.to_string();
    assert!(matches!(error, JobError::InvalidJob(_)), "{error:?}");
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert!(message.contains("checkpoint directory"), "{message}");
    assert!(seen.records().is_empty(), "nothing ran");
    assert!(file.is_file());
}

#[test]
fn a_checkpoint_directory_that_breaks_while_the_job_runs_fails_checkpoints_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let config = CheckpointConfig {
        tolerable_failures: 2,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, &root, config);
    // Phase 1 follows the first snapshot: the source runs until then.
    let feed = Feed::new(vec![vec![ids(0..5), ids(5..10)]]);
    env.add_source(feed.clone())
        .uid("feed")
        .add_sink(Recorder::default())
        .uid("sink");
    let (outcome, stats, lineage_dir) = in_system(async {
        let mut client = env.start("unwritable").await.unwrap();
        // The job's checkpoint directory is replaced by a file.
        let lineage_dir = root.join(client.lineage());
        let _ = std::fs::remove_dir_all(&lineage_dir);
        std::fs::write(&lineage_dir, "not a directory").unwrap();
        feed.open_gate(1);
        let _ = client.trigger_checkpoint().await;
        let outcome = client.wait().await;
        (outcome, client.checkpoint_stats(), lineage_dir)
    });
    // The final checkpoint is retried until the failures are more than tolerated.
    let message = checkpoint_failure(outcome.unwrap_err());
    let path = lineage_dir.display().to_string();
    assert!(message.contains(&path), "{message}");
    assert!(message.contains("cannot create directory"), "{message}");
    assert!(
        message.contains("3 failed in a row, 2 tolerated"),
        "{message}"
    );
    let failed = failures(&stats);
    // The manual checkpoint and the final one may fail in either order.
    let ids: BTreeSet<u64> = failed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    assert!(failed.iter().all(|(_, f)| f.contains(&path)), "{failed:?}");
    assert!(lineage_dir.is_file());
}

/// `Tally` keeps 1500 ids in one subtask: its state exceeds a 1 KiB limit,
/// the source's does not.
fn memory_job(limit: u64) -> (StreamEnv, Recorder) {
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(RestartStrategy::NoRestart);
    env.set_arbiters(2)
        .set_checkpoint_config(manual(CheckpointConfig::default()))
        .set_checkpoint_storage(StorageSpec::Memory {
            max_state_size: limit,
        });
    let sink = Recorder::default();
    env.add_source(Feed::new(vec![vec![ids(0..1500)]]))
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    (env, sink)
}

#[test]
fn in_memory_storage_refuses_a_state_larger_than_its_limit_naming_size_and_limit() {
    let (env, _) = memory_job(1024);
    let message = checkpoint_failure(in_system(env.execute("too-large")).unwrap_err());
    assert!(
        message.contains("exceeds the in-memory storage limit of 1024 bytes"),
        "{message}"
    );
    assert!(message.contains("for tally-0.state"), "{message}");
    let size: u64 = message
        .split("state of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {message}"));
    assert!(size > 1024, "{message}");

    // Under a large enough limit the same job checkpoints in memory.
    let (env, sink) = memory_job(1 << 20);
    let retained = in_system(async {
        let mut client = env.start("fits").await.unwrap();
        let result = client.wait().await.unwrap();
        assert_eq!(completed_ids(&result.checkpoints), vec![1]);
        client.retained_checkpoints().unwrap()
    });
    assert_eq!(retained.len(), 1);
    assert_eq!(retained[0].location, "memory:chk-1");
    assert!(retained[0].size > 1024);
    assert_eq!(sink.records(), ids(0..1500));
}

// ================================================================== storage

/// A job that completes checkpoints 1 and 2 (manual) and 3 (final).
fn three_checkpoints(dir: &Path, retained: usize) -> JobResult {
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

#[test]
fn retained_checkpoints_are_the_newest_ones_with_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 2);
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2, 3]);
    let job_dir = dir.path().join(&result.job_id);
    assert_eq!(
        checkpoint_dirs(&job_dir),
        BTreeMap::from([(2, true), (3, true)])
    );
    let listed = storage_of(dir.path(), &result.job_id).list().unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 3]);
    assert!(listed.iter().all(|c| c.size > 0 && !c.savepoint));
    assert_eq!(
        listed[1].location,
        job_dir.join("chk-3").display().to_string()
    );
}

#[test]
fn a_corrupted_state_file_is_reported_and_a_checkpoint_without_metadata_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 2);
    let storage = storage_of(dir.path(), &result.job_id);
    let chk = load(&storage, 3);
    let part = chk
        .meta
        .subtasks
        .iter()
        .find(|s| s.operators[0] == "tally")
        .unwrap();
    let StateHandle::File { name, .. } = &part.handle else {
        panic!("{:?}", part.handle)
    };
    let path = dir.path().join(&result.job_id).join("chk-3").join(name);

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let error = storage.read_state(3, &part.handle).unwrap_err();
    assert!(matches!(error, StorageError::Format(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");

    // Truncated: also reported, naming the file.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = storage.read_state(3, &part.handle).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("truncated"), "{message}");

    // Without `_metadata`, checkpoint 2 does not exist (its directory stays).
    let chk2 = dir.path().join(&result.job_id).join("chk-2");
    std::fs::remove_file(chk2.join(METADATA_FILE)).unwrap();
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, vec![3]);
    let error = storage.read_metadata(2).unwrap_err();
    assert!(matches!(error, StorageError::NotFound(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("no complete checkpoint"), "{message}");
    assert!(message.contains(&chk2.display().to_string()), "{message}");
    assert!(message.contains("no _metadata"), "{message}");
    assert!(chk2.is_dir());
}

/// Where a test runs its job: in an actix System on the test's thread (the
/// supervisor and coordinator run there), or from a plain tokio runtime,
/// where the job brings a System of its own on a thread of its own.
#[derive(Clone, Copy, Debug)]
enum Host {
    TestSystem,
    OwnSystem,
}

fn run_on<F: Future>(host: Host, f: F) -> F::Output {
    match host {
        Host::TestSystem => in_system(f),
        Host::OwnSystem => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f),
    }
}

/// An endless job (phase 1 never released) with two completed checkpoints,
/// canceled: what stays on disk once `wait` returned.
fn canceled_with(retention: ExternalizedRetention, host: Host) -> BTreeMap<u64, bool> {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20)]]);
    let config = CheckpointConfig {
        retained: 2,
        retention,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    env.add_source(feed.clone())
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(Recorder::default())
        .uid("sink");
    run_on(host, async {
        let mut client: JobClient = env.start("canceled").await.unwrap();
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        for _ in 0..2 {
            client.trigger_checkpoint().await.unwrap();
        }
        let job_dir = dir.path().join(client.job_id());
        assert_eq!(
            checkpoint_dirs(&job_dir),
            BTreeMap::from([(1, true), (2, true)])
        );
        client.cancel();
        let outcome = client.wait().await;
        assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
        checkpoint_dirs(&job_dir)
    })
}

#[test]
fn retained_checkpoints_are_kept_when_the_job_is_canceled_with_retain_on_cancellation() {
    assert_eq!(
        canceled_with(
            ExternalizedRetention::RetainOnCancellation,
            Host::TestSystem
        ),
        BTreeMap::from([(1, true), (2, true)])
    );
}

#[test]
fn retained_checkpoints_are_kept_on_cancellation_also_when_the_job_has_its_own_system() {
    assert_eq!(
        canceled_with(ExternalizedRetention::RetainOnCancellation, Host::OwnSystem),
        BTreeMap::from([(1, true), (2, true)])
    );
}

#[test]
fn retained_checkpoints_are_deleted_when_the_job_is_canceled_with_delete_on_cancellation() {
    assert_eq!(
        canceled_with(
            ExternalizedRetention::DeleteOnCancellation,
            Host::TestSystem
        ),
        BTreeMap::new()
    );
}

/// The same from a plain tokio runtime, where the coordinator runs on the
/// job's own thread: when `wait` returns, the checkpoints are still there
/// (they are deleted a moment later).
#[test]
fn retained_checkpoints_are_deleted_on_cancellation_also_when_the_job_has_its_own_system() {
    assert_eq!(
        canceled_with(ExternalizedRetention::DeleteOnCancellation, Host::OwnSystem),
        BTreeMap::new()
    );
}

// =============================================================== statistics

/// Source (p=1) → `Tally` (p=3) → sink: 2 manual checkpoints and the final one.
fn stats_job(unaligned: bool) -> (Vec<CheckpointStats>, Vec<CheckpointStats>) {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20), ids(20..30)]]);
    let config = CheckpointConfig {
        unaligned,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(3, dir.path(), config);
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(Recorder::default())
        .uid("sink");
    in_system(async {
        let mut client = env.start("stats").await.unwrap();
        let mut triggered = Vec::new();
        for phase in 0..2 {
            until("a phase out", || feed.phases_done(0) > phase).await;
            triggered.push(client.trigger_checkpoint().await.unwrap());
            feed.open_gate(phase + 1);
        }
        let result = client.wait().await.unwrap();
        assert_eq!(result.checkpoints, client.checkpoint_stats());
        (triggered, result.checkpoints)
    })
}

fn check_stats(unaligned: bool) {
    let (triggered, all) = stats_job(unaligned);
    assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        &all[..2],
        &triggered[..],
        "trigger_checkpoint returns the stats"
    );
    assert!(all
        .windows(2)
        .all(|w| w[0].trigger_time_ms <= w[1].trigger_time_ms));
    for stats in &all {
        assert_eq!(stats.failure, None);
        assert!(!stats.savepoint);
        assert!(stats.state_bytes > 0, "{stats:?}");
        // One source subtask and three Tally subtasks.
        let mut tasks: Vec<usize> = stats.subtasks.iter().map(|(_, i, _)| *i).collect();
        tasks.sort_unstable();
        assert_eq!(tasks, vec![0, 0, 1, 2], "{stats:?}");
        assert!(stats.subtasks.iter().all(|(_, _, s)| s.state_bytes > 0));
        let sum: u64 = stats.subtasks.iter().map(|(_, _, s)| s.state_bytes).sum();
        assert_eq!(sum, stats.state_bytes);
        let in_flight: u64 = stats
            .subtasks
            .iter()
            .map(|(_, _, s)| s.in_flight_bytes)
            .sum();
        assert_eq!(in_flight, stats.in_flight_bytes);
        let names: BTreeSet<&str> = stats.subtasks.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // The final checkpoint is always aligned.
        let expect_unaligned = unaligned && stats.id != 3;
        assert_eq!(stats.unaligned, expect_unaligned, "{stats:?}");
        assert!(stats
            .subtasks
            .iter()
            .all(|(_, _, s)| s.unaligned == expect_unaligned));
        if !expect_unaligned {
            assert_eq!(stats.in_flight_bytes, 0);
        }
    }
    if !unaligned {
        // The keyed state grows from checkpoint to checkpoint (unaligned, the
        // bytes of captured in-flight records count too, so they may not).
        assert!(
            all.windows(2).all(|w| w[0].state_bytes < w[1].state_bytes),
            "{all:#?}"
        );
    }
}

#[test]
fn checkpoint_statistics_of_aligned_checkpoints() {
    check_stats(false);
}

#[test]
fn checkpoint_statistics_of_unaligned_checkpoints() {
    check_stats(true);
}

// =================================================================== format

fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  |{text}|", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sample_metadata() -> CheckpointMetadata {
    CheckpointMetadata {
        version: METADATA_VERSION,
        job_name: "format".into(),
        job_id: "00000000deadbeef".into(),
        lineage: "00000000c0ffee00".into(),
        checkpoint_id: 7,
        savepoint: false,
        trigger_time_ms: 1_700_000_000_000,
        completion_time_ms: 1_700_000_000_042,
        operators: vec![
            OperatorMetadata {
                uid: "feed".into(),
                name: "Source: Feed".into(),
                parallelism: 1,
                max_parallelism: 128,
                key_type: None,
            },
            OperatorMetadata {
                uid: "tally".into(),
                name: "KeyedProcess".into(),
                parallelism: 2,
                max_parallelism: 128,
                key_type: Some("u64".into()),
            },
        ],
        subtasks: vec![
            SubtaskStateMetadata {
                operators: vec!["feed".into()],
                subtask: 0,
                handle: StateHandle::File {
                    name: "feed-0.state".into(),
                    size: 60,
                },
                in_flight_bytes: 0,
            },
            SubtaskStateMetadata {
                operators: vec!["tally".into(), "sink".into()],
                subtask: 1,
                handle: StateHandle::Memory {
                    key: "tally-1.state".into(),
                    size: 120,
                },
                in_flight_bytes: 17,
            },
        ],
    }
}

#[test]
fn the_metadata_format_is_pinned() {
    let metadata = sample_metadata();
    insta::assert_snapshot!("metadata_debug", format!("{metadata:#?}"));
    let bytes = encode_metadata(&metadata).unwrap();
    assert_eq!(&bytes[..4], b"WEIR");
    assert_eq!(bytes[4..6], format::VERSION.to_le_bytes());
    assert_eq!(bytes[6], FileKind::Metadata as u8);
    let payload = format::decode(&bytes, FileKind::Metadata, "_metadata").unwrap();
    assert_eq!(format::encode(FileKind::Metadata, payload), bytes);
    assert_eq!(decode_metadata(&bytes, "_metadata").unwrap(), metadata);
    assert_eq!(metadata.state_size(), 180);
    insta::assert_snapshot!("metadata_file", hex_dump(&bytes));
}

#[test]
fn metadata_of_version_1_reads_with_the_job_id_as_its_lineage() {
    // The pinned bytes of a version 1 `_metadata` (before lineages).
    let bytes = include_bytes!("data/metadata-v1.bin");
    let metadata = decode_metadata(bytes, "_metadata").unwrap();
    assert_eq!(metadata.version, 1);
    assert!(metadata.lineage.is_empty());
    assert_eq!(metadata.lineage(), "00000000deadbeef");
    let expected = CheckpointMetadata {
        version: 1,
        lineage: String::new(),
        ..sample_metadata()
    };
    assert_eq!(metadata, expected);
}

#[test]
fn the_state_file_format_is_pinned() {
    let state = SubtaskState {
        checkpoint_id: 7,
        operators: vec![(
            "tally".into(),
            OperatorSnapshot {
                keyed: BTreeMap::from([(3, vec![1, 2, 3])]),
                keyed_handles: Vec::new(),
                lists: vec![ListStateSnapshot::new(
                    "buffer",
                    Redistribution::Union,
                    vec![vec![9]],
                )],
                broadcast: BTreeMap::from([("rules".to_string(), vec![4, 5])]),
                raw: Some(b"raw".to_vec()),
            },
        )],
        input_channels: vec![ChannelState {
            index: 1,
            channel: 0,
            batches: vec![vec![0xaa, 0xbb]],
        }],
        output_channels: vec![],
    };
    let payload = state.encode().unwrap();
    assert_eq!(SubtaskState::decode(&payload).unwrap(), state);
    assert_eq!(state.in_flight_bytes(), 2);
    insta::assert_snapshot!(
        "state_file",
        hex_dump(&format::encode(FileKind::State, &payload))
    );
}

/// What the engine writes reads back with the public decoder and re-encodes
/// to the same bytes: `SubtaskState::encode` is the format the subtasks use.
#[test]
fn state_files_written_by_a_job_match_the_public_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 1);
    let storage = storage_of(dir.path(), &result.job_id);
    let listed = storage.list().unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![3]);
    let metadata = storage.read_metadata(3).unwrap();
    assert_eq!(metadata.version, METADATA_VERSION);
    assert_eq!(metadata.job_name, "three");
    assert_eq!(metadata.job_id, result.job_id);
    assert!(metadata.trigger_time_ms <= metadata.completion_time_ms);
    let uids: Vec<&str> = metadata.operators.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids, vec!["feed", "tally", "sink"]);
    let mut files: Vec<String> = Vec::new();
    for part in &metadata.subtasks {
        let bytes = storage.read_state(3, &part.handle).unwrap();
        let state = SubtaskState::decode(&bytes).unwrap();
        assert_eq!(state.encode().unwrap(), bytes);
        let StateHandle::File { name, size } = &part.handle else {
            panic!("{:?}", part.handle)
        };
        assert_eq!(*size, bytes.len() as u64);
        files.push(name.clone());
    }
    files.sort();
    assert_eq!(
        files,
        vec!["feed-0.state", "tally-0.state", "tally-1.state"]
    );
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(dir.path().join(&result.job_id).join("chk-3"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    let mut expected: BTreeSet<String> = files.into_iter().collect();
    expected.insert(METADATA_FILE.to_string());
    assert_eq!(on_disk, expected);
}

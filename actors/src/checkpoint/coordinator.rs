//! The checkpoint coordinator actor: triggers checkpoints at the sources,
//! collects the subtasks' acknowledgements, writes `_metadata`, notifies every
//! subtask, and keeps the statistics. Its decisions are the
//! [`CheckpointTracker`]'s; this actor only feeds it messages and the clock,
//! and carries out what it decides.
//!
//! Its protocol (in [`super::protocol`]):
//! - [`CheckpointReport`] (from subtasks): acknowledged, declined, or a source finished.
//! - [`TriggerCheckpointNow`] (from the job client): a manual checkpoint.
//! - [`Participants`] (from the supervisor, once): the subtasks' addresses.
//! - [`JobEnded`] (from the supervisor): clean up and stop.
//!
//! When every source has finished, it triggers a final checkpoint; subtasks
//! wait for its completion before they close, so that what they pre-committed
//! last is committed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use tracing::{info, warn, Span};

use super::failure::CheckpointFailure;
use super::metadata::{
    CheckpointMetadata, OperatorMetadata, StateHandle, SubtaskStateMetadata, METADATA_VERSION,
};
pub use super::protocol::{
    CheckpointReport, JobEnded, Participant, Participants, ReportKind, SavepointRequest,
    TriggerCheckpointNow,
};
use super::savepoint::{create_savepoint_dir, RoutedStorage};
use super::stats::{CheckpointStats, SubtaskCheckpointStats};
use super::storage::CheckpointStorage;
use super::tracker::{
    Aborted, AckOutcome, Acknowledgement, CheckpointTracker, PendingCheckpoint, TaskId,
};
use super::{
    BarrierKind, CheckpointBarrier, CheckpointConfig, CheckpointMode, ExternalizedRetention,
};
use crate::clock::processing_time_now;
use crate::error::JobError;
use crate::lineage::{Lineage, SnapshotRef};
use crate::subtask::protocol::{NotifyCheckpoint, TriggerCheckpoint};
use crate::supervisor::protocol::CheckpointingFailed;

/// Static facts about the job the metadata records.
#[derive(Clone, Debug)]
pub struct JobFacts {
    /// The job's name.
    pub name: String,
    /// The job's id.
    pub id: String,
    /// The job's lineage: told of every completed snapshot.
    pub lineage: Arc<Lineage>,
    /// Every operator.
    pub operators: Vec<OperatorMetadata>,
    /// The display name of each chain, by chain index.
    pub task_names: Vec<String>,
    /// The supervisor's deployment attempt this coordinator serves (0, then
    /// one more per restart): its failure reports name it, so that a report
    /// of a deployment already replaced is ignored.
    pub attempt: u32,
}

/// What a coordinator shares with the job's client, kept across restarts.
#[derive(Clone, Default)]
pub struct CheckpointProgress {
    /// Statistics of every checkpoint that ended, oldest first.
    pub history: Arc<Mutex<Vec<CheckpointStats>>>,
    /// Where the snapshot the job was stopped with is, once it completed.
    pub stopped_at: Arc<Mutex<Option<String>>>,
    /// The id the next checkpoint gets.
    pub next_id: Arc<AtomicU64>,
    /// How many checkpoints are in progress, for the job's readers.
    pub in_progress: Arc<std::sync::atomic::AtomicUsize>,
}

/// The coordinator of one job's checkpoints.
pub struct CheckpointCoordinator {
    tracker: CheckpointTracker<StateHandle>,
    storage: Arc<RoutedStorage>,
    job: JobFacts,
    subtasks: Vec<Participant>,
    sources: BTreeSet<TaskId>,
    finished_sources: BTreeSet<TaskId>,
    final_checkpoint: Option<u64>,
    /// The stop-with-savepoint in progress (also `final_checkpoint`).
    stopping: Option<u64>,
    failure: Recipient<CheckpointingFailed>,
    history: Arc<Mutex<Vec<CheckpointStats>>>,
    /// Where the job's stop snapshot is, once it completed.
    stopped_at: Arc<Mutex<Option<String>>>,
    waiters: HashMap<u64, Vec<oneshot::Sender<Result<CheckpointStats, JobError>>>>,
    trigger_times: BTreeMap<u64, (i64, Instant)>,
    /// `trigger_times.len()`, published.
    in_progress: Arc<std::sync::atomic::AtomicUsize>,
    /// The id the next checkpoint gets, shared so that a restarted job goes on counting.
    next_id: Arc<AtomicU64>,
    /// The latest checkpoint that completed (in this attempt): told with the next barrier.
    last_completed: Option<u64>,
    span: Span,
}

fn now_ms() -> u64 {
    processing_time_now().max(0) as u64
}

impl CheckpointCoordinator {
    /// A coordinator for a job with subtasks `tasks`, writing to `storage`.
    pub fn new(
        config: CheckpointConfig,
        storage: Arc<RoutedStorage>,
        job: JobFacts,
        tasks: Vec<TaskId>,
        failure: Recipient<CheckpointingFailed>,
        progress: CheckpointProgress,
    ) -> Self {
        let span = tracing::info_span!("checkpoints", job = %job.name, id = %job.id);
        let CheckpointProgress {
            history,
            stopped_at,
            next_id,
            in_progress,
        } = progress;
        in_progress.store(0, Ordering::Relaxed);
        CheckpointCoordinator {
            tracker: CheckpointTracker::new(config, tasks, next_id.load(Ordering::Relaxed)),
            next_id,
            storage,
            job,
            subtasks: Vec::new(),
            sources: BTreeSet::new(),
            finished_sources: BTreeSet::new(),
            final_checkpoint: None,
            stopping: None,
            failure,
            history,
            stopped_at,
            waiters: HashMap::new(),
            trigger_times: BTreeMap::new(),
            in_progress,
            last_completed: None,
            span,
        }
    }

    fn barrier_kind(&self) -> BarrierKind {
        let config = self.tracker.config();
        match (config.mode, config.unaligned) {
            (CheckpointMode::AtLeastOnce, _) => BarrierKind::AtLeastOnce,
            (CheckpointMode::ExactlyOnce, true) if config.aligned_timeout.is_none() => {
                BarrierKind::Unaligned
            }
            (CheckpointMode::ExactlyOnce, _) => BarrierKind::Aligned,
        }
    }

    fn trigger(&mut self, savepoint: bool, is_final: bool) -> u64 {
        self.trigger_barrier(savepoint, is_final, false)
    }

    /// Starts a savepoint: its directory first (an error leaves no trace), then
    /// the barrier, always aligned. With `stop` it is the job's last checkpoint.
    fn trigger_savepoint(&mut self, request: &SavepointRequest) -> Result<u64, String> {
        if self.final_checkpoint.is_some() {
            return Err(if self.stopping.is_some() {
                "the job is already stopping with a savepoint".to_string()
            } else {
                "the job is finishing (its sources ended): no savepoint can be taken".to_string()
            });
        }
        let id = self.tracker.next_id();
        let dir = create_savepoint_dir(&request.parent_dir, &self.job.lineage.id(), id)
            .map_err(|e| e.to_string())?;
        self.storage.route_savepoint(id, &dir);
        let triggered = self.trigger_barrier(true, request.stop, request.stop);
        if request.stop {
            self.final_checkpoint = Some(triggered);
            self.stopping = Some(triggered);
        }
        Ok(triggered)
    }

    /// Stops the job with a checkpoint (not a savepoint): its last one. A job
    /// already finishing or stopping ends with the checkpoint it is taking:
    /// the stop waits for that one.
    fn trigger_stop(&mut self) -> Result<u64, String> {
        if let Some(last) = self.final_checkpoint {
            return Ok(last);
        }
        let triggered = self.trigger_barrier(false, true, true);
        self.final_checkpoint = Some(triggered);
        self.stopping = Some(triggered);
        Ok(triggered)
    }

    fn trigger_barrier(&mut self, savepoint: bool, is_final: bool, stop: bool) -> u64 {
        let now = now_ms();
        let id = self.tracker.trigger(now, savepoint);
        self.next_id.store(id + 1, Ordering::Relaxed);
        let timestamp = processing_time_now();
        self.trigger_times.insert(id, (timestamp, Instant::now()));
        self.in_progress
            .store(self.trigger_times.len(), Ordering::Relaxed);
        // Final checkpoints and savepoints are aligned (a savepoint carries no
        // in-flight records, so it restores at any parallelism).
        let kind = match self.barrier_kind() {
            BarrierKind::Unaligned if is_final || savepoint => BarrierKind::Aligned,
            kind => kind,
        };
        let barrier = CheckpointBarrier {
            id,
            timestamp,
            kind,
            savepoint,
            is_final,
            stop,
            completed_before: self.last_completed,
        };
        for participant in &self.subtasks {
            if self.sources.contains(&participant.task) {
                participant.trigger.do_send(TriggerCheckpoint { barrier });
            }
        }
        tracing::debug!(parent: &self.span, checkpoint = id, "triggered");
        id
    }

    /// Arms the next periodic trigger and the next expiry check.
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let mut wake = now + 1_000;
        if let Some(due) = self.tracker.next_due(now) {
            wake = wake.min(due);
        }
        ctx.run_later(
            Duration::from_millis(wake.saturating_sub(now).max(1)),
            |act, ctx| act.tick(ctx),
        );
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        for (pending, aborted) in self.tracker.expire(now) {
            self.aborted(pending, aborted, ctx);
        }
        if self.final_checkpoint.is_none() && self.tracker.periodic_due(now) {
            self.trigger(false, false);
        }
        self.schedule(ctx);
    }

    fn stats_of(
        &self,
        pending: &PendingCheckpoint<StateHandle>,
        failure: Option<CheckpointFailure>,
    ) -> CheckpointStats {
        let (trigger_time_ms, started) = self
            .trigger_times
            .get(&pending.id)
            .copied()
            .unwrap_or((processing_time_now(), Instant::now()));
        let subtasks: Vec<(String, usize, SubtaskCheckpointStats)> = pending
            .acks
            .iter()
            .map(|((chain, subtask), ack)| {
                let name = self.job.task_names.get(*chain).cloned().unwrap_or_default();
                (name, *subtask, ack.stats.clone())
            })
            .collect();
        CheckpointStats {
            id: pending.id,
            trigger_time_ms,
            end_to_end: started.elapsed(),
            state_bytes: subtasks.iter().map(|(_, _, s)| s.state_bytes).sum(),
            in_flight_bytes: subtasks.iter().map(|(_, _, s)| s.in_flight_bytes).sum(),
            unaligned: subtasks.iter().any(|(_, _, s)| s.unaligned),
            savepoint: pending.savepoint,
            failure,
            location: None,
            subtasks,
        }
    }

    fn record(&mut self, stats: CheckpointStats) {
        if let Some(waiters) = self.waiters.remove(&stats.id) {
            for waiter in waiters {
                let _ = waiter.send(match &stats.failure {
                    None => Ok(stats.clone()),
                    Some(failure) => Err(JobError::CheckpointNotTaken {
                        checkpoint: Some(stats.id),
                        savepoint: stats.savepoint,
                        failure: failure.clone(),
                    }),
                });
            }
        }
        self.trigger_times.remove(&stats.id);
        self.in_progress
            .store(self.trigger_times.len(), Ordering::Relaxed);
        self.storage.forget(stats.id);
        if let Ok(mut history) = self.history.lock() {
            history.push(stats);
        }
    }

    fn notify(&self, id: u64, complete: bool) {
        for participant in &self.subtasks {
            participant
                .notify
                .do_send(NotifyCheckpoint { id, complete });
        }
    }

    fn aborted(
        &mut self,
        pending: PendingCheckpoint<StateHandle>,
        aborted: Aborted,
        ctx: &mut Context<Self>,
    ) {
        warn!(parent: &self.span, checkpoint = aborted.id, reason = %aborted.reason, "checkpoint aborted");
        if let Err(e) = self.storage.discard(aborted.id) {
            warn!(parent: &self.span, checkpoint = aborted.id, error = %e, "cannot delete an aborted checkpoint");
        }
        self.notify(aborted.id, false);
        let stats = self.stats_of(&pending, Some(aborted.reason.clone()));
        self.record(stats);
        self.after_failure(aborted, ctx);
    }

    fn after_failure(&mut self, aborted: Aborted, _ctx: &mut Context<Self>) {
        if aborted.fail_job {
            self.failure.do_send(CheckpointingFailed {
                attempt: self.job.attempt,
                error: JobError::CheckpointingFailed {
                    checkpoint: aborted.id,
                    failure: aborted.reason,
                    failed_in_a_row: self.tracker.consecutive_failures(),
                    tolerated: self.tracker.config().tolerable_failures,
                },
            });
        } else if self.stopping == Some(aborted.id) {
            // A failed stop-with-savepoint leaves the job running (as Flink).
            self.stopping = None;
            self.final_checkpoint = None;
        } else if self.final_checkpoint == Some(aborted.id) {
            // The job cannot end without a completed final checkpoint: try again.
            self.final_checkpoint = Some(self.trigger(false, true));
        }
    }

    fn complete(&mut self, pending: PendingCheckpoint<StateHandle>, ctx: &mut Context<Self>) {
        let id = pending.id;
        let trigger_time_ms = self.trigger_times.get(&id).map_or(0, |(t, _)| *t);
        let subtasks = pending
            .acks
            .iter()
            .map(|(task, ack)| SubtaskStateMetadata {
                operators: self
                    .subtasks
                    .iter()
                    .find(|p| p.task == *task)
                    .map(|p| p.uids.clone())
                    .unwrap_or_default(),
                subtask: task.1,
                handle: ack.handle.clone(),
                in_flight_bytes: ack.stats.in_flight_bytes,
            })
            .collect();
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            job_name: self.job.name.clone(),
            job_id: self.job.id.clone(),
            lineage: self.job.lineage.id(),
            checkpoint_id: id,
            savepoint: pending.savepoint,
            trigger_time_ms,
            completion_time_ms: processing_time_now(),
            operators: self.job.operators.clone(),
            subtasks,
        };
        let location = match self.storage.write_metadata(&metadata) {
            Ok(location) => location,
            Err(e) => {
                let reason = CheckpointFailure::MetadataNotWritten {
                    reason: e.to_string(),
                };
                if let Some(aborted) = self.tracker.fail(id, reason, now_ms()) {
                    if let Err(e) = self.storage.discard(id) {
                        warn!(parent: &self.span, checkpoint = id, error = %e, "cannot delete a failed checkpoint");
                    }
                    self.notify(id, false);
                    let stats = self.stats_of(&pending, Some(aborted.reason.clone()));
                    self.record(stats);
                    self.after_failure(aborted, ctx);
                }
                return;
            }
        };
        // The lineage knows the snapshot before anyone is told it completed (a
        // sink commits then): a later `latest` never restores behind a commit.
        // A savepoint is named by its absolute path: a later run may start
        // in another working directory.
        let snapshot = SnapshotRef {
            id,
            savepoint: pending.savepoint,
            location: self
                .storage
                .savepoint_dir(id)
                .map(|dir| crate::location::absolute(&dir)),
        };
        if let Err(e) = self.job.lineage.completed(snapshot) {
            warn!(parent: &self.span, checkpoint = id, error = %e, "the lineage record on disk does not know this snapshot: after this run, name it to resume from it (`latest` may find an older one, and the sinks then refuse it)");
        }
        let (subsumed, discard) = self.tracker.complete(id, pending.savepoint, now_ms());
        let mut stats = self.stats_of(&pending, None);
        if self.stopping == Some(id) {
            if let Ok(mut slot) = self.stopped_at.lock() {
                *slot = Some(location.clone());
            }
        }
        stats.location = Some(location);
        info!(
            parent: &self.span,
            checkpoint = id,
            millis = stats.end_to_end.as_millis() as u64,
            state_bytes = stats.state_bytes,
            in_flight_bytes = stats.in_flight_bytes,
            unaligned = stats.unaligned,
            "checkpoint complete"
        );
        self.last_completed = Some(self.last_completed.map_or(id, |last| last.max(id)));
        self.notify(id, true);
        self.record(stats);
        for (old, aborted) in subsumed {
            self.aborted(old, aborted, ctx);
        }
        for old in discard {
            if let Err(e) = self.storage.discard(old) {
                warn!(parent: &self.span, checkpoint = old, error = %e, "cannot delete a subsumed checkpoint");
            }
        }
    }

    /// Deletes what the job's end leaves behind, as the retention says.
    fn clean_up(&mut self, canceled: bool) {
        self.in_progress.store(0, Ordering::Relaxed);
        for (pending, _) in self.tracker.abort_all(now_ms()) {
            let _ = self.storage.discard(pending.id);
        }
        if canceled
            && self.tracker.config().retention == ExternalizedRetention::DeleteOnCancellation
        {
            for id in self.tracker.retained() {
                let _ = self.storage.discard(id);
            }
        }
    }
}

impl Actor for CheckpointCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tracker.start(now_ms());
        // Checkpoints retained by an earlier deployment of this job count toward `retained`.
        // (Savepoints are written elsewhere: these are checkpoints.)
        if let Ok(ids) = self.storage.retained_ids() {
            self.tracker.adopt_retained(ids);
        }
        self.schedule(ctx);
    }
}

impl Handler<Participants> for CheckpointCoordinator {
    type Result = ();

    fn handle(&mut self, msg: Participants, _ctx: &mut Self::Context) {
        self.subtasks = msg.subtasks;
        self.sources = msg.sources.into_iter().collect();
    }
}

impl Handler<CheckpointReport> for CheckpointCoordinator {
    type Result = ();

    fn handle(&mut self, report: CheckpointReport, ctx: &mut Self::Context) {
        match report.kind {
            ReportKind::Acknowledged { id, handle, stats } => {
                match self
                    .tracker
                    .acknowledge(id, report.task, Acknowledgement { handle, stats })
                {
                    AckOutcome::Pending => {}
                    AckOutcome::AllAcknowledged(pending) => self.complete(pending, ctx),
                    AckOutcome::Unknown(_) => {
                        // Late: its checkpoint was aborted, and this subtask wrote
                        // after the abort deleted the rest.
                        if !self.tracker.retained().contains(&id) {
                            let _ = self.storage.discard(id);
                        }
                    }
                }
            }
            ReportKind::Declined {
                id,
                reason,
                subsumed,
            } => {
                let declined = if subsumed {
                    self.tracker.subsume(id, now_ms())
                } else {
                    let declined = CheckpointFailure::Declined {
                        operator: self
                            .job
                            .task_names
                            .get(report.task.0)
                            .cloned()
                            .unwrap_or_default(),
                        subtask: report.task.1,
                        reason,
                    };
                    self.tracker.decline(id, declined, now_ms())
                };
                if let Some((pending, aborted)) = declined {
                    self.aborted(pending, aborted, ctx);
                }
            }
            ReportKind::SourceFinished => {
                self.finished_sources.insert(report.task);
                if self.final_checkpoint.is_none()
                    && self.finished_sources.len() == self.sources.len()
                {
                    self.final_checkpoint = Some(self.trigger(false, true));
                }
            }
        }
    }
}

impl Handler<TriggerCheckpointNow> for CheckpointCoordinator {
    type Result = MessageResult<TriggerCheckpointNow>;

    fn handle(&mut self, msg: TriggerCheckpointNow, _ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let triggered = match &msg.savepoint {
            Some(request) => self.trigger_savepoint(request),
            None if msg.stop => self.trigger_stop(),
            None if self.stopping.is_some() => {
                Err("the job is stopping with a savepoint: no checkpoint can be taken".into())
            }
            None => Ok(self.trigger(false, false)),
        };
        match triggered {
            Ok(id) => self.waiters.entry(id).or_default().push(tx),
            Err(reason) => {
                let _ = tx.send(Err(JobError::CheckpointNotTaken {
                    checkpoint: None,
                    savepoint: msg.savepoint.is_some(),
                    failure: CheckpointFailure::NotTriggered { reason },
                }));
            }
        }
        MessageResult(rx)
    }
}

impl Handler<JobEnded> for CheckpointCoordinator {
    type Result = ();

    fn handle(&mut self, msg: JobEnded, ctx: &mut Self::Context) {
        self.clean_up(msg.canceled);
        ctx.stop();
    }
}

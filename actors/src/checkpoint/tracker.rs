//! The checkpoint coordinator's bookkeeping, as a plain type: which checkpoint
//! is pending, which subtasks acknowledged it, when one completes, times out,
//! is declined or subsumed, and when failures are too many. Time is passed in
//! (milliseconds), so every decision is tested with a fake clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::CheckpointConfig;
use super::failure::CheckpointFailure;
use super::stats::SubtaskCheckpointStats;

/// Identifies a subtask: (chain index, subtask index).
pub type TaskId = (usize, usize);

/// What a subtask reports when its part of a checkpoint is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Acknowledgement<H> {
    /// Where its state went (storage handles, opaque here).
    pub handle: H,
    /// Its timings and sizes.
    pub stats: SubtaskCheckpointStats,
}

/// A checkpoint in flight.
#[derive(Debug)]
pub struct PendingCheckpoint<H> {
    /// The checkpoint's id.
    pub id: u64,
    /// When it was triggered (ms).
    pub triggered_at: u64,
    /// Whether it is a savepoint (never subsumed, never deleted).
    pub savepoint: bool,
    awaiting: BTreeSet<TaskId>,
    /// The acknowledgements received so far.
    pub acks: BTreeMap<TaskId, Acknowledgement<H>>,
}

/// What an acknowledgement did.
#[derive(Debug)]
pub enum AckOutcome<H> {
    /// More acknowledgements are awaited.
    Pending,
    /// Every subtask acknowledged: the checkpoint can be finalised.
    AllAcknowledged(PendingCheckpoint<H>),
    /// The checkpoint is not pending (late, aborted, or unknown): discard the handle.
    Unknown(H),
}

/// The coordinator's ledger of checkpoints.
#[derive(Debug)]
pub struct CheckpointTracker<H> {
    config: CheckpointConfig,
    tasks: BTreeSet<TaskId>,
    next_id: u64,
    last_trigger_at: Option<u64>,
    last_end_at: Option<u64>,
    pending: BTreeMap<u64, PendingCheckpoint<H>>,
    completed: VecDeque<u64>,
    consecutive_failures: u32,
}

/// What an abort means for the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aborted {
    /// The aborted checkpoint.
    pub id: u64,
    /// Why.
    pub reason: CheckpointFailure,
    /// Whether this failure exceeds the tolerable consecutive failures.
    pub fail_job: bool,
}

impl<H> CheckpointTracker<H> {
    /// A ledger for a job whose subtasks are `tasks`, numbering checkpoints from `first_id`.
    pub fn new(
        config: CheckpointConfig,
        tasks: impl IntoIterator<Item = TaskId>,
        first_id: u64,
    ) -> Self {
        CheckpointTracker {
            config,
            tasks: tasks.into_iter().collect(),
            next_id: first_id,
            last_trigger_at: None,
            last_end_at: None,
            pending: BTreeMap::new(),
            completed: VecDeque::new(),
            consecutive_failures: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// Ids of the checkpoints in flight.
    pub fn pending_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// Failed checkpoints in a row, so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The job started at `now`: the first periodic checkpoint is due one
    /// interval later.
    pub fn start(&mut self, now: u64) {
        if self.last_trigger_at.is_none() {
            self.last_trigger_at = Some(now);
        }
    }

    /// Whether a periodic checkpoint is due at `now`.
    pub fn periodic_due(&self, now: u64) -> bool {
        let Some(interval) = self.config.interval else {
            return false;
        };
        let interval = interval.as_millis() as u64;
        self.last_trigger_at.is_none_or(|t| now >= t + interval) && self.can_trigger(now)
    }

    /// Whether a checkpoint may start now (concurrency limit and minimum pause).
    pub fn can_trigger(&self, now: u64) -> bool {
        let paused = self
            .last_end_at
            .is_some_and(|end| now < end + self.config.min_pause.as_millis() as u64);
        self.pending.len() < self.config.max_concurrent && !paused
    }

    /// When the next periodic checkpoint is due (ms), if periodic checkpoints are on.
    pub fn next_due(&self, now: u64) -> Option<u64> {
        let interval = self.config.interval?.as_millis() as u64;
        let by_interval = self.last_trigger_at.map_or(now, |t| t + interval);
        let by_pause = self
            .last_end_at
            .map_or(now, |end| end + self.config.min_pause.as_millis() as u64);
        Some(by_interval.max(by_pause).max(now))
    }

    /// The id the next [`trigger`](Self::trigger) gives.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Starts a checkpoint (or savepoint) at `now` and returns its id.
    pub fn trigger(&mut self, now: u64, savepoint: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.last_trigger_at = Some(now);
        self.pending.insert(
            id,
            PendingCheckpoint {
                id,
                triggered_at: now,
                savepoint,
                awaiting: self.tasks.clone(),
                acks: BTreeMap::new(),
            },
        );
        id
    }

    /// Records a subtask's acknowledgement.
    pub fn acknowledge(&mut self, id: u64, task: TaskId, ack: Acknowledgement<H>) -> AckOutcome<H> {
        let Some(pending) = self.pending.get_mut(&id) else {
            return AckOutcome::Unknown(ack.handle);
        };
        if !pending.awaiting.remove(&task) {
            return AckOutcome::Unknown(ack.handle);
        }
        pending.acks.insert(task, ack);
        if !pending.awaiting.is_empty() {
            return AckOutcome::Pending;
        }
        match self.pending.remove(&id) {
            Some(done) => AckOutcome::AllAcknowledged(done),
            None => AckOutcome::Pending,
        }
    }

    fn abort(
        &mut self,
        id: u64,
        reason: CheckpointFailure,
        now: u64,
    ) -> Option<(PendingCheckpoint<H>, Aborted)> {
        let pending = self.pending.remove(&id)?;
        let counts = reason.counts_as_failure();
        if counts {
            self.consecutive_failures += 1;
            self.last_end_at = Some(now);
        }
        let fail_job = counts && self.consecutive_failures > self.config.tolerable_failures;
        Some((
            pending,
            Aborted {
                id,
                reason,
                fail_job,
            },
        ))
    }

    /// A subtask declined checkpoint `id` (`declined` says which and why):
    /// it is aborted.
    pub fn decline(
        &mut self,
        id: u64,
        declined: CheckpointFailure,
        now: u64,
    ) -> Option<(PendingCheckpoint<H>, Aborted)> {
        self.abort(id, declined, now)
    }

    /// Checkpoint `id` was overtaken by a newer one at some subtask: aborted,
    /// but not counted as a failure.
    pub fn subsume(&mut self, id: u64, now: u64) -> Option<(PendingCheckpoint<H>, Aborted)> {
        self.abort(id, CheckpointFailure::Subsumed, now)
    }

    /// Finalising checkpoint `id` failed (its metadata not written).
    pub fn fail(&mut self, id: u64, reason: CheckpointFailure, now: u64) -> Option<Aborted> {
        // The checkpoint left `pending` when its last ack came in; count it here.
        self.consecutive_failures += 1;
        self.last_end_at = Some(now);
        let _ = self.pending.remove(&id);
        Some(Aborted {
            id,
            reason,
            fail_job: self.consecutive_failures > self.config.tolerable_failures,
        })
    }

    /// Aborts every checkpoint older than the timeout at `now`.
    pub fn expire(&mut self, now: u64) -> Vec<(PendingCheckpoint<H>, Aborted)> {
        let timeout_ms = self.config.timeout.as_millis() as u64;
        let expired: Vec<u64> = self
            .pending
            .values()
            .filter(|p| now >= p.triggered_at + timeout_ms)
            .map(|p| p.id)
            .collect();
        expired
            .into_iter()
            .filter_map(|id| self.abort(id, CheckpointFailure::Expired { timeout_ms }, now))
            .collect()
    }

    /// Aborts everything in flight (the job ends).
    pub fn abort_all(&mut self, now: u64) -> Vec<(PendingCheckpoint<H>, Aborted)> {
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.abort(id, CheckpointFailure::JobEnded, now))
            .collect()
    }

    /// Checkpoint `id` is complete (its metadata written): pending checkpoints
    /// older than it are subsumed, and completed checkpoints beyond the
    /// retained count are returned for deletion (oldest first).
    pub fn complete(
        &mut self,
        id: u64,
        savepoint: bool,
        now: u64,
    ) -> (Vec<(PendingCheckpoint<H>, Aborted)>, Vec<u64>) {
        self.pending.remove(&id);
        self.consecutive_failures = 0;
        self.last_end_at = Some(now);
        let older: Vec<u64> = self
            .pending
            .range(..id)
            .filter(|(_, p)| !p.savepoint)
            .map(|(k, _)| *k)
            .collect();
        let subsumed = older
            .into_iter()
            .filter_map(|old| self.abort(old, CheckpointFailure::Subsumed, now))
            .collect();
        let mut discard = Vec::new();
        if !savepoint {
            self.completed.push_back(id);
            while self.completed.len() > self.config.retained {
                if let Some(old) = self.completed.pop_front() {
                    discard.push(old);
                }
            }
        }
        (subsumed, discard)
    }

    /// Counts checkpoints completed before (an earlier deployment) as retained.
    pub fn adopt_retained(&mut self, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            if !self.completed.contains(&id) {
                self.completed.push_back(id);
            }
        }
        self.completed.make_contiguous().sort_unstable();
    }

    /// The retained completed checkpoints, oldest first.
    pub fn retained(&self) -> Vec<u64> {
        self.completed.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn declined(reason: &str) -> CheckpointFailure {
        CheckpointFailure::Declined {
            operator: "map".into(),
            subtask: 0,
            reason: reason.into(),
        }
    }

    fn tracker(config: CheckpointConfig) -> CheckpointTracker<&'static str> {
        CheckpointTracker::new(config, [(0, 0), (0, 1), (1, 0)], 1)
    }

    fn ack(h: &'static str) -> Acknowledgement<&'static str> {
        Acknowledgement {
            handle: h,
            stats: SubtaskCheckpointStats::default(),
        }
    }

    #[test]
    fn a_checkpoint_completes_when_every_subtask_acknowledged() {
        let mut t = tracker(CheckpointConfig::every(Duration::from_millis(100)));
        assert!(t.periodic_due(0));
        let id = t.trigger(0, false);
        assert_eq!(id, 1);
        assert!(matches!(
            t.acknowledge(1, (0, 0), ack("a")),
            AckOutcome::Pending
        ));
        assert!(matches!(
            t.acknowledge(1, (0, 0), ack("again")),
            AckOutcome::Unknown("again")
        ));
        assert!(matches!(
            t.acknowledge(1, (0, 1), ack("b")),
            AckOutcome::Pending
        ));
        match t.acknowledge(1, (1, 0), ack("c")) {
            AckOutcome::AllAcknowledged(done) => assert_eq!(done.acks.len(), 3),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.acknowledge(1, (1, 0), ack("late")),
            AckOutcome::Unknown("late")
        ));
    }

    #[test]
    fn interval_concurrency_and_min_pause_gate_triggers() {
        let config = CheckpointConfig {
            interval: Some(Duration::from_millis(100)),
            min_pause: Duration::from_millis(50),
            max_concurrent: 1,
            ..CheckpointConfig::default()
        };
        let mut t = tracker(config);
        t.trigger(0, false);
        assert!(!t.periodic_due(150), "one in flight already");
        t.complete(1, false, 180);
        assert!(!t.periodic_due(200), "min pause after the end at 180");
        assert_eq!(t.next_due(200), Some(230));
        assert!(t.periodic_due(230));
    }

    #[test]
    fn timeouts_and_declines_count_toward_the_tolerable_failures() {
        let config = CheckpointConfig {
            interval: Some(Duration::from_millis(10)),
            timeout: Duration::from_millis(100),
            tolerable_failures: 1,
            max_concurrent: 5,
            ..CheckpointConfig::default()
        };
        let mut t = tracker(config);
        t.trigger(0, false);
        t.trigger(50, false);
        let expired = t.expire(100);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            expired[0].1,
            Aborted {
                id: 1,
                reason: CheckpointFailure::Expired { timeout_ms: 100 },
                fail_job: false
            }
        );
        let (_, declined) = t.decline(2, declined("no"), 120).unwrap();
        assert!(declined.fail_job, "second failure in a row, one tolerated");
        assert_eq!(t.consecutive_failures(), 2);
    }

    #[test]
    fn completion_resets_failures_subsumes_older_and_retains_the_newest() {
        let config = CheckpointConfig {
            interval: Some(Duration::from_millis(10)),
            max_concurrent: 3,
            retained: 2,
            ..CheckpointConfig::default()
        };
        let mut t = tracker(config);
        for now in [0, 10, 20] {
            t.trigger(now, false);
        }
        t.decline(1, declined("x"), 25);
        let (subsumed, discard) = t.complete(3, false, 30);
        assert_eq!(
            subsumed
                .iter()
                .map(|(_, a)| (a.id, a.reason.clone()))
                .collect::<Vec<_>>(),
            vec![(2, CheckpointFailure::Subsumed)]
        );
        assert!(discard.is_empty());
        assert_eq!(t.consecutive_failures(), 0);
        let a = t.trigger(40, false);
        t.complete(a, false, 41);
        let b = t.trigger(50, false);
        let (_, discard) = t.complete(b, false, 51);
        assert_eq!(discard, vec![3]);
        assert_eq!(t.retained(), vec![a, b]);
    }

    #[test]
    fn savepoints_are_neither_subsumed_nor_retained() {
        let mut t = tracker(CheckpointConfig {
            max_concurrent: 2,
            ..CheckpointConfig::default()
        });
        let sp = t.trigger(0, true);
        let cp = t.trigger(1, false);
        let (subsumed, _) = t.complete(cp, false, 2);
        assert!(subsumed.is_empty());
        assert_eq!(t.pending_ids(), vec![sp]);
        let (_, discard) = t.complete(sp, true, 3);
        assert!(discard.is_empty());
        assert_eq!(t.retained(), vec![cp]);
    }
}

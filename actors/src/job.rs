//! What a running job's supervisor, its checkpoint coordinator and its
//! clients share: its status, checkpoint history, lineage and storage.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::Recipient;

use crate::checkpoint::protocol::TriggerCheckpointNow;
use crate::checkpoint::savepoint::RoutedStorage;
use crate::checkpoint::CheckpointStats;
use crate::error::JobError;
use crate::lineage::Lineage;
use crate::restart::Supervision;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Accepted, not yet deployed.
    Created,
    /// Every subtask is deployed and running.
    Running,
    /// A subtask failed; the job is being restarted from its latest checkpoint.
    Restarting,
    /// A subtask failed; the others are being canceled.
    Failing,
    /// The job failed.
    Failed,
    /// A cancel was requested; the subtasks are being stopped.
    Canceling,
    /// The job was canceled.
    Canceled,
    /// Every subtask finished.
    Finished,
}

impl JobStatus {
    /// Whether the job has ended (finished, failed or canceled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

/// State shared between a job's supervisor and its clients.
pub struct JobShared {
    /// The job's id (one per run).
    pub job_id: String,
    pub(crate) status: Mutex<JobStatus>,
    /// Statistics of every finished checkpoint, oldest first.
    pub checkpoints: Arc<Mutex<Vec<CheckpointStats>>>,
    /// Where the checkpoint coordinator takes triggers, once deployed.
    pub coordinator: Mutex<Option<Recipient<TriggerCheckpointNow>>>,
    /// The id the next checkpoint gets (kept across restarts).
    pub next_checkpoint_id: Arc<AtomicU64>,
    /// Restarts so far.
    pub restarts: AtomicU32,
    /// The last failure, restarted from or not.
    pub last_failure: Mutex<Option<JobError>>,
    /// Where checkpoints (and savepoints) go, if the job has checkpointing.
    pub storage: Option<Arc<RoutedStorage>>,
    /// Where savepoints go when a call does not say.
    pub savepoint_dir: Option<PathBuf>,
    /// The job's lineage: what it restores from, and its newest snapshot.
    pub lineage: Arc<Lineage>,
    /// Where the snapshot the job was stopped with is, once it completed.
    pub stopped_at: Arc<Mutex<Option<String>>>,
    /// Where live queries go while a deployment runs (see [`crate::query`]).
    pub(crate) query_routes: Mutex<Option<Arc<crate::query::QueryRoutes>>>,
    /// The subtasks' live metrics.
    pub live: crate::live::LiveMetrics,
    /// The latest failures, oldest first (at most [`FAILURE_HISTORY`]).
    pub failures: Mutex<VecDeque<FailureRecord>>,
    /// Where the restart strategy stands.
    pub supervision: Mutex<Supervision>,
    /// When the job was launched (milliseconds since the epoch).
    pub started_ms: i64,
    /// Its checkpoint settings, if it checkpoints.
    pub checkpoint_config: Option<crate::checkpoint::CheckpointConfig>,
    /// When it ended (milliseconds since the epoch; `i64::MIN` while it runs).
    pub ended_ms: AtomicI64,
    /// Failures so far (the history keeps only the latest).
    pub failures_total: AtomicU64,
    /// Checkpoints triggered and not ended yet (the coordinator keeps it).
    pub checkpoints_in_progress: Arc<std::sync::atomic::AtomicUsize>,
    /// Deployments that restored a snapshot, and the latest one restored.
    pub restores: Mutex<Restores>,
}

/// How often a job restored state, and from what (Flink's restored checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Restores {
    /// Deployments that started from a snapshot (the first one included).
    pub count: u64,
    /// The latest snapshot restored.
    pub latest: Option<RestoredSnapshot>,
}

/// A snapshot a deployment started from.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RestoredSnapshot {
    /// The checkpoint (or savepoint) id.
    pub id: u64,
    /// When it was restored (milliseconds since the epoch).
    pub restore_timestamp_ms: i64,
    /// Whether it was a savepoint.
    pub savepoint: bool,
    /// Where it is (a directory, or `memory:chk-N`).
    pub location: String,
}

/// How many failures a job remembers (Flink's default exception history size).
pub const FAILURE_HISTORY: usize = 16;

/// One failure of a job, and what the supervisor made of it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FailureRecord {
    /// When it was reported (milliseconds since the epoch).
    pub timestamp_ms: i64,
    /// The operator (task) that failed, if one did.
    pub operator: Option<String>,
    /// Its subtask, if one failed.
    pub subtask: Option<usize>,
    /// The error, as displayed.
    pub message: String,
    /// Whether the job restarted from it.
    pub restarted: bool,
}

impl JobShared {
    /// Sets the job's status.
    pub fn set_status(&self, status: JobStatus) {
        if let Ok(mut s) = self.status.lock() {
            tracing::debug!(job_id = %self.job_id, from = ?*s, to = ?status, "job status");
            *s = status;
            if status.is_terminal() {
                self.ended_ms
                    .store(crate::clock::processing_time_now(), Ordering::Relaxed);
            }
        }
    }

    /// The job's status.
    pub fn status(&self) -> JobStatus {
        self.status.lock().map(|s| *s).unwrap_or(JobStatus::Failed)
    }

    /// When the job ended (milliseconds since the epoch), once it has.
    pub fn ended_ms(&self) -> Option<i64> {
        Some(self.ended_ms.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }

    /// Remembers a failure (the oldest is forgotten past [`FAILURE_HISTORY`]).
    pub fn record_failure(&self, failure: FailureRecord) {
        self.failures_total.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut failures) = self.failures.lock() {
            if failures.len() == FAILURE_HISTORY {
                failures.pop_front();
            }
            failures.push_back(failure);
        }
    }
}

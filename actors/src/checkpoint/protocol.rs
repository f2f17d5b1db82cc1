//! The checkpoint coordinator's protocol: what subtasks report, who takes
//! part, and what the job's client and supervisor ask of it.

use std::path::PathBuf;

use actix::prelude::*;
use futures::channel::oneshot;

use super::metadata::StateHandle;
use super::stats::{CheckpointStats, SubtaskCheckpointStats};
use super::tracker::TaskId;
use crate::error::JobError;
use crate::subtask::protocol::{NotifyCheckpoint, TriggerCheckpoint};

/// What a subtask tells the coordinator.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CheckpointReport {
    /// The reporting subtask.
    pub task: TaskId,
    /// What it reports.
    pub kind: ReportKind,
}

/// The kinds of [`CheckpointReport`].
#[derive(Debug)]
pub enum ReportKind {
    /// Its part of checkpoint `id` is written.
    Acknowledged {
        /// The checkpoint.
        id: u64,
        /// Where its state is.
        handle: StateHandle,
        /// Its figures.
        stats: SubtaskCheckpointStats,
    },
    /// It cannot take checkpoint `id`.
    Declined {
        /// The checkpoint.
        id: u64,
        /// Why.
        reason: String,
        /// Because a newer checkpoint's barrier overtook it (not a failure).
        subsumed: bool,
    },
    /// A source subtask has emitted its last record.
    SourceFinished,
}

/// Who takes part in checkpoints, sent once by the supervisor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Participants {
    /// Every subtask.
    pub subtasks: Vec<Participant>,
    /// Which of them are sources.
    pub sources: Vec<TaskId>,
}

/// One subtask that takes part in checkpoints.
#[derive(Clone)]
pub struct Participant {
    /// Which subtask.
    pub task: TaskId,
    /// Where a source's checkpoint is triggered.
    pub trigger: Recipient<TriggerCheckpoint>,
    /// Where completions and aborts are told.
    pub notify: Recipient<NotifyCheckpoint>,
    /// The uids of its chain's operators, head first.
    pub uids: Vec<String>,
}

/// A manual checkpoint (or savepoint); the receiver resolves when it ends.
#[derive(Message)]
#[rtype(result = "oneshot::Receiver<Result<CheckpointStats, JobError>>")]
pub struct TriggerCheckpointNow {
    /// A savepoint rather than a checkpoint.
    pub savepoint: Option<SavepointRequest>,
    /// Stop the job with this checkpoint (without a savepoint): sources emit
    /// nothing after its barrier and its completion ends the job, which
    /// resumes from it with `latest`.
    pub stop: bool,
}

/// Where a savepoint goes and whether the job stops with it.
#[derive(Clone, Debug)]
pub struct SavepointRequest {
    /// The directory under which `savepoint-<job>-<n>/` is created.
    pub parent_dir: PathBuf,
    /// Stop the job with this savepoint: sources emit nothing after its
    /// barrier, and its completion (which commits the sinks) ends the job.
    pub stop: bool,
}

/// The job ended; `canceled` says whether by cancellation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct JobEnded {
    /// Whether the job was canceled (retention applies).
    pub canceled: bool,
}

//! The supervisor's protocol: what subtasks, the checkpoint coordinator and
//! the job's client tell it.

use actix::prelude::*;

use crate::checkpoint::protocol::TriggerCheckpointNow;
use crate::error::JobError;
use crate::metrics::SubtaskMetrics;

/// How a subtask ended, as reported to the supervisor.
#[derive(Debug)]
pub enum SubtaskOutcome {
    /// All inputs ended and all output was delivered.
    Finished(SubtaskMetrics),
    /// User code failed, or the actor went away.
    Failed {
        /// The failing operator's name.
        operator: String,
        /// What happened.
        cause: String,
        /// Whether a restart can help.
        retryable: bool,
    },
}

/// A subtask's report to its supervisor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubtaskReport {
    /// The deployment the subtask belongs to.
    pub attempt: u32,
    /// Chain index.
    pub chain: usize,
    /// Subtask index.
    pub subtask: usize,
    /// Parallelism of the chain.
    pub parallelism: usize,
    /// The outcome.
    pub outcome: SubtaskOutcome,
}

/// Asks the supervisor to cancel the job.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelJob;

/// The checkpointing of a job failed past the tolerable failures (a
/// [`JobError::CheckpointingFailed`]), in deployment `attempt`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckpointingFailed {
    /// The deployment whose coordinator reports it: a report of a
    /// deployment already replaced (it failed otherwise, and the job is
    /// restarting) is not a failure of the current one.
    pub attempt: u32,
    /// What failed.
    pub error: JobError,
}

/// Asks the supervisor for the checkpoint coordinator of the current deployment.
#[derive(Message)]
#[rtype(result = "Option<Recipient<TriggerCheckpointNow>>")]
pub struct GetCoordinator;

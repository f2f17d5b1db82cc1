//! Why a job did not finish.

use thiserror::Error;

/// The ways a job can end other than by finishing.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum JobError {
    /// The job graph or its configuration is not runnable; nothing was started.
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// User code failed: a panic, or an error returned by an operator, source or sink.
    #[error("operator `{operator}` (subtask {subtask} of {parallelism}) failed: {cause}")]
    OperatorFailed {
        /// Name of the operator whose code failed.
        operator: String,
        /// Index of the failing subtask.
        subtask: usize,
        /// Parallelism of the operator.
        parallelism: usize,
        /// The panic message or the error's display text.
        cause: String,
    },
    /// The state of the latest checkpoint could not be restored.
    #[error("restoring the job failed: {0}")]
    RestoreFailed(String),
    /// More checkpoints failed in a row than the job tolerates.
    #[error("checkpointing failed: {0}")]
    CheckpointingFailed(String),
    /// The job was canceled through its [`crate::JobClient`].
    #[error("job `{0}` was canceled")]
    Canceled(String),
    /// The runtime itself could not run the job (threads, actor system).
    #[error("runtime failure: {0}")]
    Runtime(String),
}

//! Why a checkpoint ended without completing (Flink's checkpoint failure
//! reasons): the one type the tracker decides with, the statistics record,
//! a manual trigger returns and [`crate::JobError::CheckpointingFailed`]
//! carries.

use thiserror::Error;

/// Why a checkpoint did not complete.
///
/// Expired, declined and unwritten checkpoints count toward the tolerable
/// consecutive failures ([`CheckpointFailure::counts_as_failure`]); a
/// subsumed one, or one the job's end cut short, does not.
///
/// ```
/// use weir_actors::checkpoint::CheckpointFailure;
/// let declined = CheckpointFailure::Declined {
///     operator: "sink".into(),
///     subtask: 1,
///     reason: "disk full".into(),
/// };
/// assert_eq!(declined.to_string(), "declined by `sink` subtask 1: disk full");
/// assert!(declined.counts_as_failure());
/// assert!(!CheckpointFailure::Subsumed.counts_as_failure());
/// ```
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CheckpointFailure {
    /// Not every subtask acknowledged it within the checkpoint timeout.
    #[error("expired before all subtasks acknowledged (timeout {timeout_ms} ms)")]
    Expired {
        /// The timeout it exceeded.
        timeout_ms: u64,
    },
    /// A subtask could not take it (its state did not snapshot or write).
    #[error("declined by `{operator}` subtask {subtask}: {reason}")]
    Declined {
        /// The subtask's task (its chain's name).
        operator: String,
        /// The subtask's index.
        subtask: usize,
        /// What went wrong there, naming the operator and the file.
        reason: String,
    },
    /// Every subtask acknowledged, but its `_metadata` could not be written.
    #[error("failed: cannot write its metadata: {reason}")]
    MetadataNotWritten {
        /// The storage's error, naming the path.
        reason: String,
    },
    /// A newer checkpoint completed first (not a failure).
    #[error("subsumed by a newer completed checkpoint")]
    Subsumed,
    /// The job ended while it was pending (not a failure).
    #[error("the job ended")]
    JobEnded,
    /// A checkpoint or savepoint asked for was not started.
    #[error("not triggered: {reason}")]
    NotTriggered {
        /// Why (the job is stopping or finishing, the savepoint directory
        /// cannot be created, ...).
        reason: String,
    },
}

impl CheckpointFailure {
    /// Whether it counts toward the tolerable consecutive checkpoint failures.
    pub fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            CheckpointFailure::Subsumed
                | CheckpointFailure::JobEnded
                | CheckpointFailure::NotTriggered { .. }
        )
    }
}

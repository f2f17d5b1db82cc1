//! Why a job did not finish, and whether running it again can help.
//!
//! A restart strategy restarts a job only from failures a restart can fix: a
//! panic, a lost connection, a full disk that may drain. A missing input file,
//! a permission denied, an invalid configuration, a restore behind a sink's
//! commits or state that does not decode fail the job at once, whatever the
//! strategy: every restart would fail the same way. [`is_retryable`] tells
//! them apart for a user error (its source chain is searched for an I/O error
//! of a kind no restart fixes, or a [`Permanent`] marker), and
//! [`JobError::is_retryable`] for a job's.

use std::error::Error;
use std::io::ErrorKind;

use thiserror::Error;

use crate::checkpoint::CheckpointFailure;

/// An error returned by user code (an operator, a source or a sink).
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
        /// Whether a restart can help (see [`is_retryable`]).
        retryable: bool,
    },
    /// The state the job restores from could not be read or assigned.
    #[error("restoring the job failed: {0}")]
    RestoreFailed(RestoreError),
    /// More checkpoints failed in a row than the job tolerates.
    #[error("checkpointing failed: checkpoint {checkpoint} {failure} ({failed_in_a_row} failed in a row, {tolerated} tolerated)")]
    CheckpointingFailed {
        /// The checkpoint whose failure was one too many.
        checkpoint: u64,
        /// Why it failed (which subtask declined, or the timeout, ...).
        failure: CheckpointFailure,
        /// Consecutive failures, this one included.
        failed_in_a_row: u32,
        /// The tolerable consecutive failures configured.
        tolerated: u32,
    },
    /// A checkpoint or savepoint asked for through the
    /// [`crate::JobClient`] did not complete; the job keeps running.
    #[error("{} {}{}", if *.savepoint { "savepoint" } else { "checkpoint" }, .checkpoint.map(|id| format!("{id} ")).unwrap_or_default(), .failure)]
    CheckpointNotTaken {
        /// Its id, if it was triggered.
        checkpoint: Option<u64>,
        /// Whether a savepoint was asked for.
        savepoint: bool,
        /// Why it did not complete.
        failure: CheckpointFailure,
    },
    /// The job was canceled through its [`crate::JobClient`].
    #[error("job `{0}` was canceled")]
    Canceled(String),
    /// The runtime itself could not run the job (threads, actor system).
    #[error("runtime failure: {0}")]
    Runtime(String),
}

impl JobError {
    /// Whether running the job again (a restart) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::OperatorFailed { retryable, .. } => *retryable,
            JobError::RestoreFailed(cause) => cause.is_retryable(),
            JobError::CheckpointingFailed { .. }
            | JobError::CheckpointNotTaken { .. }
            | JobError::Runtime(_) => true,
            JobError::InvalidJob(_) | JobError::Canceled(_) => false,
        }
    }
}

/// Why the state a job starts from could not be restored.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RestoreError {
    /// The snapshot's files are missing, damaged or do not decode: a restart
    /// cannot help (name an older snapshot to resume from instead).
    #[error("{snapshot} ({location}) cannot be read: {reason}")]
    Unreadable {
        /// The snapshot (`checkpoint 7`, `savepoint 3`, ...).
        snapshot: String,
        /// Its directory, or `memory:chk-<n>`.
        location: String,
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The snapshot does not fit the job: state of an operator the job lacks,
    /// another max parallelism, in-flight records at another parallelism, ...
    #[error("{snapshot} ({location}) does not fit this job: {}", .problems.join("; "))]
    Incompatible {
        /// The snapshot.
        snapshot: String,
        /// Its directory, or `memory:chk-<n>`.
        location: String,
        /// Each problem, naming the operator.
        problems: Vec<String>,
    },
    /// Reading the snapshot was interrupted by something that may pass.
    #[error("{reason}")]
    Interrupted {
        /// What happened.
        reason: String,
    },
}

impl RestoreError {
    /// Whether a restart can help: a damaged or unfitting snapshot stays so.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RestoreError::Interrupted { .. })
    }
}

/// Marks an error that no restart can fix: return `Permanent(e).into()` from
/// user code, and the job fails at once instead of restarting.
///
/// ```
/// use weir_actors::error::{is_retryable, Permanent};
/// use weir_actors::UserError;
/// let error: UserError = Permanent("the schema registry rejected our schema".into()).into();
/// assert!(!is_retryable(error.as_ref()));
/// let error: UserError = "connection reset".into();
/// assert!(is_retryable(error.as_ref()));
/// ```
#[derive(Debug, Error)]
#[error("{0}")]
pub struct Permanent(#[source] pub UserError);

impl Permanent {
    /// A permanent error with this message.
    pub fn from_message(message: String) -> Self {
        Permanent(message.into())
    }
}

/// A cause that marks the error it is the source of as one no restart can
/// fix (as [`Permanent`] does), for error types that stay `Clone` and
/// `PartialEq`: a configuration the engine refuses, say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Error)]
#[error("a restart cannot fix this")]
pub struct NotRetryable;

/// Whether a restart can help with `error`: not if it, or an error in its
/// source chain, is a [`Permanent`] (or [`NotRetryable`]) or an I/O error saying that something is
/// missing, forbidden or not what it should be.
pub fn is_retryable(error: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.is::<Permanent>() || e.is::<NotRetryable>() {
            return false;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if !io_is_retryable(io.kind()) {
                return false;
            }
        }
        next = e.source();
    }
    true
}

/// Whether an I/O error of `kind` may go away by itself.
fn io_is_retryable(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::NotFound
            | ErrorKind::PermissionDenied
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidInput
            | ErrorKind::InvalidData
            | ErrorKind::Unsupported
            | ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::ReadOnlyFilesystem
            | ErrorKind::InvalidFilename
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Error)]
    #[error("cannot open {path}")]
    struct Opening {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn io_errors_deep_in_the_chain_decide() {
        let missing = Opening {
            path: "in.txt".into(),
            source: std::io::Error::from(ErrorKind::NotFound),
        };
        assert!(!is_retryable(&missing));
        let full = Opening {
            path: "out".into(),
            source: std::io::Error::from(ErrorKind::StorageFull),
        };
        assert!(is_retryable(&full));
        let plain: UserError = "panicked".into();
        assert!(is_retryable(plain.as_ref()));
    }

    #[test]
    fn job_errors_say_whether_a_restart_helps() {
        assert!(!JobError::InvalidJob("x".into()).is_retryable());
        let expired = JobError::CheckpointingFailed {
            checkpoint: 3,
            failure: CheckpointFailure::Expired { timeout_ms: 10 },
            failed_in_a_row: 1,
            tolerated: 0,
        };
        assert!(expired.is_retryable());
        assert_eq!(
            expired.to_string(),
            "checkpointing failed: checkpoint 3 expired before all subtasks acknowledged \
             (timeout 10 ms) (1 failed in a row, 0 tolerated)"
        );
        let not_taken = JobError::CheckpointNotTaken {
            checkpoint: None,
            savepoint: true,
            failure: CheckpointFailure::NotTriggered {
                reason: "the job is finishing".into(),
            },
        };
        assert_eq!(
            not_taken.to_string(),
            "savepoint not triggered: the job is finishing"
        );
        let failed = |retryable| JobError::OperatorFailed {
            operator: "o".into(),
            subtask: 0,
            parallelism: 1,
            cause: "c".into(),
            retryable,
        };
        assert!(failed(true).is_retryable() && !failed(false).is_retryable());
    }
}

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
    #[error("restoring the job failed: {cause}")]
    RestoreFailed {
        /// What failed, naming the snapshot and the file.
        cause: String,
        /// Whether a restart can help (a damaged snapshot stays damaged).
        retryable: bool,
    },
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

impl JobError {
    /// Whether running the job again (a restart) can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::OperatorFailed { retryable, .. }
            | JobError::RestoreFailed { retryable, .. } => *retryable,
            JobError::CheckpointingFailed(_) | JobError::Runtime(_) => true,
            JobError::InvalidJob(_) | JobError::Canceled(_) => false,
        }
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

/// Whether a restart can help with `error`: not if it, or an error in its
/// source chain, is a [`Permanent`] or an I/O error saying that something is
/// missing, forbidden or not what it should be.
pub fn is_retryable(error: &(dyn Error + 'static)) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = next {
        if e.is::<Permanent>() {
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
        assert!(JobError::CheckpointingFailed("x".into()).is_retryable());
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

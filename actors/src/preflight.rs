//! Pre-flight checks: what an operator verifies, and takes, before any
//! subtask of its job starts.
//!
//! A source opens its input file, a sink creates its output directory,
//! checks it can write there, locks it against a second job, and (for a
//! two-phase-commit sink) refuses a restore behind what it already committed.
//! A problem found here stops the job before it starts, as
//! [`JobError::InvalidJob`](crate::JobError::InvalidJob) naming the operator,
//! instead of failing the first subtask and restarting forever.
//!
//! A check runs once per operator (not per subtask) on the operator as the
//! program declared it, and may return [`Hold`]s (directory locks): they are
//! kept while the job runs, across restarts, and released when it ends.

use std::sync::Arc;

use crate::operator::UserError;

/// What a pre-flight check is told about the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightContext {
    /// The job's name.
    pub job_name: String,
    /// The job's lineage (see [`crate::lineage`]).
    pub lineage: String,
    /// The checkpoint (or savepoint) id the job restores from; `None` for a fresh start.
    pub restored_checkpoint: Option<u64>,
    /// Whether the job takes checkpoints.
    pub checkpointing: bool,
    /// Whether sinks may accept a restore behind what they committed
    /// (`sink.allow_rewind`: the output then holds duplicates).
    pub allow_sink_rewind: bool,
    /// The operator's parallelism.
    pub parallelism: usize,
}

/// Something an operator holds while its job runs (a lock); dropping it releases it.
pub type Hold = Box<dyn std::any::Any + Send>;

/// An operator's pre-flight check.
pub type PreflightFn =
    Arc<dyn Fn(&PreflightContext) -> Result<Vec<Hold>, UserError> + Send + Sync>;

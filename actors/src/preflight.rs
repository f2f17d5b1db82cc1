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

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
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
    /// The operator's uid (stable across runs; names what it writes, such as
    /// a sink's transactions).
    pub operator_uid: String,
}

/// Something an operator holds while its job runs (a lock); dropping it releases it.
pub type Hold = Box<dyn std::any::Any + Send>;

/// An operator's pre-flight check.
pub type PreflightFn = Arc<dyn Fn(&PreflightContext) -> Result<Vec<Hold>, UserError> + Send + Sync>;

/// Creates the directory `dir` (called `what` in messages: "output
/// directory") and checks that a file can be written in it.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// weir_actors::preflight::probe_dir(&dir.path().join("out"), "output directory").unwrap();
/// let file = dir.path().join("file");
/// std::fs::write(&file, "").unwrap();
/// let err = weir_actors::preflight::probe_dir(&file, "output directory").unwrap_err();
/// assert!(err.to_string().contains("is not a directory"), "{err}");
/// assert!(!weir_actors::error::is_retryable(&err));
///
/// // An object store URL is not a local directory (file sinks write local files).
/// let url = std::path::Path::new("s3://bucket/out");
/// let err = weir_actors::preflight::probe_dir(url, "output directory").unwrap_err();
/// assert!(err.to_string().contains("is a URL"), "{err}");
/// ```
pub fn probe_dir(dir: &Path, what: &'static str) -> Result<(), DirectoryError> {
    let error = |problem, source| DirectoryError {
        what,
        dir: dir.to_path_buf(),
        problem,
        source,
    };
    if crate::location::is_object_url(dir) {
        return Err(error(
            DirectoryProblem::NotLocal,
            io::Error::from(io::ErrorKind::Unsupported),
        ));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(error(
            DirectoryProblem::NotADirectory,
            io::Error::from(io::ErrorKind::NotADirectory),
        ));
    }
    fs::create_dir_all(dir).map_err(|e| error(DirectoryProblem::CannotCreate, e))?;
    let probe = dir.join(format!(".weir-probe-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| error(DirectoryProblem::NotWritable, e))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// [`probe_dir`] for a checkpoint or savepoint directory, which may also be
/// an object store URL ([`crate::location`]): there nothing is created, and
/// a probe object written and deleted shows that the store is reachable, the
/// bucket exists and the credentials may write.
pub fn probe_location(dir: &Path, what: &'static str) -> Result<(), DirectoryError> {
    if !crate::location::is_object_url(dir) {
        return probe_dir(dir, what);
    }
    let probe = dir.join(format!(".weir-probe-{}", std::process::id()));
    crate::location::write(&probe, b"").map_err(|source| DirectoryError {
        what,
        dir: dir.to_path_buf(),
        problem: DirectoryProblem::NotWritable,
        source,
    })?;
    let _ = crate::location::remove_file(&probe);
    Ok(())
}

/// A directory a job needs is not usable; its source is the I/O error (so
/// [`crate::error::is_retryable`] sees a permission denied or a missing
/// parent as permanent).
#[derive(Debug, thiserror::Error)]
pub struct DirectoryError {
    /// What the directory is for ("output directory", "checkpoint directory").
    pub what: &'static str,
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong with it.
    pub problem: DirectoryProblem,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

impl std::fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", self.what, self.dir.display(), self.problem)?;
        if !matches!(
            self.problem,
            DirectoryProblem::NotADirectory | DirectoryProblem::NotLocal
        ) {
            write!(f, ": {}", self.source)?;
        }
        Ok(())
    }
}

/// What is wrong with a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectoryProblem {
    /// The path exists and is not a directory.
    NotADirectory,
    /// It could not be created.
    CannotCreate,
    /// No file can be written in it.
    NotWritable,
    /// It is an object store URL where only a local directory will do.
    NotLocal,
}

impl std::fmt::Display for DirectoryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DirectoryProblem::NotADirectory => " is not a directory",
            DirectoryProblem::CannotCreate => ": cannot create it",
            DirectoryProblem::NotWritable => " is not writable",
            DirectoryProblem::NotLocal => {
                " is a URL: only checkpoint and savepoint directories may be in an object store"
            }
        })
    }
}

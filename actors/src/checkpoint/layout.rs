//! The one place that knows where checkpoint files go, so that writers and
//! readers cannot disagree.
//!
//! ```text
//! <dir>/<lineage>/_lineage                 the lineage's record (see crate::lineage)
//! <dir>/<lineage>/chk-<n>/_metadata        written last, atomically: the checkpoint exists
//! <dir>/<lineage>/chk-<n>/<task>-<i>.state  one file per subtask
//! <dir>/<lineage>/shared/                   files shared by several checkpoints (incremental)
//! <dir>/<lineage>/taskowned/                files owned by the subtasks
//! <dir>/<job>.lock                          held while a job of that name runs
//!
//! <savepoint-dir>/savepoint-<job>-<n>/_metadata   a savepoint: the same files, self-contained
//! ```
//!
//! A directory holding `_metadata` is a complete snapshot, whatever its name:
//! [`CheckpointPaths::of_snapshot_dir`] opens one (a savepoint, or a retained
//! checkpoint given by path). State handles are file names relative to it, so
//! a savepoint can be moved or copied and still be restored.

use std::path::{Path, PathBuf};

use crate::location;

/// The metadata file's name.
pub const METADATA_FILE: &str = "_metadata";

/// Parses a checkpoint directory given as a plain path, a `file://` URI, or
/// an object store URL (`s3://bucket/prefix`, with the cargo feature `s3`;
/// see [`crate::location`]).
pub fn parse_dir(spec: &str) -> Result<PathBuf, String> {
    let path = match spec.strip_prefix("file://") {
        Some(rest) => rest,
        None if spec.contains("://") => {
            let url = PathBuf::from(spec);
            return location::check_supported(&url)
                .map(|()| url)
                .map_err(|e| format!("checkpoint directory {spec:?}: {e}"));
        }
        None => spec,
    };
    if path.is_empty() {
        return Err("checkpoint directory: empty path".into());
    }
    Ok(PathBuf::from(path))
}

/// The paths of one job's checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPaths {
    job_dir: PathBuf,
    /// Set for one snapshot directory: every checkpoint id maps to it.
    fixed: Option<PathBuf>,
}

impl CheckpointPaths {
    /// The paths under `root` for lineage `lineage`.
    pub fn new(root: &Path, lineage: &str) -> Self {
        CheckpointPaths {
            job_dir: root.join(lineage),
            fixed: None,
        }
    }

    /// The paths of a job directory that already exists.
    pub fn of_job_dir(job_dir: &Path) -> Self {
        CheckpointPaths {
            job_dir: job_dir.to_path_buf(),
            fixed: None,
        }
    }

    /// The paths of one snapshot directory (a savepoint, or a checkpoint given
    /// by path): every checkpoint id maps to `dir` itself; shared files are in
    /// its parent's `shared/`.
    pub fn of_snapshot_dir(dir: &Path) -> Self {
        CheckpointPaths {
            job_dir: dir.parent().unwrap_or(dir).to_path_buf(),
            fixed: Some(dir.to_path_buf()),
        }
    }

    /// The snapshot directory, for paths made by [`Self::of_snapshot_dir`].
    pub fn fixed_dir(&self) -> Option<&Path> {
        self.fixed.as_deref()
    }

    /// The job's directory.
    pub fn job_dir(&self) -> &Path {
        &self.job_dir
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        if let Some(dir) = &self.fixed {
            return dir.clone();
        }
        self.job_dir.join(format!("chk-{id}"))
    }

    /// The id of a checkpoint directory name (`chk-<n>`).
    pub fn checkpoint_id(dir_name: &str) -> Option<u64> {
        dir_name.strip_prefix("chk-")?.parse().ok()
    }

    /// The ids of the `chk-<n>` directories in this job directory, ascending,
    /// each with whether it holds a `_metadata` file (not read); none when the
    /// directory does not exist.
    pub fn checkpoint_ids(&self) -> std::io::Result<Vec<(u64, bool)>> {
        let entries = match location::list(&self.job_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut ids = Vec::new();
        for entry in entries.iter().filter(|e| e.is_dir) {
            if let Some(id) = Self::checkpoint_id(&entry.name) {
                let metadata = self.job_dir.join(&entry.name).join(METADATA_FILE);
                ids.push((id, location::exists(&metadata)?));
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The metadata file of checkpoint `id`.
    pub fn metadata(&self, id: u64) -> PathBuf {
        self.checkpoint_dir(id).join(METADATA_FILE)
    }

    /// The lock file under checkpoint directory `root` that a running job
    /// named `job` holds.
    pub fn job_lock(root: &Path, job: &str) -> PathBuf {
        root.join(format!("{}.lock", Self::safe_name(job)))
    }

    fn safe_name(name: &str) -> String {
        name.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// The state file name of subtask `subtask` of the task whose head has `uid`.
    pub fn state_file_name(uid: &str, subtask: usize) -> String {
        format!("{}-{subtask}.state", Self::safe_name(uid))
    }

    /// Files shared between checkpoints.
    pub fn shared_dir(&self) -> PathBuf {
        self.job_dir.join("shared")
    }

    /// Files owned by subtasks.
    pub fn task_owned_dir(&self) -> PathBuf {
        self.job_dir.join("taskowned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_documented_layout() {
        let p = CheckpointPaths::new(Path::new("/ck"), "job1");
        assert_eq!(p.metadata(7), Path::new("/ck/job1/chk-7/_metadata"));
        assert_eq!(
            CheckpointPaths::state_file_name("my op/1", 2),
            "my_op_1-2.state"
        );
        assert_eq!(CheckpointPaths::checkpoint_id("chk-12"), Some(12));
        assert_eq!(CheckpointPaths::checkpoint_id("shared"), None);
        assert_eq!(parse_dir("file:///tmp/x").unwrap(), Path::new("/tmp/x"));
        let sp = CheckpointPaths::of_snapshot_dir(Path::new("/sp/savepoint-ab12cd-3"));
        assert_eq!(
            sp.metadata(99),
            Path::new("/sp/savepoint-ab12cd-3/_metadata")
        );
        assert!(parse_dir("gs://bucket")
            .unwrap_err()
            .contains("gs://bucket"));
        #[cfg(not(feature = "s3"))]
        assert!(parse_dir("s3://bucket/ck")
            .unwrap_err()
            .contains("feature `s3`"));
        #[cfg(feature = "s3")]
        assert_eq!(
            parse_dir("s3://bucket/ck").unwrap(),
            Path::new("s3://bucket/ck")
        );
    }
}

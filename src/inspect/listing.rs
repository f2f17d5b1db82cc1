//! Finding the snapshots under a directory: every directory holding
//! `_metadata` at most two levels down, read from its metadata alone.

use std::fmt;
use std::path::{Path, PathBuf};
use weir_actors::location;

use serde::Serialize;
use weir_actors::checkpoint::layout::METADATA_FILE;
use weir_actors::checkpoint::CheckpointMetadata;
use weir_actors::restore;

use super::table::{Align, Table};
use super::{format_rfc3339_millis, InspectError, SnapshotKind};

/// A snapshot found by [`list_checkpoints`], from its `_metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListedSnapshot {
    /// Its directory.
    pub path: PathBuf,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// The checkpoint id.
    pub id: u64,
    /// The job's name.
    pub job_name: String,
    /// The job's id.
    pub job_id: String,
    /// When it completed, RFC 3339 UTC.
    pub completed: String,
    /// When it completed, ms since the epoch.
    pub completion_time_ms: i64,
    /// Bytes of state over all subtask files.
    pub state_bytes: u64,
    /// The uids of the job's operators.
    pub operators: Vec<String>,
}

impl ListedSnapshot {
    fn new(path: PathBuf, metadata: &CheckpointMetadata) -> Self {
        ListedSnapshot {
            path,
            kind: SnapshotKind::of(metadata.savepoint),
            id: metadata.checkpoint_id,
            job_name: metadata.job_name.clone(),
            job_id: metadata.job_id.clone(),
            completed: format_rfc3339_millis(metadata.completion_time_ms),
            completion_time_ms: metadata.completion_time_ms,
            state_bytes: metadata.state_size(),
            operators: metadata.operators.iter().map(|o| o.uid.clone()).collect(),
        }
    }
}

/// What [`list_checkpoints`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Listing {
    /// The readable snapshots, oldest first (by completion time).
    pub snapshots: Vec<ListedSnapshot>,
    /// Snapshots or directories that could not be read, each naming its path.
    pub problems: Vec<String>,
}

/// Finds the checkpoints and savepoints under `dir`: `dir` itself if it is a
/// snapshot (holds `_metadata`), else every directory one or two levels below
/// that is (so `dir` may be a checkpoint root holding job directories, a job
/// directory holding `chk-<n>`, or a savepoint directory). Only `_metadata`
/// files are read; one that cannot be read is listed as a problem without
/// hiding the others.
///
/// An error if `dir` cannot be listed or holds no snapshot and no problem.
pub fn list_checkpoints(dir: &Path) -> Result<Listing, InspectError> {
    let mut listing = Listing::default();
    let has_metadata = |d: &Path| location::exists(&d.join(METADATA_FILE));
    let top = has_metadata(dir).map_err(|source| InspectError::List {
        path: dir.to_path_buf(),
        source,
    })?;
    if top {
        listing.add(dir);
    } else {
        let children = subdirectories(dir).map_err(|source| InspectError::List {
            path: dir.to_path_buf(),
            source,
        })?;
        for child in children {
            match has_metadata(&child) {
                Ok(true) => {
                    listing.add(&child);
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    listing
                        .problems
                        .push(format!("cannot read {}: {e}", child.display()));
                    continue;
                }
            }
            match subdirectories(&child) {
                Ok(grandchildren) => {
                    for grandchild in grandchildren {
                        match has_metadata(&grandchild) {
                            Ok(true) => listing.add(&grandchild),
                            Ok(false) => {}
                            Err(e) => listing
                                .problems
                                .push(format!("cannot read {}: {e}", grandchild.display())),
                        }
                    }
                }
                Err(e) => listing
                    .problems
                    .push(format!("cannot list {}: {e}", child.display())),
            }
        }
    }
    if listing.snapshots.is_empty() && listing.problems.is_empty() {
        return Err(InspectError::NothingFound(dir.to_path_buf()));
    }
    listing.snapshots.sort_by(|a, b| {
        (a.completion_time_ms, a.id, &a.path).cmp(&(b.completion_time_ms, b.id, &b.path))
    });
    Ok(listing)
}

/// The subdirectories of `dir` (local, or an object store URL), sorted by name.
fn subdirectories(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = location::list(dir)?
        .into_iter()
        .filter(|e| e.is_dir)
        .map(|e| dir.join(e.name))
        .collect();
    dirs.sort();
    Ok(dirs)
}

impl Listing {
    fn add(&mut self, snapshot_dir: &Path) {
        match restore::open_snapshot_dir(snapshot_dir) {
            Ok((_, metadata)) => self
                .snapshots
                .push(ListedSnapshot::new(snapshot_dir.to_path_buf(), &metadata)),
            Err(e) => self.problems.push(e),
        }
    }
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut table = Table::new(&[
            ("KIND", Align::Left),
            ("ID", Align::Right),
            ("JOB", Align::Left),
            ("JOB ID", Align::Left),
            ("COMPLETED", Align::Left),
            ("BYTES", Align::Right),
            ("OPERATORS", Align::Left),
            ("PATH", Align::Left),
        ]);
        for s in &self.snapshots {
            table.row(vec![
                s.kind.to_string(),
                s.id.to_string(),
                s.job_name.clone(),
                s.job_id.clone(),
                s.completed.clone(),
                s.state_bytes.to_string(),
                s.operators.join(","),
                s.path.display().to_string(),
            ]);
        }
        write!(f, "{table}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use weir_actors::checkpoint::metadata::{OperatorMetadata, METADATA_VERSION};
    use weir_actors::checkpoint::storage::encode_metadata;

    fn write_metadata(dir: &Path, id: u64, savepoint: bool, completed: i64) {
        fs::create_dir_all(dir).unwrap();
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            job_name: "listed".into(),
            job_id: "0123456789abcdef".into(),
            lineage: "lineage".into(),
            checkpoint_id: id,
            savepoint,
            trigger_time_ms: completed - 5,
            completion_time_ms: completed,
            operators: vec![OperatorMetadata {
                uid: "src".into(),
                name: "Source".into(),
                parallelism: 1,
                max_parallelism: 128,
                key_type: None,
            }],
            subtasks: Vec::new(),
        };
        fs::write(dir.join(METADATA_FILE), encode_metadata(&metadata).unwrap()).unwrap();
    }

    #[test]
    fn snapshots_are_found_two_levels_down_and_problems_do_not_hide_them() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("0123456789abcdef");
        write_metadata(&job.join("chk-2"), 2, false, 2_000);
        write_metadata(&job.join("chk-1"), 1, false, 1_000);
        fs::create_dir_all(job.join("chk-3")).unwrap(); // unfinished: skipped
        fs::create_dir_all(job.join("shared")).unwrap();
        let savepoint = root.path().join("savepoint-012345-7");
        write_metadata(&savepoint, 7, true, 1_500);
        let broken = root.path().join("other").join("chk-9");
        fs::create_dir_all(&broken).unwrap();
        fs::write(
            broken.join(METADATA_FILE),
            b"not a weir checkpoint file at all",
        )
        .unwrap();

        let listing = list_checkpoints(root.path()).unwrap();
        let found: Vec<(SnapshotKind, u64)> =
            listing.snapshots.iter().map(|s| (s.kind, s.id)).collect();
        assert_eq!(
            found,
            [
                (SnapshotKind::Checkpoint, 1),
                (SnapshotKind::Savepoint, 7),
                (SnapshotKind::Checkpoint, 2)
            ]
        );
        assert_eq!(listing.problems.len(), 1, "{:?}", listing.problems);
        assert!(
            listing.problems[0].contains("chk-9") && listing.problems[0].contains("bad magic"),
            "{:?}",
            listing.problems
        );

        // The job directory and one snapshot directory list too.
        assert_eq!(list_checkpoints(&job).unwrap().snapshots.len(), 2);
        let one = list_checkpoints(&savepoint).unwrap();
        assert_eq!(one.snapshots[0].path, savepoint);
        assert!(one.to_string().starts_with("KIND       ID  JOB"), "{one}");
    }

    #[test]
    fn a_directory_without_snapshots_or_a_missing_one_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("a/b/c")).unwrap();
        let err = list_checkpoints(root.path()).unwrap_err().to_string();
        assert!(err.contains("no checkpoint or savepoint"), "{err}");
        let missing = root.path().join("missing");
        let err = list_checkpoints(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot list") && err.contains("missing"),
            "{err}"
        );
    }
}

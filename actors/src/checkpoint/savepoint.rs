//! Savepoints: where they go, and the storage that sends them there.
//!
//! A savepoint is a checkpoint the user asked for, written to a directory of
//! its own, `<savepoint-dir>/savepoint-<job>-<n>/`, in the same files as a
//! checkpoint (`_metadata` and one state file per subtask, handles relative to
//! the directory). It is self-contained, so it can be moved or copied and
//! still be restored, and the engine never deletes it once complete.
//!
//! [`RoutedStorage`] is what subtasks and the coordinator write through: it
//! passes checkpoints to the job's checkpoint storage and savepoints to their
//! directory, so the checkpoint protocol itself does not tell them apart.

use crate::location;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;

use super::metadata::{CheckpointMetadata, StateHandle};
use super::storage::{CheckpointStorage, FsStorage, RetainedCheckpoint, StorageError};

/// The directory name of savepoint `id` of job `job_id`: `savepoint-<first 6 of the job id>-<id>`.
///
/// ```
/// assert_eq!(weir_actors::checkpoint::savepoint::savepoint_dir_name("3fa2c1d0e9", 7), "savepoint-3fa2c1-7");
/// ```
pub fn savepoint_dir_name(job_id: &str, id: u64) -> String {
    let short: String = job_id.chars().take(6).collect();
    format!("savepoint-{short}-{id}")
}

/// Creates the directory of savepoint `id` under `parent`; an existing
/// directory is an error (a savepoint never overwrites anything).
pub fn create_savepoint_dir(parent: &Path, job_id: &str, id: u64) -> Result<PathBuf, String> {
    let dir = parent.join(savepoint_dir_name(job_id, id));
    // Locally, a directory that cannot be looked at fails to be created
    // below; an object store creates nothing, so its error counts here.
    let exists = location::exists(&dir)
        .map_err(|e| format!("cannot read savepoint directory {}: {e}", dir.display()))?;
    if exists {
        return Err(format!(
            "savepoint directory {} already exists; savepoints never overwrite",
            dir.display()
        ));
    }
    location::create_dir_all(&dir)
        .map_err(|e| format!("cannot create savepoint directory {}: {e}", dir.display()))?;
    Ok(dir)
}

/// Checkpoint storage that writes savepoints to their own directories.
#[derive(Debug)]
pub struct RoutedStorage {
    checkpoints: Arc<dyn CheckpointStorage>,
    savepoints: DashMap<u64, FsStorage>,
}

impl RoutedStorage {
    /// Storage that passes everything to `checkpoints` unless routed elsewhere.
    pub fn new(checkpoints: Arc<dyn CheckpointStorage>) -> Self {
        RoutedStorage {
            checkpoints,
            savepoints: DashMap::new(),
        }
    }

    /// Sends checkpoint `id` (a savepoint) to directory `dir`.
    pub fn route_savepoint(&self, id: u64, dir: &Path) {
        self.savepoints.insert(id, FsStorage::of_snapshot_dir(dir));
    }

    /// The directory savepoint `id` is routed to.
    pub fn savepoint_dir(&self, id: u64) -> Option<PathBuf> {
        self.savepoints
            .get(&id)
            .and_then(|s| s.paths().fixed_dir().map(Path::to_path_buf))
    }

    /// Forgets the route of savepoint `id` (it ended).
    pub fn forget(&self, id: u64) {
        self.savepoints.remove(&id);
    }

    fn target(&self, id: u64) -> Target<'_> {
        match self.savepoints.get(&id) {
            Some(savepoint) => Target::Savepoint(savepoint),
            None => Target::Checkpoints(self.checkpoints.as_ref()),
        }
    }
}

enum Target<'a> {
    Checkpoints(&'a dyn CheckpointStorage),
    Savepoint(dashmap::mapref::one::Ref<'a, u64, FsStorage>),
}

impl Target<'_> {
    fn storage(&self) -> &dyn CheckpointStorage {
        match self {
            Target::Checkpoints(storage) => *storage,
            Target::Savepoint(savepoint) => savepoint.value(),
        }
    }
}

impl CheckpointStorage for RoutedStorage {
    fn write_state(
        &self,
        checkpoint: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<StateHandle, StorageError> {
        self.target(checkpoint)
            .storage()
            .write_state(checkpoint, name, bytes)
    }

    fn read_state(&self, checkpoint: u64, handle: &StateHandle) -> Result<Vec<u8>, StorageError> {
        self.target(checkpoint)
            .storage()
            .read_state(checkpoint, handle)
    }

    fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<String, StorageError> {
        self.target(metadata.checkpoint_id)
            .storage()
            .write_metadata(metadata)
    }

    fn read_metadata(&self, checkpoint: u64) -> Result<CheckpointMetadata, StorageError> {
        self.target(checkpoint).storage().read_metadata(checkpoint)
    }

    /// A savepoint is deleted only while incomplete (an aborted one); a
    /// complete savepoint belongs to the user.
    fn discard(&self, checkpoint: u64) -> Result<(), StorageError> {
        match self.target(checkpoint) {
            Target::Checkpoints(storage) => storage.discard(checkpoint),
            Target::Savepoint(savepoint) => match savepoint.read_metadata(checkpoint) {
                Ok(_) => Ok(()),
                Err(_) => savepoint.discard(checkpoint),
            },
        }
    }

    /// The job's checkpoints (savepoints live elsewhere and are not listed).
    fn list(&self) -> Result<Vec<RetainedCheckpoint>, StorageError> {
        self.checkpoints.list()
    }

    fn retained_ids(&self) -> Result<Vec<u64>, StorageError> {
        self.checkpoints.retained_ids()
    }

    /// The checkpoints' shared directory: incremental checkpoints refer to
    /// files there (a savepoint never does, see
    /// `OperatorSnapshot::check_self_contained`).
    fn shared_dir(&self) -> Option<PathBuf> {
        self.checkpoints.shared_dir()
    }

    fn write_shared_refs(
        &self,
        checkpoint: u64,
        name: &str,
        refs: &[String],
    ) -> Result<(), StorageError> {
        self.target(checkpoint)
            .storage()
            .write_shared_refs(checkpoint, name, refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::METADATA_VERSION;
    use crate::checkpoint::MemoryStorage;

    fn metadata(id: u64) -> CheckpointMetadata {
        CheckpointMetadata {
            version: METADATA_VERSION,
            job_name: "j".into(),
            job_id: "abcdef0123".into(),
            lineage: "lineage".into(),
            checkpoint_id: id,
            savepoint: true,
            trigger_time_ms: 0,
            completion_time_ms: 0,
            operators: Vec::new(),
            subtasks: Vec::new(),
        }
    }

    #[test]
    fn savepoints_go_to_their_directory_and_complete_ones_are_never_deleted() {
        let root = tempfile::tempdir().unwrap();
        let routed = RoutedStorage::new(Arc::new(MemoryStorage::new(1 << 20)));
        let dir = create_savepoint_dir(root.path(), "abcdef0123", 3).unwrap();
        assert!(dir.ends_with("savepoint-abcdef-3"));
        assert!(create_savepoint_dir(root.path(), "abcdef0123", 3)
            .unwrap_err()
            .contains("already exists"));
        routed.route_savepoint(3, &dir);
        let handle = routed.write_state(3, "op-0.state", b"state").unwrap();
        routed.write_state(2, "op-0.state", b"checkpoint").unwrap();
        assert!(dir.join("op-0.state").is_file());
        routed.write_metadata(&metadata(3)).unwrap();
        routed.discard(3).unwrap();
        assert!(
            dir.join("_metadata").is_file(),
            "a complete savepoint stays"
        );
        assert_eq!(routed.read_state(3, &handle).unwrap(), b"state");
        assert_eq!(routed.savepoint_dir(3), Some(dir.clone()));
        assert!(
            routed.list().unwrap().is_empty(),
            "savepoints are not listed"
        );

        let aborted = create_savepoint_dir(root.path(), "abcdef0123", 4).unwrap();
        routed.route_savepoint(4, &aborted);
        routed.write_state(4, "op-0.state", b"x").unwrap();
        routed.discard(4).unwrap();
        assert!(!aborted.exists(), "an incomplete savepoint is removed");
    }
    #[test]
    fn checkpoints_keep_their_shared_directory_and_references_through_the_routing() {
        let root = tempfile::tempdir().unwrap();
        let checkpoints = FsStorage::new(root.path(), "abcdef0123");
        let shared = checkpoints.shared_dir();
        assert!(shared.is_some());
        let routed = RoutedStorage::new(Arc::new(checkpoints.clone()));
        assert_eq!(
            routed.shared_dir(),
            shared,
            "incremental checkpoints stay possible"
        );
        routed
            .write_shared_refs(5, "op-0.state", &["a.sst".to_string()])
            .unwrap();
        let refs = checkpoints
            .paths()
            .checkpoint_dir(5)
            .join("op-0.state.refs");
        assert!(refs.is_file(), "{} is written", refs.display());
    }
}

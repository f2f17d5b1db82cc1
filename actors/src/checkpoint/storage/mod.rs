//! Checkpoint storage: where subtasks write their state and the coordinator
//! writes `_metadata`: the [`CheckpointStorage`] trait and its errors here, the
//! storages in [`memory`] and [`fs`], the `_metadata` codec in [`codec`], and
//! the reference count of shared files in `shared`.
//!
//! - [`MemoryStorage`] keeps everything in a concurrent map (as Flink's
//!   JobManager storage): for tests and small state, with a size limit.
//! - [`FsStorage`] writes files under `<dir>/<job-id>/chk-<n>/` (see
//!   [`super::layout`]); `_metadata` is written last through a temporary file,
//!   fsync and rename, so a checkpoint directory without it is not a checkpoint.
//!
//! Every file carries the header of [`super::format`]; reads verify it.
//!
//! **Shared files.** Incremental snapshots (the RocksDB backend) upload files
//! to `<dir>/<job-id>/shared/` once and refer to them from every later
//! checkpoint that still needs them. Each subtask lists what its state refers
//! to in `chk-<n>/<state>.refs`; that list is the reference count: when a
//! completed checkpoint is discarded (subsumed), its shared files that no
//! other checkpoint directory refers to are deleted. Discarding a checkpoint
//! that never completed deletes no shared file (a later checkpoint may already
//! have reused one), so an aborted checkpoint may leave an unreferenced file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::format::FormatError;
use super::metadata::{CheckpointMetadata, StateHandle};

pub mod codec;
pub mod fs;
pub mod memory;
mod shared;

pub use codec::{decode_metadata, encode_metadata};
pub use fs::FsStorage;
pub use memory::MemoryStorage;

/// A storage operation failed.
#[derive(Debug, Error)]
pub enum StorageError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is damaged or foreign.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A file's payload does not decode.
    #[error("{what}: cannot decode: {cause}")]
    Decode {
        /// The file.
        what: String,
        /// The decoder's message.
        cause: String,
    },
    /// Memory storage's size limit.
    #[error("checkpoint {checkpoint}: state of {size} bytes for {name} exceeds the in-memory storage limit of {limit} bytes")]
    TooLarge {
        /// The checkpoint.
        checkpoint: u64,
        /// The subtask.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No such checkpoint, or it has no `_metadata`.
    #[error("no complete checkpoint {0}")]
    NotFound(String),
    /// A write for a checkpoint that was aborted and deleted meanwhile.
    #[error("checkpoint {0} was aborted: its files are not written")]
    Abandoned(u64),
}

/// A retained checkpoint, as [`CheckpointStorage::list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedCheckpoint {
    /// Its id.
    pub id: u64,
    /// When it completed (ms since the epoch).
    pub completion_time_ms: i64,
    /// Bytes of state.
    pub size: u64,
    /// Where it is (a directory, or `memory:` for in-memory storage).
    pub location: String,
    /// Whether it is a savepoint.
    pub savepoint: bool,
}

/// Where checkpoints are written. Shared by all subtasks (any Arbiter) and the coordinator.
pub trait CheckpointStorage: fmt::Debug + Send + Sync + 'static {
    /// Writes one subtask's state (already serialised) for checkpoint `checkpoint`.
    fn write_state(
        &self,
        checkpoint: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<StateHandle, StorageError>;
    /// Reads what `write_state` wrote.
    fn read_state(&self, checkpoint: u64, handle: &StateHandle) -> Result<Vec<u8>, StorageError>;
    /// Writes the metadata, last and atomically; returns where the checkpoint is.
    fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<String, StorageError>;
    /// Reads the metadata of checkpoint `checkpoint` (an error if it has none).
    fn read_metadata(&self, checkpoint: u64) -> Result<CheckpointMetadata, StorageError>;
    /// Deletes everything of checkpoint `checkpoint`.
    fn discard(&self, checkpoint: u64) -> Result<(), StorageError>;
    /// The complete checkpoints, oldest first.
    fn list(&self) -> Result<Vec<RetainedCheckpoint>, StorageError>;
    /// The ids of the complete checkpoints, oldest first, without reading
    /// them (cheap with thousands retained).
    fn retained_ids(&self) -> Result<Vec<u64>, StorageError>;
    /// The directory for files shared between checkpoints (incremental
    /// snapshots), if this storage has one. (No default: a wrapping storage
    /// that forgot to forward it would silently turn incremental checkpoints
    /// into full ones.)
    fn shared_dir(&self) -> Option<PathBuf>;
    /// Records which shared files the state `name` of checkpoint `checkpoint`
    /// refers to (a storage without a shared directory has none to record).
    fn write_shared_refs(
        &self,
        checkpoint: u64,
        name: &str,
        refs: &[String],
    ) -> Result<(), StorageError>;
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How a job's checkpoint storage is chosen (the storage itself is opened per job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageSpec {
    /// [`MemoryStorage`] with this limit per subtask state (bytes).
    Memory {
        /// The largest subtask state accepted.
        max_state_size: u64,
    },
    /// [`FsStorage`] under this directory.
    Filesystem(PathBuf),
}

impl Default for StorageSpec {
    fn default() -> Self {
        StorageSpec::Memory {
            max_state_size: 5 * 1024 * 1024,
        }
    }
}

impl StorageSpec {
    /// Opens the storage of lineage `lineage` (files go to `<dir>/<lineage>/`).
    pub fn open(&self, lineage: &str) -> Arc<dyn CheckpointStorage> {
        match self {
            StorageSpec::Memory { max_state_size } => Arc::new(MemoryStorage::new(*max_state_size)),
            StorageSpec::Filesystem(root) => Arc::new(FsStorage::new(root, lineage)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::metadata::{OperatorMetadata, SubtaskStateMetadata};
    use std::fs;

    fn metadata(id: u64, handle: StateHandle) -> CheckpointMetadata {
        CheckpointMetadata {
            version: 1,
            job_name: "j".into(),
            job_id: "id".into(),
            lineage: "lineage".into(),
            checkpoint_id: id,
            savepoint: false,
            trigger_time_ms: 1,
            completion_time_ms: 2,
            operators: vec![OperatorMetadata {
                uid: "u".into(),
                name: "n".into(),
                parallelism: 1,
                max_parallelism: 128,
                key_type: None,
            }],
            subtasks: vec![SubtaskStateMetadata {
                operators: vec!["u".into()],
                subtask: 0,
                handle,
                in_flight_bytes: 0,
            }],
        }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-storage-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn files_round_trip_and_a_directory_without_metadata_is_not_a_checkpoint() {
        let root = temp_dir("fs");
        let storage = FsStorage::new(&root, "job");
        let handle = storage.write_state(1, "u-0.state", b"state bytes").unwrap();
        assert!(storage.list().unwrap().is_empty(), "no _metadata yet");
        storage
            .write_metadata(&metadata(1, handle.clone()))
            .unwrap();
        assert_eq!(storage.read_state(1, &handle).unwrap(), b"state bytes");
        let listed = storage.list().unwrap();
        assert_eq!((listed.len(), listed[0].id, listed[0].size), (1, 1, 11));
        storage.write_state(2, "u-0.state", b"half").unwrap();
        assert_eq!(storage.list().unwrap().len(), 1, "chk-2 has no _metadata");
        storage.discard(1).unwrap();
        assert!(storage.list().unwrap().is_empty());
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn undecodable_subtask_state_is_reported_with_checkpoint_subtask_and_chain() {
        let storage = MemoryStorage::new(1024);
        let handle = storage
            .write_state(7, "u-0.state", b"\xc1 not msgpack")
            .unwrap();
        storage.write_metadata(&metadata(7, handle)).unwrap();
        let err = crate::restore::read(&storage, 7).unwrap_err();
        assert!(
            err.starts_with("checkpoint 7, subtask 0 of chain [u]"),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_with_unreadable_metadata_does_not_hide_the_others() {
        let root = temp_dir("bad-meta");
        let storage = FsStorage::new(&root, "job");
        for id in [1, 2] {
            let handle = storage.write_state(id, "u-0.state", b"s").unwrap();
            storage.write_metadata(&metadata(id, handle)).unwrap();
        }
        let metadata_path = storage.paths().metadata(2);
        fs::write(&metadata_path, b"not a checkpoint").unwrap();
        let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
        assert_eq!(listed, [1]);
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn a_corrupted_state_file_is_reported_with_its_path() {
        let root = temp_dir("corrupt");
        let storage = FsStorage::new(&root, "job");
        let handle = storage.write_state(3, "u-0.state", b"precious").unwrap();
        let path = storage.paths().checkpoint_dir(3).join("u-0.state");
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let err = storage.read_state(3, &handle).unwrap_err().to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains("u-0.state"),
            "{err}"
        );
        let _ = fs::remove_dir_all(root);
    }

    #[test]
    fn shared_files_are_deleted_when_no_retained_checkpoint_refers_to_them() {
        let dir = temp_dir("shared-refs");
        let storage = FsStorage::new(&dir, "job");
        let shared = storage.shared_dir().unwrap();
        fs::create_dir_all(&shared).unwrap();
        for name in ["a.sst", "b.sst", "c.sst", "orphan.sst"] {
            fs::write(shared.join(name), name).unwrap();
        }
        let refs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (id, files) in [
            (1, refs(&["a.sst", "b.sst"])),
            (2, refs(&["b.sst", "c.sst"])),
        ] {
            storage.write_state(id, "t-0.state", b"x").unwrap();
            storage.write_shared_refs(id, "t-0.state", &files).unwrap();
            storage
                .write_metadata(&metadata(
                    id,
                    StateHandle::File {
                        name: "t-0.state".into(),
                        size: 1,
                    },
                ))
                .unwrap();
        }
        // An unfinished checkpoint refers to c.sst too.
        storage
            .write_shared_refs(3, "t-0.state", &refs(&["c.sst"]))
            .unwrap();
        storage.discard(1).unwrap();
        let left = |d: &Path| {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(left(&shared), vec!["b.sst", "c.sst", "orphan.sst"]);
        storage.discard(2).unwrap();
        assert_eq!(
            left(&shared),
            vec!["c.sst", "orphan.sst"],
            "c.sst is still referenced by checkpoint 3"
        );
        // Discarding an unfinished checkpoint releases nothing.
        storage.discard(3).unwrap();
        assert_eq!(left(&shared), vec!["c.sst", "orphan.sst"]);
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_discarded_unfinished_checkpoint_does_not_come_back_with_a_late_write() {
        let root = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(root.path(), "job");
        storage.write_state(4, "a-0.state", b"early").unwrap();
        storage.discard(4).unwrap();
        let late = storage.write_state(4, "b-0.state", b"late").unwrap_err();
        assert!(matches!(late, StorageError::Abandoned(4)), "{late}");
        assert!(storage
            .write_shared_refs(4, "b-0.state", &["x.sst".into()])
            .is_err());
        assert!(!storage.paths().checkpoint_dir(4).exists());
        // Other checkpoints are written as before; the ids of complete ones
        // are listed without reading them.
        for id in [5, 6] {
            let handle = storage.write_state(id, "a-0.state", b"s").unwrap();
            storage.write_metadata(&metadata(id, handle)).unwrap();
        }
        storage.write_state(7, "a-0.state", b"unfinished").unwrap();
        assert_eq!(storage.retained_ids().unwrap(), vec![5, 6]);
    }

    #[test]
    fn memory_storage_enforces_its_limit() {
        let storage = MemoryStorage::new(4);
        let err = storage
            .write_state(1, "big-0", b"12345")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("5 bytes") && err.contains("limit of 4 bytes"),
            "{err}"
        );
        let handle = storage.write_state(1, "ok-0", b"1234").unwrap();
        storage
            .write_metadata(&metadata(1, handle.clone()))
            .unwrap();
        assert_eq!(storage.read_state(1, &handle).unwrap(), b"1234");
        assert_eq!(storage.list().unwrap().len(), 1);
    }
}

//! Checkpoint storage: where subtasks write their state and the coordinator
//! writes `_metadata`.
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
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use thiserror::Error;

use super::format::{decode, encode, FileKind, FormatError};
use super::layout::{CheckpointPaths, METADATA_FILE};
use super::metadata::{CheckpointMetadata, StateHandle};

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

const REFS_SUFFIX: &str = ".refs";

/// The bytes of a `_metadata` file (header and rmp-serde payload).
pub fn encode_metadata(metadata: &CheckpointMetadata) -> Result<Vec<u8>, StorageError> {
    let payload = rmp_serde::to_vec_named(metadata).map_err(|e| StorageError::Decode {
        what: "metadata".into(),
        cause: e.to_string(),
    })?;
    Ok(encode(FileKind::Metadata, &payload))
}

/// Reads the bytes of a `_metadata` file named `what`.
pub fn decode_metadata(bytes: &[u8], what: &str) -> Result<CheckpointMetadata, StorageError> {
    let payload = decode(bytes, FileKind::Metadata, what)?;
    rmp_serde::from_slice(payload).map_err(|e| StorageError::Decode {
        what: what.to_string(),
        cause: e.to_string(),
    })
}

/// Checkpoints in memory (lost with the process), with a size limit per subtask state.
#[derive(Debug)]
pub struct MemoryStorage {
    max_state_size: u64,
    states: DashMap<(u64, String), Arc<Vec<u8>>>,
    metadata: DashMap<u64, Vec<u8>>,
}

impl MemoryStorage {
    /// In-memory storage refusing subtask states larger than `max_state_size` bytes.
    pub fn new(max_state_size: u64) -> Self {
        MemoryStorage {
            max_state_size,
            states: DashMap::new(),
            metadata: DashMap::new(),
        }
    }
}

impl CheckpointStorage for MemoryStorage {
    fn write_state(
        &self,
        checkpoint: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<StateHandle, StorageError> {
        let size = bytes.len() as u64;
        if size > self.max_state_size {
            return Err(StorageError::TooLarge {
                checkpoint,
                name: name.to_string(),
                size,
                limit: self.max_state_size,
            });
        }
        self.states.insert(
            (checkpoint, name.to_string()),
            Arc::new(encode(FileKind::State, bytes)),
        );
        Ok(StateHandle::Memory {
            key: name.to_string(),
            size,
        })
    }

    fn read_state(&self, checkpoint: u64, handle: &StateHandle) -> Result<Vec<u8>, StorageError> {
        let StateHandle::Memory { key, .. } = handle else {
            return Err(StorageError::NotFound(format!(
                "{checkpoint}: {handle:?} is not an in-memory handle"
            )));
        };
        let what = format!("memory:chk-{checkpoint}/{key}");
        let stored = self
            .states
            .get(&(checkpoint, key.clone()))
            .ok_or_else(|| StorageError::NotFound(what.clone()))?;
        Ok(decode(&stored, FileKind::State, &what)?.to_vec())
    }

    fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<String, StorageError> {
        self.metadata
            .insert(metadata.checkpoint_id, encode_metadata(metadata)?);
        Ok(format!("memory:chk-{}", metadata.checkpoint_id))
    }

    fn read_metadata(&self, checkpoint: u64) -> Result<CheckpointMetadata, StorageError> {
        let what = format!("memory:chk-{checkpoint}/{METADATA_FILE}");
        let bytes = self
            .metadata
            .get(&checkpoint)
            .ok_or_else(|| StorageError::NotFound(what.clone()))?;
        decode_metadata(&bytes, &what)
    }

    fn discard(&self, checkpoint: u64) -> Result<(), StorageError> {
        self.metadata.remove(&checkpoint);
        self.states.retain(|(id, _), _| *id != checkpoint);
        Ok(())
    }

    fn list(&self) -> Result<Vec<RetainedCheckpoint>, StorageError> {
        let mut ids: Vec<u64> = self.metadata.iter().map(|e| *e.key()).collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| {
                let m = self.read_metadata(id)?;
                Ok(RetainedCheckpoint {
                    id,
                    completion_time_ms: m.completion_time_ms,
                    size: m.state_size(),
                    location: format!("memory:chk-{id}"),
                    savepoint: m.savepoint,
                })
            })
            .collect()
    }

    fn retained_ids(&self) -> Result<Vec<u64>, StorageError> {
        let mut ids: Vec<u64> = self.metadata.iter().map(|e| *e.key()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// In memory there are no shared files: snapshots are full.
    fn shared_dir(&self) -> Option<PathBuf> {
        None
    }

    fn write_shared_refs(
        &self,
        _checkpoint: u64,
        _name: &str,
        _refs: &[String],
    ) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Checkpoints as files under a directory.
///
/// Once a checkpoint that never completed is discarded, a subtask that is
/// still writing its part (off the processing path) cannot bring its
/// directory back: its writes are refused, and one that raced the discard
/// removes what it wrote.
#[derive(Clone, Debug)]
pub struct FsStorage {
    paths: CheckpointPaths,
    abandoned: Arc<std::sync::Mutex<std::collections::BTreeSet<u64>>>,
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl FsStorage {
    /// Storage for lineage `lineage` under `root` (created on first write).
    pub fn new(root: &Path, lineage: &str) -> Self {
        FsStorage {
            paths: CheckpointPaths::new(root, lineage),
            abandoned: Arc::default(),
        }
    }

    /// Storage over one snapshot directory (a savepoint, or a checkpoint given
    /// by path); see [`CheckpointPaths::of_snapshot_dir`].
    pub fn of_snapshot_dir(dir: &Path) -> Self {
        FsStorage {
            paths: CheckpointPaths::of_snapshot_dir(dir),
            abandoned: Arc::default(),
        }
    }

    /// Storage over an existing job directory (to list or read its checkpoints).
    pub fn of_job_dir(job_dir: &Path) -> Self {
        FsStorage {
            paths: CheckpointPaths::of_job_dir(job_dir),
            abandoned: Arc::default(),
        }
    }

    /// The paths this storage writes to.
    pub fn paths(&self) -> &CheckpointPaths {
        &self.paths
    }

    /// The shared files the subtask states of checkpoint `checkpoint` refer to.
    fn shared_refs_of(&self, checkpoint: u64) -> Result<Vec<String>, StorageError> {
        let dir = self.paths.checkpoint_dir(checkpoint);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StorageError::Io {
                    action: "cannot list",
                    path: dir,
                    source: e,
                })
            }
        };
        let mut refs = Vec::new();
        for entry in entries {
            let path = entry.map_err(io("cannot list", &dir))?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(REFS_SUFFIX))
            {
                let text = fs::read_to_string(&path).map_err(io("cannot read", &path))?;
                refs.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
            }
        }
        Ok(refs)
    }

    /// Deletes the shared files of `released` that no checkpoint directory
    /// (complete or still being written) refers to any more.
    fn delete_unreferenced(&self, released: Vec<String>) -> Result<(), StorageError> {
        let job_dir = self.paths.job_dir();
        let mut referenced = std::collections::HashSet::new();
        let ids = self
            .paths
            .checkpoint_ids()
            .map_err(io("cannot list", job_dir))?;
        for (id, _) in ids {
            referenced.extend(self.shared_refs_of(id)?);
        }
        let shared = self.paths.shared_dir();
        for name in released {
            if referenced.contains(&name) || name.contains('/') || name.contains("..") {
                continue;
            }
            let path = shared.join(&name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StorageError::Io {
                        action: "cannot delete",
                        path,
                        source: e,
                    })
                }
            }
        }
        Ok(())
    }

    fn is_abandoned(&self, checkpoint: u64) -> bool {
        self.abandoned
            .lock()
            .map(|a| a.contains(&checkpoint))
            .unwrap_or(false)
    }

    /// Writes `bytes` into the directory of `checkpoint` unless it was
    /// abandoned (before or while writing).
    fn write_into(&self, checkpoint: u64, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if self.is_abandoned(checkpoint) {
            return Err(StorageError::Abandoned(checkpoint));
        }
        let dir = self.paths.checkpoint_dir(checkpoint);
        fs::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        Self::write_file(&dir.join(name), bytes)?;
        if self.is_abandoned(checkpoint) {
            // The discard ran while this was written: remove what came back.
            let _ = fs::remove_dir_all(&dir);
            return Err(StorageError::Abandoned(checkpoint));
        }
        Ok(())
    }

    fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
        let mut file = File::create(path).map_err(io("cannot create", path))?;
        file.write_all(bytes).map_err(io("cannot write", path))?;
        file.sync_all().map_err(io("cannot sync", path))
    }
}

impl CheckpointStorage for FsStorage {
    fn write_state(
        &self,
        checkpoint: u64,
        name: &str,
        bytes: &[u8],
    ) -> Result<StateHandle, StorageError> {
        self.write_into(checkpoint, name, &encode(FileKind::State, bytes))?;
        Ok(StateHandle::File {
            name: name.to_string(),
            size: bytes.len() as u64,
        })
    }

    fn read_state(&self, checkpoint: u64, handle: &StateHandle) -> Result<Vec<u8>, StorageError> {
        let StateHandle::File { name, .. } = handle else {
            return Err(StorageError::NotFound(format!(
                "{checkpoint}: {handle:?} is not a file handle"
            )));
        };
        let path = self.paths.checkpoint_dir(checkpoint).join(name);
        let bytes = fs::read(&path).map_err(io("cannot read", &path))?;
        Ok(decode(&bytes, FileKind::State, &path.display().to_string())?.to_vec())
    }

    fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<String, StorageError> {
        let id = metadata.checkpoint_id;
        let dir = self.paths.checkpoint_dir(id);
        fs::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        let temp = self.paths.metadata_temp(id);
        Self::write_file(&temp, &encode_metadata(metadata)?)?;
        let path = self.paths.metadata(id);
        fs::rename(&temp, &path).map_err(io("cannot rename the metadata into", &path))?;
        // Make the rename itself durable.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("cannot sync directory", &dir))?;
        Ok(dir.display().to_string())
    }

    fn read_metadata(&self, checkpoint: u64) -> Result<CheckpointMetadata, StorageError> {
        let path = self.paths.metadata(checkpoint);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::NotFound(format!(
                    "{} (no {METADATA_FILE})",
                    self.paths.checkpoint_dir(checkpoint).display()
                )))
            }
            Err(e) => {
                return Err(StorageError::Io {
                    action: "cannot read",
                    path,
                    source: e,
                })
            }
        };
        decode_metadata(&bytes, &path.display().to_string())
    }

    fn discard(&self, checkpoint: u64) -> Result<(), StorageError> {
        let dir = self.paths.checkpoint_dir(checkpoint);
        let completed = self.paths.metadata(checkpoint).exists();
        let released = if completed {
            self.shared_refs_of(checkpoint)?
        } else {
            if let Ok(mut abandoned) = self.abandoned.lock() {
                abandoned.insert(checkpoint);
            }
            Vec::new()
        };
        // A writer that got in before the checkpoint was abandoned may add a
        // file while the directory is removed: try again.
        let mut attempts = 0;
        loop {
            match fs::remove_dir_all(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) if attempts < 3 => attempts += 1,
                Err(e) => {
                    return Err(StorageError::Io {
                        action: "cannot delete",
                        path: dir,
                        source: e,
                    })
                }
            }
        }
        if !released.is_empty() {
            self.delete_unreferenced(released)?;
        }
        Ok(())
    }

    fn shared_dir(&self) -> Option<PathBuf> {
        Some(self.paths.shared_dir())
    }

    fn retained_ids(&self) -> Result<Vec<u64>, StorageError> {
        if let Some(dir) = self.paths.fixed_dir() {
            return match self.read_metadata(0) {
                Ok(m) => Ok(vec![m.checkpoint_id]),
                Err(StorageError::NotFound(_)) => Ok(Vec::new()),
                Err(e) => Err(StorageError::Io {
                    action: "cannot read",
                    path: dir.to_path_buf(),
                    source: std::io::Error::other(e.to_string()),
                }),
            };
        }
        let job_dir = self.paths.job_dir();
        let ids = self
            .paths
            .checkpoint_ids()
            .map_err(io("cannot list", job_dir))?;
        Ok(ids
            .into_iter()
            .filter(|&(_, complete)| complete)
            .map(|(id, _)| id)
            .collect())
    }

    fn write_shared_refs(
        &self,
        checkpoint: u64,
        name: &str,
        refs: &[String],
    ) -> Result<(), StorageError> {
        self.write_into(
            checkpoint,
            &format!("{name}{REFS_SUFFIX}"),
            refs.join("\n").as_bytes(),
        )
    }

    fn list(&self) -> Result<Vec<RetainedCheckpoint>, StorageError> {
        if let Some(dir) = self.paths.fixed_dir() {
            return match self.read_metadata(0) {
                Ok(m) => Ok(vec![RetainedCheckpoint {
                    id: m.checkpoint_id,
                    completion_time_ms: m.completion_time_ms,
                    size: m.state_size(),
                    location: dir.display().to_string(),
                    savepoint: m.savepoint,
                }]),
                Err(StorageError::NotFound(_)) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
        }
        let job_dir = self.paths.job_dir();
        let ids = self
            .paths
            .checkpoint_ids()
            .map_err(io("cannot list", job_dir))?;
        let mut out = Vec::new();
        for (id, _) in ids {
            // A directory without _metadata is an unfinished checkpoint: not listed.
            match self.read_metadata(id) {
                Ok(m) => out.push(RetainedCheckpoint {
                    id,
                    completion_time_ms: m.completion_time_ms,
                    size: m.state_size(),
                    location: self.paths.checkpoint_dir(id).display().to_string(),
                    savepoint: m.savepoint,
                }),
                Err(StorageError::NotFound(_)) => continue,
                // One unreadable checkpoint must not hide the others (as Flink
                // skips a retained checkpoint it cannot read on recovery).
                Err(e) => {
                    tracing::warn!(checkpoint = id, error = %e, "skipping a checkpoint whose metadata cannot be read");
                }
            }
        }
        Ok(out)
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
        let metadata_path = storage.paths.metadata(2);
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

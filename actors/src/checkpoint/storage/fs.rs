//! Checkpoints as files under `<dir>/<lineage>/chk-<n>/` (see
//! [`crate::checkpoint::layout`]), where `<dir>` is a local directory or an
//! object store URL (see [`crate::location`]); `_metadata` is written last
//! and atomically (locally through a temporary file, fsync and rename; on an
//! object store by one PUT), so a checkpoint directory without it is not a
//! checkpoint. Every file carries the header of
//! [`crate::checkpoint::format`]; reads verify it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{
    decode_metadata, encode_metadata, io, shared, CheckpointStorage, RetainedCheckpoint,
    StorageError,
};
use crate::checkpoint::format::{decode, encode, FileKind};
use crate::checkpoint::layout::{CheckpointPaths, METADATA_FILE};
use crate::checkpoint::metadata::{CheckpointMetadata, StateHandle};
use crate::location;

/// Checkpoints as files under a directory (local, or an object store URL).
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
        location::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        let path = dir.join(name);
        location::write(&path, bytes).map_err(io("cannot write", &path))?;
        if self.is_abandoned(checkpoint) {
            // The discard ran while this was written: remove what came back.
            let _ = location::remove_dir_all(&dir);
            return Err(StorageError::Abandoned(checkpoint));
        }
        Ok(())
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
        let bytes = location::read(&path).map_err(io("cannot read", &path))?;
        Ok(decode(&bytes, FileKind::State, &path.display().to_string())?.to_vec())
    }

    fn write_metadata(&self, metadata: &CheckpointMetadata) -> Result<String, StorageError> {
        let id = metadata.checkpoint_id;
        let dir = self.paths.checkpoint_dir(id);
        location::create_dir_all(&dir).map_err(io("cannot create directory", &dir))?;
        let path = self.paths.metadata(id);
        location::write_atomically(&path, &encode_metadata(metadata)?).map_err(|e| {
            StorageError::Io {
                action: e.action,
                path: e.path,
                source: e.source,
            }
        })?;
        Ok(dir.display().to_string())
    }

    fn read_metadata(&self, checkpoint: u64) -> Result<CheckpointMetadata, StorageError> {
        let path = self.paths.metadata(checkpoint);
        let bytes = match location::read(&path) {
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
        let metadata = self.paths.metadata(checkpoint);
        let completed = location::exists(&metadata).map_err(io("cannot read", &metadata))?;
        let released = if completed {
            shared::refs_of(&self.paths, checkpoint)?
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
            match location::remove_dir_all(&dir) {
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
            shared::delete_unreferenced(&self.paths, released)?;
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
            &shared::refs_file_name(name),
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

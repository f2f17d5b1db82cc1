//! Checkpoints in memory (as Flink's JobManager storage): lost with the
//! process, for tests and small state, with a size limit per subtask state.

use std::path::PathBuf;
use std::sync::Arc;

use dashmap::DashMap;

use super::{
    decode_metadata, encode_metadata, CheckpointStorage, RetainedCheckpoint, StorageError,
};
use crate::checkpoint::format::{decode, encode, FileKind};
use crate::checkpoint::layout::METADATA_FILE;
use crate::checkpoint::metadata::{CheckpointMetadata, StateHandle};

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

//! What a completed checkpoint records in its `_metadata`, and what each
//! subtask writes as its state.

use crate::codec::{self, CodecError};
use serde::{Deserialize, Serialize};

use crate::snapshot::OperatorSnapshot;

/// The version of [`CheckpointMetadata`] written now (2 added `lineage`;
/// version 1 files read with the job id as their lineage).
pub const METADATA_VERSION: u32 = 2;

/// Where one subtask's state lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateHandle {
    /// In memory storage, under this key.
    Memory {
        /// The key in the storage's map.
        key: String,
        /// Bytes stored.
        size: u64,
    },
    /// A file, relative to the checkpoint's directory.
    File {
        /// The file name within `chk-<n>/`.
        name: String,
        /// Bytes stored.
        size: u64,
    },
}

impl StateHandle {
    /// Bytes stored.
    pub fn size(&self) -> u64 {
        match self {
            StateHandle::Memory { size, .. } | StateHandle::File { size, .. } => *size,
        }
    }
}

/// An operator of the job, as the checkpoint saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorMetadata {
    /// Its stable id.
    pub uid: String,
    /// Its display name.
    pub name: String,
    /// Its parallelism.
    pub parallelism: usize,
    /// Its max parallelism.
    pub max_parallelism: usize,
    /// Its key type, for a keyed operator (`std::any::type_name`).
    #[serde(default)]
    pub key_type: Option<String>,
}

/// One subtask's part of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskStateMetadata {
    /// The uids of the operators of its chain, head first.
    pub operators: Vec<String>,
    /// Its subtask index.
    pub subtask: usize,
    /// Where its state lives.
    pub handle: StateHandle,
    /// Bytes of in-flight records it captured (unaligned checkpoints).
    pub in_flight_bytes: u64,
}

/// The `_metadata` of a completed checkpoint: written last, it is what makes
/// the checkpoint exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// [`METADATA_VERSION`] when written.
    pub version: u32,
    /// The job's name.
    pub job_name: String,
    /// The job's id (one per run).
    pub job_id: String,
    /// The lineage the snapshot belongs to (see [`crate::lineage`]); empty in
    /// version 1 files, see [`CheckpointMetadata::lineage`].
    #[serde(default)]
    pub lineage: String,
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// When it was triggered (ms since the epoch).
    pub trigger_time_ms: i64,
    /// When it completed (ms since the epoch).
    pub completion_time_ms: i64,
    /// Every operator of the job.
    pub operators: Vec<OperatorMetadata>,
    /// Every subtask's state.
    pub subtasks: Vec<SubtaskStateMetadata>,
}

impl CheckpointMetadata {
    /// The snapshot's lineage: the recorded one, or for files written before
    /// lineages were recorded, the job id of the run that wrote it.
    pub fn lineage(&self) -> &str {
        if self.lineage.is_empty() {
            &self.job_id
        } else {
            &self.lineage
        }
    }

    /// Bytes of state over all subtasks.
    pub fn state_size(&self) -> u64 {
        self.subtasks.iter().map(|s| s.handle.size()).sum()
    }
}

/// In-flight records of one channel, captured by an unaligned checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelState {
    /// The input gate channel (input side) or the output edge slot (output side).
    pub index: usize,
    /// The channel on that output edge (output side only).
    pub channel: usize,
    /// The batches, each encoded by its record type.
    pub batches: Vec<Vec<u8>>,
}

/// What one subtask writes for a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The checkpoint's id.
    pub checkpoint_id: u64,
    /// Per operator of the chain (by uid), its snapshot.
    pub operators: Vec<(String, OperatorSnapshot)>,
    /// Records that were in its input channels before the barrier (unaligned).
    pub input_channels: Vec<ChannelState>,
    /// Records it had emitted but not sent when the barrier overtook them (unaligned).
    pub output_channels: Vec<ChannelState>,
}

impl SubtaskState {
    /// Decodes what a subtask wrote (the payload of its state file).
    pub fn decode(bytes: &[u8]) -> Result<SubtaskState, CodecError> {
        codec::decode(bytes)
    }

    /// Encodes the state (as a subtask writes it).
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// The names of the files in the storage's shared directory that the
    /// state refers to (incremental keyed snapshots).
    pub fn shared_refs(&self) -> Vec<String> {
        let mut refs: Vec<String> = self
            .operators
            .iter()
            .flat_map(|(_, s)| &s.keyed_handles)
            .flat_map(|h| h.shared.iter().map(|f| f.name.clone()))
            .collect();
        refs.sort();
        refs.dedup();
        refs
    }

    /// Bytes of captured in-flight records.
    pub fn in_flight_bytes(&self) -> u64 {
        self.input_channels
            .iter()
            .chain(&self.output_channels)
            .flat_map(|c| &c.batches)
            .map(|b| b.len() as u64)
            .sum()
    }
}

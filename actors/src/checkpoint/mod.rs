//! Checkpoints: asynchronous barrier snapshotting across the actor topology.
//!
//! A [`coordinator`] actor triggers checkpoint `n` at every source subtask; a
//! source snapshots its position and sends barrier `n` downstream in order with
//! its records. Each subtask aligns the barriers of its inputs (exactly-once),
//! or takes its snapshot at the first barrier and captures the records the
//! barrier overtook (unaligned), or takes it at the last barrier without
//! blocking anything (at-least-once); it writes its state off the processing
//! path and acknowledges. When every subtask has acknowledged, the coordinator
//! writes `_metadata` (the checkpoint now exists) and notifies every operator.
//!
//! - [`config`]: [`CheckpointConfig`], the settings.
//! - [`tracker`]: the coordinator's bookkeeping as a plain, unit-tested type;
//!   [`protocol`]: the coordinator's messages.
//! - [`format`](mod@format), [`layout`], [`metadata`], [`storage`]: what is written, where, and how;
//!   [`durable`]: small files written atomically.
//! - [`savepoint`]: savepoint directories and the storage that routes to them.
//! - [`stats`]: per checkpoint and per subtask figures.

pub mod config;
pub mod coordinator;
pub mod durable;
pub mod failure;
pub mod format;
pub mod layout;
pub mod metadata;
pub mod protocol;
pub mod savepoint;
pub mod stats;
pub mod storage;
pub mod tracker;

pub use config::{CheckpointConfig, CheckpointMode, ExternalizedRetention};
pub use failure::CheckpointFailure;
pub use metadata::{CheckpointMetadata, StateHandle, SubtaskState};
pub use stats::{CheckpointCounts, CheckpointStats, SubtaskCheckpointStats};
pub use storage::{
    CheckpointStorage, FsStorage, MemoryStorage, RetainedCheckpoint, StorageError, StorageSpec,
};

use serde::{Deserialize, Serialize};

/// The barrier of checkpoint `id`, travelling in order with the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointBarrier {
    /// The checkpoint's id.
    pub id: u64,
    /// When the coordinator triggered it (ms since the epoch).
    pub timestamp: i64,
    /// How subtasks take it.
    pub kind: BarrierKind,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// Whether it is the final checkpoint of a bounded job (always aligned:
    /// every record reaches the sinks before the job ends).
    pub is_final: bool,
    /// Whether it is a stop-with-savepoint: sources emit nothing after it, and
    /// its completion ends every subtask (it is also `is_final`).
    #[serde(default)]
    pub stop: bool,
    /// The latest checkpoint the coordinator knew complete when it triggered
    /// this one. A subtask hears of that completion before it takes this
    /// barrier's snapshot, even when the notification itself comes later:
    /// a two-phase-commit sink commits the previous transaction before it
    /// prepares the next (whose rows may wait for the previous one's locks).
    #[serde(default)]
    pub completed_before: Option<u64>,
}

/// How a subtask takes a checkpoint when its barriers arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BarrierKind {
    /// Exactly-once, aligned: block each input after its barrier until all arrived.
    Aligned,
    /// Exactly-once, unaligned: snapshot at the first barrier and capture overtaken records.
    Unaligned,
    /// At-least-once: snapshot at the last barrier, block nothing.
    AtLeastOnce,
}

//! Checkpoint statistics, per subtask and per checkpoint.

use std::time::Duration;

use super::failure::CheckpointFailure;

/// One subtask's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubtaskCheckpointStats {
    /// The synchronous part (on the processing path).
    pub sync_duration: Duration,
    /// The asynchronous part (serialisation and writing).
    pub async_duration: Duration,
    /// From the first barrier to the last (aligned), or zero.
    pub alignment_duration: Duration,
    /// Bytes of state written.
    pub state_bytes: u64,
    /// Bytes of in-flight records captured (unaligned).
    pub in_flight_bytes: u64,
    /// Whether the subtask took the checkpoint unaligned.
    pub unaligned: bool,
}

/// How many checkpoints of a job completed and failed (a subsumed or
/// declined-as-unneeded one is neither: `counts_as_failure`), and how long
/// the latest completed one took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckpointCounts {
    /// Completed checkpoints and savepoints.
    pub completed: usize,
    /// Failed ones.
    pub failed: usize,
    /// The latest completed one's end-to-end duration.
    pub last_completed_duration: Option<std::time::Duration>,
}

/// A finished checkpoint, complete or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint's id.
    pub id: u64,
    /// When it was triggered (ms since the epoch).
    pub trigger_time_ms: i64,
    /// From trigger to completion (or abort).
    pub end_to_end: Duration,
    /// Bytes of state over all subtasks.
    pub state_bytes: u64,
    /// Bytes of in-flight data over all subtasks.
    pub in_flight_bytes: u64,
    /// Whether any subtask took it unaligned.
    pub unaligned: bool,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// `None` if it completed, else why it did not.
    pub failure: Option<CheckpointFailure>,
    /// Where it was written, once complete (a directory, or `memory:chk-<n>`).
    pub location: Option<String>,
    /// Per subtask: (task name, subtask index, its figures).
    pub subtasks: Vec<(String, usize, SubtaskCheckpointStats)>,
}

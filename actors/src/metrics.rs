//! Counters a subtask reports when it ends: records in and out, the deepest
//! input queue it saw (the figure that proves flow control bounds memory), and
//! per keyed state the keys it holds and the entries expired and how.

/// What one subtask did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubtaskMetrics {
    /// The chain's display name.
    pub task: String,
    /// Subtask index.
    pub subtask: usize,
    /// Records received from the network (0 for a source chain).
    pub records_in: u64,
    /// Records sent to the network (0 for a sink chain).
    pub records_out: u64,
    /// Batches sent to the network.
    pub batches_out: u64,
    /// The most batches ever waiting in one of its input channels.
    pub max_queued_batches: usize,
    /// Per keyed state, of every operator of the chain.
    pub states: Vec<StateMetrics>,
    /// The operators' own counters (late records of a window, ...).
    pub counters: Vec<OperatorCounter>,
}

/// A counter an operator keeps (see `StreamOperator::counters`), in one subtask.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OperatorCounter {
    /// The operator's name.
    pub operator: String,
    /// What it counts (`late_records`, ...).
    pub name: String,
    /// The count.
    pub value: u64,
}

/// The counters of one keyed state, in one subtask.
///
/// Expired entries (values, list elements, map entries) are counted where they
/// were removed: on read, by a background cleanup (the incremental cleanup,
/// the erasure sweep), by a cleanup timer, or by a
/// RocksDB compaction.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateMetrics {
    /// The operator that owns the state.
    pub operator: String,
    /// The state's name.
    pub state: String,
    /// Its time-to-live settings, as `weir inspect` shows them (`None`: it
    /// has no time to live, and the expired counts are 0).
    pub ttl: Option<String>,
    /// Expired entries removed when they were read.
    pub expired_on_read: u64,
    /// Expired entries removed by a background cleanup (incremental, erasure sweep).
    pub expired_by_sweep: u64,
    /// Expired entries removed by their cleanup timer.
    pub expired_by_timer: u64,
    /// Expired entries dropped by RocksDB compactions.
    pub expired_by_compaction: u64,
    /// Keys with an entry stored now (expired ones not yet removed
    /// included), where the backend knows it cheaply (the heap); `None` else.
    pub stored_keys: Option<u64>,
}

impl StateMetrics {
    /// Every expired entry removed, however.
    pub fn expired(&self) -> u64 {
        self.expired_on_read
            + self.expired_by_sweep
            + self.expired_by_timer
            + self.expired_by_compaction
    }
}

/// The outcome of a finished job.
#[derive(Clone, Debug, Default)]
pub struct JobResult {
    /// The job's name.
    pub job_name: String,
    /// The job's id (one per run).
    pub job_id: String,
    /// The job's lineage: the id of the run that began its history (see
    /// [`crate::lineage`]); its checkpoints are in `<checkpoint dir>/<lineage>/`.
    pub lineage: String,
    /// Wall time from deployment to the last subtask finishing.
    pub duration: std::time::Duration,
    /// Per subtask counters, ordered by task then subtask.
    pub subtasks: Vec<SubtaskMetrics>,
    /// Every checkpoint that ended while the job ran (complete or not), oldest first.
    pub checkpoints: Vec<crate::checkpoint::CheckpointStats>,
    /// How often the job restarted after a failure.
    pub restarts: u32,
    /// Where the snapshot is that the job was stopped with (a savepoint, or a
    /// checkpoint of its lineage); `None` when it ran to its end.
    pub stopped_at: Option<String>,
}

impl JobResult {
    /// The checkpoints that completed.
    pub fn completed_checkpoints(
        &self,
    ) -> impl Iterator<Item = &crate::checkpoint::CheckpointStats> {
        self.checkpoints.iter().filter(|c| c.failure.is_none())
    }

    /// The metrics of every keyed state, of every subtask.
    pub fn state_metrics(&self) -> impl Iterator<Item = &StateMetrics> {
        self.subtasks.iter().flat_map(|s| s.states.iter())
    }

    /// The counter `name` of the operators named `operator`, summed over
    /// their subtasks (0 if none keeps it).
    pub fn counter(&self, operator: &str, name: &str) -> u64 {
        self.subtasks
            .iter()
            .flat_map(|s| s.counters.iter())
            .filter(|c| c.operator == operator && c.name == name)
            .map(|c| c.value)
            .sum()
    }

    /// The deepest input queue of any subtask, in batches.
    pub fn max_queued_batches(&self) -> usize {
        self.subtasks
            .iter()
            .map(|s| s.max_queued_batches)
            .max()
            .unwrap_or(0)
    }
}

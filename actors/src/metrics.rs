//! Counters a subtask reports when it ends: records in and out, and the deepest
//! input queue it saw (the figure that proves flow control bounds memory).

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

    /// The deepest input queue of any subtask, in batches.
    pub fn max_queued_batches(&self) -> usize {
        self.subtasks
            .iter()
            .map(|s| s.max_queued_batches)
            .max()
            .unwrap_or(0)
    }
}

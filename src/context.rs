//! What an operator instance knows about where it runs.

use weir_actors::OperatorInfo;

/// The identity of one parallel instance of an operator, given to `open`.
///
/// ```
/// # use weir::RuntimeContext;
/// fn describe(ctx: &RuntimeContext) -> String {
///     format!("{} {}/{}", ctx.operator_name(), ctx.subtask_index() + 1, ctx.parallelism())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct RuntimeContext {
    info: OperatorInfo,
}

impl RuntimeContext {
    pub(crate) fn new(info: OperatorInfo) -> Self {
        RuntimeContext { info }
    }

    /// The operator's display name.
    pub fn operator_name(&self) -> &str {
        &self.info.name
    }

    /// The operator's stable id.
    pub fn uid(&self) -> &str {
        &self.info.uid
    }

    /// This instance's index, `0..parallelism()`.
    pub fn subtask_index(&self) -> usize {
        self.info.subtask
    }

    /// Number of parallel instances of the operator.
    pub fn parallelism(&self) -> usize {
        self.info.parallelism
    }

    /// Whether the job takes checkpoints (sinks commit on them, not at the end).
    pub fn checkpointing(&self) -> bool {
        self.info.checkpointing
    }

    /// The job's name.
    pub fn job_name(&self) -> &str {
        &self.info.job
    }

    /// The job's lineage: the same for every run restored from the job's own
    /// snapshots (see [`weir_actors::lineage`]).
    pub fn lineage(&self) -> &str {
        &self.info.lineage
    }

    /// The checkpoint (or savepoint) this run of the operator was restored
    /// from, if it was (Flink's `getRestoredCheckpointId`).
    pub fn restored_checkpoint_id(&self) -> Option<u64> {
        self.info.restored_from
    }

    /// The operator's max parallelism (its number of key groups).
    pub fn max_parallelism(&self) -> usize {
        self.info.max_parallelism
    }

    /// Where incremental snapshots put files shared between checkpoints.
    #[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
    pub(crate) fn shared_state_dir(&self) -> Option<&std::path::Path> {
        self.info.shared_state_dir.as_deref()
    }
}

//! The runtime's view of an operator: something that turns batches into batches.
//!
//! The API layer (`weir`) implements these traits once, generically, and every
//! user-facing operator (map, filter, process, sinks, ...) is a thin layer on that
//! implementation. The runtime calls them from inside a subtask actor, catches
//! panics, and turns an `Err` into a job failure naming the operator and subtask.
//!
//! Besides record batches an operator sees *watermarks* (event time has reached
//! `t`: no record with a smaller timestamp should follow) and *processing time*
//! (wall-clock callbacks it asked for). Both drive its timers.

use crate::batch::Batch;
use crate::snapshot::OperatorSnapshot;

pub use crate::clock::processing_time_now;
pub use crate::error::UserError;

/// Identity of one parallel instance of an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorInfo {
    /// The operator's display name (`name()` in the API).
    pub name: String,
    /// The operator's stable id (`uid()` in the API).
    pub uid: String,
    /// Index of this parallel instance, `0..parallelism`.
    pub subtask: usize,
    /// Number of parallel instances of the operator.
    pub parallelism: usize,
    /// Upper bound for the parallelism, fixing the number of key groups.
    pub max_parallelism: usize,
    /// The job's name.
    pub job: String,
    /// The job's lineage (see [`crate::lineage`]).
    pub lineage: String,
    /// The checkpoint (or savepoint) id this deployment restored, if any.
    pub restored_from: Option<u64>,
    /// Whether the job takes checkpoints.
    pub checkpointing: bool,
    /// Where incremental snapshots put files shared between checkpoints (the
    /// checkpoint storage's `shared/` directory); `None` when the storage has
    /// none, and keyed state is then snapshotted in full.
    pub shared_state_dir: Option<std::path::PathBuf>,
}

/// Where an operator puts its output, in order.
pub trait Emitter {
    /// Hands one batch to whatever follows the operator.
    fn emit(&mut self, batch: Batch);
    /// Event time has reached `watermark` on this output.
    fn emit_watermark(&mut self, watermark: i64);
    /// This output goes idle (`true`: exclude it from downstream watermarks) or active again.
    fn emit_idle(&mut self, idle: bool);
    /// Hands one batch of the side output `tag` to the edges that consume
    /// it (none: the records are dropped, as Flink drops an unconsumed side
    /// output). Watermarks and idleness reach side outputs as well.
    fn emit_side(&mut self, tag: &std::sync::Arc<str>, batch: Batch);
}

/// The asynchronous part of a snapshot: serialisation and the like, run off
/// the processing path.
pub struct PendingSnapshot(Box<dyn FnOnce() -> Result<OperatorSnapshot, UserError> + Send>);

impl PendingSnapshot {
    /// A snapshot that still needs `finish` to be run.
    pub fn new(
        finish: impl FnOnce() -> Result<OperatorSnapshot, UserError> + Send + 'static,
    ) -> Self {
        PendingSnapshot(Box::new(finish))
    }

    /// A snapshot that is already complete.
    pub fn ready(snapshot: OperatorSnapshot) -> Self {
        PendingSnapshot::new(move || Ok(snapshot))
    }

    /// Runs the asynchronous part.
    pub fn finish(self) -> Result<OperatorSnapshot, UserError> {
        (self.0)()
    }
}

impl std::fmt::Debug for PendingSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingSnapshot")
    }
}

/// An operator with one or more inputs, as the runtime drives it.
pub trait StreamOperator: Send + 'static {
    /// Called once before `open`: restore from `restored` (already redistributed
    /// for this subtask), or start empty if there is none.
    fn initialize_state(
        &mut self,
        _info: &OperatorInfo,
        _restored: Option<OperatorSnapshot>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// Takes the synchronous part of a snapshot (short: no serialisation) and
    /// returns the rest, which runs off the processing path.
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        Ok(PendingSnapshot::ready(OperatorSnapshot::default()))
    }

    /// The same for a savepoint: the state must be self-contained and in its
    /// canonical format (no reference to files shared with checkpoints, so
    /// that it outlives them and any state backend can read it).
    fn snapshot_savepoint(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        self.snapshot_state(checkpoint_id)
    }

    /// Called once before the first batch.
    fn open(&mut self, _info: &OperatorInfo) -> Result<(), UserError> {
        Ok(())
    }

    /// Processes one batch that arrived on input `input` (0 for one-input operators).
    fn process_batch(
        &mut self,
        input: usize,
        batch: Batch,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError>;
    /// The operator's watermark (the minimum over its inputs) advanced to
    /// `watermark`. Fire event-time timers, then forward it (the default forwards).
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// The earliest processing time (ms since the epoch) at which the operator
    /// wants [`StreamOperator::on_processing_time`] called, if any.
    fn next_processing_time(&self) -> Option<i64> {
        None
    }

    /// Processing time reached `now` (at or after what `next_processing_time` asked).
    fn on_processing_time(&mut self, _now: i64, _out: &mut dyn Emitter) -> Result<(), UserError> {
        Ok(())
    }

    /// Input `input` has ended: no batch will arrive on it again.
    fn end_input(&mut self, _input: usize, _out: &mut dyn Emitter) -> Result<(), UserError> {
        Ok(())
    }

    /// Answers a live query (see [`crate::query`]) of its queryable state
    /// `name`. The default: the operator has no queryable state.
    fn query_state(
        &mut self,
        info: &OperatorInfo,
        name: &str,
        _query: &crate::query::StateQuery,
    ) -> Result<crate::query::StateAnswer, crate::query::QueryError> {
        Err(crate::query::QueryError::no_queryable_state(
            &info.uid, name,
        ))
    }

    /// Checkpoint `checkpoint_id` is complete: everything this operator
    /// snapshotted for it is durable (a sink commits here).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` will never complete (a sink aborts what it pre-committed for it).
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once after every input ended and the last output was emitted
    /// (and, with checkpointing, after the final checkpoint completed).
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }

    /// The counters of its keyed states (`operator` left empty: the chain
    /// fills it in). Read before `close`.
    fn state_metrics(&self) -> Vec<crate::metrics::StateMetrics> {
        Vec::new()
    }

    /// The operator's own counters, by name (a window's late records, ...).
    /// Read before `close`, into the subtask's metrics.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Whether a source has more to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// The source may produce more records.
    More,
    /// The source is exhausted; its subtask ends its outputs.
    Finished,
}

/// The head of a chain that produces records instead of receiving them.
pub trait SourceOperator: Send + 'static {
    /// Called once before `open`: restore the read position, or start afresh.
    fn initialize_state(
        &mut self,
        _info: &OperatorInfo,
        _restored: Option<OperatorSnapshot>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// Snapshots the read position (synchronous part; the rest is returned).
    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        Ok(PendingSnapshot::ready(OperatorSnapshot::default()))
    }

    /// Called once before the first poll.
    fn open(&mut self, _info: &OperatorInfo) -> Result<(), UserError> {
        Ok(())
    }

    /// Emits at most `max_records` records (usually one batch).
    fn poll_batch(
        &mut self,
        max_records: usize,
        out: &mut dyn Emitter,
    ) -> Result<SourceStatus, UserError>;
    /// Checkpoint `checkpoint_id` is complete.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }

    /// Checkpoint `checkpoint_id` will never complete.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }

    /// Called once after the source finished (and, with checkpointing, after
    /// the final checkpoint completed).
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

//! The runtime's view of an operator: something that turns batches into batches.
//!
//! The API layer (`weir`) implements these traits once, generically, and every
//! user-facing operator (map, filter, process, sinks, ...) is a thin layer on that
//! implementation. The runtime calls them from inside a subtask actor, catches
//! panics, and turns an `Err` into a job failure naming the operator and subtask.

use crate::batch::Batch;

/// An error returned by user code (an operator, a source or a sink).
pub type UserError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
}

/// Where a chained operator puts its output batches.
pub trait Emitter {
    /// Hands one batch to whatever follows the operator.
    fn emit(&mut self, batch: Batch);
}

impl Emitter for Vec<Batch> {
    fn emit(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.push(batch);
        }
    }
}

/// An operator with one or more inputs, as the runtime drives it.
pub trait StreamOperator: Send + 'static {
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
    /// Input `input` has ended: no batch will arrive on it again.
    fn end_input(&mut self, _input: usize, _out: &mut dyn Emitter) -> Result<(), UserError> {
        Ok(())
    }
    /// Called once after every input ended and the last output was emitted.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
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
    /// Called once after the source finished.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

//! `process`: the general per-record function with a context and a collector.

use weir_actors::{RecordBatch, UserError};

use crate::context::RuntimeContext;
use crate::data::Data;
use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::{Collector, OneInputOperator};
use crate::side_output::{OutputTag, SideOutputs};

/// What a [`ProcessFunction`] can see of its situation while it handles a record.
pub struct ProcessContext<'a> {
    runtime: &'a RuntimeContext,
    timestamp: Option<i64>,
    watermark: i64,
    side: &'a mut SideOutputs,
}

impl ProcessContext<'_> {
    /// Where this instance runs (operator name, subtask index, parallelism).
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }

    /// The timestamp of the record being processed, if the stream has event time.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark (`i64::MIN` before the first).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Emits `value` to the side output `tag` (see [`crate::side_output`]),
    /// with the record's timestamp.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.side.push(tag, value, self.timestamp);
    }
}

/// A function that may emit any number of records per input record, keep its
/// own fields between records, and fail with an error.
///
/// One instance runs per subtask, cloned from the value given to `process`.
///
/// ```
/// use weir::{Collector, Lifecycle, ProcessContext, ProcessFunction, StreamEnv, UserError};
///
/// /// Emits the running total after every record.
/// #[derive(Clone, Default)]
/// struct RunningTotal { total: u64 }
///
/// impl Lifecycle for RunningTotal {}
///
/// impl ProcessFunction<u64, u64> for RunningTotal {
///     fn process_element(&mut self, value: u64, _ctx: &mut ProcessContext, out: &mut Collector<u64>) -> Result<(), UserError> {
///         self.total += value;
///         out.collect(self.total);
///         Ok(())
///     }
/// }
///
/// let env = StreamEnv::with_parallelism(1);
/// let out = env.from_collection(vec![1u64, 2, 3]).process(RunningTotal::default()).collect();
/// env.execute_blocking("totals").unwrap();
/// assert_eq!(out.take(), vec![1, 3, 6]);
/// ```
pub trait ProcessFunction<In, Out>: Lifecycle + Clone + Send + 'static {
    /// Handles one record.
    fn process_element(
        &mut self,
        value: In,
        ctx: &mut ProcessContext,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// The input has ended: emit what is held back ([`Lifecycle::finish`] follows).
    fn on_end_of_input(&mut self, _out: &mut Collector<Out>) -> Result<(), UserError> {
        Ok(())
    }
}

/// Runs a [`ProcessFunction`] as a [`OneInputOperator`].
#[derive(Clone)]
pub struct Process<F> {
    function: F,
    runtime: Option<RuntimeContext>,
    watermark: i64,
}

impl<F> Process<F> {
    /// Wraps `function`.
    pub fn new(function: F) -> Self {
        Process {
            function,
            runtime: None,
            watermark: i64::MIN,
        }
    }
}

impl<F: Lifecycle> Lifecycle for Process<F> {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.runtime = Some(ctx.clone());
        self.function.open(ctx)
    }

    forward_lifecycle!(function: initialize_state, snapshot_state, notify_checkpoint_complete,
        notify_checkpoint_aborted, finish, close);
}

impl<In, Out: Clone + Send + 'static, F: ProcessFunction<In, Out>> OneInputOperator<In, Out>
    for Process<F>
{
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("process function used before open")?;
        let mut side = std::mem::take(out.side_outputs());
        for (value, timestamp) in batch.into_iter_with_timestamps() {
            let mut ctx = ProcessContext {
                runtime,
                timestamp,
                watermark: self.watermark,
                side: &mut side,
            };
            out.set_timestamp(timestamp);
            self.function.process_element(value, &mut ctx, out)?;
        }
        *out.side_outputs() = side;
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        self.watermark = watermark;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn end_input(&mut self, out: &mut Collector<Out>) -> Result<(), UserError> {
        out.set_timestamp(None);
        self.function.on_end_of_input(out)
    }
}

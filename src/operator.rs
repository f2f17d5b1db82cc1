//! The one generic one-input operator every transformation is built on.
//!
//! An operator implements [`OneInputOperator`]: it receives a whole batch of
//! typed records and emits into a [`Collector`]. [`DataStream::transform`]
//! turns it into a runtime operator (one downcast per batch) and wires it into
//! the job; `map`, `filter`, `flat_map`, `process` and the sinks are a few lines
//! each on top of it, so batching, type erasure and error plumbing live here
//! only.
//!
//! ```
//! use weir::{Collector, Lifecycle, OneInputOperator, RecordBatch, StreamEnv, UserError};
//!
//! /// Emits each record twice.
//! #[derive(Clone)]
//! struct Twice;
//! impl Lifecycle for Twice {}
//! impl OneInputOperator<u32, u32> for Twice {
//!     fn process_batch(&mut self, batch: RecordBatch<u32>, out: &mut Collector<u32>) -> Result<(), UserError> {
//!         for x in batch.records {
//!             out.collect(x);
//!             out.collect(x);
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::with_parallelism(1);
//! let out = env.from_collection(vec![1u32, 2]).transform("twice", Twice).collect();
//! env.execute_blocking("twice").unwrap();
//! assert_eq!(out.take(), vec![1, 1, 2, 2]);
//! ```
//!
//! [`DataStream::transform`]: crate::DataStream::transform

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use crate::state::{OperatorStateStore, StateInitContext, StateSnapshotContext};

use weir_actors::graph::OperatorFactory;
use weir_actors::snapshot::OperatorSnapshot;
use weir_actors::{
    downcast_batch, Batch, Emitter, OperatorInfo, PendingSnapshot, RecordBatch, StreamOperator,
    UserError,
};

use crate::context::RuntimeContext;
use crate::data::Data;
use crate::lifecycle::Lifecycle;
use crate::side_output::{OutputTag, SideOutputs};

/// Collects an operator's output, in order: records (each with the timestamp
/// in effect, see [`Collector::set_timestamp`]) and watermarks. What one call
/// collected leaves as one batch.
pub struct Collector<T> {
    batch: RecordBatch<T>,
    timestamp: Option<i64>,
    sealed: Vec<Sealed<T>>,
    side: SideOutputs,
}

enum Sealed<T> {
    Records(RecordBatch<T>),
    Side(std::sync::Arc<str>, Batch),
    Watermark(i64),
    Idle(bool),
}

impl<T> Collector<T> {
    pub(crate) fn new() -> Self {
        Collector {
            batch: RecordBatch::with_capacity(0),
            timestamp: None,
            sealed: Vec::new(),
            side: SideOutputs::default(),
        }
    }

    /// Emits `value` to the side output `tag`, with the current timestamp.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.side.push(tag, value, self.timestamp);
    }

    /// The side records collected since the last flush (functions whose
    /// context emits them borrow these while the collector is lent out too).
    pub(crate) fn side_outputs(&mut self) -> &mut SideOutputs {
        &mut self.side
    }

    /// The timestamp given to records collected from now on (`None`: no event time).
    /// Built-in operators set it to the timestamp of the record being processed.
    #[inline]
    pub fn set_timestamp(&mut self, timestamp: Option<i64>) {
        self.timestamp = timestamp;
    }

    /// The timestamp records collected now receive.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Makes room for `additional` more records (one per input record, say).
    pub fn reserve(&mut self, additional: usize) {
        self.batch.records.reserve(additional);
    }

    /// Emits one record with the current timestamp.
    #[inline]
    pub fn collect(&mut self, record: T) {
        self.batch.push(record, self.timestamp);
    }

    /// Emits one record with the given timestamp.
    #[inline]
    pub fn collect_with_timestamp(&mut self, record: T, timestamp: i64) {
        self.batch.push(record, Some(timestamp));
    }

    /// Emits every record of `records` with the current timestamp.
    pub fn extend(&mut self, records: impl IntoIterator<Item = T>) {
        for record in records {
            self.collect(record);
        }
    }

    /// Emits a whole batch (moved, not copied, when nothing else was collected).
    pub fn collect_batch(&mut self, batch: RecordBatch<T>) {
        self.batch.append(batch);
    }

    /// Emits a watermark after the records collected so far.
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.seal();
        self.sealed.push(Sealed::Watermark(watermark));
    }

    /// Marks this output idle (it holds back no watermark) or active again.
    pub fn emit_idle(&mut self, idle: bool) {
        self.seal();
        self.sealed.push(Sealed::Idle(idle));
    }

    /// Number of records collected since the last flush.
    pub fn len(&self) -> usize {
        let sealed: usize = self
            .sealed
            .iter()
            .map(|e| {
                if let Sealed::Records(b) = e {
                    b.len()
                } else {
                    0
                }
            })
            .sum();
        self.batch.len() + sealed
    }

    /// Whether nothing was collected since the last flush.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn seal(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, RecordBatch::with_capacity(0));
            self.sealed.push(Sealed::Records(batch));
        }
        if !self.side.is_empty() {
            for (tag, batch) in self.side.take_batches() {
                self.sealed.push(Sealed::Side(tag, batch));
            }
        }
    }
}

impl<T: Clone + Send + serde::Serialize + 'static> Collector<T> {
    pub(crate) fn flush_into(&mut self, out: &mut dyn Emitter) {
        self.seal();
        for event in self.sealed.drain(..) {
            match event {
                Sealed::Records(batch) => out.emit(Box::new(batch)),
                Sealed::Side(tag, batch) => out.emit_side(&tag, batch),
                Sealed::Watermark(w) => out.emit_watermark(w),
                Sealed::Idle(i) => out.emit_idle(i),
            }
        }
        self.timestamp = None;
    }
}

/// An operator with one input, driven batch by batch. Its lifecycle hooks
/// (`open`, snapshots, checkpoint notifications, `finish`, `close`) are
/// [`Lifecycle`]'s.
///
/// One instance runs per parallel subtask, cloned from the value given to
/// [`crate::DataStream::transform`] (and cloned afresh on every restart).
pub trait OneInputOperator<In, Out>: Lifecycle + Clone + Send + 'static {
    /// Processes a batch of input records (with their timestamps, if any).
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// Event time reached `watermark`: fire what waited for it, then forward
    /// it (the default only forwards).
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// The earliest processing time (ms since the epoch) at which to call
    /// [`OneInputOperator::on_processing_time`], if any.
    fn next_processing_time(&self) -> Option<i64> {
        None
    }

    /// Processing time reached `now`.
    fn on_processing_time(
        &mut self,
        _now: i64,
        _out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// The input has ended; emit whatever is still held back
    /// ([`Lifecycle::finish`] follows).
    fn end_input(&mut self, _out: &mut Collector<Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// The counters of its keyed states: keys held, entries expired (the
    /// keyed operators weir provides report theirs; the runtime adds them to
    /// the subtask's [`crate::SubtaskMetrics`] when it ends).
    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        Vec::new()
    }

    /// Its own counters by name (a window operator's late records), added to
    /// the subtask's metrics when it ends (`JobResult::counter`).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Answers a live query of its queryable state `name` (see
    /// [`crate::query`]): the keyed operators weir provides answer theirs;
    /// the default has none.
    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        _query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        Err(weir_actors::QueryError::no_queryable_state(uid, name))
    }
}

/// What the runtime drives of a typed operator with one or two inputs: its
/// batches by input, event and processing time, the end of each input. The
/// one [`OperatorAdapter`] runs either kind.
pub(crate) trait TypedInputs<Out>: Send + 'static {
    /// How many inputs.
    const INPUTS: usize;
    /// The operator's lifecycle hooks.
    fn lifecycle(&mut self) -> &mut dyn Lifecycle;
    /// A batch that arrived on input `input`.
    fn process(
        &mut self,
        input: usize,
        batch: Batch,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// Event time (over every input) reached `watermark`.
    fn watermark(&mut self, watermark: i64, out: &mut Collector<Out>) -> Result<(), UserError>;
    /// When to call `processing_time`.
    fn next_processing_time(&self) -> Option<i64>;
    /// Processing time reached `now`.
    fn processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError>;
    /// Input `input` ended.
    fn end(&mut self, input: usize, out: &mut Collector<Out>) -> Result<(), UserError>;
    /// The counters of its keyed states.
    fn state_metrics(&self) -> Vec<crate::StateMetrics>;
    /// Its own counters.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// A live query of its queryable state.
    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError>;
}

/// A [`OneInputOperator`] as [`TypedInputs`].
pub(crate) struct OneInput<In, Op>(Op, PhantomData<fn(In)>);

impl<In: Data, Out: Data, Op: OneInputOperator<In, Out>> TypedInputs<Out> for OneInput<In, Op> {
    const INPUTS: usize = 1;

    fn lifecycle(&mut self) -> &mut dyn Lifecycle {
        &mut self.0
    }

    #[inline]
    fn process(
        &mut self,
        _input: usize,
        batch: Batch,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let records = downcast_batch::<In>(batch)?;
        out.reserve(records.len());
        self.0.process_batch(records, out)
    }

    fn watermark(&mut self, watermark: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.process_watermark(watermark, out)
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.0.next_processing_time()
    }

    fn processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.on_processing_time(now, out)
    }

    fn end(&mut self, _input: usize, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.end_input(out)
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.0.state_metrics()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.0.counters()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.0.query_state(uid, name, query)
    }
}

/// Runs a typed operator with one or two inputs as a runtime
/// [`StreamOperator`]: type erasure (one downcast per batch), operator state,
/// output collection and every lifecycle hook, in one place.
pub(crate) struct OperatorAdapter<Out, I> {
    inputs: I,
    out: Collector<Out>,
    operator_state: OperatorStateStore,
    ended: usize,
}

impl<Out: Data, I: TypedInputs<Out>> StreamOperator for OperatorAdapter<Out, I> {
    fn initialize_state(
        &mut self,
        info: &OperatorInfo,
        restored: Option<OperatorSnapshot>,
    ) -> Result<(), UserError> {
        let op = self.inputs.lifecycle();
        initialize_with(&mut self.operator_state, info, restored, |ctx| {
            op.initialize_state(ctx)
        })
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        let op = self.inputs.lifecycle();
        snapshot_with(&mut self.operator_state, checkpoint_id, false, |ctx| {
            op.snapshot_state(ctx)
        })
    }

    fn snapshot_savepoint(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        let op = self.inputs.lifecycle();
        snapshot_with(&mut self.operator_state, checkpoint_id, true, |ctx| {
            op.snapshot_state(ctx)
        })
    }

    fn open(&mut self, info: &OperatorInfo) -> Result<(), UserError> {
        self.inputs
            .lifecycle()
            .open(&RuntimeContext::new(info.clone()))
    }

    #[inline]
    fn process_batch(
        &mut self,
        input: usize,
        batch: Batch,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        self.inputs.process(input, batch, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        self.inputs.watermark(watermark, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.inputs.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emitter) -> Result<(), UserError> {
        self.inputs.processing_time(now, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn query_state(
        &mut self,
        info: &OperatorInfo,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.inputs.query_state(&info.uid, name, query)
    }

    fn end_input(&mut self, input: usize, out: &mut dyn Emitter) -> Result<(), UserError> {
        self.inputs.end(input, &mut self.out)?;
        self.out.flush_into(out);
        self.ended += 1;
        if self.ended == I::INPUTS {
            self.inputs.lifecycle().finish()?;
        }
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.inputs
            .lifecycle()
            .notify_checkpoint_complete(checkpoint_id)
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.inputs
            .lifecycle()
            .notify_checkpoint_aborted(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.inputs.lifecycle().close()
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.inputs.state_metrics()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inputs.counters()
    }
}

/// Restores operator state and hands the rest of `restored` to `initialize`.
pub(crate) fn initialize_with(
    operator_state: &mut OperatorStateStore,
    info: &OperatorInfo,
    restored: Option<OperatorSnapshot>,
    initialize: impl FnOnce(&mut StateInitContext) -> Result<(), UserError>,
) -> Result<(), UserError> {
    let runtime = RuntimeContext::new(info.clone());
    let is_restored = restored.is_some();
    let snapshot = restored.unwrap_or_default();
    *operator_state = OperatorStateStore::from_snapshot(snapshot.lists, &snapshot.meta)
        .map_err(|e| format!("operator `{}`: {e}", info.uid))?;
    let mut ctx = StateInitContext {
        runtime: &runtime,
        restored: is_restored,
        operator_state,
        raw: snapshot.raw.as_deref(),
        keyed: is_restored.then_some(&snapshot.keyed),
        keyed_handles: &snapshot.keyed_handles,
        meta: is_restored.then_some(&snapshot.meta),
        broadcast: is_restored.then_some(&snapshot.broadcast),
    };
    initialize(&mut ctx)
}

/// Lets `snapshot` fill a snapshot context and returns the snapshot, its keyed
/// part still to be serialised (off the processing path).
pub(crate) fn snapshot_with(
    operator_state: &mut OperatorStateStore,
    checkpoint_id: u64,
    full: bool,
    snapshot: impl FnOnce(&mut StateSnapshotContext) -> Result<(), UserError>,
) -> Result<PendingSnapshot, UserError> {
    let mut ctx = StateSnapshotContext {
        checkpoint_id,
        operator_state,
        raw: None,
        keyed: None,
        full,
        broadcast: None,
        meta: std::collections::BTreeMap::new(),
    };
    snapshot(&mut ctx)?;
    let (raw, keyed, broadcast) = (ctx.raw, ctx.keyed, ctx.broadcast.unwrap_or_default());
    let mut meta = ctx.meta;
    meta.extend(operator_state.meta()?);
    let lists = operator_state.to_snapshot();
    Ok(PendingSnapshot::new(move || {
        let (keyed, keyed_handles, keyed_meta) = match keyed {
            Some(finish) => finish()?,
            None => Default::default(),
        };
        meta.extend(keyed_meta);
        Ok(OperatorSnapshot {
            keyed,
            keyed_handles,
            meta,
            lists,
            broadcast,
            raw,
        })
    }))
}

/// Wraps a typed operator with one or two inputs for the runtime.
pub(crate) fn typed_operator<Out: Data, I: TypedInputs<Out>>(inputs: I) -> Box<dyn StreamOperator> {
    Box::new(OperatorAdapter {
        inputs,
        out: Collector::new(),
        operator_state: OperatorStateStore::default(),
        ended: 0,
    })
}

/// Wraps a typed one-input operator for the runtime.
pub(crate) fn one_input_operator<In: Data, Out: Data, Op: OneInputOperator<In, Out>>(
    op: Op,
) -> Box<dyn StreamOperator> {
    typed_operator::<Out, _>(OneInput(op, PhantomData))
}

/// A factory that builds `make(prototype.clone())` for every subtask (no
/// `Sync` bound on user code).
pub(crate) fn cloning_factory<P: Clone + Send + 'static>(
    prototype: P,
    make: fn(P) -> Box<dyn StreamOperator>,
) -> OperatorFactory {
    let prototype = Arc::new(Mutex::new(prototype));
    Arc::new(move |_info: &OperatorInfo| {
        let op = prototype
            .lock()
            .map_err(|_| "operator prototype lock poisoned by an earlier panic")?
            .clone();
        Ok(make(op))
    })
}

/// A factory that clones `prototype` for every subtask.
pub(crate) fn one_input_factory<In: Data, Out: Data, Op: OneInputOperator<In, Out>>(
    prototype: Op,
) -> OperatorFactory {
    cloning_factory(prototype, one_input_operator::<In, Out, Op>)
}

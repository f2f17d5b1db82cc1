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
//! use weir::{Collector, OneInputOperator, StreamEnv, UserError};
//!
//! /// Emits each record twice.
//! #[derive(Clone)]
//! struct Twice;
//! impl OneInputOperator<u32, u32> for Twice {
//!     fn process_batch(&mut self, batch: Vec<u32>, out: &mut Collector<u32>) -> Result<(), UserError> {
//!         for x in batch {
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

use weir_actors::graph::OperatorFactory;
use weir_actors::{downcast_batch, Batch, Emitter, OperatorInfo, StreamOperator, UserError};

use crate::context::RuntimeContext;
use crate::data::Data;

/// Collects an operator's output records; they leave as one batch per call.
pub struct Collector<T> {
    records: Vec<T>,
}

impl<T> Collector<T> {
    pub(crate) fn new() -> Self {
        Collector {
            records: Vec::new(),
        }
    }

    /// Emits one record.
    #[inline]
    pub fn collect(&mut self, record: T) {
        self.records.push(record);
    }

    /// Emits every record of `records`.
    pub fn extend(&mut self, records: impl IntoIterator<Item = T>) {
        self.records.extend(records);
    }

    /// Emits a whole vector of records (moved, not copied, when nothing else was emitted).
    pub fn collect_vec(&mut self, mut records: Vec<T>) {
        if self.records.is_empty() {
            self.records = records;
        } else {
            self.records.append(&mut records);
        }
    }

    /// Number of records emitted since the last flush.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was emitted since the last flush.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub(crate) fn flush_into(&mut self, out: &mut dyn Emitter)
    where
        T: Clone + Send + 'static,
    {
        if !self.records.is_empty() {
            out.emit(Box::new(std::mem::take(&mut self.records)));
        }
    }
}

/// An operator with one input, driven batch by batch.
///
/// One instance runs per parallel subtask, cloned from the value given to
/// [`crate::DataStream::transform`] (and cloned afresh on every restart).
pub trait OneInputOperator<In, Out>: Clone + Send + 'static {
    /// Called once per instance before the first batch.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Processes a batch of input records.
    fn process_batch(&mut self, batch: Vec<In>, out: &mut Collector<Out>) -> Result<(), UserError>;
    /// The input has ended; emit whatever is still held back.
    fn end_input(&mut self, _out: &mut Collector<Out>) -> Result<(), UserError> {
        Ok(())
    }
    /// Called once after the last output.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

/// Runs a typed [`OneInputOperator`] as a runtime [`StreamOperator`].
struct OneInputAdapter<In, Out, Op> {
    op: Op,
    out: Collector<Out>,
    _types: PhantomData<fn(In) -> Out>,
}

impl<In: Data, Out: Data, Op: OneInputOperator<In, Out>> StreamOperator
    for OneInputAdapter<In, Out, Op>
{
    fn open(&mut self, info: &OperatorInfo) -> Result<(), UserError> {
        self.op.open(&RuntimeContext::new(info.clone()))
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: Batch,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        let records = downcast_batch::<In>(batch)?;
        self.op.process_batch(records, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn end_input(&mut self, _input: usize, out: &mut dyn Emitter) -> Result<(), UserError> {
        self.op.end_input(&mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.op.close()
    }
}

/// A factory that clones `prototype` for every subtask (no `Sync` bound on user code).
pub(crate) fn one_input_factory<In: Data, Out: Data, Op: OneInputOperator<In, Out>>(
    prototype: Op,
) -> OperatorFactory {
    let prototype = Arc::new(Mutex::new(prototype));
    Arc::new(move |_info: &OperatorInfo| {
        let op = prototype
            .lock()
            .map_err(|_| "operator prototype lock poisoned by an earlier panic")?
            .clone();
        Ok(Box::new(OneInputAdapter {
            op,
            out: Collector::new(),
            _types: PhantomData,
        }) as Box<dyn StreamOperator>)
    })
}

//! Side outputs: records an operator emits besides its main output, each kind
//! named by an [`OutputTag`] (as Flink's `OutputTag`).
//!
//! A function emits with `ctx.output(&tag, value)` (process, keyed process and
//! process-window functions) or [`Collector::output`](crate::Collector::output);
//! [`DataStream::side_output`](crate::DataStream::side_output) is the stream of
//! one tag's records. A side output nobody consumes is dropped, as in Flink.
//! Side records carry the timestamp of the record (or timer) being handled,
//! and watermarks reach side outputs as they reach the main output.
//!
//! ```
//! use weir::{Collector, Lifecycle, OutputTag, ProcessContext, ProcessFunction, StreamEnv, UserError};
//!
//! /// Even numbers go on, odd ones to the side.
//! #[derive(Clone)]
//! struct Split { odd: OutputTag<u32> }
//! impl Lifecycle for Split {}
//! impl ProcessFunction<u32, u32> for Split {
//!     fn process_element(&mut self, x: u32, ctx: &mut ProcessContext, out: &mut Collector<u32>) -> Result<(), UserError> {
//!         if x % 2 == 0 { out.collect(x) } else { ctx.output(&self.odd, x) }
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::with_parallelism(1);
//! let odd = OutputTag::<u32>::new("odd");
//! let even = env.from_collection(vec![1u32, 2, 3, 4]).process(Split { odd: odd.clone() });
//! let odds = even.side_output(&odd).collect();
//! let evens = even.collect();
//! env.execute_blocking("split").unwrap();
//! assert_eq!(evens.take(), vec![2, 4]);
//! assert_eq!(odds.take(), vec![1, 3]);
//! ```

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use weir_actors::{Batch, RecordBatch};

use crate::data::Data;

/// Names one side output of records of type `T`. Two tags are the same side
/// output when their ids are equal.
pub struct OutputTag<T> {
    id: Arc<str>,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        OutputTag {
            id: self.id.clone(),
            _records: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({}: {})", self.id, std::any::type_name::<T>())
    }
}

impl<T> OutputTag<T> {
    /// The tag named `id` (unique among the side outputs of one operator).
    pub fn new(id: impl Into<String>) -> Self {
        OutputTag {
            id: Arc::from(id.into()),
            _records: PhantomData,
        }
    }

    /// The tag's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn shared_id(&self) -> &Arc<str> {
        &self.id
    }
}

/// Side records collected since the last flush, per tag, in order.
#[derive(Default)]
pub struct SideOutputs {
    buffers: Vec<SideBuffer>,
}

struct SideBuffer {
    tag: Arc<str>,
    record_type: TypeId,
    records: Box<dyn PendingRecords>,
}

/// A typed batch being filled, seen without its type.
trait PendingRecords: Send {
    fn take(&mut self) -> Option<Batch>;
    fn as_any(&mut self) -> &mut dyn Any;
}

impl<T: Data> PendingRecords for RecordBatch<T> {
    fn take(&mut self) -> Option<Batch> {
        if self.is_empty() {
            return None;
        }
        Some(Box::new(std::mem::replace(
            self,
            RecordBatch::with_capacity(0),
        )))
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

impl SideOutputs {
    /// Adds `value` (with `timestamp`) to the side output `tag`.
    pub(crate) fn push<T: Data>(&mut self, tag: &OutputTag<T>, value: T, timestamp: Option<i64>) {
        let record_type = TypeId::of::<T>();
        let index = match self
            .buffers
            .iter()
            .position(|b| b.record_type == record_type && *b.tag == *tag.id)
        {
            Some(index) => index,
            None => {
                self.buffers.push(SideBuffer {
                    tag: tag.id.clone(),
                    record_type,
                    records: Box::new(RecordBatch::<T>::with_capacity(0)),
                });
                self.buffers.len() - 1
            }
        };
        if let Some(batch) = self.buffers[index]
            .records
            .as_any()
            .downcast_mut::<RecordBatch<T>>()
        {
            batch.push(value, timestamp);
        }
    }

    /// Takes every non-empty batch, with its tag.
    pub(crate) fn take_batches(&mut self) -> impl Iterator<Item = (Arc<str>, Batch)> + '_ {
        self.buffers
            .iter_mut()
            .filter_map(|b| b.records.take().map(|batch| (b.tag.clone(), batch)))
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }
}

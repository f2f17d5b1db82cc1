//! Sources: where records come from.
//!
//! A source implements [`Source`]: one instance per parallel subtask (cloned from
//! the value given to [`StreamEnv::add_source`](crate::StreamEnv::add_source)),
//! polled for a batch at a time until it says [`SourceStatus::Finished`]. The
//! subtask polls only when its outputs have credit, so a source never runs ahead
//! of a slow consumer.
//!
//! Built in: [`CollectionSource`] (`from_collection`), [`GeneratorSource`]
//! (`generate`, parallel) and [`TextFileSource`] (`read_text_file`), whose
//! lines [`ParseLines`] turns into records.

mod collection;
mod file;
mod generator;
#[cfg(feature = "nats")]
pub mod jetstream;
mod lines;

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

pub use collection::CollectionSource;
pub use file::TextFileSource;
pub use generator::GeneratorSource;
pub use lines::ParseLines;
use weir_actors::graph::SourceFactory;
use weir_actors::preflight::PreflightFn;
pub use weir_actors::preflight::{Hold, PreflightContext};
use weir_actors::snapshot::OperatorSnapshot;
pub use weir_actors::SourceStatus;
use weir_actors::{Emitter, OperatorInfo, PendingSnapshot, RecordBatch, SourceOperator, UserError};

use crate::context::RuntimeContext;
use crate::data::Data;
use crate::lifecycle::Lifecycle;
use crate::operator::{initialize_with, snapshot_with};
use crate::state::OperatorStateStore;

/// A producer of records.
///
/// ```
/// use weir::source::{Source, SourceStatus};
/// use weir::{Lifecycle, StreamEnv, UserError};
///
/// /// Counts down from `from` to 1 (not parallel).
/// #[derive(Clone)]
/// struct Countdown { from: u32 }
///
/// impl Lifecycle for Countdown {}
///
/// impl Source<u32> for Countdown {
///     fn parallelism(&self) -> Option<usize> { Some(1) }
///     fn poll_next(&mut self, out: &mut Vec<u32>, max: usize) -> Result<SourceStatus, UserError> {
///         while self.from > 0 && out.len() < max {
///             out.push(self.from);
///             self.from -= 1;
///         }
///         Ok(if self.from == 0 { SourceStatus::Finished } else { SourceStatus::More })
///     }
/// }
///
/// let env = StreamEnv::with_parallelism(1);
/// let out = env.add_source(Countdown { from: 3 }).collect();
/// env.execute_blocking("countdown").unwrap();
/// assert_eq!(out.take(), vec![3, 2, 1]);
/// ```
pub trait Source<T>: Lifecycle + Clone + Send + 'static {
    /// The only parallelism this source supports, if it is not parallel
    /// (`Some(1)` for a single reader); `None` lets the job choose.
    fn parallelism(&self) -> Option<usize> {
        None
    }

    /// Called once for the whole source before any subtask of the job starts
    /// (on the source as the program declared it): check that its input is
    /// there and readable, so that a missing file stops the job before it
    /// starts. The default checks nothing.
    fn preflight(&self, _ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        Ok(Vec::new())
    }

    /// Appends at most `max` records to `out`; says whether more will come.
    /// Returning no record with [`SourceStatus::More`] means "nothing right now":
    /// the source is polled again after a short pause.
    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus, UserError>;

    /// Appends at most `max` records to `out` with their event time, for a
    /// source whose input carries it (a message log's publish time): a
    /// [`WatermarkStrategy`](crate::time::WatermarkStrategy) without a
    /// timestamp assigner keeps these timestamps. The default calls
    /// [`Source::poll_next`] (records without timestamps).
    fn poll_next_timestamped(
        &mut self,
        out: &mut RecordBatch<T>,
        max: usize,
    ) -> Result<SourceStatus, UserError> {
        self.poll_next(&mut out.records, max)
    }
}

struct SourceAdapter<T, S> {
    source: S,
    operator_state: OperatorStateStore,
    _type: PhantomData<fn() -> T>,
}

impl<T: Data, S: Source<T>> SourceOperator for SourceAdapter<T, S> {
    fn initialize_state(
        &mut self,
        info: &OperatorInfo,
        restored: Option<OperatorSnapshot>,
    ) -> Result<(), UserError> {
        let source = &mut self.source;
        initialize_with(&mut self.operator_state, info, restored, |ctx| {
            source.initialize_state(ctx)
        })
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        let source = &mut self.source;
        snapshot_with(&mut self.operator_state, checkpoint_id, false, |ctx| {
            source.snapshot_state(ctx)
        })
    }

    fn open(&mut self, info: &OperatorInfo) -> Result<(), UserError> {
        self.source.open(&RuntimeContext::new(info.clone()))
    }

    fn poll_batch(
        &mut self,
        max_records: usize,
        out: &mut dyn Emitter,
    ) -> Result<SourceStatus, UserError> {
        let mut records = RecordBatch::with_capacity(max_records);
        let status = self
            .source
            .poll_next_timestamped(&mut records, max_records)?;
        if !records.is_empty() {
            out.emit(Box::new(records));
        }
        if status == SourceStatus::Finished {
            self.source.finish()?;
        }
        Ok(status)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.source.notify_checkpoint_complete(checkpoint_id)
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.source.notify_checkpoint_aborted(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.source.close()
    }
}

/// The pre-flight check of `source`, run by the runtime before the job starts.
pub(crate) fn source_preflight<T, S: Source<T>>(source: &S) -> PreflightFn {
    let prototype = Mutex::new(source.clone());
    Arc::new(move |ctx: &PreflightContext| {
        prototype
            .lock()
            .map_err(|_| "source prototype lock poisoned")?
            .preflight(ctx)
    })
}

pub(crate) fn source_factory<T: Data, S: Source<T>>(prototype: S) -> SourceFactory {
    let prototype = Arc::new(Mutex::new(prototype));
    Arc::new(move |_info: &OperatorInfo| {
        let source = prototype
            .lock()
            .map_err(|_| "source prototype lock poisoned")?
            .clone();
        Ok(Box::new(SourceAdapter {
            source,
            operator_state: OperatorStateStore::default(),
            _type: PhantomData,
        }) as Box<dyn SourceOperator>)
    })
}

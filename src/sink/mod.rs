//! Sinks: where records leave the job.
//!
//! A sink implements [`Sink`]: one instance per parallel subtask (cloned from the
//! value given to [`DataStream::add_sink`](crate::DataStream::add_sink)), fed
//! batch by batch, then finished when its input ends. A sink is an operator
//! like any other ([`SinkOperator`] is a [`OneInputOperator`] with no output), so
//! it chains, receives credits and fails the job the same way.
//!
//! Built in: [`CollectSink`] (`collect`, for tests), [`PrintSink`] (`print`),
//! [`TextFileSink`] (`write_text_lines`) and [`DiscardSink`] (`discard`).

mod collect;
mod discard;
mod file;
#[cfg(feature = "nats")]
pub mod jetstream;
mod ledger;
#[cfg(feature = "postgres")]
pub mod postgres;
mod print;
mod transactional_file;
mod two_phase;

pub use collect::{CollectHandle, CollectSink};
pub use discard::{DiscardCounter, DiscardSink};
pub use file::TextFileSink;
pub use ledger::{check_rewind, CommitLedger, FileLedger, LedgerEntry, RewindRefused};
pub use print::PrintSink;
pub use transactional_file::{FileTransaction, TransactionalFileSink};
pub use two_phase::{TwoPhaseCommit, TwoPhaseCommitSink};
use weir_actors::preflight::PreflightFn;
pub use weir_actors::preflight::{Hold, PreflightContext};
use weir_actors::{RecordBatch, UserError};

use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::{Collector, OneInputOperator};

/// A consumer of records.
///
/// ```
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use weir::{sink::Sink, Lifecycle, StreamEnv, UserError};
///
/// /// Adds up every record it sees, over all subtasks.
/// #[derive(Clone, Default)]
/// struct Total(Arc<AtomicU64>);
///
/// impl Lifecycle for Total {}
///
/// impl Sink<u64> for Total {
///     fn write(&mut self, record: u64) -> Result<(), UserError> {
///         self.0.fetch_add(record, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// let env = StreamEnv::with_parallelism(1);
/// let total = Total::default();
/// env.from_collection(vec![1u64, 2, 3]).add_sink(total.clone());
/// env.execute_blocking("total").unwrap();
/// assert_eq!(total.0.load(Ordering::Relaxed), 6);
/// ```
pub trait Sink<T>: Lifecycle + Clone + Send + 'static {
    /// Called once for the whole sink before any subtask of the job starts
    /// (on the sink as the program declared it): check that it can write
    /// (create its output, probe it), and return what it must hold while the
    /// job runs (a lock on its output). An error stops the job before it
    /// starts. See [`PreflightContext`].
    fn preflight(&self, _ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        Ok(Vec::new())
    }

    /// Consumes one record.
    fn write(&mut self, record: T) -> Result<(), UserError>;
    /// Consumes a batch; by default one [`Sink::write`] per record.
    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        batch.into_iter().try_for_each(|record| self.write(record))
    }
}

/// The pre-flight check of `sink`, run by the runtime before the job starts.
pub(crate) fn sink_preflight<T, S: Sink<T>>(sink: &S) -> PreflightFn {
    let prototype = std::sync::Mutex::new(sink.clone());
    std::sync::Arc::new(move |ctx: &PreflightContext| {
        prototype
            .lock()
            .map_err(|_| "sink prototype lock poisoned")?
            .preflight(ctx)
    })
}

/// Runs a [`Sink`] as a [`OneInputOperator`] that emits nothing.
#[derive(Clone)]
pub struct SinkOperator<S>(pub S);

impl<S: Lifecycle> Lifecycle for SinkOperator<S> {
    forward_lifecycle!(0: initialize_state, open, snapshot_state, notify_checkpoint_complete,
        notify_checkpoint_aborted, finish, close);
}

impl<T, S: Sink<T>> OneInputOperator<T, ()> for SinkOperator<S> {
    fn process_batch(
        &mut self,
        batch: RecordBatch<T>,
        _out: &mut Collector<()>,
    ) -> Result<(), UserError> {
        self.0.write_batch(batch.records)
    }

    fn process_watermark(
        &mut self,
        _watermark: i64,
        _out: &mut Collector<()>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

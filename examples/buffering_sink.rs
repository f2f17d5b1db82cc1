//! # A buffering sink whose buffer survives restarts
//!
//! A sink that collects records in a buffer and hands them on in groups of
//! `--threshold` (and the rest when its input ends), as Flink's `BufferingSink`
//! example does. Records that are buffered but not yet flushed would be lost on
//! a failure, so the sink keeps its buffer in *operator list state*:
//!
//! - [`Sink::snapshot_state`] copies the buffer into the list state
//!   `ctx.operator_state().list(&descriptor)` at every snapshot;
//! - [`Sink::initialize_state`] reads it back when the subtask starts from a
//!   snapshot (`ctx.is_restored()`).
//!
//! The list state is an even-split list: restored at another parallelism, the
//! buffered records of all old subtasks are dealt out evenly over the new ones,
//! none lost and none twice. `tests/examples_output.rs` takes snapshots of the
//! sink through the operator test harness and restores them, at the same and at
//! another parallelism.
//!
//! The demonstration job feeds `--count` generated events (`event-0`, ...) to the
//! sink at parallelism 2; each flush prints one line to stdout, naming the
//! subtask (1-based) and the records flushed.
//!
//! ```text
//! cargo run --example buffering_sink
//! cargo run --example buffering_sink -- --threshold 4 --count 30
//! ```
//!
//! Logs go to stderr (`RUST_LOG`, default `warn`); an error is printed as
//! `error: ...` and the exit code is 1.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir::sink::Sink;
use weir::state::{ListStateDescriptor, StateData, StateInitContext, StateSnapshotContext};
use weir::{Lifecycle, RuntimeContext, StreamEnv, UserError};

/// Buffers generated events in a sink and flushes them in groups.
#[derive(Parser)]
struct Args {
    /// Flush when the buffer holds this many records.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    threshold: u64,
    /// Number of events to generate.
    #[arg(long, value_name = "N", default_value_t = 95)]
    count: u64,
}

/// Where a flushed group of records goes: `(subtask index, records)`.
type FlushFn<T> = Arc<dyn Fn(usize, Vec<T>) -> Result<(), UserError> + Send + Sync>;

/// Buffers records and flushes them `threshold` at a time (and the rest at the
/// end of its input); the buffer is kept in operator list state.
pub struct BufferingSink<T> {
    threshold: usize,
    flush: FlushFn<T>,
    buffer: Vec<T>,
    state: ListStateDescriptor<T>,
    subtask: usize,
}

impl<T: Clone> Clone for BufferingSink<T> {
    fn clone(&self) -> Self {
        BufferingSink {
            threshold: self.threshold,
            flush: self.flush.clone(),
            buffer: self.buffer.clone(),
            state: self.state.clone(),
            subtask: self.subtask,
        }
    }
}

impl<T> BufferingSink<T> {
    /// A sink that calls `flush(subtask, records)` for every `threshold` records.
    pub fn new(
        threshold: usize,
        flush: impl Fn(usize, Vec<T>) -> Result<(), UserError> + Send + Sync + 'static,
    ) -> Self {
        BufferingSink {
            threshold: threshold.max(1),
            flush: Arc::new(flush),
            buffer: Vec::new(),
            state: ListStateDescriptor::new("buffered-elements"),
            subtask: 0,
        }
    }

    /// The records buffered and not yet flushed.
    pub fn buffered(&self) -> &[T] {
        &self.buffer
    }

    fn flush_buffer(&mut self) -> Result<(), UserError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.buffer);
        (self.flush)(self.subtask, records)
    }
}

impl<T: StateData> Lifecycle for BufferingSink<T> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.subtask = ctx.runtime().subtask_index();
        if ctx.is_restored() {
            self.buffer = ctx.operator_state().list(&self.state)?.get()?;
            tracing::info!(
                subtask = self.subtask,
                records = self.buffer.len(),
                "buffer restored"
            );
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&self.state)?
            .update(&self.buffer)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.flush_buffer()
    }
}

impl<T: StateData> Sink<T> for BufferingSink<T> {
    fn write(&mut self, record: T) -> Result<(), UserError> {
        self.buffer.push(record);
        if self.buffer.len() >= self.threshold {
            self.flush_buffer()?;
        }
        Ok(())
    }
}

/// Prints a flushed group as one line of stdout (quietly nothing once its
/// reader has gone away).
pub fn print_flush(subtask: usize, records: Vec<String>) -> Result<(), UserError> {
    let line = format!(
        "subtask {} flushed {}: {}",
        subtask + 1,
        records.len(),
        records.join(" ")
    );
    Ok(weir::cli::write_lines([line])?)
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

fn run(args: Args) -> Result<(), String> {
    let threshold = usize::try_from(args.threshold)
        .map_err(|_| format!("--threshold {} is too large", args.threshold))?;
    let env = StreamEnv::with_parallelism(2);
    env.generate(args.count, |i| format!("event-{i}"))
        .add_sink(BufferingSink::new(threshold, print_flush))
        .name("Buffering sink");
    let result = env
        .execute_blocking("buffering-sink")
        .map_err(|e| e.to_string())?;
    tracing::info!(duration = ?result.duration, "job finished");
    Ok(())
}

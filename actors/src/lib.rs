//! # weir-actors: the runtime of weir
//!
//! Runs a job as a topology of actix actors and knows nothing about keys, state
//! types or windows: it moves batches between subtasks under credit-based flow
//! control, and supervises.
//!
//! The map of the crate:
//! - [`graph`]: the [`JobGraph`] the API layer builds: vertices, edges, factories.
//! - [`plan`]: chaining and channel numbering, pure functions of the graph.
//! - [`batch`]: the type-erased [`Batch`] in which records travel.
//! - [`operator`]: the erased operator and source traits the runtime drives.
//! - [`partition`]: forward, rebalance, shuffle, broadcast and keyed routing into
//!   per-channel buffers.
//! - [`channel`]: what travels between subtasks, and the input gate.
//! - [`watermark`]: the [`WatermarkValve`](watermark::WatermarkValve) that combines
//!   the event time of a subtask's input channels.
//! - `output` and `chain` (internal): credit-counted output channels, and the
//!   operators of a chain run in order under `catch_unwind`.
//! - [`subtask`]: the [`Subtask`] actor, one per parallel instance of a chain.
//! - [`supervisor`]: the [`Supervisor`] actor that deploys, watches and ends a job.
//! - [`client`]: [`launch`] and the [`JobClient`] of a running job.
//! - [`checkpoint`]: checkpoints: configuration, the coordinator actor and its
//!   bookkeeping, storage (memory and files), file format and statistics.
//! - [`key_groups`]: [`KeyGroupRange`](key_groups::KeyGroupRange), the one home
//!   of the key-group range formula.
//! - [`snapshot`]: operator snapshots (opaque bytes) and their redistribution
//!   on a change of parallelism.
//! - [`lineage`]: which snapshots make up a job's history, and which one
//!   `latest` means; [`lock`]: the locks a running job holds on what it writes;
//!   [`preflight`]: what operators check and take before a job starts
//!   (`startup`, internal, settles all of it).
//! - [`config`], [`metrics`], [`error`]: settings, counters and errors.
//!
//! Most users never touch this crate directly: the `weir` crate builds the
//! graph from a typed DataStream API.

pub mod batch;
mod chain;
pub mod channel;
pub mod channel_buffers;
pub mod checkpoint;
pub mod client;
pub mod clock;
pub mod codec;
pub mod config;
pub mod error;
pub mod faults;
pub mod graph;
#[cfg(feature = "io")]
pub mod io_runtime;
pub mod job;
pub mod key_groups;
pub mod lineage;
pub mod live;
mod liveness;
pub mod location;
pub mod lock;
pub mod metrics;
pub mod operator;
mod output;
pub mod partition;
pub mod plan;
pub mod preflight;
pub mod query;
pub mod restart;
pub mod restore;
pub mod snapshot;
mod startup;
pub mod subtask;
pub mod supervisor;
pub mod watermark;

pub use batch::{downcast_batch, Batch, BatchData, RecordBatch};
pub use client::{launch, JobClient, JobControl, JobStatus};
pub use config::RuntimeConfig;
pub use error::{JobError, Permanent, RestoreError};
pub use graph::{Edge, JobGraph, Partitioning, Vertex, VertexKind};
pub use metrics::{JobResult, OperatorCounter, StateMetrics, SubtaskMetrics};
pub use operator::{
    processing_time_now, Emitter, OperatorInfo, PendingSnapshot, SourceOperator, SourceStatus,
    StreamOperator, UserError,
};
pub use query::QueryError;
pub use subtask::Subtask;
pub use supervisor::Supervisor;

/// The largest max parallelism a job may use (as in Flink: 2^15).
pub const MAX_MAX_PARALLELISM: usize = 32_768;

//! # weir: an actor-based stream engine
//!
//! A weir job is a topology of actix actors: every parallel instance of an
//! operator (chain) is an actor, records travel between them in batches under
//! credit-based flow control, and a supervisor actor owns the job.
//!
//! ```
//! use weir::StreamEnv;
//!
//! let env = StreamEnv::with_parallelism(2);
//! let words = env
//!     .from_collection(vec!["to be".to_string(), "or not to be".to_string()])
//!     .flat_map(|line: String| line.split(' ').map(str::to_string).collect::<Vec<_>>())
//!     .filter(|word| word.len() > 2)
//!     .collect();
//! env.execute_blocking("words").unwrap();
//! assert_eq!(words.take(), vec!["not".to_string()]);
//! ```
//!
//! The map of the crate:
//! - [`env`](mod@env): [`StreamEnv`], job-wide defaults, sources and execution.
//! - [`config`]: `weir.toml` configuration files (the `[checkpoint]` section).
//! - [`stream`]: [`DataStream`] and [`KeyedStream`], the transformations.
//! - [`lifecycle`]: the [`Lifecycle`] hooks every operator and function shares.
//! - [`operator`]: the generic [`OneInputOperator`] every transformation is built on.
//! - [`ops`]: map, filter, flat_map, process and keyed process as thin operators.
//! - [`state`]: keyed state (value, list, map, reducing, aggregating), timers, the heap backend.
//! - [`source`] and [`sink`]: the [`Source`](source::Source) and [`Sink`](sink::Sink)
//!   traits and the built-in connectors.
//! - [`time`]: event time: timestamps, watermark strategies, the watermark operator.
//! - [`keys`]: stable key hashing and key groups.
//! - [`data`]: the [`Data`] bound on records.
//! - [`testing`]: the operator test harness.
//! - [`inspect`]: reading retained checkpoints and savepoints (the `weir` command).
//!
//! - [`prelude`]: `use weir::prelude::*;` for what a job usually needs.
//!
//! The runtime (actors, channels, supervision) is the `weir-actors` crate,
//! re-exported as [`runtime`].

pub mod cli;
pub mod config;
pub mod context;
pub mod data;
pub mod env;
pub mod inspect;
#[cfg(any(feature = "postgres", feature = "nats"))]
pub(crate) use weir_actors::io_runtime;
pub mod keys;
/// Where checkpoint files live: local paths or object store URLs
/// (`s3://bucket/prefix`, feature `s3`), and how a bucket is reached.
pub use weir_actors::location;
pub mod lifecycle;
#[cfg(feature = "nats")]
pub(crate) mod nats;
pub mod operator;
pub mod ops;
pub mod plan;
pub mod prelude;
pub mod progress;
pub mod query;
pub mod side_output;
pub mod sink;
pub mod source;
pub mod state;
pub mod stream;
pub mod testing;
pub mod time;
pub mod web;
pub mod window;

pub use context::RuntimeContext;
pub use data::Data;
pub use env::StreamEnv;
pub use lifecycle::Lifecycle;
pub use operator::{Collector, OneInputOperator};
pub use ops::broadcast_process::{
    BroadcastContext, BroadcastProcessFunction, KeyedBroadcastContext,
    KeyedBroadcastProcessFunction, ReadOnlyBroadcastContext,
};
pub use ops::keyed_process::{KeyedContext, KeyedProcessFunction};
pub use ops::process::{ProcessContext, ProcessFunction};
pub use ops::two_input::TwoInputOperator;
pub use side_output::OutputTag;
pub use stream::{
    BroadcastConnectedStream, BroadcastStream, DataStream, DataStreamSink,
    KeyedBroadcastConnectedStream, KeyedStream,
};
pub use weir_actors as runtime;
pub use weir_actors::checkpoint::{
    CheckpointConfig, CheckpointFailure, CheckpointMode, CheckpointStats, ExternalizedRetention,
    StorageSpec,
};
pub use weir_actors::restart::RestartStrategy;
pub use weir_actors::restore::{JobPlan, RestoreCheck, Verdict};
pub use weir_actors::{
    JobClient, JobControl, JobError, JobResult, JobStatus, Permanent, RecordBatch, RestoreError,
    RuntimeConfig, StateMetrics, SubtaskMetrics, UserError,
};

//! What a job usually needs, in one line: `use weir::prelude::*;`.
//!
//! ```
//! use weir::prelude::*;
//!
//! let env = StreamEnv::with_parallelism(1);
//! let out = env.from_collection(vec![1u32, 2, 3]).map(|x: u32| x + 1).collect();
//! env.execute_blocking("prelude").unwrap();
//! assert_eq!(out.take(), vec![2, 3, 4]);
//! ```

pub use crate::context::RuntimeContext;
pub use crate::lifecycle::Lifecycle;
pub use crate::operator::{Collector, OneInputOperator};
pub use crate::ops::broadcast_process::{
    BroadcastContext, BroadcastProcessFunction, KeyedBroadcastContext,
    KeyedBroadcastProcessFunction, ReadOnlyBroadcastContext,
};
pub use crate::ops::keyed_process::{KeyedContext, KeyedProcessFunction};
pub use crate::ops::process::{ProcessContext, ProcessFunction};
pub use crate::ops::two_input::TwoInputOperator;
pub use crate::query::{Consistency, QueryableState};
pub use crate::sink::Sink;
pub use crate::source::{Source, SourceStatus};
pub use crate::state::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateInitContext, StateSnapshotContext, ValueStateDescriptor,
    ValueStateWithDefault,
};
pub use crate::stream::{DataStream, KeyedStream};
pub use crate::time::WatermarkStrategy;
pub use crate::{
    CheckpointConfig, JobClient, JobError, JobResult, RecordBatch, RestartStrategy, StreamEnv,
    UserError,
};

//! How to build one subtask: everything but its peers' addresses.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;

use crate::batch::BatchDecoder;
use crate::checkpoint::protocol::CheckpointReport;
use crate::checkpoint::tracker::TaskId;
use crate::checkpoint::CheckpointStorage;
use crate::config::RuntimeConfig;
use crate::graph::{OperatorFactory, PartitionerContext, PartitionerFactory, SourceFactory};
use crate::operator::OperatorInfo;
use crate::restore::RestoredSubtask;

/// How to build one subtask: everything but its peers' addresses.
#[derive(Clone)]
pub struct SubtaskSpec {
    /// Index of the chain in the execution plan.
    pub chain: usize,
    /// The chain's display name.
    pub task: String,
    /// The job's name (for logs).
    pub job: String,
    /// This subtask's index.
    pub index: usize,
    /// The chain's parallelism.
    pub parallelism: usize,
    /// The source at the head of the chain, if it is a source chain.
    pub source: Option<(OperatorInfo, SourceFactory)>,
    /// The operators of the chain, head first (after the source, if any).
    pub operators: Vec<(OperatorInfo, OperatorFactory)>,
    /// Logical input of each input channel, in gate order.
    pub input_channels: Vec<usize>,
    /// Per output edge: the partitioner factory, its context, and the side
    /// output it carries (`None`: the main output).
    pub outputs: Vec<(
        PartitionerFactory,
        PartitionerContext,
        Option<std::sync::Arc<str>>,
    )>,
    /// Batching and flow-control settings.
    pub config: RuntimeConfig,
    /// How this subtask takes part in checkpoints, if the job has them.
    pub checkpointing: Option<SubtaskCheckpointing>,
    /// Which deployment of the job this is (0, then +1 per restart).
    pub attempt: u32,
    /// The state to start from (after a restart or from a savepoint).
    pub restored: Option<RestoredSubtask>,
    /// Per input channel, how its in-flight records are decoded.
    pub input_decoders: Vec<BatchDecoder>,
    /// Per output edge, how its in-flight records are decoded.
    pub output_decoders: Vec<BatchDecoder>,
    /// Where it publishes its live metrics.
    pub gauges: Arc<crate::live::SubtaskGauges>,
}

/// A subtask's part in checkpointing.
#[derive(Clone)]
pub struct SubtaskCheckpointing {
    /// Where acknowledgements go.
    pub coordinator: Recipient<CheckpointReport>,
    /// Where state is written.
    pub storage: Arc<dyn CheckpointStorage>,
    /// This subtask's id (chain, index).
    pub task: TaskId,
    /// The name its state file gets.
    pub state_name: String,
    /// An aligned checkpoint whose alignment takes longer becomes unaligned.
    pub aligned_timeout: Option<Duration>,
}

//! The job graph: what the API layer hands the runtime to run.
//!
//! A [`JobGraph`] is a list of [`Vertex`]es (sources and operators, each with its
//! parallelism and a factory that builds one instance per subtask) and the
//! [`Edge`]s between them (how records are partitioned). It is plain data;
//! [`crate::plan`] decides chaining and channel wiring from it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use crate::error::JobError;
use crate::operator::{OperatorInfo, SourceOperator, StreamOperator, UserError};
use crate::partition::OutputPartitioner;

/// Index of a vertex in [`JobGraph::vertices`].
pub type VertexId = usize;

/// Builds one source instance per subtask (and again on every restart).
pub type SourceFactory =
    Arc<dyn Fn(&OperatorInfo) -> Result<Box<dyn SourceOperator>, UserError> + Send + Sync>;

/// Builds one operator instance per subtask (and again on every restart).
pub type OperatorFactory =
    Arc<dyn Fn(&OperatorInfo) -> Result<Box<dyn StreamOperator>, UserError> + Send + Sync>;

/// What a partitioner factory knows about the edge it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionerContext {
    /// Subtask index of the sender.
    pub sender_subtask: usize,
    /// Number of channels of this sender on this edge.
    pub channels: usize,
    /// The receiving vertex's max parallelism (the number of key groups).
    pub receiver_max_parallelism: usize,
    /// Target batch size, a capacity hint for the channel buffers.
    pub batch_size: usize,
}

/// Builds the typed partitioner of one sender on one edge.
pub type PartitionerFactory =
    Arc<dyn Fn(&PartitionerContext) -> Box<dyn OutputPartitioner> + Send + Sync>;

/// What a vertex does.
#[derive(Clone)]
pub enum VertexKind {
    /// Produces records; has no input.
    Source(SourceFactory),
    /// Consumes `inputs` logical inputs (1 or 2) and may produce records.
    Operator {
        /// Number of logical inputs.
        inputs: usize,
        /// Builds the operator instances.
        factory: OperatorFactory,
    },
}

/// Whether a vertex may share a subtask actor with its neighbours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChainingStrategy {
    /// Chain with the predecessor and successor where the edge allows it.
    #[default]
    Always,
    /// Start a new chain here; successors may still chain onto this vertex.
    Head,
    /// Never chain with anything.
    Never,
}

/// One logical operator of the job.
#[derive(Clone)]
pub struct Vertex {
    /// Display name.
    pub name: String,
    /// Stable id, unique in the job.
    pub uid: String,
    /// Number of parallel subtasks.
    pub parallelism: usize,
    /// Upper bound of the parallelism (number of key groups).
    pub max_parallelism: usize,
    /// Chaining preference.
    pub chaining: ChainingStrategy,
    /// Source or operator, with its factory.
    pub kind: VertexKind,
    /// The key type of a keyed operator (`std::any::type_name`), so that a
    /// restore can tell keyed state written under another key type.
    pub key_type: Option<String>,
    /// What to check (and hold) before the job starts; see [`crate::preflight`].
    pub preflight: Option<crate::preflight::PreflightFn>,
    /// The key type (`std::any::type_name`) of keyed state this operator
    /// restores by migrating its keys to its own key type: a restore under
    /// that key type gives every subtask all the keyed state, and the
    /// operator keeps the keys that are its own once migrated.
    pub migrates_keys_from: Option<String>,
    /// What to check of the state a restore gives the operator (its
    /// snapshots, one per subtask of the snapshot that held state for its
    /// uid) before the job starts: an error stops the start.
    pub restore_check: Option<RestoreCheckFn>,
}

/// A check of the state a restore gives an operator (see
/// [`Vertex::restore_check`]).
pub type RestoreCheckFn = std::sync::Arc<
    dyn Fn(&[&crate::snapshot::OperatorSnapshot]) -> Result<(), String> + Send + Sync,
>;

impl Vertex {
    /// Number of logical inputs (0 for a source).
    pub fn inputs(&self) -> usize {
        match self.kind {
            VertexKind::Source(_) => 0,
            VertexKind::Operator { inputs, .. } => inputs,
        }
    }
}

impl fmt::Debug for Vertex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vertex")
            .field("name", &self.name)
            .field("uid", &self.uid)
            .field("parallelism", &self.parallelism)
            .field("max_parallelism", &self.max_parallelism)
            .field("inputs", &self.inputs())
            .finish()
    }
}

/// How records are spread from the subtasks of one vertex to those of the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partitioning {
    /// Subtask `i` to subtask `i`; needs equal parallelism. Allows chaining.
    Forward,
    /// Round-robin over all receivers.
    Rebalance,
    /// Uniformly random receivers.
    Shuffle,
    /// Every record to every receiver.
    Broadcast,
    /// By key group of the record's key.
    Hash,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Partitioning::Forward => "FORWARD",
            Partitioning::Rebalance => "REBALANCE",
            Partitioning::Shuffle => "SHUFFLE",
            Partitioning::Broadcast => "BROADCAST",
            Partitioning::Hash => "HASH",
        };
        f.write_str(name)
    }
}

/// A connection from one vertex's output to one input of another.
#[derive(Clone)]
pub struct Edge {
    /// The producing vertex.
    pub source: VertexId,
    /// The consuming vertex.
    pub target: VertexId,
    /// Which logical input of `target` (0 or 1).
    pub target_input: usize,
    /// The partitioning scheme, for planning and display.
    pub partitioning: Partitioning,
    /// Builds the typed partitioner that implements `partitioning`.
    pub partitioner: PartitionerFactory,
    /// Decodes this edge's in-flight records (unaligned checkpoints).
    pub decoder: crate::batch::BatchDecoder,
    /// The side output this edge carries (its tag), or `None`: the main output.
    pub side_output: Option<std::sync::Arc<str>>,
}

impl fmt::Debug for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Edge({} -{}-> {}:{})",
            self.source, self.partitioning, self.target, self.target_input
        )
    }
}

/// The whole job as data.
#[derive(Clone, Debug, Default)]
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// Vertices in topological order (an edge always points to a later vertex).
    pub vertices: Vec<Vertex>,
    /// Edges in creation order.
    pub edges: Vec<Edge>,
}

impl JobGraph {
    /// Checks what the runtime relies on, with errors that name the vertex.
    pub fn validate(&self) -> Result<(), JobError> {
        let invalid = |msg: String| Err(JobError::InvalidJob(msg));
        if self.vertices.is_empty() {
            return invalid("the job has no operators".into());
        }
        let mut uids = HashSet::new();
        for v in &self.vertices {
            if v.parallelism == 0 {
                return invalid(format!(
                    "operator `{}`: parallelism must be at least 1",
                    v.name
                ));
            }
            if v.max_parallelism == 0 || v.max_parallelism > crate::MAX_MAX_PARALLELISM {
                return invalid(format!(
                    "operator `{}`: max parallelism {} is outside 1..={}",
                    v.name,
                    v.max_parallelism,
                    crate::MAX_MAX_PARALLELISM
                ));
            }
            if v.parallelism > v.max_parallelism {
                return invalid(format!(
                    "operator `{}`: parallelism {} is greater than its max parallelism {}",
                    v.name, v.parallelism, v.max_parallelism
                ));
            }
            if !uids.insert(v.uid.as_str()) {
                return invalid(format!(
                    "operator `{}`: uid `{}` is used by another operator; uids must be unique",
                    v.name, v.uid
                ));
            }
        }
        for e in &self.edges {
            let (Some(from), Some(to)) = (self.vertices.get(e.source), self.vertices.get(e.target))
            else {
                return invalid(format!("{e:?} names a vertex that does not exist"));
            };
            if e.source >= e.target {
                return invalid(format!("{e:?} is not in topological order"));
            }
            if e.target_input >= to.inputs() {
                return invalid(format!(
                    "operator `{}` has {} input(s) but an edge feeds input {}",
                    to.name,
                    to.inputs(),
                    e.target_input
                ));
            }
            if e.partitioning == Partitioning::Forward && from.parallelism != to.parallelism {
                return invalid(format!(
                    "forward edge from `{}` (parallelism {}) to `{}` (parallelism {}): forward \
                     needs equal parallelism; use rebalance() or set equal parallelism",
                    from.name, from.parallelism, to.name, to.parallelism
                ));
            }
        }
        for (id, v) in self.vertices.iter().enumerate() {
            for input in 0..v.inputs() {
                if !self
                    .edges
                    .iter()
                    .any(|e| e.target == id && e.target_input == input)
                {
                    return invalid(format!(
                        "operator `{}`: input {input} is not connected",
                        v.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Edges leaving `vertex`.
    pub fn out_edges(&self, vertex: VertexId) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.source == vertex)
    }

    /// Edges entering `vertex`.
    pub fn in_edges(&self, vertex: VertexId) -> impl Iterator<Item = (usize, &Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.target == vertex)
    }
}

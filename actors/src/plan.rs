//! The execution plan: which vertices share a subtask actor (chaining) and how
//! the channels between subtask actors are numbered.
//!
//! Pure functions of the [`JobGraph`]: the supervisor deploys exactly what the
//! plan says, and the plan is unit-tested without starting an actor.
//!
//! A forward edge between two vertices of equal parallelism, where the producer
//! has no other consumer and the consumer no other input, is *chained*: both run
//! in one actor and batches pass by a function call. Every other edge is a
//! *network edge*: each sender subtask has one channel per receiver subtask it
//! reaches (one for forward, all of them otherwise), each with its own credits.

use crate::graph::{ChainingStrategy, JobGraph, Partitioning, VertexId, VertexKind};

/// A sequence of chained vertices that run together in one subtask actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Vertices from head to tail.
    pub vertices: Vec<VertexId>,
    /// Parallelism shared by every vertex of the chain.
    pub parallelism: usize,
    /// Display name: the vertex names joined by ` -> `.
    pub name: String,
    /// Network edges entering the head, in graph order (indices into `JobGraph::edges`).
    pub in_edges: Vec<usize>,
    /// Network edges leaving the tail, in graph order.
    pub out_edges: Vec<usize>,
}

/// Chains and their network edges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    /// Chains in topological order of their heads.
    pub chains: Vec<Chain>,
    /// For each vertex, the index of its chain.
    pub chain_of: Vec<usize>,
}

/// One input channel of a receiving subtask: who sends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputChannelSpec {
    /// The network edge (index into `JobGraph::edges`).
    pub edge: usize,
    /// The logical input of the receiving chain's head.
    pub input: usize,
    /// The sending subtask's index.
    pub sender: usize,
    /// The channel index among the sender's channels on this edge.
    pub sender_channel: usize,
}

fn chainable(graph: &JobGraph, edge: usize, enabled: bool) -> bool {
    let e = &graph.edges[edge];
    let (from, to) = (&graph.vertices[e.source], &graph.vertices[e.target]);
    enabled
        && e.partitioning == Partitioning::Forward
        && e.side_output.is_none()
        && from.parallelism == to.parallelism
        && from.chaining != ChainingStrategy::Never
        && to.chaining == ChainingStrategy::Always
        && matches!(to.kind, VertexKind::Operator { inputs: 1, .. })
        && graph.out_edges(e.source).count() == 1
        && graph.in_edges(e.target).count() == 1
}

/// Groups the vertices of a (validated) graph into chains.
pub fn plan(graph: &JobGraph, chaining: bool) -> ExecutionPlan {
    let n = graph.vertices.len();
    let mut chained_next: Vec<Option<VertexId>> = vec![None; n];
    let mut has_chained_prev = vec![false; n];
    for (i, e) in graph.edges.iter().enumerate() {
        if chainable(graph, i, chaining) {
            chained_next[e.source] = Some(e.target);
            has_chained_prev[e.target] = true;
        }
    }
    let mut chains = Vec::new();
    let mut chain_of = vec![usize::MAX; n];
    for head in (0..n).filter(|&v| !has_chained_prev[v]) {
        let mut vertices = vec![head];
        while let Some(next) = chained_next[*vertices.last().unwrap_or(&head)] {
            vertices.push(next);
        }
        for &v in &vertices {
            chain_of[v] = chains.len();
        }
        let tail = *vertices.last().unwrap_or(&head);
        let name = vertices
            .iter()
            .map(|&v| graph.vertices[v].name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        chains.push(Chain {
            parallelism: graph.vertices[head].parallelism,
            in_edges: graph.in_edges(head).map(|(i, _)| i).collect(),
            out_edges: graph.out_edges(tail).map(|(i, _)| i).collect(),
            name,
            vertices,
        });
    }
    ExecutionPlan { chains, chain_of }
}

/// The receivers of sender subtask `sender` on network edge `edge`, in channel order.
pub fn output_channels(graph: &JobGraph, edge: usize, sender: usize) -> Vec<usize> {
    let e = &graph.edges[edge];
    match e.partitioning {
        Partitioning::Forward => vec![sender],
        _ => (0..graph.vertices[e.target].parallelism).collect(),
    }
}

/// The input channels of receiver subtask `receiver` of `chain`, in gate order.
pub fn input_channels(graph: &JobGraph, chain: &Chain, receiver: usize) -> Vec<InputChannelSpec> {
    let mut channels = Vec::new();
    for &edge in &chain.in_edges {
        let e = &graph.edges[edge];
        match e.partitioning {
            Partitioning::Forward => channels.push(InputChannelSpec {
                edge,
                input: e.target_input,
                sender: receiver,
                sender_channel: 0,
            }),
            _ => {
                for sender in 0..graph.vertices[e.source].parallelism {
                    channels.push(InputChannelSpec {
                        edge,
                        input: e.target_input,
                        sender,
                        sender_channel: receiver,
                    });
                }
            }
        }
    }
    channels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::graph::{Edge, Vertex};
    use crate::operator::{Emitter, SourceOperator, SourceStatus, StreamOperator, UserError};
    use crate::partition::{Forward, TypedPartitioner};
    use std::sync::Arc;

    struct Nothing;
    impl SourceOperator for Nothing {
        fn poll_batch(&mut self, _: usize, _: &mut dyn Emitter) -> Result<SourceStatus, UserError> {
            Ok(SourceStatus::Finished)
        }
    }
    impl StreamOperator for Nothing {
        fn process_batch(
            &mut self,
            _: usize,
            _: Batch,
            _: &mut dyn Emitter,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }

    fn vertex(name: &str, parallelism: usize, inputs: usize) -> Vertex {
        let kind = if inputs == 0 {
            VertexKind::Source(Arc::new(|_| {
                Ok(Box::new(Nothing) as Box<dyn SourceOperator>)
            }))
        } else {
            VertexKind::Operator {
                inputs,
                factory: Arc::new(|_| Ok(Box::new(Nothing) as Box<dyn StreamOperator>)),
            }
        };
        Vertex {
            name: name.into(),
            uid: name.into(),
            parallelism,
            max_parallelism: 128,
            chaining: ChainingStrategy::Always,
            kind,
            key_type: None,
            preflight: None,
            restore_check: None,
            migrates_keys_from: None,
        }
    }

    fn edge(source: usize, target: usize, partitioning: Partitioning) -> Edge {
        Edge {
            source,
            target,
            target_input: 0,
            partitioning,
            partitioner: Arc::new(|ctx| {
                Box::new(TypedPartitioner::<u8, _>::new(Forward, ctx.channels, 1))
            }),
            decoder: crate::batch::decode_batch::<u8>,
            side_output: None,
        }
    }

    fn names(plan: &ExecutionPlan) -> Vec<&str> {
        plan.chains.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn forward_edges_of_equal_parallelism_chain() {
        let graph = JobGraph {
            name: "j".into(),
            vertices: vec![
                vertex("src", 2, 0),
                vertex("map", 2, 1),
                vertex("sink", 3, 1),
            ],
            edges: vec![
                edge(0, 1, Partitioning::Forward),
                edge(1, 2, Partitioning::Rebalance),
            ],
        };
        graph.validate().unwrap();
        let plan = plan(&graph, true);
        assert_eq!(names(&plan), vec!["src -> map", "sink"]);
        assert_eq!(plan.chains[0].out_edges, vec![1]);
        assert_eq!(plan.chains[1].in_edges, vec![1]);
        assert_eq!(plan.chain_of, vec![0, 0, 1]);
    }

    #[test]
    fn disabling_chaining_gives_one_chain_per_vertex() {
        let graph = JobGraph {
            name: "j".into(),
            vertices: vec![
                vertex("src", 1, 0),
                vertex("map", 1, 1),
                vertex("sink", 1, 1),
            ],
            edges: vec![
                edge(0, 1, Partitioning::Forward),
                edge(1, 2, Partitioning::Forward),
            ],
        };
        assert_eq!(names(&plan(&graph, false)), vec!["src", "map", "sink"]);
        assert_eq!(names(&plan(&graph, true)), vec!["src -> map -> sink"]);
    }

    #[test]
    fn fan_out_and_union_break_chains() {
        // src feeds a and b (fan-out); a and b both feed u (union).
        let graph = JobGraph {
            name: "j".into(),
            vertices: vec![
                vertex("src", 1, 0),
                vertex("a", 1, 1),
                vertex("b", 1, 1),
                vertex("u", 1, 1),
            ],
            edges: vec![
                edge(0, 1, Partitioning::Forward),
                edge(0, 2, Partitioning::Forward),
                edge(1, 3, Partitioning::Forward),
                edge(2, 3, Partitioning::Forward),
            ],
        };
        let plan = plan(&graph, true);
        assert_eq!(names(&plan), vec!["src", "a", "b", "u"]);
        assert_eq!(plan.chains[0].out_edges, vec![0, 1]);
        assert_eq!(plan.chains[3].in_edges, vec![2, 3]);
    }

    #[test]
    fn channels_match_between_senders_and_receivers() {
        let graph = JobGraph {
            name: "j".into(),
            vertices: vec![vertex("src", 2, 0), vertex("sink", 3, 1)],
            edges: vec![edge(0, 1, Partitioning::Hash)],
        };
        let plan = plan(&graph, true);
        assert_eq!(output_channels(&graph, 0, 1), vec![0, 1, 2]);
        let inputs = input_channels(&graph, &plan.chains[1], 2);
        assert_eq!(inputs.len(), 2);
        for spec in inputs {
            // Sender `spec.sender`'s channel `spec.sender_channel` must point back at receiver 2.
            assert_eq!(
                output_channels(&graph, spec.edge, spec.sender)[spec.sender_channel],
                2
            );
        }
    }

    #[test]
    fn validation_names_the_operator() {
        let mut graph = JobGraph {
            name: "j".into(),
            vertices: vec![vertex("src", 2, 0), vertex("sink", 3, 1)],
            edges: vec![edge(0, 1, Partitioning::Forward)],
        };
        let err = graph.validate().unwrap_err().to_string();
        assert!(err.contains("forward edge from `src`"), "{err}");
        graph.edges[0].partitioning = Partitioning::Rebalance;
        graph.vertices[1].max_parallelism = 2;
        let err = graph.validate().unwrap_err().to_string();
        assert!(
            err.contains("`sink`: parallelism 3 is greater than its max parallelism 2"),
            "{err}"
        );
    }
}

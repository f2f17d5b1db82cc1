//! What each subtask of a (re)deployed job starts from: the snapshots of a
//! completed checkpoint, matched to operators by uid and redistributed to the
//! new parallelism. A pure function of the job graph, its plan and what the
//! checkpoint holds; reading the checkpoint is the caller's business.

use std::collections::{BTreeMap, HashMap};

use crate::checkpoint::metadata::{CheckpointMetadata, SubtaskState};
use crate::graph::JobGraph;
use crate::plan::ExecutionPlan;
use crate::snapshot::{redistribute, OperatorSnapshot};
use crate::subtask::RestoredSubtask;

/// Assigns the state of checkpoint `metadata` (with the decoded state of each
/// of its subtasks, in the metadata's order) to the subtasks of `plan`.
pub fn assign(
    graph: &JobGraph,
    plan: &ExecutionPlan,
    metadata: &CheckpointMetadata,
    states: &[SubtaskState],
) -> Result<HashMap<(usize, usize), RestoredSubtask>, String> {
    let checkpoint = metadata.checkpoint_id;
    // Per uid: the old snapshots by old subtask index.
    let mut old: BTreeMap<&str, BTreeMap<usize, &OperatorSnapshot>> = BTreeMap::new();
    for (meta, state) in metadata.subtasks.iter().zip(states) {
        for (uid, snapshot) in &state.operators {
            old.entry(uid.as_str())
                .or_default()
                .insert(meta.subtask, snapshot);
        }
    }
    let unmatched: Vec<&str> = old
        .keys()
        .copied()
        .filter(|uid| !graph.vertices.iter().any(|v| v.uid == *uid))
        .collect();
    if !unmatched.is_empty() {
        return Err(format!(
            "checkpoint {checkpoint} holds state for operators this job does not have: {}",
            unmatched.join(", ")
        ));
    }
    let mut restored: HashMap<(usize, usize), RestoredSubtask> = HashMap::new();
    for (c, chain) in plan.chains.iter().enumerate() {
        for i in 0..chain.parallelism {
            restored.insert((c, i), RestoredSubtask::default());
        }
    }
    for (v, vertex) in graph.vertices.iter().enumerate() {
        let Some(snapshots) = old.get(vertex.uid.as_str()) else {
            continue;
        };
        let before = metadata
            .operators
            .iter()
            .find(|o| o.uid == vertex.uid)
            .ok_or_else(|| {
                format!(
                    "checkpoint {checkpoint}: operator `{}` has state but no metadata entry",
                    vertex.uid
                )
            })?;
        if before.max_parallelism != vertex.max_parallelism {
            return Err(format!(
                "operator `{}` ({}): the checkpoint has max parallelism {} and the job {}; the max parallelism is \
                 fixed by the first run",
                vertex.name, vertex.uid, before.max_parallelism, vertex.max_parallelism
            ));
        }
        let olds: Vec<OperatorSnapshot> = (0..before.parallelism)
            .map(|i| snapshots.get(&i).map(|s| (*s).clone()).unwrap_or_default())
            .collect();
        let chain = plan.chain_of[v];
        for (i, snapshot) in redistribute(&olds, vertex.parallelism, vertex.max_parallelism)
            .into_iter()
            .enumerate()
        {
            if let Some(target) = restored.get_mut(&(chain, i)) {
                target.operators.insert(vertex.uid.clone(), snapshot);
            }
        }
    }
    let in_flight: u64 = states.iter().map(SubtaskState::in_flight_bytes).sum();
    if in_flight > 0 {
        return Err(format!(
            "checkpoint {checkpoint} is unaligned ({in_flight} bytes of in-flight records); restoring channel state \
             is not supported yet: restore from an aligned checkpoint"
        ));
    }
    Ok(restored)
}

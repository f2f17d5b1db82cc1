//! What each subtask of a (re)deployed job starts from: the snapshots of a
//! completed checkpoint, matched to operators by uid and redistributed to the
//! new parallelism. A pure function of the job graph, its plan and what the
//! checkpoint holds; reading the checkpoint is the caller's business.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::checkpoint::metadata::{CheckpointMetadata, SubtaskState};
use crate::checkpoint::storage::{CheckpointStorage, FsStorage};
use crate::graph::JobGraph;
use crate::plan::ExecutionPlan;
use crate::snapshot::{redistribute, OperatorSnapshot};
use crate::subtask::RestoredSubtask;

/// Where a job's first deployment restores from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreSource {
    /// A checkpoint (or savepoint) directory, `.../chk-<n>`.
    Path(PathBuf),
    /// The newest complete checkpoint of any job under this checkpoint directory.
    LatestIn(PathBuf),
}

/// Reads checkpoint `id` of `storage`: its metadata and every subtask's state.
pub fn read(
    storage: &dyn CheckpointStorage,
    id: u64,
) -> Result<(CheckpointMetadata, Vec<SubtaskState>), String> {
    let metadata = storage.read_metadata(id).map_err(|e| e.to_string())?;
    let states = metadata
        .subtasks
        .iter()
        .map(|s| {
            let bytes = storage
                .read_state(id, &s.handle)
                .map_err(|e| e.to_string())?;
            SubtaskState::decode(&bytes).map_err(|e| {
                format!(
                    "checkpoint {id}, subtask {} of chain [{}] ({:?}): {e}",
                    s.subtask,
                    s.operators.join(", "),
                    s.handle
                )
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((metadata, states))
}

/// The storage and metadata of a snapshot directory: a savepoint or a
/// retained checkpoint (`.../chk-<n>`), given by path. An error names the
/// directory and what is wrong with it (missing, no `_metadata`, corrupt).
pub fn open_snapshot_dir(dir: &Path) -> Result<(FsStorage, CheckpointMetadata), String> {
    if !dir.is_dir() {
        return Err(format!(
            "{}: not a directory (expected a savepoint or a checkpoint directory .../chk-<n>)",
            dir.display()
        ));
    }
    let storage = FsStorage::of_snapshot_dir(dir);
    let metadata = storage.read_metadata(0).map_err(|e| match e {
        crate::checkpoint::StorageError::NotFound(_) => format!(
            "{}: not a savepoint or complete checkpoint (it has no _metadata)",
            dir.display()
        ),
        other => other.to_string(),
    })?;
    Ok((storage, metadata))
}

/// The newest complete checkpoint (by completion time) of any job under `root`.
pub fn find_latest(root: &Path) -> Result<PathBuf, String> {
    let entries =
        std::fs::read_dir(root).map_err(|e| format!("cannot list {}: {e}", root.display()))?;
    let mut best: Option<(i64, PathBuf)> = None;
    for entry in entries.flatten() {
        if !entry.path().is_dir() {
            continue;
        }
        let storage = FsStorage::of_job_dir(&entry.path());
        let Ok(listed) = storage.list() else { continue };
        for checkpoint in listed {
            if best
                .as_ref()
                .is_none_or(|(t, _)| checkpoint.completion_time_ms > *t)
            {
                best = Some((
                    checkpoint.completion_time_ms,
                    storage.paths().checkpoint_dir(checkpoint.id),
                ));
            }
        }
    }
    best.map(|(_, path)| path)
        .ok_or_else(|| format!("no complete checkpoint under {}", root.display()))
}

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
    // In-flight records go back to the same subtask of the same chain: channel
    // state is restored at an unchanged parallelism and chaining only.
    for (meta, state) in metadata.subtasks.iter().zip(states) {
        if state.input_channels.is_empty() && state.output_channels.is_empty() {
            continue;
        }
        let target = plan.chains.iter().enumerate().find(|(_, chain)| {
            chain
                .vertices
                .iter()
                .map(|&v| graph.vertices[v].uid.as_str())
                .eq(meta.operators.iter().map(String::as_str))
        });
        let same_parallelism = meta.operators.iter().all(|uid| {
            let before = metadata
                .operators
                .iter()
                .find(|o| &o.uid == uid)
                .map(|o| o.parallelism);
            let now = graph
                .vertices
                .iter()
                .find(|v| &v.uid == uid)
                .map(|v| v.parallelism);
            before.is_some() && before == now
        });
        match (target, same_parallelism) {
            (Some((c, _)), true) => {
                if let Some(subtask) = restored.get_mut(&(c, meta.subtask)) {
                    subtask.input_channels = state.input_channels.clone();
                    subtask.output_channels = state.output_channels.clone();
                }
            }
            _ => {
                return Err(format!(
                    "checkpoint {checkpoint} is unaligned: the in-flight records of [{}] subtask {} can only be \
                     restored at the same parallelism and chaining; restore from an aligned checkpoint or savepoint",
                    meta.operators.join(", "),
                    meta.subtask
                ))
            }
        }
    }
    Ok(restored)
}

//! What each subtask of a (re)deployed job starts from: the snapshots of a
//! completed checkpoint, matched to operators by uid and redistributed to the
//! new parallelism. A pure function of the job graph, its plan and what the
//! checkpoint holds; reading the checkpoint is the caller's business.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::metadata::ChannelState;
use crate::checkpoint::metadata::{CheckpointMetadata, OperatorMetadata, SubtaskState};
use crate::checkpoint::storage::{CheckpointStorage, FsStorage};
use crate::graph::JobGraph;
use crate::plan::ExecutionPlan;
use crate::snapshot::{redistribute, OperatorSnapshot};

/// What a subtask starts from when the job is restored.
#[derive(Clone, Debug, Default)]
pub struct RestoredSubtask {
    /// Per operator uid, its (redistributed) snapshot.
    pub operators: HashMap<String, OperatorSnapshot>,
    /// In-flight records of its input channels (unaligned checkpoints): processed first.
    pub input_channels: Vec<ChannelState>,
    /// In-flight records of its output channels (unaligned checkpoints): sent first.
    pub output_channels: Vec<ChannelState>,
}

pub use crate::config::RestoreSource;

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
    if !crate::location::is_object_url(dir) && !dir.is_dir() {
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

/// One operator of a job, as a restore sees it: what a checkpoint's metadata
/// records of it.
pub type PlannedOperator = OperatorMetadata;

/// What a job graph looks like to a restore: every job can write it as JSON
/// (`--dump-plan`), and `weir check-restore` reads it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPlan {
    /// The job's name.
    pub job: String,
    /// Its operators, in declaration order.
    pub operators: Vec<PlannedOperator>,
    /// The name of the job's state backend (`"heap"`, `"rocksdb"`), if known:
    /// keyed state a backend checkpointed incrementally restores only onto
    /// that backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_backend: Option<String>,
    /// The uids of each chain of operators (one subtask actor each), head
    /// first: in-flight records of an unaligned checkpoint restore only onto
    /// the same chains. Empty when unknown (then that is not checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<Vec<String>>,
    /// Per uid, the key type its keyed state may have been written under
    /// and is migrated from (see [`Vertex::migrates_keys_from`](crate::graph::Vertex::migrates_keys_from)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub key_migrations: BTreeMap<String, String>,
}

impl JobPlan {
    /// The plan of `graph` run as `execution` (chains).
    pub fn with_chains(graph: &JobGraph, execution: &ExecutionPlan) -> Self {
        JobPlan {
            chains: execution
                .chains
                .iter()
                .map(|c| {
                    c.vertices
                        .iter()
                        .map(|&v| graph.vertices[v].uid.clone())
                        .collect()
                })
                .collect(),
            ..Self::of(graph)
        }
    }

    /// The plan of `graph`, without its chains.
    pub fn of(graph: &JobGraph) -> Self {
        JobPlan {
            job: graph.name.clone(),
            operators: graph
                .vertices
                .iter()
                .map(|v| OperatorMetadata {
                    uid: v.uid.clone(),
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    max_parallelism: v.max_parallelism,
                    key_type: v.key_type.clone(),
                })
                .collect(),
            state_backend: None,
            chains: Vec::new(),
            key_migrations: graph
                .vertices
                .iter()
                .filter_map(|v| Some((v.uid.clone(), v.migrates_keys_from.clone()?)))
                .collect(),
        }
    }
}

/// How one uid fares in a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    /// State and operator match, at the same parallelism.
    Matched,
    /// State and operator match; the parallelism changes (state is redistributed).
    Rescaled {
        /// The snapshot's parallelism.
        from: usize,
        /// The job's.
        to: usize,
    },
    /// The job's operator has no state in the snapshot: it starts empty.
    New,
    /// The snapshot has state for a uid the job does not have: an error
    /// unless non-restored state is allowed (then the state is dropped).
    Missing,
    /// The max parallelism differs: keyed state cannot be split (an error).
    MaxParallelismChanged {
        /// The snapshot's.
        snapshot: usize,
        /// The job's.
        job: usize,
    },
    /// The state's type does not fit the operator: keyed state onto an
    /// operator that is not keyed, or under another key type (an error).
    StateTypeMismatch {
        /// What the snapshot holds.
        snapshot: String,
        /// What the job's operator has.
        job: String,
    },
    /// The snapshot is an unaligned checkpoint whose in-flight records of
    /// this operator's chain cannot be restored: the job runs the chain at
    /// another parallelism or chains it differently (an error).
    InFlightRecords {
        /// The chain in the snapshot, head first.
        chain: Vec<String>,
        /// Why the records cannot go back.
        reason: String,
    },
}

/// The verdict on one uid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidCheck {
    /// The uid.
    pub uid: String,
    /// The operator's name (the job's, else the snapshot's).
    pub name: String,
    /// Bytes of state the snapshot holds for it.
    pub state_bytes: u64,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The pre-flight check of a restore: per uid, whether the snapshot's state
/// restores onto the job, without starting it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreCheck {
    /// The snapshot's checkpoint id.
    pub checkpoint: u64,
    /// Whether state without an operator may be dropped.
    pub allow_non_restored_state: bool,
    /// One entry per uid of the job or the snapshot: the job's operators in
    /// order, then uids only the snapshot has.
    pub uids: Vec<UidCheck>,
    /// What prevents the restore beyond single uids (a parallelism above
    /// its max parallelism).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_errors: Vec<String>,
    /// What the restore does that is worth knowing (a snapshot of another
    /// job begins a new lineage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RestoreCheck {
    /// What prevents the restore, one message per uid; empty if it can go ahead.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let missing: Vec<&str> = self
            .uids
            .iter()
            .filter(|u| u.verdict == Verdict::Missing)
            .map(|u| u.uid.as_str())
            .collect();
        if !missing.is_empty() && !self.allow_non_restored_state {
            errors.push(format!(
                "checkpoint {} holds state for operators this job does not have: {} \
                 (set allow_non_restored_state to drop it)",
                self.checkpoint,
                missing.join(", ")
            ));
        }
        for u in &self.uids {
            match &u.verdict {
                Verdict::MaxParallelismChanged { snapshot, job } => errors.push(format!(
                    "operator `{}` ({}): the snapshot has max parallelism {snapshot} and the job {job}; \
                     the max parallelism is fixed by the first run",
                    u.name, u.uid
                )),
                Verdict::StateTypeMismatch { snapshot, job } => errors.push(format!(
                    "operator `{}` ({}): the snapshot holds {snapshot}, the job's operator has {job}",
                    u.name, u.uid
                )),
                Verdict::InFlightRecords { chain, reason } => errors.push(format!(
                    "operator `{}` ({}): checkpoint {} is unaligned and holds in-flight records of the chain [{}], \
                     which restore only at the same parallelism and chaining ({reason}); restore from an aligned \
                     checkpoint or a savepoint",
                    u.name,
                    u.uid,
                    self.checkpoint,
                    chain.join(", ")
                )),
                _ => {}
            }
        }
        errors.extend(self.job_errors.iter().cloned());
        errors
    }

    /// Whether the restore can go ahead.
    pub fn is_ok(&self) -> bool {
        self.errors().is_empty()
    }
}

impl std::fmt::Display for RestoreCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .uids
            .iter()
            .map(|u| u.uid.len())
            .max()
            .unwrap_or(3)
            .max(3);
        writeln!(
            f,
            "{:<width$}  {:<24}  {:>11}  NAME",
            "UID", "VERDICT", "STATE"
        )?;
        for u in &self.uids {
            let verdict = match &u.verdict {
                Verdict::Matched => "matched".to_string(),
                Verdict::Rescaled { from, to } => format!("rescaled {from} -> {to}"),
                Verdict::New => "new (starts empty)".to_string(),
                Verdict::Missing if self.allow_non_restored_state => {
                    "missing (dropped)".to_string()
                }
                Verdict::Missing => "MISSING".to_string(),
                Verdict::MaxParallelismChanged { snapshot, job } => {
                    format!("MAX PARALLELISM {snapshot} != {job}")
                }
                Verdict::StateTypeMismatch { .. } => "STATE TYPE MISMATCH".to_string(),
                Verdict::InFlightRecords { .. } => "IN-FLIGHT RECORDS".to_string(),
            };
            writeln!(
                f,
                "{:<width$}  {verdict:<24}  {:>11}  {}",
                u.uid, u.state_bytes, u.name
            )?;
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        match self.errors().as_slice() {
            [] => write!(f, "restore possible"),
            errors => {
                for e in errors {
                    writeln!(f, "error: {e}")?;
                }
                write!(f, "restore NOT possible")
            }
        }
    }
}

/// Checks whether snapshot `metadata` (with every subtask's decoded state, in
/// the metadata's order) restores onto `plan`.
pub fn check(
    metadata: &CheckpointMetadata,
    states: &[SubtaskState],
    plan: &JobPlan,
    allow_non_restored_state: bool,
) -> RestoreCheck {
    // Per uid: bytes of state, and whether any of it is keyed.
    let mut stateful: BTreeMap<&str, (u64, bool)> = BTreeMap::new();
    // Per uid: the backend whose incremental handles hold its keyed state.
    let mut handles_of: BTreeMap<&str, &str> = BTreeMap::new();
    for state in states {
        for (uid, snapshot) in &state.operators {
            if snapshot.is_empty() {
                continue;
            }
            let entry = stateful.entry(uid.as_str()).or_default();
            entry.0 += snapshot.size() as u64;
            entry.1 |= !snapshot.keyed.is_empty() || !snapshot.keyed_handles.is_empty();
            if let Some(handle) = snapshot.keyed_handles.first() {
                handles_of.insert(uid.as_str(), handle.backend.as_str());
            }
        }
    }
    let mut uids = Vec::new();
    for operator in &plan.operators {
        let before = metadata.operators.iter().find(|o| o.uid == operator.uid);
        let verdict = match (stateful.get(operator.uid.as_str()), before) {
            (None, _) => Verdict::New,
            (Some(_), None) => Verdict::StateTypeMismatch {
                snapshot: "state without operator metadata".into(),
                job: "an operator".into(),
            },
            (Some(&(_, keyed)), Some(before)) => {
                if before.max_parallelism != operator.max_parallelism {
                    Verdict::MaxParallelismChanged {
                        snapshot: before.max_parallelism,
                        job: operator.max_parallelism,
                    }
                } else if keyed && operator.key_type.is_none() {
                    Verdict::StateTypeMismatch {
                        snapshot: format!(
                            "keyed state (key type {})",
                            before.key_type.as_deref().unwrap_or("unrecorded")
                        ),
                        job: "an operator that is not keyed".into(),
                    }
                } else if keyed
                    && before.key_type.is_some()
                    && before.key_type.as_ref() == plan.key_migrations.get(&operator.uid)
                    && handles_of.contains_key(operator.uid.as_str())
                {
                    Verdict::StateTypeMismatch {
                        snapshot: format!(
                            "keyed state with key type {}, checkpointed incrementally",
                            before.key_type.as_deref().unwrap_or_default()
                        ),
                        job: "a migration of its keys, which restores from a savepoint".into(),
                    }
                } else if keyed
                    && before.key_type.is_some()
                    && before.key_type != operator.key_type
                    && before.key_type.as_ref() != plan.key_migrations.get(&operator.uid)
                {
                    Verdict::StateTypeMismatch {
                        snapshot: format!(
                            "keyed state with key type {}",
                            before.key_type.as_deref().unwrap_or_default()
                        ),
                        job: format!(
                            "key type {}",
                            operator.key_type.as_deref().unwrap_or_default()
                        ),
                    }
                } else if let Some((written_by, job_backend)) = handles_of
                    .get(operator.uid.as_str())
                    .zip(plan.state_backend.as_deref())
                    .filter(|(written_by, job_backend)| **written_by != *job_backend)
                {
                    Verdict::StateTypeMismatch {
                        snapshot: format!(
                            "keyed state checkpointed incrementally by the {written_by} backend"
                        ),
                        job: format!(
                            "the {job_backend} backend (restore with {written_by}, or from a savepoint)"
                        ),
                    }
                } else if before.parallelism != operator.parallelism {
                    Verdict::Rescaled {
                        from: before.parallelism,
                        to: operator.parallelism,
                    }
                } else {
                    Verdict::Matched
                }
            }
        };
        uids.push(UidCheck {
            uid: operator.uid.clone(),
            name: operator.name.clone(),
            state_bytes: stateful.get(operator.uid.as_str()).map_or(0, |s| s.0),
            verdict,
        });
    }
    for (uid, (bytes, _)) in &stateful {
        if plan.operators.iter().any(|o| o.uid == *uid) {
            continue;
        }
        let name = metadata
            .operators
            .iter()
            .find(|o| o.uid == *uid)
            .map_or_else(String::new, |o| o.name.clone());
        uids.push(UidCheck {
            uid: uid.to_string(),
            name,
            state_bytes: *bytes,
            verdict: Verdict::Missing,
        });
    }
    for (meta, state) in metadata.subtasks.iter().zip(states) {
        if state.input_channels.is_empty() && state.output_channels.is_empty() {
            continue;
        }
        let Some(reason) = in_flight_problem(metadata, &meta.operators, plan) else {
            continue;
        };
        for u in uids.iter_mut() {
            let blocked = matches!(
                u.verdict,
                Verdict::Matched | Verdict::Rescaled { .. } | Verdict::New
            );
            if blocked && meta.operators.contains(&u.uid) {
                u.verdict = Verdict::InFlightRecords {
                    chain: meta.operators.clone(),
                    reason: reason.clone(),
                };
            }
        }
    }
    let job_errors = plan
        .operators
        .iter()
        .filter(|o| o.parallelism > o.max_parallelism)
        .map(|o| {
            format!(
                "operator `{}` ({}): parallelism {} is above its max parallelism {}",
                o.name, o.uid, o.parallelism, o.max_parallelism
            )
        })
        .collect();
    let mut notes = Vec::new();
    if metadata.job_name != plan.job {
        notes.push(format!(
            "the snapshot is of job `{}`; restored as job `{}`, it begins a new lineage (`latest` of `{}` \
             will not find the old one's snapshots)",
            metadata.job_name, plan.job, plan.job
        ));
    }
    RestoreCheck {
        checkpoint: metadata.checkpoint_id,
        allow_non_restored_state,
        uids,
        job_errors,
        notes,
    }
}

/// Why the in-flight records of the snapshot's chain `chain` cannot be
/// restored onto `plan`, if they cannot. Channel state is indexed by the
/// channels between subtasks, so the whole job must run as the snapshot did:
/// every operator at its parallelism, chained the same way.
fn in_flight_problem(
    metadata: &CheckpointMetadata,
    chain: &[String],
    plan: &JobPlan,
) -> Option<String> {
    for before in &metadata.operators {
        match plan.operators.iter().find(|o| o.uid == before.uid) {
            Some(now) if now.parallelism != before.parallelism => {
                return Some(format!(
                    "`{}` runs at parallelism {}, the checkpoint's at {}",
                    before.uid, now.parallelism, before.parallelism
                ))
            }
            None => return Some(format!("the job has no operator `{}`", before.uid)),
            _ => {}
        }
    }
    if let Some(new) = plan
        .operators
        .iter()
        .find(|o| !metadata.operators.iter().any(|b| b.uid == o.uid))
    {
        return Some(format!("the job has a new operator `{}`", new.uid));
    }
    if !plan.chains.is_empty() {
        let chains_before: std::collections::BTreeSet<&[String]> = metadata
            .subtasks
            .iter()
            .map(|s| s.operators.as_slice())
            .collect();
        let chains_now: std::collections::BTreeSet<&[String]> =
            plan.chains.iter().map(Vec::as_slice).collect();
        if chains_before != chains_now || !chains_now.contains(chain) {
            return Some("the job chains its operators differently".to_string());
        }
    }
    None
}

/// Reads the snapshot in `dir` (a savepoint or retained checkpoint) and checks
/// it against `plan`.
pub fn check_dir(
    dir: &Path,
    plan: &JobPlan,
    allow_non_restored_state: bool,
) -> Result<RestoreCheck, String> {
    let (storage, metadata) = open_snapshot_dir(dir)?;
    let (metadata, states) = read(&storage, metadata.checkpoint_id)?;
    Ok(check(&metadata, &states, plan, allow_non_restored_state))
}

/// Assigns the state of checkpoint `metadata` (with the decoded state of each
/// of its subtasks, in the metadata's order) to the subtasks of `plan`.
pub fn assign(
    graph: &JobGraph,
    plan: &ExecutionPlan,
    metadata: &CheckpointMetadata,
    states: &[SubtaskState],
    allow_non_restored_state: bool,
) -> Result<HashMap<(usize, usize), RestoredSubtask>, Vec<String>> {
    let checkpoint = metadata.checkpoint_id;
    let verdicts = check(
        metadata,
        states,
        &JobPlan::with_chains(graph, plan),
        allow_non_restored_state,
    );
    let errors = verdicts.errors();
    if !errors.is_empty() {
        return Err(errors);
    }
    for dropped in verdicts
        .uids
        .iter()
        .filter(|u| u.verdict == Verdict::Missing)
    {
        tracing::warn!(checkpoint, uid = %dropped.uid, bytes = dropped.state_bytes, "state of an operator this job does not have is not restored");
    }
    // Per uid the job has: the old snapshots by old subtask index.
    let mut old: BTreeMap<&str, BTreeMap<usize, &OperatorSnapshot>> = BTreeMap::new();
    for (meta, state) in metadata.subtasks.iter().zip(states) {
        for (uid, snapshot) in &state.operators {
            // A stateless operator that was removed leaves nothing to restore.
            if !graph.vertices.iter().any(|v| v.uid == *uid) {
                continue;
            }
            old.entry(uid.as_str())
                .or_default()
                .insert(meta.subtask, snapshot);
        }
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
                vec![format!(
                    "checkpoint {checkpoint}: operator `{}` has state but no metadata entry",
                    vertex.uid
                )]
            })?;
        if before.max_parallelism != vertex.max_parallelism {
            return Err(vec![format!(
                "operator `{}` ({}): the checkpoint has max parallelism {} and the job {}; the max parallelism is \
                 fixed by the first run",
                vertex.name, vertex.uid, before.max_parallelism, vertex.max_parallelism
            )]);
        }
        let olds: Vec<OperatorSnapshot> = (0..before.parallelism)
            .map(|i| snapshots.get(&i).map(|s| (*s).clone()).unwrap_or_default())
            .collect();
        let chain = plan.chain_of[v];
        // Keys migrated to another type land in other key groups: every
        // subtask gets all the keyed state, and keeps its own keys.
        let all_keyed: Option<BTreeMap<usize, Vec<u8>>> = (before.key_type.is_some()
            && before.key_type != vertex.key_type
            && before.key_type == vertex.migrates_keys_from)
            .then(|| olds.iter().flat_map(|s| s.keyed.clone()).collect());
        for (i, mut snapshot) in redistribute(&olds, vertex.parallelism, vertex.max_parallelism)
            .into_iter()
            .enumerate()
        {
            if let Some(all) = &all_keyed {
                snapshot.keyed = all.clone();
            }
            if let Some(target) = restored.get_mut(&(chain, i)) {
                target.operators.insert(vertex.uid.clone(), snapshot);
            }
        }
    }
    // In-flight records go back to the same subtask of the same chain (the
    // check above refused anything else).
    for (meta, state) in metadata.subtasks.iter().zip(states) {
        if state.input_channels.is_empty() && state.output_channels.is_empty() {
            continue;
        }
        let target = plan.chains.iter().position(|chain| {
            chain
                .vertices
                .iter()
                .map(|&v| graph.vertices[v].uid.as_str())
                .eq(meta.operators.iter().map(String::as_str))
        });
        let subtask = target.and_then(|c| restored.get_mut(&(c, meta.subtask)));
        let Some(subtask) = subtask else {
            return Err(vec![format!(
                "checkpoint {checkpoint}: no subtask {} of the chain [{}] for its in-flight records",
                meta.subtask,
                meta.operators.join(", ")
            )]);
        };
        subtask.input_channels = state.input_channels.clone();
        subtask.output_channels = state.output_channels.clone();
    }
    Ok(restored)
}

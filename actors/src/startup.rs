//! What a job settles before its first subtask starts: the directories it
//! writes (created, probed, its checkpoints locked against a second job of
//! the same name), what it restores from (`latest` resolved within its own
//! lineage, never by clock, never silently older), the lineage it continues
//! or begins, the id its next checkpoint gets, and every operator's
//! pre-flight check. A problem here ends the job before anything runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{info, warn};

use crate::checkpoint::layout::CheckpointPaths;
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::savepoint::RoutedStorage;
use crate::checkpoint::{CheckpointStorage, FsStorage, StorageSpec};
use crate::config::RestoreSource;
use crate::config::RuntimeConfig;
use crate::error::{JobError, RestoreError};
use crate::graph::JobGraph;
use crate::lineage::{
    current, next_generation, scan_root, Lineage, LineageDir, LineageRecord, SnapshotRef,
    LINEAGE_VERSION,
};
use crate::location;
use crate::lock::{holder, DirLock};
use crate::plan::ExecutionPlan;
use crate::preflight::{probe_location, Hold, PreflightContext};
use crate::restore::{self, open_snapshot_dir, RestoredSubtask};

/// What [`prepare`] settled.
pub(crate) struct Prepared {
    /// The lineage the job continues or begins; its newest snapshot is what
    /// the first deployment restores (none: start empty).
    pub lineage: Arc<Lineage>,
    /// Where checkpoints (and savepoints) are written, with checkpointing.
    pub storage: Option<Arc<RoutedStorage>>,
    /// The id of the job's first checkpoint.
    pub first_checkpoint_id: u64,
    /// What the supervisor starts the job with.
    pub first: FirstDeployment,
}

/// What the first deployment of a job starts from, read and checked before
/// anything about the run was written down.
#[derive(Default)]
pub(crate) struct FirstDeployment {
    /// Locks to keep while the job runs.
    pub holds: Vec<Hold>,
    /// What each subtask restores.
    pub restored: HashMap<(usize, usize), RestoredSubtask>,
    /// The snapshot id they restore, if any.
    pub restored_from: Option<u64>,
}

fn invalid(message: String) -> JobError {
    JobError::InvalidJob(message)
}

/// The snapshot to restore, read as far as its metadata.
struct Restoring<'a> {
    snapshot: SnapshotRef,
    metadata: CheckpointMetadata,
    /// The lineage `latest` found it in (it is that lineage's, whatever job
    /// wrote the snapshot itself).
    found_in: Option<&'a LineageDir>,
}

/// Whether `id` (read from a snapshot) can name a lineage directory.
fn is_safe_lineage(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Settles everything the job needs before it starts; a lineage the job
/// begins is named by its run's `job_id`. Nothing is written down (lineage
/// record, sink ledgers) before the snapshot to restore was read and
/// assigned and every operator's check passed.
pub(crate) fn prepare(
    graph: &JobGraph,
    plan: &ExecutionPlan,
    config: &RuntimeConfig,
    job_id: &str,
) -> Result<Prepared, JobError> {
    let job = graph.name.as_str();
    let spec = config.checkpointing.as_ref().map(|c| &c.storage);
    let root = match spec {
        Some(StorageSpec::Filesystem(root)) => Some(root.clone()),
        _ => None,
    };
    let mut holds: Vec<Hold> = Vec::new();
    if let Some(root) = &root {
        probe_location(root, "checkpoint directory").map_err(|e| invalid(e.to_string()))?;
    }
    // An object store has no file locks: two runs of one job name on one
    // bucket prefix are not prevented there (as in Flink).
    if let Some(root) = root.as_ref().filter(|r| !location::is_object_url(r)) {
        let lock = DirLock::acquire(
            &CheckpointPaths::job_lock(root, job),
            &holder(&format!("job `{job}`")),
        )
        .map_err(|e| {
            invalid(format!(
                "job `{job}` cannot start: {e} (one running job per job name and checkpoint directory)"
            ))
        })?;
        holds.push(Box::new(lock));
    }
    if let Some(dir) = &config.savepoint_dir {
        probe_location(dir, "savepoint directory").map_err(|e| invalid(e.to_string()))?;
    }
    let lineages = match (&config.restore_from, &root) {
        (Some(RestoreSource::LatestIn(latest_root)), _) => scan_root(latest_root),
        (_, Some(root)) => scan_root(root),
        (_, None) => Ok(Vec::new()),
    }
    .map_err(|e| invalid(e.to_string()))?;

    // What to restore, and an empty lineage to continue when `latest` finds nothing in it.
    let mut empty: Option<&LineageDir> = None;
    let restoring = match &config.restore_from {
        None => None,
        Some(RestoreSource::Path(dir)) => {
            let (_, metadata) = open_snapshot_dir(dir).map_err(|reason| {
                let shown = dir.display().to_string();
                JobError::RestoreFailed(RestoreError::Unreadable {
                    snapshot: "the snapshot to resume from".into(),
                    reason: reason
                        .strip_prefix(&format!("{shown}: "))
                        .map_or_else(|| reason.clone(), str::to_string),
                    location: shown,
                })
            })?;
            // Named by its absolute path: a later run may start elsewhere.
            let dir = location::absolute(dir);
            Some(Restoring {
                snapshot: SnapshotRef {
                    id: metadata.checkpoint_id,
                    savepoint: metadata.savepoint,
                    location: Some(dir),
                },
                metadata,
                found_in: None,
            })
        }
        Some(RestoreSource::LatestIn(latest_root)) => {
            match current(job, latest_root, &lineages).map_err(|e| invalid(e.to_string()))? {
                None => {
                    warn!(job, dir = %latest_root.display(), "resume from latest: no snapshot of this job there; starting fresh");
                    None
                }
                Some(lineage) => match lineage.newest() {
                    None => {
                        warn!(job, lineage = %lineage.dir.display(), "resume from latest: the job's lineage has no complete snapshot; starting fresh");
                        empty = Some(lineage);
                        None
                    }
                    Some(snapshot) => Some(read_latest(job, lineage, snapshot)?),
                },
            }
        }
    };

    // The lineage: the snapshot's own (same job), a new one (fresh, or a
    // snapshot of another job), or the empty one `latest` found.
    let restored_id = restoring.as_ref().map(|r| r.snapshot.id);
    let (lineage_id, existing, parent) = match &restoring {
        Some(Restoring {
            found_in: Some(found),
            ..
        }) => (found.record.lineage.clone(), Some(*found), None),
        Some(r) if r.metadata.job_name == job && is_safe_lineage(r.metadata.lineage()) => {
            let id = r.metadata.lineage().to_string();
            let existing = lineages.iter().find(|l| l.record.lineage == id);
            (id, existing, None)
        }
        Some(r) => {
            info!(job, from_job = %r.metadata.job_name, snapshot = %r.snapshot.describe(), "restoring a snapshot of another job: a new lineage begins");
            (job_id.to_string(), None, Some(r.snapshot.clone()))
        }
        None => match empty {
            Some(l) => (l.record.lineage.clone(), Some(l), None),
            None => (job_id.to_string(), None, None),
        },
    };
    let lineage_dir = root.as_ref().map(|r| r.join(&lineage_id));
    let latest = restoring.as_ref().map(|r| {
        let mut snapshot = r.snapshot.clone();
        // A checkpoint of this very lineage directory is referred to by id.
        let own = lineage_dir
            .as_ref()
            .map(|d| CheckpointPaths::of_job_dir(d).checkpoint_dir(snapshot.id));
        if !snapshot.savepoint && snapshot.location.is_some() && snapshot.location == own {
            snapshot.location = None;
        }
        snapshot
    });
    // Checkpoint directories there, with a record or not (an older layout),
    // are never written over.
    let on_disk = match &lineage_dir {
        Some(dir) => CheckpointPaths::of_job_dir(dir)
            .checkpoint_ids()
            .map_err(|e| invalid(format!("cannot list {}: {e}", dir.display())))?
            .last()
            .map_or(0, |&(id, _)| id),
        None => 0,
    };
    let highest = existing.map_or(0, LineageDir::highest_id).max(on_disk);
    let branch_start = highest.max(restored_id.unwrap_or(0)) + 1;
    let generation = next_generation(job, &lineages, &lineage_id)
        .max(existing.map_or(0, |l| l.record.generation));
    let record = LineageRecord {
        version: LINEAGE_VERSION,
        lineage: lineage_id.clone(),
        job_name: job.to_string(),
        generation,
        branch_start,
        latest,
        parent: parent.or_else(|| existing.and_then(|l| l.record.parent.clone())),
    };

    let storage = config
        .checkpointing
        .as_ref()
        .map(|c| Arc::new(RoutedStorage::new(c.storage.open(&lineage_id))));
    let mut first = FirstDeployment {
        holds,
        ..FirstDeployment::default()
    };
    if let Some(snapshot) = &record.latest {
        let where_ = describe_location(snapshot, lineage_dir.as_deref());
        let source = snapshot_storage(snapshot, storage.as_ref()).map_err(|reason| {
            JobError::RestoreFailed(RestoreError::Unreadable {
                snapshot: snapshot.describe(),
                location: where_.clone(),
                reason,
            })
        })?;
        first.restored = assign_snapshot(graph, plan, snapshot, source.as_ref(), &where_, config)?;
        first.restored_from = Some(snapshot.id);
        check_restored_state(graph, &first.restored)?;
    }

    // Operators check (and lock) before anything is written.
    let context = |parallelism, operator_uid: &str| PreflightContext {
        job_name: job.to_string(),
        lineage: lineage_id.clone(),
        restored_checkpoint: restored_id,
        checkpointing: config.checkpointing.is_some(),
        allow_sink_rewind: config.allow_sink_rewind,
        parallelism,
        operator_uid: operator_uid.to_string(),
    };
    for vertex in &graph.vertices {
        if let Some(check) = &vertex.preflight {
            let taken = check(&context(vertex.parallelism, &vertex.uid)).map_err(|e| {
                invalid(format!("operator `{}` ({}): {e}", vertex.name, vertex.uid))
            })?;
            first.holds.extend(taken);
        }
    }

    if let Some(dir) = &lineage_dir {
        location::create_dir_all(dir).map_err(|e| {
            invalid(format!(
                "cannot create the lineage directory {}: {e}",
                dir.display()
            ))
        })?;
        record.write(dir).map_err(|e| invalid(e.to_string()))?;
        // Checkpoints that never completed (killed, aborted) are not kept.
        if let Some(existing) = existing {
            let storage = FsStorage::of_job_dir(dir);
            for &id in &existing.without_metadata {
                if let Err(e) = storage.discard(id) {
                    warn!(job, checkpoint = id, error = %e, "cannot delete an unfinished checkpoint");
                }
            }
        }
    }
    match &record.latest {
        Some(snapshot) => {
            info!(job, lineage = %lineage_id, snapshot = %snapshot.describe(), first_checkpoint = branch_start, "restoring")
        }
        None => info!(job, lineage = %lineage_id, first_checkpoint = branch_start, "starting"),
    }
    Ok(Prepared {
        lineage: Arc::new(Lineage::new(record, lineage_dir)),
        storage,
        first_checkpoint_id: branch_start,
        first,
    })
}

/// Reads `snapshot` from `storage` (its location `where_` for messages) and
/// assigns it to the subtasks of `graph` run as `plan`. A failure is not
/// worth a retry: a damaged snapshot stays damaged.
/// Runs every operator's [`restore_check`](crate::graph::Vertex::restore_check)
/// on the state the restore gives it.
fn check_restored_state(
    graph: &JobGraph,
    restored: &HashMap<(usize, usize), RestoredSubtask>,
) -> Result<(), JobError> {
    let mut by_uid: HashMap<&str, Vec<&crate::snapshot::OperatorSnapshot>> = HashMap::new();
    for subtask in restored.values() {
        for (uid, snapshot) in &subtask.operators {
            by_uid.entry(uid.as_str()).or_default().push(snapshot);
        }
    }
    for vertex in &graph.vertices {
        if let Some(check) = &vertex.restore_check {
            let snapshots = by_uid
                .get(vertex.uid.as_str())
                .map_or(&[][..], Vec::as_slice);
            check(snapshots).map_err(|e| {
                invalid(format!(
                    "operator `{}` ({}) cannot restore its state: {e}",
                    vertex.name, vertex.uid
                ))
            })?;
        }
    }
    Ok(())
}

pub(crate) fn assign_snapshot(
    graph: &JobGraph,
    plan: &ExecutionPlan,
    snapshot: &SnapshotRef,
    storage: &dyn CheckpointStorage,
    where_: &str,
    config: &RuntimeConfig,
) -> Result<HashMap<(usize, usize), RestoredSubtask>, JobError> {
    let (metadata, states) = restore::read(storage, snapshot.id).map_err(|reason| {
        JobError::RestoreFailed(RestoreError::Unreadable {
            snapshot: snapshot.describe(),
            location: where_.to_string(),
            reason,
        })
    })?;
    restore::assign(
        graph,
        plan,
        &metadata,
        &states,
        config.allow_non_restored_state,
    )
    .map_err(|problems| {
        JobError::RestoreFailed(RestoreError::Incompatible {
            snapshot: snapshot.describe(),
            location: where_.to_string(),
            problems,
        })
    })
}

/// Reads the metadata of `snapshot`, the newest of `lineage`: an error names
/// it, and the older checkpoints a user may name instead.
fn read_latest<'a>(
    job: &str,
    lineage: &'a LineageDir,
    snapshot: SnapshotRef,
) -> Result<Restoring<'a>, JobError> {
    let dir = snapshot
        .dir(Some(&lineage.dir))
        .unwrap_or_else(|| lineage.dir.clone());
    let fail = |problem: String| {
        let older = lineage.older_than(snapshot.id);
        let hint = match older.first() {
            Some(path) => format!(
                "; an older snapshot is used only when named, for example --resume-from {}",
                path.display()
            ),
            None => String::new(),
        };
        JobError::RestoreFailed(RestoreError::Unreadable {
            snapshot: format!(
                "{} of job `{job}`, the newest of its lineage,",
                snapshot.describe()
            ),
            location: dir.display().to_string(),
            reason: format!("{problem}{hint}"),
        })
    };
    let (_, metadata) = open_snapshot_dir(&dir).map_err(fail)?;
    if metadata.checkpoint_id != snapshot.id {
        return Err(fail(format!(
            "its _metadata is of checkpoint {}",
            metadata.checkpoint_id
        )));
    }
    Ok(Restoring {
        snapshot,
        metadata,
        found_in: Some(lineage),
    })
}

/// The storage and id to read `snapshot` of `lineage` from: the job's own
/// checkpoint storage for its checkpoints, the snapshot's directory otherwise.
pub(crate) fn snapshot_storage(
    snapshot: &SnapshotRef,
    own: Option<&Arc<RoutedStorage>>,
) -> Result<Arc<dyn CheckpointStorage>, String> {
    match (&snapshot.location, own) {
        (Some(dir), _) => Ok(Arc::new(FsStorage::of_snapshot_dir(dir))),
        (None, Some(own)) => Ok(own.clone() as Arc<dyn CheckpointStorage>),
        (None, None) => Err(format!(
            "{} has no location and the job has no checkpoint storage",
            snapshot.describe()
        )),
    }
}

/// Where `snapshot` is, for messages.
pub(crate) fn describe_location(snapshot: &SnapshotRef, lineage_dir: Option<&Path>) -> String {
    snapshot.dir(lineage_dir).map_or_else(
        || format!("memory:chk-{}", snapshot.id),
        |d: PathBuf| d.display().to_string(),
    )
}

//! `lineage`: a checkpoint directory whose job has `--checkpoints` retained
//! checkpoints (default 20 000, written directly, small): times what
//! `resume_from("latest")` does to find the newest (`resolve_ms`: scan the
//! lineages, read the newest `_metadata`) and a whole run of a one-record job
//! resuming from it (`job_ms`: start to end, retention kept above the count so
//! that nothing is deleted).

use std::time::Instant;

use serde_json::json;
use weir::{CheckpointConfig, StreamEnv};

use crate::{check, millis, Args, BenchResult, Report};

/// `--checkpoints` retained checkpoints of one job; the time to find the
/// newest, and to run a job resumed from it.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    use weir::runtime::checkpoint::metadata::{CheckpointMetadata, METADATA_VERSION};
    use weir::runtime::checkpoint::storage::encode_metadata;
    use weir::runtime::lineage::{current, scan_root, LineageRecord, SnapshotRef, LINEAGE_VERSION};
    let count = args.checkpoints;
    let root = tempfile_dir("weir-bench-lineage")?;
    let job = "lineage-bench";
    let lineage = "00000000000000aa";
    let dir = root.join(lineage);
    std::fs::create_dir_all(&dir)?;
    for id in 1..=count {
        let chk = dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&chk)?;
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            job_name: job.into(),
            job_id: lineage.into(),
            lineage: lineage.into(),
            checkpoint_id: id,
            savepoint: false,
            trigger_time_ms: 0,
            completion_time_ms: 0,
            operators: Vec::new(),
            subtasks: Vec::new(),
        };
        std::fs::write(chk.join("_metadata"), encode_metadata(&metadata)?)?;
    }
    LineageRecord {
        version: LINEAGE_VERSION,
        lineage: lineage.into(),
        job_name: job.into(),
        generation: 1,
        branch_start: 1,
        latest: Some(SnapshotRef::checkpoint(count)),
        parent: None,
    }
    .write(&dir)?;

    let start = Instant::now();
    let lineages = scan_root(&root)?;
    let newest = current(job, &root, &lineages)?
        .and_then(|l| l.newest())
        .ok_or("no newest checkpoint")?;
    let (_, metadata) =
        weir::runtime::restore::open_snapshot_dir(&dir.join(format!("chk-{}", newest.id)))?;
    let resolve = start.elapsed();
    check("the newest checkpoint", metadata.checkpoint_id, count)?;

    let env = StreamEnv::with_parallelism(1);
    env.set_checkpoint_config(CheckpointConfig {
        retained: count as usize + 10,
        ..CheckpointConfig::default()
    });
    env.set_checkpoint_dir(&root.display().to_string());
    env.resume_from("latest");
    let counter = env.from_collection(vec![1u64]).uid("one").discard();
    let start = Instant::now();
    let result = env.execute_blocking(job)?;
    let job_time = start.elapsed();
    check("records reaching the sink", counter.records(), 1)?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(Report::new(args, 1, job_time)
        .engine(&env, &result, 1)
        .with("checkpoints", json!(count))
        .with("resolve_ms", json!(millis(resolve)))
        .with("job_ms", json!(millis(job_time))))
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir(tag: &str) -> BenchResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

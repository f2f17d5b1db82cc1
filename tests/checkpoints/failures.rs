//! Failed checkpoints: a declined checkpoint is aborted (stats `failure`,
//! sinks get `notify_checkpoint_aborted`), later ones complete when
//! tolerated, and the job fails with `CheckpointingFailed` naming the cause
//! when not; expired checkpoints (a slow sink) count as failures; an
//! unwritable directory and the in-memory size limit fail checkpoints with
//! errors naming the path, or the size and the limit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use weir::runtime::checkpoint::CheckpointStorage;
use weir::{
    CheckpointConfig, CheckpointFailure, CheckpointStats, JobError, JobResult, RestartStrategy,
    StorageSpec, StreamEnv,
};

use crate::kit::{
    checkpoint_dirs, checkpoint_failure, completed_ids, env_with, failures, ids, in_system, manual,
    storage_of, until, Feed, Rec, Recorder, Tally,
};
use crate::reading::load;

/// A job that waits (phase 1 gated) so that the test decides when it ends.
fn declining_job(dir: &Path, tolerable: u32) -> (StreamEnv, Feed, Recorder) {
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20)]]);
    let sink = Recorder::declining(&[1]);
    let config = CheckpointConfig {
        tolerable_failures: tolerable,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(2, dir, config);
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    (env, feed, sink)
}

#[test]
fn a_declined_checkpoint_is_aborted_and_later_ones_complete_when_failures_are_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let (env, feed, sink) = declining_job(dir.path(), 1);
    let (result, storage) = in_system(async {
        let mut client = env.start("declined").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        let (failure, declined) =
            checkpoint_failure(client.trigger_checkpoint().await.unwrap_err());
        assert!(
            matches!(&failure, CheckpointFailure::Declined { operator, .. } if operator.contains("Sink: Recorder")),
            "{failure:?}"
        );
        assert!(declined.contains("checkpoint 1 declined"), "{declined}");
        assert!(
            declined.contains("boom: the recorder refuses checkpoint 1"),
            "{declined}"
        );
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 2);
        assert_eq!(load(&storage, 2).tallied("tally"), ids(0..10));
        feed.open_gate(1);
        (client.wait().await.unwrap(), storage)
    });
    let failed = failures(&result.checkpoints);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, 1);
    assert!(
        matches!(&failed[0].1, CheckpointFailure::Declined { reason, .. } if reason.contains("boom")),
        "{:?}",
        failed[0].1
    );
    assert_eq!(completed_ids(&result.checkpoints), vec![2, 3]);
    // Every operator of every subtask heard of the abort, and of the completions.
    assert_eq!(sink.aborted(), BTreeMap::from([(0, vec![1]), (1, vec![1])]));
    assert_eq!(
        sink.completed(),
        BTreeMap::from([(0, vec![2, 3]), (1, vec![2, 3])])
    );
    // The aborted checkpoint left nothing behind.
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, vec![2, 3]);
    assert!(!checkpoint_dirs(&dir.path().join(&result.job_id)).contains_key(&1));
    assert_eq!(sink.records(), ids(0..20));
}

#[test]
fn a_declined_checkpoint_fails_the_job_when_no_failure_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    let (env, feed, _sink) = declining_job(dir.path(), 0);
    let (triggered, outcome, stats) = in_system(async {
        let mut client = env.start("declined-fatal").await.unwrap();
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        let triggered = client.trigger_checkpoint().await;
        let outcome = client.wait().await;
        (triggered, outcome, client.checkpoint_stats())
    });
    assert!(triggered.is_err());
    let (_, message) = checkpoint_failure(outcome.unwrap_err());
    assert!(message.contains("checkpoint 1 declined"), "{message}");
    assert!(
        message.contains("boom: the recorder refuses checkpoint 1"),
        "{message}"
    );
    assert!(message.contains("0 tolerated"), "{message}");
    assert_eq!(failures(&stats).len(), 1);
}

/// A sink sleeping 40 ms on each of its first 4 batches, checkpoints every
/// 5 ms with a 15 ms timeout: a checkpoint whose barrier waits behind those
/// batches expires. The source never ends (its phase 1 stays gated). With
/// failures tolerated, the test waits for an expired checkpoint and a
/// completed one after it, then cancels the job.
fn slow_sink_job(tolerable: u32) -> (Result<JobResult, JobError>, Vec<CheckpointStats>) {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        interval: Some(Duration::from_millis(5)),
        timeout: Duration::from_millis(15),
        tolerable_failures: tolerable,
        ..CheckpointConfig::default()
    };
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1);
    let sink = Recorder::slow(4, Duration::from_millis(40));
    env.add_source(Feed::new(vec![vec![ids(0..4), ids(4..8)]]))
        .uid("feed")
        .add_sink(sink.clone())
        .uid("sink");
    in_system(async {
        let mut client = env.start("slow-sink").await.unwrap();
        if tolerable > 0 {
            until("an expired checkpoint, then a completed one", || {
                let stats = client.checkpoint_stats();
                let expired = stats
                    .iter()
                    .filter(|s| matches!(s.failure, Some(CheckpointFailure::Expired { .. })))
                    .map(|s| s.id)
                    .min();
                expired.is_some_and(|e| completed_ids(&stats).iter().any(|&c| c > e))
            })
            .await;
            client.cancel();
        }
        let outcome = client.wait().await;
        (outcome, client.checkpoint_stats())
    })
}

#[test]
fn checkpoints_that_expire_behind_a_slow_sink_count_as_failures() {
    let (outcome, stats) = slow_sink_job(1_000);
    assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
    let expired: Vec<u64> = failures(&stats)
        .into_iter()
        .filter(|(_, f)| matches!(f, CheckpointFailure::Expired { .. }))
        .map(|(id, _)| id)
        .collect();
    assert!(!expired.is_empty(), "{stats:?}");
    assert!(completed_ids(&stats).iter().any(|&c| c > expired[0]));

    let (outcome, stats) = slow_sink_job(0);
    let (failure, message) = checkpoint_failure(outcome.unwrap_err());
    assert!(
        matches!(failure, CheckpointFailure::Expired { timeout_ms: 15 }),
        "{failure:?}"
    );
    assert!(
        message.contains("expired before all subtasks acknowledged"),
        "{message}"
    );
    assert!(
        message.contains("(1 failed in a row, 0 tolerated)"),
        "{message}"
    );
    assert!(failures(&stats)
        .iter()
        .any(|(_, f)| matches!(f, CheckpointFailure::Expired { .. })));
}

#[test]
fn a_checkpoint_directory_that_is_a_file_stops_the_job_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let root = file.join("checkpoints");
    let env = env_with(1, &root, manual(CheckpointConfig::default()));
    let seen = Recorder::default();
    env.add_source(Feed::new(vec![vec![ids(0..5)]]))
        .uid("feed")
        .add_sink(seen.clone())
        .uid("sink");
    let error =
        in_system(async { env.start("unwritable").await.err() }).expect("the job must not start");
    let message = error.to_string();
    assert!(matches!(error, JobError::InvalidJob(_)), "{error:?}");
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert!(message.contains("checkpoint directory"), "{message}");
    assert!(seen.records().is_empty(), "nothing ran");
    assert!(file.is_file());
}

#[test]
fn a_checkpoint_directory_that_breaks_while_the_job_runs_fails_checkpoints_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let config = CheckpointConfig {
        tolerable_failures: 2,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, &root, config);
    // Phase 1 follows the first snapshot: the source runs until then.
    let feed = Feed::new(vec![vec![ids(0..5), ids(5..10)]]);
    env.add_source(feed.clone())
        .uid("feed")
        .add_sink(Recorder::default())
        .uid("sink");
    let (outcome, stats, lineage_dir) = in_system(async {
        let mut client = env.start("unwritable").await.unwrap();
        // The job's checkpoint directory is replaced by a file.
        let lineage_dir = root.join(client.lineage());
        let _ = std::fs::remove_dir_all(&lineage_dir);
        std::fs::write(&lineage_dir, "not a directory").unwrap();
        feed.open_gate(1);
        let _ = client.trigger_checkpoint().await;
        let outcome = client.wait().await;
        (outcome, client.checkpoint_stats(), lineage_dir)
    });
    // The final checkpoint is retried until the failures are more than tolerated.
    let (_, message) = checkpoint_failure(outcome.unwrap_err());
    let path = lineage_dir.display().to_string();
    assert!(message.contains(&path), "{message}");
    assert!(message.contains("cannot create directory"), "{message}");
    assert!(
        message.contains("3 failed in a row, 2 tolerated"),
        "{message}"
    );
    let failed = failures(&stats);
    // The manual checkpoint and the final one may fail in either order.
    let ids: BTreeSet<u64> = failed.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]));
    assert!(
        failed.iter().all(|(_, f)| f.to_string().contains(&path)),
        "{failed:?}"
    );
    assert!(lineage_dir.is_file());
}

/// `Tally` keeps 1500 ids in one subtask: its state exceeds a 1 KiB limit,
/// the source's does not.
fn memory_job(limit: u64) -> (StreamEnv, Recorder) {
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(RestartStrategy::NoRestart);
    env.set_arbiters(2)
        .set_checkpoint_config(manual(CheckpointConfig::default()))
        .set_checkpoint_storage(StorageSpec::Memory {
            max_state_size: limit,
        });
    let sink = Recorder::default();
    env.add_source(Feed::new(vec![vec![ids(0..1500)]]))
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    (env, sink)
}

#[test]
fn in_memory_storage_refuses_a_state_larger_than_its_limit_naming_size_and_limit() {
    let (env, _) = memory_job(1024);
    let (_, message) = checkpoint_failure(in_system(env.execute("too-large")).unwrap_err());
    assert!(
        message.contains("exceeds the in-memory storage limit of 1024 bytes"),
        "{message}"
    );
    assert!(message.contains("for tally-0.state"), "{message}");
    let size: u64 = message
        .split("state of ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no size in {message}"));
    assert!(size > 1024, "{message}");

    // Under a large enough limit the same job checkpoints in memory.
    let (env, sink) = memory_job(1 << 20);
    let retained = in_system(async {
        let mut client = env.start("fits").await.unwrap();
        let result = client.wait().await.unwrap();
        assert_eq!(completed_ids(&result.checkpoints), vec![1]);
        client.retained_checkpoints().unwrap()
    });
    assert_eq!(retained.len(), 1);
    assert_eq!(retained[0].location, "memory:chk-1");
    assert!(retained[0].size > 1024);
    assert_eq!(sink.records(), ids(0..1500));
}

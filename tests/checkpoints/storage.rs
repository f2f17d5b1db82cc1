//! What checkpoints leave on disk: a corrupted state file is reported with a
//! checksum error naming it; a checkpoint without `_metadata` is not listed
//! and not found; `retained` keeps the newest checkpoints; cancellation
//! deletes or keeps them per `ExternalizedRetention`.

use std::collections::BTreeMap;
use std::future::Future;

use weir::runtime::checkpoint::layout::METADATA_FILE;
use weir::runtime::checkpoint::{CheckpointStorage, StateHandle, StorageError};
use weir::{CheckpointConfig, ExternalizedRetention, JobClient, JobError};

use crate::kit::{
    checkpoint_dirs, completed_ids, env_with, ids, in_system, manual, storage_of,
    three_checkpoints, until, Feed, Rec, Recorder, Tally,
};
use crate::reading::load;

#[test]
fn retained_checkpoints_are_the_newest_ones_with_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 2);
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2, 3]);
    let job_dir = dir.path().join(&result.job_id);
    assert_eq!(
        checkpoint_dirs(&job_dir),
        BTreeMap::from([(2, true), (3, true)])
    );
    let listed = storage_of(dir.path(), &result.job_id).list().unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 3]);
    assert!(listed.iter().all(|c| c.size > 0 && !c.savepoint));
    assert_eq!(
        listed[1].location,
        job_dir.join("chk-3").display().to_string()
    );
}

#[test]
fn a_corrupted_state_file_is_reported_and_a_checkpoint_without_metadata_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 2);
    let storage = storage_of(dir.path(), &result.job_id);
    let chk = load(&storage, 3);
    let part = chk
        .meta
        .subtasks
        .iter()
        .find(|s| s.operators[0] == "tally")
        .unwrap();
    let StateHandle::File { name, .. } = &part.handle else {
        panic!("{:?}", part.handle)
    };
    let path = dir.path().join(&result.job_id).join("chk-3").join(name);

    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let error = storage.read_state(3, &part.handle).unwrap_err();
    assert!(matches!(error, StorageError::Format(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("checksum mismatch"), "{message}");

    // Truncated: also reported, naming the file.
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = storage.read_state(3, &part.handle).unwrap_err().to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("truncated"), "{message}");

    // Without `_metadata`, checkpoint 2 does not exist (its directory stays).
    let chk2 = dir.path().join(&result.job_id).join("chk-2");
    std::fs::remove_file(chk2.join(METADATA_FILE)).unwrap();
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, vec![3]);
    let error = storage.read_metadata(2).unwrap_err();
    assert!(matches!(error, StorageError::NotFound(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("no complete checkpoint"), "{message}");
    assert!(message.contains(&chk2.display().to_string()), "{message}");
    assert!(message.contains("no _metadata"), "{message}");
    assert!(chk2.is_dir());
}

/// Where a test runs its job: in an actix System on the test's thread (the
/// supervisor and coordinator run there), or from a plain tokio runtime,
/// where the job brings a System of its own on a thread of its own.
#[derive(Clone, Copy, Debug)]
enum Host {
    TestSystem,
    OwnSystem,
}

fn run_on<F: Future>(host: Host, f: F) -> F::Output {
    match host {
        Host::TestSystem => in_system(f),
        Host::OwnSystem => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f),
    }
}

/// An endless job (phase 1 never released) with two completed checkpoints,
/// canceled: what stays on disk once `wait` returned.
fn canceled_with(retention: ExternalizedRetention, host: Host) -> BTreeMap<u64, bool> {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20)]]);
    let config = CheckpointConfig {
        retained: 2,
        retention,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    env.add_source(feed.clone())
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(Recorder::default())
        .uid("sink");
    run_on(host, async {
        let mut client: JobClient = env.start("canceled").await.unwrap();
        until("phase 0 out", || feed.phases_done(0) >= 1).await;
        for _ in 0..2 {
            client.trigger_checkpoint().await.unwrap();
        }
        let job_dir = dir.path().join(client.job_id());
        assert_eq!(
            checkpoint_dirs(&job_dir),
            BTreeMap::from([(1, true), (2, true)])
        );
        client.cancel();
        let outcome = client.wait().await;
        assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
        checkpoint_dirs(&job_dir)
    })
}

#[test]
fn retained_checkpoints_are_kept_when_the_job_is_canceled_with_retain_on_cancellation() {
    assert_eq!(
        canceled_with(
            ExternalizedRetention::RetainOnCancellation,
            Host::TestSystem
        ),
        BTreeMap::from([(1, true), (2, true)])
    );
}

#[test]
fn retained_checkpoints_are_kept_on_cancellation_also_when_the_job_has_its_own_system() {
    assert_eq!(
        canceled_with(ExternalizedRetention::RetainOnCancellation, Host::OwnSystem),
        BTreeMap::from([(1, true), (2, true)])
    );
}

#[test]
fn retained_checkpoints_are_deleted_when_the_job_is_canceled_with_delete_on_cancellation() {
    assert_eq!(
        canceled_with(
            ExternalizedRetention::DeleteOnCancellation,
            Host::TestSystem
        ),
        BTreeMap::new()
    );
}

/// The same from a plain tokio runtime, where the coordinator runs on the
/// job's own thread: when `wait` returns, the checkpoints are still there
/// (they are deleted a moment later).
#[test]
fn retained_checkpoints_are_deleted_on_cancellation_also_when_the_job_has_its_own_system() {
    assert_eq!(
        canceled_with(ExternalizedRetention::DeleteOnCancellation, Host::OwnSystem),
        BTreeMap::new()
    );
}

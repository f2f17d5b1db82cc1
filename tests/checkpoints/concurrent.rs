//! Concurrent checkpoints: a source feeding a keyed operator through two
//! channels per subtask with periodic, concurrent checkpoints
//! (max_concurrent 3), where every completed checkpoint is checked against
//! the source's position, in every mode. A checkpoint overtaken by a newer
//! barrier is aborted as subsumed, not counted as a failure.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use weir::runtime::checkpoint::CheckpointStorage;
use weir::{CheckpointConfig, CheckpointFailure, CheckpointMode, CheckpointStats, JobError};

use crate::content::{Mode, A0, A1, B0, B1};
use crate::kit::{
    completed_ids, concat, env_with, failures, ids, in_system, manual, storage_of, ticker_id,
    until, Feed, Rec, Recorder, Tally, Ticker, Valve,
};
use crate::reading::load;

/// Source (p=1) → rebalance → pass-through map (p=2) → keyed `Tally` (p=3)
/// → `Recorder` (chained), so every `Tally` subtask has two input channels;
/// periodic checkpoints every 2 ms, up to 3 at once. Once the source was told
/// of 5 completed checkpoints the job is canceled (retaining its
/// checkpoints), and every completed checkpoint is checked against the
/// source's position: it holds exactly (aligned; unaligned with its channel
/// state) or at least (at-least-once) the records emitted before it.
/// No failure is tolerated: unaligned and at-least-once, a newer barrier
/// overtaking an older checkpoint on one channel aborts that one as
/// subsumed, which is not a failure (see
/// [`a_checkpoint_overtaken_by_a_newer_barrier_is_not_a_failure`]).
fn periodic(mode: Mode) -> (Vec<CheckpointStats>, Recorder) {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        interval: Some(Duration::from_millis(2)),
        max_concurrent: 3,
        retained: 1_000,
        timeout: Duration::from_secs(20),
        unaligned: mode == Mode::Unaligned,
        mode: if mode == Mode::AtLeastOnce {
            CheckpointMode::AtLeastOnce
        } else {
            CheckpointMode::ExactlyOnce
        },
        ..CheckpointConfig::default()
    };
    let sink = Recorder::slow(10, Duration::from_millis(1));
    let ticker = Ticker::default();
    let env = env_with(3, dir.path(), config);
    env.add_source(ticker.clone())
        .set_parallelism(1)
        .uid("ticker")
        .rebalance()
        .map(|r: Rec| r)
        .set_parallelism(2)
        .uid("pass")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let (stats, job_id) = in_system(async {
        let mut client = env.start(&format!("periodic-{mode:?}")).await.unwrap();
        until("5 completed checkpoints", || ticker.completions() >= 5).await;
        client.cancel();
        let outcome = client.wait().await;
        assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
        (client.checkpoint_stats(), client.job_id().to_string())
    });
    let storage = storage_of(dir.path(), &job_id);

    let completed = completed_ids(&stats);
    assert!(completed.len() >= 5, "{completed:?}");
    assert!(
        completed.windows(2).all(|w| w[0] < w[1]),
        "completed in increasing order: {completed:?}"
    );
    let all: BTreeSet<u64> = stats.iter().map(|s| s.id).collect();
    assert_eq!(all.len(), stats.len(), "each checkpoint ends once");
    for (id, failure) in failures(&stats) {
        assert_eq!(failure, CheckpointFailure::Subsumed, "checkpoint {id}");
    }
    for s in stats.iter().filter(|s| s.failure.is_none()) {
        assert_eq!(s.unaligned, mode == Mode::Unaligned, "{s:?}");
    }
    let listed: Vec<u64> = storage.list().unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, completed, "every completed checkpoint is retained");
    // Sinks are told of completed checkpoints only, in order.
    for (subtask, notified) in sink.completed() {
        assert!(notified.windows(2).all(|w| w[0] < w[1]), "{notified:?}");
        assert!(
            notified.iter().all(|id| completed.contains(id)),
            "sink subtask {subtask}: {notified:?} vs {completed:?}"
        );
    }

    for &id in &completed {
        let chk = load(&storage, id);
        let position = chk.positions("ticker")[&0];
        let expected: Vec<u64> = (0..position).map(|n| ticker_id(0, n)).collect();
        let in_state = chk.tallied("tally");
        match mode {
            Mode::Aligned => {
                assert_eq!(in_state, expected, "checkpoint {id}");
                assert!(!chk.has_channel_state());
            }
            Mode::Unaligned => {
                let mut union = [in_state, chk.in_flight()].concat();
                union.sort_unstable();
                assert_eq!(union, expected, "checkpoint {id}");
            }
            Mode::AtLeastOnce => {
                let set: BTreeSet<u64> = in_state.iter().copied().collect();
                assert_eq!(set.len(), in_state.len(), "checkpoint {id}: a record twice");
                assert!(
                    expected.iter().all(|id| set.contains(id)),
                    "checkpoint {id} misses records before its barriers"
                );
            }
        }
    }
    (stats, sink)
}

#[test]
fn concurrent_periodic_aligned_checkpoints_are_each_consistent_with_the_source_position() {
    periodic(Mode::Aligned);
}

#[test]
fn concurrent_periodic_unaligned_checkpoints_are_each_consistent_with_the_source_position() {
    periodic(Mode::Unaligned);
}

#[test]
fn concurrent_periodic_at_least_once_checkpoints_hold_at_least_the_records_before_them() {
    periodic(Mode::AtLeastOnce);
}

/// At-least-once, the topology of [`valve_job`] with a third phase of A
/// (A2, released behind A's second barrier): checkpoints 1 and 2 are
/// triggered back to back, and the valve opens only once `Tally` processed an
/// A2 record, so `Tally` sees barrier 2 on A's channel before barrier 1
/// arrived through the valve. Checkpoint 1 is overtaken: as in Flink
/// (`CHECKPOINT_DECLINED_SUBSUMED`, ignored by the failure manager; an
/// at-least-once barrier tracker even keeps several checkpoints pending),
/// that must not count as a failed checkpoint, so the job runs on with no
/// failure tolerated.
#[test]
fn a_checkpoint_overtaken_by_a_newer_barrier_is_not_a_failure() {
    const A2: Range<u64> = 200..220;
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let a = Feed::new(vec![vec![ids(A0), ids(A1), ids(A2)]]).released_by_snapshots();
    let b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let mut tally = Tally::new();
    tally.on_id = Some((A2, valve.clone()));
    let config = CheckpointConfig {
        mode: CheckpointMode::AtLeastOnce,
        ..manual(CheckpointConfig::default())
    };
    let sink = Recorder::default();
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1).set_channel_credits(1);
    let through_valve = env
        .add_source(b.clone())
        .uid("b")
        .rebalance()
        .transform(
            "Valve",
            Valve {
                open: valve.clone(),
                subtask: 0,
            },
        )
        .set_parallelism(2)
        .uid("valve");
    env.add_source(a.clone())
        .uid("a")
        .union(through_valve)
        .key_by(|r: &Rec| r.0)
        .process(tally)
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let (first, second, outcome, stats) = in_system(async {
        let mut client = env.start("overtaken").await.unwrap();
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let (first, second) =
            tokio::join!(client.trigger_checkpoint(), client.trigger_checkpoint());
        b.open_gate(1);
        let outcome = client.wait().await;
        (first, second, outcome, client.checkpoint_stats())
    });
    let failed = failures(&stats);
    let result = outcome.unwrap_or_else(|e| panic!("{e}; failures: {failed:?}"));
    assert_eq!(second.unwrap().id, 2);
    if let Err(e) = first {
        assert!(e.to_string().contains("subsumed"), "{e}");
    }
    assert!(completed_ids(&result.checkpoints).ends_with(&[2, 3]));
    assert_eq!(
        sink.records(),
        concat(&[&ids(A0), &ids(A1), &ids(A2), &ids(B0), &ids(B1)])
    );
}

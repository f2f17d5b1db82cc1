//! The final checkpoint: a bounded job ends with a checkpoint taken after
//! all input ended, holding everything; sinks get `notify_checkpoint_complete`
//! for it after `finish`, and it is the last completed checkpoint — also
//! when a source ends before the others, when a checkpoint reaches a source
//! while it drains, and with periodic checkpoints racing the sources' end.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use weir::{CheckpointConfig, CheckpointFailure};

use crate::kit::{
    completed_ids, env_with, failures, ids, in_system, manual, storage_of, until, Event, Feed, Rec,
    Recorder, Tally, Ticker, Valve,
};
use crate::reading::load;

/// A bounded job without periodic checkpoints still ends with one: taken
/// after every input ended, holding everything, and notified to the sinks
/// (after their `finish`) before they close.
#[test]
fn a_bounded_job_ends_with_a_final_checkpoint_that_the_sinks_are_notified_of() {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..30)]]);
    let sink = Recorder::default();
    let env = env_with(2, dir.path(), manual(CheckpointConfig::default()));
    env.add_source(feed)
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");
    let result = in_system(env.execute("final")).unwrap();

    assert_eq!(completed_ids(&result.checkpoints), vec![1]);
    let chk = load(&storage_of(dir.path(), &result.job_id), 1);
    assert_eq!(chk.tallied("tally"), ids(0..30));
    assert_eq!(chk.positions("feed"), BTreeMap::from([(0, 30)]));
    let events = sink.events();
    assert_eq!(events.len(), 2, "both sink subtasks ran");
    for (subtask, events) in events {
        let tail: Vec<&Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::Record(_)))
            .collect();
        assert_eq!(
            tail,
            vec![&Event::Finish, &Event::Snapshot(1), &Event::Complete(1)],
            "sink subtask {subtask}"
        );
    }
}

/// Source A ends at once while source B still runs; a checkpoint taken in
/// between is not the job's final one: the job must still finish with a
/// completed final checkpoint once B ends.
#[test]
fn a_source_that_ends_early_does_not_stop_the_final_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = Feed::new(vec![vec![ids(0..5)]]);
    let b = Feed::new(vec![vec![ids(100..105), ids(200..205)]]);
    let sink = Recorder::default();
    let config = CheckpointConfig {
        timeout: Duration::from_secs(2),
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    let b_stream = env.add_source(b.clone()).uid("b");
    env.add_source(a.clone())
        .uid("a")
        .union(b_stream)
        .add_sink(sink.clone())
        .uid("sink");
    let outcome = in_system(async {
        let mut client = env.start("early-end").await.unwrap();
        until("A done and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        b.open_gate(1);
        client.wait().await
    });
    let result = outcome.expect("the job finishes");
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
    assert_eq!(sink.completed()[&0].last(), Some(&2));
    assert_eq!(sink.records().len(), 15);
}

/// One source, one sink, and nothing else going on: the source emits its
/// records and ends, but cannot deliver the last one (valve subtask 1 holds
/// the channel), so it is still draining when checkpoint 1 reaches it. That
/// checkpoint is not the job's final one (the coordinator has not heard that
/// the source finished): the job must end with the final checkpoint 2, and
/// the source and the sink must be told it completed. (The sink takes its
/// snapshot of checkpoint 2 slowly, so that checkpoint 1 completes first.)
#[test]
fn a_checkpoint_taken_while_a_source_drains_is_not_its_final_one() {
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let mut feed = Feed::new(vec![vec![ids(0..6)]]);
    feed.on_snapshot = Some(valve.clone());
    let sink = Recorder::default();
    sink.slow_snapshots
        .lock()
        .unwrap()
        .insert(2, Duration::from_millis(100));
    let config = CheckpointConfig {
        timeout: Duration::from_secs(2),
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(1, dir.path(), config);
    env.set_batch_size(1).set_channel_credits(1);
    env.add_source(feed.clone())
        .uid("feed")
        .rebalance()
        .transform(
            "Valve",
            Valve {
                open: valve.clone(),
                subtask: 0,
            },
        )
        .set_parallelism(2)
        .uid("valve")
        .add_sink(sink.clone())
        .set_parallelism(1)
        .uid("sink");
    let outcome = in_system(async {
        let mut client = env.start("draining").await.unwrap();
        until("every record emitted", || feed.phases_done(0) >= 1).await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        client.wait().await
    });
    let result = outcome.expect("the job finishes");
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
    assert_eq!(*feed.completed.lock().unwrap(), vec![1, 2], "the source");
    assert_eq!(
        sink.completed(),
        BTreeMap::from([(0, vec![1, 2])]),
        "the sink"
    );
    assert_eq!(sink.records(), ids(0..6));
}

/// Parallel sources (p=2) → keyed `Tally` (p=3) → `Recorder`, periodic
/// checkpoints every 2 ms (up to 3 at once); each source subtask ends once it
/// was told of 5 completed checkpoints, so periodic checkpoints keep reaching
/// the sources while they finish, at different times. Whatever the
/// interleaving, the job ends with its final checkpoint: the last completed
/// one, listed in the `JobResult`, told to every source and sink subtask, and
/// holding every record. Three runs, to meet more interleavings.
#[test]
fn a_bounded_job_with_periodic_checkpoints_ends_with_its_final_checkpoint() {
    for run in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            interval: Some(Duration::from_millis(2)),
            max_concurrent: 3,
            retained: 1_000,
            timeout: Duration::from_secs(20),
            ..CheckpointConfig::default()
        };
        let ticker = Ticker {
            finish_after: Some(5),
            ..Ticker::default()
        };
        let sink = Recorder::default();
        let env = env_with(3, dir.path(), config);
        env.add_source(ticker.clone())
            .set_parallelism(2)
            .uid("ticker")
            .key_by(|r: &Rec| r.0)
            .process(Tally::new())
            .uid("tally")
            .add_sink(sink.clone())
            .uid("sink");
        let (outcome, stats) = in_system(async {
            let mut client = env.start("bounded-periodic").await.unwrap();
            let outcome = client.wait().await;
            (outcome, client.checkpoint_stats())
        });
        let result = outcome.unwrap_or_else(|e| panic!("run {run}: {e}"));
        assert_eq!(result.checkpoints, stats, "run {run}");
        for (id, failure) in failures(&stats) {
            assert_eq!(
                failure,
                CheckpointFailure::Subsumed,
                "run {run}, checkpoint {id}"
            );
        }
        let last = *completed_ids(&stats).last().unwrap();
        let told = ticker.notified.lock().unwrap().clone();
        assert_eq!(told.len(), 2, "run {run}");
        for (subtask, notified) in told {
            assert_eq!(notified.last(), Some(&last), "run {run}, source {subtask}");
        }
        assert_eq!(sink.completed().len(), 3, "run {run}");
        for (subtask, notified) in sink.completed() {
            assert_eq!(notified.last(), Some(&last), "run {run}, sink {subtask}");
        }
        let chk = load(&storage_of(dir.path(), &result.job_id), last);
        let records = sink.records();
        assert_eq!(chk.tallied("tally"), records, "run {run}");
        let emitted: u64 = chk.positions("ticker").values().sum();
        assert_eq!(emitted, records.len() as u64, "run {run}");
    }
}

//! Checkpoint statistics: ids increase, sizes are positive, every subtask
//! reports, and the unaligned flag follows the configuration.

use std::collections::BTreeSet;

use weir::{CheckpointConfig, CheckpointStats};

use crate::kit::{env_with, ids, in_system, manual, until, Feed, Rec, Recorder, Tally};

/// Source (p=1) → `Tally` (p=3) → sink: 2 manual checkpoints and the final one.
fn stats_job(unaligned: bool) -> (Vec<CheckpointStats>, Vec<CheckpointStats>) {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(vec![vec![ids(0..10), ids(10..20), ids(20..30)]]);
    let config = CheckpointConfig {
        unaligned,
        ..manual(CheckpointConfig::default())
    };
    let env = env_with(3, dir.path(), config);
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(Recorder::default())
        .uid("sink");
    in_system(async {
        let mut client = env.start("stats").await.unwrap();
        let mut triggered = Vec::new();
        for phase in 0..2 {
            until("a phase out", || feed.phases_done(0) > phase).await;
            triggered.push(client.trigger_checkpoint().await.unwrap());
            feed.open_gate(phase + 1);
        }
        let result = client.wait().await.unwrap();
        assert_eq!(result.checkpoints, client.checkpoint_stats());
        (triggered, result.checkpoints)
    })
}

fn check_stats(unaligned: bool) {
    let (triggered, all) = stats_job(unaligned);
    assert_eq!(all.iter().map(|s| s.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        &all[..2],
        &triggered[..],
        "trigger_checkpoint returns the stats"
    );
    assert!(all
        .windows(2)
        .all(|w| w[0].trigger_time_ms <= w[1].trigger_time_ms));
    for stats in &all {
        assert_eq!(stats.failure, None);
        assert!(!stats.savepoint);
        assert!(stats.state_bytes > 0, "{stats:?}");
        // One source subtask and three Tally subtasks.
        let mut tasks: Vec<usize> = stats.subtasks.iter().map(|(_, i, _)| *i).collect();
        tasks.sort_unstable();
        assert_eq!(tasks, vec![0, 0, 1, 2], "{stats:?}");
        assert!(stats.subtasks.iter().all(|(_, _, s)| s.state_bytes > 0));
        let sum: u64 = stats.subtasks.iter().map(|(_, _, s)| s.state_bytes).sum();
        assert_eq!(sum, stats.state_bytes);
        let in_flight: u64 = stats
            .subtasks
            .iter()
            .map(|(_, _, s)| s.in_flight_bytes)
            .sum();
        assert_eq!(in_flight, stats.in_flight_bytes);
        let names: BTreeSet<&str> = stats.subtasks.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // The final checkpoint is always aligned.
        let expect_unaligned = unaligned && stats.id != 3;
        assert_eq!(stats.unaligned, expect_unaligned, "{stats:?}");
        assert!(stats
            .subtasks
            .iter()
            .all(|(_, _, s)| s.unaligned == expect_unaligned));
        if !expect_unaligned {
            assert_eq!(stats.in_flight_bytes, 0);
        }
    }
    if !unaligned {
        // The keyed state grows from checkpoint to checkpoint (unaligned, the
        // bytes of captured in-flight records count too, so they may not).
        assert!(
            all.windows(2).all(|w| w[0].state_bytes < w[1].state_bytes),
            "{all:#?}"
        );
    }
}

#[test]
fn checkpoint_statistics_of_aligned_checkpoints() {
    check_stats(false);
}

#[test]
fn checkpoint_statistics_of_unaligned_checkpoints() {
    check_stats(true);
}

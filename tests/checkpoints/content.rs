//! What a checkpoint holds. Aligned (default): every record before its
//! barrier and none after, also when the barrier of one input is held up
//! behind a slow channel (the other input's later records are blocked);
//! unaligned: every record before the barrier is exactly once in operator
//! state or in channel state (input or output side), none after, and records
//! a barrier overtook are really captured; at-least-once: every record before
//! the barrier is reflected, and records after an early barrier may be too
//! (shown deterministically). Topologies: one source into a keyed operator of
//! parallelism 3, a union of two sources (one through a held-up channel:
//! [`valve_job`]), and a keyed/broadcast two-input operator.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use weir::runtime::checkpoint::metadata::ChannelState;
use weir::state::MapStateDescriptor;
use weir::{CheckpointConfig, CheckpointMode, CheckpointStats, JobResult};

use crate::kit::{
    completed_ids, concat, env_with, ids, in_system, manual, sorted, split, storage_of, until,
    Feed, Pair, Rec, Recorder, Tally, Valve,
};
use crate::reading::{channel_records, load, Loaded};

/// Source (p=1) → keyed `Tally` (p=3) → `Recorder` (chained), manual
/// checkpoints between phases: each holds exactly the phases before it.
#[test]
fn an_aligned_checkpoint_holds_exactly_the_records_before_its_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let phases = [ids(0..20), ids(100..120), ids(200..220)];
    let feed = Feed::new(vec![phases.to_vec()]);
    let sink = Recorder::default();
    let env = env_with(3, dir.path(), manual(CheckpointConfig::default()));
    env.add_source(feed.clone())
        .set_parallelism(1)
        .uid("feed")
        .key_by(|r: &Rec| r.0)
        .process(Tally::new())
        .uid("tally")
        .add_sink(sink.clone())
        .uid("sink");

    let (result, storage) = in_system(async {
        let mut client = env.start("aligned").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        for phase in 0..2 {
            until("a phase out", || feed.phases_done(0) > phase).await;
            let stats = client.trigger_checkpoint().await.unwrap();
            assert_eq!(stats.id, phase as u64 + 1);
            let chk = load(&storage, stats.id);
            let before: Vec<&[u64]> = phases[..=phase].iter().map(Vec::as_slice).collect();
            assert_eq!(
                chk.tallied("tally"),
                concat(&before),
                "checkpoint {}",
                stats.id
            );
            assert_eq!(
                chk.positions("feed"),
                BTreeMap::from([(0, 20 * (phase as u64 + 1))])
            );
            assert!(
                !chk.has_channel_state(),
                "aligned checkpoints capture no channel state"
            );
            feed.open_gate(phase + 1);
        }
        (client.wait().await.unwrap(), storage)
    });

    // The final checkpoint, after all input ended, holds everything.
    assert_eq!(completed_ids(&result.checkpoints), vec![1, 2, 3]);
    let last = load(&storage, 3);
    assert_eq!(
        last.tallied("tally"),
        concat(&[&phases[0], &phases[1], &phases[2]])
    );
    assert_eq!(last.positions("feed"), BTreeMap::from([(0, 60)]));
    assert_eq!(
        sink.records(),
        concat(&[&phases[0], &phases[1], &phases[2]]),
        "every record reaches the sink exactly once"
    );
}

/// How the valve is opened in [`valve_job`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    Aligned,
    Unaligned,
    AtLeastOnce,
}

/// What [`valve_job`] found in checkpoint 1.
struct ValveRun {
    chk: Loaded,
    stats: CheckpointStats,
    result: JobResult,
    sink: Recorder,
    /// Where checkpoint 1 is.
    chk_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

pub(crate) const A0: Range<u64> = 0..20;
pub(crate) const A1: Range<u64> = 100..120;
pub(crate) const B0: Range<u64> = 1000..1006;
pub(crate) const B1: Range<u64> = 1100..1106;

/// Two sources into one keyed subtask, one of them through a held-up channel:
///
/// ```text
/// A (p=1): A0, then A1 right behind its barrier ───────────────┐
/// B (p=1): B0, then B1 after checkpoint 1 ── rebalance → Valve (p=2) ─┴→ Tally (p=1) → Recorder
/// ```
///
/// With one record per batch and one credit per channel, valve subtask 1
/// holds B's second record, so B's sixth record waits in B's output for
/// credit and B's barrier queues behind it. The valve opens: when A has
/// emitted an A1 record (aligned: the A channel is blocked meanwhile), at
/// B's snapshot (unaligned: B's barrier overtakes the waiting record), or
/// when `Tally` processed an A1 record (at-least-once: nothing blocks, so the
/// snapshot at the last barrier holds it).
fn valve_job(mode: Mode) -> ValveRun {
    let dir = tempfile::tempdir().unwrap();
    let valve = Arc::new(AtomicBool::new(false));
    let mut a = Feed::new(vec![vec![ids(A0), ids(A1)]]).released_by_snapshots();
    let mut b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let mut tally = Tally::new();
    let config = match mode {
        Mode::Aligned => {
            a.on_emitted = Some((A0.end - A0.start, valve.clone()));
            CheckpointConfig::default()
        }
        Mode::Unaligned => {
            b.on_snapshot = Some(valve.clone());
            CheckpointConfig {
                unaligned: true,
                ..CheckpointConfig::default()
            }
        }
        Mode::AtLeastOnce => {
            tally.on_id = Some((A1, valve.clone()));
            CheckpointConfig {
                mode: CheckpointMode::AtLeastOnce,
                ..CheckpointConfig::default()
            }
        }
    };
    let sink = Recorder::default();
    let env = env_with(1, dir.path(), manual(config));
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

    let (chk, stats, result) = in_system(async {
        let mut client = env.start(&format!("valve-{mode:?}")).await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.id, 1);
        let chk = load(&storage, 1);
        b.open_gate(1);
        let result = client.wait().await.unwrap();
        (chk, stats, result)
    });
    assert!(valve.load(Ordering::SeqCst));
    assert_eq!(
        sink.records(),
        concat(&[&ids(A0), &ids(A1), &ids(B0), &ids(B1)]),
        "every record reaches the sink exactly once"
    );
    assert_eq!(chk.positions("a"), BTreeMap::from([(0, 20)]));
    assert_eq!(chk.positions("b"), BTreeMap::from([(0, 6)]));
    let chk_dir = storage_of(dir.path(), &result.job_id)
        .paths()
        .checkpoint_dir(1);
    ValveRun {
        chk,
        stats,
        result,
        sink,
        chk_dir,
        _dir: dir,
    }
}

#[test]
fn an_aligned_checkpoint_blocks_the_early_channel_until_every_barrier_arrived() {
    let run = valve_job(Mode::Aligned);
    // A emitted an A1 record before the keyed subtask could snapshot (the
    // valve opened only then), yet the snapshot holds none of A1.
    assert_eq!(run.chk.tallied("tally"), concat(&[&ids(A0), &ids(B0)]));
    assert!(!run.chk.has_channel_state());
    assert!(!run.stats.unaligned);
    assert_eq!(completed_ids(&run.result.checkpoints), vec![1, 2]);
}

#[test]
fn an_unaligned_checkpoint_holds_every_record_before_its_barrier_once_in_operator_or_channel_state()
{
    let run = valve_job(Mode::Unaligned);
    let in_state = run.chk.tallied("tally");
    let in_flight = run.chk.in_flight();
    let mut union = [in_state.clone(), in_flight.clone()].concat();
    union.sort_unstable();
    assert_eq!(
        union,
        concat(&[&ids(A0), &ids(B0)]),
        "state {in_state:?} + in flight {in_flight:?}: each record before the barrier exactly once, none after"
    );
    // B's last B0 record waited for credit when B's barrier overtook it: it
    // is in B's output channel state, not (yet) in the keyed state.
    let b_out = channel_records(&run.chk.part("b", 0).output_channels);
    assert!(!b_out.is_empty(), "B's waiting record is captured");
    assert!(b_out.iter().all(|id| B0.contains(id)), "{b_out:?}");
    assert!(b_out.iter().all(|id| !in_state.contains(id)));
    assert!(run.stats.unaligned);
    assert!(run.stats.in_flight_bytes > 0);
    let in_flight_meta: u64 = run
        .chk
        .meta
        .subtasks
        .iter()
        .map(|s| s.in_flight_bytes)
        .sum();
    assert_eq!(in_flight_meta, run.stats.in_flight_bytes);
    // The final checkpoint is aligned, whatever the configuration.
    let last = run.result.checkpoints.last().unwrap();
    assert_eq!(
        (last.id, last.failure.clone(), last.unaligned),
        (2, None, false)
    );
}

#[test]
fn check_restore_refuses_an_unaligned_checkpoint_with_in_flight_records_at_another_parallelism() {
    let run = valve_job(Mode::Unaligned);
    assert!(run.stats.in_flight_bytes > 0);
    let plan_at = |valve_parallelism: usize| weir::JobPlan {
        job: run.chk.meta.job_name.clone(),
        operators: run
            .chk
            .meta
            .operators
            .iter()
            .map(|o| weir::runtime::restore::PlannedOperator {
                parallelism: if o.uid == "valve" {
                    valve_parallelism
                } else {
                    o.parallelism
                },
                ..o.clone()
            })
            .collect(),
        state_backend: Some("heap".into()),
        chains: Vec::new(),
        key_migrations: Default::default(),
    };
    let check = |plan: &weir::JobPlan| {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), serde_json::to_string(plan).unwrap()).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("check-restore")
            .arg(&run.chk_dir)
            .arg("--plan")
            .arg(file.path())
            .output()
            .unwrap()
    };
    let same = check(&plan_at(2));
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let rescaled = check(&plan_at(3));
    let text = String::from_utf8_lossy(&rescaled.stdout);
    assert_eq!(rescaled.status.code(), Some(1), "{text}");
    assert!(text.contains("IN-FLIGHT RECORDS"), "{text}");
    assert!(
        text.contains("checkpoint 1 is unaligned")
            && text.contains("`valve` runs at parallelism 3"),
        "{text}"
    );
    assert!(text.ends_with("restore NOT possible\n"), "{text}");
}

/// At-least-once only promises that every record before a barrier is
/// reflected: a subtask snapshots when the last barrier arrived, without
/// blocking the channels whose barrier came earlier, so records behind an
/// early barrier may be in the checkpoint too (and would be replayed after a
/// restore). Here that happens by construction.
#[test]
fn an_at_least_once_checkpoint_holds_every_record_before_its_barrier_and_maybe_later_ones() {
    let run = valve_job(Mode::AtLeastOnce);
    let in_state = run.chk.tallied("tally");
    let before: BTreeSet<u64> = ids(A0).into_iter().chain(ids(B0)).collect();
    let set: BTreeSet<u64> = in_state.iter().copied().collect();
    assert_eq!(
        set.len(),
        in_state.len(),
        "no record counted twice: {in_state:?}"
    );
    assert!(
        set.is_superset(&before),
        "missing {:?}",
        before.difference(&set)
    );
    let later: Vec<u64> = set.difference(&before).copied().collect();
    assert!(
        later.iter().all(|id| A1.contains(id)),
        "only records behind A's early barrier may be in it: {later:?}"
    );
    assert!(
        !later.is_empty(),
        "the A1 record that opened the valve is in it"
    );
    assert!(!run.chk.has_channel_state());
    assert!(!run.stats.unaligned);
    assert_eq!(run.sink.completed()[&0].last(), Some(&2));
}

/// A keyed main input and a broadcast input, each from its own source, into
/// a two-input operator of parallelism 2: per subtask, the broadcast side
/// holds B0 (every subtask sees every broadcast record); over all subtasks,
/// the keyed side holds A0 — in operator state or, unaligned, in channel
/// state — and never A1, which A emits right behind its barrier.
fn two_input(unaligned: bool) {
    let dir = tempfile::tempdir().unwrap();
    let a = Feed::new(vec![vec![ids(A0), ids(A1)]]).released_by_snapshots();
    let b = Feed::new(vec![vec![ids(B0), ids(B1)]]);
    let labels = MapStateDescriptor::<u64, u64>::new("labels");
    let sink = Recorder::default();
    let config = CheckpointConfig {
        unaligned,
        ..CheckpointConfig::default()
    };
    let env = env_with(2, dir.path(), manual(config));
    let side = env
        .add_source(b.clone())
        .set_parallelism(1)
        .uid("b")
        .broadcast_state(std::slice::from_ref(&labels));
    env.add_source(a.clone())
        .set_parallelism(1)
        .uid("a")
        .key_by(|r: &Rec| r.0)
        .connect(side)
        .process(Pair {
            labels,
            main: Vec::new(),
            side: Vec::new(),
        })
        .uid("pair")
        .add_sink(sink.clone())
        .uid("sink");

    let chk = in_system(async {
        let mut client = env.start("two-input").await.unwrap();
        let storage = storage_of(dir.path(), client.job_id());
        until("A0 and B0 out", || {
            a.phases_done(0) >= 1 && b.phases_done(0) >= 1
        })
        .await;
        let stats = client.trigger_checkpoint().await.unwrap();
        assert_eq!(stats.unaligned, unaligned);
        let chk = load(&storage, stats.id);
        b.open_gate(1);
        let result = client.wait().await.unwrap();
        assert_eq!(completed_ids(&result.checkpoints), vec![1, 2]);
        chk
    });
    assert_eq!(sink.records(), concat(&[&ids(A0), &ids(A1)]));

    let is_a = |id: &u64| *id < 1000;
    let mut main = Vec::new();
    let a_out = chk.part("a", 0);
    main.extend(channel_records(&a_out.output_channels));
    let b_out = chk.part("b", 0);
    for (subtask, raw) in chk.raw("pair") {
        let (m, s) = raw.split_once('|').unwrap();
        main.extend(split(m));
        let input = channel_records(&chk.part("pair", subtask).input_channels);
        main.extend(input.iter().copied().filter(is_a));
        let mut side: Vec<u64> = split(s);
        side.extend(input.iter().copied().filter(|id| !is_a(id)));
        let to_this: Vec<ChannelState> = b_out
            .output_channels
            .iter()
            .filter(|c| c.channel == subtask)
            .cloned()
            .collect();
        side.extend(channel_records(&to_this));
        assert_eq!(sorted(side), ids(B0), "broadcast side of subtask {subtask}");
    }
    assert_eq!(sorted(main), ids(A0), "keyed side over all subtasks");
    if !unaligned {
        assert!(!chk.has_channel_state());
    }
}

#[test]
fn a_two_input_operator_checkpoints_both_inputs_at_their_barriers_aligned() {
    two_input(false);
}

#[test]
fn a_two_input_operator_checkpoints_both_inputs_at_their_barriers_unaligned() {
    two_input(true);
}

//! Keyed state and timers through snapshots and changes of parallelism.
//!
//! - **rescaling**: [`Everything`] keeps every kind of keyed state and both
//!   kinds of timers; it runs at parallelism 1, is snapshotted, redistributed to
//!   3 subtasks ([`redistribute`]), runs on (one subtask untouched), is
//!   redistributed to 2, and every key's state continues exactly where it was
//!   while every timer fires once, at its owner;
//! - **snapshots** hold the state as of their synchronous part, whatever the
//!   function changes before the asynchronous part runs (copy-on-write), also
//!   when snapshots overlap, finish out of order or are abandoned.
//!
//! The tests are plain functions: `main.rs` runs each of them once per
//! backend (`every_backend!`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir::keys::{key_group, KeyGroupRange};
use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::state::timers::TimeDomain;
use weir::state::{
    AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor, ReducingStateDescriptor,
    ValueStateDescriptor, ValueStateWithDefault,
};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::kit::{
    command_harness, run, AllStates, Average, CommandHarness, Count, Op, Reply, MAX_P,
};

/// The event-time timer every record of key `k` registers (always the same:
/// de-duplicated), and the processing-time one.
fn event_timer(key: u32) -> i64 {
    1_000 + i64::from(key)
}
fn processing_timer(key: u32) -> i64 {
    10_000_000 + i64::from(key)
}

/// What [`Everything`] emits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Report {
    /// After each record: every state of its key.
    State {
        key: u32,
        count: u64,
        values: Vec<u64>,
        /// Sum of the values per `value % 3`.
        by_residue: Vec<(u64, u64)>,
        total: u64,
        average: f64,
    },
    /// A timer fired, with the key's count at that moment.
    Fired {
        key: u32,
        timestamp: i64,
        event_time: bool,
        count: u64,
    },
}

/// Keeps every kind of keyed state and registers both kinds of timers.
#[derive(Clone)]
struct Everything {
    count: ValueStateWithDefault<u64>,
    values: ListStateDescriptor<u64>,
    by_residue: MapStateDescriptor<u64, u64>,
    total: ReducingStateDescriptor<u64>,
    average: AggregatingStateDescriptor<Average>,
}

impl Everything {
    fn new() -> Self {
        Everything {
            count: ValueStateDescriptor::new("count").with_default(0),
            values: ListStateDescriptor::new("values"),
            by_residue: MapStateDescriptor::new("by-residue"),
            total: ReducingStateDescriptor::new("total", |a, b| a + b),
            average: AggregatingStateDescriptor::new("average", Average),
        }
    }
}

impl Lifecycle for Everything {}

impl KeyedProcessFunction<u32, (u32, u64), Report> for Everything {
    fn process_element(
        &mut self,
        (key, value): (u32, u64),
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Report>,
    ) -> Result<(), UserError> {
        let count = ctx
            .state(&self.count)?
            .modify(|c| {
                *c += 1;
                *c
            })
            .unwrap_or_default();
        let mut values = ctx.state(&self.values)?;
        values.add(value);
        let values = values.get();
        let mut residues = ctx.state(&self.by_residue)?;
        let sum = residues.get(&(value % 3)).unwrap_or(0) + value;
        residues.put(value % 3, sum);
        let mut by_residue = residues.entries();
        by_residue.sort();
        let mut total = ctx.state(&self.total)?;
        total.add(value);
        let total = total.get().unwrap_or_default();
        let mut average = ctx.state(&self.average)?;
        average.add(value);
        let average = average.get().unwrap_or_default();
        ctx.register_event_time_timer(event_timer(key));
        ctx.register_processing_time_timer(processing_timer(key));
        out.collect(Report::State {
            key,
            count,
            values,
            by_residue,
            total,
            average,
        });
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Report>,
    ) -> Result<(), UserError> {
        let count = ctx.state(&self.count)?.value().unwrap_or_default();
        out.collect(Report::Fired {
            key: *ctx.current_key(),
            timestamp,
            event_time: ctx.time_domain() == Some(TimeDomain::EventTime),
            count,
        });
        Ok(())
    }
}

/// What [`Everything`] should report for `key` after `values`.
fn expected_state(key: u32, values: &[u64]) -> Report {
    let mut by_residue: BTreeMap<u64, u64> = BTreeMap::new();
    for v in values {
        *by_residue.entry(v % 3).or_default() += v;
    }
    let total: u64 = values.iter().sum();
    Report::State {
        key,
        count: values.len() as u64,
        values: values.to_vec(),
        by_residue: by_residue.into_iter().collect(),
        total,
        average: total as f64 / values.len() as f64,
    }
}

type Subtasks = Vec<OperatorHarness<(u32, u64), Report>>;

/// `parallelism` subtasks of [`Everything`], restored from `snapshots` if given.
fn everything(parallelism: usize, snapshots: Option<Vec<OperatorSnapshot>>) -> Subtasks {
    let mut snapshots = snapshots.map(|s| s.into_iter());
    (0..parallelism)
        .map(|i| {
            let mut h = OperatorHarness::keyed(
                Everything::new(),
                |r: &(u32, u64)| r.0,
                i,
                parallelism,
                MAX_P,
            );
            h.open(snapshots.as_mut().and_then(Iterator::next)).unwrap();
            h
        })
        .collect()
}

fn owner(key: u32, parallelism: usize) -> usize {
    KeyGroupRange::owner_of(key_group(&key, MAX_P), MAX_P, parallelism)
}

/// Sends each record to the subtask that owns its key (as `key_by` would) and
/// checks every report against the model, which it brings up to date.
fn feed(subtasks: &mut Subtasks, records: &[(u32, u64)], model: &mut BTreeMap<u32, Vec<u64>>) {
    let p = subtasks.len();
    for &(key, value) in records {
        let h = &mut subtasks[owner(key, p)];
        h.process(vec![(key, value)]).unwrap();
        let values = model.entry(key).or_default();
        values.push(value);
        assert_eq!(
            h.take_output(),
            vec![expected_state(key, values)],
            "key {key} at parallelism {p}"
        );
    }
}

/// Snapshots every subtask and redistributes the snapshots to `parallelism`.
fn rescale(subtasks: &mut Subtasks, checkpoint: u64, parallelism: usize) -> Subtasks {
    let old: Vec<OperatorSnapshot> = subtasks
        .iter_mut()
        .map(|h| h.snapshot(checkpoint).unwrap())
        .collect();
    everything(parallelism, Some(redistribute(&old, parallelism, MAX_P)))
}

const KEYS: u32 = 40;

pub(crate) fn keyed_state_and_timers_continue_across_parallelism_1_3_2() {
    let mut model: BTreeMap<u32, Vec<u64>> = BTreeMap::new();

    // Parallelism 1: key k gets k % 4 + 1 values.
    let mut p1 = everything(1, None);
    let first: Vec<(u32, u64)> = (0..4)
        .flat_map(|j| {
            (0..KEYS)
                .filter(move |k| j <= k % 4)
                .map(move |k| (k, u64::from(k) * 100 + j as u64))
        })
        .collect();
    feed(&mut p1, &first, &mut model);

    // Parallelism 3. Subtask 2 gets no record: its state must pass through
    // untouched (restored bytes that no descriptor opened) to the next snapshot.
    let mut p3 = rescale(&mut p1, 1, 3);
    assert!(
        (0..KEYS).any(|k| owner(k, 3) == 2),
        "subtask 2 of 3 owns some keys"
    );
    let second: Vec<(u32, u64)> = (0..KEYS)
        .filter(|&k| owner(k, 3) != 2 && k % 5 != 0)
        .map(|k| (k, u64::from(k) * 100 + 50))
        .collect();
    feed(&mut p3, &second, &mut model);
    for h in &mut p3 {
        h.watermark(999).unwrap();
        assert!(h.take_output().is_empty(), "no timer is due at 999");
    }

    // Parallelism 2: every key continues from all it has seen.
    let mut p2 = rescale(&mut p3, 2, 2);
    let third: Vec<(u32, u64)> = (0..KEYS).map(|k| (k, u64::from(k) * 100 + 70)).collect();
    feed(&mut p2, &third, &mut model);

    // Event-time timers (registered at parallelism 1 and again later, so
    // de-duplicated) fire once each, at their owner, in timestamp order, when
    // the watermark reaches them.
    let mut fired: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, h) in p2.iter_mut().enumerate() {
        h.watermark(event_timer(KEYS / 2)).unwrap();
        let early = h.take_output();
        h.watermark(event_timer(KEYS)).unwrap();
        let late = h.take_output();
        let owned: Vec<u32> = (0..KEYS).filter(|&k| owner(k, 2) == i).collect();
        let expected = |keys: &mut dyn Iterator<Item = &u32>| -> Vec<Report> {
            keys.map(|&key| Report::Fired {
                key,
                timestamp: event_timer(key),
                event_time: true,
                count: model[&key].len() as u64,
            })
            .collect()
        };
        assert_eq!(
            early,
            expected(&mut owned.iter().filter(|&&k| k <= KEYS / 2)),
            "subtask {i}"
        );
        assert_eq!(
            late,
            expected(&mut owned.iter().filter(|&&k| k > KEYS / 2)),
            "subtask {i}"
        );
        for key in owned {
            *fired.entry(key).or_default() += 1;
        }
    }
    assert_eq!(fired.len(), KEYS as usize);
    assert!(fired.values().all(|&n| n == 1));

    // Processing-time timers too, through the harness clock.
    for (i, h) in p2.iter_mut().enumerate() {
        let owned: Vec<u32> = (0..KEYS).filter(|&k| owner(k, 2) == i).collect();
        assert_eq!(
            h.next_processing_time(),
            owned.first().map(|&k| processing_timer(k)),
            "subtask {i}"
        );
        h.processing_time(processing_timer(KEYS)).unwrap();
        let expected: Vec<Report> = owned
            .iter()
            .map(|&key| Report::Fired {
                key,
                timestamp: processing_timer(key),
                event_time: false,
                count: model[&key].len() as u64,
            })
            .collect();
        assert_eq!(h.take_output(), expected, "subtask {i}");
        assert_eq!(h.next_processing_time(), None);
    }
}

pub(crate) fn a_snapshot_restored_at_the_same_parallelism_keeps_every_key() {
    let mut model = BTreeMap::new();
    let mut p2 = everything(2, None);
    let records: Vec<(u32, u64)> = (0..KEYS).map(|k| (k, u64::from(k))).collect();
    feed(&mut p2, &records, &mut model);
    let mut again = rescale(&mut p2, 1, 2);
    feed(&mut again, &records, &mut model);
    // The old instances are untouched by the restore of the new ones.
    feed(&mut p2, &[(0, 7)], &mut BTreeMap::from([(0, vec![0])]));
}

pub(crate) fn a_snapshot_holds_the_state_of_its_synchronous_part_whatever_changes_after() {
    let count = || Count(ValueStateDescriptor::<u64>::new("n"));
    let mut h = OperatorHarness::keyed(count(), |v: &u32| *v, 0, 1, MAX_P);
    h.open(None).unwrap();
    h.process(vec![1, 1, 2]).unwrap();
    let pending = h.begin_snapshot(1).unwrap();
    // Changed and new keys after the synchronous part: copy-on-write keeps
    // the snapshot's view.
    h.process(vec![1, 2, 3]).unwrap();
    assert_eq!(h.take_output(), vec![1, 2, 1, 3, 2, 1]);
    let snapshot = pending.finish().unwrap();

    let mut restored = OperatorHarness::keyed(count(), |v: &u32| *v, 0, 1, MAX_P);
    restored.open(Some(snapshot)).unwrap();
    restored.process(vec![1, 2, 3]).unwrap();
    assert_eq!(restored.take_output(), vec![3, 2, 1]);
}

/// A deterministic pseudo-random script of commands over keys `k0..k11` that
/// writes, changes in place and removes state of every kind.
fn random_commands(seed: u64, n: usize) -> Vec<(String, Op)> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    (0..n)
        .map(|_| {
            let key = format!("k{}", next(12));
            let v = next(50);
            let op = match next(16) {
                0 => Op::Update(v),
                1 => Op::ModifyAdd(v),
                2 => Op::ValueClear,
                3 => Op::DefaultModifyAdd(v),
                4 => Op::DefaultClear,
                5 => Op::ListAdd(v),
                6 => Op::ListAddAll(vec![v, v + 1]),
                7 => Op::ListUpdate(vec![v]),
                8 => Op::ListClear,
                9 => Op::MapPut(format!("u{}", v % 5), v),
                10 => Op::MapRemove(format!("u{}", v % 5)),
                11 => Op::MapClear,
                12 => Op::ReduceAdd(format!("{}", v % 10)),
                13 => Op::ReduceClear,
                14 => Op::AggAdd(v),
                _ => Op::AggClear,
            };
            (key, op)
        })
        .collect()
}

/// Every state of every key, as the command harness reads it.
fn read_all(h: &mut CommandHarness) -> Vec<Reply> {
    let mut replies = Vec::new();
    for k in 0..12 {
        replies.extend(run(
            h,
            &format!("k{k}"),
            vec![
                Op::Value,
                Op::Default,
                Op::ListGet,
                Op::MapView,
                Op::ReduceGet,
                Op::AggGet,
            ],
        ));
    }
    replies
}

pub(crate) fn overlapping_snapshots_each_restore_the_state_of_their_synchronous_part() {
    let mut h = command_harness();
    let step = |h: &mut CommandHarness, seed| {
        h.process(random_commands(seed, 300)).unwrap();
        h.take_output();
    };
    step(&mut h, 1);
    let first = h.begin_snapshot(1).unwrap();
    let at_first = read_all(&mut h);
    step(&mut h, 2);
    // A second snapshot while the first is still being written.
    let second = h.begin_snapshot(2).unwrap();
    let at_second = read_all(&mut h);
    step(&mut h, 3);
    // A third, abandoned (as a declined checkpoint would be).
    drop(h.begin_snapshot(3).unwrap());
    step(&mut h, 4);
    // Finished in reverse order, while the state keeps changing.
    let second = second.finish().unwrap();
    step(&mut h, 5);
    let first = first.finish().unwrap();
    step(&mut h, 6);
    let fourth = h.snapshot(4).unwrap();
    let at_fourth = read_all(&mut h);
    assert_ne!(at_first, at_second, "the script changes the state");
    assert_ne!(at_second, at_fourth);

    for (snapshot, expected, what) in [
        (first, at_first, "first"),
        (second, at_second, "second"),
        (fourth, at_fourth, "fourth"),
    ] {
        let mut restored = OperatorHarness::keyed(
            AllStates::new(),
            |r: &(String, Op)| r.0.clone(),
            0,
            1,
            MAX_P,
        );
        restored.open(Some(snapshot)).unwrap();
        assert_eq!(read_all(&mut restored), expected, "{what} snapshot");
    }
}

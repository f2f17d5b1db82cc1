//! Managed state: keyed state, timers and operator state, as a function sees
//! them, and how they survive a snapshot and a change of parallelism.
//!
//! Most tests drive one operator instance by hand with
//! [`OperatorHarness`], so that every record, watermark and processing time is
//! given in a known order and the tests are deterministic:
//! - **keyed state semantics**: [`AllStates`] turns each input command into one
//!   call on a value, list, map, reducing or aggregating state and replies with
//!   what it read, so each test is a script of commands and expected replies;
//!   state is per key; a name declared twice with different kinds or types
//!   fails with [`StateError::Mismatch`] naming the state, and a record of a
//!   key group the subtask does not own fails with
//!   [`StateError::ForeignKeyGroup`];
//! - **rescaling**: [`Everything`] keeps every kind of keyed state and both
//!   kinds of timers; it runs at parallelism 1, is snapshotted, redistributed to
//!   3 subtasks ([`redistribute`]), runs on (one subtask untouched), is
//!   redistributed to 2, and every key's state continues exactly where it was
//!   while every timer fires once, at its owner;
//! - **operator state**: [`Buffering`] keeps an even-split list, a union list
//!   and raw bytes; their redistribution from 1 to 3 to 2 subtasks is checked
//!   element by element;
//! - **timers**: firing order (timestamp, then registration), de-duplication
//!   per (key, timestamp), deletion, event time only at the watermark,
//!   processing time through the harness clock, and what the context says in
//!   `on_timer`;
//! - **snapshots** hold the state as of their synchronous part, whatever the
//!   function changes before the asynchronous part runs (copy-on-write), also
//!   when snapshots overlap, finish out of order or are abandoned;
//! - **whole jobs**: the keyed rolling aggregations (`reduce`, `sum`, `min`,
//!   `max`, `aggregate`) at parallelism 2 end with the expected value per key;
//!   a keyed function counts right at any parallelism and max parallelism,
//!   also with state well beyond the caches;
//!   processing-time timers fire by the wall clock while a job runs (a source
//!   waits for them before it ends), also when that source blocks on every
//!   empty poll (a source with nothing to give is polled again after a pause,
//!   so it does not starve the timers of its thread).
//!
//! The keyed-state tests are one suite run for every backend
//! ([`every_backend!`]): the heap, and with the feature `rocksdb` RocksDB with
//! full snapshots and RocksDB with incremental snapshots (whose harness
//! snapshots put their SST files in a shared directory, so that restores and
//! rescaling go through incremental handles).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir::keys::{key_group, KeyGroupRange};
use weir::ops::process::Process;
use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::source::{Source, SourceStatus};
use weir::state::timers::TimeDomain;
use weir::state::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateError, StateInitContext, StateSnapshotContext,
    ValueStateDescriptor, ValueStateWithDefault,
};
use weir::testing::OperatorHarness;
use weir::time::WatermarkStrategy;
use weir::{
    Collector, KeyedContext, KeyedProcessFunction, Lifecycle, ProcessContext, ProcessFunction,
    RuntimeContext, StreamEnv, UserError,
};

const MAX_P: usize = 128;

/// The average of the values added (an [`AggregateFunction`] whose
/// accumulator differs from its input and output).
#[derive(Clone)]
struct Average;

impl AggregateFunction for Average {
    type In = u64;
    type Acc = (u64, u64);
    type Out = f64;
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }

    fn add(&self, value: u64, acc: &mut (u64, u64)) {
        acc.0 += value;
        acc.1 += 1;
    }

    fn get_result(&self, acc: &(u64, u64)) -> f64 {
        acc.0 as f64 / acc.1 as f64
    }
}

// ------------------------------------------------------------ keyed semantics

/// One call on one state of the current key.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Op {
    // ValueState<u64> "plain" (no default) and "with-default" (default 10).
    Value,
    Default,
    Update(u64),
    DefaultUpdate(u64),
    /// `modify(|v| *v += n)` on "plain".
    ModifyAdd(u64),
    /// `modify(|v| *v += n)` on "with-default".
    DefaultModifyAdd(u64),
    ValueClear,
    DefaultClear,
    // ListState<u64> "list".
    ListAdd(u64),
    ListAddAll(Vec<u64>),
    ListUpdate(Vec<u64>),
    ListClear,
    ListGet,
    // MapState<String, u64> "map".
    MapPut(String, u64),
    MapGet(String),
    MapContains(String),
    MapRemove(String),
    MapClear,
    MapView,
    // ReducingState<String> "concat": `accumulated + next`.
    ReduceAdd(String),
    ReduceGet,
    ReduceClear,
    // AggregatingState<Average> "average".
    AggAdd(u64),
    AggGet,
    AggClear,
}

/// What a command read (`Done` for commands that only write).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Reply {
    Done,
    Value(Option<u64>),
    Modified(Option<u64>),
    List {
        items: Vec<u64>,
        len: usize,
        empty: bool,
    },
    Map {
        entries: Vec<(String, u64)>,
        keys: Vec<String>,
        len: usize,
        empty: bool,
    },
    MapValue(Option<u64>),
    Contains(bool),
    Removed(Option<u64>),
    Reduced(Option<String>),
    Average(Option<f64>),
}

fn concat(a: String, b: String) -> String {
    a + &b
}

/// Runs each [`Op`] on the state of the record's key and emits its [`Reply`].
#[derive(Clone)]
struct AllStates {
    plain: ValueStateDescriptor<u64>,
    with_default: ValueStateWithDefault<u64>,
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<String, u64>,
    concat: ReducingStateDescriptor<String>,
    average: AggregatingStateDescriptor<Average>,
}

impl AllStates {
    fn new() -> Self {
        AllStates {
            plain: ValueStateDescriptor::new("plain"),
            with_default: ValueStateDescriptor::new("with-default").with_default(10),
            list: ListStateDescriptor::new("list"),
            map: MapStateDescriptor::new("map"),
            concat: ReducingStateDescriptor::new("concat", concat),
            average: AggregatingStateDescriptor::new("average", Average),
        }
    }
}

impl Lifecycle for AllStates {}

impl KeyedProcessFunction<String, (String, Op), Reply> for AllStates {
    fn process_element(
        &mut self,
        (_, op): (String, Op),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Reply>,
    ) -> Result<(), UserError> {
        let reply = match op {
            Op::Value => Reply::Value(ctx.state(&self.plain)?.value()),
            Op::Default => Reply::Value(ctx.state(&self.with_default)?.value()),
            Op::Update(v) => {
                ctx.state(&self.plain)?.update(v);
                Reply::Done
            }
            Op::DefaultUpdate(v) => {
                ctx.state(&self.with_default)?.update(v);
                Reply::Done
            }
            Op::ModifyAdd(n) => Reply::Modified(ctx.state(&self.plain)?.modify(|v| {
                *v += n;
                *v
            })),
            Op::DefaultModifyAdd(n) => {
                Reply::Modified(ctx.state(&self.with_default)?.modify(|v| {
                    *v += n;
                    *v
                }))
            }
            Op::ValueClear => {
                ctx.state(&self.plain)?.clear();
                Reply::Done
            }
            Op::DefaultClear => {
                ctx.state(&self.with_default)?.clear();
                Reply::Done
            }
            Op::ListAdd(v) => {
                ctx.state(&self.list)?.add(v);
                Reply::Done
            }
            Op::ListAddAll(vs) => {
                ctx.state(&self.list)?.add_all(vs);
                Reply::Done
            }
            Op::ListUpdate(vs) => {
                ctx.state(&self.list)?.update(vs);
                Reply::Done
            }
            Op::ListClear => {
                ctx.state(&self.list)?.clear();
                Reply::Done
            }
            Op::ListGet => {
                let list = ctx.state(&self.list)?;
                Reply::List {
                    items: list.get(),
                    len: list.len(),
                    empty: list.is_empty(),
                }
            }
            Op::MapPut(k, v) => {
                ctx.state(&self.map)?.put(k, v);
                Reply::Done
            }
            Op::MapGet(k) => Reply::MapValue(ctx.state(&self.map)?.get(&k)),
            Op::MapContains(k) => Reply::Contains(ctx.state(&self.map)?.contains(&k)),
            Op::MapRemove(k) => Reply::Removed(ctx.state(&self.map)?.remove(&k)),
            Op::MapClear => {
                ctx.state(&self.map)?.clear();
                Reply::Done
            }
            Op::MapView => {
                let map = ctx.state(&self.map)?;
                let mut entries = map.entries();
                entries.sort();
                let mut keys = map.keys();
                keys.sort();
                Reply::Map {
                    entries,
                    keys,
                    len: map.len(),
                    empty: map.is_empty(),
                }
            }
            Op::ReduceAdd(s) => {
                ctx.state(&self.concat)?.add(s);
                Reply::Done
            }
            Op::ReduceGet => Reply::Reduced(ctx.state(&self.concat)?.get()),
            Op::ReduceClear => {
                ctx.state(&self.concat)?.clear();
                Reply::Done
            }
            Op::AggAdd(v) => {
                ctx.state(&self.average)?.add(v);
                Reply::Done
            }
            Op::AggGet => Reply::Average(ctx.state(&self.average)?.get()),
            Op::AggClear => {
                ctx.state(&self.average)?.clear();
                Reply::Done
            }
        };
        out.collect(reply);
        Ok(())
    }
}

type CommandHarness = OperatorHarness<(String, Op), Reply>;

fn command_harness() -> CommandHarness {
    let mut h = OperatorHarness::keyed(
        AllStates::new(),
        |r: &(String, Op)| r.0.clone(),
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h
}

/// Runs `ops` for `key` and returns the replies of the read commands.
fn run(h: &mut CommandHarness, key: &str, ops: Vec<Op>) -> Vec<Reply> {
    h.process(ops.into_iter().map(|op| (key.to_string(), op)).collect())
        .unwrap();
    h.take_output()
        .into_iter()
        .filter(|r| *r != Reply::Done)
        .collect()
}

fn list(items: &[u64]) -> Reply {
    Reply::List {
        items: items.to_vec(),
        len: items.len(),
        empty: items.is_empty(),
    }
}

fn map(entries: &[(&str, u64)]) -> Reply {
    Reply::Map {
        entries: entries.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        keys: entries.iter().map(|(k, _)| k.to_string()).collect(),
        len: entries.len(),
        empty: entries.is_empty(),
    }
}

fn value_state_reads_updates_modifies_and_clears() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::Value,
                Op::Default,
                // No value and no default: modify does nothing and stores nothing.
                Op::ModifyAdd(1),
                Op::Value,
                Op::Update(5),
                Op::Value,
                Op::ModifyAdd(2),
                Op::Value,
                Op::Update(1),
                Op::Value,
                Op::ValueClear,
                Op::Value,
            ]
        ),
        vec![
            Reply::Value(None),
            Reply::Value(Some(10)),
            Reply::Modified(None),
            Reply::Value(None),
            Reply::Value(Some(5)),
            Reply::Modified(Some(7)),
            Reply::Value(Some(7)),
            Reply::Value(Some(1)),
            Reply::Value(None),
        ]
    );
}

fn a_value_state_default_is_read_modified_and_restored_by_clear() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::DefaultModifyAdd(3), // from the default: 10 + 3
                Op::Default,
                Op::DefaultModifyAdd(1),
                Op::DefaultUpdate(0),
                Op::Default,
                Op::DefaultClear,
                Op::Default, // the default again
                             // The default itself is not changed by a modify of another key.
            ]
        ),
        vec![
            Reply::Modified(Some(13)),
            Reply::Value(Some(13)),
            Reply::Modified(Some(14)),
            Reply::Value(Some(0)),
            Reply::Value(Some(10)),
        ]
    );
    assert_eq!(
        run(&mut h, "other", vec![Op::Default]),
        vec![Reply::Value(Some(10))]
    );
}

fn list_state_appends_replaces_and_clears() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::ListGet,
                Op::ListAdd(3),
                Op::ListAdd(1),
                Op::ListGet,
                Op::ListAddAll(vec![4, 1, 5]),
                Op::ListGet,
                Op::ListAddAll(vec![]),
                Op::ListGet,
                Op::ListUpdate(vec![9, 2]),
                Op::ListGet,
                Op::ListUpdate(vec![]),
                Op::ListGet,
                Op::ListAdd(6),
                Op::ListClear,
                Op::ListGet,
                Op::ListAddAll(vec![7]),
                Op::ListGet,
            ]
        ),
        vec![
            list(&[]),
            list(&[3, 1]),
            list(&[3, 1, 4, 1, 5]),
            list(&[3, 1, 4, 1, 5]),
            list(&[9, 2]),
            list(&[]),
            list(&[]),
            list(&[7]),
        ]
    );
}

fn map_state_puts_gets_removes_and_lists_its_entries() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::MapView,
                Op::MapGet(s("a")),
                Op::MapContains(s("a")),
                Op::MapRemove(s("a")),
                Op::MapPut(s("a"), 1),
                Op::MapPut(s("b"), 2),
                Op::MapPut(s("a"), 3), // replaces
                Op::MapGet(s("a")),
                Op::MapContains(s("a")),
                Op::MapContains(s("c")),
                Op::MapView,
                Op::MapRemove(s("a")),
                Op::MapRemove(s("a")),
                Op::MapView,
                Op::MapRemove(s("b")), // the last entry
                Op::MapView,
                Op::MapPut(s("c"), 4),
                Op::MapPut(s("d"), 5),
                Op::MapClear,
                Op::MapView,
                Op::MapGet(s("c")),
            ]
        ),
        vec![
            map(&[]),
            Reply::MapValue(None),
            Reply::Contains(false),
            Reply::Removed(None),
            Reply::MapValue(Some(3)),
            Reply::Contains(true),
            Reply::Contains(false),
            map(&[("a", 3), ("b", 2)]),
            Reply::Removed(Some(3)),
            Reply::Removed(None),
            map(&[("b", 2)]),
            Reply::Removed(Some(2)),
            map(&[]),
            map(&[]),
            Reply::MapValue(None),
        ]
    );
}

fn reducing_state_folds_in_order_and_clears() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::ReduceGet,
                Op::ReduceAdd(s("a")),
                Op::ReduceGet,
                Op::ReduceAdd(s("b")),
                Op::ReduceAdd(s("c")),
                Op::ReduceGet, // reduce(accumulated, next), in order
                Op::ReduceClear,
                Op::ReduceGet,
                Op::ReduceAdd(s("z")),
                Op::ReduceGet,
            ]
        ),
        vec![
            Reply::Reduced(None),
            Reply::Reduced(Some(s("a"))),
            Reply::Reduced(Some(s("abc"))),
            Reply::Reduced(None),
            Reply::Reduced(Some(s("z"))),
        ]
    );
}

fn aggregating_state_accumulates_and_reads_a_result() {
    let mut h = command_harness();
    assert_eq!(
        run(
            &mut h,
            "k",
            vec![
                Op::AggGet,
                Op::AggAdd(1),
                Op::AggGet,
                Op::AggAdd(2),
                Op::AggAdd(6),
                Op::AggGet,
                Op::AggClear,
                Op::AggGet,
                Op::AggAdd(4),
                Op::AggGet,
            ]
        ),
        vec![
            Reply::Average(None),
            Reply::Average(Some(1.0)),
            Reply::Average(Some(3.0)),
            Reply::Average(None),
            Reply::Average(Some(4.0)),
        ]
    );
}

fn every_key_has_its_own_state() {
    let mut h = command_harness();
    let s = |x: &str| x.to_string();
    // Interleaved in one batch: each record's state is that of its own key.
    h.process(vec![
        (s("a"), Op::Update(1)),
        (s("b"), Op::Update(2)),
        (s("a"), Op::ListAdd(10)),
        (s("b"), Op::ListAdd(20)),
        (s("a"), Op::MapPut(s("x"), 1)),
        (s("b"), Op::MapPut(s("y"), 2)),
        (s("a"), Op::ReduceAdd(s("a"))),
        (s("b"), Op::ReduceAdd(s("b"))),
        (s("a"), Op::AggAdd(1)),
        (s("b"), Op::AggAdd(3)),
        (s("a"), Op::DefaultModifyAdd(1)),
        (s("a"), Op::ValueClear),
    ])
    .unwrap();
    h.take_output();
    let reads = || {
        vec![
            Op::Value,
            Op::Default,
            Op::ListGet,
            Op::MapView,
            Op::ReduceGet,
            Op::AggGet,
        ]
    };
    assert_eq!(
        run(&mut h, "a", reads()),
        vec![
            Reply::Value(None),
            Reply::Value(Some(11)),
            list(&[10]),
            map(&[("x", 1)]),
            Reply::Reduced(Some(s("a"))),
            Reply::Average(Some(1.0)),
        ]
    );
    assert_eq!(
        run(&mut h, "b", reads()),
        vec![
            Reply::Value(Some(2)),
            Reply::Value(Some(10)),
            list(&[20]),
            map(&[("y", 2)]),
            Reply::Reduced(Some(s("b"))),
            Reply::Average(Some(3.0)),
        ]
    );
    assert_eq!(
        run(&mut h, "c", reads()),
        vec![
            Reply::Value(None),
            Reply::Value(Some(10)),
            list(&[]),
            map(&[]),
            Reply::Reduced(None),
            Reply::Average(None),
        ]
    );
}

/// Two descriptors with one name: opens `first`, then `second`, for every record.
#[derive(Clone)]
struct TwoDeclarations<A, B> {
    first: A,
    second: B,
}

impl<A, B> Lifecycle for TwoDeclarations<A, B>
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
}

impl<A, B> KeyedProcessFunction<u32, u32, u64> for TwoDeclarations<A, B>
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
    fn process_element(
        &mut self,
        _value: u32,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.first)?;
        ctx.state(&self.second)?;
        out.collect(0);
        Ok(())
    }
}

/// The [`StateError`] in a harness call's error.
fn state_error(err: UserError) -> StateError {
    match err.downcast::<StateError>() {
        Ok(e) => *e,
        Err(other) => panic!("expected a StateError, got {other}"),
    }
}

fn mismatch_of<A, B>(first: A, second: B) -> (String, StateError)
where
    A: weir::state::StateDescriptor + Clone + Send + 'static,
    B: weir::state::StateDescriptor + Clone + Send + 'static,
{
    let mut h: OperatorHarness<u32, u64> =
        OperatorHarness::keyed(TwoDeclarations { first, second }, |v: &u32| *v, 0, 1, MAX_P);
    h.open(None).unwrap();
    let err = h.process(vec![1]).unwrap_err();
    let message = err.to_string();
    (message, state_error(err))
}

fn a_name_declared_with_another_kind_or_type_is_a_mismatch_naming_the_state() {
    // Another kind.
    let (message, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("shared"),
        ListStateDescriptor::<u64>::new("shared"),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "shared"),
        "{err:?}"
    );
    assert!(message.contains("`shared`"), "{message}");
    assert!(
        message.contains("Value") && message.contains("List"),
        "{message}"
    );

    // Same kind, another type.
    let (message, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("shared"),
        ValueStateDescriptor::<String>::new("shared"),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "shared"),
        "{err:?}"
    );
    assert!(
        message.contains("u64") && message.contains("String"),
        "{message}"
    );

    // A value state and a reducing state of the same type.
    let (_, err) = mismatch_of(
        ValueStateDescriptor::<u64>::new("n"),
        ReducingStateDescriptor::<u64>::new("n", |a, b| a + b),
    );
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "n"),
        "{err:?}"
    );
}

/// Counts records per key with whichever descriptor it is given.
#[derive(Clone)]
struct Count<D>(D);

impl Lifecycle for Count<ValueStateDescriptor<u64>> {}

impl KeyedProcessFunction<u32, u32, u64> for Count<ValueStateDescriptor<u64>> {
    fn process_element(
        &mut self,
        _value: u32,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        let mut count = ctx.state(&self.0)?;
        let n = count.value().unwrap_or(0) + 1;
        count.update(n);
        out.collect(n);
        Ok(())
    }
}

impl Lifecycle for Count<ValueStateDescriptor<String>> {}

impl KeyedProcessFunction<u32, u32, u64> for Count<ValueStateDescriptor<String>> {
    fn process_element(
        &mut self,
        _value: u32,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        let mut count = ctx.state(&self.0)?;
        let n = count.value().map_or(0, |s| s.len() as u64) + 1;
        count.update("x".repeat(n as usize));
        out.collect(n);
        Ok(())
    }
}

fn restored_state_opened_with_another_type_is_a_mismatch_naming_the_state() {
    let mut h = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<u64>::new("n")),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h.process(vec![1, 1]).unwrap();
    let snapshot = h.snapshot(1).unwrap();

    let mut restored = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<String>::new("n")),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    restored.open(Some(snapshot)).unwrap();
    let err = state_error(restored.process(vec![1]).unwrap_err());
    match &err {
        StateError::Mismatch {
            name,
            declared,
            requested,
        } => {
            assert_eq!(name, "n");
            assert!(declared.contains("restored"), "{err}");
            assert!(requested.contains("String"), "{err}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

fn two_descriptors_with_the_same_name_and_type_share_the_state() {
    #[derive(Clone)]
    struct Twins(ValueStateDescriptor<u64>, ValueStateDescriptor<u64>);
    impl Lifecycle for Twins {}

    impl KeyedProcessFunction<u32, u32, (u64, u64)> for Twins {
        fn process_element(
            &mut self,
            _value: u32,
            ctx: &mut KeyedContext<u32>,
            out: &mut Collector<(u64, u64)>,
        ) -> Result<(), UserError> {
            let n = ctx.state(&self.0)?.value().unwrap_or(0) + 1;
            ctx.state(&self.0)?.update(n);
            let seen = ctx.state(&self.1)?.value().unwrap_or(0);
            out.collect((n, seen));
            Ok(())
        }
    }
    let mut h = OperatorHarness::keyed(
        Twins(
            ValueStateDescriptor::new("n"),
            ValueStateDescriptor::new("n"),
        ),
        |v: &u32| *v,
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h.process(vec![1, 1, 2]).unwrap();
    assert_eq!(h.take_output(), vec![(1, 1), (2, 2), (1, 1)]);
}

fn a_record_of_a_key_group_the_subtask_does_not_own_is_refused() {
    let key = (0u32..)
        .find(|k| KeyGroupRange::owner_of(key_group(k, MAX_P), MAX_P, 2) == 1)
        .unwrap();
    let mut h = OperatorHarness::keyed(
        Count(ValueStateDescriptor::<u64>::new("n")),
        |v: &u32| *v,
        0,
        2,
        MAX_P,
    );
    h.open(None).unwrap();
    let err = state_error(h.process(vec![key]).unwrap_err());
    let range = KeyGroupRange::of_subtask(0, MAX_P, 2);
    assert_eq!(
        err,
        StateError::ForeignKeyGroup {
            group: key_group(&key, MAX_P),
            start: range.start,
            end: range.end,
        }
    );
}

// ------------------------------------------------------------------ rescaling

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

fn keyed_state_and_timers_continue_across_parallelism_1_3_2() {
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

fn a_snapshot_restored_at_the_same_parallelism_keeps_every_key() {
    let mut model = BTreeMap::new();
    let mut p2 = everything(2, None);
    let records: Vec<(u32, u64)> = (0..KEYS).map(|k| (k, u64::from(k))).collect();
    feed(&mut p2, &records, &mut model);
    let mut again = rescale(&mut p2, 1, 2);
    feed(&mut again, &records, &mut model);
    // The old instances are untouched by the restore of the new ones.
    feed(&mut p2, &[(0, 7)], &mut BTreeMap::from([(0, vec![0])]));
}

fn a_snapshot_holds_the_state_of_its_synchronous_part_whatever_changes_after() {
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

fn overlapping_snapshots_each_restore_the_state_of_their_synchronous_part() {
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

// ------------------------------------------------------------- operator state

/// What [`Buffering`] is fed.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Input {
    Add(u64),
    Report,
}

/// What [`Buffering`] knew when it was initialised, and its buffer now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Restored {
    subtask: usize,
    is_restored: bool,
    even_split: Vec<u64>,
    union: Vec<String>,
    raw: Option<String>,
    buffer: Vec<u64>,
}

/// Buffers records in an even-split operator list state, says who it is in a
/// union list state, and writes raw bytes.
#[derive(Clone)]
struct Buffering {
    even_split: ListStateDescriptor<u64>,
    union: ListStateDescriptor<String>,
    buffer: Vec<u64>,
    restored: Option<Restored>,
    subtask: (usize, usize),
}

impl Buffering {
    fn new() -> Self {
        Buffering {
            even_split: ListStateDescriptor::new("buffer"),
            union: ListStateDescriptor::new("members"),
            buffer: Vec::new(),
            restored: None,
            subtask: (0, 0),
        }
    }
}

impl Lifecycle for Buffering {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let runtime = ctx.runtime();
        self.subtask = (runtime.subtask_index(), runtime.parallelism());
        let even_split = ctx.operator_state().list(&self.even_split)?.get()?;
        let union = ctx.operator_state().union_list(&self.union)?.get()?;
        let raw = ctx
            .raw_state()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        if ctx.is_restored() {
            self.buffer = even_split.clone();
        }
        self.restored = Some(Restored {
            subtask: self.subtask.0,
            is_restored: ctx.is_restored(),
            even_split,
            union,
            raw,
            buffer: Vec::new(),
        });
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        assert_eq!(
            (ctx.subtask_index(), ctx.parallelism()),
            self.subtask,
            "initialize_state runs before open, with the same runtime"
        );
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let (i, p) = self.subtask;
        ctx.operator_state()
            .list(&self.even_split)?
            .update(&self.buffer)?;
        let mut union = ctx.operator_state().union_list(&self.union)?;
        union.clear();
        union.add(&format!("{i}/{p} held {}", self.buffer.len()))?;
        ctx.write_raw_state(format!("raw of {i}/{p} at {}", ctx.checkpoint_id()).into_bytes());
        Ok(())
    }
}

impl ProcessFunction<Input, Restored> for Buffering {
    fn process_element(
        &mut self,
        input: Input,
        _ctx: &mut ProcessContext,
        out: &mut Collector<Restored>,
    ) -> Result<(), UserError> {
        match input {
            Input::Add(v) => self.buffer.push(v),
            Input::Report => {
                let mut report = self.restored.clone().ok_or("not initialised")?;
                report.buffer = self.buffer.clone();
                out.collect(report);
            }
        }
        Ok(())
    }
}

type BufferingHarness = OperatorHarness<Input, Restored>;

fn buffering(
    parallelism: usize,
    snapshots: Option<Vec<OperatorSnapshot>>,
) -> Vec<BufferingHarness> {
    let mut snapshots = snapshots.map(|s| s.into_iter());
    (0..parallelism)
        .map(|i| {
            let mut h = OperatorHarness::new(Process::new(Buffering::new()), i, parallelism, MAX_P);
            h.open(snapshots.as_mut().and_then(Iterator::next)).unwrap();
            h
        })
        .collect()
}

fn report(h: &mut BufferingHarness) -> Restored {
    h.process(vec![Input::Report]).unwrap();
    let mut out = h.take_output();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn operator_list_state_is_split_evenly_or_unioned_and_raw_state_stays_by_index() {
    // Parallelism 1, fresh: nothing restored.
    let mut p1 = buffering(1, None);
    p1[0].process((0..10).map(Input::Add).collect()).unwrap();
    assert_eq!(
        report(&mut p1[0]),
        Restored {
            subtask: 0,
            is_restored: false,
            even_split: vec![],
            union: vec![],
            raw: None,
            buffer: (0..10).collect(),
        }
    );

    // 1 -> 3: 10 elements dealt 4, 3, 3 in order; the union to everyone; the
    // raw bytes to subtask 0 only.
    let old: Vec<OperatorSnapshot> = p1.iter_mut().map(|h| h.snapshot(1).unwrap()).collect();
    let mut p3 = buffering(3, Some(redistribute(&old, 3, MAX_P)));
    let shares: [&[u64]; 3] = [&[0, 1, 2, 3], &[4, 5, 6], &[7, 8, 9]];
    for (i, h) in p3.iter_mut().enumerate() {
        assert_eq!(
            report(h),
            Restored {
                subtask: i,
                is_restored: true,
                even_split: shares[i].to_vec(),
                union: strings(&["0/1 held 10"]),
                raw: (i == 0).then(|| "raw of 0/1 at 1".to_string()),
                buffer: shares[i].to_vec(),
            }
        );
        h.process(vec![Input::Add(100 + i as u64)]).unwrap();
    }

    // 3 -> 2: all 13 elements, in old subtask order, dealt 7 and 6.
    let old: Vec<OperatorSnapshot> = p3.iter_mut().map(|h| h.snapshot(2).unwrap()).collect();
    let mut p2 = buffering(2, Some(redistribute(&old, 2, MAX_P)));
    let shares: [&[u64]; 2] = [&[0, 1, 2, 3, 100, 4, 5], &[6, 101, 7, 8, 9, 102]];
    for (i, h) in p2.iter_mut().enumerate() {
        assert_eq!(
            report(h),
            Restored {
                subtask: i,
                is_restored: true,
                even_split: shares[i].to_vec(),
                union: strings(&["0/3 held 5", "1/3 held 4", "2/3 held 4"]),
                raw: Some(format!("raw of {i}/3 at 2")),
                buffer: shares[i].to_vec(),
            }
        );
    }

    // 2 -> 1: everything back in one place.
    let old: Vec<OperatorSnapshot> = p2.iter_mut().map(|h| h.snapshot(3).unwrap()).collect();
    let mut back = buffering(1, Some(redistribute(&old, 1, MAX_P)));
    let all = report(&mut back[0]);
    assert_eq!(
        all.even_split,
        vec![0, 1, 2, 3, 100, 4, 5, 6, 101, 7, 8, 9, 102]
    );
    assert_eq!(all.union, strings(&["0/2 held 7", "1/2 held 6"]));
    assert_eq!(all.raw.as_deref(), Some("raw of 0/2 at 3"));
}

#[test]
fn an_operator_list_state_opened_in_both_modes_is_a_mismatch() {
    #[derive(Clone)]
    struct Both(ListStateDescriptor<u64>);
    impl Lifecycle for Both {
        fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
            ctx.operator_state().list(&self.0)?;
            ctx.operator_state().union_list(&self.0)?;
            Ok(())
        }
    }

    impl ProcessFunction<u64, u64> for Both {
        fn process_element(
            &mut self,
            _value: u64,
            _ctx: &mut ProcessContext,
            _out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }
    let mut h: OperatorHarness<u64, u64> = OperatorHarness::new(
        Process::new(Both(ListStateDescriptor::new("l"))),
        0,
        1,
        MAX_P,
    );
    let err = state_error(h.open(None).unwrap_err());
    assert!(
        matches!(&err, StateError::Mismatch { name, .. } if name == "l"),
        "{err:?}"
    );
}

// --------------------------------------------------------------------- timers

/// What [`TimerProbe`] is told to do for a key.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum TimerCmd {
    Event(i64),
    DeleteEvent(i64),
    Processing(i64),
    DeleteProcessing(i64),
    /// Registers an event-time timer whose `on_timer` registers the next one,
    /// 10 ms later, up to `until`.
    Chain {
        at: i64,
        until: i64,
    },
}

/// What [`TimerProbe`] saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    key: String,
    /// `on_timer`'s timestamp argument; `None` for a record.
    timer: Option<i64>,
    domain: Option<String>,
    timestamp: Option<i64>,
    watermark: i64,
    /// The key's number of records so far.
    records: u64,
}

/// Registers and deletes timers as it is told, and reports every call.
#[derive(Clone)]
struct TimerProbe {
    records: ValueStateWithDefault<u64>,
    chain_until: MapStateDescriptor<i64, i64>,
}

impl TimerProbe {
    fn new() -> Self {
        TimerProbe {
            records: ValueStateDescriptor::new("records").with_default(0),
            chain_until: MapStateDescriptor::new("chain-until"),
        }
    }

    fn seen(&self, ctx: &mut KeyedContext<String>, timer: Option<i64>) -> Result<Seen, UserError> {
        Ok(Seen {
            key: ctx.current_key().clone(),
            timer,
            domain: ctx.time_domain().map(|d| format!("{d:?}")),
            timestamp: ctx.timestamp(),
            watermark: ctx.current_watermark(),
            records: ctx.state(&self.records)?.value().unwrap_or_default(),
        })
    }
}

impl Lifecycle for TimerProbe {}

impl KeyedProcessFunction<String, (String, TimerCmd), Seen> for TimerProbe {
    fn process_element(
        &mut self,
        (_, cmd): (String, TimerCmd),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Seen>,
    ) -> Result<(), UserError> {
        ctx.state(&self.records)?.modify(|n| *n += 1);
        match cmd {
            TimerCmd::Event(t) => ctx.register_event_time_timer(t),
            TimerCmd::DeleteEvent(t) => ctx.delete_event_time_timer(t),
            TimerCmd::Processing(t) => ctx.register_processing_time_timer(t),
            TimerCmd::DeleteProcessing(t) => ctx.delete_processing_time_timer(t),
            TimerCmd::Chain { at, until } => {
                ctx.state(&self.chain_until)?.put(at, until);
                ctx.register_event_time_timer(at);
            }
        }
        let seen = self.seen(ctx, None)?;
        out.collect(seen);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Seen>,
    ) -> Result<(), UserError> {
        let until = ctx.state(&self.chain_until)?.remove(&timestamp);
        if let Some(until) = until {
            if timestamp + 10 <= until {
                ctx.state(&self.chain_until)?.put(timestamp + 10, until);
                ctx.register_event_time_timer(timestamp + 10);
            }
        }
        let seen = self.seen(ctx, Some(timestamp))?;
        out.collect(seen);
        Ok(())
    }
}

type TimerHarness = OperatorHarness<(String, TimerCmd), Seen>;

fn timer_harness() -> TimerHarness {
    let mut h = OperatorHarness::keyed(
        TimerProbe::new(),
        |r: &(String, TimerCmd)| r.0.clone(),
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h
}

fn commands(h: &mut TimerHarness, cmds: &[(&str, TimerCmd)]) {
    h.process(
        cmds.iter()
            .map(|(k, c)| (k.to_string(), c.clone()))
            .collect(),
    )
    .unwrap();
    for seen in h.take_output() {
        assert_eq!(seen.timer, None);
        assert_eq!(seen.domain, None, "no time domain while handling a record");
    }
}

/// The (key, timer) pairs that fired, in order.
fn fired(h: &mut TimerHarness) -> Vec<(String, i64)> {
    h.take_output()
        .into_iter()
        .map(|s| (s.key, s.timer.expect("only timers fire here")))
        .collect()
}

fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(k, t)| (k.to_string(), *t)).collect()
}

fn timers_fire_by_timestamp_then_registration_order_once_per_key_and_time() {
    let mut h = timer_harness();
    use TimerCmd::Event;
    commands(
        &mut h,
        &[
            ("a", Event(30)),
            ("b", Event(10)),
            ("c", Event(10)),
            ("a", Event(10)),
            ("b", Event(20)),
            ("b", Event(10)), // again: de-duplicated
            ("a", Event(30)), // again
        ],
    );
    h.watermark(100).unwrap();
    assert_eq!(
        fired(&mut h),
        pairs(&[("b", 10), ("c", 10), ("a", 10), ("b", 20), ("a", 30)])
    );
    assert_eq!(h.take_watermarks(), vec![100]);
    h.watermark(200).unwrap();
    assert!(fired(&mut h).is_empty(), "each timer fires once");

    // A timer that fired can be registered again.
    commands(&mut h, &[("a", Event(150)), ("a", Event(250))]);
    h.watermark(300).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 150), ("a", 250)]));
}

fn event_time_timers_fire_only_when_the_watermark_reaches_them() {
    let mut h = timer_harness();
    use TimerCmd::Event;
    commands(
        &mut h,
        &[("a", Event(10)), ("b", Event(20)), ("a", Event(21))],
    );
    h.watermark(9).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(10).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 10)]));
    h.watermark(19).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(20).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 20)]));
    // Processing time does not fire event-time timers.
    h.processing_time(1_000_000).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(i64::MAX).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 21)]));
    assert_eq!(h.take_watermarks(), vec![9, 10, 19, 20, i64::MAX]);
}

fn deleted_timers_do_not_fire() {
    let mut h = timer_harness();
    use TimerCmd::{DeleteEvent, DeleteProcessing, Event, Processing};
    commands(
        &mut h,
        &[
            ("a", Event(10)),
            ("a", Event(20)),
            ("b", Event(10)),
            ("a", DeleteEvent(10)),
            ("a", DeleteEvent(15)), // never registered: nothing happens
            ("c", DeleteEvent(20)), // another key's timer: a's stays
            ("a", Processing(50)),
            ("b", Processing(60)),
            ("a", DeleteProcessing(50)),
            ("b", DeleteEvent(10)),
            ("b", Event(10)), // registered again after its deletion
        ],
    );
    h.watermark(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 10), ("a", 20)]));
    h.processing_time(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 60)]));
}

fn processing_time_timers_fire_by_the_harness_clock() {
    let mut h = timer_harness();
    use TimerCmd::{Event, Processing};
    assert_eq!(h.next_processing_time(), None);
    commands(
        &mut h,
        &[
            ("a", Processing(1_000)),
            ("b", Processing(500)),
            ("a", Processing(500)),
            ("b", Event(400)),
        ],
    );
    assert_eq!(h.next_processing_time(), Some(500));
    h.processing_time(499).unwrap();
    assert!(fired(&mut h).is_empty());
    h.processing_time(500).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 500), ("a", 500)]));
    assert_eq!(h.next_processing_time(), Some(1_000));
    h.processing_time(5_000).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 1_000)]));
    assert_eq!(h.next_processing_time(), None);
    // The event-time timer is still waiting for its watermark.
    h.watermark(400).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 400)]));
}

fn on_timer_sees_its_key_domain_timestamp_watermark_and_state() {
    let mut h = timer_harness();
    use TimerCmd::{Event, Processing};
    commands(
        &mut h,
        &[("a", Event(10)), ("a", Processing(77)), ("b", Event(12))],
    );
    h.watermark(15).unwrap();
    let event = h.take_output_with_timestamps();
    assert_eq!(
        event,
        vec![
            (
                Seen {
                    key: "a".into(),
                    timer: Some(10),
                    domain: Some("EventTime".into()),
                    timestamp: Some(10),
                    watermark: 15,
                    records: 2,
                },
                Some(10) // what on_timer emits carries the timer's time
            ),
            (
                Seen {
                    key: "b".into(),
                    timer: Some(12),
                    domain: Some("EventTime".into()),
                    timestamp: Some(12),
                    watermark: 15,
                    records: 1,
                },
                Some(12)
            ),
        ]
    );
    h.processing_time(80).unwrap();
    assert_eq!(
        h.take_output(),
        vec![Seen {
            key: "a".into(),
            timer: Some(77),
            domain: Some("ProcessingTime".into()),
            timestamp: Some(77),
            watermark: 15,
            records: 2,
        }]
    );
}

fn records_see_their_timestamp_and_the_watermark_and_keep_the_timestamp_on_output() {
    let mut h = timer_harness();
    h.watermark(5).unwrap();
    h.process_with_timestamps(vec![(("a".into(), TimerCmd::Event(100)), 42)])
        .unwrap();
    let out = h.take_output_with_timestamps();
    assert_eq!(out.len(), 1);
    let (seen, timestamp) = &out[0];
    assert_eq!(
        (
            seen.timestamp,
            seen.watermark,
            seen.domain.clone(),
            *timestamp
        ),
        (Some(42), 5, None, Some(42))
    );
}

fn a_timer_registered_in_on_timer_at_or_before_the_watermark_fires_in_the_same_advance() {
    let mut h = timer_harness();
    commands(
        &mut h,
        &[
            ("a", TimerCmd::Chain { at: 10, until: 40 }),
            ("b", TimerCmd::Event(25)),
        ],
    );
    h.watermark(30).unwrap();
    assert_eq!(
        fired(&mut h),
        pairs(&[("a", 10), ("a", 20), ("b", 25), ("a", 30)])
    );
    h.watermark(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 40)]));
}

fn timers_survive_a_snapshot_and_restore() {
    let mut h = timer_harness();
    use TimerCmd::{DeleteEvent, Event, Processing};
    commands(
        &mut h,
        &[
            ("a", Event(10)),
            ("b", Event(20)),
            ("a", Event(30)),
            ("a", DeleteEvent(30)),
            ("a", Processing(700)),
        ],
    );
    h.watermark(10).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 10)]));
    let snapshot = h.snapshot(1).unwrap();

    let mut restored = OperatorHarness::keyed(
        TimerProbe::new(),
        |r: &(String, TimerCmd)| r.0.clone(),
        0,
        1,
        MAX_P,
    );
    restored.open(Some(snapshot)).unwrap();
    assert_eq!(restored.next_processing_time(), Some(700));
    restored.watermark(100).unwrap();
    assert_eq!(fired(&mut restored), pairs(&[("b", 20)]));
    restored.processing_time(700).unwrap();
    assert_eq!(fired(&mut restored), pairs(&[("a", 700)]));
}

// ----------------------------------------------------------------- whole jobs

const N: u64 = 10_000;
const GROUPS: u64 = 13;

/// The last record emitted for each key: in a job, the records of one key all
/// leave one subtask, in order, so the last is the final value.
fn last_per_key<K: Ord, V>(records: Vec<(K, V)>) -> BTreeMap<K, V> {
    records.into_iter().collect()
}

/// `(key, value)` for `i` in `0..N`: key `i % GROUPS`, value `i`.
fn generated(env: &StreamEnv) -> weir::DataStream<(u64, u64)> {
    env.generate(N, |i| (i % GROUPS, i))
}

fn expected<F: Fn(&mut dyn Iterator<Item = u64>) -> u64>(fold: F) -> BTreeMap<u64, u64> {
    (0..GROUPS)
        .map(|k| (k, fold(&mut (0..N).filter(move |i| i % GROUPS == k))))
        .collect()
}

fn rolling_sum_min_max_and_reduce_end_with_the_value_of_every_key() {
    let env = StreamEnv::with_parallelism(2);
    let sums = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .sum(|r| r.1)
        .collect();
    let mins = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .min(|r| r.1)
        .collect();
    let maxs = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .max(|r| r.1)
        .collect();
    let reduced = generated(&env)
        .map(|(k, v)| (k, v, 1u64))
        .key_by(|r: &(u64, u64, u64)| r.0)
        .reduce(|a, b| (a.0, a.1 + b.1, a.2 + b.2))
        .collect();
    env.execute_blocking("rolling").unwrap();

    let sums = sums.take();
    assert_eq!(sums.len() as u64, N, "one result per record");
    assert_eq!(last_per_key(sums), expected(|it| it.sum()));
    let mins = mins.take();
    assert_eq!(mins.len() as u64, N);
    assert_eq!(last_per_key(mins), expected(|it| it.min().unwrap()));
    let maxs = maxs.take();
    assert_eq!(maxs.len() as u64, N);
    assert_eq!(last_per_key(maxs), expected(|it| it.max().unwrap()));

    let reduced = reduced.take();
    assert_eq!(reduced.len() as u64, N);
    let finals: BTreeMap<u64, (u64, u64)> = last_per_key(
        reduced
            .into_iter()
            .map(|(k, sum, count)| (k, (sum, count)))
            .collect(),
    );
    let counts = expected(|it| it.count() as u64);
    let sums = expected(|it| it.sum());
    for k in 0..GROUPS {
        assert_eq!(finals[&k], (sums[&k], counts[&k]), "key {k}");
    }
}

/// Per key: `(key, count, sum, largest)`; the key comes with the records.
#[derive(Clone)]
struct Stats;

impl AggregateFunction for Stats {
    type In = (u64, u64);
    type Acc = (u64, u64, u64, u64);
    type Out = (u64, u64, u64, u64);
    fn create_accumulator(&self) -> Self::Acc {
        (0, 0, 0, 0)
    }

    fn add(&self, (key, value): (u64, u64), acc: &mut Self::Acc) {
        *acc = (key, acc.1 + 1, acc.2 + value, acc.3.max(value));
    }

    fn get_result(&self, acc: &Self::Acc) -> Self::Out {
        *acc
    }
}

fn rolling_aggregate_ends_with_the_result_of_every_key() {
    let env = StreamEnv::with_parallelism(2);
    let out = generated(&env)
        .key_by(|r: &(u64, u64)| r.0)
        .aggregate(Stats)
        .collect();
    env.execute_blocking("aggregate").unwrap();
    let results = out.take();
    assert_eq!(results.len() as u64, N);
    let finals = last_per_key(
        results
            .into_iter()
            .map(|(k, count, sum, max)| (k, (count, sum, max)))
            .collect(),
    );
    let (counts, sums, maxs) = (
        expected(|it| it.count() as u64),
        expected(|it| it.sum()),
        expected(|it| it.max().unwrap()),
    );
    assert_eq!(finals.len() as u64, GROUPS);
    for k in 0..GROUPS {
        assert_eq!(finals[&k], (counts[&k], sums[&k], maxs[&k]), "key {k}");
    }
}

fn a_keyed_process_function_counts_every_key_in_a_job() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(N, |i| (i % GROUPS) as u32)
        .key_by(|k: &u32| *k)
        .process(Count(ValueStateDescriptor::<u64>::new("n")))
        .set_parallelism(3)
        .collect();
    env.execute_blocking("count").unwrap();
    let counts = out.take();
    assert_eq!(counts.len() as u64, N);
    // Every key counts 1, 2, ..., its number of records: the multiset of
    // counts says so without knowing which key each came from.
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    for c in counts {
        *seen.entry(c).or_default() += 1;
    }
    let per_key = N / GROUPS; // 769, and N % GROUPS keys get one more
    let expected: BTreeMap<u64, u64> = (1..=per_key + 1)
        .map(|c| (c, if c <= per_key { GROUPS } else { N % GROUPS }))
        .collect();
    assert_eq!(seen, expected);
}

fn a_keyed_function_counts_right_when_its_state_outgrows_the_caches() {
    // 60 000 keys: state well beyond the first-level caches and a map per key
    // group that grows many times while the job runs; every key must count
    // 1, 2, 3, with and without timestamps in the batches.
    const KEYS: u64 = 60_000;
    for with_timestamps in [false, true] {
        let env = StreamEnv::with_parallelism(1);
        let keys = env.generate(3 * KEYS, |i| (i % KEYS) as u32);
        let keys = if with_timestamps {
            keys.assign_timestamps_and_watermarks(
                WatermarkStrategy::monotonous_timestamps()
                    .with_timestamp_assigner(|k: &u32| i64::from(*k)),
            )
        } else {
            keys
        };
        let out = keys
            .key_by(|k: &u32| *k)
            .process(Count(ValueStateDescriptor::<u64>::new("n")))
            .collect();
        env.execute_blocking("large-state").unwrap();
        let counts = out.take();
        assert_eq!(
            counts.len() as u64,
            3 * KEYS,
            "timestamps {with_timestamps}"
        );
        let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
        for c in counts {
            *seen.entry(c).or_default() += 1;
        }
        let expected: BTreeMap<u64, u64> = [(1, KEYS), (2, KEYS), (3, KEYS)].into();
        assert_eq!(seen, expected, "timestamps {with_timestamps}");
    }
}

fn a_keyed_function_with_its_own_max_parallelism_sees_every_key_at_its_owner() {
    for (parallelism, max_parallelism) in [(3, 7), (1, 1), (2, 2), (4, 1000)] {
        let env = StreamEnv::with_parallelism(2);
        let out = env
            .generate(N, |i| (i % GROUPS) as u32)
            .key_by(|k: &u32| *k)
            .process(Count(ValueStateDescriptor::<u64>::new("n")))
            .set_parallelism(parallelism)
            .set_max_parallelism(max_parallelism)
            .collect();
        env.execute_blocking("max-parallelism").unwrap();
        let counts = out.take();
        assert_eq!(
            counts.len() as u64,
            N,
            "p {parallelism}, max {max_parallelism}"
        );
        assert_eq!(
            counts.iter().max().copied(),
            Some(N.div_ceil(GROUPS)),
            "p {parallelism}, max {max_parallelism}"
        );
    }
}

/// Emits the keys `0..keys` once, then nothing until `done` is set (or a
/// deadline passes), then ends; remembers whether `done` ended it. Each poll
/// that finds nothing to emit blocks for `pause` (as a source waiting on I/O
/// would) before it returns.
#[derive(Clone)]
struct KeysThenWait {
    keys: u32,
    pause: Duration,
    sent: bool,
    done: Arc<AtomicBool>,
    deadline: Option<Instant>,
    ended_by_done: Arc<Mutex<Option<bool>>>,
}

impl Lifecycle for KeysThenWait {}

impl Source<u32> for KeysThenWait {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<u32>, _max: usize) -> Result<SourceStatus, UserError> {
        if !self.sent {
            self.sent = true;
            self.deadline = Some(Instant::now() + Duration::from_secs(30));
            out.extend(0..self.keys);
            return Ok(SourceStatus::More);
        }
        let done = self.done.load(Ordering::SeqCst);
        if done || self.deadline.is_some_and(|d| Instant::now() >= d) {
            *self.ended_by_done.lock().unwrap() = Some(done);
            return Ok(SourceStatus::Finished);
        }
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        Ok(SourceStatus::More)
    }
}

/// Registers a processing-time timer 20 ms after each record; each firing
/// emits `(key, timer time, domain, processing time at firing)` and the last
/// expected one sets `done`.
#[derive(Clone)]
struct WallClock {
    expected: usize,
    fired: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Lifecycle for WallClock {}

impl KeyedProcessFunction<u32, u32, (u32, i64, String, i64)> for WallClock {
    fn process_element(
        &mut self,
        _key: u32,
        ctx: &mut KeyedContext<u32>,
        _out: &mut Collector<(u32, i64, String, i64)>,
    ) -> Result<(), UserError> {
        let at = ctx.current_processing_time() + 20;
        ctx.register_processing_time_timer(at);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<(u32, i64, String, i64)>,
    ) -> Result<(), UserError> {
        let domain = format!("{:?}", ctx.time_domain());
        out.collect((
            *ctx.current_key(),
            timestamp,
            domain,
            ctx.current_processing_time(),
        ));
        if self.fired.fetch_add(1, Ordering::SeqCst) + 1 == self.expected {
            self.done.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Runs [`KeysThenWait`] (pausing `pause` per empty poll) into [`WallClock`]
/// and returns what fired, sorted by key, after checking that the timers fired
/// while the source was still running.
fn run_wall_clock(pause: Duration) -> Vec<(u32, i64, String, i64)> {
    const KEYS: u32 = 6;
    let done = Arc::new(AtomicBool::new(false));
    let ended_by_done = Arc::new(Mutex::new(None));
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .add_source(KeysThenWait {
            keys: KEYS,
            pause,
            sent: false,
            done: done.clone(),
            deadline: None,
            ended_by_done: ended_by_done.clone(),
        })
        .key_by(|k: &u32| *k)
        .process(WallClock {
            expected: KEYS as usize,
            fired: Arc::new(AtomicUsize::new(0)),
            done,
        })
        .collect();
    env.execute_blocking("wall-clock").unwrap();

    assert_eq!(
        *ended_by_done.lock().unwrap(),
        Some(true),
        "the timers fired while the source was still running"
    );
    let mut fired = out.take();
    fired.sort();
    assert_eq!(
        fired.iter().map(|f| f.0).collect::<Vec<_>>(),
        (0..KEYS).collect::<Vec<_>>()
    );
    for (key, timestamp, domain, now) in &fired {
        assert_eq!(domain, "Some(ProcessingTime)", "key {key}");
        assert!(
            now >= timestamp,
            "key {key} fired at {now}, before {timestamp}"
        );
    }
    fired
}

#[test]
fn processing_time_timers_fire_by_the_wall_clock_in_a_running_job() {
    // The source spins (returns at once) while it has nothing to emit.
    run_wall_clock(Duration::ZERO);
}

#[test]
fn processing_time_timers_are_not_starved_by_a_source_that_waits_for_input() {
    for (key, timestamp, _, now) in run_wall_clock(Duration::from_millis(2)) {
        assert!(
            now - timestamp < 500,
            "key {key}: the timer at {timestamp} fired {} ms late",
            now - timestamp
        );
    }
}

/// Runs each keyed-state test once per backend, in a module per backend.
macro_rules! every_backend {
    ($($test:ident),* $(,)?) => {
        mod heap {
            $( #[test] fn $test() { super::$test() } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_full {
            $( #[test] fn $test() { super::with_rocksdb(false, super::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_incremental {
            $( #[test] fn $test() { super::with_rocksdb(true, super::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_uncached {
            $( #[test] fn $test() { super::with_rocksdb_entry_cache(0, super::$test) } )*
        }

        #[cfg(feature = "rocksdb")]
        mod rocksdb_evicting {
            $( #[test] fn $test() { super::with_rocksdb_entry_cache(300, super::$test) } )*
        }
    };
}

/// Runs `test` with a RocksDB backend in a temporary directory (small caches,
/// so that state goes to disk), with incremental or full harness snapshots.
#[cfg(feature = "rocksdb")]
fn with_rocksdb(incremental: bool, test: fn()) {
    with_rocksdb_backend(incremental, |backend| backend, test)
}

/// Runs `test` with incremental RocksDB snapshots and an entry cache of
/// `bytes` (0: none, every access goes to the database; a few hundred: an
/// eviction every few writes).
#[cfg(feature = "rocksdb")]
fn with_rocksdb_entry_cache(bytes: usize, test: fn()) {
    with_rocksdb_backend(true, |backend| backend.with_entry_cache_bytes(bytes), test)
}

#[cfg(feature = "rocksdb")]
fn with_rocksdb_backend(
    incremental: bool,
    configure: impl FnOnce(weir::state::RocksDbBackend) -> weir::state::RocksDbBackend,
    test: fn(),
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = weir::state::RocksDbBackend::new()
        .with_local_dirs([dir.path().join("local-a"), dir.path().join("local-b")])
        .with_block_cache_bytes(4 << 20)
        .with_write_buffer_bytes(4 << 20);
    let shared = dir.path().join("shared");
    weir::testing::with_state_backend(
        configure(backend),
        incremental.then_some(shared.as_path()),
        test,
    );
}

every_backend!(
    value_state_reads_updates_modifies_and_clears,
    a_value_state_default_is_read_modified_and_restored_by_clear,
    list_state_appends_replaces_and_clears,
    map_state_puts_gets_removes_and_lists_its_entries,
    reducing_state_folds_in_order_and_clears,
    aggregating_state_accumulates_and_reads_a_result,
    every_key_has_its_own_state,
    a_name_declared_with_another_kind_or_type_is_a_mismatch_naming_the_state,
    restored_state_opened_with_another_type_is_a_mismatch_naming_the_state,
    two_descriptors_with_the_same_name_and_type_share_the_state,
    a_record_of_a_key_group_the_subtask_does_not_own_is_refused,
    keyed_state_and_timers_continue_across_parallelism_1_3_2,
    a_snapshot_restored_at_the_same_parallelism_keeps_every_key,
    a_snapshot_holds_the_state_of_its_synchronous_part_whatever_changes_after,
    overlapping_snapshots_each_restore_the_state_of_their_synchronous_part,
    timers_fire_by_timestamp_then_registration_order_once_per_key_and_time,
    event_time_timers_fire_only_when_the_watermark_reaches_them,
    deleted_timers_do_not_fire,
    processing_time_timers_fire_by_the_harness_clock,
    on_timer_sees_its_key_domain_timestamp_watermark_and_state,
    records_see_their_timestamp_and_the_watermark_and_keep_the_timestamp_on_output,
    a_timer_registered_in_on_timer_at_or_before_the_watermark_fires_in_the_same_advance,
    timers_survive_a_snapshot_and_restore,
    rolling_sum_min_max_and_reduce_end_with_the_value_of_every_key,
    rolling_aggregate_ends_with_the_result_of_every_key,
    a_keyed_process_function_counts_every_key_in_a_job,
    a_keyed_function_counts_right_when_its_state_outgrows_the_caches,
    a_keyed_function_with_its_own_max_parallelism_sees_every_key_at_its_owner,
);

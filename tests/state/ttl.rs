//! State time-to-live as a function sees it: [`TtlStates`] keeps a value,
//! list, map, reducing and aggregating state with one [`TtlConfig`] and turns
//! each input [`Cmd`] into calls on them, so each test is a script of
//! commands at processing times (the harness's manual clock) or record
//! timestamps and watermarks, and the replies expected.
//!
//! Here: the command harness (shared with [`ttl_cleanup`](crate::ttl_cleanup)
//! and [`ttl_restore`](crate::ttl_restore)); expiry exactly at `write + ttl`
//! for every kind of state, update types, visibility, per-element expiry of
//! lists and maps, event time (in records and in `on_timer`), and bad
//! configurations (zero or negative time to live, a time to live on operator
//! or broadcast state).
//!
//! The tests are plain functions: `main.rs` runs each of them once per
//! backend (`every_backend!`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::ops::process::Process;
use weir::state::ttl::{TtlConfig, TtlTime, TtlUpdate, TtlVisibility};
use weir::state::{
    AggregatingStateDescriptor, BroadcastStateStore, KeyedStateStore, ListStateDescriptor,
    MapStateDescriptor, ReducingStateDescriptor, StateError, StateInitContext,
    ValueStateDescriptor,
};
use weir::testing::OperatorHarness;
use weir::{
    Collector, KeyedContext, KeyedProcessFunction, Lifecycle, ProcessContext, ProcessFunction,
    StateMetrics, UserError,
};

use crate::kit::{state_error, Average, Count, MAX_P};

/// One command on the states of the record's key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Cmd {
    /// Touches no state.
    Nothing,
    // ValueState<u64> "value".
    Put(u64),
    Get,
    /// `modify(|v| *v += n)`.
    Modify(u64),
    // ListState<u64> "list".
    ListAdd(u64),
    ListAddAll(Vec<u64>),
    ListUpdate(Vec<u64>),
    ListGet,
    // MapState<String, u64> "map".
    MapPut(String, u64),
    MapGet(String),
    MapContains(String),
    MapRemove(String),
    MapEntries,
    // ReducingState<u64> "sum" and AggregatingState<Average> "average".
    SumAdd(u64),
    SumGet,
    AvgAdd(u64),
    AvgGet,
    /// Writes `n` to all five: put, add, put (`n.to_string()` -> n), add, add.
    WriteAll(u64),
    /// Reads all five.
    ReadAll,
    /// Registers an event-time timer; `on_timer` puts the timer's time in
    /// "value", adds it to "list" and replies [`Reply::Fired`].
    TimerAt(i64),
}

/// What all five states read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct All {
    pub value: Option<u64>,
    pub list: Vec<u64>,
    pub map: Vec<(String, u64)>,
    pub sum: Option<u64>,
    pub average: Option<f64>,
}

impl All {
    /// Nothing in any state.
    pub(crate) fn none() -> All {
        All {
            value: None,
            list: Vec::new(),
            map: Vec::new(),
            sum: None,
            average: None,
        }
    }

    /// What [`Cmd::WriteAll`] of `n` alone leaves.
    pub(crate) fn one(n: u64) -> All {
        All {
            value: Some(n),
            list: vec![n],
            map: vec![(n.to_string(), n)],
            sum: Some(n),
            average: Some(n as f64),
        }
    }
}

/// What a command read (`Done` for commands that only write).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Reply {
    Done,
    Value(Option<u64>),
    Modified(Option<u64>),
    List(Vec<u64>),
    MapValue(Option<u64>),
    Contains(bool),
    Removed(Option<u64>),
    Map(Vec<(String, u64)>),
    Sum(Option<u64>),
    Average(Option<f64>),
    All(All),
    Fired(i64),
}

/// Five states with the same time to live (or none: the same states, plain).
#[derive(Clone)]
pub(crate) struct TtlStates {
    value: ValueStateDescriptor<u64>,
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<String, u64>,
    sum: ReducingStateDescriptor<u64>,
    average: AggregatingStateDescriptor<Average>,
}

impl TtlStates {
    pub(crate) fn new(ttl: Option<TtlConfig>) -> Self {
        let mut states = TtlStates {
            value: ValueStateDescriptor::new("value"),
            list: ListStateDescriptor::new("list"),
            map: MapStateDescriptor::new("map"),
            sum: ReducingStateDescriptor::new("sum", |a, b| a + b),
            average: AggregatingStateDescriptor::new("average", Average),
        };
        if let Some(ttl) = ttl {
            states.value = states.value.with_ttl(ttl.clone());
            states.list = states.list.with_ttl(ttl.clone());
            states.map = states.map.with_ttl(ttl.clone());
            states.sum = states.sum.with_ttl(ttl.clone());
            states.average = states.average.with_ttl(ttl);
        }
        states
    }

    fn read_all(&self, ctx: &mut KeyedContext<String>) -> Result<All, UserError> {
        let mut map = ctx.state(&self.map)?.entries();
        map.sort();
        Ok(All {
            value: ctx.state(&self.value)?.value(),
            list: ctx.state(&self.list)?.get(),
            map,
            sum: ctx.state(&self.sum)?.get(),
            average: ctx.state(&self.average)?.get(),
        })
    }
}

impl Lifecycle for TtlStates {}

impl KeyedProcessFunction<String, (String, Cmd), Reply> for TtlStates {
    fn process_element(
        &mut self,
        (_, cmd): (String, Cmd),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Reply>,
    ) -> Result<(), UserError> {
        let reply = match cmd {
            Cmd::Nothing => Reply::Done,
            Cmd::Put(v) => {
                ctx.state(&self.value)?.update(v);
                Reply::Done
            }
            Cmd::Get => Reply::Value(ctx.state(&self.value)?.value()),
            Cmd::Modify(n) => Reply::Modified(ctx.state(&self.value)?.modify(|v| {
                *v += n;
                *v
            })),
            Cmd::ListAdd(v) => {
                ctx.state(&self.list)?.add(v);
                Reply::Done
            }
            Cmd::ListAddAll(vs) => {
                ctx.state(&self.list)?.add_all(vs);
                Reply::Done
            }
            Cmd::ListUpdate(vs) => {
                ctx.state(&self.list)?.update(vs);
                Reply::Done
            }
            Cmd::ListGet => Reply::List(ctx.state(&self.list)?.get()),
            Cmd::MapPut(k, v) => {
                ctx.state(&self.map)?.put(k, v);
                Reply::Done
            }
            Cmd::MapGet(k) => Reply::MapValue(ctx.state(&self.map)?.get(&k)),
            Cmd::MapContains(k) => Reply::Contains(ctx.state(&self.map)?.contains(&k)),
            Cmd::MapRemove(k) => Reply::Removed(ctx.state(&self.map)?.remove(&k)),
            Cmd::MapEntries => {
                let mut entries = ctx.state(&self.map)?.entries();
                entries.sort();
                Reply::Map(entries)
            }
            Cmd::SumAdd(v) => {
                ctx.state(&self.sum)?.add(v);
                Reply::Done
            }
            Cmd::SumGet => Reply::Sum(ctx.state(&self.sum)?.get()),
            Cmd::AvgAdd(v) => {
                ctx.state(&self.average)?.add(v);
                Reply::Done
            }
            Cmd::AvgGet => Reply::Average(ctx.state(&self.average)?.get()),
            Cmd::WriteAll(n) => {
                ctx.state(&self.value)?.update(n);
                ctx.state(&self.list)?.add(n);
                ctx.state(&self.map)?.put(n.to_string(), n);
                ctx.state(&self.sum)?.add(n);
                ctx.state(&self.average)?.add(n);
                Reply::Done
            }
            Cmd::ReadAll => Reply::All(self.read_all(ctx)?),
            Cmd::TimerAt(t) => {
                ctx.register_event_time_timer(t);
                Reply::Done
            }
        };
        out.collect(reply);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Reply>,
    ) -> Result<(), UserError> {
        ctx.state(&self.value)?.update(timestamp as u64);
        ctx.state(&self.list)?.add(timestamp as u64);
        out.collect(Reply::Fired(timestamp));
        Ok(())
    }
}

pub(crate) type TtlHarness = OperatorHarness<(String, Cmd), Reply>;

/// Subtask `subtask` of `parallelism` of [`TtlStates`] with `ttl`, opened
/// (restored from `restored`, if given) at processing time `now`.
pub(crate) fn subtask(
    subtask: usize,
    parallelism: usize,
    ttl: Option<TtlConfig>,
    restored: Option<weir::runtime::snapshot::OperatorSnapshot>,
    now: i64,
) -> TtlHarness {
    let mut h = OperatorHarness::keyed(
        TtlStates::new(ttl),
        |r: &(String, Cmd)| r.0.clone(),
        subtask,
        parallelism,
        MAX_P,
    );
    h.set_processing_time(now);
    h.open(restored).unwrap();
    h
}

/// [`TtlStates`] with `ttl` as the only subtask, opened at processing time 0.
pub(crate) fn harness(ttl: TtlConfig) -> TtlHarness {
    subtask(0, 1, Some(ttl), None, 0)
}

/// A time to live of `ms` milliseconds, with the defaults.
pub(crate) fn ttl(ms: i64) -> TtlConfig {
    TtlConfig::from_millis(ms).unwrap()
}

/// Runs `cmds` for `key` at processing time `now` and returns the replies
/// of the read commands.
pub(crate) fn at(h: &mut TtlHarness, now: i64, key: &str, cmds: Vec<Cmd>) -> Vec<Reply> {
    h.set_processing_time(now);
    h.process(cmds.into_iter().map(|c| (key.to_string(), c)).collect())
        .unwrap();
    replies(h)
}

/// Runs `cmds` for `key` as records of timestamp `timestamp`.
pub(crate) fn stamped(h: &mut TtlHarness, timestamp: i64, key: &str, cmds: Vec<Cmd>) -> Vec<Reply> {
    h.process_with_timestamps(
        cmds.into_iter()
            .map(|c| ((key.to_string(), c), timestamp))
            .collect(),
    )
    .unwrap();
    replies(h)
}

fn replies(h: &mut TtlHarness) -> Vec<Reply> {
    h.take_output()
        .into_iter()
        .filter(|r| *r != Reply::Done)
        .collect()
}

/// What all five states of `key` read at processing time `now`.
pub(crate) fn read_all(h: &mut TtlHarness, now: i64, key: &str) -> All {
    match at(h, now, key, vec![Cmd::ReadAll]).as_slice() {
        [Reply::All(all)] => all.clone(),
        other => panic!("expected one reply, got {other:?}"),
    }
}

/// Keys with a value, per opened state, summed (what is physically stored:
/// the heap's tables, the RocksDB database).
pub(crate) fn stored(h: &TtlHarness) -> usize {
    h_keyed_state(h, |store: &KeyedStateStore<String>| store.entries())
}

fn h_keyed_state<R: Send + 'static>(
    h: &TtlHarness,
    look: impl FnOnce(&KeyedStateStore<String>) -> R + Send + 'static,
) -> R {
    h.keyed_state(look).expect("an open keyed harness")
}

/// The metrics of state `name` (expired entries removed, per way).
pub(crate) fn metrics(h: &TtlHarness, name: &str) -> StateMetrics {
    h.state_metrics()
        .into_iter()
        .find(|m| m.state == name)
        .unwrap_or_else(|| panic!("no metrics for state `{name}`"))
}

/// Whether the harness keeps its keyed state in RocksDB.
pub(crate) fn on_rocksdb(h: &TtlHarness) -> bool {
    h_keyed_state(h, |store: &KeyedStateStore<String>| store.prefetches())
}

pub(crate) const STATES: [&str; 5] = ["value", "list", "map", "sum", "average"];

// ------------------------------------------------------------------ expiry

pub(crate) fn every_kind_of_state_expires_exactly_ttl_after_its_write() {
    let mut h = harness(ttl(100));
    at(&mut h, 1_000, "k", vec![Cmd::WriteAll(7)]);
    assert_eq!(read_all(&mut h, 1_099, "k"), All::one(7), "1 ms before");
    assert_eq!(read_all(&mut h, 1_100, "k"), All::none(), "at write + ttl");
    // Expired means gone, not hidden for a while: nothing comes back.
    assert_eq!(read_all(&mut h, 1_101, "k"), All::none());
    assert_eq!(stored(&h), 0);
    // A new write starts afresh, the reducing and aggregating states too.
    at(&mut h, 2_000, "k", vec![Cmd::WriteAll(3)]);
    assert_eq!(read_all(&mut h, 2_099, "k"), All::one(3));
}

pub(crate) fn a_read_restarts_the_clock_only_with_on_read_and_write() {
    let mut h = harness(ttl(100));
    at(&mut h, 0, "k", vec![Cmd::WriteAll(1)]);
    assert_eq!(read_all(&mut h, 60, "k"), All::one(1));
    assert_eq!(
        read_all(&mut h, 100, "k"),
        All::none(),
        "OnCreateAndWrite: reads do not extend"
    );

    let mut h = harness(ttl(100).update_type(TtlUpdate::OnReadAndWrite));
    at(&mut h, 0, "k", vec![Cmd::WriteAll(1)]);
    assert_eq!(read_all(&mut h, 60, "k"), All::one(1));
    assert_eq!(
        read_all(&mut h, 159, "k"),
        All::one(1),
        "read at 60: to 160"
    );
    assert_eq!(
        read_all(&mut h, 258, "k"),
        All::one(1),
        "read at 159: to 259"
    );
    assert_eq!(
        read_all(&mut h, 358, "k"),
        All::none(),
        "read at 258: to 358"
    );
}

pub(crate) fn a_write_restarts_the_clock_of_what_it_writes() {
    let mut h = harness(ttl(100));
    at(&mut h, 0, "k", vec![Cmd::WriteAll(1)]);
    at(&mut h, 50, "k", vec![Cmd::WriteAll(2)]);
    // The list and the map keep the first element and entry to 100; the
    // others were rewritten (reduced, accumulated) at 50.
    assert_eq!(
        read_all(&mut h, 120, "k"),
        All {
            value: Some(2),
            list: vec![2],
            map: vec![("2".into(), 2)],
            sum: Some(3),
            average: Some(1.5),
        }
    );
    assert_eq!(read_all(&mut h, 150, "k"), All::none());

    // modify is a write; on an expired value without a default it is nothing.
    at(&mut h, 1_000, "v", vec![Cmd::Put(5)]);
    assert_eq!(
        at(&mut h, 1_050, "v", vec![Cmd::Modify(1)]),
        vec![Reply::Modified(Some(6))]
    );
    assert_eq!(
        at(&mut h, 1_149, "v", vec![Cmd::Get]),
        vec![Reply::Value(Some(6))]
    );
    assert_eq!(
        at(&mut h, 1_150, "v", vec![Cmd::Modify(1), Cmd::Get]),
        vec![Reply::Modified(None), Reply::Value(None)]
    );
}

pub(crate) fn an_expired_entry_is_returned_once_if_visible_until_cleaned_up() {
    let config = ttl(100)
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp)
        .disable_cleanup_in_background();
    let mut h = harness(config);
    at(&mut h, 0, "k", vec![Cmd::WriteAll(4)]);
    assert_eq!(
        read_all(&mut h, 100, "k"),
        All::one(4),
        "expired, still there"
    );
    assert_eq!(
        read_all(&mut h, 100, "k"),
        All::none(),
        "the read removed it"
    );

    // A list returns its expired elements once, with the live ones, in order.
    at(&mut h, 0, "l", vec![Cmd::ListAdd(1)]);
    at(&mut h, 50, "l", vec![Cmd::ListAdd(2)]);
    assert_eq!(
        at(&mut h, 120, "l", vec![Cmd::ListGet, Cmd::ListGet]),
        vec![Reply::List(vec![1, 2]), Reply::List(vec![2])]
    );
    // A map entry too, by get and by remove.
    at(&mut h, 0, "m", vec![Cmd::MapPut("a".into(), 1)]);
    at(&mut h, 0, "m", vec![Cmd::MapPut("b".into(), 2)]);
    assert_eq!(
        at(
            &mut h,
            100,
            "m",
            vec![
                Cmd::MapGet("a".into()),
                Cmd::MapGet("a".into()),
                Cmd::MapRemove("b".into()),
                Cmd::MapEntries,
            ]
        ),
        vec![
            Reply::MapValue(Some(1)),
            Reply::MapValue(None),
            Reply::Removed(Some(2)),
            Reply::Map(vec![]),
        ]
    );
}

pub(crate) fn never_return_expired_hides_an_expired_entry_and_removes_it_on_read() {
    let mut h = harness(ttl(100).disable_cleanup_in_background());
    at(&mut h, 0, "k", vec![Cmd::WriteAll(4)]);
    h.set_processing_time(100);
    assert_eq!(stored(&h), 5, "expired, still stored");
    assert_eq!(read_all(&mut h, 100, "k"), All::none());
    assert_eq!(stored(&h), 0, "removed by the read");
    for state in STATES {
        assert_eq!(metrics(&h, state).expired_on_read, 1, "{state}");
    }
    // Removing or testing an expired map entry finds nothing either.
    at(&mut h, 0, "m", vec![Cmd::MapPut("a".into(), 1)]);
    assert_eq!(
        at(
            &mut h,
            100,
            "m",
            vec![Cmd::MapContains("a".into()), Cmd::MapRemove("a".into())]
        ),
        vec![Reply::Contains(false), Reply::Removed(None)]
    );
}

pub(crate) fn list_elements_expire_one_by_one_and_the_survivors_keep_their_order() {
    let mut h = harness(ttl(100));
    at(&mut h, 0, "k", vec![Cmd::ListAdd(1)]);
    at(&mut h, 10, "k", vec![Cmd::ListAdd(2)]);
    at(&mut h, 20, "k", vec![Cmd::ListAddAll(vec![3, 4])]);
    at(&mut h, 30, "k", vec![Cmd::ListAdd(5)]);
    assert_eq!(
        at(&mut h, 109, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![2, 3, 4, 5])]
    );
    assert_eq!(
        at(&mut h, 110, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![3, 4, 5])]
    );
    assert_eq!(
        at(&mut h, 125, "k", vec![Cmd::ListAdd(6), Cmd::ListGet]),
        vec![Reply::List(vec![5, 6])]
    );
    assert_eq!(
        at(&mut h, 130, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![6])]
    );
    // update replaces the list: every element lives from the update.
    assert_eq!(
        at(
            &mut h,
            140,
            "k",
            vec![Cmd::ListUpdate(vec![8, 9]), Cmd::ListAdd(7)]
        ),
        vec![]
    );
    assert_eq!(
        at(&mut h, 239, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![8, 9, 7])]
    );
    assert_eq!(
        at(&mut h, 240, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![])]
    );
}

pub(crate) fn map_entries_expire_one_by_one() {
    let mut h = harness(ttl(100));
    at(&mut h, 0, "k", vec![Cmd::MapPut("a".into(), 1)]);
    at(&mut h, 50, "k", vec![Cmd::MapPut("b".into(), 2)]);
    assert_eq!(
        at(
            &mut h,
            100,
            "k",
            vec![
                Cmd::MapGet("a".into()),
                Cmd::MapContains("b".into()),
                Cmd::MapEntries,
            ]
        ),
        vec![
            Reply::MapValue(None),
            Reply::Contains(true),
            Reply::Map(vec![("b".into(), 2)]),
        ]
    );
    at(&mut h, 120, "k", vec![Cmd::MapPut("a".into(), 3)]);
    assert_eq!(
        at(&mut h, 150, "k", vec![Cmd::MapEntries]),
        vec![Reply::Map(vec![("a".into(), 3)])]
    );
    assert_eq!(
        at(
            &mut h,
            219,
            "k",
            vec![Cmd::MapRemove("a".into()), Cmd::MapEntries]
        ),
        vec![Reply::Removed(Some(3)), Reply::Map(vec![])]
    );
}

// -------------------------------------------------------------- event time

pub(crate) fn event_time_entries_are_stamped_with_the_record_timestamp_and_expire_by_the_watermark()
{
    let mut h = harness(ttl(100).time(TtlTime::EventTime));
    stamped(&mut h, 1_000, "k", vec![Cmd::WriteAll(1)]);
    stamped(&mut h, 1_050, "k", vec![Cmd::ListAdd(2)]);
    // Processing time does not count.
    h.set_processing_time(1_000_000);
    h.watermark(1_099).unwrap();
    assert_eq!(
        read_all(&mut h, 1_000_000, "k"),
        All {
            list: vec![1, 2],
            ..All::one(1)
        }
    );
    h.watermark(1_100).unwrap();
    assert_eq!(
        read_all(&mut h, 1_000_000, "k"),
        All {
            list: vec![2],
            ..All::none()
        }
    );
    h.watermark(1_150).unwrap();
    assert_eq!(read_all(&mut h, 1_000_000, "k"), All::none());

    // A record without a timestamp is stamped with the watermark.
    h.watermark(2_000).unwrap();
    at(&mut h, 0, "w", vec![Cmd::Put(9)]);
    h.watermark(2_099).unwrap();
    assert_eq!(
        at(&mut h, 0, "w", vec![Cmd::Get]),
        vec![Reply::Value(Some(9))]
    );
    h.watermark(2_100).unwrap();
    assert_eq!(at(&mut h, 0, "w", vec![Cmd::Get]), vec![Reply::Value(None)]);
}

pub(crate) fn in_on_timer_an_event_time_entry_is_stamped_with_the_timer_time() {
    let mut h = harness(ttl(100).time(TtlTime::EventTime));
    stamped(&mut h, 0, "k", vec![Cmd::TimerAt(500)]);
    // The timer fires at 500 while the watermark is 550: the entries it
    // writes live to 600, not 650.
    h.watermark(550).unwrap();
    assert_eq!(h.take_output(), vec![Reply::Fired(500)]);
    h.watermark(599).unwrap();
    assert_eq!(
        stamped(&mut h, 599, "k", vec![Cmd::Get, Cmd::ListGet]),
        vec![Reply::Value(Some(500)), Reply::List(vec![500])]
    );
    h.watermark(600).unwrap();
    assert_eq!(
        stamped(&mut h, 600, "k", vec![Cmd::Get, Cmd::ListGet]),
        vec![Reply::Value(None), Reply::List(vec![])]
    );
}

// ---------------------------------------------------------- configuration

pub(crate) fn bad_ttl_configurations_are_errors_naming_the_state() {
    for ms in [0, -5] {
        let err = TtlConfig::from_millis(ms).unwrap_err();
        assert!(matches!(err, StateError::InvalidTtl { .. }), "{err:?}");
        assert!(err.to_string().contains("must be positive"), "{err}");
        assert!(err.to_string().contains(&format!("{ms} ms")), "{err}");
    }
    let cases = [
        (TtlConfig::new(Duration::ZERO), "at least 1 ms"),
        (TtlConfig::new(Duration::from_micros(999)), "at least 1 ms"),
        (
            ttl(100).cleanup_incrementally(0, true),
            "at least 1 entry per step",
        ),
        (ttl(100).cleanup_within(Duration::ZERO), "`cleanup_within`"),
    ];
    for (config, expected) in cases {
        let mut h = OperatorHarness::keyed(
            Count(ValueStateDescriptor::<u64>::new("seen").with_ttl(config)),
            |v: &u32| *v,
            0,
            1,
            MAX_P,
        );
        h.open(None).unwrap();
        match state_error(h.process(vec![1]).unwrap_err()) {
            StateError::InvalidTtl { message, .. } => {
                assert!(message.contains("state `seen`"), "{message}");
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("expected InvalidTtl, got {other:?}"),
        }
    }
}

/// Opens an operator list state (even-split or union) with a time to live.
#[derive(Clone)]
struct OperatorStateWithTtl {
    union: bool,
}

impl Lifecycle for OperatorStateWithTtl {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let descriptor = ListStateDescriptor::<u64>::new("buffer").with_ttl(ttl(1_000));
        match self.union {
            true => ctx.operator_state().union_list(&descriptor)?,
            false => ctx.operator_state().list(&descriptor)?,
        };
        Ok(())
    }
}

impl ProcessFunction<u64, u64> for OperatorStateWithTtl {
    fn process_element(
        &mut self,
        _: u64,
        _: &mut ProcessContext,
        _: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

pub(crate) fn operator_and_broadcast_state_refuse_a_ttl() {
    for union in [false, true] {
        let mut h: OperatorHarness<u64, u64> =
            OperatorHarness::new(Process::new(OperatorStateWithTtl { union }), 0, 1, MAX_P);
        match state_error(h.open(None).unwrap_err()) {
            StateError::InvalidTtl { message, .. } => {
                assert!(message.contains("operator state `buffer`"), "{message}");
                assert!(message.contains("cannot have a time to live"), "{message}");
            }
            other => panic!("expected InvalidTtl, got {other:?}"),
        }
    }
    let mut broadcast = BroadcastStateStore::default();
    let rules = MapStateDescriptor::<String, u64>::new("rules").with_ttl(ttl(1_000));
    match broadcast.state(&rules).err() {
        Some(StateError::InvalidTtl { message, .. }) => {
            assert!(message.contains("broadcast state `rules`"), "{message}");
        }
        other => panic!("expected InvalidTtl, got {other:?}"),
    }
    let err = broadcast.read_only(&rules).err().expect("refused");
    assert!(err.to_string().contains("time to live"), "{err}");
}

/// Opens state "n" through two descriptors with different times to live.
#[derive(Clone)]
struct TwoConfigs(ValueStateDescriptor<u64>, ValueStateDescriptor<u64>);

impl Lifecycle for TwoConfigs {}

impl KeyedProcessFunction<u32, u32, u64> for TwoConfigs {
    fn process_element(
        &mut self,
        _: u32,
        ctx: &mut KeyedContext<u32>,
        _: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.0)?.update(1);
        ctx.state(&self.1)?.update(2);
        Ok(())
    }
}

pub(crate) fn one_state_opened_with_two_different_times_to_live_is_an_error_naming_it() {
    let function = TwoConfigs(
        ValueStateDescriptor::new("n").with_ttl(ttl(100)),
        ValueStateDescriptor::new("n").with_ttl(ttl(200)),
    );
    let mut h = OperatorHarness::keyed(function, |v: &u32| *v, 0, 1, MAX_P);
    h.open(None).unwrap();
    match state_error(h.process(vec![1]).unwrap_err()) {
        StateError::InvalidTtl { message, .. } => {
            assert!(message.contains("state `n`"), "{message}");
            assert!(message.contains("two different time-to-live"), "{message}");
        }
        other => panic!("expected InvalidTtl, got {other:?}"),
    }
}

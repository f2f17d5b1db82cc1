//! What the state tests share: the maximum parallelism [`MAX_P`] of every
//! harness, [`Average`] (an aggregating function), the command harness
//! ([`AllStates`] run by [`command_harness`], driven with [`Op`]s by [`run`],
//! answering with [`Reply`]s) that `keyed_state` and `snapshots` use,
//! [`Count`] (a keyed counter over whichever value-state descriptor it is
//! given) and [`state_error`].

use serde::{Deserialize, Serialize};
use weir::state::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateError, ValueStateDescriptor, ValueStateWithDefault,
};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

pub(crate) const MAX_P: usize = 128;

/// The average of the values added (an [`AggregateFunction`] whose
/// accumulator differs from its input and output).
#[derive(Clone)]
pub(crate) struct Average;

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

    fn merge(&self, acc: &mut (u64, u64), other: (u64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
}

// ------------------------------------------------------------ keyed semantics

/// One call on one state of the current key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Op {
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
pub(crate) enum Reply {
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
pub(crate) struct AllStates {
    plain: ValueStateDescriptor<u64>,
    with_default: ValueStateWithDefault<u64>,
    list: ListStateDescriptor<u64>,
    map: MapStateDescriptor<String, u64>,
    concat: ReducingStateDescriptor<String>,
    average: AggregatingStateDescriptor<Average>,
}

impl AllStates {
    pub(crate) fn new() -> Self {
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

pub(crate) type CommandHarness = OperatorHarness<(String, Op), Reply>;

pub(crate) fn command_harness() -> CommandHarness {
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
pub(crate) fn run(h: &mut CommandHarness, key: &str, ops: Vec<Op>) -> Vec<Reply> {
    h.process(ops.into_iter().map(|op| (key.to_string(), op)).collect())
        .unwrap();
    h.take_output()
        .into_iter()
        .filter(|r| *r != Reply::Done)
        .collect()
}

/// Counts records per key with whichever descriptor it is given.
#[derive(Clone)]
pub(crate) struct Count<D>(pub(crate) D);

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

/// The [`StateError`] in a harness call's error.
pub(crate) fn state_error(err: UserError) -> StateError {
    match err.downcast::<StateError>() {
        Ok(e) => *e,
        Err(other) => panic!("expected a StateError, got {other}"),
    }
}

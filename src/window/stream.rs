//! The window API on streams: `key_by(..).window(assigner)` (and
//! `count_window`, `window_all`) gives a [`WindowedStream`], configured with
//! a trigger, an evictor, allowed lateness and a late-data side output, and
//! turned into a stream by `reduce`, `aggregate` or `process` (alone, or an
//! incremental `reduce`/`aggregate` combined with a process function).

use std::sync::Arc;
use std::time::Duration;

use crate::data::Data;
use crate::side_output::OutputTag;
use crate::state::{AggregateFunction, Key, StateData};
use crate::stream::{DataStream, KeyedStream};

use super::assigners::{millis, GlobalWindows, WindowAssigner};
use super::engine::EngineSpec;
use super::evictors::{CountEvictor, Evictor, NoEvictor};
use super::functions::{
    AggregateFold, AllElements, Evicting, Fold, Folded, Incremental, PassThrough,
    ProcessWindowFunction, ReduceFold, WindowLogic,
};
use super::general::{GeneralEngine, WindowSpec};
use super::operator::{WindowEngine, WindowOperator};
use super::sessions::SessionEngine;
use super::slicing::SliceEngine;
use super::triggers::{CountTrigger, PurgingTrigger, Trigger};

/// A keyed stream cut into windows, waiting for its window function (Flink's
/// `WindowedStream`). `A` assigns windows, `Tr` fires them, `E` evicts.
pub struct WindowedStream<T, K, A, Tr, E> {
    keyed: KeyedStream<T, K>,
    assigner: A,
    trigger: Tr,
    evictor: E,
    allowed_lateness: i64,
    late_tag: Option<OutputTag<T>>,
    /// `window_all`: one subtask sees every record.
    all: bool,
    /// Whether the trigger is the assigner's default (no `trigger(..)`).
    default_trigger: bool,
}

impl<T: StateData, K: Key + Data> KeyedStream<T, K> {
    /// Windows each key's records by `assigner` (its default trigger, no
    /// evictor, no allowed lateness).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::time::WatermarkStrategy;
    /// use weir::window::TumblingEventTimeWindows;
    /// use weir::StreamEnv;
    ///
    /// let env = StreamEnv::with_parallelism(1);
    /// // (sensor, time, reading)
    /// let readings = vec![(1_u8, 1_i64, 5_u64), (1, 1_500, 7), (2, 200, 1), (1, 900, 3)];
    /// let sums = env
    ///     .from_collection(readings)
    ///     .assign_timestamps_and_watermarks(WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(1)).with_timestamp_assigner(|r: &(u8, i64, u64)| r.1))
    ///     .key_by(|r| r.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .reduce(|a, b| (a.0, a.1.max(b.1), a.2 + b.2))
    ///     .collect();
    /// env.execute_blocking("sums").unwrap();
    /// let mut got = sums.take();
    /// got.sort();
    /// assert_eq!(got, vec![(1, 900, 8), (1, 1_500, 7), (2, 200, 1)]);
    /// ```
    pub fn window<A: WindowAssigner<T>>(
        self,
        assigner: A,
    ) -> WindowedStream<T, K, A, A::DefaultTrigger, NoEvictor> {
        let trigger = assigner.default_trigger();
        WindowedStream {
            keyed: self,
            assigner,
            trigger,
            evictor: NoEvictor,
            allowed_lateness: 0,
            late_tag: None,
            all: false,
            default_trigger: true,
        }
    }

    /// Windows of `size` elements per key, each firing when full (Flink's
    /// `countWindow(size)`: global windows, a purging count trigger).
    pub fn count_window(
        self,
        size: u64,
    ) -> WindowedStream<T, K, GlobalWindows, PurgingTrigger<CountTrigger>, NoEvictor> {
        self.window(GlobalWindows)
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
    }

    /// The last `size` elements per key, firing every `slide` elements
    /// (Flink's `countWindow(size, slide)`).
    pub fn count_window_sliding(
        self,
        size: u64,
        slide: u64,
    ) -> WindowedStream<T, K, GlobalWindows, CountTrigger, CountEvictor> {
        self.window(GlobalWindows)
            .evictor(CountEvictor::of(
                usize::try_from(size).unwrap_or(usize::MAX),
            ))
            .trigger(CountTrigger::of(slide))
    }
}

impl<T: StateData> DataStream<T> {
    /// Windows the whole stream (not keyed) by `assigner`; the window
    /// operator runs as one subtask (Flink's `windowAll`).
    pub fn window_all<A: WindowAssigner<T>>(
        self,
        assigner: A,
    ) -> WindowedStream<T, (), A, A::DefaultTrigger, NoEvictor> {
        let mut windowed = self.key_by(|_| ()).window(assigner);
        windowed.all = true;
        windowed
    }
}

impl<T, K, A, Tr, E> WindowedStream<T, K, A, Tr, E>
where
    T: StateData,
    K: Key + Data,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    E: Evictor<T, A::W>,
{
    /// Fires windows by `trigger` instead of the assigner's default.
    pub fn trigger<Tr2: Trigger<T, A::W>>(self, trigger: Tr2) -> WindowedStream<T, K, A, Tr2, E> {
        WindowedStream {
            keyed: self.keyed,
            assigner: self.assigner,
            trigger,
            evictor: self.evictor,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            all: self.all,
            default_trigger: false,
        }
    }

    /// Removes elements before or after the function runs (the windows keep
    /// their elements instead of aggregating incrementally).
    pub fn evictor<E2: Evictor<T, A::W>>(self, evictor: E2) -> WindowedStream<T, K, A, Tr, E2> {
        WindowedStream {
            keyed: self.keyed,
            assigner: self.assigner,
            trigger: self.trigger,
            evictor,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag,
            all: self.all,
            default_trigger: self.default_trigger,
        }
    }

    /// Keeps event-time windows for `lateness` after their end: a late
    /// element within it is added and the window fires again (default 0).
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = millis(lateness);
        self
    }

    /// Sends elements too late for every window they belong to to the side
    /// output `tag` (`result.side_output(&tag)`), instead of dropping them.
    /// Either way they are counted (`late_records` in the job's counters).
    pub fn side_output_late_data(mut self, tag: &OutputTag<T>) -> Self {
        self.late_tag = Some(tag.clone());
        self
    }

    /// Each window's elements folded by `reduce`, incrementally.
    pub fn reduce<F>(self, reduce: F) -> DataStream<T>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        self.reduce_with(reduce, PassThrough::default())
    }

    /// Each window's elements folded by `reduce`, incrementally; `function`
    /// gets the result with the window.
    pub fn reduce_with<F, P, Out>(self, reduce: F, function: P) -> DataStream<Out>
    where
        F: Fn(T, T) -> T + Send + Sync + 'static,
        P: ProcessWindowFunction<K, T, Out, A::W>,
        Out: Data,
    {
        self.folded("Reduce", ReduceFold(Arc::new(reduce)), function)
    }

    /// Each window's elements fed to `function` (an [`AggregateFunction`],
    /// whose `merge` joins session windows), incrementally.
    pub fn aggregate<G>(self, function: G) -> DataStream<G::Out>
    where
        G: AggregateFunction<In = T>,
        G::Out: Data,
    {
        self.aggregate_with(function, PassThrough::default())
    }

    /// The incremental aggregate of each window, given with the window to
    /// `function` (Flink's `aggregate(aggFunction, windowFunction)`).
    pub fn aggregate_with<G, P, Out>(self, aggregate: G, function: P) -> DataStream<Out>
    where
        G: AggregateFunction<In = T>,
        P: ProcessWindowFunction<K, G::Out, Out, A::W>,
        Out: Data,
    {
        self.folded("Aggregate", AggregateFold(Arc::new(aggregate)), function)
    }

    /// Each window's elements, all of them, given to `function` when it fires.
    pub fn process<P, Out>(self, function: P) -> DataStream<Out>
    where
        P: ProcessWindowFunction<K, T, Out, A::W>,
        Out: Data,
    {
        let logic = Evicting {
            evictor: self.evictor.clone(),
            elements: AllElements,
            function,
        };
        self.build("Process", logic)
    }

    /// An incremental fold without an evictor (with the default trigger: on
    /// the slice engine if the assigner slices, on the session engine for
    /// sessions); with one, the fold runs over what the evictor leaves when
    /// the window fires.
    fn folded<F, P, Out>(self, what: &str, fold: F, function: P) -> DataStream<Out>
    where
        F: Fold<T>,
        P: ProcessWindowFunction<K, F::Out, Out, A::W>,
        Out: Data,
    {
        if self.default_trigger && self.evictor.is_none() {
            if let Some(slicing) = self.assigner.slicing() {
                let name = self.name(what);
                let engine = SliceEngine::new(self.engine_spec(slicing, fold, function));
                return add_window_operator(self.keyed, self.all, &name, engine);
            }
            if let Some(sessions) = self.assigner.sessions() {
                let name = self.name(what);
                let engine = SessionEngine::new(self.engine_spec(sessions, fold, function));
                return add_window_operator(self.keyed, self.all, &name, engine);
            }
        }
        if self.evictor.is_none() {
            self.build(what, Incremental { fold, function })
        } else {
            let logic = Evicting {
                evictor: self.evictor.clone(),
                elements: Folded(fold),
                function,
            };
            self.build(what, logic)
        }
    }

    /// What a window engine is built from, its windows made by `shape`.
    fn engine_spec<F, P, S>(&self, shape: S, fold: F, function: P) -> EngineSpec<T, F, P, S> {
        EngineSpec {
            shape,
            settings: self.assigner.validate(),
            fold,
            function,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag.clone(),
        }
    }

    /// The operator's name: `Window(assigner, trigger[, evictor], function)`.
    fn name(&self, what: &str) -> String {
        let evictor = self.evictor.describe();
        let evictor = if evictor.is_empty() {
            String::new()
        } else {
            format!(", {evictor}")
        };
        format!(
            "Window({}, {}{evictor}, {what})",
            self.assigner.describe(),
            self.trigger.describe()
        )
    }

    fn build<L, Out>(self, what: &str, logic: L) -> DataStream<Out>
    where
        L: WindowLogic<K, T, A::W, Out>,
        Out: Data,
    {
        let name = self.name(what);
        let engine: GeneralEngine<K, T, Out, A, Tr, L> = GeneralEngine::new(WindowSpec {
            assigner: self.assigner,
            trigger: self.trigger.clone(),
            logic,
            allowed_lateness: self.allowed_lateness,
            late_tag: self.late_tag.clone(),
        });
        add_window_operator(self.keyed, self.all, &name, engine)
    }
}

/// Adds the window operator running `engine` (one subtask for `window_all`).
fn add_window_operator<T: Data, K: Key + Data, Out: Data>(
    mut keyed: KeyedStream<T, K>,
    all: bool,
    name: &str,
    engine: impl WindowEngine<K, T, Out>,
) -> DataStream<Out> {
    let backend = keyed.env_handle().backend_cell();
    let migration = keyed.take_key_migration();
    let from = migration.as_ref().map(|m| m.from);
    let operator =
        WindowOperator::new(engine, keyed.key_selector(), backend).with_key_migration(migration);
    let states = crate::stream::declared_states(&operator);
    let stream = keyed
        .transform(name, operator)
        .with_declared_states(states)
        .with_keys_migrated_from(from);
    if all {
        stream.set_parallelism(1)
    } else {
        stream
    }
}

//! `process` on a keyed stream: a function with keyed state and timers.

use std::sync::Arc;

use weir_actors::{RecordBatch, UserError};

use super::keyed_core::{KeyedCore, TimersAndSide};
use crate::context::RuntimeContext;
use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::{Collector, OneInputOperator};
use crate::side_output::OutputTag;
use crate::state::timers::TimeDomain;
use crate::state::{
    BroadcastStateStore, Key, KeyedStateStore, MapStateDescriptor, ReadOnlyBroadcastState,
    StateData, StateDescriptor, StateError, StateInitContext, StateSnapshotContext,
};

/// What a [`KeyedProcessFunction`] sees while it handles a record or a timer:
/// the key in scope, its state, timers and time.
pub struct KeyedContext<'a, K> {
    pub(crate) key: &'a K,
    pub(crate) group: usize,
    pub(crate) timestamp: Option<i64>,
    pub(crate) watermark: i64,
    pub(crate) domain: Option<TimeDomain>,
    pub(crate) store: &'a mut KeyedStateStore<K>,
    pub(crate) timers: &'a mut TimersAndSide<K>,
    pub(crate) runtime: &'a RuntimeContext,
    pub(crate) broadcast: Option<&'a mut BroadcastStateStore>,
}

impl<K: Key> KeyedContext<'_, K> {
    /// The key of the record or timer being handled.
    pub fn current_key(&self) -> &K {
        self.key
    }

    /// The record's timestamp, or the timer's, if there is one.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's current watermark (`i64::MIN` before the first).
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The current processing time (ms since the epoch), as read when the
    /// batch or timer round began (a test harness's clock, if it set one).
    pub fn current_processing_time(&self) -> i64 {
        self.store.time().processing
    }

    /// In `on_timer`: which kind of timer fired; `None` while handling a record.
    pub fn time_domain(&self) -> Option<TimeDomain> {
        self.domain
    }

    /// Where this instance runs.
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }

    /// Opens `descriptor`'s state for the current key.
    #[inline(always)]
    pub fn state<'c, D: StateDescriptor>(
        &'c mut self,
        descriptor: &'c D,
    ) -> Result<D::Ref<'c, K>, StateError> {
        self.store
            .open_at(descriptor, self.key, self.group, self.timestamp)
    }

    /// Reads `descriptor`'s broadcast state (only in the keyed side of a
    /// keyed-broadcast connection; elsewhere an error).
    pub fn broadcast_state<'c, UK: Key, UV: StateData>(
        &'c mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<ReadOnlyBroadcastState<'c, UK, UV>, StateError> {
        match self.broadcast.as_deref_mut() {
            Some(store) => store.read_only(descriptor),
            None => Err(StateError::Unavailable(
                "broadcast state is only available to functions on a stream connected to a broadcast stream".into(),
            )),
        }
    }

    /// Emits `value` to the side output `tag` (see [`crate::side_output`]),
    /// with the timestamp of the record or timer being handled.
    pub fn output<S: crate::Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.timers.side.push(tag, value, self.timestamp);
    }

    /// Calls `on_timer` for the current key once the watermark reaches `timestamp`.
    pub fn register_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event_time.register(self.key.clone(), timestamp);
    }

    /// Deletes the current key's event-time timer at `timestamp`.
    pub fn delete_event_time_timer(&mut self, timestamp: i64) {
        self.timers.event_time.delete(self.key, timestamp);
    }

    /// Calls `on_timer` for the current key once the wall clock reaches `timestamp`.
    pub fn register_processing_time_timer(&mut self, timestamp: i64) {
        self.timers
            .processing_time
            .register(self.key.clone(), timestamp);
    }

    /// Deletes the current key's processing-time timer at `timestamp`.
    pub fn delete_processing_time_timer(&mut self, timestamp: i64) {
        self.timers.processing_time.delete(self.key, timestamp);
    }
}

/// A function over a keyed stream, with keyed state and timers (as Flink's
/// `KeyedProcessFunction`). One instance runs per subtask, cloned from the value
/// given to [`KeyedStream::process`](crate::KeyedStream::process).
///
/// ```
/// use weir::state::ValueStateDescriptor;
/// use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};
///
/// /// Emits a key once it has been quiet for 10 s of event time.
/// #[derive(Clone)]
/// struct Quiet { last: ValueStateDescriptor<i64> }
///
/// impl Lifecycle for Quiet {}
///
/// impl KeyedProcessFunction<u32, (u32, i64), u32> for Quiet {
///     fn process_element(&mut self, _e: (u32, i64), ctx: &mut KeyedContext<u32>, _out: &mut Collector<u32>) -> Result<(), UserError> {
///         let at = ctx.timestamp().unwrap_or_default() + 10_000;
///         if let Some(previous) = ctx.state(&self.last)?.value() {
///             ctx.delete_event_time_timer(previous);
///         }
///         ctx.state(&self.last)?.update(at);
///         ctx.register_event_time_timer(at);
///         Ok(())
///     }
///
///     fn on_timer(&mut self, _t: i64, ctx: &mut KeyedContext<u32>, out: &mut Collector<u32>) -> Result<(), UserError> {
///         out.collect(*ctx.current_key());
///         ctx.state(&self.last)?.clear();
///         Ok(())
///     }
/// }
/// ```
pub trait KeyedProcessFunction<K, In, Out>: Lifecycle + Clone + Send + 'static {
    /// Handles one record, with its key in scope.
    fn process_element(
        &mut self,
        value: In,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// A timer registered for `ctx.current_key()` at `timestamp` fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedContext<K>,
        _out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

pub(crate) type KeySelector<In, K> = Arc<dyn Fn(&In) -> K + Send + Sync>;

/// Runs a [`KeyedProcessFunction`] as a [`OneInputOperator`], owning its keyed
/// state store and timers.
pub struct KeyedProcess<K, In, F> {
    function: F,
    key: KeySelector<In, K>,
    core: KeyedCore<K>,
}

impl<K, In, F: Clone> Clone for KeyedProcess<K, In, F> {
    /// A fresh instance: same function and key, no state.
    fn clone(&self) -> Self {
        KeyedProcess {
            function: self.function.clone(),
            key: self.key.clone(),
            core: self.core.fresh(),
        }
    }
}

impl<K, In, F> KeyedProcess<K, In, F> {
    /// The operator running `function` on records keyed by `key`.
    pub fn new(function: F, key: KeySelector<In, K>) -> Self {
        KeyedProcess {
            function,
            key,
            core: KeyedCore::default(),
        }
    }

    /// Reads processing time from `clock` (a test harness's) instead of the wall clock.
    pub(crate) fn with_clock(mut self, clock: super::keyed_core::ManualClock) -> Self {
        self.core = std::mem::take(&mut self.core).with_clock(clock);
        self
    }

    /// Keeps keyed state in the backend the job resolves to.
    pub(crate) fn with_backend(mut self, backend: crate::state::BackendCell) -> Self {
        self.core = KeyedCore::with_backend(backend);
        self
    }
}

impl<K: Key, In, F> KeyedProcess<K, In, F> {
    /// Migrates the keys of restored state written under an older key type.
    pub(crate) fn with_key_migration(
        mut self,
        migration: Option<crate::state::key_migration::KeyMigration<K>>,
    ) -> Self {
        self.core.set_key_migration(migration);
        self
    }
}

impl<K: Key, In, F: Lifecycle> Lifecycle for KeyedProcess<K, In, F> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.core.initialize(ctx);
        self.function.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.core.snapshot(ctx)?;
        self.function.snapshot_state(ctx)
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.core.open(ctx)?;
        self.function.open(ctx)
    }

    fn close(&mut self) -> Result<(), UserError> {
        let closed = self.function.close();
        self.core.close();
        closed
    }

    forward_lifecycle!(function: notify_checkpoint_complete, notify_checkpoint_aborted, finish);
}

impl<K, In, Out, F> OneInputOperator<In, Out> for KeyedProcess<K, In, F>
where
    K: Key,
    In: Send + 'static,
    Out: Clone + Send + 'static,
    F: KeyedProcessFunction<K, In, Out>,
{
    #[inline]
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let function = &mut self.function;
        self.core
            .for_each_record(batch, &self.key, None, out, |value, ctx, out| {
                function.process_element(value, ctx, out)
            })
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let function = &mut self.function;
        self.core
            .advance_watermark(watermark, None, out, |t, ctx, out| {
                function.on_timer(t, ctx, out)
            })
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.core.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        let function = &mut self.function;
        self.core
            .fire_timers(TimeDomain::ProcessingTime, now, None, out, |t, ctx, out| {
                function.on_timer(t, ctx, out)
            })
    }
    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.core.state_metrics()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.core.query(uid, name, query)
    }
}

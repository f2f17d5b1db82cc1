//! `process` on a keyed stream: a function with keyed state and timers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use weir_actors::{processing_time_now, RecordBatch, UserError};

use crate::context::RuntimeContext;
use crate::keys::{key_group, KeyGroupRange};
use crate::operator::{Collector, OneInputOperator};
use crate::state::timers::{TimeDomain, TimerService};
use crate::state::{
    Key, KeyedStateStore, StateBytes, StateDescriptor, StateError, StateInitContext,
    StateSnapshotContext,
};

/// What a [`KeyedProcessFunction`] sees while it handles a record or a timer:
/// the key in scope, its state, timers and time.
pub struct KeyedContext<'a, K> {
    key: &'a K,
    group: usize,
    timestamp: Option<i64>,
    watermark: i64,
    domain: Option<TimeDomain>,
    store: &'a mut KeyedStateStore<K>,
    timers: &'a mut TimerService<K>,
    runtime: &'a RuntimeContext,
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

    /// The current processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> i64 {
        processing_time_now()
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
    pub fn state<'c, D: StateDescriptor>(
        &'c mut self,
        descriptor: &'c D,
    ) -> Result<D::Ref<'c, K>, StateError> {
        self.store.open(descriptor, self.key, self.group)
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
/// use weir::{Collector, KeyedContext, KeyedProcessFunction, UserError};
///
/// /// Emits a key once it has been quiet for 10 s of event time.
/// #[derive(Clone)]
/// struct Quiet { last: ValueStateDescriptor<i64> }
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
pub trait KeyedProcessFunction<K, In, Out>: Clone + Send + 'static {
    /// Called once per instance, before `open`: restore operator state.
    fn initialize_state(&mut self, _ctx: &mut StateInitContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Called at every snapshot: bring operator state up to date (keyed state
    /// and timers are snapshotted by weir).
    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Called once per instance before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
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
    /// Called once after the last record and timer.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

type KeySelector<In, K> = Arc<dyn Fn(&In) -> K + Send + Sync>;

/// Runs a [`KeyedProcessFunction`] as a [`OneInputOperator`], owning its keyed
/// state store and timers.
pub struct KeyedProcess<K, In, F> {
    function: F,
    key: KeySelector<In, K>,
    store: Option<KeyedStateStore<K>>,
    timers: TimerService<K>,
    runtime: Option<RuntimeContext>,
    watermark: i64,
    restored: Option<BTreeMap<usize, Vec<u8>>>,
}

/// What a keyed operator snapshots per key group.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    states: Vec<StateBytes>,
    /// rmp-serde of `Vec<(TimerKind, timestamp, key)>`.
    timers: Vec<u8>,
}

const EVENT_TIMER: u8 = 0;
const PROCESSING_TIMER: u8 = 1;

impl<K, In, F: Clone> Clone for KeyedProcess<K, In, F> {
    /// A fresh instance: same function and key, no state.
    fn clone(&self) -> Self {
        KeyedProcess {
            function: self.function.clone(),
            key: self.key.clone(),
            store: None,
            timers: TimerService::default(),
            runtime: None,
            watermark: i64::MIN,
            restored: None,
        }
    }
}

impl<K, In, F> KeyedProcess<K, In, F> {
    /// The operator running `function` on records keyed by `key`.
    pub fn new(function: F, key: KeySelector<In, K>) -> Self {
        KeyedProcess {
            function,
            key,
            store: None,
            timers: TimerService::default(),
            runtime: None,
            watermark: i64::MIN,
            restored: None,
        }
    }
}

impl<K: Key, In: Send + 'static, F> KeyedProcess<K, In, F> {
    fn fire<Out>(
        &mut self,
        domain: TimeDomain,
        time: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>
    where
        F: KeyedProcessFunction<K, In, Out>,
    {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator used before open".into());
        };
        let max = runtime.max_parallelism();
        loop {
            let queue = match domain {
                TimeDomain::EventTime => &mut self.timers.event_time,
                TimeDomain::ProcessingTime => &mut self.timers.processing_time,
            };
            let Some((timestamp, key)) = queue.pop_due(time) else {
                return Ok(());
            };
            let group = key_group(&key, max);
            let mut ctx = KeyedContext {
                key: &key,
                group,
                timestamp: Some(timestamp),
                watermark: self.watermark,
                domain: Some(domain),
                store,
                timers: &mut self.timers,
                runtime,
            };
            out.set_timestamp(Some(timestamp));
            self.function.on_timer(timestamp, &mut ctx, out)?;
        }
    }
}

impl<K, In, Out, F> OneInputOperator<In, Out> for KeyedProcess<K, In, F>
where
    K: Key,
    In: Send + 'static,
    Out: Clone + Send + 'static,
    F: KeyedProcessFunction<K, In, Out>,
{
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.restored = ctx.keyed_state().cloned();
        self.function.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_ref(), self.runtime.as_ref()) else {
            return Err("keyed operator snapshotted before open".into());
        };
        let max = runtime.max_parallelism();
        let states = store.snapshot();
        let mut timers: Vec<(u8, i64, K)> =
            Vec::with_capacity(self.timers.event_time.len() + self.timers.processing_time.len());
        timers.extend(
            self.timers
                .event_time
                .to_vec()
                .into_iter()
                .map(|(t, k)| (EVENT_TIMER, t, k)),
        );
        timers.extend(
            self.timers
                .processing_time
                .to_vec()
                .into_iter()
                .map(|(t, k)| (PROCESSING_TIMER, t, k)),
        );
        self.function.snapshot_state(ctx)?;
        ctx.set_keyed(Box::new(move || {
            let mut groups: BTreeMap<usize, KeyGroupState> = states
                .serialize()?
                .into_iter()
                .map(|(group, states)| {
                    (
                        group,
                        KeyGroupState {
                            states,
                            timers: Vec::new(),
                        },
                    )
                })
                .collect();
            let mut timers_by_group: BTreeMap<usize, Vec<(u8, i64, K)>> = BTreeMap::new();
            for timer in timers {
                timers_by_group
                    .entry(key_group(&timer.2, max))
                    .or_default()
                    .push(timer);
            }
            for (group, timers) in timers_by_group {
                let bytes = rmp_serde::to_vec_named(&timers).map_err(|e| StateError::Encode {
                    name: "timers".into(),
                    cause: e.to_string(),
                })?;
                groups
                    .entry(group)
                    .or_insert_with(|| KeyGroupState {
                        states: Vec::new(),
                        timers: Vec::new(),
                    })
                    .timers = bytes;
            }
            groups
                .into_iter()
                .map(|(group, state)| {
                    rmp_serde::to_vec_named(&state)
                        .map(|bytes| (group, bytes))
                        .map_err(|e| StateError::Encode {
                            name: format!("key group {group}"),
                            cause: e.to_string(),
                        })
                })
                .collect()
        }));
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let range = KeyGroupRange::of_subtask(
            ctx.subtask_index(),
            ctx.max_parallelism(),
            ctx.parallelism(),
        );
        let mut store = KeyedStateStore::new(range);
        if let Some(groups) = self.restored.take() {
            let mut states = BTreeMap::new();
            for (group, bytes) in groups.range(range.start..range.end) {
                let corrupt = |cause: String| StateError::Corrupt {
                    name: "keyed state".into(),
                    group: *group,
                    cause,
                };
                let state: KeyGroupState =
                    rmp_serde::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
                states.insert(*group, state.states);
                if !state.timers.is_empty() {
                    let timers: Vec<(u8, i64, K)> =
                        rmp_serde::from_slice(&state.timers).map_err(|e| corrupt(e.to_string()))?;
                    for (kind, timestamp, key) in timers {
                        match kind {
                            EVENT_TIMER => self.timers.event_time.register(key, timestamp),
                            _ => self.timers.processing_time.register(key, timestamp),
                        }
                    }
                }
            }
            store.restore(&states)?;
        }
        self.store = Some(store);
        self.runtime = Some(ctx.clone());
        self.function.open(ctx)
    }
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator used before open".into());
        };
        let max = runtime.max_parallelism();
        for (value, timestamp) in batch.into_iter_with_timestamps() {
            let key = (self.key)(&value);
            let group = key_group(&key, max);
            store.check_group(group)?;
            let mut ctx = KeyedContext {
                key: &key,
                group,
                timestamp,
                watermark: self.watermark,
                domain: None,
                store,
                timers: &mut self.timers,
                runtime,
            };
            out.set_timestamp(timestamp);
            self.function.process_element(value, &mut ctx, out)?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        self.watermark = watermark;
        self.fire(TimeDomain::EventTime, watermark, out)?;
        out.set_timestamp(None);
        out.emit_watermark(watermark);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.timers.processing_time.peek_timestamp()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.fire(TimeDomain::ProcessingTime, now, out)
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.function.close()
    }
}

//! Connecting a stream with a broadcast stream: the broadcast side writes
//! broadcast state, the other side reads it (see [`crate::state`]).
//!
//! ```
//! use weir::state::MapStateDescriptor;
//! use weir::{BroadcastContext, BroadcastProcessFunction, Collector, Lifecycle, ReadOnlyBroadcastContext, StreamEnv, UserError};
//!
//! /// Tags words with the label the broadcast side last set for them.
//! #[derive(Clone)]
//! struct Label { labels: MapStateDescriptor<String, String> }
//!
//! impl Lifecycle for Label {}
//!
//! impl BroadcastProcessFunction<String, (String, String), String> for Label {
//!     fn process_element(&mut self, word: String, ctx: &mut ReadOnlyBroadcastContext, out: &mut Collector<String>) -> Result<(), UserError> {
//!         let label = ctx.broadcast_state(&self.labels)?.get(&word).cloned().unwrap_or_default();
//!         out.collect(format!("{word}:{label}"));
//!         Ok(())
//!     }
//!     fn process_broadcast_element(&mut self, (word, label): (String, String), ctx: &mut BroadcastContext, _out: &mut Collector<String>) -> Result<(), UserError> {
//!         ctx.broadcast_state(&self.labels)?.put(word, label);
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::with_parallelism(1);
//! let labels = MapStateDescriptor::new("labels");
//! let rules = env.from_collection(vec![("a".to_string(), "x".to_string())]).broadcast_state(&[labels.clone()]);
//! let words = env.from_collection(vec!["a".to_string()]);
//! let out = words.connect(rules).process(Label { labels }).collect();
//! env.execute_blocking("labels").unwrap();
//! // Which side arrives first is not fixed: the word may be labelled or not.
//! assert_eq!(out.take().len(), 1);
//! ```

use weir_actors::{RecordBatch, UserError};

use super::keyed_core::KeyedCore;
use super::keyed_process::{KeySelector, KeyedContext};
use super::two_input::TwoInputOperator;
use crate::context::RuntimeContext;
use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::Collector;
use crate::state::timers::TimeDomain;
use crate::state::{
    BroadcastState, BroadcastStateStore, Key, MapStateDescriptor, ReadOnlyBroadcastState,
    StateData, StateDescriptor, StateError, StateInitContext, StateSnapshotContext,
};

fn restore_broadcast(
    store: &mut BroadcastStateStore,
    ctx: &StateInitContext,
) -> Result<(), StateError> {
    store.restore(
        ctx.broadcast_state().cloned().unwrap_or_default(),
        ctx.meta().unwrap_or(&Default::default()),
    )
}

fn snapshot_broadcast(
    store: &BroadcastStateStore,
    ctx: &mut StateSnapshotContext,
) -> Result<(), UserError> {
    let (states, meta) = store.snapshot()?;
    ctx.set_broadcast(states, meta);
    Ok(())
}

/// The non-broadcast side's view: broadcast state, read only.
pub struct ReadOnlyBroadcastContext<'a> {
    store: &'a mut BroadcastStateStore,
    timestamp: Option<i64>,
    watermark: i64,
    runtime: &'a RuntimeContext,
}

impl ReadOnlyBroadcastContext<'_> {
    /// Reads `descriptor`'s broadcast state.
    pub fn broadcast_state<K: Key, V: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<ReadOnlyBroadcastState<'_, K, V>, StateError> {
        self.store.read_only(descriptor)
    }

    /// The record's timestamp, if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Where this instance runs.
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }
}

/// The broadcast side's view: broadcast state with full access.
pub struct BroadcastContext<'a> {
    store: &'a mut BroadcastStateStore,
    timestamp: Option<i64>,
    watermark: i64,
    runtime: &'a RuntimeContext,
}

impl BroadcastContext<'_> {
    /// Opens `descriptor`'s broadcast state for reading and writing.
    pub fn broadcast_state<K: Key, V: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<BroadcastState<'_, K, V>, StateError> {
        self.store.state(descriptor)
    }

    /// The record's timestamp, if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// Where this instance runs.
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }
}

/// A function over a stream connected with a broadcast stream (as Flink's
/// `BroadcastProcessFunction`).
pub trait BroadcastProcessFunction<In, B, Out>: Lifecycle + Clone + Send + 'static {
    /// A record of the non-broadcast side.
    fn process_element(
        &mut self,
        value: In,
        ctx: &mut ReadOnlyBroadcastContext,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// A record of the broadcast side (every subtask sees each one).
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut BroadcastContext,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
}

/// Runs a [`BroadcastProcessFunction`].
#[derive(Clone)]
pub struct BroadcastProcess<F> {
    function: F,
    runtime: Option<RuntimeContext>,
    store: Option<BroadcastStateStoreHolder>,
    watermark: i64,
}

/// A broadcast store that clones empty (every instance starts from its own state).
#[derive(Default)]
struct BroadcastStateStoreHolder(BroadcastStateStore);

impl Clone for BroadcastStateStoreHolder {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<F> BroadcastProcess<F> {
    /// Wraps `function`.
    pub fn new(function: F) -> Self {
        BroadcastProcess {
            function,
            runtime: None,
            store: Some(Default::default()),
            watermark: i64::MIN,
        }
    }

    fn parts(&mut self) -> Result<(&mut F, &mut BroadcastStateStore, &RuntimeContext), UserError> {
        match (self.store.as_mut(), self.runtime.as_ref()) {
            (Some(store), Some(runtime)) => Ok((&mut self.function, &mut store.0, runtime)),
            _ => Err("broadcast operator used before open".into()),
        }
    }
}

impl<F: Lifecycle> Lifecycle for BroadcastProcess<F> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let store = self.store.get_or_insert_with(Default::default);
        restore_broadcast(&mut store.0, ctx)?;
        self.function.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        if let Some(store) = &self.store {
            snapshot_broadcast(&store.0, ctx)?;
        }
        self.function.snapshot_state(ctx)
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.runtime = Some(ctx.clone());
        self.store.get_or_insert_with(Default::default);
        self.function.open(ctx)
    }

    forward_lifecycle!(function: notify_checkpoint_complete, notify_checkpoint_aborted, finish, close);
}

impl<In, B, Out, F> TwoInputOperator<In, B, Out> for BroadcastProcess<F>
where
    In: Send + 'static,
    B: Send + 'static,
    Out: Clone + Send + 'static,
    F: BroadcastProcessFunction<In, B, Out>,
{
    fn process_batch1(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let watermark = self.watermark;
        let (function, store, runtime) = self.parts()?;
        for (value, timestamp) in batch.into_iter_with_timestamps() {
            let mut ctx = ReadOnlyBroadcastContext {
                store,
                timestamp,
                watermark,
                runtime,
            };
            out.set_timestamp(timestamp);
            function.process_element(value, &mut ctx, out)?;
        }
        Ok(())
    }

    fn process_batch2(
        &mut self,
        batch: RecordBatch<B>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let watermark = self.watermark;
        let (function, store, runtime) = self.parts()?;
        for (value, timestamp) in batch.into_iter_with_timestamps() {
            let mut ctx = BroadcastContext {
                store,
                timestamp,
                watermark,
                runtime,
            };
            out.set_timestamp(timestamp);
            function.process_broadcast_element(value, &mut ctx, out)?;
        }
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        self.watermark = watermark;
        out.emit_watermark(watermark);
        Ok(())
    }
}

/// The broadcast side's view in a keyed-broadcast connection: broadcast state
/// with full access, and every key's keyed state.
pub struct KeyedBroadcastContext<'a, K> {
    store: &'a mut BroadcastStateStore,
    keyed: &'a mut KeyedCore<K>,
    timestamp: Option<i64>,
    runtime: &'a RuntimeContext,
}

impl<K: Key> KeyedBroadcastContext<'_, K> {
    /// Opens `descriptor`'s broadcast state for reading and writing.
    pub fn broadcast_state<UK: Key, UV: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<UK, UV>,
    ) -> Result<BroadcastState<'_, UK, UV>, StateError> {
        self.store.state(descriptor)
    }

    /// Calls `f` with every key that has a value in `descriptor`'s keyed state,
    /// and that state opened for the key (as Flink's `applyToKeyedState`).
    pub fn apply_to_keyed_state<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
        f: impl FnMut(&K, D::Ref<'_, K>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        self.keyed.for_each_key(descriptor, f)
    }

    /// The record's timestamp, if any.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The operator's watermark.
    pub fn current_watermark(&self) -> i64 {
        self.keyed.watermark
    }

    /// Where this instance runs.
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }
}

/// A function over a keyed stream connected with a broadcast stream (as
/// Flink's `KeyedBroadcastProcessFunction`): the keyed side has keyed state,
/// timers and read-only broadcast state (`ctx.broadcast_state(..)`), the
/// broadcast side writes broadcast state and may visit all keys' state.
pub trait KeyedBroadcastProcessFunction<K, In, B, Out>: Lifecycle + Clone + Send + 'static {
    /// A record of the keyed side, its key in scope.
    fn process_element(
        &mut self,
        value: In,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// A record of the broadcast side (every subtask sees each one).
    fn process_broadcast_element(
        &mut self,
        value: B,
        ctx: &mut KeyedBroadcastContext<K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// A timer of the current key fired.
    fn on_timer(
        &mut self,
        _timestamp: i64,
        _ctx: &mut KeyedContext<K>,
        _out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// Runs a [`KeyedBroadcastProcessFunction`].
pub struct KeyedBroadcastProcess<K, In, F> {
    function: F,
    key: KeySelector<In, K>,
    keyed: KeyedCore<K>,
    broadcast: BroadcastStateStore,
    runtime: Option<RuntimeContext>,
}

impl<K, In, F: Clone> Clone for KeyedBroadcastProcess<K, In, F> {
    fn clone(&self) -> Self {
        let mut fresh = KeyedBroadcastProcess::new(self.function.clone(), self.key.clone());
        fresh.keyed = self.keyed.fresh();
        fresh
    }
}

impl<K, In, F> KeyedBroadcastProcess<K, In, F> {
    /// The operator running `function`, keyed by `key`.
    pub fn new(function: F, key: KeySelector<In, K>) -> Self {
        KeyedBroadcastProcess {
            function,
            key,
            keyed: KeyedCore::default(),
            broadcast: BroadcastStateStore::default(),
            runtime: None,
        }
    }

    /// Keeps keyed state in the backend the job resolves to.
    pub(crate) fn with_backend(mut self, backend: crate::state::BackendCell) -> Self {
        self.keyed = KeyedCore::with_backend(backend);
        self
    }
}

impl<K: Key, In, F> KeyedBroadcastProcess<K, In, F> {
    /// Migrates the keys of restored keyed state written under an older key type.
    pub(crate) fn with_key_migration(
        mut self,
        migration: Option<crate::state::key_migration::KeyMigration<K>>,
    ) -> Self {
        self.keyed.set_key_migration(migration);
        self
    }
}

impl<K: Key, In, F: Lifecycle> Lifecycle for KeyedBroadcastProcess<K, In, F> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.keyed.initialize(ctx);
        restore_broadcast(&mut self.broadcast, ctx)?;
        self.function.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.keyed.snapshot(ctx)?;
        snapshot_broadcast(&self.broadcast, ctx)?;
        self.function.snapshot_state(ctx)
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.keyed.open(ctx)?;
        self.runtime = Some(ctx.clone());
        self.function.open(ctx)
    }

    fn close(&mut self) -> Result<(), UserError> {
        let closed = self.function.close();
        self.keyed.close();
        closed
    }

    forward_lifecycle!(function: notify_checkpoint_complete, notify_checkpoint_aborted, finish);
}

impl<K, In, B, Out, F> TwoInputOperator<In, B, Out> for KeyedBroadcastProcess<K, In, F>
where
    K: Key,
    In: Send + 'static,
    B: Send + 'static,
    Out: Clone + Send + 'static,
    F: KeyedBroadcastProcessFunction<K, In, B, Out>,
{
    fn process_batch1(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let function = &mut self.function;
        self.keyed.for_each_record(
            batch,
            &self.key,
            Some(&mut self.broadcast),
            out,
            |value, ctx, out| function.process_element(value, ctx, out),
        )
    }

    fn process_batch2(
        &mut self,
        batch: RecordBatch<B>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or("keyed broadcast operator used before open")?;
        for (value, timestamp) in batch.into_iter_with_timestamps() {
            let mut ctx = KeyedBroadcastContext {
                store: &mut self.broadcast,
                keyed: &mut self.keyed,
                timestamp,
                runtime,
            };
            out.set_timestamp(timestamp);
            self.function
                .process_broadcast_element(value, &mut ctx, out)?;
        }
        self.keyed.check_state()
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let function = &mut self.function;
        self.keyed
            .advance_watermark(watermark, Some(&mut self.broadcast), out, |t, ctx, out| {
                function.on_timer(t, ctx, out)
            })
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.keyed.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        let function = &mut self.function;
        self.keyed.fire_timers(
            TimeDomain::ProcessingTime,
            now,
            Some(&mut self.broadcast),
            out,
            |t, ctx, out| function.on_timer(t, ctx, out),
        )
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.keyed.state_metrics()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.keyed.query(uid, name, query)
    }
}

//! What every keyed operator holds besides its function: the keyed state store,
//! the timers, the current watermark, and their snapshot and restore; and the
//! one per-record loop and the one timer loop every keyed operator runs its
//! function in (the key group of a key is computed here, nowhere else).

use std::collections::BTreeMap;
use std::time::Instant;

use weir_actors::codec;
use weir_actors::query::{QueryError, StateAnswer, StateQuery};
use weir_actors::UserError;

use super::keyed_process::{KeySelector, KeyedContext};
use super::warm_up::WarmUp;
use crate::context::RuntimeContext;
use crate::keys::{key_group, KeyGroupRange};
use crate::operator::Collector;
use crate::side_output::SideOutputs;
use crate::state::key_group_format::{decode_key_group, encode_key_group_with, Timer, TimerKind};
use crate::state::key_migration::{regroup, KeyMigration};
use crate::state::timers::{TimeDomain, TimerService};
use crate::state::{
    BackendCell, BroadcastStateStore, Key, KeyedBackend, KeyedStateStore, SnapshotOptions,
    StateBytes, StateDescriptor, StateError, StateInitContext, StateSnapshotContext, StateTime,
};
use weir_actors::snapshot::KeyedStateHandle;
use weir_actors::RecordBatch;

/// How many timers' keys a timer round looks up ahead at a time (see
/// `KeyedCore::fire_timers`): enough misses to overlap, few enough that
/// their entries are still cached when the timers fire.
const TIMERS_WARMED_AHEAD: usize = 64;

/// Keyed state, timers and event time of one keyed operator subtask.
pub(crate) struct KeyedCore<K> {
    store: Option<KeyedStateStore<K>>,
    timers: TimersAndSide<K>,
    runtime: Option<RuntimeContext>,
    pub watermark: i64,
    restored: Option<BTreeMap<usize, Vec<u8>>>,
    restored_handles: Vec<KeyedStateHandle>,
    /// The restored keyed metadata (the states' schemas) until `open`.
    restored_meta: BTreeMap<String, Vec<u8>>,
    /// The job's state backend, known once the job is built.
    backend: BackendCell,
    /// A processing clock set by hand (tests: `OperatorHarness`); else the wall clock.
    clock: Option<ManualClock>,
    /// Keys to migrate from an older key type at a restore, if any.
    key_migration: Option<KeyMigration<K>>,
    /// Whether batches look their keys up ahead (heap), by measurement.
    warm_up: WarmUp,
    /// Whether timer rounds look their next timers' keys up ahead.
    timer_warm_up: WarmUp,
}

/// The `meta` entry naming the key type the keyed state was written under.
const KEY_TYPE_META: &str = "key-type";

/// The keyed timers, and the side records a function emits while it runs:
/// one pointer in the per-record context for both (a wider context cost the
/// keyed path a third of its throughput: `bench --job keyed-count`).
pub(crate) struct TimersAndSide<K> {
    timers: TimerService<K>,
    /// Side records of the batch or timer round (the collector's, lent).
    pub side: SideOutputs,
}

impl<K> Default for TimersAndSide<K> {
    fn default() -> Self {
        TimersAndSide {
            timers: TimerService::default(),
            side: SideOutputs::default(),
        }
    }
}

impl<K> std::ops::Deref for TimersAndSide<K> {
    type Target = TimerService<K>;
    fn deref(&self) -> &TimerService<K> {
        &self.timers
    }
}

impl<K> std::ops::DerefMut for TimersAndSide<K> {
    fn deref_mut(&mut self) -> &mut TimerService<K> {
        &mut self.timers
    }
}

/// A processing-time clock set by hand, shared by a test harness and its operator.
pub(crate) type ManualClock = std::sync::Arc<HarnessLink>;

/// A look at a keyed store that a test harness asked for (given the store as
/// `&dyn Any`: a `KeyedStateStore<K>`).
type StoreProbe = Box<dyn FnOnce(&dyn std::any::Any) + Send>;

/// What a test harness shares with its keyed operator: the processing time it
/// sets by hand, and a probe to run on the operator's keyed store.
#[derive(Default)]
pub(crate) struct HarnessLink {
    now: std::sync::atomic::AtomicI64,
    probe: std::sync::Mutex<Option<StoreProbe>>,
}

impl HarnessLink {
    /// Sets the processing time.
    pub(crate) fn set(&self, now: i64) {
        self.now.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// The processing time.
    pub(crate) fn now(&self) -> i64 {
        self.now.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Leaves `probe` for the operator to run on its keyed store the next
    /// time it is asked for its next processing time.
    pub(crate) fn set_probe(&self, probe: StoreProbe) {
        *self.probe.lock().unwrap_or_else(|p| p.into_inner()) = Some(probe);
    }

    /// Takes the probe left, if any.
    pub(crate) fn take_probe(&self) -> Option<StoreProbe> {
        self.probe.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The processing time: `clock` if set by hand, else the wall clock.
#[inline]
fn read_clock(clock: &Option<ManualClock>) -> i64 {
    match clock {
        Some(clock) => clock.now(),
        None => weir_actors::processing_time_now(),
    }
}

impl<K> Default for KeyedCore<K> {
    fn default() -> Self {
        KeyedCore {
            store: None,
            timers: TimersAndSide::default(),
            runtime: None,
            watermark: i64::MIN,
            restored: None,
            restored_handles: Vec::new(),
            restored_meta: BTreeMap::new(),
            backend: BackendCell::default(),
            clock: None,
            key_migration: None,
            warm_up: WarmUp::default(),
            timer_warm_up: WarmUp::default(),
        }
    }
}

impl<K> KeyedCore<K> {
    /// A fresh core whose state lives in the backend `backend` will name.
    pub fn with_backend(backend: BackendCell) -> Self {
        KeyedCore {
            backend,
            ..KeyedCore::default()
        }
    }

    /// A fresh core with the same backend (for a fresh operator instance).
    pub fn fresh(&self) -> Self {
        KeyedCore {
            clock: self.clock.clone(),
            key_migration: self.key_migration.clone(),
            ..Self::with_backend(self.backend.clone())
        }
    }

    /// Reads processing time from `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: ManualClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The times state accesses see now.
    fn state_time(&self) -> StateTime {
        StateTime {
            processing: read_clock(&self.clock),
            watermark: self.watermark,
        }
    }
}

impl<K: Key> KeyedCore<K> {
    /// Keeps the restored keyed bytes until `open` knows the key-group range.
    pub fn initialize(&mut self, ctx: &StateInitContext) {
        self.restored = ctx.keyed_state().cloned();
        self.restored_handles = ctx.keyed_handles().to_vec();
        self.restored_meta = ctx.meta().cloned().unwrap_or_default();
    }

    /// The store for `range`, in the job's backend, restored from the handles
    /// of an incremental snapshot if there are any.
    fn create_store(
        &mut self,
        ctx: &RuntimeContext,
        range: KeyGroupRange,
    ) -> Result<KeyedStateStore<K>, StateError> {
        let handles = std::mem::take(&mut self.restored_handles);
        let relevant = handles.iter().any(|h| h.overlaps(range.start, range.end));
        match self.backend.keyed_backend() {
            KeyedBackend::Heap => {
                if relevant {
                    return Err(StateError::Backend(format!(
                        "the keyed state of operator `{}` was checkpointed incrementally by the {:?} backend; \
                         the heap backend cannot read it: restore with that backend, or from a savepoint",
                        ctx.uid(),
                        handles[0].backend
                    )));
                }
                Ok(KeyedStateStore::new(range))
            }
            #[cfg(feature = "rocksdb")]
            KeyedBackend::RocksDb(backend) => {
                let site = std::sync::Arc::new(crate::state::rocksdb::SnapshotSite::new(
                    &backend,
                    ctx.shared_state_dir(),
                    ctx.uid(),
                    ctx.subtask_index(),
                ));
                let db = crate::state::rocksdb::open_database(
                    &backend,
                    site,
                    ctx.uid(),
                    ctx.subtask_index(),
                    range,
                    &handles,
                )?;
                Ok(KeyedStateStore::with_rocksdb(db))
            }
        }
    }

    /// Migrates the keys of restored state written under the key type
    /// `migration` names (`None`: no migration).
    pub fn set_key_migration(&mut self, migration: Option<KeyMigration<K>>) {
        self.key_migration = migration;
    }

    /// The key migration to run on the restored state: the configured one,
    /// if the state was written under its old key type (or before weir
    /// recorded key types).
    fn pending_key_migration(&self) -> Option<&KeyMigration<K>> {
        let migration = self.key_migration.as_ref()?;
        match self.restored_meta.get(KEY_TYPE_META) {
            Some(written) if written.as_slice() == std::any::type_name::<K>().as_bytes() => None,
            _ => Some(migration),
        }
    }

    /// Registers a timer the restored snapshot holds.
    fn register_restored_timer(&mut self, timer: Timer<K>) {
        match timer.kind {
            TimerKind::EventTime => self.timers.event_time.register(timer.key, timer.timestamp),
            TimerKind::ProcessingTime => self
                .timers
                .processing_time
                .register(timer.key, timer.timestamp),
        }
    }

    /// Gives `store` the schemas the restored snapshot recorded.
    fn restore_schemas(
        &mut self,
        store: &mut KeyedStateStore<K>,
        ctx: &RuntimeContext,
    ) -> Result<(), StateError> {
        let meta = std::mem::take(&mut self.restored_meta);
        store.restore_schemas(
            crate::state::schema::decode_schemas(crate::state::schema::Scope::Keyed, &meta)
                .map_err(|e| StateError::Backend(format!("operator `{}`: {e}", ctx.uid())))?,
        );
        Ok(())
    }

    /// The names of the keyed states the restored snapshot recorded (after
    /// [`Self::open`]).
    pub fn restored_state_names(&self) -> Vec<String> {
        self.store.as_ref().map_or_else(Vec::new, |store| {
            store.restored_state_names().map(str::to_string).collect()
        })
    }

    /// Creates the store for this subtask's key groups and restores into it.
    pub fn open(&mut self, ctx: &RuntimeContext) -> Result<(), StateError> {
        let range = KeyGroupRange::of_subtask(
            ctx.subtask_index(),
            ctx.max_parallelism(),
            ctx.parallelism(),
        );
        let mut store = self.create_store(ctx, range)?;
        store.set_operator(ctx.uid());
        store.set_time(self.state_time());
        // Keys written under an older key type: all of the snapshot's keyed
        // state, regrouped by the migrated keys.
        let migrating = match self.pending_key_migration().cloned() {
            Some(migration) => self.restored.take().map(|groups| (migration, groups)),
            None => None,
        };
        if let Some((migration, groups)) = migrating {
            let regrouped = regroup(&groups, range, ctx.max_parallelism(), &migration)
                .map_err(|e| e.of_operator(ctx.uid()))?;
            for timer in regrouped.timers {
                self.register_restored_timer(timer);
            }
            if let Some(&watermark) = regrouped.watermarks.iter().min() {
                self.watermark = self.watermark.max(watermark);
                store.set_time(self.state_time());
            }
            self.restore_schemas(&mut store, ctx)?;
            store.restore(&regrouped.states)?;
            self.store = Some(store);
            self.runtime = Some(ctx.clone());
            return Ok(());
        }
        self.restore_schemas(&mut store, ctx)?;
        if let Some(groups) = self.restored.take() {
            let mut states = BTreeMap::new();
            let mut watermarks = Vec::new();
            for (&group, bytes) in groups.range(range.start..range.end) {
                let decoded = decode_key_group::<K>(bytes, group)?;
                states.insert(group, decoded.states);
                watermarks.extend(decoded.watermark);
                for timer in decoded.timers {
                    self.register_restored_timer(timer);
                }
            }
            if watermarks.is_empty() {
                // None of this subtask's groups was written (a rescale gave
                // it groups no one had state in): the others' watermark.
                for (&group, bytes) in &groups {
                    watermarks.extend(decode_key_group::<K>(bytes, group)?.watermark);
                }
            }
            // Event time resumes where the snapshot left it: the lowest
            // watermark a restored group was taken at (aligned, every
            // subtask's is the same).
            if let Some(&watermark) = watermarks.iter().min() {
                self.watermark = self.watermark.max(watermark);
                store.set_time(self.state_time());
            }
            store.restore(&states)?;
        }
        self.store = Some(store);
        self.runtime = Some(ctx.clone());
        Ok(())
    }

    /// Takes the synchronous part of the keyed snapshot and leaves the
    /// serialisation to the snapshot's asynchronous part.
    pub fn snapshot(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator snapshotted before open".into());
        };
        let max = runtime.max_parallelism();
        // Also without a state with a time to live opened: restored ones
        // that no record touched yet leave a full snapshot what expired.
        store.set_time(StateTime {
            processing: read_clock(&self.clock),
            watermark: self.watermark,
        });
        let states = store.snapshot(SnapshotOptions {
            checkpoint_id: ctx.checkpoint_id(),
            full: ctx.is_full(),
        })?;
        let timer = |kind| {
            move |(timestamp, key)| Timer {
                kind,
                timestamp,
                key,
            }
        };
        let watermark = (self.watermark > i64::MIN).then_some(self.watermark);
        // The watermark is in every group written, and the first group of
        // the subtask's range is written even without state, so that a
        // restore finds it.
        let first_group = store.key_groups().start;
        let queryable = store.queryable_states();
        let timers: Vec<Timer<K>> = self
            .timers
            .event_time
            .to_vec()
            .into_iter()
            .map(timer(TimerKind::EventTime))
            .chain(
                self.timers
                    .processing_time
                    .to_vec()
                    .into_iter()
                    .map(timer(TimerKind::ProcessingTime)),
            )
            .collect();
        ctx.set_keyed(Box::new(move || {
            let parts = states.serialize()?;
            let mut groups: BTreeMap<usize, (Vec<StateBytes>, Vec<Timer<K>>)> = parts
                .groups
                .into_iter()
                .map(|(group, states)| (group, (states, Vec::new())))
                .collect();
            for timer in timers {
                groups
                    .entry(key_group(&timer.key, max))
                    .or_default()
                    .1
                    .push(timer);
            }
            if watermark.is_some() || !queryable.is_empty() {
                groups.entry(first_group).or_default();
            }
            let groups = groups
                .into_iter()
                .map(|(group, (states, timers))| {
                    let queryable = match group == first_group {
                        true => queryable.clone(),
                        false => BTreeMap::new(),
                    };
                    encode_key_group_with(states, &timers, watermark, queryable)
                        .map(|bytes| (group, bytes))
                })
                .collect::<Result<_, _>>()?;
            let meta = crate::state::schema::encode_schemas(
                crate::state::schema::Scope::Keyed,
                &parts.schemas,
            )
            .map_err(|e| StateError::Encode {
                name: "the keyed state's schemas".into(),
                cause: e.to_string(),
            })?;
            let mut meta = meta;
            meta.insert(
                KEY_TYPE_META.to_string(),
                std::any::type_name::<K>().as_bytes().to_vec(),
            );
            Ok((groups, parts.handles, meta))
        }));
        Ok(())
    }

    /// The max parallelism (number of key groups) of the operator.
    pub fn max_parallelism(&self) -> usize {
        self.runtime
            .as_ref()
            .map_or(1, RuntimeContext::max_parallelism)
    }

    /// Warms ([`KeyedStateStore::warm`]) the state of the keys of the next
    /// [`TIMERS_WARMED_AHEAD`] timers of `domain` due at `time`.
    fn warm_timers_ahead(&self, domain: TimeDomain, time: i64) {
        let Some(store) = self.store.as_ref() else {
            return;
        };
        let max = self.max_parallelism();
        let queue = match domain {
            TimeDomain::EventTime => &self.timers.event_time,
            TimeDomain::ProcessingTime => &self.timers.processing_time,
        };
        let mut keys = Vec::with_capacity(TIMERS_WARMED_AHEAD);
        queue.for_each_due_ahead(time, TIMERS_WARMED_AHEAD, |key| {
            keys.push((key, key_group(key, max)));
        });
        store.warm(&keys);
    }

    /// Removes and returns the next timer of `domain` due at `time`.
    pub fn pop_timer(&mut self, domain: TimeDomain, time: i64) -> Option<(i64, K)> {
        match domain {
            TimeDomain::EventTime => self.timers.event_time.pop_due(time),
            TimeDomain::ProcessingTime => self.timers.processing_time.pop_due(time),
        }
    }

    /// The earliest processing-time timer (possibly a deleted one). With a
    /// test harness's clock, first runs the probe the harness left on the
    /// store, if any (`OperatorHarness::keyed_state`).
    pub fn next_processing_time(&self) -> Option<i64> {
        if let (Some(probe), Some(store)) = (
            self.clock.as_ref().and_then(|c| c.take_probe()),
            self.store.as_ref(),
        ) {
            probe(store);
        }
        let timers = self.timers.processing_time.peek_timestamp();
        let cleanup = self
            .store
            .as_ref()
            .and_then(KeyedStateStore::next_ttl_cleanup);
        match (timers, cleanup) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A context for `key`, whose key group it computes.
    ///
    /// Always inlined: returned through memory from a call, the context was
    /// read back in wider loads than the narrow stores that had just written
    /// it, a store-forwarding stall that cost the keyed path ~40% of its
    /// throughput (bench `keyed-count`: 22 M -> 38 M records/s).
    #[inline(always)]
    pub fn context<'a>(
        &'a mut self,
        key: &'a K,
        timestamp: Option<i64>,
        domain: Option<TimeDomain>,
        broadcast: Option<&'a mut BroadcastStateStore>,
    ) -> Result<KeyedContext<'a, K>, UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator used before open".into());
        };
        let group = key_group(key, runtime.max_parallelism());
        store.check_group(group)?;
        Ok(KeyedContext {
            key,
            group,
            timestamp,
            watermark: self.watermark,
            domain,
            store,
            timers: &mut self.timers,
            runtime,
            broadcast,
        })
    }

    /// Calls `f` for every record of `batch` with its key's context (key from
    /// `key_of`) and the collector set to the record's timestamp, then
    /// reports a failed state access. The one per-record loop of every keyed
    /// operator: what does not change within a batch (the store, the key
    /// groups, the watermark) is looked up once, and each record costs its
    /// key, its key group and the context.
    #[inline(always)]
    pub fn for_each_record<In, Out>(
        &mut self,
        batch: RecordBatch<In>,
        key_of: &KeySelector<In, K>,
        mut broadcast: Option<&mut BroadcastStateStore>,
        out: &mut Collector<Out>,
        mut f: impl FnMut(In, &mut KeyedContext<'_, K>, &mut Collector<Out>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator used before open".into());
        };
        let max = runtime.max_parallelism();
        let owned = store.key_groups();
        let watermark = self.watermark;
        // Always: a state with a time to live may be opened for the first
        // time in this batch (a clock read per batch, not per record).
        store.set_time(StateTime {
            processing: read_clock(&self.clock),
            watermark,
        });
        if store.has_ttl() {
            store.ttl_records_processed(batch.records.len());
        }
        let timers = &mut self.timers;
        std::mem::swap(&mut timers.side, out.side_outputs());
        // The batch's keys first; RocksDB reads their values with one
        // multi-get, the heap may look them up once so that their cache
        // misses overlap (see `WarmUp`); then the records. (`each` computes
        // the key group again: passing it in made the heap path ~7% slower.)
        let prefetches = store.prefetches();
        let (warm_next, measure) = self.warm_up.next();
        let warms = store.warms() && warm_next;
        let timing = (store.warms() && measure).then(|| (Instant::now(), batch.records.len()));
        let keys_ahead = (prefetches || warms).then(|| {
            let keys: Vec<(K, usize)> = batch
                .records
                .iter()
                .map(|value| {
                    let key = key_of(value);
                    let group = key_group(&key, max);
                    (key, group)
                })
                .collect();
            if prefetches {
                store.prefetch(&keys);
            } else {
                let borrowed: Vec<(&K, usize)> = keys.iter().map(|(k, g)| (k, *g)).collect();
                store.warm(&borrowed);
            }
            keys
        });
        let mut each = |value: In, key: K, timestamp: Option<i64>, out: &mut Collector<Out>| {
            let group = key_group(&key, max);
            if !owned.contains(group) {
                store.check_group(group)?;
            }
            let mut ctx = KeyedContext {
                key: &key,
                group,
                timestamp,
                watermark,
                domain: None,
                store: &mut *store,
                timers: &mut *timers,
                runtime,
                broadcast: broadcast.as_deref_mut(),
            };
            f(value, &mut ctx, out)
        };
        let stamped = batch.timestamps.is_some();
        if let Some(keys) = keys_ahead {
            for ((value, timestamp), (key, _)) in batch.into_iter_with_timestamps().zip(keys) {
                if stamped {
                    out.set_timestamp(timestamp);
                }
                each(value, key, timestamp, out)?;
            }
        } else if batch.timestamps.is_none() {
            for value in batch.records {
                let key = key_of(&value);
                each(value, key, None, out)?;
            }
        } else {
            for (value, timestamp) in batch.into_iter_with_timestamps() {
                out.set_timestamp(timestamp);
                let key = key_of(&value);
                each(value, key, timestamp, out)?;
            }
        }
        std::mem::swap(&mut self.timers.side, out.side_outputs());
        match timing {
            Some((started, records)) => {
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.warm_up.measured(warms, records, nanos);
            }
            None => self.warm_up.unmeasured(),
        }
        self.check_state()
    }

    /// Fires every timer of `domain` due at `time`, in timestamp order: calls
    /// `f` with its timestamp and its key's context, the collector set to the
    /// timer's timestamp. The one timer loop of every keyed operator.
    pub fn fire_timers<Out>(
        &mut self,
        domain: TimeDomain,
        time: i64,
        mut broadcast: Option<&mut BroadcastStateStore>,
        out: &mut Collector<Out>,
        mut f: impl FnMut(i64, &mut KeyedContext<'_, K>, &mut Collector<Out>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let time_now = self.state_time();
        if let Some(store) = self.store.as_mut() {
            // Also without a time to live yet: `on_timer` may open the first.
            store.set_time(time_now);
            store.run_ttl_cleanups();
        }
        std::mem::swap(&mut self.timers.side, out.side_outputs());
        let heap = self.store.as_ref().is_some_and(KeyedStateStore::warms);
        let (warm_next, measure) = self.timer_warm_up.next();
        let warm = heap && warm_next;
        let started = (heap && measure).then(Instant::now);
        let mut fired = 0;
        let mut until_warm = 0;
        while let Some((timestamp, key)) = self.pop_timer(domain, time) {
            fired += 1;
            if warm {
                if until_warm == 0 {
                    // The keys of the timers due next, looked up ahead as a
                    // batch's are (KeyedStateStore::warm): a window firing round
                    // visits every key in registration order, a miss each.
                    self.warm_timers_ahead(domain, time);
                    until_warm = TIMERS_WARMED_AHEAD;
                }
                until_warm -= 1;
            }
            let mut ctx = self.context(
                &key,
                Some(timestamp),
                Some(domain),
                broadcast.as_deref_mut(),
            )?;
            out.set_timestamp(Some(timestamp));
            f(timestamp, &mut ctx, out)?;
        }
        std::mem::swap(&mut self.timers.side, out.side_outputs());
        match started {
            _ if fired == 0 => {}
            Some(started) => {
                let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.timer_warm_up.measured(warm, fired, nanos);
            }
            None => self.timer_warm_up.unmeasured(),
        }
        self.check_state()
    }

    /// The watermark advanced to `watermark`: fires the event-time timers due
    /// (through `f`) and forwards the watermark behind their output.
    pub fn advance_watermark<Out>(
        &mut self,
        watermark: i64,
        broadcast: Option<&mut BroadcastStateStore>,
        out: &mut Collector<Out>,
        f: impl FnMut(i64, &mut KeyedContext<'_, K>, &mut Collector<Out>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        if watermark < self.watermark {
            // Below the watermark a restore resumed from: event time does
            // not go back (and downstream has seen it already).
            return Ok(());
        }
        self.watermark = watermark;
        self.fire_timers(TimeDomain::EventTime, watermark, broadcast, out, f)?;
        out.set_timestamp(None);
        out.emit_watermark(watermark);
        Ok(())
    }

    /// Calls `f` with every key that has a value in `descriptor`'s state and
    /// that state opened for the key (Flink's `applyToKeyedState`).
    pub fn for_each_key<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
        mut f: impl FnMut(&K, D::Ref<'_, K>) -> Result<(), UserError>,
    ) -> Result<(), UserError> {
        let max = self.max_parallelism();
        let store = self.store_mut()?;
        for key in store.keys(descriptor)? {
            let state = store.open(descriptor, &key, key_group(&key, max))?;
            f(&key, state)?;
        }
        Ok(())
    }

    /// Ends a batch or timer round: a RocksDB store without an entry cache
    /// writes the batch's values back (one write batch); then fails with the
    /// error a state access met (RocksDB: accessors cannot return errors).
    #[inline]
    pub fn check_state(&mut self) -> Result<(), UserError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        store.end_batch();
        match store.take_failure() {
            None => Ok(()),
            Some(error) => Err(error.into()),
        }
    }

    /// Answers a live query (see [`crate::query`]) of queryable state
    /// `name`: a key's value (the key decoded, and checked to hash to the
    /// key group it was routed by: a key of another type may not), or a
    /// page of the keys with a value.
    pub fn query(
        &mut self,
        uid: &str,
        name: &str,
        query: &StateQuery,
    ) -> Result<StateAnswer, QueryError> {
        let max = self.max_parallelism();
        // Reading a key needs its type, not the state: answered before open.
        if let StateQuery::Locate { key_json } = query {
            return locate::<K>(uid, key_json, max);
        }
        let Some(store) = self.store.as_mut() else {
            return Err(QueryError::Unavailable {
                job: String::new(),
                reason: format!("operator `{uid}` is not open"),
                retry: true,
            });
        };
        let unknown = |unknown: crate::state::UnknownQueryable| QueryError::UnknownState {
            uid: uid.to_string(),
            name: name.to_string(),
            known: weir_actors::query::known_names(unknown.known),
        };
        let failed = |e: StateError| QueryError::Failed {
            uid: uid.to_string(),
            name: name.to_string(),
            cause: e.to_string(),
        };
        // The key of a lookup, decoded and checked against the key group
        // it was routed by.
        let decoded = |key: &[u8], asked: usize| -> Result<(K, usize), QueryError> {
            let key: K = codec::decode(key).map_err(|e| {
                QueryError::Codec(format!(
                    "the key does not decode as operator `{uid}`'s key type `{}`: {e}",
                    std::any::type_name::<K>()
                ))
            })?;
            let group = key_group(&key, max);
            if group != asked {
                return Err(QueryError::Codec(format!(
                    "the key was sent as another type than operator `{uid}`'s key type `{}` \
                     (it hashes to another key group)",
                    std::any::type_name::<K>()
                )));
            }
            Ok((key, group))
        };
        let answer = match query {
            StateQuery::Locate { key_json } => return locate::<K>(uid, key_json, max),
            StateQuery::Get { key_group, key } => {
                let (key, group) = decoded(key, *key_group)?;
                store
                    .query(name, &key, group)
                    .map(|value| value.map(StateAnswer::Value).map_err(failed))
            }
            StateQuery::Entry {
                key_group,
                key,
                user_key,
            } => {
                let (key, group) = decoded(key, *key_group)?;
                store.query_entry(name, &key, group, user_key).map(|value| {
                    value.map(StateAnswer::Value).map_err(|e| match e {
                        Some(e) => failed(e),
                        None => QueryError::Failed {
                            uid: uid.to_string(),
                            name: name.to_string(),
                            cause: "not a map state: query its whole value instead".into(),
                        },
                    })
                })
            }
            StateQuery::Keys { limit, after } => store
                .query_keys(name, *limit, after.as_deref())
                .map(|keys| keys.map(StateAnswer::Keys).map_err(failed)),
        };
        answer.unwrap_or_else(|missing| Err(unknown(missing)))
    }

    /// The counters of the keyed states (none before open).
    pub fn state_metrics(&self) -> Vec<weir_actors::StateMetrics> {
        self.store
            .as_ref()
            .map(KeyedStateStore::state_metrics)
            .unwrap_or_default()
    }

    /// Releases the keyed state when the operator closes (after the final
    /// checkpoint): a RocksDB database is closed and its local directory removed.
    pub fn close(&mut self) {
        self.store = None;
    }

    /// The store, for work over all keys (`apply_to_keyed_state`).
    pub fn store_mut(&mut self) -> Result<&mut KeyedStateStore<K>, UserError> {
        self.store
            .as_mut()
            .ok_or_else(|| "keyed operator used before open".into())
    }
}

/// The key written as JSON text (or, failing that, the text as a string),
/// read as the operator's key type `K`: its key group and its encoding
/// ([`StateQuery::Locate`]).
fn locate<K: Key>(uid: &str, key_json: &str, max: usize) -> Result<StateAnswer, QueryError> {
    let key: K = serde_json::from_str(key_json)
        .or_else(|e| {
            serde_json::from_value(serde_json::Value::String(key_json.to_string())).map_err(|_| e)
        })
        .map_err(|e| {
            QueryError::Codec(format!(
                "the key `{key_json}` is not a key of operator `{uid}` (of type `{}`): {e}",
                std::any::type_name::<K>()
            ))
        })?;
    let encoded = codec::encode(&key).map_err(|e| QueryError::Codec(e.to_string()))?;
    Ok(StateAnswer::Located {
        key_group: key_group(&key, max),
        key: encoded,
    })
}

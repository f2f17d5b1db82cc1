//! What every keyed operator holds besides its function: the keyed state store,
//! the timers, the current watermark, and their snapshot and restore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_actors::UserError;

use super::keyed_process::KeyedContext;
use crate::context::RuntimeContext;
use crate::keys::{key_group, KeyGroupRange};
use crate::state::timers::{TimeDomain, TimerService};
use crate::state::{
    BroadcastStateStore, Key, KeyedStateStore, StateBytes, StateError, StateInitContext,
    StateSnapshotContext,
};

/// What a keyed operator snapshots per key group.
#[derive(Serialize, Deserialize)]
struct KeyGroupState {
    states: Vec<StateBytes>,
    /// rmp-serde of `Vec<(timer kind, timestamp, key)>`.
    timers: Vec<u8>,
}

const EVENT_TIMER: u8 = 0;
const PROCESSING_TIMER: u8 = 1;

/// Keyed state, timers and event time of one keyed operator subtask.
pub(crate) struct KeyedCore<K> {
    store: Option<KeyedStateStore<K>>,
    timers: TimerService<K>,
    runtime: Option<RuntimeContext>,
    pub watermark: i64,
    restored: Option<BTreeMap<usize, Vec<u8>>>,
    /// The current batch's keys and key groups (kept to reuse its allocation).
    batch_keys: Vec<(K, usize)>,
    /// Whether the state is large enough for [`KeyedCore::warm`] to pay off
    /// (decided once per batch).
    warm_state: bool,
}

/// State spanning fewer bytes than this mostly stays in the first-level
/// caches, where looking entries up ahead costs more than it saves (measured
/// with the bench `keyed-count` job: 1 000 keys lose 14% with it, 100 000 keys
/// gain 15%).
const WARM_MIN_FOOTPRINT: usize = 256 * 1024;

impl<K> Default for KeyedCore<K> {
    fn default() -> Self {
        KeyedCore {
            store: None,
            timers: TimerService::default(),
            runtime: None,
            watermark: i64::MIN,
            restored: None,
            batch_keys: Vec::new(),
            warm_state: false,
        }
    }
}

impl<K: Key> KeyedCore<K> {
    /// Keeps the restored keyed bytes until `open` knows the key-group range.
    pub fn initialize(&mut self, ctx: &StateInitContext) {
        self.restored = ctx.keyed_state().cloned();
    }

    /// Creates the store for this subtask's key groups and restores into it.
    pub fn open(&mut self, ctx: &RuntimeContext) -> Result<(), StateError> {
        let range = KeyGroupRange::of_subtask(
            ctx.subtask_index(),
            ctx.max_parallelism(),
            ctx.parallelism(),
        );
        let mut store = KeyedStateStore::new(range);
        if let Some(groups) = self.restored.take() {
            let mut states = BTreeMap::new();
            for (&group, bytes) in groups.range(range.start..range.end) {
                let corrupt = |cause: String| StateError::Corrupt {
                    name: "keyed state".into(),
                    group,
                    cause,
                };
                let state: KeyGroupState =
                    rmp_serde::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
                states.insert(group, state.states);
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
        Ok(())
    }

    /// Takes the synchronous part of the keyed snapshot and leaves the
    /// serialisation to the snapshot's asynchronous part.
    pub fn snapshot(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator snapshotted before open".into());
        };
        let max = runtime.max_parallelism();
        let states = store.snapshot();
        let mut timers: Vec<(u8, i64, K)> = Vec::new();
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

    /// The max parallelism (number of key groups) of the operator.
    pub fn max_parallelism(&self) -> usize {
        self.runtime
            .as_ref()
            .map_or(1, RuntimeContext::max_parallelism)
    }

    /// Removes and returns the next timer of `domain` due at `time`.
    pub fn pop_timer(&mut self, domain: TimeDomain, time: i64) -> Option<(i64, K)> {
        match domain {
            TimeDomain::EventTime => self.timers.event_time.pop_due(time),
            TimeDomain::ProcessingTime => self.timers.processing_time.pop_due(time),
        }
    }

    /// The earliest processing-time timer (possibly a deleted one).
    pub fn next_processing_time(&self) -> Option<i64> {
        self.timers.processing_time.peek_timestamp()
    }

    /// The keys and key groups of `records`. Hand the vector back with
    /// [`KeyedCore::recycle_keys`] to reuse it.
    pub fn batch_keys<In>(
        &mut self,
        records: &[In],
        key_of: impl Fn(&In) -> K,
        max_parallelism: usize,
    ) -> Vec<(K, usize)> {
        let mut keys = std::mem::take(&mut self.batch_keys);
        keys.clear();
        keys.extend(records.iter().map(|record| {
            let key = key_of(record);
            let group = key_group(&key, max_parallelism);
            (key, group)
        }));
        self.warm_state = self
            .store
            .as_ref()
            .is_some_and(|store| store.footprint() >= WARM_MIN_FOOTPRINT);
        keys
    }

    /// Brings the state entries of `keys` into cache: independent lookups overlap
    /// their cache misses, which the record-at-a-time path cannot. Call it for a
    /// few dozen keys just before processing their records, so the entries are
    /// still in the first-level cache when they are used.
    pub fn warm(&self, keys: &[(K, usize)]) {
        if !self.warm_state {
            return;
        }
        if let Some(store) = &self.store {
            store.warm(keys);
        }
    }

    /// Takes back the vector [`KeyedCore::batch_keys`] returned.
    pub fn recycle_keys(&mut self, mut keys: Vec<(K, usize)>) {
        keys.clear();
        self.batch_keys = keys;
    }

    /// A context for `key` (in key group `group`).
    pub fn context<'a>(
        &'a mut self,
        key: &'a K,
        group: usize,
        timestamp: Option<i64>,
        domain: Option<TimeDomain>,
        broadcast: Option<&'a mut BroadcastStateStore>,
    ) -> Result<KeyedContext<'a, K>, UserError> {
        let (Some(store), Some(runtime)) = (self.store.as_mut(), self.runtime.as_ref()) else {
            return Err("keyed operator used before open".into());
        };
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

    /// The store, for work over all keys (`apply_to_keyed_state`).
    pub fn store_mut(&mut self) -> Result<&mut KeyedStateStore<K>, UserError> {
        self.store
            .as_mut()
            .ok_or_else(|| "keyed operator used before open".into())
    }
}

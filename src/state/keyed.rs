//! The keyed state store of one operator subtask: its tables by name, the key
//! groups it owns, snapshots and restores.
//!
//! Tables are created on first use of a descriptor (name, kind and type must
//! then match every later use). With the heap backend, restored state waits as
//! bytes until its descriptor is first used, because only the descriptor knows
//! the value type; a snapshot taken before that carries the bytes on
//! unchanged, so no state is lost for not having been touched. With the
//! RocksDB backend, restored state goes into the database at once (as bytes:
//! the database needs no types) and the database records each state's kind
//! and type, checked when a descriptor opens it.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use weir_actors::snapshot::KeyedStateHandle;
use weir_actors::StateMetrics;

use super::access::TableRef;
use super::descriptor::StateDescriptor;
use super::error::StateError;
use super::heap::{HeapTable, HeapTableSnapshot};
#[cfg(feature = "rocksdb")]
use super::rocksdb::{RocksKeyedDb, RocksSnapshot, RocksTable, RocksTableRef};
use super::schema::{self, RecordedState, StateSchema};
use super::ttl::sweep::{ErasureSchedule, IncrementalCursor};
use super::ttl::{
    unexpired_entries, DowntimePolicy, Expirable, ExpiredCounters, TtlAccess, TtlConfig,
    TtlSettings, TtlTime, TtlUpdate, TtlVisibility,
};
use super::{Key, StateData};
use crate::keys::KeyGroupRange;
use crate::keys::KeyMap;

/// The kinds of keyed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StateKind {
    /// [`ValueStateDescriptor`](super::ValueStateDescriptor)
    Value,
    /// [`ListStateDescriptor`](super::ListStateDescriptor)
    List,
    /// [`MapStateDescriptor`](super::MapStateDescriptor)
    Map,
    /// [`ReducingStateDescriptor`](super::ReducingStateDescriptor)
    Reducing,
    /// [`AggregatingStateDescriptor`](super::AggregatingStateDescriptor)
    Aggregating,
}

/// What the store does with a table without knowing its value type: one
/// zero-sized implementation per (key, value) type, so that typed access is a
/// single `Any` downcast and everything else goes through this table of functions.
trait TableOps<K>: Send + Sync {
    fn keys(&self, table: &dyn Any) -> Vec<K>;
    fn len(&self, table: &dyn Any) -> usize;
    fn snapshot(&self, table: &mut dyn Any) -> Option<Box<dyn ErasedTableSnapshot>>;
    // What a heap table of entries with a time to live does besides (the
    // defaults: a table without one, or in RocksDB, where the database does it).
    /// A snapshot without the entries expired at `now`.
    fn snapshot_unexpired(
        &self,
        table: &mut dyn Any,
        _now: i64,
    ) -> Option<Box<dyn ErasedTableSnapshot>> {
        self.snapshot(table)
    }
    fn group_count(&self, _table: &dyn Any) -> usize {
        0
    }
    fn group_len(&self, _table: &dyn Any, _index: usize) -> usize {
        0
    }
    /// Removes what expired at `now` in the `index`th key group: how many,
    /// and the earliest expiry of what is left; `None` if the group could not
    /// be cleaned now (a snapshot still shares it).
    fn purge_group(
        &self,
        _table: &mut dyn Any,
        _index: usize,
        _now: i64,
    ) -> Option<(usize, Option<i64>)> {
        Some((0, None))
    }
    /// Removes what of `key` expired at `now`: how many, and the earliest
    /// expiry of what is left.
    fn purge_key(
        &self,
        _table: &mut dyn Any,
        _group: usize,
        _key: &K,
        _now: i64,
    ) -> (usize, Option<i64>) {
        (0, None)
    }
    /// Every key with its key group and earliest expiry.
    fn expiries(&self, _table: &dyn Any) -> Vec<(K, usize, i64)> {
        Vec::new()
    }
    /// (live, expired) parts at `now`.
    fn count_expired(&self, _table: &dyn Any, _now: i64) -> (usize, usize) {
        (0, 0)
    }
    /// Looks `keys` up without using what is found (see
    /// [`KeyedStateStore::warm`]): how many have a value.
    fn warm(&self, _table: &dyn Any, _keys: &[(&K, usize)]) -> usize {
        0
    }
}

struct HeapOps<K, S>(PhantomData<fn() -> (K, S)>);

impl<K: Key, S: StateData> TableOps<K> for HeapOps<K, S> {
    fn keys(&self, table: &dyn Any) -> Vec<K> {
        table
            .downcast_ref::<HeapTable<K, S>>()
            .map(HeapTable::keys)
            .unwrap_or_default()
    }
    fn len(&self, table: &dyn Any) -> usize {
        table
            .downcast_ref::<HeapTable<K, S>>()
            .map_or(0, HeapTable::len)
    }
    fn snapshot(&self, table: &mut dyn Any) -> Option<Box<dyn ErasedTableSnapshot>> {
        let table = table.downcast_mut::<HeapTable<K, S>>()?;
        Some(Box::new(table.snapshot()))
    }
    fn warm(&self, table: &dyn Any, keys: &[(&K, usize)]) -> usize {
        table
            .downcast_ref::<HeapTable<K, S>>()
            .map_or(0, |table| table.warm(keys))
    }
}

/// The heap table operations of a state with a time to live, whose values
/// (`T`: one value, list or map, each part with its expiry) are [`Expirable`].
struct HeapTtlOps<K, T>(PhantomData<fn() -> (K, T)>);

impl<K: Key, T: Expirable> HeapTtlOps<K, T> {
    fn table(table: &dyn Any) -> Option<&HeapTable<K, T>> {
        table.downcast_ref::<HeapTable<K, T>>()
    }
    fn table_mut(table: &mut dyn Any) -> Option<&mut HeapTable<K, T>> {
        table.downcast_mut::<HeapTable<K, T>>()
    }
}

impl<K: Key, T: Expirable> TableOps<K> for HeapTtlOps<K, T> {
    fn keys(&self, table: &dyn Any) -> Vec<K> {
        HeapOps::<K, T>(PhantomData).keys(table)
    }
    fn len(&self, table: &dyn Any) -> usize {
        HeapOps::<K, T>(PhantomData).len(table)
    }
    fn snapshot(&self, table: &mut dyn Any) -> Option<Box<dyn ErasedTableSnapshot>> {
        HeapOps::<K, T>(PhantomData).snapshot(table)
    }
    fn warm(&self, table: &dyn Any, keys: &[(&K, usize)]) -> usize {
        HeapOps::<K, T>(PhantomData).warm(table, keys)
    }
    fn snapshot_unexpired(
        &self,
        table: &mut dyn Any,
        now: i64,
    ) -> Option<Box<dyn ErasedTableSnapshot>> {
        let table = Self::table_mut(table)?;
        Some(Box::new(UnexpiredSnapshot {
            inner: table.snapshot(),
            now,
        }))
    }
    fn group_count(&self, table: &dyn Any) -> usize {
        Self::table(table).map_or(0, HeapTable::group_count)
    }
    fn group_len(&self, table: &dyn Any, index: usize) -> usize {
        Self::table(table).map_or(0, |t| t.group_len(index))
    }
    fn purge_group(
        &self,
        table: &mut dyn Any,
        index: usize,
        now: i64,
    ) -> Option<(usize, Option<i64>)> {
        let Some(table) = Self::table_mut(table) else {
            return Some((0, None));
        };
        let mut earliest: Option<i64> = None;
        let removed = table.purge_group(index, |v| {
            let (removed, empty) = v.purge(now);
            if !empty {
                earliest = match (earliest, v.earliest_expiry()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            (removed, empty)
        })?;
        Some((removed, earliest))
    }
    fn purge_key(
        &self,
        table: &mut dyn Any,
        group: usize,
        key: &K,
        now: i64,
    ) -> (usize, Option<i64>) {
        let Some(table) = Self::table_mut(table) else {
            return (0, None);
        };
        let removed = table.purge_key(group, key, |v| v.purge(now));
        let next = table.get(group, key).and_then(Expirable::earliest_expiry);
        (removed, next)
    }
    fn expiries(&self, table: &dyn Any) -> Vec<(K, usize, i64)> {
        let mut out = Vec::new();
        if let Some(table) = Self::table(table) {
            table.for_each_entry(|group, k, v| {
                if let Some(at) = v.earliest_expiry() {
                    out.push((k.clone(), group, at));
                }
            });
        }
        out
    }
    fn count_expired(&self, table: &dyn Any, now: i64) -> (usize, usize) {
        let (mut live, mut expired) = (0, 0);
        if let Some(table) = Self::table(table) {
            table.for_each_entry(|_, _, v| {
                let (l, e) = v.count_parts(now);
                live += l;
                expired += e;
            });
        }
        (live, expired)
    }
}

trait ErasedTableSnapshot: Send {
    fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError>;
}

impl<K: Key, S: StateData> ErasedTableSnapshot for HeapTableSnapshot<K, S> {
    fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError> {
        HeapTableSnapshot::write_group(self, name, group)
    }
}

/// A heap snapshot of a state with a time to live: written without the
/// entries (list elements, map entries) expired at the snapshot's time.
struct UnexpiredSnapshot<K, T> {
    inner: HeapTableSnapshot<K, T>,
    now: i64,
}

impl<K: Key, T: Expirable> ErasedTableSnapshot for UnexpiredSnapshot<K, T> {
    fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError> {
        let now = self.now;
        self.inner
            .write_group_filtered(name, group, |v: &T| v.unexpired(now))
    }
}

/// RocksDB tables need no per-type operations: the database does it all.
#[cfg(feature = "rocksdb")]
struct RocksOps;

#[cfg(feature = "rocksdb")]
impl<K> TableOps<K> for RocksOps {
    fn keys(&self, _table: &dyn Any) -> Vec<K> {
        Vec::new()
    }
    fn len(&self, _table: &dyn Any) -> usize {
        0
    }
    fn snapshot(&self, _table: &mut dyn Any) -> Option<Box<dyn ErasedTableSnapshot>> {
        None
    }
}

struct Table<K> {
    name: String,
    kind: StateKind,
    type_name: &'static str,
    /// The state's version and types, as the snapshots record them.
    schema: Arc<StateSchema>,
    /// Restored values still to migrate, by key group (RocksDB; `None`:
    /// nothing to migrate).
    migrating: Option<Box<GroupMigration>>,
    table: Box<dyn Any + Send>,
    ops: Box<dyn TableOps<K>>,
    /// The state's time to live and its cleanups, if it has one.
    ttl: Option<TableTtl<K>>,
}

/// The key groups of a restored RocksDB state whose values are still at
/// an older version: each is migrated when one of its keys is first used,
/// and every one left before a snapshot, so that the restore itself does not
/// depend on the state's size and a snapshot holds the current version.
#[cfg_attr(not(feature = "rocksdb"), allow(dead_code))]
struct GroupMigration {
    migrations: Vec<schema::MigrationStep>,
    /// Whether the values are stored with expiries.
    with_expiry: bool,
    /// Per key group of the store's range: still to migrate.
    pending: Vec<bool>,
    left: usize,
}

/// A table's time to live, and the state of its cleanups.
struct TableTtl<K> {
    config: TtlConfig,
    /// The time to live in ms (`config`'s, converted once).
    ttl_ms: i64,
    /// What every access asks of `config`, read once.
    event_time: bool,
    refresh_on_read: bool,
    return_expired: bool,
    /// Entries the heap's incremental cleanup checks per access (0: none).
    incremental_per_access: usize,
    /// Accesses since the incremental cleanup last stepped: it steps for them
    /// at the end of the batch (or timer round), not in each access.
    accesses: usize,
    /// Processing-time states paused during downtime: how far their clock is
    /// behind processing time (the downtimes so far).
    offset: i64,
    counters: ExpiredCounters,
    /// The heap's incremental cleanup.
    cursor: IncrementalCursor,
    /// The guaranteed-erasure sweep, if the state has a bound.
    erasure: Option<ErasureSchedule>,
    /// Cleanup timers (one per key at most), if the state asked for them.
    timers: Option<CleanupTimers<K>>,
}

impl<K: Key> TableTtl<K> {
    /// `staggered`: the erasure sweep spreads the key groups over its period
    /// (the heap sweeps group by group; RocksDB sweeps them together, one
    /// flush and compaction per period).
    fn new(config: TtlConfig, groups: usize, now: i64, staggered: bool) -> Self {
        TableTtl {
            erasure: config.erasure_bound().map(|b| {
                ErasureSchedule::new(
                    b.as_millis().min(i64::MAX as u128) as i64,
                    groups.max(1),
                    now,
                    staggered,
                )
            }),
            timers: config.timers().then(CleanupTimers::default),
            ttl_ms: config.ttl_ms(),
            event_time: config.time_characteristic() == TtlTime::EventTime,
            refresh_on_read: config.update() == TtlUpdate::OnReadAndWrite,
            return_expired: config.visibility_of_expired()
                == TtlVisibility::ReturnExpiredIfNotCleanedUp,
            incremental_per_access: config.incremental_cleanup().map_or(0, |i| i.entries),
            accesses: 0,
            config,
            offset: 0,
            counters: ExpiredCounters::default(),
            cursor: IncrementalCursor::default(),
        }
    }

    /// The time expiries of this state are compared with (and, in
    /// processing time, written with).
    #[inline]
    fn now(&self, time: StateTime) -> i64 {
        match self.event_time {
            false => time.processing.saturating_sub(self.offset),
            true => time.watermark,
        }
    }

    /// Resumes the clock of a state paused during downtime from `restored`
    /// (its settings in the snapshot), the store having opened at `opened`.
    fn resume(&mut self, restored: Option<TtlSettings>, opened: i64) {
        let paused = self.config.downtime_policy() == DowntimePolicy::PauseDuringDowntime
            && self.config.time_characteristic() == TtlTime::ProcessingTime;
        if let (true, Some(clock)) = (paused, restored.and_then(|s| s.clock_ms)) {
            self.offset = opened.saturating_sub(clock).max(0);
        }
    }

    /// The settings a snapshot records at `time`, with the state's clock
    /// (processing time: what a paused restore resumes from; event time: the
    /// watermark, below which a restore never goes back).
    fn settings_at(&self, time: StateTime) -> TtlSettings {
        let mut settings = self.config.settings();
        settings.clock_ms = Some(self.now(time)).filter(|&now| now != i64::MIN);
        settings
    }
}

/// The cleanup timers of one state: a key has at most one, at the earliest
/// expiry known when it was set; when it fires, what expired is removed and
/// a new one is set for what is left.
struct CleanupTimers<K> {
    queue: crate::state::timers::TimerQueue<(K, usize)>,
    pending: KeyMap<K, i64>,
}

impl<K> Default for CleanupTimers<K> {
    fn default() -> Self {
        CleanupTimers {
            queue: Default::default(),
            pending: KeyMap::default(),
        }
    }
}

impl<K: Key> CleanupTimers<K> {
    /// A timer for `key` at `at`, unless it has one at or before `at` (an
    /// event-time entry can be stamped earlier than one written before it;
    /// the later timer that stays finds nothing expired, or what expired
    /// since).
    fn ensure(&mut self, key: &K, group: usize, at: i64) {
        match self.pending.get_mut(key) {
            Some(pending) if *pending <= at => {}
            Some(pending) => {
                *pending = at;
                self.queue.register((key.clone(), group), at);
            }
            None => {
                self.pending.insert(key.clone(), at);
                self.queue.register((key.clone(), group), at);
            }
        }
    }

    fn pop_due(&mut self, now: i64) -> Option<(K, usize)> {
        let (_, (key, group)) = self.queue.pop_due(now)?;
        self.pending.remove(&key);
        Some((key, group))
    }

    fn next(&self) -> Option<i64> {
        self.queue.peek_timestamp()
    }
}

/// The times state accesses see: the processing time and the watermark (set
/// per batch by the operator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTime {
    /// Processing time, ms.
    pub processing: i64,
    /// The operator's watermark.
    pub watermark: i64,
}

impl Default for StateTime {
    fn default() -> Self {
        StateTime {
            processing: 0,
            watermark: i64::MIN,
        }
    }
}

/// Serialised state of one state table in one key group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateBytes {
    /// The state's name.
    pub name: String,
    /// Its kind.
    pub kind: StateKind,
    /// The stored type, as `std::any::type_name` spells it.
    pub type_name: String,
    /// The entries, rmp-serde encoded.
    pub entries: Vec<u8>,
    /// The state's time to live when the snapshot was taken (then every
    /// value is stored with its expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSettings>,
}

/// What a snapshot is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOptions {
    /// The checkpoint (or savepoint) id.
    pub checkpoint_id: u64,
    /// A full snapshot in the canonical format (savepoints), even where the
    /// backend would take an incremental one.
    pub full: bool,
}

/// The keyed state of one subtask at a point in time (the synchronous part of
/// a snapshot; [`KeyedStateSnapshot::serialize`] does the rest, off the
/// processing path).
pub struct KeyedStateSnapshot {
    range: KeyGroupRange,
    /// The kinds and schemas of the states, by name.
    schemas: BTreeMap<String, RecordedState>,
    tables: Vec<SnapshotTable>,
    pending: BTreeMap<usize, Vec<StateBytes>>,
    /// The store's times at the snapshot and its opening (restore): what
    /// restored bytes with a time to live are filtered with.
    time: StateTime,
    opened: i64,
    #[cfg(feature = "rocksdb")]
    rocks: Option<RocksSnapshot>,
}

/// One heap table in a snapshot.
struct SnapshotTable {
    name: String,
    kind: StateKind,
    type_name: &'static str,
    ttl: Option<TtlSettings>,
    snapshot: Box<dyn ErasedTableSnapshot>,
}

/// A serialised keyed snapshot: canonical bytes per key group, and handles
/// over key-group ranges (incremental RocksDB snapshots).
#[derive(Debug, Default)]
pub struct KeyedSnapshotParts {
    /// For each key group with state, its states' bytes.
    pub groups: BTreeMap<usize, Vec<StateBytes>>,
    /// Handles of incremental snapshots.
    pub handles: Vec<KeyedStateHandle>,
    /// The kinds and schemas of the states, by name.
    pub schemas: BTreeMap<String, RecordedState>,
}

impl KeyedStateSnapshot {
    /// Serialises the snapshot (and, for an incremental one, uploads its new files).
    pub fn serialize(self) -> Result<KeyedSnapshotParts, StateError> {
        let mut parts = KeyedSnapshotParts {
            groups: unexpired_pending(self.pending, self.time, self.opened)?,
            handles: Vec::new(),
            schemas: self.schemas,
        };
        #[cfg(feature = "rocksdb")]
        if let Some(rocks) = self.rocks {
            match rocks.write()? {
                super::rocksdb::WrittenSnapshot::Full(groups) => {
                    for (group, states) in groups {
                        parts.groups.entry(group).or_default().extend(states);
                    }
                }
                super::rocksdb::WrittenSnapshot::Incremental(handle) => parts.handles.push(handle),
            }
        }
        for group in self.range.start..self.range.end {
            for table in &self.tables {
                if let Some(entries) = table.snapshot.write_group(&table.name, group)? {
                    parts.groups.entry(group).or_default().push(StateBytes {
                        name: table.name.clone(),
                        kind: table.kind,
                        type_name: table.type_name.to_string(),
                        entries,
                        ttl: table.ttl,
                    });
                }
            }
        }
        Ok(parts)
    }
}

fn next_store_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where a store's tables live.
enum Backing {
    Heap,
    #[cfg(feature = "rocksdb")]
    RocksDb(Box<RocksKeyedDb>),
}

/// All keyed state of one operator subtask.
pub struct KeyedStateStore<K> {
    id: u64,
    range: KeyGroupRange,
    tables: Vec<Table<K>>,
    /// Restored bytes of states no descriptor has opened yet, by key group (heap).
    pending: BTreeMap<usize, Vec<StateBytes>>,
    backing: Backing,
    /// The times accesses see (states with a time to live).
    time: StateTime,
    /// Whether some table has a time to live.
    has_ttl: bool,
    /// The processing time the store was opened (restored) at.
    opened_at: Option<i64>,
    /// The highest watermark a restored event-time state was snapshotted at:
    /// the watermark states see never goes below it (a restored job starts
    /// without one, and what expired must stay expired).
    restored_watermark: i64,
    /// The queryable states used so far, by queryable name.
    queryable: BTreeMap<String, Queryable<K>>,
    /// The kinds and schemas the restored snapshot recorded, by state name.
    restored_schemas: BTreeMap<String, RecordedState>,
    /// The uid of the operator whose state this is (for errors), if known.
    operator: Option<String>,
}

/// Reads one key's value of a queryable state, encoded (the descriptor's
/// [`StateDescriptor::queried`]).
type ReadQueried<K> =
    Box<dyn Fn(&mut KeyedStateStore<K>, &K, usize) -> Result<Option<Vec<u8>>, StateError> + Send>;

/// Reads one map entry of a queryable map state, encoded (`Err(None)`: not
/// a map state).
type ReadQueriedEntry<K> = Box<
    dyn Fn(&mut KeyedStateStore<K>, &K, usize, &[u8]) -> Result<Option<Vec<u8>>, Option<StateError>>
        + Send,
>;

/// Lists the keys with a value of a queryable state.
type ListQueried<K> = Box<dyn Fn(&mut KeyedStateStore<K>) -> Result<Vec<K>, StateError> + Send>;

/// A queryable state: its name and how to read it without its types.
struct Queryable<K> {
    state: String,
    read: ReadQueried<K>,
    entry: ReadQueriedEntry<K>,
    keys: ListQueried<K>,
}

/// A live query that found no queryable state of the name.
#[derive(Debug)]
pub struct UnknownQueryable {
    /// The queryable names there are.
    pub known: Vec<String>,
}

impl<K: Key> KeyedStateStore<K> {
    /// An empty heap store for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        KeyedStateStore {
            id: next_store_id(),
            range,
            tables: Vec::new(),
            pending: BTreeMap::new(),
            backing: Backing::Heap,
            time: StateTime::default(),
            has_ttl: false,
            opened_at: None,
            restored_watermark: i64::MIN,
            queryable: BTreeMap::new(),
            restored_schemas: BTreeMap::new(),
            operator: None,
        }
    }

    /// Sets the times state accesses see until the next call (the operator
    /// calls it per batch, timer round and snapshot).
    #[inline]
    pub fn set_time(&mut self, mut time: StateTime) {
        time.watermark = time.watermark.max(self.restored_watermark);
        self.time = time;
        self.opened_at.get_or_insert(time.processing);
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            db.set_time(time);
        }
    }

    /// The times state accesses see.
    pub fn time(&self) -> StateTime {
        self.time
    }

    /// Whether a state of this store has a time to live.
    #[inline]
    pub fn has_ttl(&self) -> bool {
        self.has_ttl
    }

    /// A store kept in a RocksDB database (restored already, if it was).
    #[cfg(feature = "rocksdb")]
    pub(crate) fn with_rocksdb(db: RocksKeyedDb) -> Self {
        let range = db.range();
        KeyedStateStore {
            backing: Backing::RocksDb(Box::new(db)),
            ..Self::new(range)
        }
    }

    /// The error a RocksDB access met since the last call (accessors cannot
    /// return it): the operator fails with it.
    #[inline]
    pub fn take_failure(&mut self) -> Option<StateError> {
        match &self.backing {
            Backing::Heap => None,
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(db) => db.take_failure(),
        }
    }

    /// The end of a batch of records (or of a round of timers): a RocksDB
    /// store without an entry cache writes the batch's values back in one
    /// write batch. Call before [`take_failure`](Self::take_failure).
    #[inline]
    pub fn end_batch(&mut self) {
        if self.has_ttl {
            self.ttl_accesses_processed();
        }
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            db.end_batch();
        }
    }

    /// Whether [`prefetch`](Self::prefetch) does anything: the store is in a
    /// RocksDB database, where reading a batch's keys at once pays.
    #[inline]
    pub fn prefetches(&self) -> bool {
        match &self.backing {
            Backing::Heap => false,
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(_) => true,
        }
    }

    /// Reads, with one RocksDB multi-get, the values of `keys` (the keys of a
    /// batch's records, with their key groups) in every state with one value
    /// per key that the previous batch read, so that this batch's accesses
    /// find them in the entry cache. Errors are reported as accessors'
    /// errors are (see [`take_failure`](Self::take_failure)).
    pub fn prefetch(&mut self, keys: &[(K, usize)]) {
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &mut self.backing {
            let range = self.range;
            let tables = &self.tables;
            db.prefetch(|data_keys| {
                for t in tables {
                    let Some(table) = t.table.downcast_ref::<RocksTable>() else {
                        continue;
                    };
                    if table.take_read() {
                        let owned = keys.iter().filter(|(_, group)| range.contains(*group));
                        table.data_keys(owned.map(|(key, group)| (key, *group)), data_keys);
                    }
                }
            });
        }
        #[cfg(not(feature = "rocksdb"))]
        let _ = keys;
    }

    /// Whether [`warm`](Self::warm) does anything: the store is on the heap.
    #[inline]
    pub fn warms(&self) -> bool {
        matches!(self.backing, Backing::Heap)
    }

    /// Looks `keys` (the keys of a batch's records or of the timers due
    /// next, with their key groups) up in every heap table, using nothing
    /// it finds. The lookups do not depend on one another, so the processor
    /// overlaps their cache misses, which one record at a time it cannot
    /// (each record's state access waits for its own): the records that
    /// follow find their entries in the cache. On a state of many keys,
    /// most of the time of a lookup is that miss.
    pub fn warm(&self, keys: &[(&K, usize)]) {
        let mut found = 0;
        for t in &self.tables {
            found += t.ops.warm(t.table.as_ref(), keys);
        }
        std::hint::black_box(found);
    }

    /// The key groups this store holds.
    pub fn key_groups(&self) -> KeyGroupRange {
        self.range
    }

    /// Checks that `group` is owned by this store.
    pub fn check_group(&self, group: usize) -> Result<(), StateError> {
        if self.range.contains(group) {
            Ok(())
        } else {
            Err(StateError::ForeignKeyGroup {
                group,
                start: self.range.start,
                end: self.range.end,
            })
        }
    }

    /// The index of `descriptor`'s table: remembered in the descriptor after
    /// its first use with this store (the per-record path), else looked up or
    /// created.
    #[inline(always)]
    fn resolve<D: StateDescriptor>(&mut self, descriptor: &D) -> Result<usize, StateError> {
        self.resolve_at(descriptor, None)
    }

    /// [`resolve`](Self::resolve) for an access by a record or timer of
    /// `timestamp` (what an event-time state restored without expiries is
    /// stamped with when it is first used).
    #[inline(always)]
    fn resolve_at<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
        timestamp: Option<i64>,
    ) -> Result<usize, StateError> {
        match descriptor.slot().get() {
            Some((store, index)) if store == self.id => Ok(index),
            _ => self.resolve_first_use(descriptor, timestamp),
        }
    }

    /// Makes `descriptor`'s state answer live queries under `queryable`.
    fn register_queryable<D: StateDescriptor>(
        &mut self,
        queryable: &str,
        descriptor: &D,
    ) -> Result<(), StateError> {
        if let Some(Queryable { state, .. }) = self.queryable.get(queryable) {
            if state == descriptor.name() {
                return Ok(());
            }
            return Err(StateError::InvalidQueryable {
                message: format!(
                    "states `{state}` and `{}` are both queryable as `{queryable}`: give them \
                     different queryable names",
                    descriptor.name()
                ),
                cause: weir_actors::error::NotRetryable,
            });
        }
        let reader = descriptor.clone();
        let entry_reader = descriptor.clone();
        let lister = descriptor.clone();
        let entry = Queryable {
            state: descriptor.name().to_string(),
            read: Box::new(move |store, key, group| {
                let state = store.open(&reader, key, group)?;
                D::queried(state).map_err(|e| StateError::Encode {
                    name: reader.name().to_string(),
                    cause: e.to_string(),
                })
            }),
            entry: Box::new(move |store, key, group, user_key| {
                let state = store.open(&entry_reader, key, group)?;
                D::queried_entry(state, user_key).map_err(|e| {
                    e.map(|e| StateError::Encode {
                        name: entry_reader.name().to_string(),
                        cause: e.to_string(),
                    })
                })
            }),
            keys: Box::new(move |store| store.keys(&lister)),
        };
        self.queryable.insert(queryable.to_string(), entry);
        Ok(())
    }

    /// The value of `key` (in key group `group`) in the state queryable as
    /// `queryable`, encoded; `None` if the key has none. Reads as the
    /// function would: a state with a time to live that restarts on reads
    /// (`OnReadAndWrite`) restarts on a query too.
    pub fn query(
        &mut self,
        queryable: &str,
        key: &K,
        group: usize,
    ) -> Result<Result<Option<Vec<u8>>, StateError>, UnknownQueryable> {
        self.with_queryable(queryable, |store, q| (q.read)(store, key, group))
    }

    /// The value under the encoded `user_key` in `key`'s map, in the map
    /// state queryable as `queryable` (`Err(None)`: not a map state).
    pub fn query_entry(
        &mut self,
        queryable: &str,
        key: &K,
        group: usize,
        user_key: &[u8],
    ) -> Result<Result<Option<Vec<u8>>, Option<StateError>>, UnknownQueryable> {
        self.with_queryable(queryable, |store, q| (q.entry)(store, key, group, user_key))
    }

    /// Up to `limit` keys with a value in the state queryable as
    /// `queryable`, encoded, in byte order, after `after` if given.
    pub fn query_keys(
        &mut self,
        queryable: &str,
        limit: usize,
        after: Option<&[u8]>,
    ) -> Result<Result<Vec<Vec<u8>>, StateError>, UnknownQueryable> {
        self.with_queryable(queryable, |store, q| {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let mut keys = Vec::new();
            for key in (q.keys)(store)? {
                let encoded =
                    crate::runtime::codec::encode(&key).map_err(|e| StateError::Encode {
                        name: q.state.clone(),
                        cause: e.to_string(),
                    })?;
                if after.is_none_or(|after| encoded.as_slice() > after) {
                    keys.push(encoded);
                }
            }
            keys.sort();
            keys.truncate(limit);
            Ok(keys)
        })
    }

    /// The names of the queryable states used so far (`None`: `queryable`
    /// is one of them).
    pub fn unknown_queryable(&self, queryable: &str) -> Option<UnknownQueryable> {
        (!self.queryable.contains_key(queryable)).then(|| UnknownQueryable {
            known: self.queryable.keys().cloned().collect(),
        })
    }

    /// The queryable states used so far: queryable name -> state name.
    pub fn queryable_states(&self) -> BTreeMap<String, String> {
        self.queryable
            .iter()
            .map(|(queryable, q)| (queryable.clone(), q.state.clone()))
            .collect()
    }

    /// Runs `f` with the queryable state `queryable` (taken out of the
    /// registry meanwhile: it reads the store).
    fn with_queryable<R>(
        &mut self,
        queryable: &str,
        f: impl FnOnce(&mut Self, &Queryable<K>) -> R,
    ) -> Result<R, UnknownQueryable> {
        let Some(entry) = self.queryable.remove(queryable) else {
            return Err(UnknownQueryable {
                known: self.queryable.keys().cloned().collect(),
            });
        };
        let answer = f(self, &entry);
        self.queryable.insert(queryable.to_string(), entry);
        Ok(answer)
    }

    #[cold]
    #[inline(never)]
    fn resolve_first_use<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
        timestamp: Option<i64>,
    ) -> Result<usize, StateError> {
        let type_name = if descriptor.ttl().is_some() {
            std::any::type_name::<D::TtlStored>()
        } else {
            std::any::type_name::<D::Stored>()
        };
        if let Some(ttl) = descriptor.ttl() {
            ttl.check(descriptor.name())?;
        }
        let index = match self.tables.iter().position(|t| t.name == descriptor.name()) {
            Some(index) => {
                let t = &self.tables[index];
                if t.kind != descriptor.kind() || t.type_name != type_name {
                    return Err(StateError::Mismatch {
                        name: t.name.clone(),
                        declared: format!("{:?}<{}>", t.kind, t.type_name),
                        requested: format!("{:?}<{}>", descriptor.kind(), type_name),
                    });
                }
                if t.ttl.as_ref().map(|state| &state.config) != descriptor.ttl() {
                    return Err(StateError::invalid_ttl(format!(
                        "state `{}` is opened with two different time-to-live configurations \
                         ({:?} and {:?}): give its descriptors the same one",
                        t.name,
                        t.ttl.as_ref().map(|state| &state.config),
                        descriptor.ttl()
                    )));
                }
                index
            }
            None => self.create(descriptor, type_name, timestamp)?,
        };
        if let Some(queryable) = descriptor.queryable_name() {
            self.register_queryable(queryable, descriptor)?;
        }
        descriptor.slot().set(Some((self.id, index)));
        Ok(index)
    }

    fn create<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
        type_name: &'static str,
        timestamp: Option<i64>,
    ) -> Result<usize, StateError> {
        let (name, kind) = (descriptor.name(), descriptor.kind());
        let opened = self.opened_at.unwrap_or(self.time.processing);
        let (schema, migrations, recorded) =
            self.judge_restored(descriptor)
                .map_err(|e| match &self.operator {
                    Some(uid) => e.of_operator(uid),
                    None => e,
                })?;
        let mut ttl = descriptor.ttl().map(|config| {
            let staggered = matches!(self.backing, Backing::Heap);
            TableTtl::new(
                config.clone(),
                self.range.len(),
                self.time.processing,
                staggered,
            )
        });
        if let Some(ttl) = ttl.as_mut() {
            let restored = match &self.backing {
                Backing::Heap => self
                    .pending
                    .values()
                    .flat_map(|states| states.iter().filter(|s| s.name == name))
                    .find_map(|s| s.ttl),
                #[cfg(feature = "rocksdb")]
                Backing::RocksDb(db) => db.stored_ttl(name)?,
            };
            ttl.resume(restored, opened);
            if let Some(clock) = restored
                .filter(|s| s.time == TtlTime::EventTime)
                .and_then(|s| s.clock_ms)
            {
                self.raise_restored_watermark(clock);
            }
        }
        // Entries restored without an expiry (the time to live was switched
        // on) live from the restore: its processing time, on the state's
        // clock; in event time, the event time when the state is first used
        // (the later of the record's timestamp and the watermark; before
        // either is known, the processing time, as event time is usually
        // the same epoch).
        let restore_expiry = ttl.as_ref().map(|t| {
            let restored_at = match t.config.time_characteristic() {
                TtlTime::ProcessingTime => opened.saturating_sub(t.offset),
                TtlTime::EventTime => {
                    match timestamp.unwrap_or(i64::MIN).max(self.time.watermark) {
                        i64::MIN => opened,
                        event_time => event_time,
                    }
                }
            };
            restored_at.saturating_add(t.config.ttl_ms())
        });
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &mut self.backing {
            let other_form = match restore_expiry {
                Some(at) => (
                    std::any::type_name::<D::Stored>(),
                    super::rocksdb::FormChange::AddExpiry(at),
                ),
                None => (
                    std::any::type_name::<D::TtlStored>(),
                    super::rocksdb::FormChange::DropExpiry(restored_now(
                        db.stored_ttl(name)?,
                        self.time,
                        opened,
                    )),
                ),
            };
            let mut migrating = None;
            if recorded {
                // Its schema was judged readable: registered under this
                // job's type, in the form (with expiries or not) it was
                // stored in, and its values migrated if they must be.
                let stored_with_expiry = db.stored_ttl(name)?.is_some();
                let stored_as = match stored_with_expiry {
                    true => std::any::type_name::<D::TtlStored>(),
                    false => std::any::type_name::<D::Stored>(),
                };
                db.retype(name, kind, stored_as)?;
                if !migrations.is_empty() {
                    // `register` below brings the values to this state's
                    // form (with expiries or not) first.
                    migrating = Some(Box::new(GroupMigration {
                        migrations: migrations.clone(),
                        with_expiry: ttl.is_some(),
                        pending: vec![true; self.range.len()],
                        left: self.range.len(),
                    }));
                }
            }
            db.register(
                name,
                kind,
                type_name,
                other_form,
                ttl.as_ref().map(|t| (&t.config, t.offset)),
            )?;
            self.has_ttl |= ttl.is_some();
            self.tables.push(Table {
                name: name.to_string(),
                kind,
                type_name,
                schema: Arc::new(schema),
                migrating,
                table: Box::new(RocksTable::new(name, RocksKeyedDb::caches(kind))),
                ops: Box::new(RocksOps),
                ttl,
            });
            let index = self.tables.len() - 1;
            self.rebuild_cleanup_timers(index);
            return Ok(index);
        }
        // Restored bytes leave `pending` only once every group of the state has
        // been read: after a mismatch or corrupt bytes they are still there,
        // and the next snapshot carries them on.
        let plain = std::any::type_name::<D::Stored>();
        let with_expiry = std::any::type_name::<D::TtlStored>();
        let time = self.time;
        // Whether restored bytes hold expiries: as their snapshot says when
        // it recorded the state's schema (judged readable above, whatever
        // the type is called now), else as their type's name says.
        let stored_with_expiry = |bytes: &StateBytes| match recorded {
            true => Ok(bytes.ttl.is_some()),
            false if bytes.type_name == with_expiry => Ok(true),
            false if bytes.type_name == plain => Ok(false),
            false => Err(mismatch_restored(name, bytes, kind, type_name)),
        };
        let (table, ops): (Box<dyn Any + Send>, Box<dyn TableOps<K>>) = if ttl.is_some() {
            let mut table = HeapTable::<K, D::TtlStored>::new(self.range);
            self.restore_pending(name, kind, type_name, |group, bytes| {
                let with_expiry = stored_with_expiry(bytes)?;
                let entries = migrate_restored(name, group, bytes, with_expiry, &migrations)?;
                if with_expiry {
                    table.restore_group(name, group, &entries)
                } else {
                    // Restored without expiries: they live from the restore.
                    let at = restore_expiry.unwrap_or(i64::MAX);
                    table.restore_group_as::<D::Stored>(name, group, &entries, |v| {
                        Some(D::with_expiry(v, at))
                    })
                }
            })?;
            (
                Box::new(table),
                Box::new(HeapTtlOps::<K, D::TtlStored>(PhantomData)),
            )
        } else {
            let mut table = HeapTable::<K, D::Stored>::new(self.range);
            self.restore_pending(name, kind, type_name, |group, bytes| {
                let with_expiry = stored_with_expiry(bytes)?;
                let entries = migrate_restored(name, group, bytes, with_expiry, &migrations)?;
                if !with_expiry {
                    table.restore_group(name, group, &entries)
                } else {
                    // The time to live was switched off: what had expired stays gone.
                    let now = restored_now(bytes.ttl, time, opened);
                    table.restore_group_as::<D::TtlStored>(name, group, &entries, |v| {
                        D::without_expiry(v, now)
                    })
                }
            })?;
            (
                Box::new(table),
                Box::new(HeapOps::<K, D::Stored>(PhantomData)),
            )
        };
        self.has_ttl |= ttl.is_some();
        self.tables.push(Table {
            name: name.to_string(),
            kind,
            type_name,
            schema: Arc::new(schema),
            migrating: None,
            table,
            ops,
            ttl,
        });
        let index = self.tables.len() - 1;
        self.rebuild_cleanup_timers(index);
        Ok(index)
    }

    /// The schema `descriptor` declares, the migrations its restored values
    /// need, and whether the snapshot recorded a schema for it: the verdict
    /// on the schema the snapshot recorded (in its keyed metadata; RocksDB:
    /// also in its registration). An incompatible state or a downgrade is
    /// an error naming the state, what differs and what to do.
    fn judge_restored<D: StateDescriptor>(
        &self,
        descriptor: &D,
    ) -> Result<(StateSchema, Vec<schema::MigrationStep>, bool), StateError> {
        let name = descriptor.name();
        let declared = schema::declared_checked(descriptor)?;
        let recorded = match self.restored_schemas.get(name) {
            Some(restored) if restored.kind != descriptor.kind() => {
                return Err(StateError::Mismatch {
                    name: name.to_string(),
                    declared: format!("{:?} (restored)", restored.kind),
                    requested: format!("{:?}", descriptor.kind()),
                })
            }
            other => other.map(|restored| restored.schema.clone()),
        };
        let was_recorded = recorded.is_some();
        let migrations = match recorded {
            None => Vec::new(),
            Some(recorded) => {
                let (verdict, migrations) = schema::judge(&recorded, &declared)
                    .map_err(|problem| StateError::schema(name, problem.to_string()))?;
                if verdict != schema::Compatibility::Identical {
                    tracing::info!(state = name, ?verdict, "restored state schema");
                }
                migrations
            }
        };
        Ok((declared.schema, migrations, was_recorded))
    }

    /// Feeds the restored bytes of state `name` to `restore`, group by group,
    /// and forgets them once all were read.
    fn restore_pending(
        &mut self,
        name: &str,
        kind: StateKind,
        type_name: &str,
        mut restore: impl FnMut(usize, &StateBytes) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        for (&group, states) in &self.pending {
            if let Some(bytes) = states.iter().find(|s| s.name == name) {
                if bytes.kind != kind {
                    return Err(mismatch_restored(name, bytes, kind, type_name));
                }
                restore(group, bytes)?;
            }
        }
        for states in self.pending.values_mut() {
            states.retain(|s| s.name != name);
        }
        self.pending.retain(|_, states| !states.is_empty());
        Ok(())
    }

    /// Migrates table `index`'s restored values in key group `group`, if
    /// they are still to migrate (see [`GroupMigration`]), with the groups
    /// still to migrate that follow it when the backend reads several
    /// groups in one scan for about the cost of one
    /// ([`migration_groups_per_scan`](super::rocksdb::RocksKeyedDb::migration_groups_per_scan)).
    #[cfg(feature = "rocksdb")]
    #[cold]
    #[inline(never)]
    fn migrate_group(&mut self, index: usize, group: usize) -> Result<(), StateError> {
        let Some(offset) = group.checked_sub(self.range.start) else {
            return Ok(());
        };
        let pending = self.tables[index]
            .migrating
            .as_ref()
            .is_some_and(|migration| migration.pending.get(offset).copied().unwrap_or(false));
        if !pending {
            return Ok(());
        }
        let per_scan = match &self.backing {
            Backing::RocksDb(db) => db.migration_groups_per_scan(),
            Backing::Heap => 1,
        };
        self.migrate_groups(index, offset, per_scan)
    }

    /// Migrates up to `count` of table `index`'s key groups still to
    /// migrate, from the group at `offset` in the store's range on.
    fn migrate_groups(
        &mut self,
        index: usize,
        offset: usize,
        count: usize,
    ) -> Result<(), StateError> {
        let table = &mut self.tables[index];
        let Some(migration) = table.migrating.as_mut() else {
            return Ok(());
        };
        let offsets: Vec<usize> = (offset..migration.pending.len())
            .filter(|&o| migration.pending[o])
            .take(count)
            .collect();
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            let groups: Vec<usize> = offsets.iter().map(|o| self.range.start + o).collect();
            db.migrate_group_values(
                &table.name,
                table.kind,
                migration.with_expiry,
                &migration.migrations,
                &groups,
            )?;
        }
        for o in offsets {
            migration.pending[o] = false;
            migration.left -= 1;
        }
        if migration.left == 0 {
            table.migrating = None;
        }
        Ok(())
    }

    /// Migrates every restored value still to migrate (before a snapshot),
    /// each table's in one scan.
    fn migrate_every_group(&mut self) -> Result<(), StateError> {
        for index in 0..self.tables.len() {
            self.migrate_groups(index, 0, usize::MAX)?;
        }
        Ok(())
    }

    /// Sets a cleanup timer for every key of a table whose state asked for
    /// them (after a restore: timers are not part of a snapshot).
    fn rebuild_cleanup_timers(&mut self, index: usize) {
        let t = &mut self.tables[index];
        let Some(ttl) = t.ttl.as_mut() else {
            return;
        };
        let Some(timers) = ttl.timers.as_mut() else {
            return;
        };
        let expiries = match &self.backing {
            Backing::Heap => t.ops.expiries(t.table.as_ref()),
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(db) => db.expiries(&t.name, t.kind).unwrap_or_else(|e| {
                db.fail(e);
                Vec::new()
            }),
        };
        for (key, group, at) in expiries {
            timers.ensure(&key, group, at);
        }
    }

    /// Opens `descriptor`'s state for `key` (in key group `group`), at no
    /// record's time (a state with an event-time time to live stamps with the
    /// watermark).
    #[inline(always)]
    pub fn open<'a, D: StateDescriptor>(
        &'a mut self,
        descriptor: &'a D,
        key: &'a K,
        group: usize,
    ) -> Result<D::Ref<'a, K>, StateError> {
        self.open_at(descriptor, key, group, None)
    }

    /// Opens `descriptor`'s state for `key` (in key group `group`) while the
    /// record or timer of `timestamp` is handled.
    #[inline(always)]
    pub fn open_at<'a, D: StateDescriptor>(
        &'a mut self,
        descriptor: &'a D,
        key: &'a K,
        group: usize,
        timestamp: Option<i64>,
    ) -> Result<D::Ref<'a, K>, StateError> {
        let index = self.resolve_at(descriptor, timestamp)?;
        // Only RocksDB migrates lazily.
        #[cfg(feature = "rocksdb")]
        if self.tables[index].migrating.is_some() {
            self.migrate_group(index, group)?;
        }
        if descriptor.ttl().is_some() {
            return self.open_ttl(index, descriptor, key, group, timestamp);
        }
        let Table {
            name,
            type_name,
            table,
            ..
        } = &mut self.tables[index];
        let table = typed_table::<K, D::Stored>(&self.backing, name, type_name, table)?;
        Ok(descriptor.open(table, key, group))
    }

    /// [`open_at`](Self::open_at) for a state with a time to live: the
    /// access's times, a step of the incremental cleanup, a cleanup timer.
    #[inline(always)]
    fn open_ttl<'a, D: StateDescriptor>(
        &'a mut self,
        index: usize,
        descriptor: &'a D,
        key: &'a K,
        group: usize,
        timestamp: Option<i64>,
    ) -> Result<D::Ref<'a, K>, StateError> {
        let time = self.time;
        let Table {
            name,
            type_name,
            table,
            ttl,
            ..
        } = &mut self.tables[index];
        let mismatch = |name: &String, declared: &str| StateError::Mismatch {
            name: name.clone(),
            declared: declared.to_string(),
            requested: std::any::type_name::<D::TtlStored>().to_string(),
        };
        let Some(state) = ttl.as_mut() else {
            return Err(mismatch(name, type_name));
        };
        let now = state.now(time);
        let stamp = match state.event_time {
            false => now,
            true => timestamp.unwrap_or(time.watermark),
        };
        state.accesses += 1;
        let access = TtlAccess::new(
            state.ttl_ms,
            stamp,
            now,
            state.refresh_on_read,
            state.return_expired,
            &state.counters,
        );
        if let Some(timers) = state.timers.as_mut() {
            timers.ensure(key, group, access.expiry());
        }
        let table = typed_table::<K, D::TtlStored>(&self.backing, name, type_name, table)?;
        Ok(descriptor.open_ttl(table, key, group, access))
    }

    /// A step of every heap state's incremental cleanup for the accesses
    /// since the last one (called at the end of a batch or timer round: the
    /// same entries checked per access as a step in each access, without
    /// its cost on the record path).
    #[cold]
    fn ttl_accesses_processed(&mut self) {
        self.step_incremental_cleanups(|state| {
            let accesses = std::mem::take(&mut state.accesses);
            state.incremental_per_access.saturating_mul(accesses)
        });
    }

    /// A step of every heap state's incremental cleanup that asked for one
    /// per record: `records` records' worth (called per batch).
    pub fn ttl_records_processed(&mut self, records: usize) {
        self.step_incremental_cleanups(|state| match state.config.incremental_cleanup() {
            Some(incremental) if incremental.every_record => {
                incremental.entries.saturating_mul(records)
            }
            _ => 0,
        });
    }

    /// Steps every heap state's incremental cleanup by the entries `credit`
    /// grants it (on RocksDB the credit is taken and nothing is done: the
    /// compaction filter cleans).
    fn step_incremental_cleanups(&mut self, mut credit: impl FnMut(&mut TableTtl<K>) -> usize) {
        let heap = matches!(self.backing, Backing::Heap);
        let time = self.time;
        for t in &mut self.tables {
            let Some(state) = t.ttl.as_mut() else {
                continue;
            };
            let entries = credit(state);
            if !heap || entries == 0 {
                continue;
            }
            let now = state.now(time);
            let removed = incremental_step(
                &mut state.cursor,
                entries,
                &*t.ops,
                t.table.as_mut(),
                now,
                &state.config,
            );
            ExpiredCounters::add(&state.counters.by_sweep, removed);
        }
    }

    /// Runs what is due of the background cleanups at the store's time: the
    /// guaranteed-erasure sweeps (heap: the key groups due; RocksDB: a
    /// compaction) and the cleanup timers.
    pub fn run_ttl_cleanups(&mut self) {
        if !self.has_ttl {
            return;
        }
        let time = self.time;
        #[cfg(feature = "rocksdb")]
        let mut compact: Vec<usize> = Vec::new();
        for t in &mut self.tables {
            let Some(state) = t.ttl.as_mut() else {
                continue;
            };
            let now = state.now(time);
            if let Some(schedule) = state.erasure.as_mut() {
                let due = schedule.due(time.processing);
                match &self.backing {
                    Backing::Heap => {
                        let mut removed = 0;
                        for g in due {
                            match t.ops.purge_group(t.table.as_mut(), g, now) {
                                Some((n, _)) => removed += n,
                                // Shared with a snapshot being written: soon again.
                                None => schedule.retry_soon(g),
                            }
                        }
                        ExpiredCounters::add(&state.counters.by_sweep, removed);
                    }
                    #[cfg(feature = "rocksdb")]
                    Backing::RocksDb(db) => {
                        let groups: Vec<usize> = due.iter().map(|g| self.range.start + g).collect();
                        if t.kind == StateKind::List {
                            let removed = db.erase_expired_elements(&t.name, &groups, now);
                            ExpiredCounters::add(&state.counters.by_sweep, removed);
                        }
                        compact.extend(groups);
                    }
                }
            }
            if let Some(timers) = state.timers.as_mut() {
                let mut due = Vec::new();
                while let Some(key_and_group) = timers.pop_due(now) {
                    due.push(key_and_group);
                }
                let purged: Vec<(usize, Option<i64>)> = match &self.backing {
                    Backing::Heap => due
                        .iter()
                        .map(|(key, group)| t.ops.purge_key(t.table.as_mut(), *group, key, now))
                        .collect(),
                    #[cfg(feature = "rocksdb")]
                    Backing::RocksDb(db) => db.purge_keys(&t.name, t.kind, &due, now),
                };
                for ((key, group), (removed, next)) in due.iter().zip(purged) {
                    ExpiredCounters::add(&state.counters.by_timer, removed);
                    if let Some(at) = next {
                        timers.ensure(key, *group, at);
                    }
                }
            }
        }
        #[cfg(feature = "rocksdb")]
        if let (false, Backing::RocksDb(db)) = (compact.is_empty(), &self.backing) {
            compact.sort_unstable();
            compact.dedup();
            db.erase_expired(&compact);
        }
    }

    /// When [`run_ttl_cleanups`](Self::run_ttl_cleanups) has work next, in
    /// processing time (erasure sweeps, processing-time cleanup timers).
    pub fn next_ttl_cleanup(&self) -> Option<i64> {
        if !self.has_ttl {
            return None;
        }
        self.tables
            .iter()
            .filter_map(|t| t.ttl.as_ref())
            .flat_map(|state| {
                let sweep = state.erasure.as_ref().and_then(ErasureSchedule::next_due);
                let timer = match state.config.time_characteristic() {
                    // On the state's clock, `offset` behind processing time.
                    TtlTime::ProcessingTime => state
                        .timers
                        .as_ref()
                        .and_then(CleanupTimers::next)
                        .map(|at| at.saturating_add(state.offset)),
                    TtlTime::EventTime => None,
                };
                [sweep, timer]
            })
            .flatten()
            .min()
    }

    /// Per state: its name, its time-to-live settings, the expired entries
    /// removed so far (on read, by sweeps and cleanups, by timers, by
    /// compactions) and, on the heap, the keys stored. The operator's name is
    /// left empty (the runtime's chain fills it in).
    pub fn state_metrics(&self) -> Vec<StateMetrics> {
        self.tables
            .iter()
            .map(|t| {
                let (expired_by_compaction, stored_keys) = match &self.backing {
                    Backing::Heap => (0, Some(t.ops.len(t.table.as_ref()) as u64)),
                    #[cfg(feature = "rocksdb")]
                    Backing::RocksDb(db) => (db.expired_by_compaction(&t.name), None),
                };
                let counters = t.ttl.as_ref().map(|state| &state.counters);
                let count = |c: fn(&ExpiredCounters) -> &std::cell::Cell<u64>| {
                    counters.map_or(0, |counters| c(counters).get())
                };
                StateMetrics {
                    operator: String::new(),
                    state: t.name.clone(),
                    ttl: t.ttl.as_ref().map(|s| s.config.settings().to_string()),
                    expired_on_read: count(|c| &c.on_read),
                    expired_by_sweep: count(|c| &c.by_sweep),
                    expired_by_timer: count(|c| &c.by_timer),
                    expired_by_compaction,
                    stored_keys,
                }
            })
            .collect()
    }

    /// (live, expired) entries of `descriptor`'s state at the store's time
    /// (values, list elements and map entries; heap only, else `None`).
    pub fn ttl_counts<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
    ) -> Result<Option<(usize, usize)>, StateError> {
        let index = self.resolve(descriptor)?;
        let time = self.time;
        let t = &self.tables[index];
        match (&self.backing, t.ttl.as_ref()) {
            (Backing::Heap, Some(state)) => {
                Ok(Some(t.ops.count_expired(t.table.as_ref(), state.now(time))))
            }
            _ => Ok(None),
        }
    }

    /// The keys that have a value in `descriptor`'s state.
    pub fn keys<D: StateDescriptor>(&mut self, descriptor: &D) -> Result<Vec<K>, StateError> {
        let index = self.resolve(descriptor)?;
        let t = &self.tables[index];
        match &self.backing {
            Backing::Heap => Ok(t.ops.keys(t.table.as_ref())),
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(db) => db.keys(&t.name, t.kind),
        }
    }

    /// Number of (state, key) entries, over all opened states.
    pub fn entries(&self) -> usize {
        match &self.backing {
            Backing::Heap => self
                .tables
                .iter()
                .map(|t| t.ops.len(t.table.as_ref()))
                .sum(),
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(db) => self
                .tables
                .iter()
                .map(|t| {
                    db.len(&t.name, t.kind).unwrap_or_else(|e| {
                        db.fail(e);
                        0
                    })
                })
                .sum(),
        }
    }

    /// The synchronous part of a snapshot: shares the tables' key-group maps
    /// (heap), or takes a local RocksDB checkpoint.
    pub fn snapshot(&mut self, options: SnapshotOptions) -> Result<KeyedStateSnapshot, StateError> {
        let _ = options;
        let time = self.time;
        self.migrate_every_group()?;
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            // The states' TTL settings (with their clocks) go into the
            // snapshot with the data.
            for t in &self.tables {
                if let Some(state) = &t.ttl {
                    db.restore_ttl_settings(&t.name, state.settings_at(self.time))?;
                }
            }
            return Ok(KeyedStateSnapshot {
                range: self.range,
                schemas: self.schemas_to_record(),
                tables: Vec::new(),
                pending: BTreeMap::new(),
                time,
                opened: self.opened_at.unwrap_or(time.processing),
                rocks: Some(db.snapshot(options.checkpoint_id, options.full)?),
            });
        }
        Ok(KeyedStateSnapshot {
            range: self.range,
            schemas: self.schemas_to_record(),
            tables: self
                .tables
                .iter_mut()
                .filter_map(|t| {
                    let snapshot = match &t.ttl {
                        // A full snapshot holds no expired entry.
                        Some(state) => t.ops.snapshot_unexpired(t.table.as_mut(), state.now(time)),
                        None => t.ops.snapshot(t.table.as_mut()),
                    }?;
                    Some(SnapshotTable {
                        name: t.name.clone(),
                        kind: t.kind,
                        type_name: t.type_name,
                        ttl: t.ttl.as_ref().map(|state| state.settings_at(time)),
                        snapshot,
                    })
                })
                .collect(),
            pending: self.pending.clone(),
            time,
            opened: self.opened_at.unwrap_or(time.processing),
            #[cfg(feature = "rocksdb")]
            rocks: None,
        })
    }

    /// Takes the kinds and schemas the restored snapshot recorded (its keyed
    /// metadata), before any state is opened: each state is judged against
    /// them when it is first opened.
    pub fn restore_schemas(&mut self, schemas: BTreeMap<String, RecordedState>) {
        self.restored_schemas = schemas;
    }

    /// The names of the states the restored snapshot recorded (its keyed
    /// metadata; none for a snapshot without it).
    pub fn restored_state_names(&self) -> impl Iterator<Item = &str> {
        self.restored_schemas.keys().map(String::as_str)
    }

    /// Names operator `uid` in the errors of restored states.
    pub fn set_operator(&mut self, uid: &str) {
        self.operator = Some(uid.to_string());
    }

    /// The kinds and schemas a snapshot records: the opened states', and the
    /// restored ones' that no descriptor opened yet.
    fn schemas_to_record(&self) -> BTreeMap<String, RecordedState> {
        let mut schemas = self.restored_schemas.clone();
        for t in &self.tables {
            schemas.insert(
                t.name.clone(),
                RecordedState {
                    kind: t.kind,
                    schema: StateSchema::clone(&t.schema),
                },
            );
        }
        schemas
    }

    /// Adds serialised state for the key groups of this store, before any state
    /// is opened; groups outside the store are skipped (a restore at another
    /// parallelism offers every subtask all it may need).
    pub fn restore(&mut self, groups: &BTreeMap<usize, Vec<StateBytes>>) -> Result<(), StateError> {
        if !self.tables.is_empty() {
            return Err(StateError::RestoreAfterUse);
        }
        let restored_watermark = groups
            .values()
            .flatten()
            .filter_map(|bytes| bytes.ttl)
            .filter(|settings| settings.time == TtlTime::EventTime)
            .filter_map(|settings| settings.clock_ms)
            .max();
        if let Some(watermark) = restored_watermark {
            self.raise_restored_watermark(watermark);
        }
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &mut self.backing {
            return db.import(groups);
        }
        for (&group, states) in groups.range(self.range.start..self.range.end) {
            self.pending
                .entry(group)
                .or_default()
                .extend(states.iter().cloned());
        }
        Ok(())
    }
}

impl<K> KeyedStateStore<K> {
    /// Event time never goes below `watermark`, the clock an event-time state
    /// was snapshotted at.
    fn raise_restored_watermark(&mut self, watermark: i64) {
        self.restored_watermark = self.restored_watermark.max(watermark);
        self.time.watermark = self.time.watermark.max(watermark);
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            db.set_time(self.time);
        }
    }
}

/// A table as the accessors use it: a heap table of `S`, or a state of the
/// RocksDB database; a table of another type is a mismatch naming both.
#[inline(always)]
fn typed_table<'a, K: Key, S: StateData>(
    backing: &'a Backing,
    name: &str,
    type_name: &str,
    table: &'a mut Box<dyn Any + Send>,
) -> Result<TableRef<'a, K, S>, StateError> {
    let mismatch = || StateError::Mismatch {
        name: name.to_string(),
        declared: type_name.to_string(),
        requested: std::any::type_name::<S>().to_string(),
    };
    match backing {
        Backing::Heap => table
            .downcast_mut::<HeapTable<K, S>>()
            .map(TableRef::Heap)
            .ok_or_else(mismatch),
        #[cfg(feature = "rocksdb")]
        Backing::RocksDb(db) => table
            .downcast_mut::<RocksTable>()
            .map(|table| TableRef::RocksDb(RocksTableRef::new(db, table)))
            .ok_or_else(mismatch),
    }
}

/// A step of a heap table's incremental cleanup: `entries` entries' worth
/// of the rolling cursor; returns the expired entries removed.
fn incremental_step<K>(
    cursor: &mut IncrementalCursor,
    entries: usize,
    ops: &dyn TableOps<K>,
    table: &mut dyn Any,
    now: i64,
    config: &TtlConfig,
) -> usize {
    let mut removed = 0;
    cursor.step(
        entries,
        now,
        table,
        |table| ops.group_count(table),
        |table, g| ops.group_len(table, g),
        |table, g| {
            let Some((n, earliest_left)) = ops.purge_group(table, g, now) else {
                // Shared with a snapshot being written: not cleaned, so
                // nothing is known of it (next lap).
                return i64::MIN;
            };
            removed += n;
            // Processing time only moves on, so what is written from now on
            // expires at `now + ttl` or later (a wall clock set back delays
            // this best-effort cleanup by as much; the erasure sweep does not
            // skip); an event-time entry may get any timestamp.
            let new_entries_from = match config.time_characteristic() {
                TtlTime::ProcessingTime => now.saturating_add(config.ttl_ms()),
                TtlTime::EventTime => i64::MIN,
            };
            earliest_left.map_or(new_entries_from, |e| e.min(new_entries_from))
        },
    );
    removed
}

/// Restored bytes that no descriptor has opened, carried on by a snapshot
/// at `time` of a store opened at `opened`: without what expired by then, if
/// they have a time to live (a full snapshot holds no expired entry), and
/// with the state's clock of the snapshot.
fn unexpired_pending(
    pending: BTreeMap<usize, Vec<StateBytes>>,
    time: StateTime,
    opened: i64,
) -> Result<BTreeMap<usize, Vec<StateBytes>>, StateError> {
    let mut out = BTreeMap::new();
    for (group, states) in pending {
        let mut kept = Vec::with_capacity(states.len());
        for mut bytes in states {
            let Some(settings) = bytes.ttl.as_mut() else {
                kept.push(bytes);
                continue;
            };
            let now = restored_now(Some(*settings), time, opened);
            settings.clock_ms = Some(now).filter(|&now| now != i64::MIN);
            let corrupt = |cause| StateError::Corrupt {
                name: bytes.name.clone(),
                group,
                cause,
            };
            if let Some(entries) =
                unexpired_entries(bytes.kind, &bytes.entries, now).map_err(corrupt)?
            {
                bytes.entries = entries;
                kept.push(bytes);
            }
        }
        if !kept.is_empty() {
            out.insert(group, kept);
        }
    }
    Ok(out)
}

/// The time to compare expiries of restored entries with, on the clock of
/// the settings they were snapshotted with (processing time if none): the
/// watermark, never below the snapshot's; processing time, or for a state
/// paused during downtime its clock resumed at the opening (`opened`).
fn restored_now(settings: Option<TtlSettings>, time: StateTime, opened: i64) -> i64 {
    let Some(settings) = settings else {
        return time.processing;
    };
    match (settings.time, settings.downtime, settings.clock_ms) {
        (TtlTime::EventTime, _, clock) => time.watermark.max(clock.unwrap_or(i64::MIN)),
        (_, DowntimePolicy::PauseDuringDowntime, Some(clock)) => {
            clock.saturating_add(time.processing.saturating_sub(opened).max(0))
        }
        _ => time.processing,
    }
}

/// The restored entries of state `name` in key group `group`, migrated
/// (borrowed if there is nothing to migrate).
fn migrate_restored<'b>(
    name: &str,
    group: usize,
    bytes: &'b StateBytes,
    with_expiry: bool,
    migrations: &[schema::MigrationStep],
) -> Result<std::borrow::Cow<'b, [u8]>, StateError> {
    if migrations.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(&bytes.entries));
    }
    schema::rewrite::canonical_entries(bytes.kind, &bytes.entries, with_expiry, &|value| {
        schema::migrate_value(migrations, value)
    })
    .map(std::borrow::Cow::Owned)
    .map_err(|e| StateError::schema(name, format!("migrating key group {group}: {e}")))
}

fn mismatch_restored(
    name: &str,
    bytes: &StateBytes,
    kind: StateKind,
    type_name: &str,
) -> StateError {
    StateError::Mismatch {
        name: name.to_string(),
        declared: format!("{:?}<{}> (restored)", bytes.kind, bytes.type_name),
        requested: format!("{kind:?}<{type_name}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ValueStateDescriptor;

    fn snapshot_of(store: &mut KeyedStateStore<u64>) -> BTreeMap<usize, Vec<StateBytes>> {
        store
            .snapshot(SnapshotOptions::default())
            .unwrap()
            .serialize()
            .unwrap()
            .groups
    }

    fn at(store: &mut KeyedStateStore<u64>, processing: i64) {
        store.set_time(StateTime {
            processing,
            watermark: i64::MIN,
        });
    }

    #[test]
    fn values_expire_and_leave_snapshots_and_restores_without_a_time_to_live() {
        use crate::state::ttl::TtlConfig;
        let range = KeyGroupRange { start: 0, end: 4 };
        let ttl = TtlConfig::new(std::time::Duration::from_millis(100));
        let seen = ValueStateDescriptor::<u64>::new("seen").with_ttl(ttl.clone());
        let mut store = KeyedStateStore::new(range);
        at(&mut store, 1_000);
        store.open(&seen, &1, 1).unwrap().update(10);
        at(&mut store, 1_050);
        store.open(&seen, &2, 2).unwrap().update(20);
        at(&mut store, 1_099);
        assert_eq!(store.open(&seen, &1, 1).unwrap().value(), Some(10));
        at(&mut store, 1_100);
        assert_eq!(
            store.open(&seen, &1, 1).unwrap().value(),
            None,
            "expired at write + ttl"
        );
        let saved = snapshot_of(&mut store);
        assert_eq!(saved.len(), 1, "only key 2 is in the snapshot: {saved:?}");

        // Restored with the time to live switched off: key 2 is there, plain.
        let plain = ValueStateDescriptor::<u64>::new("seen");
        let mut off = KeyedStateStore::new(range);
        at(&mut off, 1_100);
        off.restore(&saved).unwrap();
        assert_eq!(off.open(&plain, &2, 2).unwrap().value(), Some(20));

        // And switched on again: it lives for a whole ttl from the restore.
        let again = snapshot_of(&mut off);
        let mut on = KeyedStateStore::new(range);
        at(&mut on, 5_000);
        on.restore(&again).unwrap();
        let seen = ValueStateDescriptor::<u64>::new("seen").with_ttl(ttl);
        assert_eq!(on.open(&seen, &2, 2).unwrap().value(), Some(20));
        at(&mut on, 5_100);
        assert_eq!(on.open(&seen, &2, 2).unwrap().value(), None);
    }

    #[test]
    fn restored_state_survives_a_mismatched_first_use() {
        let range = KeyGroupRange { start: 0, end: 4 };
        let count = ValueStateDescriptor::<u64>::new("n");
        let mut before = KeyedStateStore::new(range);
        for (key, group) in [(7, 1), (8, 3)] {
            before.open(&count, &key, group).unwrap().update(key * 10);
        }
        let saved = snapshot_of(&mut before);

        let mut after = KeyedStateStore::new(range);
        after.restore(&saved).unwrap();
        let wrong = ValueStateDescriptor::<String>::new("n");
        // Restored without recorded schemas: the type's name is compared.
        assert!(matches!(
            after.open(&wrong, &7, 1),
            Err(StateError::Mismatch { .. })
        ));
        // Nothing was lost: a snapshot still carries the state, and the right
        // descriptor reads it.
        assert_eq!(snapshot_of(&mut after), saved);
        let count = ValueStateDescriptor::<u64>::new("n");
        assert_eq!(after.open(&count, &7, 1).unwrap().value(), Some(70));
        assert_eq!(after.open(&count, &8, 3).unwrap().value(), Some(80));
    }

    #[cfg(feature = "rocksdb")]
    mod rocksdb {
        use super::*;
        use crate::state::rocksdb::{open_database, SnapshotSite};
        use crate::state::RocksDbBackend;
        use std::sync::Arc;

        const RANGE: KeyGroupRange = KeyGroupRange { start: 0, end: 8 };

        fn rocks_store(dir: &std::path::Path, entry_cache: usize) -> KeyedStateStore<u64> {
            let backend = RocksDbBackend::new()
                .with_local_dirs([dir.join("local")])
                .with_entry_cache_bytes(entry_cache);
            let site = Arc::new(SnapshotSite::new(&backend, None, "op", 0));
            let db = open_database(&backend, site, "op", 0, RANGE, &[]).unwrap();
            KeyedStateStore::with_rocksdb(db)
        }

        fn db(store: &KeyedStateStore<u64>) -> &RocksKeyedDb {
            match &store.backing {
                Backing::RocksDb(db) => db,
                Backing::Heap => unreachable!("a RocksDB store"),
            }
        }

        fn keys(n: u64) -> Vec<(u64, usize)> {
            (0..n).map(|k| (k, (k % 8) as usize)).collect()
        }

        fn count_each(store: &mut KeyedStateStore<u64>, keys: &[(u64, usize)]) {
            let count = ValueStateDescriptor::<u64>::new("n").with_default(0);
            for (key, group) in keys {
                store.open(&count, key, *group).unwrap().modify(|n| *n += 1);
            }
        }

        fn counts(store: &mut KeyedStateStore<u64>, keys: &[(u64, usize)]) -> Vec<u64> {
            let count = ValueStateDescriptor::<u64>::new("n");
            let values = keys
                .iter()
                .map(|(key, group)| {
                    store
                        .open(&count, key, *group)
                        .unwrap()
                        .value()
                        .unwrap_or(0)
                })
                .collect();
            store.end_batch();
            values
        }

        #[test]
        fn without_an_entry_cache_a_batch_is_written_back_once_at_its_end() {
            let dir = tempfile::tempdir().unwrap();
            let mut store = rocks_store(dir.path(), 0);
            let batch = keys(100);
            count_each(&mut store, &batch);
            count_each(&mut store, &batch[..10]);
            assert_eq!(
                db(&store).cache_counts(),
                (100, 100),
                "held until the batch ends"
            );
            store.end_batch();
            assert_eq!(db(&store).cache_counts(), (0, 0), "written and dropped");
            assert!(store.take_failure().is_none());
            let mut expected = vec![1; 100];
            expected[..10].fill(2);
            assert_eq!(
                counts(&mut store, &batch),
                expected,
                "read back from the database"
            );
        }

        #[test]
        fn a_batch_prefetches_the_states_the_previous_batch_read() {
            let dir = tempfile::tempdir().unwrap();
            let mut store = rocks_store(dir.path(), 0);
            let first = keys(100);
            store.prefetch(&first);
            assert_eq!(db(&store).cache_counts(), (0, 0), "no state was read yet");
            count_each(&mut store, &first);
            store.end_batch();

            // 100 keys with a value and 50 without: all in the cache, clean.
            let second = keys(150);
            store.prefetch(&second);
            assert_eq!(db(&store).cache_counts(), (150, 0));
            count_each(&mut store, &second);
            assert_eq!(db(&store).cache_counts(), (150, 150));
            store.end_batch();
            let mut expected = vec![2; 150];
            expected[100..].fill(1);
            assert_eq!(counts(&mut store, &second), expected);

            // A batch that read nothing: the next one prefetches nothing.
            store.prefetch(&second);
            store.end_batch();
            store.prefetch(&second);
            assert_eq!(db(&store).cache_counts(), (0, 0));
            assert!(store.take_failure().is_none());
        }

        #[test]
        fn with_an_entry_cache_prefetch_reads_only_what_it_does_not_hold() {
            let dir = tempfile::tempdir().unwrap();
            let mut store = rocks_store(dir.path(), 64 << 20);
            let first = keys(100);
            count_each(&mut store, &first);
            store.end_batch();
            assert_eq!(
                db(&store).cache_counts(),
                (100, 100),
                "the entry cache keeps its entries"
            );
            store.prefetch(&keys(120));
            assert_eq!(
                db(&store).cache_counts(),
                (120, 100),
                "20 absent keys added, clean"
            );
            let mut expected = vec![1; 120];
            expected[100..].fill(0);
            assert_eq!(counts(&mut store, &keys(120)), expected);
        }
    }
}

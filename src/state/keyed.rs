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

use serde::{Deserialize, Serialize};

use weir_actors::snapshot::KeyedStateHandle;

use super::access::TableRef;
use super::descriptor::StateDescriptor;
use super::error::StateError;
use super::heap::{HeapTable, HeapTableSnapshot};
#[cfg(feature = "rocksdb")]
use super::rocksdb::{RocksKeyedDb, RocksSnapshot, RocksTable, RocksTableRef};
use super::{Key, StateData};
use crate::keys::KeyGroupRange;

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
}

trait ErasedTableSnapshot: Send {
    fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError>;
}

impl<K: Key, S: StateData> ErasedTableSnapshot for HeapTableSnapshot<K, S> {
    fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError> {
        HeapTableSnapshot::write_group(self, name, group)
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
    table: Box<dyn Any + Send>,
    ops: Box<dyn TableOps<K>>,
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
    tables: Vec<(
        String,
        StateKind,
        &'static str,
        Box<dyn ErasedTableSnapshot>,
    )>,
    pending: BTreeMap<usize, Vec<StateBytes>>,
    #[cfg(feature = "rocksdb")]
    rocks: Option<RocksSnapshot>,
}

/// A serialised keyed snapshot: canonical bytes per key group, and handles
/// over key-group ranges (incremental RocksDB snapshots).
#[derive(Debug, Default)]
pub struct KeyedSnapshotParts {
    /// For each key group with state, its states' bytes.
    pub groups: BTreeMap<usize, Vec<StateBytes>>,
    /// Handles of incremental snapshots.
    pub handles: Vec<KeyedStateHandle>,
}

impl KeyedStateSnapshot {
    /// Serialises the snapshot (and, for an incremental one, uploads its new files).
    pub fn serialize(self) -> Result<KeyedSnapshotParts, StateError> {
        let mut parts = KeyedSnapshotParts {
            groups: self.pending,
            handles: Vec::new(),
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
            for (name, kind, type_name, table) in &self.tables {
                if let Some(entries) = table.write_group(name, group)? {
                    parts.groups.entry(group).or_default().push(StateBytes {
                        name: name.clone(),
                        kind: *kind,
                        type_name: type_name.to_string(),
                        entries,
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
        }
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
        match descriptor.slot().get() {
            Some((store, index)) if store == self.id => Ok(index),
            _ => self.resolve_first_use(descriptor),
        }
    }

    #[cold]
    #[inline(never)]
    fn resolve_first_use<D: StateDescriptor>(
        &mut self,
        descriptor: &D,
    ) -> Result<usize, StateError> {
        let type_name = std::any::type_name::<D::Stored>();
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
                index
            }
            None => self.create::<D>(descriptor.name(), descriptor.kind(), type_name)?,
        };
        descriptor.slot().set(Some((self.id, index)));
        Ok(index)
    }

    fn create<D: StateDescriptor>(
        &mut self,
        name: &str,
        kind: StateKind,
        type_name: &'static str,
    ) -> Result<usize, StateError> {
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &mut self.backing {
            db.register(name, kind, type_name)?;
            self.tables.push(Table {
                name: name.to_string(),
                kind,
                type_name,
                table: Box::new(RocksTable::new(name, RocksKeyedDb::caches(kind))),
                ops: Box::new(RocksOps),
            });
            return Ok(self.tables.len() - 1);
        }
        // Restored bytes leave `pending` only once every group of the state has
        // been read: after a mismatch or corrupt bytes they are still there,
        // and the next snapshot carries them on.
        let mut table = HeapTable::<K, D::Stored>::new(self.range);
        for (&group, states) in &self.pending {
            if let Some(bytes) = states.iter().find(|s| s.name == name) {
                if bytes.kind != kind || bytes.type_name != type_name {
                    return Err(StateError::Mismatch {
                        name: name.to_string(),
                        declared: format!("{:?}<{}> (restored)", bytes.kind, bytes.type_name),
                        requested: format!("{kind:?}<{type_name}>"),
                    });
                }
                table.restore_group(name, group, &bytes.entries)?;
            }
        }
        for states in self.pending.values_mut() {
            states.retain(|s| s.name != name);
        }
        self.pending.retain(|_, states| !states.is_empty());
        self.tables.push(Table {
            name: name.to_string(),
            kind,
            type_name,
            table: Box::new(table),
            ops: Box::new(HeapOps::<K, D::Stored>(PhantomData)),
        });
        Ok(self.tables.len() - 1)
    }

    /// Opens `descriptor`'s state for `key` (in key group `group`).
    #[inline(always)]
    pub fn open<'a, D: StateDescriptor>(
        &'a mut self,
        descriptor: &'a D,
        key: &'a K,
        group: usize,
    ) -> Result<D::Ref<'a, K>, StateError> {
        let index = self.resolve(descriptor)?;
        let Table {
            name,
            type_name,
            table,
            ..
        } = &mut self.tables[index];
        let mismatch = |name: &String, declared: &str| StateError::Mismatch {
            name: name.clone(),
            declared: declared.to_string(),
            requested: std::any::type_name::<D::Stored>().to_string(),
        };
        let table = match &self.backing {
            Backing::Heap => match table.downcast_mut::<HeapTable<K, D::Stored>>() {
                Some(table) => TableRef::Heap(table),
                None => return Err(mismatch(name, type_name)),
            },
            #[cfg(feature = "rocksdb")]
            Backing::RocksDb(db) => match table.downcast_mut::<RocksTable>() {
                Some(table) => TableRef::RocksDb(RocksTableRef::new(db, table)),
                None => return Err(mismatch(name, type_name)),
            },
        };
        Ok(descriptor.open(table, key, group))
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
        #[cfg(feature = "rocksdb")]
        if let Backing::RocksDb(db) = &self.backing {
            return Ok(KeyedStateSnapshot {
                range: self.range,
                tables: Vec::new(),
                pending: BTreeMap::new(),
                rocks: Some(db.snapshot(options.checkpoint_id, options.full)?),
            });
        }
        Ok(KeyedStateSnapshot {
            range: self.range,
            tables: self
                .tables
                .iter_mut()
                .filter_map(|t| {
                    let snapshot = t.ops.snapshot(t.table.as_mut())?;
                    Some((t.name.clone(), t.kind, t.type_name, snapshot))
                })
                .collect(),
            pending: self.pending.clone(),
            #[cfg(feature = "rocksdb")]
            rocks: None,
        })
    }

    /// Adds serialised state for the key groups of this store, before any state
    /// is opened; groups outside the store are skipped (a restore at another
    /// parallelism offers every subtask all it may need).
    pub fn restore(&mut self, groups: &BTreeMap<usize, Vec<StateBytes>>) -> Result<(), StateError> {
        if !self.tables.is_empty() {
            return Err(StateError::RestoreAfterUse);
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

//! One subtask's RocksDB instance: opening it (fresh, from canonical bytes or
//! from incremental handles), the state registry, reads and writes of raw
//! keys, and the error slot the accessors report into.

use crate::runtime::codec;
use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DBCompressionType, MemtableFactory, MergeOperands,
    Options, SliceTransform, WriteBatch, WriteOptions, DB, DEFAULT_COLUMN_FAMILY_NAME,
};
use weir_actors::snapshot::{KeyedStateHandle, SharedFile};

use super::cache::EntryCache;
use super::dirs::{LocalDir, OpenDatabase};
use super::format::{self, META_PREFIX};
use super::scan::GroupScan;
use super::RocksDbBackend;
use crate::keys::KeyGroupRange;
use crate::state::{StateBytes, StateError, StateKind};

/// How many bytes a database's entry cache may hold when the job's entry
/// cache is off and it lives for one batch: a batch of 1 024 records with
/// small values takes ~100 KiB.
const BATCH_BUFFER_BYTES: usize = 4 << 20;

/// Bytes of a memtable per hash bucket (a bucket is 8 bytes of the
/// memtable's memory): an 8 MiB memtable has 65 536 buckets, about one per
/// state key it holds with small values.
const MEMTABLE_BYTES_PER_BUCKET: usize = 128;

/// See [`RocksKeyedDb::migration_groups_per_scan`]: memtable bytes, in
/// units of a key group's data, per extra group a lazy migration takes into
/// one scan, and the least a group's data counts for.
const MIGRATION_COPY_RATIO: u64 = 2;
const MIGRATION_MIN_GROUP_BYTES: u64 = 64 << 10;

/// Key groups a lazy migration takes into one scan when the memtables hold
/// `memtable_bytes` and the last migration read `group_bytes` per group
/// (see [`RocksKeyedDb::migration_groups_per_scan`]).
fn groups_per_scan(memtable_bytes: u64, group_bytes: u64) -> usize {
    let per_extra_group = group_bytes.max(MIGRATION_MIN_GROUP_BYTES) * MIGRATION_COPY_RATIO;
    1 + usize::try_from(memtable_bytes / per_extra_group).unwrap_or(usize::MAX)
}

/// Data keys one after another in one buffer (a batch's, to prefetch).
#[derive(Debug, Default)]
pub(crate) struct KeyBuffer {
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<usize>,
}

impl KeyBuffer {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Appends a key that `write` writes; a key `write` fails on is dropped.
    pub(crate) fn push<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.bytes.len();
        match write(&mut self.bytes) {
            Ok(()) => {
                self.ends.push(self.bytes.len());
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(start);
                Err(e)
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }
}

/// Where a subtask's snapshots go and what it has uploaded, shared with the
/// asynchronous part of its snapshots.
pub(crate) struct SnapshotSite {
    /// The checkpoint storage's shared directory (`None`: full snapshots only).
    pub shared_dir: Option<PathBuf>,
    pub incremental: bool,
    /// Makes the names of this instance's shared files unique.
    pub instance: String,
    /// Local SST file name -> the shared file that holds it.
    pub uploaded: Mutex<HashMap<String, SharedFile>>,
    /// "operator `uid` subtask i", for error messages.
    pub describe: String,
}

impl SnapshotSite {
    pub(crate) fn new(
        backend: &RocksDbBackend,
        shared_dir: Option<&Path>,
        uid: &str,
        subtask: usize,
    ) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let instance = format!(
            "{:016x}",
            crate::keys::fmix64(
                nanos
                    ^ (u64::from(std::process::id()) << 32)
                    ^ NEXT.fetch_add(1, Ordering::Relaxed)
            )
        );
        SnapshotSite {
            shared_dir: shared_dir.map(Path::to_path_buf),
            incremental: backend.settings.incremental,
            instance,
            uploaded: Mutex::new(HashMap::new()),
            describe: format!("operator `{uid}` subtask {subtask}"),
        }
    }
}

/// What the database records of a state: its kind and the type it is
/// stored as, under the state's registration key as
/// `msgpack([kind, type name])`. (Its schema is in the snapshot's `meta`.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registration {
    pub(crate) kind: StateKind,
    pub(crate) type_name: String,
}

impl Registration {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, codec::CodecError> {
        codec::decode::<(StateKind, String)>(bytes)
            .map(|(kind, type_name)| Registration { kind, type_name })
    }

    fn encode(&self) -> Result<Vec<u8>, codec::CodecError> {
        codec::encode(&(self.kind, &self.type_name))
    }
}

/// A keyed operator subtask's database.
pub(crate) struct RocksKeyedDb {
    db: DB,
    write: WriteOptions,
    range: KeyGroupRange,
    options: Options,
    registry: HashMap<String, Registration>,
    failure: RefCell<Option<StateError>>,
    /// Recent values of the states with one value per key (see `cache.rs`).
    cache: RefCell<EntryCache>,
    /// This database's share of the job's entry cache.
    open: OpenDatabase,
    /// The data keys of the batch being prefetched (reused batch after batch).
    prefetch_keys: KeyBuffer,
    /// Bytes of data per key group the last lazy schema migration read (0:
    /// none yet), for [`migration_groups_per_scan`](Self::migration_groups_per_scan).
    migrated_group_bytes: std::cell::Cell<u64>,
    /// The states with a time to live and the clocks, shared with the
    /// compaction filter (see `expiry.rs`).
    ttl: Arc<super::expiry::TtlShared>,
    pub(super) site: Arc<SnapshotSite>,
    // Declared last: dropped after the database is closed.
    pub(super) dir: LocalDir,
}

fn list_append(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let size = existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    if let Some(existing) = existing {
        out.extend_from_slice(existing);
    }
    for operand in operands {
        out.extend_from_slice(operand);
    }
    Some(out)
}

/// The options every database of `backend` is opened with.
pub(super) fn db_options(backend: &RocksDbBackend) -> Options {
    let settings = &backend.settings;
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&backend.resources.cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_bloom_filter(10.0, false);
    table.set_block_size(16 << 10);
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_block_based_table_factory(&table);
    options.set_merge_operator_associative("weir-list-append", list_append);
    options.set_write_buffer_manager(&backend.resources.write_buffers);
    // Small memtables: a state updated in place piles up versions of the same
    // keys, and lookups in a deep skip list dominated keyed-count (32 MiB
    // memtables: 0.41 M records/s).
    let memtable_bytes = (settings.write_buffer_bytes / 8).clamp(1 << 20, 8 << 20);
    options.set_write_buffer_size(memtable_bytes);
    options.set_memtable_whole_key_filtering(true);
    options.set_memtable_prefix_bloom_ratio(0.1);
    // One writer per database: a value rewritten with a value no larger
    // (counters, accumulators) is updated in place in the memtable.
    options.set_allow_concurrent_memtable_write(false);
    options.set_inplace_update_support(true);
    // One thread writes a database: its reads and writes take these locks
    // uncontended, and a small array of them stays in the CPU cache (the
    // default 10 000 cost a cache miss per access: keyed-count without the
    // entry cache 0.87-0.90 -> 0.95-0.98 M records/s).
    options.set_inplace_update_locks(64);
    // The memtable hashes each state key (`format::hash_prefix`: a key's
    // value, list or map entries) to a bucket of a short sorted list, so a
    // read or an in-place write finds its key in a step or two instead of a
    // skip-list search (a skip list per key group, ~780 keys each at 100 000
    // keys, spent 47% of keyed-count without the entry cache comparing keys:
    // 0.81-0.86 -> 1.05-1.16 M records/s). A list past 256 entries (a hot
    // key's map, merge operands) becomes a skip list. The price: an iterator
    // in total order copies the memtable into one sorted list, and only a
    // seek to a whole state key may be a prefix seek (`prefix_iter` decides);
    // every other iterator (a state's keys in a group, registrations, a
    // restored database) reads in total order, once per pass (`GroupScan`).
    options.set_prefix_extractor(SliceTransform::create(
        "weir.StateKey.1",
        format::hash_prefix,
        Some(format::has_hash_prefix),
    ));
    options.set_memtable_factory(MemtableFactory::HashLinkList {
        bucket_count: memtable_bytes / MEMTABLE_BYTES_PER_BUCKET,
    });
    options.set_max_write_buffer_number(3);
    options.set_compression_type(DBCompressionType::None);
    options.set_max_background_jobs(2);
    options.set_max_manifest_file_size(4 << 20);
    options.set_keep_log_file_num(2);
    options.set_max_log_file_size(1 << 20);
    options
}

impl RocksKeyedDb {
    /// Opens the database at `dir/db` (fresh, or restored there already).
    pub(super) fn open_in(
        backend: &RocksDbBackend,
        dir: LocalDir,
        range: KeyGroupRange,
        site: Arc<SnapshotSite>,
    ) -> Result<Self, StateError> {
        let mut options = db_options(backend);
        // Expired values of states with a time to live are dropped by
        // compactions (the filter knows which states have one).
        let ttl = Arc::new(super::expiry::TtlShared::default());
        let filter = ttl.clone();
        options.set_compaction_filter("weir-ttl", move |_level: u32, key: &[u8], value: &[u8]| {
            filter.filter(key, value)
        });
        let path = dir.path().join("db");
        // Opened with its (only) column family named, so that a handle to it
        // is at hand for the batched multi-get (see `prefetch`).
        let column = ColumnFamilyDescriptor::new(DEFAULT_COLUMN_FAMILY_NAME, options.clone());
        let db = DB::open_cf_descriptors(&options, &path, [column]).map_err(|e| {
            StateError::Backend(format!(
                "cannot open the RocksDB state of {} in {}: {e}",
                site.describe,
                path.display()
            ))
        })?;
        let mut write = WriteOptions::default();
        // Durability comes from checkpoints, as in Flink: no write-ahead log.
        write.disable_wal(true);
        let mut this = RocksKeyedDb {
            db,
            write,
            range,
            options,
            registry: HashMap::new(),
            failure: RefCell::new(None),
            cache: RefCell::new(EntryCache::default()),
            open: backend.resources.open_database(),
            prefetch_keys: KeyBuffer::default(),
            migrated_group_bytes: std::cell::Cell::new(0),
            ttl,
            site,
            dir,
        };
        this.load_registry()?;
        Ok(this)
    }

    pub(super) fn db(&self) -> &DB {
        &self.db
    }

    pub(super) fn ttl_shared(&self) -> &super::expiry::TtlShared {
        &self.ttl
    }

    pub(super) fn options(&self) -> &Options {
        &self.options
    }

    pub(crate) fn range(&self) -> KeyGroupRange {
        self.range
    }

    /// An error of this database, naming it.
    pub(super) fn error(&self, what: &str, e: impl std::fmt::Display) -> StateError {
        StateError::Backend(format!(
            "RocksDB state of {} in {}: {what}: {e}",
            self.site.describe,
            self.dir.path().display()
        ))
    }

    fn load_registry(&mut self) -> Result<(), StateError> {
        let mut registry = HashMap::new();
        let mut iter = self
            .db
            .raw_iterator_opt(super::scan::total_order_read(true));
        iter.seek(META_PREFIX);
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if key.starts_with(&format::TTL_META_PREFIX) {
                iter.next();
                continue;
            }
            let Some(name) = key.strip_prefix(&META_PREFIX[..]) else {
                break;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            let entry = Registration::decode(value).map_err(|e| {
                self.error(&format!("state `{name}` has an unreadable registration"), e)
            })?;
            registry.insert(name, entry);
            iter.next();
        }
        iter.status()
            .map_err(|e| self.error("cannot read the state registry", e))?;
        self.registry = registry;
        Ok(())
    }

    /// The states stored, by name.
    pub(super) fn registry(&self) -> &HashMap<String, Registration> {
        &self.registry
    }

    /// Registers restored state `name`, whose schema was judged readable by
    /// this job's type, as stored as `type_name` (the job's type, in the
    /// form its values are stored in).
    pub(crate) fn retype(
        &mut self,
        name: &str,
        kind: StateKind,
        type_name: &str,
    ) -> Result<(), StateError> {
        let Some(registered) = self.registry.get(name) else {
            return Ok(());
        };
        if registered.kind != kind {
            return Err(StateError::Mismatch {
                name: name.to_string(),
                declared: format!("{:?}<{}> (restored)", registered.kind, registered.type_name),
                requested: format!("{kind:?}<{type_name}>"),
            });
        }
        let registration = Registration {
            kind,
            type_name: type_name.to_string(),
        };
        self.store_registration(name, registration)
    }

    fn store_registration(
        &mut self,
        name: &str,
        registration: Registration,
    ) -> Result<(), StateError> {
        let value = registration.encode().map_err(|e| StateError::Encode {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
        self.db
            .put_opt(format::meta_key(name), value, &self.write)
            .map_err(|e| self.error(&format!("cannot register state `{name}`"), e))?;
        self.registry.insert(name.to_string(), registration);
        Ok(())
    }

    /// Registers state `name` as a descriptor opens it, or checks it against
    /// its registration. A state registered in `other_form` (the same state
    /// with its time to live switched on or off) is rewritten in this form
    /// first. Records its time to live, `ttl`.
    pub(crate) fn register(
        &mut self,
        name: &str,
        kind: StateKind,
        type_name: &str,
        other_form: (&str, super::FormChange),
        ttl: Option<(&crate::state::ttl::TtlConfig, i64)>,
    ) -> Result<(), StateError> {
        if let Some(Registration {
            kind: k,
            type_name: t,
            ..
        }) = self.registry.get(name)
        {
            if *k == kind && t != type_name && t == other_form.0 {
                self.change_form(name, kind, other_form.1)?;
                self.registry.remove(name);
            } else if *k != kind || t != type_name {
                return Err(StateError::Mismatch {
                    name: name.to_string(),
                    // Tables opened in this run are checked before: a
                    // registration found here came with restored state.
                    declared: format!("{k:?}<{t}> (restored)"),
                    requested: format!("{kind:?}<{type_name}>"),
                });
            }
        }
        self.record_registration(name, kind, type_name)?;
        self.record_ttl(name, kind, ttl)
    }

    /// Records state `name`'s kind and type (as restored, or as opened).
    pub(super) fn record_registration(
        &mut self,
        name: &str,
        kind: StateKind,
        type_name: &str,
    ) -> Result<(), StateError> {
        if name.len() > 255 {
            return Err(StateError::Backend(format!(
                "state name `{name}` is longer than 255 bytes, the RocksDB backend's limit"
            )));
        }
        if name.starts_with('\0') {
            return Err(StateError::Backend(format!(
                "state name {name:?} starts with a NUL byte, which the RocksDB backend reserves"
            )));
        }
        if let Some(registered) = self.registry.get(name) {
            if registered.kind != kind || registered.type_name != type_name {
                return Err(StateError::Mismatch {
                    name: name.to_string(),
                    declared: format!("{:?}<{}> (restored)", registered.kind, registered.type_name),
                    requested: format!("{kind:?}<{type_name}>"),
                });
            }
            return Ok(());
        }
        let registration = Registration {
            kind,
            type_name: type_name.to_string(),
        };
        self.store_registration(name, registration)
    }

    /// Writes canonical (heap-format) bytes of key groups into the database.
    pub(crate) fn import(
        &mut self,
        groups: &std::collections::BTreeMap<usize, Vec<StateBytes>>,
    ) -> Result<(), StateError> {
        let mut prefix = Vec::new();
        let mut key = Vec::new();
        for (&group, states) in groups.range(self.range.start..self.range.end) {
            let mut batch = WriteBatch::default();
            for state in states {
                self.record_registration(&state.name, state.kind, &state.type_name)?;
                if let Some(settings) = state.ttl {
                    self.restore_ttl_settings(&state.name, settings)?;
                }
                format::data_prefix(&mut prefix, group, state.name.as_bytes());
                format::read_canonical(state.kind, &state.entries, |suffix, value| {
                    key.clear();
                    key.extend_from_slice(&prefix);
                    key.extend_from_slice(suffix);
                    batch.put(&key, value);
                })
                .map_err(|cause| StateError::Corrupt {
                    name: state.name.clone(),
                    group,
                    cause,
                })?;
            }
            self.db
                .write_opt(batch, &self.write)
                .map_err(|e| self.error(&format!("cannot write restored key group {group}"), e))?;
        }
        Ok(())
    }

    /// Deletes every key group outside this subtask's range (after a restore
    /// from a database that covered more).
    pub(super) fn delete_outside(&self, covered: (usize, usize)) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        if covered.0 < self.range.start {
            batch.delete_range(
                format::group_start(covered.0),
                format::group_start(self.range.start),
            );
        }
        if covered.1 > self.range.end {
            batch.delete_range(format::group_start(self.range.end), META_PREFIX);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| self.error("cannot delete the key groups of other subtasks", e))
    }

    /// Records the first error an accessor met; the operator fails with it.
    #[cold]
    pub(crate) fn fail(&self, error: StateError) {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// The error an accessor met since the last call, if any.
    pub(crate) fn take_failure(&self) -> Option<StateError> {
        self.failure.borrow_mut().take()
    }

    #[inline]
    pub(super) fn write_options(&self) -> &WriteOptions {
        &self.write
    }

    /// Whether the states of `kind` go through the entry cache: those with
    /// one value per key. Lists (appended by merges) and maps (iterated by
    /// prefix) always go to the database. With the job's entry cache off, the
    /// cache lives for one batch (see [`end_batch`](Self::end_batch)).
    pub(crate) fn caches(kind: StateKind) -> bool {
        matches!(
            kind,
            StateKind::Value | StateKind::Reducing | StateKind::Aggregating
        )
    }

    /// The entry cache, for one access.
    #[inline]
    pub(super) fn cache(&self) -> RefMut<'_, EntryCache> {
        self.cache.borrow_mut()
    }

    /// Makes room in `cache` once it holds more than this database's share:
    /// the cold generation's dirty entries are written in one batch, then
    /// dropped. A failed write keeps them and fails the operator.
    ///
    /// With the job's entry cache off, the cache holds what one batch used
    /// and its share is [`BATCH_BUFFER_BYTES`]: a long batch (or work outside
    /// batches, such as `apply_to_keyed_state`) stays bounded.
    #[inline]
    pub(super) fn evict_if_full(&self, cache: &mut EntryCache) {
        let limit = if self.open.caches_entries() {
            self.open.entry_cache_limit()
        } else {
            BATCH_BUFFER_BYTES
        };
        if cache.over(limit) {
            self.evict(cache);
        }
    }

    /// The end of a batch (or of a round of timers): with the job's entry
    /// cache off, the batch's writes go to the database in one `WriteBatch`
    /// and the cache is emptied, so the next batch reads the database again
    /// (as Flink's RocksDB backend does on every access). With the entry
    /// cache on, nothing: its entries stay until evicted or snapshotted.
    pub(crate) fn end_batch(&self) {
        if self.open.caches_entries() {
            return;
        }
        match self.flush_cache() {
            Ok(()) => self.cache.borrow_mut().clear(),
            // The entries stay (dirty): nothing is lost before the operator
            // fails with this error.
            Err(e) => self.fail(e),
        }
    }

    /// Reads the values of the data keys `fill` puts in the key buffer (keys
    /// of states with one value per key) that the entry cache does not hold,
    /// with one batched multi-get in key order, and keeps them in the cache
    /// (clean; a key without a value as known to be absent), so that a
    /// batch's accesses hit the cache.
    pub(crate) fn prefetch(&mut self, fill: impl FnOnce(&mut KeyBuffer)) {
        let keys = &mut self.prefetch_keys;
        keys.clear();
        fill(keys);
        let mut cache = self.cache.borrow_mut();
        let mut wanted: Vec<&[u8]> = keys.iter().filter(|k| !cache.contains(k)).collect();
        if wanted.is_empty() {
            return;
        }
        wanted.sort_unstable();
        wanted.dedup();
        let Some(column) = self.db.cf_handle(DEFAULT_COLUMN_FAMILY_NAME) else {
            return self.fail(self.error("cannot read", "the default column family is not open"));
        };
        let found = self
            .db
            .batched_multi_get_cf(column, wanted.iter().copied(), true);
        for (key, value) in wanted.iter().zip(found) {
            match value {
                Ok(value) => cache.insert(key, value.as_deref(), false),
                Err(e) => return self.fail(self.error("cannot read", e)),
            }
        }
        self.evict_if_full(&mut cache);
    }

    #[cold]
    fn evict(&self, cache: &mut EntryCache) {
        let mut batch = WriteBatch::default();
        for (key, value) in cache.evict().dirty {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        if !batch.is_empty() {
            if let Err(e) = self.db.write_opt(batch, &self.write) {
                return self.fail(self.error("cannot write evicted cache entries", e));
            }
        }
        cache.finish_eviction();
    }

    /// The entry cache's (entries, dirty entries), for tests.
    #[cfg(test)]
    pub(crate) fn cache_counts(&self) -> (usize, usize) {
        let cache = self.cache.borrow();
        (cache.len(), cache.dirty_entries().count())
    }

    /// Writes every dirty entry of the entry cache into the database, before
    /// anything reads the database as a whole (snapshots, key iteration).
    pub(crate) fn flush_cache(&self) -> Result<(), StateError> {
        let mut cache = self.cache.borrow_mut();
        if !cache.has_dirty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (key, value) in cache.dirty_entries() {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        self.db
            .write_opt(batch, &self.write)
            .map_err(|e| self.error("cannot write the entry cache", e))?;
        cache.mark_clean();
        Ok(())
    }

    /// Every stored key of state `name` (decoded), over the subtask's key groups.
    pub(crate) fn keys<K: crate::state::Key>(
        &self,
        name: &str,
        kind: StateKind,
    ) -> Result<Vec<K>, StateError> {
        let mut keys = Vec::new();
        self.for_each_key_bytes(name, kind, |bytes| {
            let key: K = codec::decode(bytes)
                .map_err(|e| self.error(&format!("undecodable key of state `{name}`"), e))?;
            keys.push(key);
            Ok(())
        })?;
        Ok(keys)
    }

    /// Number of keys with a value in state `name`.
    pub(crate) fn len(&self, name: &str, kind: StateKind) -> Result<usize, StateError> {
        let mut n = 0;
        self.for_each_key_bytes(name, kind, |_| {
            n += 1;
            Ok(())
        })?;
        Ok(n)
    }

    fn for_each_key_bytes(
        &self,
        name: &str,
        kind: StateKind,
        mut f: impl FnMut(&[u8]) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.flush_cache()?;
        let mut last: Vec<u8> = Vec::new();
        let mut scan = self.group_scan();
        for group in self.range.start..self.range.end {
            scan.seek(group, name);
            while let Some((suffix, _)) = scan.entry() {
                let suffix = if kind == StateKind::Map {
                    let end = format::skip_value(suffix, 0)
                        .map_err(|e| self.error("undecodable map key", e))?;
                    &suffix[..end]
                } else {
                    suffix
                };
                if kind != StateKind::Map || suffix != last.as_slice() {
                    f(suffix)?;
                    if kind == StateKind::Map {
                        last = suffix.to_vec();
                    }
                }
                scan.next();
            }
            scan.status()
                .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
            last.clear();
        }
        Ok(())
    }

    /// Rewrites every stored value of state `name` with `rewrite` (`None`:
    /// the entry goes), one write batch per key group, and clears the entry
    /// cache, which may hold values in the old form. The caller flushes the
    /// cache first.
    pub(crate) fn rewrite_values(
        &self,
        name: &str,
        rewrite: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<(), StateError> {
        self.rewrite_values_in(name, self.range().start..self.range().end, rewrite)
            .map(|_| ())
    }

    /// [`rewrite_values`](Self::rewrite_values) in the key groups `groups`
    /// only: the bytes of the entries read.
    pub(crate) fn rewrite_values_in(
        &self,
        name: &str,
        groups: impl IntoIterator<Item = usize>,
        rewrite: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, String>,
    ) -> Result<u64, StateError> {
        // The scan reads the database as it was when it began: the writes
        // of one group do not show in the next.
        let mut scan = self.group_scan();
        let mut bytes = 0;
        for group in groups {
            scan.seek(group, name);
            let mut batch = WriteBatch::default();
            while let (Some((_, value)), Some(key)) = (scan.entry(), scan.key()) {
                bytes += (key.len() + value.len()) as u64;
                match rewrite(value) {
                    Ok(Some(changed)) => batch.put(key, changed),
                    Ok(None) => batch.delete(key),
                    Err(cause) => {
                        return Err(StateError::Corrupt {
                            name: name.to_string(),
                            group,
                            cause,
                        })
                    }
                }
                scan.next();
            }
            scan.status()
                .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
            self.db()
                .write_opt(batch, self.write_options())
                .map_err(|e| self.error(&format!("cannot rewrite state `{name}`"), e))?;
        }
        self.cache().clear();
        Ok(bytes)
    }

    /// Migrates the stored values of restored state `name` (stored with
    /// expiries if `with_expiry`) in key groups `groups` through `migrations`
    /// (when a key of the first is used, or before a snapshot), in one scan.
    pub(crate) fn migrate_group_values(
        &self,
        name: &str,
        kind: StateKind,
        with_expiry: bool,
        migrations: &[crate::state::schema::MigrationStep],
        groups: &[usize],
    ) -> Result<(), StateError> {
        self.flush_cache()?;
        let bytes = self.rewrite_values_in(name, groups.iter().copied(), |value| {
            crate::state::schema::rewrite::rocksdb_value(kind, value, with_expiry, &|v| {
                crate::state::schema::migrate_value(migrations, v)
            })
            .map(Some)
        })?;
        let per_group = bytes / groups.len().max(1) as u64;
        self.migrated_group_bytes.set(per_group.max(1));
        Ok(())
    }

    /// A raw iterator over the keys that start with `prefix`, positioned at
    /// the first: a prefix seek within one hash bucket when `prefix` holds a
    /// whole state key, else in total order (see [`GroupScan`] to read many
    /// groups).
    pub(super) fn prefix_iter(&self, prefix: &[u8]) -> rocksdb::DBRawIterator<'_> {
        super::scan::prefix_iter(&self.db, prefix)
    }

    /// A scan over states' entries group by group (see [`GroupScan`]).
    pub(super) fn group_scan(&self) -> GroupScan<'_> {
        GroupScan::new(&self.db, true)
    }

    /// How many key groups a lazy schema migration should migrate with one
    /// scan. A scan's iterator copies the memtables into one sorted list, so
    /// a scan per group costs a copy per group while writes fill the
    /// memtables (schema-migration bench, reading 1 M keys after a restore:
    /// 8.3 s with a scan per group, 2.8 s before the hashed memtable). So: one
    /// group at the first use after a restore, then one more for each
    /// [`MIGRATION_COPY_RATIO`] times a group's data (as the last migration
    /// read it, at least [`MIGRATION_MIN_GROUP_BYTES`]) the memtables hold:
    /// the copy stays a fraction of the migration, and large groups still
    /// go one or two at a time.
    pub(crate) fn migration_groups_per_scan(&self) -> usize {
        let group_bytes = self.migrated_group_bytes.get();
        if group_bytes == 0 {
            return 1;
        }
        let memtables = self
            .db
            .property_int_value("rocksdb.cur-size-all-mem-tables")
            .ok()
            .flatten()
            .unwrap_or(0);
        groups_per_scan(memtables, group_bytes)
    }

    /// The directory local checkpoints of this database are made in.
    pub(super) fn local_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The handles of `handles` that hold key groups of `range`.
pub(super) fn relevant(
    handles: &[KeyedStateHandle],
    range: KeyGroupRange,
) -> Vec<&KeyedStateHandle> {
    handles
        .iter()
        .filter(|h| h.backend == super::HANDLE_BACKEND && h.overlaps(range.start, range.end))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_migration_takes_more_groups_per_scan_as_the_memtables_fill() {
        // Empty memtables: one group; small groups count as 64 KiB.
        assert_eq!(groups_per_scan(0, 10 << 10), 1);
        assert_eq!(groups_per_scan(127 << 10, 10 << 10), 1);
        assert_eq!(groups_per_scan(128 << 10, 10 << 10), 2);
        assert_eq!(groups_per_scan(8 << 20, 300 << 10), 14);
        // Groups larger than the memtables go one at a time.
        assert_eq!(groups_per_scan(8 << 20, 8 << 20), 1);
    }
}

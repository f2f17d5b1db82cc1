//! The entry cache: a bounded write-back cache of serialised values in front
//! of a subtask's database, for the states with one value per key (value,
//! reducing, aggregating).
//!
//! A read-modify-write of a counter costs a RocksDB point read and a write
//! (~2.5 us together, most of it in the memtable); with the cache, a key used
//! again soon costs a hash lookup. Writes stay in the cache until they are
//! evicted or a snapshot needs them in the database, and then go in as one
//! `WriteBatch`. The idea is Kafka Streams' record cache
//! (`statestore.cache.max.bytes`) in front of its RocksDB stores; Flink
//! without it reads and writes RocksDB on every access.
//!
//! Eviction is generational, an approximation of LRU that needs no list: new
//! and recently used entries are in the *hot* map; when the cache holds more
//! than its limit, the *cold* map's dirty entries are written out and it is
//! dropped, and the hot map becomes the cold one. A hit in the cold map moves
//! the entry back to the hot map. A key is in at most one of the two.
//!
//! With the job's entry cache off, the same cache holds one batch's values:
//! filled by the batch's multi-get and its writes, written out in one
//! `WriteBatch` and emptied when the batch ends (see `db.rs`, `end_batch`).
//! The byte buffers of dropped entries are kept (a bounded number of small
//! ones) for the next entries, so a batch does not allocate and free two
//! buffers per key.
//!
//! This type decides and keeps; the database (see `db.rs`) does the writing:
//! [`EntryCache::evict`] and [`EntryCache::dirty_entries`] hand out what must
//! be written, and the entries leave the cache (or turn clean) only once the
//! write succeeded.

use std::collections::HashMap;

use crate::keys::KeyMapHasher;

/// Bytes the allocator takes for `n` bytes: a header and 16-byte granules.
fn allocated(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8 + 15) & !15
    }
}

/// Bytes a map's table takes per slot: the slot and its control byte.
const SLOT_BYTES: usize = std::mem::size_of::<(Box<[u8]>, Entry)>() + 1;

/// A cached entry: the value's bytes (`None`: known to be absent, or deleted)
/// and whether the database has yet to hear of it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub value: Option<Vec<u8>>,
    pub dirty: bool,
}

impl Entry {
    /// Heap bytes of the entry's key and value (its slot counts with the table).
    fn size(&self, key: &[u8]) -> usize {
        allocated(key.len()) + allocated(self.value.as_ref().map_or(0, Vec::capacity))
    }
}

/// Most buffers [`EntryCache`] keeps for reuse, and the largest it keeps.
const SPARE_BUFFERS: usize = 8192;
const SPARE_BUFFER_BYTES: usize = 256;

/// Byte buffers of dropped entries, for the next ones: a cache that lives for
/// one batch makes and drops an entry per key every batch.
#[derive(Debug, Default)]
struct Spare(Vec<Vec<u8>>);

impl Spare {
    /// A buffer holding `bytes`.
    #[inline]
    fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = self.0.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    fn keep(&mut self, buffer: Vec<u8>) {
        if self.0.len() < SPARE_BUFFERS && buffer.capacity() <= SPARE_BUFFER_BYTES {
            self.0.push(buffer);
        }
    }

    /// Keeps the buffers of the entries of `map`, which it empties.
    fn drain(&mut self, map: &mut Map) {
        for (key, entry) in map.drain() {
            self.keep(key.into_vec());
            if let Some(value) = entry.value {
                self.keep(value);
            }
        }
    }
}

/// Seeded: the keys embed user keys, which a sender may choose (see `KeyMap`).
type Map = HashMap<Box<[u8]>, Entry, KeyMapHasher>;

/// The cache of one subtask's database.
#[derive(Debug, Default)]
pub(crate) struct EntryCache {
    hot: Map,
    cold: Map,
    /// Bytes of the entries of both maps, as [`Entry::size`] counts them
    /// (the tables count apart, by their capacity).
    bytes: usize,
    spare: Spare,
}

/// What [`EntryCache::evict`] wants written before the cold entries go.
pub(crate) struct Eviction<'a> {
    /// The cold generation's dirty entries.
    pub dirty: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

impl EntryCache {
    /// Bytes held: the entries and both tables.
    pub fn bytes(&self) -> usize {
        self.bytes + (self.hot.capacity() + self.cold.capacity()) * SLOT_BYTES
    }

    /// Number of entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }

    /// Whether `key` has an entry (without moving it between generations).
    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.hot.contains_key(key) || self.cold.contains_key(key)
    }

    /// The entry of `key`, moved to the hot generation if it was cold.
    #[inline]
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        if self.hot.contains_key(key) {
            return self.hot.get_mut(key);
        }
        let (key, entry) = self.cold.remove_entry(key)?;
        Some(self.hot.entry(key).or_insert(entry))
    }

    /// Stores (a copy of) `value` for `key` (dirty: a write; clean: what a
    /// read found).
    pub fn insert(&mut self, key: &[u8], value: Option<&[u8]>, dirty: bool) {
        let value = value.map(|bytes| self.spare.copy_of(bytes));
        self.insert_owned(key, value, dirty);
    }

    fn insert_owned(&mut self, key: &[u8], value: Option<Vec<u8>>, dirty: bool) {
        let entry = Entry { value, dirty };
        self.bytes += entry.size(key);
        let old = match self.hot.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                let key = self.spare.copy_of(key).into_boxed_slice();
                let cold = self.cold.remove_entry(&key[..]);
                self.hot.insert(key, entry);
                cold.map(|(key, old)| {
                    self.spare.keep(key.into_vec());
                    old
                })
            }
        };
        if let Some(old) = old {
            self.bytes -= old.size(key);
            if let Some(value) = old.value {
                self.spare.keep(value);
            }
        }
    }

    /// Replaces the value of an entry [`get_mut`](Self::get_mut) returned,
    /// keeping the byte count right; marks it dirty.
    #[inline]
    pub fn set(&mut self, key: &[u8], write: impl FnOnce(&mut Vec<u8>)) {
        let Some(entry) = self.hot.get_mut(key) else {
            let mut value = self.spare.copy_of(&[]);
            write(&mut value);
            return self.insert_owned(key, Some(value), true);
        };
        let before = entry.value.as_ref().map_or(0, Vec::capacity);
        let value = entry.value.get_or_insert_with(Vec::new);
        value.clear();
        write(value);
        let after = value.capacity();
        entry.dirty = true;
        self.bytes = self.bytes + allocated(after) - allocated(before);
    }

    /// Whether the cache holds more than `limit` bytes.
    #[inline]
    pub fn over(&self, limit: usize) -> bool {
        self.bytes() > limit
    }

    /// The cold generation's dirty entries, to be written before
    /// [`finish_eviction`](Self::finish_eviction) drops them.
    pub fn evict(&self) -> Eviction<'_> {
        Eviction {
            dirty: self
                .cold
                .iter()
                .filter(|(_, e)| e.dirty)
                .map(|(k, e)| (&k[..], e.value.as_deref()))
                .collect(),
        }
    }

    /// Drops the cold generation (its dirty entries are written) and makes
    /// the hot one cold.
    pub fn finish_eviction(&mut self) {
        let cold_bytes: usize = self.cold.iter().map(|(k, e)| e.size(k)).sum();
        self.bytes -= cold_bytes;
        // The emptied cold table becomes the new hot one: no allocation, and
        // no rehashing its way up to the size the generations run at.
        self.spare.drain(&mut self.cold);
        std::mem::swap(&mut self.hot, &mut self.cold);
    }

    /// Every dirty entry, to be written before [`mark_clean`](Self::mark_clean).
    pub fn dirty_entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.hot
            .iter()
            .chain(self.cold.iter())
            .filter(|(_, e)| e.dirty)
            .map(|(k, e)| (&k[..], e.value.as_deref()))
    }

    /// Whether any entry is dirty.
    pub fn has_dirty(&self) -> bool {
        self.hot.values().chain(self.cold.values()).any(|e| e.dirty)
    }

    /// Drops every entry (their writes reached the database), keeping the
    /// tables' memory for the next batch.
    pub fn clear(&mut self) {
        self.spare.drain(&mut self.hot);
        self.spare.drain(&mut self.cold);
        self.bytes = 0;
    }

    /// Marks every entry clean (their writes reached the database).
    pub fn mark_clean(&mut self) {
        for entry in self.hot.values_mut().chain(self.cold.values_mut()) {
            entry.dirty = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(cache: &mut EntryCache, key: &[u8]) -> Option<Option<Vec<u8>>> {
        cache.get_mut(key).map(|e| e.value.clone())
    }

    fn total(cache: &EntryCache) -> usize {
        let entries: usize = cache
            .hot
            .iter()
            .chain(cache.cold.iter())
            .map(|(k, e)| e.size(k))
            .sum();
        entries + (cache.hot.capacity() + cache.cold.capacity()) * SLOT_BYTES
    }

    #[test]
    fn reads_what_was_written_and_counts_bytes() {
        let mut cache = EntryCache::default();
        cache.insert(b"a", Some(&b"1"[..]), true);
        cache.insert(b"b", None, false);
        assert_eq!(value(&mut cache, b"a"), Some(Some(b"1".to_vec())));
        assert_eq!(value(&mut cache, b"b"), Some(None));
        assert_eq!(value(&mut cache, b"c"), None);
        cache.set(b"a", |v| v.extend_from_slice(b"a much longer value"));
        assert_eq!(
            value(&mut cache, b"a"),
            Some(Some(b"a much longer value".to_vec()))
        );
        cache.insert(b"a", None, true);
        assert_eq!(cache.bytes(), total(&cache));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn eviction_writes_the_cold_dirty_entries_and_keeps_the_hot_ones() {
        let mut cache = EntryCache::default();
        cache.insert(b"old-dirty", Some(&b"1"[..]), true);
        cache.insert(b"old-clean", Some(&b"2"[..]), false);
        assert!(cache.evict().dirty.is_empty(), "nothing is cold yet");
        cache.finish_eviction();
        cache.insert(b"new", Some(&b"3"[..]), true);
        // A hit moves a cold entry back to the hot generation.
        cache.insert(b"used", Some(&b"4"[..]), true);
        cache.finish_eviction(); // old-*: cold -> dropped; new, used: hot -> cold
        assert_eq!(value(&mut cache, b"old-dirty"), None);
        assert_eq!(value(&mut cache, b"used"), Some(Some(b"4".to_vec())));

        let written: Vec<_> = cache
            .evict()
            .dirty
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(written, vec![(b"new".to_vec(), Some(b"3".to_vec()))]);
        cache.finish_eviction();
        assert_eq!(value(&mut cache, b"new"), None);
        assert_eq!(value(&mut cache, b"used"), Some(Some(b"4".to_vec())));
        assert_eq!(cache.bytes(), total(&cache));
    }

    #[test]
    fn a_snapshot_sees_every_dirty_entry_once_and_then_none() {
        let mut cache = EntryCache::default();
        cache.insert(b"a", Some(&b"1"[..]), true);
        cache.finish_eviction();
        cache.insert(b"b", None, true);
        cache.insert(b"c", Some(&b"3"[..]), false);
        let mut dirty: Vec<_> = cache.dirty_entries().map(|(k, _)| k.to_vec()).collect();
        dirty.sort();
        assert_eq!(dirty, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(cache.has_dirty());
        cache.mark_clean();
        assert!(!cache.has_dirty());
        assert_eq!(cache.dirty_entries().count(), 0);
        assert_eq!(cache.len(), 3, "clean entries stay cached");
    }

    #[test]
    fn clear_drops_everything_and_contains_does_not_move_entries() {
        let mut cache = EntryCache::default();
        cache.insert(b"cold", Some(&b"1"[..]), true);
        cache.finish_eviction();
        assert!(cache.contains(b"cold"));
        assert!(cache.hot.is_empty(), "contains leaves a cold entry cold");
        cache.insert(b"hot", None, false);
        cache.clear();
        assert_eq!(cache.len(), 0);
        assert!(!cache.contains(b"cold") && !cache.contains(b"hot"));
        assert_eq!(cache.bytes(), total(&cache));
    }

    #[test]
    fn dropped_entries_leave_their_buffers_for_the_next_ones() {
        let mut cache = EntryCache::default();
        for i in 0..10u8 {
            cache.insert(&[i], Some(&[i; 8]), true);
        }
        cache.insert(b"large", Some(&[0; SPARE_BUFFER_BYTES + 1]), true);
        cache.clear();
        assert_eq!(
            cache.spare.0.len(),
            21,
            "10 keys, 10 values, 1 key; not the large value"
        );
        cache.insert(b"k", Some(b"v"), false);
        cache.set(b"new", |v| v.push(1));
        assert_eq!(
            cache.spare.0.len(),
            17,
            "two keys and two values came from the spare"
        );
        assert_eq!(value(&mut cache, b"k"), Some(Some(b"v".to_vec())));
        assert_eq!(value(&mut cache, b"new"), Some(Some(vec![1])));
        assert_eq!(value(&mut cache, &[3]), None);
        assert_eq!(cache.bytes(), total(&cache));
    }

    #[test]
    fn over_reports_the_limit() {
        let mut cache = EntryCache::default();
        assert!(!cache.over(0));
        cache.insert(b"k", Some(&[0; 100][..]), true);
        let held = cache.bytes();
        assert!(held >= 100 + 1 + SLOT_BYTES, "{held}");
        assert!(cache.over(held - 1));
        assert!(!cache.over(held));
    }
}

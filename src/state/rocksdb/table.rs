//! Typed reads and writes of one state for the current key, as the accessors
//! ([`ValueStateRef`](crate::state::ValueStateRef) and the others) use them
//! with the RocksDB backend.
//!
//! Errors (I/O, undecodable bytes) cannot be returned through the accessors'
//! infallible API: they are recorded in the database's error slot, the access
//! behaves as if the state were empty, and the operator fails with the error
//! when the current batch ends, before anything it emitted is sent on.

use crate::runtime::codec;
use std::cell::{Cell, RefCell};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::db::KeyBuffer;
use super::format;
use super::RocksKeyedDb;
use crate::state::Key;

/// One state of a subtask's database: its name and scratch buffers.
pub(crate) struct RocksTable {
    name: Box<str>,
    /// Whether its values go through the database's entry cache (states
    /// with one value per key).
    cached: bool,
    /// Whether a value was read since the last [`take_read`](Self::take_read).
    read: Cell<bool>,
    key: RefCell<Vec<u8>>,
    value: Vec<u8>,
}

impl RocksTable {
    pub(crate) fn new(name: &str, cached: bool) -> Self {
        RocksTable {
            name: name.into(),
            cached,
            read: Cell::new(false),
            key: RefCell::new(Vec::with_capacity(64)),
            value: Vec::with_capacity(64),
        }
    }

    /// Whether a value of this (cached) state was read since the last call:
    /// the states a batch read are the ones the next batch prefetches.
    pub(crate) fn take_read(&self) -> bool {
        self.cached && self.read.replace(false)
    }

    /// Appends the data keys of `keys` (with their key groups) in this state
    /// to `out`; a key that cannot be encoded is skipped (its access reports
    /// the error).
    pub(crate) fn data_keys<'k, K: Key + 'k>(
        &self,
        keys: impl Iterator<Item = (&'k K, usize)>,
        out: &mut KeyBuffer,
    ) {
        for (key, group) in keys {
            let _ = out.push(|k| {
                format::append_data_prefix(k, group, self.name.as_bytes());
                codec::encode_into(k, key)
            });
        }
    }
}

/// A state of a subtask's database, opened for one access.
pub struct RocksTableRef<'a> {
    db: &'a RocksKeyedDb,
    table: &'a mut RocksTable,
}

impl<'a> RocksTableRef<'a> {
    pub(crate) fn new(db: &'a RocksKeyedDb, table: &'a mut RocksTable) -> Self {
        RocksTableRef { db, table }
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) {
        self.db.fail(
            self.db
                .error(&format!("{what} state `{}`", self.table.name), e),
        );
    }

    /// Builds the data key of `key` (plus `user_key`) into the table's key buffer.
    #[inline]
    fn with_key<K: Key, R>(
        &self,
        group: usize,
        key: &K,
        user_key: Option<&dyn ErasedSer>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let mut buf = self.table.key.borrow_mut();
        format::data_prefix(&mut buf, group, self.table.name.as_bytes());
        if let Err(e) = codec::encode_into(&mut buf, key) {
            drop(buf);
            self.fail("cannot encode a key of", e);
            return None;
        }
        if let Some(user_key) = user_key {
            if let Err(e) = user_key.write(&mut buf) {
                drop(buf);
                self.fail("cannot encode a user key of", e);
                return None;
            }
        }
        Some(f(&buf))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Option<T> {
        match codec::decode(bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail("cannot decode a value of", e);
                None
            }
        }
    }

    /// The stored value of `key` (a state with one value per key).
    #[inline]
    pub(crate) fn get<K: Key, S: DeserializeOwned>(&self, group: usize, key: &K) -> Option<S> {
        self.with_key(group, key, None, |k| self.cached_get(k))?
    }

    /// The raw stored bytes of `key` (a list: its elements' encodings).
    fn get_raw<K: Key>(&self, group: usize, key: &K) -> Option<Vec<u8>> {
        let read = self.with_key(group, key, None, |k| self.db.db().get(k))?;
        read.unwrap_or_else(|e| {
            self.fail("cannot read", e);
            None
        })
    }

    /// Stores `value` for `key` (a state with one value per key).
    #[inline]
    pub(crate) fn put<K: Key, S: Serialize>(&mut self, group: usize, key: &K, value: &S) {
        self.table.value.clear();
        if let Err(e) = codec::encode_into(&mut self.table.value, value) {
            return self.fail("cannot encode a value of", e);
        }
        let this = &*self;
        this.with_key(group, key, None, |k| this.cached_put(k, &this.table.value));
    }

    /// Changes the value of `key` in place (starting from `default` if it has
    /// none) and returns what `f` returns: one key encoding and one lookup in
    /// the entry cache.
    #[inline]
    pub(crate) fn modify<K: Key, S: Serialize + DeserializeOwned + Clone, R>(
        &mut self,
        group: usize,
        key: &K,
        default: Option<&S>,
        f: impl FnOnce(&mut S) -> R,
    ) -> Option<R> {
        self.replace(group, key, |stored| {
            let Some(mut value) = stored.or_else(|| default.cloned()) else {
                return (None, None);
            };
            let result = f(&mut value);
            (Some(value), Some(result))
        })
    }

    /// Replaces the value of `key` by what `f` makes of the stored one:
    /// `(Some(new), r)` stores `new`, `(None, r)` removes a stored value; one
    /// key encoding and one lookup in the entry cache. Returns `r`.
    #[inline]
    pub(crate) fn replace<K: Key, S: Serialize + DeserializeOwned, R>(
        &mut self,
        group: usize,
        key: &K,
        f: impl FnOnce(Option<S>) -> (Option<S>, Option<R>),
    ) -> Option<R> {
        self.table.read.set(true);
        let RocksTable { name, key: buf, .. } = &*self.table;
        let db = self.db;
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            db.fail(db.error(&format!("{what} state `{name}`"), e));
        };
        let mut k = buf.borrow_mut();
        format::data_prefix(&mut k, group, name.as_bytes());
        if let Err(e) = codec::encode_into(&mut k, key) {
            fail("cannot encode a key of", &e);
            return None;
        }
        let mut cache = db.cache();
        let stored: Option<S> = match cache.get_mut(&k) {
            Some(entry) => match entry.value.as_deref().map(codec::decode) {
                Some(Ok(value)) => Some(value),
                Some(Err(e)) => {
                    fail("cannot decode a value of", &e);
                    return None;
                }
                None => None,
            },
            None => {
                drop(cache);
                let stored = self.cached_get(&k);
                cache = db.cache();
                stored
            }
        };
        let existed = stored.is_some();
        let (value, result) = f(stored);
        match value {
            Some(value) => {
                let mut encoded = Ok(());
                cache.set(&k, |bytes| {
                    encoded = codec::encode_into(bytes, &value);
                });
                if let Err(e) = encoded {
                    fail("cannot encode a value of", &e);
                }
            }
            None if existed => cache.insert(&k, None, true),
            None => {}
        }
        db.evict_if_full(&mut cache);
        result
    }

    /// The value of the data key `k` through the entry cache; a miss reads
    /// the database and keeps what it found (or that nothing was there).
    fn cached_get<S: DeserializeOwned>(&self, k: &[u8]) -> Option<S> {
        self.table.read.set(true);
        let mut cache = self.db.cache();
        if let Some(entry) = cache.get_mut(k) {
            return entry.value.as_deref().and_then(|bytes| self.decode(bytes));
        }
        let found = match self.db.db().get_pinned(k) {
            Ok(found) => found,
            Err(e) => {
                drop(cache);
                self.fail("cannot read", e);
                return None;
            }
        };
        let value = found.as_deref().and_then(|bytes| self.decode(bytes));
        cache.insert(k, found.as_deref(), false);
        self.db.evict_if_full(&mut cache);
        value
    }

    /// Stores encoded `value` under the data key `k` in the entry cache.
    fn cached_put(&self, k: &[u8], value: &[u8]) {
        let mut cache = self.db.cache();
        cache.set(k, |bytes| bytes.extend_from_slice(value));
        self.db.evict_if_full(&mut cache);
    }

    /// Removes the value of `key`.
    pub(crate) fn delete<K: Key>(&mut self, group: usize, key: &K) {
        if self.table.cached {
            self.with_key(group, key, None, |k| {
                let mut cache = self.db.cache();
                cache.insert(k, None, true);
                self.db.evict_if_full(&mut cache);
            });
            return;
        }
        let written = self.with_key(group, key, None, |k| {
            self.db.db().delete_opt(k, self.db.write_options())
        });
        if let Some(Err(e)) = written {
            self.fail("cannot delete from", e);
        }
    }

    // --- list state: the value is the concatenation of the elements' encodings

    /// The list of `key`.
    pub(crate) fn list_get<K: Key, V: DeserializeOwned>(&self, group: usize, key: &K) -> Vec<V> {
        let Some(bytes) = self.get_raw(group, key) else {
            return Vec::new();
        };
        let mut rd: &[u8] = &bytes;
        let mut out = Vec::new();
        while !rd.is_empty() {
            match codec::decode_next::<V>(&mut rd) {
                Ok(v) => out.push(v),
                Err(e) => {
                    self.fail("cannot decode a list element of", e);
                    return Vec::new();
                }
            }
        }
        out
    }

    /// Number of elements in the list of `key`.
    pub(crate) fn list_len<K: Key>(&self, group: usize, key: &K) -> usize {
        let Some(bytes) = self.get_raw(group, key) else {
            return 0;
        };
        format::count_values(&bytes).map_or_else(
            |e| {
                self.fail("cannot decode a list of", e);
                0
            },
            |n| n as usize,
        )
    }

    /// Appends `values` to the list of `key` (a merge: no read).
    pub(crate) fn list_add<K: Key, V: Serialize>(&mut self, group: usize, key: &K, values: &[V]) {
        self.table.value.clear();
        for value in values {
            if let Err(e) = codec::encode_into(&mut self.table.value, value) {
                return self.fail("cannot encode a list element of", e);
            }
        }
        if self.table.value.is_empty() {
            return;
        }
        let this = &*self;
        let written = this.with_key(group, key, None, |k| {
            this.db
                .db()
                .merge_opt(k, &this.table.value, this.db.write_options())
        });
        if let Some(Err(e)) = written {
            self.fail("cannot append to", e);
        }
    }

    /// Replaces the list of `key` (non-empty).
    pub(crate) fn list_put<K: Key, V: Serialize>(&mut self, group: usize, key: &K, values: &[V]) {
        self.delete(group, key);
        self.list_add(group, key, values);
    }

    // --- map state: one database entry per user key

    /// The value under `user_key` in the map of `key`.
    pub(crate) fn map_get<K: Key, UK: Serialize + ?Sized, UV: DeserializeOwned>(
        &self,
        group: usize,
        key: &K,
        user_key: &UK,
    ) -> Option<UV> {
        let read = self.with_key(group, key, Some(&Ser(user_key)), |k| {
            self.db.db().get_pinned(k)
        })?;
        match read {
            Ok(Some(bytes)) => self.decode(&bytes),
            Ok(None) => None,
            Err(e) => {
                self.fail("cannot read", e);
                None
            }
        }
    }

    /// Sets the value under `user_key` in the map of `key`.
    pub(crate) fn map_put<K: Key, UK: Serialize + ?Sized, UV: Serialize>(
        &mut self,
        group: usize,
        key: &K,
        user_key: &UK,
        value: &UV,
    ) {
        self.table.value.clear();
        if let Err(e) = codec::encode_into(&mut self.table.value, value) {
            return self.fail("cannot encode a value of", e);
        }
        let this = &*self;
        let written = this.with_key(group, key, Some(&Ser(user_key)), |k| {
            this.db
                .db()
                .put_opt(k, &this.table.value, this.db.write_options())
        });
        if let Some(Err(e)) = written {
            self.fail("cannot write", e);
        }
    }

    /// Removes `user_key` from the map of `key`.
    pub(crate) fn map_delete<K: Key, UK: Serialize + ?Sized>(
        &mut self,
        group: usize,
        key: &K,
        user_key: &UK,
    ) {
        let written = self.with_key(group, key, Some(&Ser(user_key)), |k| {
            self.db.db().delete_opt(k, self.db.write_options())
        });
        if let Some(Err(e)) = written {
            self.fail("cannot delete from", e);
        }
    }

    /// Every (user key, value) of the map of `key`, in the order of their encodings.
    pub(crate) fn map_entries<K: Key, UK: Key, UV: DeserializeOwned>(
        &self,
        group: usize,
        key: &K,
    ) -> Vec<(UK, UV)> {
        let mut out = Vec::new();
        self.map_scan(group, key, |user_key, value| {
            let user_key: UK = codec::decode(user_key).map_err(|e| e.to_string())?;
            let value: UV = codec::decode(value).map_err(|e| e.to_string())?;
            out.push((user_key, value));
            Ok(())
        });
        out
    }

    /// Every user key of the map of `key`.
    pub(crate) fn map_keys<K: Key, UK: Key>(&self, group: usize, key: &K) -> Vec<UK> {
        let mut out = Vec::new();
        self.map_scan(group, key, |user_key, _| {
            out.push(codec::decode(user_key).map_err(|e| e.to_string())?);
            Ok(())
        });
        out
    }

    /// Number of entries in the map of `key`.
    pub(crate) fn map_len<K: Key>(&self, group: usize, key: &K) -> usize {
        let mut n = 0;
        self.map_scan(group, key, |_, _| {
            n += 1;
            Ok(())
        });
        n
    }

    /// Removes the whole map of `key` (one range delete).
    pub(crate) fn map_clear<K: Key>(&mut self, group: usize, key: &K) {
        let written = self.with_key(group, key, None, |prefix| {
            let mut batch = rocksdb::WriteBatch::default();
            if let Some(end) = format::prefix_end(prefix) {
                batch.delete_range(prefix, &end[..]);
            }
            self.db.db().write_opt(batch, self.db.write_options())
        });
        if let Some(Err(e)) = written {
            self.fail("cannot clear", e);
        }
    }

    fn map_scan<K: Key>(
        &self,
        group: usize,
        key: &K,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
    ) {
        let Some(prefix) = self.with_key(group, key, None, <[u8]>::to_vec) else {
            return;
        };
        let mut iter = self.db.prefix_iter(&prefix);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if let Err(e) = f(&k[prefix.len()..], v) {
                return self.fail("cannot decode a map entry of", e);
            }
            iter.next();
        }
        if let Err(e) = iter.status() {
            self.fail("cannot read", e);
        }
    }
}

/// A user key, serialisable without naming its type.
trait ErasedSer {
    fn write(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError>;
}

struct Ser<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> ErasedSer for Ser<'_, T> {
    fn write(&self, out: &mut Vec<u8>) -> Result<(), codec::CodecError> {
        codec::encode_into(out, self.0)
    }
}

//! Accessors: one state, opened for the current key.
//!
//! Each is a short-lived borrow of the operator's store, made by
//! `ctx.state(&descriptor)?`; it reads and writes the value of the key whose
//! record (or timer) is being processed, in whichever backend holds it.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::hash::Hash;

use serde::Serialize;

use super::descriptor::AggregateFunction;
use super::heap::HeapTable;
#[cfg(feature = "rocksdb")]
use super::rocksdb::RocksTableRef;
use super::ttl::{Expiring, TtlAccess};
use super::{Key, StateData};
use crate::keys::KeyMap;

/// One state of the store, in its backend.
pub enum TableRef<'a, K, S> {
    /// A heap table.
    Heap(&'a mut HeapTable<K, S>),
    /// A state in the subtask's RocksDB database.
    #[cfg(feature = "rocksdb")]
    #[doc(hidden)]
    RocksDb(RocksTableRef<'a>),
}

impl<K: Key, T: StateData> TableRef<'_, K, T> {
    /// A copy of the value of `key`.
    fn read(&self, group: usize, key: &K) -> Option<T> {
        match self {
            TableRef::Heap(table) => table.get(group, key).cloned(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.get(group, key),
        }
    }

    /// Sets the value of `key`.
    fn write(&mut self, group: usize, key: &K, value: T) {
        match self {
            TableRef::Heap(table) => table.put(group, key, value),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.put(group, key, &value),
        }
    }

    /// Removes the value of `key`.
    fn erase(&mut self, group: usize, key: &K) {
        match self {
            TableRef::Heap(table) => table.remove(group, key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.delete(group, key),
        }
    }
}

/// A state's table as an accessor holds it: plain, or with a time to live
/// (each value stored with its expiry; reads may remove or refresh entries,
/// so the table sits in a `RefCell` for the accessors' `&self` reads).
enum Cells<'a, K, S, T> {
    Plain(TableRef<'a, K, S>),
    Ttl(RefCell<TableRef<'a, K, T>>, TtlAccess<'a>),
}

/// The live value of `key` in a single-value state with a time to live: an
/// expired value is removed (and returned only if its visibility says so); a
/// read refreshes the expiry if the update type says so.
fn ttl_read<K: Key, V: StateData>(
    table: &RefCell<TableRef<'_, K, Expiring<V>>>,
    ttl: &TtlAccess<'_>,
    group: usize,
    key: &K,
) -> Option<V> {
    let mut table = table.borrow_mut();
    let Expiring(at, value) = table.read(group, key)?;
    if ttl.expired(at) {
        table.erase(group, key);
        ttl.removed_on_read(1);
        return ttl.return_expired().then_some(value);
    }
    if ttl.refresh_on_read() {
        table.write(group, key, ttl.wrap(value.clone()));
    }
    Some(value)
}

/// A [`ValueStateDescriptor`](super::ValueStateDescriptor)'s value for the current key.
pub struct ValueStateRef<'a, K, V> {
    cells: Cells<'a, K, V, Expiring<V>>,
    key: &'a K,
    group: usize,
    default: Option<&'a V>,
}

impl<'a, K: Key, V: StateData> ValueStateRef<'a, K, V> {
    #[inline(always)]
    pub(crate) fn new(
        table: TableRef<'a, K, V>,
        key: &'a K,
        group: usize,
        default: Option<&'a V>,
    ) -> Self {
        ValueStateRef {
            cells: Cells::Plain(table),
            key,
            group,
            default,
        }
    }

    pub(crate) fn with_ttl(
        table: TableRef<'a, K, Expiring<V>>,
        key: &'a K,
        group: usize,
        default: Option<&'a V>,
        ttl: TtlAccess<'a>,
    ) -> Self {
        ValueStateRef {
            cells: Cells::Ttl(RefCell::new(table), ttl),
            key,
            group,
            default,
        }
    }

    /// The value, or the descriptor's default, or `None`. With a time to
    /// live, an expired value reads as absent (and is removed).
    #[inline]
    pub fn value(&self) -> Option<V> {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => {
                table.get(self.group, self.key).or(self.default).cloned()
            }
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table
                .get(self.group, self.key)
                .or_else(|| self.default.cloned()),
            Cells::Ttl(table, ttl) => {
                ttl_read(table, ttl, self.group, self.key).or_else(|| self.default.cloned())
            }
        }
    }

    /// Replaces the value.
    #[inline]
    pub fn update(&mut self, value: V) {
        match &mut self.cells {
            Cells::Plain(TableRef::Heap(table)) => table.put(self.group, self.key, value),
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table.put(self.group, self.key, &value),
            Cells::Ttl(table, ttl) => table.get_mut().write(self.group, self.key, ttl.wrap(value)),
        }
    }

    /// Changes the value in place (starting from the default if there is none)
    /// and returns what `f` returns: one lookup instead of a read and a write.
    /// With a time to live, this is a write: the expiry restarts.
    #[inline(always)]
    pub fn modify<R>(&mut self, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        match &mut self.cells {
            Cells::Plain(TableRef::Heap(table)) => {
                if let Some(value) = table.get_mut(self.group, self.key) {
                    return Some(f(value));
                }
                let mut value = self.default.cloned()?;
                let result = f(&mut value);
                table.put(self.group, self.key, value);
                Some(result)
            }
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => {
                rocks_modify(table, self.group, self.key, self.default, f)
            }
            Cells::Ttl(table, ttl) => {
                ttl_modify(table.get_mut(), ttl, self.group, self.key, self.default, f)
            }
        }
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        match &mut self.cells {
            Cells::Plain(table) => table.erase(self.group, self.key),
            Cells::Ttl(table, _) => table.get_mut().erase(self.group, self.key),
        }
    }
}

/// What [`ValueStateRef::modify`] with a time to live starts from, given
/// the stored value's expiry (if any): the one decision both backends apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TtlStart {
    /// The stored value (live, or expired and visible).
    Stored,
    /// The descriptor's default (nothing stored, or expired and hidden).
    Default,
    /// Nothing to modify: the expired value is removed (if stored), `f` is
    /// not called.
    Nothing,
}

/// Decides [`TtlStart`], counting an expired value as removed on read.
#[inline]
fn ttl_start(stored_expiry: Option<i64>, ttl: &TtlAccess<'_>, has_default: bool) -> TtlStart {
    match stored_expiry {
        Some(at) if !ttl.expired(at) => TtlStart::Stored,
        Some(_) => {
            ttl.removed_on_read(1);
            match (ttl.return_expired(), has_default) {
                (true, _) => TtlStart::Stored,
                (false, true) => TtlStart::Default,
                (false, false) => TtlStart::Nothing,
            }
        }
        None if has_default => TtlStart::Default,
        None => TtlStart::Nothing,
    }
}

/// [`ValueStateRef::modify`] with a time to live: a live value is changed in
/// place and its expiry restarts; an expired one is counted and replaced by
/// the default (or kept, if expired values are visible).
#[inline]
fn ttl_modify<K: Key, V: StateData, R>(
    table: &mut TableRef<'_, K, Expiring<V>>,
    ttl: &TtlAccess<'_>,
    group: usize,
    key: &K,
    default: Option<&V>,
    f: impl FnOnce(&mut V) -> R,
) -> Option<R> {
    #[allow(clippy::infallible_destructuring_match)]
    let table = match table {
        TableRef::Heap(table) => table,
        #[cfg(feature = "rocksdb")]
        table @ TableRef::RocksDb(_) => {
            return ttl_modify_by_copy(table, ttl, group, key, default, f)
        }
    };
    let stored = table.get_mut(group, key);
    let start = ttl_start(stored.as_ref().map(|e| e.0), ttl, default.is_some());
    match (start, stored, default) {
        (TtlStart::Stored, Some(entry), _) => {
            entry.0 = ttl.expiry();
            Some(f(&mut entry.1))
        }
        (TtlStart::Default, Some(entry), Some(default)) => {
            *entry = ttl.wrap(default.clone());
            Some(f(&mut entry.1))
        }
        (TtlStart::Default, None, Some(default)) => {
            let mut value = default.clone();
            let result = f(&mut value);
            table.put(group, key, ttl.wrap(value));
            Some(result)
        }
        (_, Some(_), _) => {
            table.remove(group, key);
            None
        }
        _ => None,
    }
}

/// [`ttl_modify`] on RocksDB: one lookup in the entry cache, the value
/// replaced by its changed copy (or removed).
#[cfg(feature = "rocksdb")]
#[inline(never)]
fn ttl_modify_by_copy<K: Key, V: StateData, R>(
    table: &mut TableRef<'_, K, Expiring<V>>,
    ttl: &TtlAccess<'_>,
    group: usize,
    key: &K,
    default: Option<&V>,
    f: impl FnOnce(&mut V) -> R,
) -> Option<R> {
    let TableRef::RocksDb(table) = table else {
        return None;
    };
    table.replace(group, key, |stored: Option<Expiring<V>>| {
        let start = ttl_start(stored.as_ref().map(|e| e.0), ttl, default.is_some());
        let mut value = match (start, stored, default) {
            (TtlStart::Stored, Some(Expiring(_, value)), _) => value,
            (TtlStart::Default, _, Some(default)) => default.clone(),
            _ => return (None, None),
        };
        let result = f(&mut value);
        (Some(ttl.wrap(value)), Some(result))
    })
}

/// The RocksDB side of [`ValueStateRef::modify`], out of line so that the
/// heap side stays small enough to inline into the processing loop.
#[cfg(feature = "rocksdb")]
#[inline(never)]
fn rocks_modify<K: Key, V: StateData, R>(
    table: &mut RocksTableRef<'_>,
    group: usize,
    key: &K,
    default: Option<&V>,
    f: impl FnOnce(&mut V) -> R,
) -> Option<R> {
    table.modify(group, key, default, f)
}

/// The list operations of both backends, for any element type (plain
/// values, or values with their expiry).
impl<K: Key, E: StateData> TableRef<'_, K, Vec<E>> {
    fn list_read(&self, group: usize, key: &K) -> Vec<E> {
        match self {
            TableRef::Heap(table) => table.get(group, key).cloned().unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_get(group, key),
        }
    }

    fn list_append(&mut self, group: usize, key: &K, values: Vec<E>) {
        if values.is_empty() {
            return;
        }
        match self {
            TableRef::Heap(table) => match table.get_mut(group, key) {
                Some(list) => list.extend(values),
                None => table.put(group, key, values),
            },
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_add(group, key, &values),
        }
    }

    fn list_replace(&mut self, group: usize, key: &K, values: Vec<E>) {
        if values.is_empty() {
            return self.erase(group, key);
        }
        match self {
            TableRef::Heap(table) => table.put(group, key, values),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_put(group, key, &values),
        }
    }
}

/// A [`ListStateDescriptor`](super::ListStateDescriptor)'s list for the current key.
pub struct ListStateRef<'a, K, V> {
    cells: Cells<'a, K, Vec<V>, Vec<Expiring<V>>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, V: StateData> ListStateRef<'a, K, V> {
    pub(crate) fn new(table: TableRef<'a, K, Vec<V>>, key: &'a K, group: usize) -> Self {
        ListStateRef {
            cells: Cells::Plain(table),
            key,
            group,
        }
    }

    pub(crate) fn with_ttl(
        table: TableRef<'a, K, Vec<Expiring<V>>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> Self {
        ListStateRef {
            cells: Cells::Ttl(RefCell::new(table), ttl),
            key,
            group,
        }
    }

    /// A copy of the list (empty if nothing was added). With a time to live,
    /// without its expired elements (which are removed), in order.
    pub fn get(&self) -> Vec<V> {
        match &self.cells {
            Cells::Plain(table) => table.list_read(self.group, self.key),
            Cells::Ttl(table, ttl) => {
                let mut table = table.borrow_mut();
                let list = table.list_read(self.group, self.key);
                let expired = list.iter().filter(|e| ttl.expired(e.0)).count();
                if expired > 0 || (ttl.refresh_on_read() && !list.is_empty()) {
                    let live: Vec<Expiring<V>> = list
                        .iter()
                        .filter(|e| !ttl.expired(e.0))
                        .map(|e| match ttl.refresh_on_read() {
                            true => ttl.wrap(e.1.clone()),
                            false => e.clone(),
                        })
                        .collect();
                    table.list_replace(self.group, self.key, live);
                    ttl.removed_on_read(expired);
                }
                list.into_iter()
                    .filter(|e| ttl.return_expired() || !ttl.expired(e.0))
                    .map(|e| e.1)
                    .collect()
            }
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => {
                table.get(self.group, self.key).map_or(0, Vec::len)
            }
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table.list_len(self.group, self.key),
            Cells::Ttl(..) => self.get().len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one value (with RocksDB, a merge: the list is not read).
    pub fn add(&mut self, value: V) {
        match &mut self.cells {
            Cells::Plain(TableRef::Heap(table)) => match table.get_mut(self.group, self.key) {
                Some(list) => list.push(value),
                None => table.put(self.group, self.key, vec![value]),
            },
            #[cfg(feature = "rocksdb")]
            Cells::Plain(table) => table.list_append(self.group, self.key, vec![value]),
            Cells::Ttl(table, ttl) => {
                table
                    .get_mut()
                    .list_append(self.group, self.key, vec![ttl.wrap(value)])
            }
        }
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = V>) {
        match &mut self.cells {
            Cells::Plain(table) => {
                table.list_append(self.group, self.key, values.into_iter().collect())
            }
            Cells::Ttl(table, ttl) => {
                let values = values.into_iter().map(|v| ttl.wrap(v)).collect();
                table.get_mut().list_append(self.group, self.key, values)
            }
        }
    }

    /// Replaces the list.
    pub fn update(&mut self, values: Vec<V>) {
        match &mut self.cells {
            Cells::Plain(table) => table.list_replace(self.group, self.key, values),
            Cells::Ttl(table, ttl) => {
                let values = values.into_iter().map(|v| ttl.wrap(v)).collect();
                table.get_mut().list_replace(self.group, self.key, values)
            }
        }
    }

    /// Removes the list.
    pub fn clear(&mut self) {
        match &mut self.cells {
            Cells::Plain(table) => table.erase(self.group, self.key),
            Cells::Ttl(table, _) => table.get_mut().erase(self.group, self.key),
        }
    }
}

/// The map operations of both backends, for any value type (plain values,
/// or values with their expiry).
impl<K: Key, UK: Key, E: StateData> TableRef<'_, K, KeyMap<UK, E>> {
    fn map_lookup<Q>(&self, group: usize, key: &K, user_key: &Q) -> Option<E>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match self {
            TableRef::Heap(table) => table.get(group, key).and_then(|m| m.get(user_key)).cloned(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_get(group, key, user_key),
        }
    }

    fn map_insert(&mut self, group: usize, key: &K, user_key: UK, value: E) {
        match self {
            TableRef::Heap(table) => match table.get_mut(group, key) {
                Some(map) => {
                    map.insert(user_key, value);
                }
                None => {
                    let mut map = KeyMap::default();
                    map.insert(user_key, value);
                    table.put(group, key, map);
                }
            },
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_put(group, key, &user_key, &value),
        }
    }

    /// Replaces the value under an existing `user_key` (given borrowed).
    fn map_overwrite<Q>(&mut self, group: usize, key: &K, user_key: &Q, value: E)
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match self {
            TableRef::Heap(table) => {
                if let Some(slot) = table.get_mut(group, key).and_then(|m| m.get_mut(user_key)) {
                    *slot = value;
                }
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_put(group, key, user_key, &value),
        }
    }

    fn map_take<Q>(&mut self, group: usize, key: &K, user_key: &Q) -> Option<E>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match self {
            TableRef::Heap(table) => {
                let map = table.get_mut(group, key)?;
                let removed = map.remove(user_key);
                if map.is_empty() {
                    table.remove(group, key);
                }
                removed
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                let removed = table.map_get(group, key, user_key)?;
                table.map_delete(group, key, user_key);
                Some(removed)
            }
        }
    }

    fn map_all(&self, group: usize, key: &K) -> Vec<(UK, E)> {
        match self {
            TableRef::Heap(table) => table
                .get(group, key)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_entries(group, key),
        }
    }

    fn map_erase(&mut self, group: usize, key: &K) {
        match self {
            TableRef::Heap(table) => table.remove(group, key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_clear(group, key),
        }
    }
}

/// A [`MapStateDescriptor`](super::MapStateDescriptor)'s map for the current key.
///
/// With a time to live, every entry has its own expiry: expired entries are
/// never returned (unless their visibility says so) and are removed when read.
pub struct MapStateRef<'a, K, UK, UV> {
    cells: Cells<'a, K, KeyMap<UK, UV>, KeyMap<UK, Expiring<UV>>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, UK: Key, UV: StateData> MapStateRef<'a, K, UK, UV> {
    pub(crate) fn new(table: TableRef<'a, K, KeyMap<UK, UV>>, key: &'a K, group: usize) -> Self {
        MapStateRef {
            cells: Cells::Plain(table),
            key,
            group,
        }
    }

    pub(crate) fn with_ttl(
        table: TableRef<'a, K, KeyMap<UK, Expiring<UV>>>,
        key: &'a K,
        group: usize,
        ttl: TtlAccess<'a>,
    ) -> Self {
        MapStateRef {
            cells: Cells::Ttl(RefCell::new(table), ttl),
            key,
            group,
        }
    }

    /// The value under `user_key` (any borrowed form of the user key: `&str`
    /// for `String` keys; it must hash, compare and serialise as the key does).
    pub fn get<Q>(&self, user_key: &Q) -> Option<UV>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &self.cells {
            Cells::Plain(table) => table.map_lookup(self.group, self.key, user_key),
            Cells::Ttl(table, ttl) => {
                let mut table = table.borrow_mut();
                let Expiring(at, value) = table.map_lookup(self.group, self.key, user_key)?;
                if ttl.expired(at) {
                    table.map_take(self.group, self.key, user_key);
                    ttl.removed_on_read(1);
                    return ttl.return_expired().then_some(value);
                }
                if ttl.refresh_on_read() {
                    table.map_overwrite(self.group, self.key, user_key, ttl.wrap(value.clone()));
                }
                Some(value)
            }
        }
    }

    /// Whether `user_key` (or a borrowed form of it) has a value.
    pub fn contains<Q>(&self, user_key: &Q) -> bool
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => table
                .get(self.group, self.key)
                .is_some_and(|m| m.contains_key(user_key)),
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table
                .map_get::<K, Q, serde::de::IgnoredAny>(self.group, self.key, user_key)
                .is_some(),
            Cells::Ttl(..) => self.get(user_key).is_some(),
        }
    }

    /// Sets the value under `user_key`.
    pub fn put(&mut self, user_key: UK, value: UV) {
        match &mut self.cells {
            Cells::Plain(table) => table.map_insert(self.group, self.key, user_key, value),
            Cells::Ttl(table, ttl) => {
                table
                    .get_mut()
                    .map_insert(self.group, self.key, user_key, ttl.wrap(value))
            }
        }
    }

    /// Changes the value under `user_key` in place (starting from `make()`
    /// when there is none) and returns what `f` returns: one lookup on the
    /// heap instead of a copy out and a write back. With a time to live this
    /// is a write (the entry's expiry restarts).
    pub fn modify_or_insert<R>(
        &mut self,
        user_key: &UK,
        make: impl FnOnce() -> UV,
        f: impl FnOnce(&mut UV) -> R,
    ) -> R {
        if let Cells::Plain(TableRef::Heap(table)) = &mut self.cells {
            if let Some(value) = table
                .get_mut(self.group, self.key)
                .and_then(|map| map.get_mut(user_key))
            {
                return f(value);
            }
        }
        let mut value = self.get(user_key).unwrap_or_else(make);
        let result = f(&mut value);
        self.put(user_key.clone(), value);
        result
    }

    /// Removes the value under `user_key` (or a borrowed form of it), returning it.
    pub fn remove<Q>(&mut self, user_key: &Q) -> Option<UV>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &mut self.cells {
            Cells::Plain(table) => table.map_take(self.group, self.key, user_key),
            Cells::Ttl(table, ttl) => {
                let Expiring(at, value) =
                    table.get_mut().map_take(self.group, self.key, user_key)?;
                if ttl.expired(at) {
                    ttl.removed_on_read(1);
                    return ttl.return_expired().then_some(value);
                }
                Some(value)
            }
        }
    }

    /// A copy of every entry (in no particular order).
    pub fn entries(&self) -> Vec<(UK, UV)> {
        match &self.cells {
            Cells::Plain(table) => table.map_all(self.group, self.key),
            Cells::Ttl(table, ttl) => {
                let mut table = table.borrow_mut();
                let all = table.map_all(self.group, self.key);
                let mut out = Vec::with_capacity(all.len());
                let mut expired = 0;
                for (user_key, Expiring(at, value)) in all {
                    if ttl.expired(at) {
                        table.map_take(self.group, self.key, &user_key);
                        expired += 1;
                        if !ttl.return_expired() {
                            continue;
                        }
                    } else if ttl.refresh_on_read() {
                        table.map_overwrite(
                            self.group,
                            self.key,
                            &user_key,
                            ttl.wrap(value.clone()),
                        );
                    }
                    out.push((user_key, value));
                }
                ttl.removed_on_read(expired);
                out
            }
        }
    }

    /// A copy of every user key.
    pub fn keys(&self) -> Vec<UK> {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => table
                .get(self.group, self.key)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table.map_keys(self.group, self.key),
            Cells::Ttl(..) => self.entries().into_iter().map(|(k, _)| k).collect(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => {
                table.get(self.group, self.key).map_or(0, KeyMap::len)
            }
            #[cfg(feature = "rocksdb")]
            Cells::Plain(TableRef::RocksDb(table)) => table.map_len(self.group, self.key),
            Cells::Ttl(..) => self.entries().len(),
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        match &mut self.cells {
            Cells::Plain(table) => table.map_erase(self.group, self.key),
            Cells::Ttl(table, _) => table.get_mut().map_erase(self.group, self.key),
        }
    }
}

/// A [`ReducingStateDescriptor`](super::ReducingStateDescriptor)'s value for the current key.
pub struct ReducingStateRef<'a, K, V> {
    cells: Cells<'a, K, V, Expiring<V>>,
    key: &'a K,
    group: usize,
    reduce: &'a (dyn Fn(V, V) -> V + Send + Sync),
}

impl<'a, K: Key, V: StateData> ReducingStateRef<'a, K, V> {
    pub(crate) fn new(
        table: TableRef<'a, K, V>,
        key: &'a K,
        group: usize,
        reduce: &'a (dyn Fn(V, V) -> V + Send + Sync),
    ) -> Self {
        ReducingStateRef {
            cells: Cells::Plain(table),
            key,
            group,
            reduce,
        }
    }

    pub(crate) fn with_ttl(
        table: TableRef<'a, K, Expiring<V>>,
        key: &'a K,
        group: usize,
        reduce: &'a (dyn Fn(V, V) -> V + Send + Sync),
        ttl: TtlAccess<'a>,
    ) -> Self {
        ReducingStateRef {
            cells: Cells::Ttl(RefCell::new(table), ttl),
            key,
            group,
            reduce,
        }
    }

    /// The reduced value, if anything was added (and, with a time to live,
    /// has not expired).
    pub fn get(&self) -> Option<V> {
        match &self.cells {
            Cells::Plain(table) => table.read(self.group, self.key),
            Cells::Ttl(table, ttl) => ttl_read(table, ttl, self.group, self.key),
        }
    }

    /// Folds `value` into the state (an expired value counts as none).
    pub fn add(&mut self, value: V) {
        match &mut self.cells {
            Cells::Plain(TableRef::Heap(table)) => {
                let reduced = match table.take(self.group, self.key) {
                    Some(current) => (self.reduce)(current, value),
                    None => value,
                };
                table.put(self.group, self.key, reduced);
            }
            #[cfg(feature = "rocksdb")]
            Cells::Plain(table) => {
                let reduced = match table.read(self.group, self.key) {
                    Some(current) => (self.reduce)(current, value),
                    None => value,
                };
                table.write(self.group, self.key, reduced);
            }
            Cells::Ttl(table, ttl) => {
                let table = table.get_mut();
                let reduced = match table.read(self.group, self.key) {
                    Some(Expiring(at, current)) if !ttl.expired(at) => {
                        (self.reduce)(current, value)
                    }
                    Some(_) => {
                        ttl.removed_on_read(1);
                        value
                    }
                    None => value,
                };
                table.write(self.group, self.key, ttl.wrap(reduced));
            }
        }
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        match &mut self.cells {
            Cells::Plain(table) => table.erase(self.group, self.key),
            Cells::Ttl(table, _) => table.get_mut().erase(self.group, self.key),
        }
    }
}

/// An [`AggregatingStateDescriptor`](super::AggregatingStateDescriptor)'s accumulator for the current key.
pub struct AggregatingStateRef<'a, K, A: AggregateFunction> {
    cells: Cells<'a, K, A::Acc, Expiring<A::Acc>>,
    key: &'a K,
    group: usize,
    function: &'a A,
}

impl<'a, K: Key, A: AggregateFunction> AggregatingStateRef<'a, K, A> {
    pub(crate) fn new(
        table: TableRef<'a, K, A::Acc>,
        key: &'a K,
        group: usize,
        function: &'a A,
    ) -> Self {
        AggregatingStateRef {
            cells: Cells::Plain(table),
            key,
            group,
            function,
        }
    }

    pub(crate) fn with_ttl(
        table: TableRef<'a, K, Expiring<A::Acc>>,
        key: &'a K,
        group: usize,
        function: &'a A,
        ttl: TtlAccess<'a>,
    ) -> Self {
        AggregatingStateRef {
            cells: Cells::Ttl(RefCell::new(table), ttl),
            key,
            group,
            function,
        }
    }

    /// The accumulator, if anything was added (and, with a time to live,
    /// has not expired): what a live query answers.
    pub(crate) fn accumulator(&self) -> Option<A::Acc> {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => table.get(self.group, self.key).cloned(),
            #[cfg(feature = "rocksdb")]
            Cells::Plain(table) => table.read(self.group, self.key),
            Cells::Ttl(table, ttl) => ttl_read(table, ttl, self.group, self.key),
        }
    }

    /// The aggregate's result, if anything was added (and, with a time to
    /// live, has not expired).
    pub fn get(&self) -> Option<A::Out> {
        match &self.cells {
            Cells::Plain(TableRef::Heap(table)) => table
                .get(self.group, self.key)
                .map(|acc| self.function.get_result(acc)),
            #[cfg(feature = "rocksdb")]
            Cells::Plain(table) => table
                .read(self.group, self.key)
                .map(|acc| self.function.get_result(&acc)),
            Cells::Ttl(table, ttl) => {
                ttl_read(table, ttl, self.group, self.key).map(|acc| self.function.get_result(&acc))
            }
        }
    }

    /// Adds `value` to the accumulator (an expired one starts afresh).
    pub fn add(&mut self, value: A::In) {
        match &mut self.cells {
            Cells::Plain(TableRef::Heap(table)) => match table.get_mut(self.group, self.key) {
                Some(acc) => self.function.add(value, acc),
                None => {
                    let mut acc = self.function.create_accumulator();
                    self.function.add(value, &mut acc);
                    table.put(self.group, self.key, acc);
                }
            },
            #[cfg(feature = "rocksdb")]
            Cells::Plain(table) => {
                let mut acc = table
                    .read(self.group, self.key)
                    .unwrap_or_else(|| self.function.create_accumulator());
                self.function.add(value, &mut acc);
                table.write(self.group, self.key, acc);
            }
            Cells::Ttl(table, ttl) => {
                let table = table.get_mut();
                let mut acc = match table.read(self.group, self.key) {
                    Some(Expiring(at, acc)) if !ttl.expired(at) => acc,
                    Some(_) => {
                        ttl.removed_on_read(1);
                        self.function.create_accumulator()
                    }
                    None => self.function.create_accumulator(),
                };
                self.function.add(value, &mut acc);
                table.write(self.group, self.key, ttl.wrap(acc));
            }
        }
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) {
        match &mut self.cells {
            Cells::Plain(table) => table.erase(self.group, self.key),
            Cells::Ttl(table, _) => table.get_mut().erase(self.group, self.key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ttl::ExpiredCounters;

    #[test]
    fn a_modify_with_a_time_to_live_starts_from_what_its_settings_say() {
        let counters = ExpiredCounters::default();
        // now = 100: an expiry of 100 has expired, 101 has not.
        let hidden = TtlAccess::new(50, 100, 100, false, false, &counters);
        let visible = TtlAccess::new(50, 100, 100, false, true, &counters);
        assert_eq!(ttl_start(Some(101), &hidden, false), TtlStart::Stored);
        assert_eq!(ttl_start(Some(100), &hidden, true), TtlStart::Default);
        assert_eq!(ttl_start(Some(100), &hidden, false), TtlStart::Nothing);
        assert_eq!(ttl_start(Some(100), &visible, false), TtlStart::Stored);
        assert_eq!(ttl_start(None, &hidden, true), TtlStart::Default);
        assert_eq!(ttl_start(None, &visible, false), TtlStart::Nothing);
        assert_eq!(
            counters.on_read.get(),
            3,
            "each expired value read counts once"
        );
    }
}

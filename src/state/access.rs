//! Accessors: one state, opened for the current key.
//!
//! Each is a short-lived borrow of the operator's store, made by
//! `ctx.state(&descriptor)?`; it reads and writes the value of the key whose
//! record (or timer) is being processed, in whichever backend holds it.

use std::borrow::Borrow;
use std::hash::Hash;

use serde::Serialize;

use super::descriptor::AggregateFunction;
use super::heap::HeapTable;
#[cfg(feature = "rocksdb")]
use super::rocksdb::RocksTableRef;
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

/// A [`ValueStateDescriptor`](super::ValueStateDescriptor)'s value for the current key.
pub struct ValueStateRef<'a, K, V> {
    table: TableRef<'a, K, V>,
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
            table,
            key,
            group,
            default,
        }
    }

    /// The value, or the descriptor's default, or `None`.
    #[inline]
    pub fn value(&self) -> Option<V> {
        match &self.table {
            TableRef::Heap(table) => table.get(self.group, self.key).or(self.default).cloned(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table
                .get(self.group, self.key)
                .or_else(|| self.default.cloned()),
        }
    }

    /// Replaces the value.
    #[inline]
    pub fn update(&mut self, value: V) {
        match &mut self.table {
            TableRef::Heap(table) => table.put(self.group, self.key, value),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.put(self.group, self.key, &value),
        }
    }

    /// Changes the value in place (starting from the default if there is none)
    /// and returns what `f` returns: one lookup instead of a read and a write.
    #[inline(always)]
    pub fn modify<R>(&mut self, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        match &mut self.table {
            TableRef::Heap(table) => {
                if let Some(value) = table.get_mut(self.group, self.key) {
                    return Some(f(value));
                }
                let mut value = self.default.cloned()?;
                let result = f(&mut value);
                table.put(self.group, self.key, value);
                Some(result)
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => rocks_modify(table, self.group, self.key, self.default, f),
        }
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        match &mut self.table {
            TableRef::Heap(table) => table.remove(self.group, self.key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.delete(self.group, self.key),
        }
    }
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

/// A [`ListStateDescriptor`](super::ListStateDescriptor)'s list for the current key.
pub struct ListStateRef<'a, K, V> {
    table: TableRef<'a, K, Vec<V>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, V: StateData> ListStateRef<'a, K, V> {
    pub(crate) fn new(table: TableRef<'a, K, Vec<V>>, key: &'a K, group: usize) -> Self {
        ListStateRef { table, key, group }
    }

    /// A copy of the list (empty if nothing was added).
    pub fn get(&self) -> Vec<V> {
        match &self.table {
            TableRef::Heap(table) => table.get(self.group, self.key).cloned().unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_get(self.group, self.key),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.table {
            TableRef::Heap(table) => table.get(self.group, self.key).map_or(0, Vec::len),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_len(self.group, self.key),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one value (with RocksDB, a merge: the list is not read).
    pub fn add(&mut self, value: V) {
        match &mut self.table {
            TableRef::Heap(table) => match table.get_mut(self.group, self.key) {
                Some(list) => list.push(value),
                None => table.put(self.group, self.key, vec![value]),
            },
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                table.list_add(self.group, self.key, std::slice::from_ref(&value))
            }
        }
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = V>) {
        match &mut self.table {
            TableRef::Heap(_) => {
                for value in values {
                    self.add(value);
                }
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                let values: Vec<V> = values.into_iter().collect();
                table.list_add(self.group, self.key, &values);
            }
        }
    }

    /// Replaces the list.
    pub fn update(&mut self, values: Vec<V>) {
        if values.is_empty() {
            return self.clear();
        }
        match &mut self.table {
            TableRef::Heap(table) => table.put(self.group, self.key, values),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.list_put(self.group, self.key, &values),
        }
    }

    /// Removes the list.
    pub fn clear(&mut self) {
        match &mut self.table {
            TableRef::Heap(table) => table.remove(self.group, self.key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.delete(self.group, self.key),
        }
    }
}

/// A [`MapStateDescriptor`](super::MapStateDescriptor)'s map for the current key.
pub struct MapStateRef<'a, K, UK, UV> {
    table: TableRef<'a, K, KeyMap<UK, UV>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, UK: Key, UV: StateData> MapStateRef<'a, K, UK, UV> {
    pub(crate) fn new(table: TableRef<'a, K, KeyMap<UK, UV>>, key: &'a K, group: usize) -> Self {
        MapStateRef { table, key, group }
    }

    /// The value under `user_key` (any borrowed form of the user key: `&str`
    /// for `String` keys; it must hash, compare and serialise as the key does).
    pub fn get<Q>(&self, user_key: &Q) -> Option<UV>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &self.table {
            TableRef::Heap(table) => table
                .get(self.group, self.key)
                .and_then(|m| m.get(user_key))
                .cloned(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_get(self.group, self.key, user_key),
        }
    }

    /// Whether `user_key` (or a borrowed form of it) has a value.
    pub fn contains<Q>(&self, user_key: &Q) -> bool
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &self.table {
            TableRef::Heap(table) => table
                .get(self.group, self.key)
                .is_some_and(|m| m.contains_key(user_key)),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table
                .map_get::<K, Q, serde::de::IgnoredAny>(self.group, self.key, user_key)
                .is_some(),
        }
    }

    /// Sets the value under `user_key`.
    pub fn put(&mut self, user_key: UK, value: UV) {
        match &mut self.table {
            TableRef::Heap(table) => match table.get_mut(self.group, self.key) {
                Some(map) => {
                    map.insert(user_key, value);
                }
                None => {
                    let mut map = KeyMap::default();
                    map.insert(user_key, value);
                    table.put(self.group, self.key, map);
                }
            },
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_put(self.group, self.key, &user_key, &value),
        }
    }

    /// Removes the value under `user_key` (or a borrowed form of it), returning it.
    pub fn remove<Q>(&mut self, user_key: &Q) -> Option<UV>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        match &mut self.table {
            TableRef::Heap(table) => {
                let map = table.get_mut(self.group, self.key)?;
                let removed = map.remove(user_key);
                if map.is_empty() {
                    table.remove(self.group, self.key);
                }
                removed
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                let removed = table.map_get(self.group, self.key, user_key)?;
                table.map_delete(self.group, self.key, user_key);
                Some(removed)
            }
        }
    }

    /// A copy of every entry (in no particular order).
    pub fn entries(&self) -> Vec<(UK, UV)> {
        match &self.table {
            TableRef::Heap(table) => table
                .get(self.group, self.key)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_entries(self.group, self.key),
        }
    }

    /// A copy of every user key.
    pub fn keys(&self) -> Vec<UK> {
        match &self.table {
            TableRef::Heap(table) => table
                .get(self.group, self.key)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_keys(self.group, self.key),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match &self.table {
            TableRef::Heap(table) => table.get(self.group, self.key).map_or(0, KeyMap::len),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_len(self.group, self.key),
        }
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        match &mut self.table {
            TableRef::Heap(table) => table.remove(self.group, self.key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.map_clear(self.group, self.key),
        }
    }
}

/// A [`ReducingStateDescriptor`](super::ReducingStateDescriptor)'s value for the current key.
pub struct ReducingStateRef<'a, K, V> {
    table: TableRef<'a, K, V>,
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
            table,
            key,
            group,
            reduce,
        }
    }

    /// The reduced value, if anything was added.
    pub fn get(&self) -> Option<V> {
        match &self.table {
            TableRef::Heap(table) => table.get(self.group, self.key).cloned(),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.get(self.group, self.key),
        }
    }

    /// Folds `value` into the state.
    pub fn add(&mut self, value: V) {
        match &mut self.table {
            TableRef::Heap(table) => {
                let reduced = match table.take(self.group, self.key) {
                    Some(current) => (self.reduce)(current, value),
                    None => value,
                };
                table.put(self.group, self.key, reduced);
            }
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                let reduced = match table.get(self.group, self.key) {
                    Some(current) => (self.reduce)(current, value),
                    None => value,
                };
                table.put(self.group, self.key, &reduced);
            }
        }
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        match &mut self.table {
            TableRef::Heap(table) => table.remove(self.group, self.key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.delete(self.group, self.key),
        }
    }
}

/// An [`AggregatingStateDescriptor`](super::AggregatingStateDescriptor)'s accumulator for the current key.
pub struct AggregatingStateRef<'a, K, A: AggregateFunction> {
    table: TableRef<'a, K, A::Acc>,
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
            table,
            key,
            group,
            function,
        }
    }

    /// The aggregate's result, if anything was added.
    pub fn get(&self) -> Option<A::Out> {
        match &self.table {
            TableRef::Heap(table) => table
                .get(self.group, self.key)
                .map(|acc| self.function.get_result(acc)),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table
                .get::<K, A::Acc>(self.group, self.key)
                .map(|acc| self.function.get_result(&acc)),
        }
    }

    /// Adds `value` to the accumulator.
    pub fn add(&mut self, value: A::In) {
        match &mut self.table {
            TableRef::Heap(table) => match table.get_mut(self.group, self.key) {
                Some(acc) => self.function.add(value, acc),
                None => {
                    let mut acc = self.function.create_accumulator();
                    self.function.add(value, &mut acc);
                    table.put(self.group, self.key, acc);
                }
            },
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => {
                let mut acc = table
                    .get(self.group, self.key)
                    .unwrap_or_else(|| self.function.create_accumulator());
                self.function.add(value, &mut acc);
                table.put(self.group, self.key, &acc);
            }
        }
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) {
        match &mut self.table {
            TableRef::Heap(table) => table.remove(self.group, self.key),
            #[cfg(feature = "rocksdb")]
            TableRef::RocksDb(table) => table.delete(self.group, self.key),
        }
    }
}

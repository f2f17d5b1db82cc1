//! Accessors: one state, opened for the current key.
//!
//! Each is a short-lived borrow of the operator's store, made by
//! `ctx.state(&descriptor)?`; it reads and writes the value of the key whose
//! record (or timer) is being processed.

use super::descriptor::AggregateFunction;
use super::heap::HeapTable;
use super::{Key, StateData};
use crate::keys::KeyMap;

/// A [`ValueStateDescriptor`](super::ValueStateDescriptor)'s value for the current key.
pub struct ValueStateRef<'a, K, V> {
    table: &'a mut HeapTable<K, V>,
    key: &'a K,
    group: usize,
    default: Option<&'a V>,
}

impl<'a, K: Key, V: StateData> ValueStateRef<'a, K, V> {
    pub(crate) fn new(
        table: &'a mut HeapTable<K, V>,
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
    pub fn value(&self) -> Option<V> {
        self.table
            .get(self.group, self.key)
            .or(self.default)
            .cloned()
    }

    /// Replaces the value.
    pub fn update(&mut self, value: V) {
        self.table.put(self.group, self.key, value);
    }

    /// Changes the value in place (starting from the default if there is none)
    /// and returns what `f` returns: one lookup instead of a read and a write.
    pub fn modify<R>(&mut self, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        if let Some(value) = self.table.get_mut(self.group, self.key) {
            return Some(f(value));
        }
        let mut value = self.default.cloned()?;
        let result = f(&mut value);
        self.table.put(self.group, self.key, value);
        Some(result)
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.table.remove(self.group, self.key);
    }
}

/// A [`ListStateDescriptor`](super::ListStateDescriptor)'s list for the current key.
pub struct ListStateRef<'a, K, V> {
    table: &'a mut HeapTable<K, Vec<V>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, V: StateData> ListStateRef<'a, K, V> {
    pub(crate) fn new(table: &'a mut HeapTable<K, Vec<V>>, key: &'a K, group: usize) -> Self {
        ListStateRef { table, key, group }
    }

    /// A copy of the list (empty if nothing was added).
    pub fn get(&self) -> Vec<V> {
        self.table
            .get(self.group, self.key)
            .cloned()
            .unwrap_or_default()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.table.get(self.group, self.key).map_or(0, Vec::len)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends one value.
    pub fn add(&mut self, value: V) {
        match self.table.get_mut(self.group, self.key) {
            Some(list) => list.push(value),
            None => self.table.put(self.group, self.key, vec![value]),
        }
    }

    /// Appends every value of `values`.
    pub fn add_all(&mut self, values: impl IntoIterator<Item = V>) {
        for value in values {
            self.add(value);
        }
    }

    /// Replaces the list.
    pub fn update(&mut self, values: Vec<V>) {
        if values.is_empty() {
            self.clear();
        } else {
            self.table.put(self.group, self.key, values);
        }
    }

    /// Removes the list.
    pub fn clear(&mut self) {
        self.table.remove(self.group, self.key);
    }
}

/// A [`MapStateDescriptor`](super::MapStateDescriptor)'s map for the current key.
pub struct MapStateRef<'a, K, UK, UV> {
    table: &'a mut HeapTable<K, KeyMap<UK, UV>>,
    key: &'a K,
    group: usize,
}

impl<'a, K: Key, UK: Key, UV: StateData> MapStateRef<'a, K, UK, UV> {
    pub(crate) fn new(
        table: &'a mut HeapTable<K, KeyMap<UK, UV>>,
        key: &'a K,
        group: usize,
    ) -> Self {
        MapStateRef { table, key, group }
    }

    fn map(&self) -> Option<&KeyMap<UK, UV>> {
        self.table.get(self.group, self.key)
    }

    /// The value under `user_key`.
    pub fn get(&self, user_key: &UK) -> Option<UV> {
        self.map().and_then(|m| m.get(user_key)).cloned()
    }

    /// Whether `user_key` has a value.
    pub fn contains(&self, user_key: &UK) -> bool {
        self.map().is_some_and(|m| m.contains_key(user_key))
    }

    /// Sets the value under `user_key`.
    pub fn put(&mut self, user_key: UK, value: UV) {
        match self.table.get_mut(self.group, self.key) {
            Some(map) => {
                map.insert(user_key, value);
            }
            None => {
                let mut map = KeyMap::default();
                map.insert(user_key, value);
                self.table.put(self.group, self.key, map);
            }
        }
    }

    /// Removes the value under `user_key`, returning it.
    pub fn remove(&mut self, user_key: &UK) -> Option<UV> {
        let map = self.table.get_mut(self.group, self.key)?;
        let removed = map.remove(user_key);
        if map.is_empty() {
            self.table.remove(self.group, self.key);
        }
        removed
    }

    /// A copy of every entry (in no particular order).
    pub fn entries(&self) -> Vec<(UK, UV)> {
        self.map()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// A copy of every user key.
    pub fn keys(&self) -> Vec<UK> {
        self.map()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map().map_or(0, KeyMap::len)
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.table.remove(self.group, self.key);
    }
}

/// A [`ReducingStateDescriptor`](super::ReducingStateDescriptor)'s value for the current key.
pub struct ReducingStateRef<'a, K, V> {
    table: &'a mut HeapTable<K, V>,
    key: &'a K,
    group: usize,
    reduce: &'a (dyn Fn(V, V) -> V + Send + Sync),
}

impl<'a, K: Key, V: StateData> ReducingStateRef<'a, K, V> {
    pub(crate) fn new(
        table: &'a mut HeapTable<K, V>,
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
        self.table.get(self.group, self.key).cloned()
    }

    /// Folds `value` into the state.
    pub fn add(&mut self, value: V) {
        let reduced = match self.table.take(self.group, self.key) {
            Some(current) => (self.reduce)(current, value),
            None => value,
        };
        self.table.put(self.group, self.key, reduced);
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.table.remove(self.group, self.key);
    }
}

/// An [`AggregatingStateDescriptor`](super::AggregatingStateDescriptor)'s accumulator for the current key.
pub struct AggregatingStateRef<'a, K, A: AggregateFunction> {
    table: &'a mut HeapTable<K, A::Acc>,
    key: &'a K,
    group: usize,
    function: &'a A,
}

impl<'a, K: Key, A: AggregateFunction> AggregatingStateRef<'a, K, A> {
    pub(crate) fn new(
        table: &'a mut HeapTable<K, A::Acc>,
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
        self.table
            .get(self.group, self.key)
            .map(|acc| self.function.get_result(acc))
    }

    /// Adds `value` to the accumulator.
    pub fn add(&mut self, value: A::In) {
        match self.table.get_mut(self.group, self.key) {
            Some(acc) => self.function.add(value, acc),
            None => {
                let mut acc = self.function.create_accumulator();
                self.function.add(value, &mut acc);
                self.table.put(self.group, self.key, acc);
            }
        }
    }

    /// Removes the accumulator.
    pub fn clear(&mut self) {
        self.table.remove(self.group, self.key);
    }
}

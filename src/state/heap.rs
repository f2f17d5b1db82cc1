//! The heap state backend: keyed state as typed values in memory.
//!
//! Each state is a [`HeapTable`]: one hash map per key group. Between snapshots
//! a group's map is owned outright, so reads and writes are plain hash-map
//! operations, with no atomic reference counting on the processing path.
//!
//! A snapshot *freezes* every group: the map moves behind an `Arc` (a pointer
//! move, no copy) that the snapshot shares, so the synchronous part costs a
//! few pointer moves per key group whatever the state's size. While a group is
//! frozen, writes go to a small *delta* map beside it (a value is copied from
//! the frozen map the first time it is changed, a removal is noted as a
//! tombstone), so the processing path pays per entry it changes, never per
//! entry it holds. Once the snapshot has been written and dropped its share,
//! the next access to the group folds the delta back into the map, which is
//! owned again. Serialisation works on the frozen maps, off the processing
//! path.

use crate::runtime::codec;
use std::sync::Arc;

use super::error::StateError;
use super::{Key, StateBackend, StateData};
use crate::keys::{stable_hash, KeyGroupRange, KeyMap};

/// The default state backend: typed values in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapStateBackend;

impl StateBackend for HeapStateBackend {
    fn name(&self) -> &'static str {
        "heap"
    }
}

/// One key group's map: owned, or frozen for a snapshot with the changes since.
enum Group<K, S> {
    Owned(KeyMap<K, S>),
    Frozen {
        base: Arc<KeyMap<K, S>>,
        delta: KeyMap<K, Option<S>>,
    },
}

impl<K: Key, S: StateData> Group<K, S> {
    /// Makes the map owned again if no snapshot shares it any more.
    #[inline(always)]
    fn thaw(&mut self) {
        if let Group::Frozen { base, .. } = self {
            if Arc::strong_count(base) == 1 {
                self.fold();
            }
        }
    }

    #[cold]
    fn fold(&mut self) {
        let Group::Frozen { base, delta } =
            std::mem::replace(self, Group::Owned(KeyMap::default()))
        else {
            return;
        };
        let mut map = Arc::try_unwrap(base).unwrap_or_else(|shared| (*shared).clone());
        for (key, value) in delta {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        *self = Group::Owned(map);
    }

    #[inline]
    fn get(&self, key: &K) -> Option<&S> {
        match self {
            Group::Owned(map) => map.get(key),
            Group::Frozen { base, delta } => match delta.get(key) {
                Some(value) => value.as_ref(),
                None => base.get(key),
            },
        }
    }

    #[inline]
    fn get_mut(&mut self, key: &K) -> Option<&mut S> {
        self.thaw();
        match self {
            Group::Owned(map) => map.get_mut(key),
            Group::Frozen { base, delta } => {
                if !delta.contains_key(key) {
                    let copy = base.get(key)?.clone();
                    delta.insert(key.clone(), Some(copy));
                }
                delta.get_mut(key).and_then(Option::as_mut)
            }
        }
    }

    #[inline]
    fn put(&mut self, key: &K, value: S) {
        self.thaw();
        match self {
            Group::Owned(map) => {
                if let Some(slot) = map.get_mut(key) {
                    *slot = value;
                } else {
                    map.insert(key.clone(), value);
                }
            }
            Group::Frozen { delta, .. } => {
                delta.insert(key.clone(), Some(value));
            }
        }
    }

    #[inline]
    fn take(&mut self, key: &K) -> Option<S> {
        self.thaw();
        match self {
            Group::Owned(map) => map.remove(key),
            Group::Frozen { base, delta } => {
                let current = match delta.remove(key) {
                    Some(value) => value,
                    None => base.get(key).cloned(),
                };
                if base.contains_key(key) {
                    delta.insert(key.clone(), None);
                }
                current
            }
        }
    }

    /// Number of entries (an upper bound while frozen: changed keys count twice).
    fn len(&self) -> usize {
        match self {
            Group::Owned(map) => map.len(),
            Group::Frozen { base, delta } => base.len() + delta.len(),
        }
    }

    /// Applies `purge` to every value (owned groups only: a group a snapshot
    /// still shares is left for a later pass, `None`) and drops the values it
    /// empties; returns the total it counted.
    fn purge(&mut self, mut purge: impl FnMut(&mut S) -> (usize, bool)) -> Option<usize> {
        self.thaw();
        let Group::Owned(map) = self else {
            return None;
        };
        let mut removed = 0;
        map.retain(|_, value| {
            let (n, empty) = purge(value);
            removed += n;
            !empty
        });
        Some(removed)
    }

    fn for_each_entry(&self, mut f: impl FnMut(&K, &S)) {
        match self {
            Group::Owned(map) => map.iter().for_each(|(k, v)| f(k, v)),
            Group::Frozen { base, delta } => {
                base.iter()
                    .filter(|(k, _)| !delta.contains_key(*k))
                    .for_each(|(k, v)| f(k, v));
                delta
                    .iter()
                    .filter_map(|(k, v)| Some((k, v.as_ref()?)))
                    .for_each(|(k, v)| f(k, v));
            }
        }
    }

    fn for_each_key(&self, mut f: impl FnMut(&K)) {
        match self {
            Group::Owned(map) => map.keys().for_each(f),
            Group::Frozen { base, delta } => {
                base.keys()
                    .filter(|k| !delta.contains_key(*k))
                    .for_each(&mut f);
                delta
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .for_each(|(k, _)| f(k));
            }
        }
    }

    /// Freezes the group (if it is not already) and returns the map as a
    /// snapshot sees it.
    fn freeze(&mut self) -> Arc<KeyMap<K, S>> {
        match self {
            Group::Owned(map) => {
                let base = Arc::new(std::mem::take(map));
                *self = Group::Frozen {
                    base: base.clone(),
                    delta: KeyMap::default(),
                };
                base
            }
            Group::Frozen { base, delta } if delta.is_empty() => base.clone(),
            Group::Frozen { base, delta } => {
                // A second snapshot while the first still holds the map: this one
                // needs the changes too, so they are folded into a fresh copy.
                let mut map = (**base).clone();
                for (key, value) in delta.drain() {
                    match value {
                        Some(value) => map.insert(key, value),
                        None => map.remove(&key),
                    };
                }
                *base = Arc::new(map);
                base.clone()
            }
        }
    }
}

/// One keyed state of one subtask: a map per owned key group.
pub struct HeapTable<K, S> {
    start: usize,
    groups: Vec<Group<K, S>>,
}

impl<K: Key, S: StateData> HeapTable<K, S> {
    /// An empty table over the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        HeapTable {
            start: range.start,
            groups: (0..range.len())
                .map(|_| Group::Owned(KeyMap::default()))
                .collect(),
        }
    }

    #[inline]
    fn group(&self, group: usize) -> &Group<K, S> {
        &self.groups[group - self.start]
    }

    #[inline]
    fn group_mut(&mut self, group: usize) -> &mut Group<K, S> {
        &mut self.groups[group - self.start]
    }

    /// The value of `key` (in key group `group`).
    #[inline]
    pub fn get(&self, group: usize, key: &K) -> Option<&S> {
        self.group(group).get(key)
    }

    /// The value of `key`, for change in place.
    #[inline]
    pub fn get_mut(&mut self, group: usize, key: &K) -> Option<&mut S> {
        self.group_mut(group).get_mut(key)
    }

    /// How many of `keys` (with their key groups) have a value: a read of
    /// each key's entry, so that the next access finds it in the cache (see
    /// [`crate::state::KeyedStateStore::warm`]). Keys of groups not held count as
    /// absent.
    pub fn warm(&self, keys: &[(&K, usize)]) -> usize {
        let mut found = 0;
        for (key, group) in keys {
            let index = group.wrapping_sub(self.start);
            if let Some(group) = self.groups.get(index) {
                found += usize::from(group.get(key).is_some());
            }
        }
        found
    }

    /// Sets the value of `key`.
    #[inline]
    pub fn put(&mut self, group: usize, key: &K, value: S) {
        self.group_mut(group).put(key, value);
    }

    /// Removes and returns the value of `key`.
    #[inline]
    pub fn take(&mut self, group: usize, key: &K) -> Option<S> {
        self.group_mut(group).take(key)
    }

    /// Removes the value of `key`.
    #[inline]
    pub fn remove(&mut self, group: usize, key: &K) {
        self.group_mut(group).take(key);
    }

    /// Every key with a value.
    pub fn keys(&self) -> Vec<K> {
        let mut keys = Vec::new();
        for group in &self.groups {
            group.for_each_key(|k| keys.push(k.clone()));
        }
        keys
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        let mut n = 0;
        for group in &self.groups {
            group.for_each_key(|_| n += 1);
        }
        n
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of key groups.
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Number of entries of the `index`th key group (about, while a snapshot shares it).
    pub(crate) fn group_len(&self, index: usize) -> usize {
        self.groups[index].len()
    }

    /// Applies `purge` to every value of the `index`th key group and drops
    /// the values it empties (see `Expirable`); returns what it counted, or
    /// `None` if a snapshot still shares the group (left for a later pass).
    pub(crate) fn purge_group(
        &mut self,
        index: usize,
        purge: impl FnMut(&mut S) -> (usize, bool),
    ) -> Option<usize> {
        self.groups[index].purge(purge)
    }

    /// Calls `f` with every (key group, key, value).
    pub(crate) fn for_each_entry(&self, mut f: impl FnMut(usize, &K, &S)) {
        for (index, group) in self.groups.iter().enumerate() {
            group.for_each_entry(|k, v| f(self.start + index, k, v));
        }
    }

    /// The value of `key`, removed if `purge` empties it; returns what it counted.
    pub(crate) fn purge_key(
        &mut self,
        group: usize,
        key: &K,
        purge: impl FnOnce(&mut S) -> (usize, bool),
    ) -> usize {
        let Some(value) = self.get_mut(group, key) else {
            return 0;
        };
        let (n, empty) = purge(value);
        if empty {
            self.remove(group, key);
        }
        n
    }

    /// The synchronous part of a snapshot: freezes every key group's map and shares it.
    pub fn snapshot(&mut self) -> HeapTableSnapshot<K, S> {
        HeapTableSnapshot {
            start: self.start,
            groups: self.groups.iter_mut().map(Group::freeze).collect(),
        }
    }

    /// Adds the entries of one serialised key group (from `HeapTableSnapshot::write_group`).
    pub fn restore_group(
        &mut self,
        name: &str,
        group: usize,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        self.restore_group_as::<S>(name, group, bytes, Some)
    }

    /// Adds the entries of one serialised key group stored as `R` (another
    /// form of this table's values: with or without expiries), converted by
    /// `convert` (`None`: the entry is dropped).
    pub(crate) fn restore_group_as<R: serde::de::DeserializeOwned>(
        &mut self,
        name: &str,
        group: usize,
        bytes: &[u8],
        mut convert: impl FnMut(R) -> Option<S>,
    ) -> Result<(), StateError> {
        let entries: Vec<(K, R)> = codec::decode(bytes).map_err(|e| StateError::Corrupt {
            name: name.to_string(),
            group,
            cause: e.to_string(),
        })?;
        for (key, value) in entries {
            if let Some(value) = convert(value) {
                self.put(group, &key, value);
            }
        }
        Ok(())
    }
}

/// A table's key groups as they were at a snapshot.
pub struct HeapTableSnapshot<K, S> {
    start: usize,
    groups: Vec<Arc<KeyMap<K, S>>>,
}

impl<K: Key, S: StateData> HeapTableSnapshot<K, S> {
    /// Serialises key group `group` (rmp-serde); `None` if it holds no key.
    pub fn write_group(&self, name: &str, group: usize) -> Result<Option<Vec<u8>>, StateError> {
        self.write_group_filtered(name, group, |v| Some(std::borrow::Cow::Borrowed(v)))
    }

    /// Serialises key group `group` with each value as `keep` gives it
    /// (`None`: left out, as an expired entry is); `None` if no key is left.
    pub(crate) fn write_group_filtered<'s>(
        &'s self,
        name: &str,
        group: usize,
        keep: impl Fn(&'s S) -> Option<std::borrow::Cow<'s, S>>,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let map = &self.groups[group - self.start];
        if map.is_empty() {
            return Ok(None);
        }
        // In stable-hash order: the map's own order depends on its seed, and
        // the same state should make the same bytes in every process.
        let mut entries: Vec<(&K, std::borrow::Cow<'s, S>)> = map
            .iter()
            .filter_map(|(k, v)| Some((k, keep(v)?)))
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        entries.sort_by_cached_key(|(key, _)| stable_hash(*key));
        codec::encode(&entries)
            .map(Some)
            .map_err(|e| StateError::Encode {
                name: name.to_string(),
                cause: e.to_string(),
            })
    }

    /// The key groups the snapshot covers.
    pub fn groups(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.groups.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_keeps_its_values_while_the_table_changes() {
        let range = KeyGroupRange { start: 4, end: 6 };
        let mut table = HeapTable::<String, u64>::new(range);
        table.put(4, &"a".into(), 1);
        table.put(5, &"b".into(), 2);
        let snapshot = table.snapshot();
        table.put(4, &"a".into(), 10);
        table.remove(5, &"b".into());
        let mut restored = HeapTable::<String, u64>::new(range);
        for group in snapshot.groups() {
            if let Some(bytes) = snapshot.write_group("t", group).unwrap() {
                restored.restore_group("t", group, &bytes).unwrap();
            }
        }
        assert_eq!(restored.get(4, &"a".into()), Some(&1));
        assert_eq!(restored.get(5, &"b".into()), Some(&2));
        assert_eq!(table.get(4, &"a".into()), Some(&10));
        assert_eq!(table.get(5, &"b".into()), None);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn changes_made_while_frozen_survive_the_thaw_and_a_second_snapshot() {
        let range = KeyGroupRange { start: 0, end: 1 };
        let mut table = HeapTable::<u32, u32>::new(range);
        for k in 0..10 {
            table.put(0, &k, k);
        }
        let first = table.snapshot();
        *table.get_mut(0, &1).unwrap() += 100;
        table.remove(0, &2);
        table.put(0, &20, 20);
        assert_eq!(table.get(0, &1), Some(&101));
        assert_eq!(table.len(), 10);
        // A second snapshot while the first is still alive sees the changes.
        let second = table.snapshot();
        assert_eq!(second.groups[0].get(&1), Some(&101));
        assert_eq!(second.groups[0].get(&2), None);
        assert_eq!(
            first.groups[0].get(&1),
            Some(&1),
            "the first snapshot is untouched"
        );
        drop((first, second));
        // Thawed on the next write: every change is still there.
        table.put(0, &3, 33);
        let mut keys = table.keys();
        keys.sort();
        assert_eq!(keys, vec![0, 1, 3, 4, 5, 6, 7, 8, 9, 20]);
        assert_eq!(
            (table.get(0, &1), table.get(0, &3)),
            (Some(&101), Some(&33))
        );
    }

    thread_local! {
        static COMPARISONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// A key that counts how often it is compared: a lookup that scans
    /// colliding keys compares many.
    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct CountingKey(Vec<u8>);

    /// Hashes as its bytes do (the colliding keys collide as `Vec<u8>`).
    impl std::hash::Hash for CountingKey {
        fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    impl PartialEq for CountingKey {
        fn eq(&self, other: &Self) -> bool {
            COMPARISONS.with(|c| c.set(c.get() + 1));
            self.0 == other.0
        }
    }
    impl Eq for CountingKey {}

    /// Key comparisons made by `n` inserts and `n` lookups of `keys` in a
    /// one-group map hashed with `S`.
    fn comparisons<S: std::hash::BuildHasher + Default>(keys: &[CountingKey]) -> u64 {
        let mut map: std::collections::HashMap<CountingKey, u64, S> = Default::default();
        COMPARISONS.with(|c| c.set(0));
        for (i, key) in keys.iter().enumerate() {
            map.insert(key.clone(), i as u64);
        }
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(map.get(key), Some(&(i as u64)));
        }
        COMPARISONS.with(std::cell::Cell::get)
    }

    #[test]
    fn keys_that_collide_in_the_stable_hash_keep_lookups_short() {
        let n = 2_000;
        let keys: Vec<CountingKey> = crate::keys::colliding_keys(n)
            .into_iter()
            .map(CountingKey)
            .collect();
        // With the stable hash as the map's hash, every lookup scans the keys
        // inserted before it (what hash flooding does to a fixed hash).
        let flooded = comparisons::<crate::keys::StableBuildHasher>(&keys);
        assert!(flooded > n * n / 4, "{flooded} comparisons");
        // The keyed state's map type: about one comparison per lookup.
        let seeded = comparisons::<crate::keys::KeyMapHasher>(&keys);
        assert!(seeded <= 2 * n, "{seeded} comparisons for {n} lookups");

        // And the table keeps them all, in one key group.
        let range = KeyGroupRange { start: 0, end: 1 };
        let mut table = HeapTable::<CountingKey, u64>::new(range);
        for (i, key) in keys.iter().enumerate() {
            table.put(0, key, i as u64);
        }
        COMPARISONS.with(|c| c.set(0));
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(table.get(0, key), Some(&(i as u64)));
        }
        let lookups = COMPARISONS.with(std::cell::Cell::get);
        assert!(lookups <= 2 * n, "{lookups} comparisons for {n} lookups");
    }

    #[test]
    fn corrupt_bytes_name_the_state_and_group() {
        let mut table = HeapTable::<String, u64>::new(KeyGroupRange { start: 0, end: 1 });
        let err = table.restore_group("count", 0, b"\xc1garbage").unwrap_err();
        assert!(
            err.to_string().contains("state `count` of key group 0"),
            "{err}"
        );
    }
}

//! The heap state backend: keyed state as typed values in memory.
//!
//! Each state is a [`HeapTable`]: one hash map per key group, each behind an
//! `Arc`. Taking a snapshot clones the `Arc`s, not the maps, so its synchronous
//! part costs one pointer copy per key group whatever the state's size. A
//! write to a key group whose map a snapshot still shares copies that one map
//! first (copy-on-write, `Arc::make_mut`), so the processing path pays for a
//! snapshot a key group at a time, and only for the groups it touches while
//! the snapshot is being written. Serialisation works on the snapshot's `Arc`s,
//! off the processing path.

use std::sync::Arc;

use super::error::StateError;
use super::{Key, StateBackend, StateData};
use crate::keys::{KeyGroupRange, KeyMap};

/// The default state backend: typed values in memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeapStateBackend;

impl StateBackend for HeapStateBackend {
    fn name(&self) -> &'static str {
        "heap"
    }
}

/// One keyed state of one subtask: a map per owned key group.
pub struct HeapTable<K, S> {
    start: usize,
    groups: Vec<Arc<KeyMap<K, S>>>,
}

impl<K: Key, S: StateData> HeapTable<K, S> {
    /// An empty table over the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        HeapTable {
            start: range.start,
            groups: (0..range.len()).map(|_| Arc::default()).collect(),
        }
    }

    #[inline]
    fn map(&self, group: usize) -> &KeyMap<K, S> {
        &self.groups[group - self.start]
    }

    #[inline]
    fn map_mut(&mut self, group: usize) -> &mut KeyMap<K, S> {
        Arc::make_mut(&mut self.groups[group - self.start])
    }

    /// The value of `key` (in key group `group`).
    #[inline]
    pub fn get(&self, group: usize, key: &K) -> Option<&S> {
        self.map(group).get(key)
    }

    /// The value of `key`, for change in place.
    #[inline]
    pub fn get_mut(&mut self, group: usize, key: &K) -> Option<&mut S> {
        self.map_mut(group).get_mut(key)
    }

    /// Sets the value of `key`.
    #[inline]
    pub fn put(&mut self, group: usize, key: &K, value: S) {
        let map = self.map_mut(group);
        if let Some(slot) = map.get_mut(key) {
            *slot = value;
            return;
        }
        map.insert(key.clone(), value);
    }

    /// Removes and returns the value of `key`.
    #[inline]
    pub fn take(&mut self, group: usize, key: &K) -> Option<S> {
        self.map_mut(group).remove(key)
    }

    /// Removes the value of `key`.
    #[inline]
    pub fn remove(&mut self, group: usize, key: &K) {
        self.map_mut(group).remove(key);
    }

    /// Every key with a value.
    pub fn keys(&self) -> Vec<K> {
        self.groups.iter().flat_map(|m| m.keys().cloned()).collect()
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|m| m.len()).sum()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous part of a snapshot: shares every key group's map.
    pub fn snapshot(&self) -> HeapTableSnapshot<K, S> {
        HeapTableSnapshot {
            start: self.start,
            groups: self.groups.clone(),
        }
    }

    /// Adds the entries of one serialised key group (from [`HeapTableSnapshot::write_group`]).
    pub fn restore_group(
        &mut self,
        name: &str,
        group: usize,
        bytes: &[u8],
    ) -> Result<(), StateError> {
        let entries: Vec<(K, S)> =
            rmp_serde::from_slice(bytes).map_err(|e| StateError::Corrupt {
                name: name.to_string(),
                group,
                cause: e.to_string(),
            })?;
        let map = self.map_mut(group);
        map.extend(entries);
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
        let map = &self.groups[group - self.start];
        if map.is_empty() {
            return Ok(None);
        }
        let entries: Vec<(&K, &S)> = map.iter().collect();
        rmp_serde::to_vec_named(&entries)
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
        assert_eq!(table.len(), 1);
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

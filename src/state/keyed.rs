//! The keyed state store of one operator subtask: its tables by name, the key
//! groups it owns, snapshots and restores.
//!
//! Tables are created on first use of a descriptor (name, kind and type must
//! then match every later use). Restored state waits as bytes until its
//! descriptor is first used, because only the descriptor knows the value type;
//! a snapshot taken before that carries the bytes on unchanged, so no state is
//! lost for not having been touched.

use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::descriptor::StateDescriptor;
use super::error::StateError;
use super::heap::{HeapTable, HeapTableSnapshot};
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
}

impl KeyedStateSnapshot {
    /// Serialises the snapshot: for each key group with state, its states' bytes.
    pub fn serialize(&self) -> Result<BTreeMap<usize, Vec<StateBytes>>, StateError> {
        let mut groups = self.pending.clone();
        for group in self.range.start..self.range.end {
            for (name, kind, type_name, table) in &self.tables {
                if let Some(entries) = table.write_group(name, group)? {
                    groups.entry(group).or_default().push(StateBytes {
                        name: name.clone(),
                        kind: *kind,
                        type_name: type_name.to_string(),
                        entries,
                    });
                }
            }
        }
        Ok(groups)
    }
}

fn next_store_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// All keyed state of one operator subtask.
pub struct KeyedStateStore<K> {
    id: u64,
    range: KeyGroupRange,
    tables: Vec<Table<K>>,
    /// Restored bytes of states no descriptor has opened yet, by key group.
    pending: BTreeMap<usize, Vec<StateBytes>>,
}

impl<K: Key> KeyedStateStore<K> {
    /// An empty store for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        KeyedStateStore {
            id: next_store_id(),
            range,
            tables: Vec::new(),
            pending: BTreeMap::new(),
        }
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

    fn resolve<D: StateDescriptor>(&mut self, descriptor: &D) -> Result<usize, StateError> {
        if let Some((store, index)) = descriptor.slot().get() {
            if store == self.id {
                return Ok(index);
            }
        }
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

    fn table<S: StateData>(&mut self, index: usize) -> Result<&mut HeapTable<K, S>, StateError> {
        let t = &mut self.tables[index];
        let (name, declared) = (&t.name, t.type_name);
        t.table
            .downcast_mut::<HeapTable<K, S>>()
            .ok_or_else(|| StateError::Mismatch {
                name: name.clone(),
                declared: declared.to_string(),
                requested: std::any::type_name::<S>().to_string(),
            })
    }

    /// Opens `descriptor`'s state for `key` (in key group `group`).
    pub fn open<'a, D: StateDescriptor>(
        &'a mut self,
        descriptor: &'a D,
        key: &'a K,
        group: usize,
    ) -> Result<D::Ref<'a, K>, StateError> {
        let index = self.resolve(descriptor)?;
        Ok(descriptor.open(self.table::<D::Stored>(index)?, key, group))
    }

    /// The keys that have a value in `descriptor`'s state.
    pub fn keys<D: StateDescriptor>(&mut self, descriptor: &D) -> Result<Vec<K>, StateError> {
        let index = self.resolve(descriptor)?;
        let t = &self.tables[index];
        Ok(t.ops.keys(t.table.as_ref()))
    }

    /// Number of (state, key) entries, over all states.
    pub fn entries(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.ops.len(t.table.as_ref()))
            .sum()
    }

    /// The synchronous part of a snapshot: shares the tables' key-group maps.
    pub fn snapshot(&mut self) -> KeyedStateSnapshot {
        KeyedStateSnapshot {
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
        }
    }

    /// Adds serialised state for the key groups of this store, before any state
    /// is opened; groups outside the store are skipped (a restore at another
    /// parallelism offers every subtask all it may need).
    pub fn restore(&mut self, groups: &BTreeMap<usize, Vec<StateBytes>>) -> Result<(), StateError> {
        if !self.tables.is_empty() {
            return Err(StateError::RestoreAfterUse);
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
        store.snapshot().serialize().unwrap()
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
}

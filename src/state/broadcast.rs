//! Broadcast state: maps that are the same on every subtask of an operator,
//! written only by the broadcast side of a connected stream.
//!
//! Rules (or patterns, or configuration) arrive on a broadcast stream, every
//! subtask sees every one of them, and the broadcast side stores them in
//! broadcast state with full access ([`BroadcastState`]). The other side may
//! only read it ([`ReadOnlyBroadcastState`] has no method that writes), which
//! is what keeps the state identical everywhere: a keyed side that could write
//! would make subtasks diverge.
//!
//! ```compile_fail
//! # use weir::state::{MapStateDescriptor, ReadOnlyBroadcastState};
//! fn keyed_side(rules: &mut ReadOnlyBroadcastState<String, u32>) {
//!     rules.put("limit".to_string(), 5); // no such method: the keyed side reads only
//! }
//! ```

use crate::runtime::codec;
use std::any::Any;
use std::collections::BTreeMap;

use super::descriptor::{MapStateDescriptor, StateDescriptor};
use super::error::StateError;
use super::schema::{self, decode_schemas, encode_schemas, RecordedState, Scope};
use super::{Key, StateData, StateKind};

/// A snapshot of the broadcast states: their bytes by name, and the `meta`
/// entries of their schemas.
pub(crate) type BroadcastSnapshot = (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>);
use crate::keys::{stable_hash, KeyMap};

trait ErasedMap: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn encode(&self, name: &str) -> Result<Vec<u8>, StateError>;
}

impl<K: Key, V: StateData> ErasedMap for KeyMap<K, V> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn encode(&self, name: &str) -> Result<Vec<u8>, StateError> {
        // In stable-hash order, not the seeded map's: the same bytes in every process.
        let mut entries: Vec<(&K, &V)> = self.iter().collect();
        entries.sort_by_cached_key(|(key, _)| stable_hash(*key));
        codec::encode(&entries).map_err(|e| StateError::Encode {
            name: name.to_string(),
            cause: e.to_string(),
        })
    }
}

/// The broadcast states of one operator subtask.
#[derive(Default)]
pub struct BroadcastStateStore {
    maps: BTreeMap<String, (&'static str, Box<dyn ErasedMap>)>,
    /// Restored bytes of states not opened yet.
    pending: BTreeMap<String, Vec<u8>>,
    /// Each state's schema: as restored until a descriptor opens it (then
    /// its restored entries are judged, and migrated if need be), then the
    /// descriptor's.
    schemas: BTreeMap<String, RecordedState>,
}

impl BroadcastStateStore {
    /// Takes the restored `states` and the schemas `meta` recorded (an
    /// entry that does not decode is an error naming the state).
    pub(crate) fn restore(
        &mut self,
        states: BTreeMap<String, Vec<u8>>,
        meta: &BTreeMap<String, Vec<u8>>,
    ) -> Result<(), StateError> {
        self.pending = states;
        self.schemas = decode_schemas(Scope::Broadcast, meta).map_err(StateError::Backend)?;
        Ok(())
    }

    /// The states' bytes, and the `meta` entries of their schemas.
    pub(crate) fn snapshot(&self) -> Result<BroadcastSnapshot, StateError> {
        let mut out = self.pending.clone();
        for (name, (_, map)) in &self.maps {
            out.insert(name.clone(), map.encode(name)?);
        }
        let meta =
            encode_schemas(Scope::Broadcast, &self.schemas).map_err(|e| StateError::Encode {
                name: "the broadcast states' schemas".into(),
                cause: e.to_string(),
            })?;
        Ok((out, meta))
    }

    /// The restored entries of `descriptor`'s state, judged against the
    /// schema they were recorded with and migrated if need be (`None`:
    /// none restored); records the descriptor's schema.
    fn restored_entries<K: Key, V: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let name = descriptor.name();
        let declared = schema::declared_checked(descriptor)?;
        // The restored bytes stay pending until they were judged and
        // migrated: after an error the next snapshot still holds them.
        let mut bytes = self.pending.get(name).cloned();
        if let (Some(recorded), Some(entries)) = (self.schemas.get(name), bytes.as_mut()) {
            let (_, migrations) = schema::judge(&recorded.schema, &declared)
                .map_err(|problem| StateError::schema(name, problem.to_string()))?;
            if !migrations.is_empty() {
                // `[(key, value), ...]`, as a value state's entries.
                *entries =
                    schema::rewrite::canonical_entries(StateKind::Value, entries, false, &|v| {
                        schema::migrate_value(&migrations, v)
                    })
                    .map_err(|e| StateError::schema(name, format!("migrating its entries: {e}")))?;
            }
        }
        self.pending.remove(name);
        self.schemas.insert(
            name.to_string(),
            RecordedState {
                kind: StateKind::Map,
                schema: declared.schema,
            },
        );
        Ok(bytes)
    }

    fn map<K: Key, V: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<&mut KeyMap<K, V>, StateError> {
        super::operator_state::no_ttl(descriptor, "broadcast")?;
        let name = descriptor.name();
        let type_name = std::any::type_name::<KeyMap<K, V>>();
        if !self.maps.contains_key(name) {
            let mut map: KeyMap<K, V> = KeyMap::default();
            if let Some(bytes) = self.restored_entries(descriptor)? {
                let entries: Vec<(K, V)> =
                    codec::decode(&bytes).map_err(|e| StateError::Corrupt {
                        name: name.to_string(),
                        group: 0,
                        cause: e.to_string(),
                    })?;
                map.extend(entries);
            }
            self.maps
                .insert(name.to_string(), (type_name, Box::new(map)));
        }
        let mismatch = |declared: &str| StateError::Mismatch {
            name: name.to_string(),
            declared: format!("broadcast Map<{declared}>"),
            requested: format!("broadcast Map<{type_name}>"),
        };
        match self.maps.get_mut(name) {
            Some((declared, map)) => {
                let declared = *declared;
                map.as_any_mut()
                    .downcast_mut::<KeyMap<K, V>>()
                    .ok_or_else(|| mismatch(declared))
            }
            None => Err(mismatch("?")),
        }
    }

    /// Opens `descriptor`'s broadcast state with full access.
    pub fn state<'a, K: Key, V: StateData>(
        &'a mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<BroadcastState<'a, K, V>, StateError> {
        Ok(BroadcastState {
            map: self.map(descriptor)?,
        })
    }

    /// Opens `descriptor`'s broadcast state for reading only.
    pub fn read_only<'a, K: Key, V: StateData>(
        &'a mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> Result<ReadOnlyBroadcastState<'a, K, V>, StateError> {
        Ok(ReadOnlyBroadcastState {
            map: self.map(descriptor)?,
        })
    }
}

/// A broadcast state with full access (the broadcast side).
pub struct BroadcastState<'a, K, V> {
    map: &'a mut KeyMap<K, V>,
}

impl<K: Key, V: StateData> BroadcastState<'_, K, V> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets the value under `key`.
    pub fn put(&mut self, key: K, value: V) {
        self.map.insert(key, value);
    }

    /// Removes the value under `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// A broadcast state that can only be read (the non-broadcast side).
pub struct ReadOnlyBroadcastState<'a, K, V> {
    map: &'a KeyMap<K, V>,
}

impl<K: Key, V: StateData> ReadOnlyBroadcastState<'_, K, V> {
    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_state_survives_a_snapshot_and_checks_its_type() {
        let rules = MapStateDescriptor::<String, u32>::new("rules");
        let mut store = BroadcastStateStore::default();
        store.state(&rules).unwrap().put("limit".into(), 5);
        let (bytes, meta) = store.snapshot().unwrap();

        let mut restored = BroadcastStateStore::default();
        restored.restore(bytes, &meta).unwrap();
        assert_eq!(
            restored.read_only(&rules).unwrap().get(&"limit".into()),
            Some(&5)
        );
        let wrong = MapStateDescriptor::<String, String>::new("rules");
        assert!(matches!(
            restored.read_only(&wrong),
            Err(StateError::Mismatch { .. })
        ));
    }

    #[test]
    fn restored_broadcast_state_is_judged_by_its_schema_and_migrated() {
        let rules = MapStateDescriptor::<String, u32>::new("rules");
        let mut store = BroadcastStateStore::default();
        store.state(&rules).unwrap().put("limit".into(), 5);
        let (bytes, meta) = store.snapshot().unwrap();

        // A type that does not read it: refused, and the state kept.
        let mut restored = BroadcastStateStore::default();
        restored.restore(bytes.clone(), &meta).unwrap();
        let wrong = MapStateDescriptor::<String, String>::new("rules");
        let Err(err) = restored.read_only(&wrong) else {
            panic!("a state of another type was read")
        };
        assert!(
            err.to_string().contains("the value: u32 -> String"),
            "{err}"
        );
        assert_eq!(restored.snapshot().unwrap().0, bytes);

        // Migrated to a newer version.
        let migrated = MapStateDescriptor::<String, String>::new("rules")
            .version(2)
            .migrate_from::<u32>(1, |n| format!("at most {n}"));
        let mut restored = BroadcastStateStore::default();
        restored.restore(bytes, &meta).unwrap();
        assert_eq!(
            restored.read_only(&migrated).unwrap().get(&"limit".into()),
            Some(&"at most 5".to_string())
        );
        let (_, meta) = restored.snapshot().unwrap();
        let recorded = decode_schemas(Scope::Broadcast, &meta).unwrap();
        assert_eq!(recorded["rules"].schema.version, 2);
    }
}

//! Keys migrated to another type at a restore (`KeyedStream::migrate_keys_from`):
//! every key of the snapshot's keyed state (its states' entries and its
//! timers) is decoded as the old key type, mapped one-to-one to the new one
//! and re-hashed to its key group; a subtask keeps the keys of its own key
//! groups. Two old keys that map to one new key are an error listing them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::key_group_format::{read_key_group, Timer, TimerKind};
use super::ttl::skip_value;
use super::{Key, StateBytes, StateError};
use crate::keys::{key_group, KeyGroupRange};
use crate::runtime::codec;

type MigrateKey<K> = Arc<dyn Fn(&[u8]) -> Result<K, String> + Send + Sync>;

/// A one-to-one migration of keys from an older key type to `K`.
pub struct KeyMigration<K> {
    pub(crate) from: &'static str,
    migrate: MigrateKey<K>,
}

impl<K> Clone for KeyMigration<K> {
    fn clone(&self) -> Self {
        KeyMigration {
            from: self.from,
            migrate: self.migrate.clone(),
        }
    }
}

impl<K: Key> KeyMigration<K> {
    /// Keys that were `Old`s become `migrate(old)`.
    pub fn new<Old: DeserializeOwned + 'static>(
        migrate: impl Fn(Old) -> K + Send + Sync + 'static,
    ) -> Self {
        KeyMigration {
            from: std::any::type_name::<Old>(),
            migrate: Arc::new(move |bytes: &[u8]| {
                let old: Old = codec::decode(bytes).map_err(|e| e.to_string())?;
                Ok(migrate(old))
            }),
        }
    }
}

/// A subtask's share of keyed state whose keys were migrated.
pub(crate) struct Regrouped<K> {
    /// Per key group of the subtask, its states' entries.
    pub(crate) states: BTreeMap<usize, Vec<StateBytes>>,
    /// The timers of the subtask's keys.
    pub(crate) timers: Vec<Timer<K>>,
    /// The watermarks the key groups were written at.
    pub(crate) watermarks: Vec<i64>,
}

/// An encoded key and its encoded value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// A timer's kind code, timestamp and encoded key.
type TimerRow<'a> = (u8, i64, &'a [u8]);

/// The (key, value) pairs of a state's canonical entries, as slices.
fn pairs(entries: &[u8]) -> Result<Vec<Pair<'_>>, String> {
    let mut rd = entries;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut pos = entries.len() - rd.len();
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let mut rd = &entries[pos..];
        let len = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if len != 2 {
            return Err(format!("an entry is an array of {len}, not a pair"));
        }
        let key_start = entries.len() - rd.len();
        let key_end = skip_value(entries, key_start)?;
        let end = skip_value(entries, key_end)?;
        out.push((&entries[key_start..key_end], &entries[key_end..end]));
        pos = end;
    }
    Ok(out)
}

/// The (kind, timestamp, key) rows of a key group's timers.
fn timer_rows(bytes: &[u8]) -> Result<Vec<TimerRow<'_>>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut rd = bytes;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if len != 3 {
            return Err(format!("a timer is an array of {len}, not three"));
        }
        let kind: u8 = rmp::decode::read_int(&mut rd).map_err(|e| e.to_string())?;
        let timestamp: i64 = rmp::decode::read_int(&mut rd).map_err(|e| e.to_string())?;
        let start = bytes.len() - rd.len();
        let end = skip_value(bytes, start)?;
        out.push((kind, timestamp, &bytes[start..end]));
        rd = &bytes[end..];
    }
    Ok(out)
}

/// The keyed state of `groups` (every key group of the snapshot, written
/// under the old key type) with its keys migrated, for the subtask that
/// owns `range`.
pub(crate) fn regroup<K: Key>(
    groups: &BTreeMap<usize, Vec<u8>>,
    range: KeyGroupRange,
    max_parallelism: usize,
    migration: &KeyMigration<K>,
) -> Result<Regrouped<K>, StateError> {
    let corrupt = |group: usize, name: &str, cause: String| StateError::Corrupt {
        name: name.to_string(),
        group,
        cause,
    };
    let migrate = |group: usize, name: &str, old: &[u8]| {
        (migration.migrate)(old).map_err(|e| {
            StateError::schema(
                name,
                format!(
                    "the key {} of key group {group} does not migrate from {}: {e}",
                    crate::inspect::msgpack_as_json(old),
                    migration.from
                ),
            )
        })
    };
    // Per state, per new key group: (kind, type, ttl, pairs).
    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
    let mut by_state: BTreeMap<String, (StateBytes, BTreeMap<usize, Pairs>)> = BTreeMap::new();
    // Per state: new key bytes -> the old key it came from.
    let mut seen: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    let mut collisions = Vec::new();
    let mut out = Regrouped {
        states: BTreeMap::new(),
        timers: Vec::new(),
        watermarks: Vec::new(),
    };
    for (&group, bytes) in groups {
        let state =
            read_key_group(bytes).map_err(|e| corrupt(group, "keyed state", e.to_string()))?;
        out.watermarks.extend(state.watermark);
        for bytes in state.states {
            let name = bytes.name.clone();
            let entries = pairs(&bytes.entries).map_err(|e| corrupt(group, &name, e))?;
            let (_, targets) = by_state.entry(name.clone()).or_insert_with(|| {
                let template = StateBytes {
                    entries: Vec::new(),
                    ..bytes.clone()
                };
                (template, BTreeMap::new())
            });
            let seen = seen.entry(name.clone()).or_default();
            for (old_key, value) in entries {
                let key = migrate(group, &name, old_key)?;
                let new_key =
                    codec::encode(&key).map_err(|e| corrupt(group, &name, e.to_string()))?;
                if let Some(other) = seen.insert(new_key.clone(), old_key.to_vec()) {
                    collisions.push(format!(
                        "{} and {} -> {} (state `{name}`)",
                        crate::inspect::msgpack_as_json(&other),
                        crate::inspect::msgpack_as_json(old_key),
                        crate::inspect::msgpack_as_json(&new_key),
                    ));
                    continue;
                }
                let target = key_group(&key, max_parallelism);
                if range.contains(target) {
                    targets
                        .entry(target)
                        .or_default()
                        .push((new_key, value.to_vec()));
                }
            }
        }
        let rows = timer_rows(&state.timers).map_err(|e| corrupt(group, "timers", e))?;
        for (kind, timestamp, old_key) in rows {
            let key = migrate(group, "timers", old_key)?;
            if range.contains(key_group(&key, max_parallelism)) {
                let kind = match kind {
                    0 => TimerKind::EventTime,
                    _ => TimerKind::ProcessingTime,
                };
                out.timers.push(Timer {
                    kind,
                    timestamp,
                    key,
                });
            }
        }
    }
    if !collisions.is_empty() {
        collisions.truncate(20);
        return Err(StateError::schema(
            "keys",
            format!(
                "the key migration from {} is not one-to-one: {}",
                migration.from,
                collisions.join("; ")
            ),
        ));
    }
    for (template, targets) in by_state.into_values() {
        for (group, pairs) in targets {
            let mut entries = Vec::new();
            // Writing to a Vec cannot fail.
            let _ = rmp::encode::write_array_len(&mut entries, pairs.len() as u32);
            for (key, value) in pairs {
                let _ = rmp::encode::write_array_len(&mut entries, 2);
                entries.extend_from_slice(&key);
                entries.extend_from_slice(&value);
            }
            out.states.entry(group).or_default().push(StateBytes {
                entries,
                ..template.clone()
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::key_group_format::encode_key_group;
    use crate::state::StateKind;

    const MAX: usize = 8;

    /// Key groups of `u32` keys with a value state of `key * 10` and an
    /// event-time timer at `key` each.
    fn old_groups(keys: &[u32]) -> BTreeMap<usize, Vec<u8>> {
        let mut by_group: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
        for &k in keys {
            by_group.entry(key_group(&k, MAX)).or_default().push(k);
        }
        by_group
            .into_iter()
            .map(|(group, keys)| {
                let entries: Vec<(u32, u64)> =
                    keys.iter().map(|&k| (k, u64::from(k) * 10)).collect();
                let states = vec![StateBytes {
                    name: "n".into(),
                    kind: StateKind::Value,
                    type_name: "u64".into(),
                    entries: codec::encode(&entries).unwrap(),
                    ttl: None,
                }];
                let timers: Vec<Timer<u32>> = keys
                    .iter()
                    .map(|&k| Timer {
                        kind: TimerKind::EventTime,
                        timestamp: i64::from(k),
                        key: k,
                    })
                    .collect();
                (group, encode_key_group(states, &timers, Some(3)).unwrap())
            })
            .collect()
    }

    #[test]
    fn migrated_keys_land_in_their_new_key_groups_with_their_values_and_timers() {
        let groups = old_groups(&[1, 2, 3, 40, 500]);
        let migration = KeyMigration::new(|k: u32| format!("user-{k}"));
        let mut seen = BTreeMap::new();
        for subtask in 0..3 {
            let range = KeyGroupRange::of_subtask(subtask, MAX, 3);
            let out = regroup(&groups, range, MAX, &migration).unwrap();
            assert_eq!(out.watermarks.iter().min(), Some(&3));
            for (group, states) in out.states {
                assert!(range.contains(group));
                let entries: Vec<(String, u64)> = codec::decode(&states[0].entries).unwrap();
                for (key, value) in entries {
                    assert_eq!(key_group(&key, MAX), group);
                    seen.insert(key, value);
                }
            }
            for timer in out.timers {
                assert!(range.contains(key_group(&timer.key, MAX)));
                assert_eq!(format!("user-{}", timer.timestamp), timer.key);
            }
        }
        let expected: BTreeMap<String, u64> = [1u64, 2, 3, 40, 500]
            .iter()
            .map(|&k| (format!("user-{k}"), k * 10))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn two_keys_that_become_one_are_an_error_naming_them() {
        let groups = old_groups(&[1, 11, 2]);
        let migration = KeyMigration::new(|k: u32| k % 10);
        let range = KeyGroupRange::of_subtask(0, MAX, 1);
        let err = regroup(&groups, range, MAX, &migration)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not one-to-one"), "{err}");
        assert!(
            err.contains("1 and 11 -> 1") || err.contains("11 and 1 -> 1"),
            "{err}"
        );
        // Keys that do not decode as the old type.
        let migration = KeyMigration::new(|k: String| k.len() as u32);
        let err = regroup(&groups, range, MAX, &migration)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("does not migrate from alloc::string::String"),
            "{err}"
        );
    }
}

//! How the RocksDB backend lays out keyed state as bytes, and how that
//! converts to and from the canonical (heap) format of a key group.
//!
//! A data key is `key group (2 bytes, big-endian) | name length (1 byte) |
//! state name | msgpack(key)`, and for map state `| msgpack(user key)`. The key
//! group comes first, so a key-group range is one contiguous key range (read,
//! deleted or ingested as a range). msgpack is self-delimiting, so no encoded
//! key is a prefix of another and a key's map entries are exactly the keys
//! that start with its prefix.
//!
//! Values are msgpack (rmp-serde, named fields) of the stored value; a list
//! is the concatenation of its elements' encodings (appending is a RocksDB
//! merge, no read-modify-write); a map entry's value is the user value.
//!
//! State registrations (name -> kind and type) live under the key
//! `0xFFFF | name`, outside every key-group range; the TTL settings of a
//! state with a time to live under `0xFFFF 0x00 | name`.
//!
//! The canonical format of one state in one key group is what the heap backend
//! writes: `msgpack([(key, value), ...])`, with a list as a msgpack array and a
//! map as a msgpack map. Since rmp-serde encodes a value the same way wherever
//! it is nested, the conversion splices raw bytes and needs no value types:
//! that is what lets a savepoint move between the backends, and a snapshot of
//! a state that was restored but never opened carry it on unchanged.

use super::super::keyed::StateKind;

/// The first two bytes of a registration key.
pub(crate) const META_PREFIX: [u8; 2] = [0xff, 0xff];

/// The first bytes of the key under which a state's TTL settings are kept
/// (`0xFFFF 0x00 | name`: among the registrations, which skip it; no state
/// name starts with a NUL byte).
pub(crate) const TTL_META_PREFIX: [u8; 3] = [0xff, 0xff, 0x00];

/// The prefix of `name`'s data in key group `group`.
pub(crate) fn data_prefix(out: &mut Vec<u8>, group: usize, name: &[u8]) {
    out.clear();
    append_data_prefix(out, group, name);
}

/// Appends the prefix of `name`'s data in key group `group` to `out`.
pub(crate) fn append_data_prefix(out: &mut Vec<u8>, group: usize, name: &[u8]) {
    out.extend_from_slice(&group_start(group));
    out.push(name.len() as u8);
    out.extend_from_slice(name);
}

/// Bytes of the key group at the start of every data key.
pub(crate) const GROUP_BYTES: usize = 2;

/// The memtable's hash prefix of a database key (the prefix extractor's
/// transform): a data key's *state key*, `key group | name length | state
/// name | msgpack(key)` (without a map entry's user key), so that one key's
/// values and map entries share a hash bucket; the first two bytes of a
/// registration key, and of a seek target shorter than a state key (which
/// [`has_hash_prefix`] tells apart).
///
/// It keeps order (`a <= b` gives `hash_prefix(a) <= hash_prefix(b)` for
/// stored keys, since msgpack keys are self-delimiting) and is idempotent,
/// as RocksDB requires of a prefix extractor.
pub(crate) fn hash_prefix(key: &[u8]) -> &[u8] {
    match state_key_len(key) {
        Some(len) => &key[..len],
        None => &key[..key.len().min(GROUP_BYTES)],
    }
}

/// Whether `key` is a whole data key (or starts with one), or a
/// registration key: the prefix extractor's domain. A shorter seek target
/// (`key group | state name`: a state's keys in one group) is not, and must
/// be read in total order: its keys lie in many hash buckets.
pub(crate) fn has_hash_prefix(key: &[u8]) -> bool {
    key.starts_with(&META_PREFIX) || state_key_len(key).is_some()
}

/// The length of `key`'s state key, if it is a data key long enough to hold one.
fn state_key_len(key: &[u8]) -> Option<usize> {
    if key.len() <= GROUP_BYTES || key.starts_with(&META_PREFIX) {
        return None;
    }
    let key_start = GROUP_BYTES + 1 + usize::from(key[GROUP_BYTES]);
    skip_value(key, key_start).ok()
}

/// The first key of key group `group` (`group` may be one past the last).
pub(crate) fn group_start(group: usize) -> [u8; GROUP_BYTES] {
    (group as u16).to_be_bytes()
}

/// The registration key of state `name`.
pub(crate) fn meta_key(name: &str) -> Vec<u8> {
    let mut key = META_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

/// The smallest key greater than every key that starts with `prefix`
/// (`None`: no such key, the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The end (exclusive) of the msgpack value starting at `bytes[pos]`.
pub(crate) use crate::state::ttl::skip_value;

/// Number of msgpack values in `bytes` (a list state's value).
pub(crate) fn count_values(bytes: &[u8]) -> Result<u32, String> {
    let (mut pos, mut n) = (0, 0u32);
    while pos < bytes.len() {
        pos = skip_value(bytes, pos)?;
        n += 1;
    }
    Ok(n)
}

fn write_array_len(out: &mut Vec<u8>, n: u32) {
    // Writing to a Vec cannot fail.
    let _ = rmp::encode::write_array_len(out, n);
}

fn write_map_len(out: &mut Vec<u8>, n: u32) {
    let _ = rmp::encode::write_map_len(out, n);
}

/// Builds the canonical bytes of one state in one key group from its entries
/// in key order (`suffix` = the data key after the prefix, `value` = as stored).
pub(crate) struct CanonicalWriter {
    kind: StateKind,
    body: Vec<u8>,
    entries: u32,
    /// Map state: the key whose entries are being collected, and them.
    map_key: Vec<u8>,
    map_body: Vec<u8>,
    map_entries: u32,
}

impl CanonicalWriter {
    pub(crate) fn new(kind: StateKind) -> Self {
        CanonicalWriter {
            kind,
            body: Vec::new(),
            entries: 0,
            map_key: Vec::new(),
            map_body: Vec::new(),
            map_entries: 0,
        }
    }

    pub(crate) fn add(&mut self, suffix: &[u8], value: &[u8]) -> Result<(), String> {
        match self.kind {
            StateKind::Map => {
                let split = skip_value(suffix, 0)?;
                let (key, user_key) = suffix.split_at(split);
                if key != self.map_key.as_slice() {
                    self.finish_map();
                    self.map_key = key.to_vec();
                }
                self.map_body.extend_from_slice(user_key);
                self.map_body.extend_from_slice(value);
                self.map_entries += 1;
            }
            StateKind::List => {
                if value.is_empty() {
                    return Ok(());
                }
                write_array_len(&mut self.body, 2);
                self.body.extend_from_slice(suffix);
                write_array_len(&mut self.body, count_values(value)?);
                self.body.extend_from_slice(value);
                self.entries += 1;
            }
            _ => {
                write_array_len(&mut self.body, 2);
                self.body.extend_from_slice(suffix);
                self.body.extend_from_slice(value);
                self.entries += 1;
            }
        }
        Ok(())
    }

    fn finish_map(&mut self) {
        if self.map_entries > 0 {
            write_array_len(&mut self.body, 2);
            self.body.extend_from_slice(&self.map_key);
            write_map_len(&mut self.body, self.map_entries);
            self.body.append(&mut self.map_body);
            self.entries += 1;
        }
        self.map_entries = 0;
        self.map_body.clear();
    }

    /// The canonical bytes; `None` if there was no entry.
    pub(crate) fn finish(mut self) -> Option<Vec<u8>> {
        self.finish_map();
        if self.entries == 0 {
            return None;
        }
        let mut out = Vec::with_capacity(self.body.len() + 5);
        write_array_len(&mut out, self.entries);
        out.extend_from_slice(&self.body);
        Some(out)
    }
}

/// The (key suffix, value) pairs to store for canonical bytes of `kind`.
pub(crate) fn read_canonical(
    kind: StateKind,
    bytes: &[u8],
    mut put: impl FnMut(&[u8], &[u8]),
) -> Result<(), String> {
    let mut rd = bytes;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut pos = bytes.len() - rd.len();
    let mut suffix = Vec::new();
    for _ in 0..n {
        let mut rd = &bytes[pos..];
        let pair = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if pair != 2 {
            return Err(format!("an entry is an array of {pair}, not a pair"));
        }
        pos = bytes.len() - rd.len();
        let key_end = skip_value(bytes, pos)?;
        let key = &bytes[pos..key_end];
        let value_end = skip_value(bytes, key_end)?;
        let value = &bytes[key_end..value_end];
        match kind {
            StateKind::List => {
                let mut rd = value;
                rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
                if !rd.is_empty() {
                    put(key, rd);
                }
            }
            StateKind::Map => {
                let mut rd = value;
                let m = rmp::decode::read_map_len(&mut rd).map_err(|e| e.to_string())?;
                let mut p = value.len() - rd.len();
                for _ in 0..m {
                    let uk_end = skip_value(value, p)?;
                    let uv_end = skip_value(value, uk_end)?;
                    suffix.clear();
                    suffix.extend_from_slice(key);
                    suffix.extend_from_slice(&value[p..uk_end]);
                    put(&suffix, &value[uk_end..uv_end]);
                    p = uv_end;
                }
            }
            _ => put(key, value),
        }
        pos = value_end;
    }
    if pos != bytes.len() {
        return Err(format!("{} bytes after the last entry", bytes.len() - pos));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyMap;
    use crate::runtime::codec;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Rich {
        name: String,
        values: Vec<f64>,
        tag: Option<(i64, u8)>,
        bytes: Vec<u8>,
    }

    fn named<T: Serialize>(v: &T) -> Vec<u8> {
        codec::encode(v).unwrap()
    }

    fn data_key(group: usize, name: &str, key: &impl Serialize, user_key: Option<&str>) -> Vec<u8> {
        let mut out = Vec::new();
        data_prefix(&mut out, group, name.as_bytes());
        codec::encode_into(&mut out, key).unwrap();
        if let Some(user_key) = user_key {
            codec::encode_into(&mut out, &user_key).unwrap();
        }
        out
    }

    #[test]
    fn the_hash_prefix_is_the_state_key() {
        let state_key = data_key(7, "count", &"user-42", None);
        assert_eq!(hash_prefix(&state_key), &state_key[..]);
        // A map entry's user key is not part of it: a key's entries share a bucket.
        let entry = data_key(7, "count", &"user-42", Some("field"));
        assert_eq!(hash_prefix(&entry), &state_key[..]);
        assert!(has_hash_prefix(&state_key) && has_hash_prefix(&entry));
        // Idempotent.
        assert_eq!(hash_prefix(hash_prefix(&entry)), &state_key[..]);
        // A state's keys in one group span many buckets: not in the domain.
        let mut group_scan = Vec::new();
        data_prefix(&mut group_scan, 7, b"count");
        assert!(!has_hash_prefix(&group_scan));
        assert_eq!(hash_prefix(&group_scan), &group_start(7)[..]);
        // Registrations and TTL settings: one bucket.
        assert_eq!(hash_prefix(&meta_key("count")), &META_PREFIX[..]);
        assert!(has_hash_prefix(&meta_key("count")));
        assert_eq!(hash_prefix(&[]), &[] as &[u8]);
    }

    #[test]
    fn the_hash_prefix_keeps_the_order_of_keys() {
        let mut keys = vec![meta_key("a"), meta_key("count")];
        for group in [0, 1, 300] {
            for name in ["a", "count", "counts"] {
                for key in [0u64, 1, 127, 128, 255, 256, 70_000, u64::MAX] {
                    keys.push(data_key(group, name, &key, None));
                    keys.push(data_key(group, name, &key, Some("x")));
                    keys.push(data_key(group, name, &key, Some("y")));
                }
                for key in ["", "a", "ab", "b"] {
                    keys.push(data_key(group, name, &key, None));
                }
            }
        }
        keys.sort();
        for pair in keys.windows(2) {
            assert!(
                hash_prefix(&pair[0]) <= hash_prefix(&pair[1]),
                "{:?} before {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn skip_value_finds_the_end_of_every_kind_of_value() {
        let rich = Rich {
            name: "x".repeat(40),
            values: vec![1.5, -2.0],
            tag: Some((-70_000, 3)),
            bytes: vec![1; 300],
        };
        for bytes in [
            named(&rich),
            named(&u64::MAX),
            named(&-1i8),
            named(&"é".repeat(70_000)),
            named(&vec![rich.clone(); 20]),
            named(&KeyMap::from_iter([
                (1u32, "a".to_string()),
                (2, "b".into()),
            ])),
            named(&()),
        ] {
            assert_eq!(skip_value(&bytes, 0), Ok(bytes.len()));
            assert!(skip_value(&bytes[..bytes.len() - 1], 0).is_err());
        }
    }

    #[test]
    fn canonical_bytes_round_trip_through_stored_entries() {
        // Value state.
        let entries = vec![(7u64, "seven".to_string()), (9u64, "nine".to_string())];
        let canonical = named(&entries);
        let mut stored = Vec::new();
        read_canonical(StateKind::Value, &canonical, |k, v| {
            stored.push((k.to_vec(), v.to_vec()))
        })
        .unwrap();
        let mut writer = CanonicalWriter::new(StateKind::Value);
        for (k, v) in &stored {
            writer.add(k, v).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), canonical);

        // List state: stored as the concatenated elements.
        let lists = vec![("a".to_string(), vec![1u32, 2, 3])];
        let canonical = named(&lists);
        let mut stored = Vec::new();
        read_canonical(StateKind::List, &canonical, |k, v| {
            stored.push((k.to_vec(), v.to_vec()))
        })
        .unwrap();
        assert_eq!(
            stored[0].1,
            [named(&1u32), named(&2u32), named(&3u32)].concat()
        );
        let mut writer = CanonicalWriter::new(StateKind::List);
        writer.add(&stored[0].0, &stored[0].1).unwrap();
        assert_eq!(writer.finish().unwrap(), canonical);

        // Map state: one stored entry per user key, grouped again by key.
        let m1: KeyMap<String, u8> = KeyMap::from_iter([("x".to_string(), 1)]);
        let m2: KeyMap<String, u8> = KeyMap::from_iter([("y".to_string(), 2)]);
        let maps = vec![(&1u16, &m1), (&2u16, &m2)];
        let canonical = named(&maps);
        let mut stored = Vec::new();
        read_canonical(StateKind::Map, &canonical, |k, v| {
            stored.push((k.to_vec(), v.to_vec()))
        })
        .unwrap();
        assert_eq!(stored.len(), 2);
        let mut writer = CanonicalWriter::new(StateKind::Map);
        for (k, v) in &stored {
            writer.add(k, v).unwrap();
        }
        let back: Vec<(u16, KeyMap<String, u8>)> =
            codec::decode(&writer.finish().unwrap()).unwrap();
        assert_eq!(back, vec![(1, m1), (2, m2)]);
    }

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}

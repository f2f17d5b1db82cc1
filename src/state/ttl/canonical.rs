//! Expired entries left out of a state's canonical bytes (one key group,
//! `msgpack([(key, value), ...])` as a snapshot writes them) without the
//! state's types: for heap state restored with a time to live that no
//! descriptor has opened yet, which a full snapshot carries on as bytes.
//!
//! A value with its expiry is the pair `[expiry, value]`
//! ([`Expiring`](super::Expiring)); a list is an array of such pairs, a map
//! a map of user keys to them.

use crate::state::StateKind;

use super::is_expired;

/// The end (exclusive) of the msgpack value starting at `bytes[pos]`.
pub(crate) fn skip_value(bytes: &[u8], mut pos: usize) -> Result<usize, String> {
    let truncated = || "truncated msgpack value".to_string();
    let mut remaining: u64 = 1;
    while remaining > 0 {
        remaining -= 1;
        let marker = *bytes.get(pos).ok_or_else(truncated)?;
        pos += 1;
        let len = |n: usize, pos: usize| -> Result<u64, String> {
            let b = bytes.get(pos..pos + n).ok_or_else(truncated)?;
            Ok(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
        };
        let (skip, children): (u64, u64) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + len(1, pos)?, 0),
            0xc5 | 0xda => (2 + len(2, pos)?, 0),
            0xc6 | 0xdb => (4 + len(4, pos)?, 0),
            0xc7 => (2 + len(1, pos)?, 0),
            0xc8 => (3 + len(2, pos)?, 0),
            0xc9 => (5 + len(4, pos)?, 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, len(2, pos)?),
            0xdd => (4, len(4, pos)?),
            0xde => (2, 2 * len(2, pos)?),
            0xdf => (4, 2 * len(4, pos)?),
            0xc1 => return Err("invalid msgpack marker 0xc1".into()),
        };
        pos = pos
            .checked_add(usize::try_from(skip).map_err(|_| truncated())?)
            .filter(|&p| p <= bytes.len())
            .ok_or_else(truncated)?;
        remaining += children;
    }
    Ok(pos)
}

/// The expiry of a value stored with one (`[expiry, value]`).
fn expiry(bytes: &[u8]) -> Result<i64, String> {
    let mut rd = bytes;
    let len = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    if len != 2 {
        return Err(format!(
            "a value with an expiry is a pair, not an array of {len}"
        ));
    }
    rmp::decode::read_int(&mut rd).map_err(|e| e.to_string())
}

/// `bytes`' values from `pos` on, `n` of them, as slices.
fn values(bytes: &[u8], mut pos: usize, n: u32) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let end = skip_value(bytes, pos)?;
        out.push(&bytes[pos..end]);
        pos = end;
    }
    Ok(out)
}

/// The canonical bytes of a state of `kind` with a time to live without
/// what expired at `now` (`None`: nothing is left).
pub(crate) fn unexpired_entries(
    kind: StateKind,
    bytes: &[u8],
    now: i64,
) -> Result<Option<Vec<u8>>, String> {
    let mut rd = bytes;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(bytes.len());
    let mut kept = 0u32;
    let mut body = Vec::with_capacity(bytes.len());
    for entry in values(bytes, bytes.len() - rd.len(), n)? {
        let mut rd = entry;
        let pair = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if pair != 2 {
            return Err(format!("an entry is an array of {pair}, not a pair"));
        }
        let start = entry.len() - rd.len();
        let [key, value] = values(entry, start, 2)?[..] else {
            unreachable!("two values")
        };
        let live = |v: &[u8]| expiry(v).map(|at| !is_expired(at, now));
        let value: Option<Vec<u8>> = match kind {
            StateKind::List => {
                let mut rd = value;
                let m = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
                let mut left = Vec::new();
                for element in values(value, value.len() - rd.len(), m)? {
                    if live(element)? {
                        left.push(element);
                    }
                }
                (!left.is_empty()).then(|| {
                    let mut v = Vec::new();
                    let _ = rmp::encode::write_array_len(&mut v, left.len() as u32);
                    left.iter().for_each(|e| v.extend_from_slice(e));
                    v
                })
            }
            StateKind::Map => {
                let mut rd = value;
                let m = rmp::decode::read_map_len(&mut rd).map_err(|e| e.to_string())?;
                let parts = values(value, value.len() - rd.len(), 2 * m)?;
                let mut left = Vec::new();
                for pair in parts.chunks(2) {
                    if live(pair[1])? {
                        left.push(pair);
                    }
                }
                (!left.is_empty()).then(|| {
                    let mut v = Vec::new();
                    let _ = rmp::encode::write_map_len(&mut v, left.len() as u32);
                    left.iter()
                        .flat_map(|p| p.iter())
                        .for_each(|e| v.extend_from_slice(e));
                    v
                })
            }
            _ => live(value)?.then(|| value.to_vec()),
        };
        if let Some(value) = value {
            kept += 1;
            let _ = rmp::encode::write_array_len(&mut body, 2);
            body.extend_from_slice(key);
            body.extend_from_slice(&value);
        }
    }
    if kept == 0 {
        return Ok(None);
    }
    let _ = rmp::encode::write_array_len(&mut out, kept);
    out.extend_from_slice(&body);
    Ok(Some(out))
}

/// Entries of a state with a time to live, as [`count_by_expiry`] counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExpiryCounts {
    /// Entries not expired (all of them when no time was given).
    pub live: u64,
    /// Entries expired at the time given.
    pub expired: u64,
}

/// Counts the entries of a state of `kind` with a time to live in its
/// canonical bytes (one key group): each value, list element and map entry
/// is one entry, expired once its expiry is `<= now`. Without a `now` (the
/// time is not known) every entry counts as live. Reads only the expiries:
/// no value type is needed.
pub(crate) fn count_by_expiry(
    kind: StateKind,
    bytes: &[u8],
    now: Option<i64>,
) -> Result<ExpiryCounts, String> {
    let mut counts = ExpiryCounts::default();
    let mut count = |v: &[u8]| -> Result<(), String> {
        let at = expiry(v)?;
        if now.is_some_and(|now| is_expired(at, now)) {
            counts.expired += 1;
        } else {
            counts.live += 1;
        }
        Ok(())
    };
    let mut rd = bytes;
    let n = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    let mut pos = bytes.len() - rd.len();
    for _ in 0..n {
        let end = skip_value(bytes, pos)?;
        let entry = &bytes[pos..end];
        pos = end;
        let mut rd = entry;
        let pair = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
        if pair != 2 {
            return Err(format!("an entry is an array of {pair}, not a pair"));
        }
        let key_end = skip_value(entry, entry.len() - rd.len())?;
        let value = &entry[key_end..];
        match kind {
            StateKind::List => {
                let mut rd = value;
                let m = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
                for element in values(value, value.len() - rd.len(), m)? {
                    count(element)?;
                }
            }
            StateKind::Map => {
                let mut rd = value;
                let m = rmp::decode::read_map_len(&mut rd).map_err(|e| e.to_string())?;
                let parts = values(value, value.len() - rd.len(), 2 * m)?;
                for pair in parts.chunks(2) {
                    count(pair[1])?;
                }
            }
            _ => count(value)?,
        }
    }
    if pos != bytes.len() {
        return Err(format!("{} bytes after the last entry", bytes.len() - pos));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyMap;
    use crate::runtime::codec;
    use crate::state::ttl::Expiring;

    #[test]
    fn expired_entries_leave_canonical_bytes_of_every_kind() {
        let values = vec![(1u32, Expiring(10, 'a')), (2, Expiring(30, 'b'))];
        let bytes = codec::encode(&values).unwrap();
        let left = unexpired_entries(StateKind::Value, &bytes, 10)
            .unwrap()
            .unwrap();
        let left: Vec<(u32, Expiring<char>)> = codec::decode(&left).unwrap();
        assert_eq!(left, vec![(2, Expiring(30, 'b'))]);
        assert_eq!(
            unexpired_entries(StateKind::Value, &bytes, 30).unwrap(),
            None
        );

        let lists = vec![(
            1u32,
            vec![Expiring(10, 'a'), Expiring(30, 'b'), Expiring(5, 'c')],
        )];
        let bytes = codec::encode(&lists).unwrap();
        let left = unexpired_entries(StateKind::List, &bytes, 10)
            .unwrap()
            .unwrap();
        let left: Vec<(u32, Vec<Expiring<char>>)> = codec::decode(&left).unwrap();
        assert_eq!(left, vec![(1, vec![Expiring(30, 'b')])]);

        let mut map: KeyMap<String, Expiring<u8>> = KeyMap::default();
        map.insert("x".into(), Expiring(10, 1));
        map.insert("y".into(), Expiring(30, 2));
        let bytes = codec::encode(&vec![(7u64, map)]).unwrap();
        let left = unexpired_entries(StateKind::Map, &bytes, 10)
            .unwrap()
            .unwrap();
        let left: Vec<(u64, KeyMap<String, Expiring<u8>>)> = codec::decode(&left).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1.get("y"), Some(&Expiring(30, 2)));
        assert_eq!(left[0].1.len(), 1);
        assert!(unexpired_entries(StateKind::Map, b"\xc1", 0).is_err());
    }

    #[test]
    fn entries_are_counted_by_expiry_without_their_types() {
        let counts = |live, expired| ExpiryCounts { live, expired };
        let values = vec![
            (1u32, Expiring(10, "a".to_string())),
            (2, Expiring(30, "b".into())),
            (3, Expiring(i64::MAX, "c".into())),
        ];
        let bytes = codec::encode(&values).unwrap();
        assert_eq!(
            count_by_expiry(StateKind::Value, &bytes, Some(9)),
            Ok(counts(3, 0))
        );
        // Expired at exactly its expiry.
        assert_eq!(
            count_by_expiry(StateKind::Value, &bytes, Some(10)),
            Ok(counts(2, 1))
        );
        assert_eq!(
            count_by_expiry(StateKind::Reducing, &bytes, Some(i64::MAX - 1)),
            Ok(counts(1, 2))
        );
        // No time: everything is live.
        assert_eq!(
            count_by_expiry(StateKind::Value, &bytes, None),
            Ok(counts(3, 0))
        );

        // A list counts its elements, a map its entries, not the keys.
        let lists = vec![
            (
                1u32,
                vec![Expiring(10, 'a'), Expiring(30, 'b'), Expiring(5, 'c')],
            ),
            (2, vec![Expiring(40, 'd')]),
        ];
        let bytes = codec::encode(&lists).unwrap();
        assert_eq!(
            count_by_expiry(StateKind::List, &bytes, Some(10)),
            Ok(counts(2, 2))
        );
        let mut map: KeyMap<String, Expiring<Vec<u8>>> = KeyMap::default();
        map.insert("x".into(), Expiring(10, vec![1, 2]));
        map.insert("y".into(), Expiring(30, vec![]));
        map.insert("z".into(), Expiring(-4, vec![3]));
        let bytes = codec::encode(&vec![(7u64, map)]).unwrap();
        assert_eq!(
            count_by_expiry(StateKind::Map, &bytes, Some(10)),
            Ok(counts(1, 2))
        );
        assert_eq!(
            count_by_expiry(StateKind::Map, &bytes, None),
            Ok(counts(3, 0))
        );

        // Bytes that are not values with expiries are an error, not a count.
        let plain = codec::encode(&vec![(1u32, 5u64)]).unwrap();
        assert!(count_by_expiry(StateKind::Value, &plain, Some(0)).is_err());
        assert!(count_by_expiry(StateKind::List, b"\xc1", None).is_err());
        let mut trailing = codec::encode(&values).unwrap();
        trailing.push(0);
        assert!(count_by_expiry(StateKind::Value, &trailing, None).is_err());
        assert_eq!(
            count_by_expiry(
                StateKind::Map,
                &codec::encode(&Vec::<(u32, u32)>::new()).unwrap(),
                None
            ),
            Ok(counts(0, 0))
        );
    }
}

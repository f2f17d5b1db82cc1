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
}

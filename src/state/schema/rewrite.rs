//! Migrations applied to stored bytes, without the state's types: each
//! value (a list's element, a map's value, an aggregate's accumulator) is
//! found by walking the msgpack, passed through the migration steps, and
//! spliced back; expiries (a state with a time to live stores
//! `[expiry, value]`) and keys are kept as they are.
//!
//! Two layouts: the canonical one of a snapshot's key group,
//! `msgpack([(key, stored), ...])` with a list as an array and a map as a
//! map; and the RocksDB one, one stored value per data key, a list being
//! the concatenation of its elements.

use crate::state::ttl::skip_value;
use crate::state::StateKind;

/// Migrates one encoded value (the error says why it could not).
pub(crate) type MigrateValue<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, String> + 'a;

/// Rewrites one value (or `[expiry, value]` pair when `ttl`).
fn unit(
    bytes: &[u8],
    ttl: bool,
    migrate: &MigrateValue<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if !ttl {
        out.extend_from_slice(&migrate(bytes)?);
        return Ok(());
    }
    let mut rd = bytes;
    let len = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    if len != 2 {
        return Err(format!(
            "a value with an expiry is a pair, not an array of {len}"
        ));
    }
    let start = bytes.len() - rd.len();
    let expiry_end = skip_value(bytes, start)?;
    out.extend_from_slice(&bytes[..expiry_end]);
    out.extend_from_slice(&migrate(&bytes[expiry_end..])?);
    Ok(())
}

fn read_len(
    bytes: &[u8],
    pos: usize,
    read: fn(&mut &[u8]) -> Result<u32, rmp::decode::ValueReadError>,
) -> Result<(u32, usize), String> {
    let mut rd = &bytes[pos..];
    let n = read(&mut rd).map_err(|e| e.to_string())?;
    Ok((n, bytes.len() - rd.len()))
}

/// Rewrites a stored value of `kind` in the canonical layout: a list is an
/// array, a map a map.
fn canonical_value(
    kind: StateKind,
    bytes: &[u8],
    ttl: bool,
    migrate: &MigrateValue<'_>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match kind {
        StateKind::List => {
            let (n, mut pos) = read_len(bytes, 0, |rd| rmp::decode::read_array_len(rd))?;
            let _ = rmp::encode::write_array_len(out, n);
            for _ in 0..n {
                let end = skip_value(bytes, pos)?;
                unit(&bytes[pos..end], ttl, migrate, out)?;
                pos = end;
            }
        }
        StateKind::Map => {
            let (n, mut pos) = read_len(bytes, 0, |rd| rmp::decode::read_map_len(rd))?;
            let _ = rmp::encode::write_map_len(out, n);
            for _ in 0..n {
                let key_end = skip_value(bytes, pos)?;
                out.extend_from_slice(&bytes[pos..key_end]);
                let end = skip_value(bytes, key_end)?;
                unit(&bytes[key_end..end], ttl, migrate, out)?;
                pos = end;
            }
        }
        StateKind::Value | StateKind::Reducing | StateKind::Aggregating => {
            unit(bytes, ttl, migrate, out)?
        }
    }
    Ok(())
}

/// The canonical entries of one state in one key group,
/// `msgpack([(key, stored), ...])`, with every value migrated.
pub(crate) fn canonical_entries(
    kind: StateKind,
    entries: &[u8],
    ttl: bool,
    migrate: &MigrateValue<'_>,
) -> Result<Vec<u8>, String> {
    let (n, mut pos) = read_len(entries, 0, |rd| rmp::decode::read_array_len(rd))?;
    let mut out = Vec::with_capacity(entries.len());
    let _ = rmp::encode::write_array_len(&mut out, n);
    for _ in 0..n {
        let (pair, start) = read_len(entries, pos, |rd| rmp::decode::read_array_len(rd))?;
        if pair != 2 {
            return Err(format!("an entry is an array of {pair}, not a pair"));
        }
        let _ = rmp::encode::write_array_len(&mut out, 2);
        let key_end = skip_value(entries, start)?;
        out.extend_from_slice(&entries[start..key_end]);
        let end = skip_value(entries, key_end)?;
        canonical_value(kind, &entries[key_end..end], ttl, migrate, &mut out)?;
        pos = end;
    }
    Ok(out)
}

/// One RocksDB value of `kind` with every value migrated: a list's value
/// is the concatenation of its elements, a map entry's value and the other
/// kinds' values one value each.
#[cfg(feature = "rocksdb")]
pub(crate) fn rocksdb_value(
    kind: StateKind,
    value: &[u8],
    ttl: bool,
    migrate: &MigrateValue<'_>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(value.len());
    if kind == StateKind::List {
        let mut pos = 0;
        while pos < value.len() {
            let end = skip_value(value, pos)?;
            unit(&value[pos..end], ttl, migrate, &mut out)?;
            pos = end;
        }
    } else {
        unit(value, ttl, migrate, &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::codec;
    use std::collections::BTreeMap;

    fn double(bytes: &[u8]) -> Result<Vec<u8>, String> {
        let v: u32 = codec::decode(bytes).map_err(|e| e.to_string())?;
        codec::encode(&(u64::from(v) * 2, "x")).map_err(|e| e.to_string())
    }

    #[test]
    fn every_value_of_every_kind_is_migrated_and_keys_and_expiries_kept() {
        let values = codec::encode(&vec![("a", 1u32), ("b", 2)]).unwrap();
        let out = canonical_entries(StateKind::Value, &values, false, &double).unwrap();
        let read: Vec<(String, (u64, String))> = codec::decode(&out).unwrap();
        assert_eq!(
            read,
            vec![("a".into(), (2, "x".into())), ("b".into(), (4, "x".into()))]
        );

        let lists = codec::encode(&vec![(7u8, vec![(100i64, 1u32), (200, 3)])]).unwrap();
        let out = canonical_entries(StateKind::List, &lists, true, &double).unwrap();
        type Lists = Vec<(u8, Vec<(i64, (u64, String))>)>;
        let read: Lists = codec::decode(&out).unwrap();
        assert_eq!(
            read,
            vec![(7, vec![(100, (2, "x".into())), (200, (6, "x".into()))])]
        );

        let maps = codec::encode(&vec![(1u8, BTreeMap::from([("k", 5u32)]))]).unwrap();
        let out = canonical_entries(StateKind::Map, &maps, false, &double).unwrap();
        type Maps = Vec<(u8, BTreeMap<String, (u64, String)>)>;
        let read: Maps = codec::decode(&out).unwrap();
        assert_eq!(read[0].1["k"], (10, "x".into()));

        #[cfg(feature = "rocksdb")]
        {
            let mut list = codec::encode(&1u32).unwrap();
            list.extend(codec::encode(&2u32).unwrap());
            let out = rocksdb_value(StateKind::List, &list, false, &double).unwrap();
            let first_end = skip_value(&out, 0).unwrap();
            let first: (u64, String) = codec::decode(&out[..first_end]).unwrap();
            let second: (u64, String) = codec::decode(&out[first_end..]).unwrap();
            assert_eq!((first.0, second.0), (2, 4));
        }
        assert!(canonical_entries(StateKind::Value, &[0xc1], false, &double).is_err());
    }
}

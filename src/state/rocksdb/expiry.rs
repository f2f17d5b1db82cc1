//! Time to live in the RocksDB backend: values stored with their expiry
//! (`msgpack([expiry, value])`, see [`Expiring`](crate::state::ttl::Expiring)),
//! read here without their types, by the compaction filter that drops expired
//! values, by full snapshots that leave them out, by the cleanup timers and
//! the erasure sweep, and by the rewrite that adds or drops expiries when a
//! state's time to live is switched on or off across a restore.
//!
//! A list's value is the concatenation of its elements, each with its own
//! expiry; a map entry's value is one value with its expiry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rocksdb::compaction_filter::Decision;
use rocksdb::WriteBatch;

use super::db::RocksKeyedDb;
use super::format::{self, TTL_META_PREFIX};
use super::scan::GroupScan;
use crate::runtime::codec;
use crate::state::ttl::{is_expired, TtlConfig, TtlSettings, TtlTime};
use crate::state::{Key, StateError, StateKind, StateTime};

/// How a state's stored values change when it is opened with the time to
/// live switched on or off since they were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormChange {
    /// Switched on: every value gets this expiry.
    AddExpiry(i64),
    /// Switched off: expiries are dropped, and what had expired at this
    /// time (on the state's former clock) with them.
    DropExpiry(i64),
}

/// What the compaction filter knows of a state with a time to live.
struct FilteredState {
    kind: StateKind,
    time: TtlTime,
    /// How far its processing-time clock is behind (paused during downtime).
    offset: i64,
    /// Whether the compaction filter drops its expired values (its cleanup
    /// or the erasure sweep is on).
    filter: bool,
    removed: Arc<AtomicU64>,
}

/// The states with a time to live and the clocks, shared by a database and
/// its compaction filter (which runs on RocksDB's threads).
pub(crate) struct TtlShared {
    states: RwLock<HashMap<Vec<u8>, FilteredState>>,
    processing: AtomicI64,
    watermark: AtomicI64,
}

impl Default for TtlShared {
    fn default() -> Self {
        TtlShared {
            states: RwLock::new(HashMap::new()),
            processing: AtomicI64::new(0),
            watermark: AtomicI64::new(i64::MIN),
        }
    }
}

impl TtlShared {
    fn now(&self, time: TtlTime) -> i64 {
        match time {
            TtlTime::ProcessingTime => self.processing.load(Ordering::Relaxed),
            TtlTime::EventTime => self.watermark.load(Ordering::Relaxed),
        }
    }

    /// The compaction filter: drops a value of a state with a time to live
    /// once it expired (a list once all its elements did); keeps everything
    /// else, and whatever it cannot read.
    pub(crate) fn filter(&self, key: &[u8], value: &[u8]) -> Decision {
        let Some(name) = state_name(key) else {
            return Decision::Keep;
        };
        let states = self.states.read().unwrap_or_else(|p| p.into_inner());
        let Some(state) = states.get(name) else {
            return Decision::Keep;
        };
        if !state.filter {
            return Decision::Keep;
        }
        let now = match state.time {
            TtlTime::ProcessingTime => self.now(state.time).saturating_sub(state.offset),
            TtlTime::EventTime => self.now(state.time),
        };
        let expired = match state.kind {
            StateKind::List => list_parts(value)
                .map(|parts| !parts.is_empty() && parts.iter().all(|(at, _)| is_expired(*at, now))),
            _ => split_expiry(value).map(|(at, _)| is_expired(at, now)),
        };
        match expired {
            Ok(true) => {
                state.removed.fetch_add(1, Ordering::Relaxed);
                Decision::Remove
            }
            _ => Decision::Keep,
        }
    }
}

/// The state name of a data key (`None`: a registration or a short key).
fn state_name(key: &[u8]) -> Option<&[u8]> {
    if key.starts_with(&format::META_PREFIX) {
        return None;
    }
    let len = usize::from(*key.get(format::GROUP_BYTES)?);
    key.get(format::GROUP_BYTES + 1..format::GROUP_BYTES + 1 + len)
}

/// A value stored with its expiry: (expiry, the value's own bytes).
pub(crate) fn split_expiry(bytes: &[u8]) -> Result<(i64, &[u8]), String> {
    let mut rd = bytes;
    let len = rmp::decode::read_array_len(&mut rd).map_err(|e| e.to_string())?;
    if len != 2 {
        return Err(format!(
            "a value with an expiry is a pair, not an array of {len}"
        ));
    }
    let at: i64 = rmp::decode::read_int(&mut rd).map_err(|e| e.to_string())?;
    Ok((at, rd))
}

/// The elements of a list stored with expiries: (expiry, the element's
/// bytes, expiry included), in order.
pub(crate) fn list_parts(bytes: &[u8]) -> Result<Vec<(i64, &[u8])>, String> {
    let mut parts = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let end = format::skip_value(bytes, pos)?;
        let element = &bytes[pos..end];
        parts.push((split_expiry(element)?.0, element));
        pos = end;
    }
    Ok(parts)
}

/// Appends `value` with expiry `at` to `out`.
pub(crate) fn add_expiry(value: &[u8], at: i64, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = rmp::encode::write_array_len(out, 2);
    let _ = rmp::encode::write_sint(out, at);
    out.extend_from_slice(value);
}

/// A stored value of `kind` (with expiries) without what expired at `now`:
/// `None` if nothing is left, borrowed if nothing expired.
pub(crate) fn unexpired(
    kind: StateKind,
    value: &[u8],
    now: i64,
) -> Result<Option<Cow<'_, [u8]>>, String> {
    if kind != StateKind::List {
        let (at, _) = split_expiry(value)?;
        return Ok((!is_expired(at, now)).then_some(Cow::Borrowed(value)));
    }
    let parts = list_parts(value)?;
    let live: Vec<&[u8]> = parts
        .iter()
        .filter(|(at, _)| !is_expired(*at, now))
        .map(|(_, bytes)| *bytes)
        .collect();
    Ok(match live.len() {
        0 => None,
        n if n == parts.len() => Some(Cow::Borrowed(value)),
        _ => Some(Cow::Owned(live.concat())),
    })
}

/// A stored value of `kind` in the form `change` asks for (`None`: dropped).
fn change_form(
    kind: StateKind,
    value: &[u8],
    change: FormChange,
    now: i64,
) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(value.len() + 10);
    match (change, kind) {
        (FormChange::AddExpiry(at), StateKind::List) => {
            let mut pos = 0;
            while pos < value.len() {
                let end = format::skip_value(value, pos)?;
                add_expiry(&value[pos..end], at, &mut out);
                pos = end;
            }
        }
        (FormChange::AddExpiry(at), _) => add_expiry(value, at, &mut out),
        (FormChange::DropExpiry(_), StateKind::List) => {
            for (at, element) in list_parts(value)? {
                if !is_expired(at, now) {
                    out.extend_from_slice(split_expiry(element)?.1);
                }
            }
        }
        (FormChange::DropExpiry(_), _) => {
            let (at, inner) = split_expiry(value)?;
            if is_expired(at, now) {
                return Ok(None);
            }
            out.extend_from_slice(inner);
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The key of state `name`'s TTL settings.
fn ttl_meta_key(name: &str) -> Vec<u8> {
    let mut key = TTL_META_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

impl RocksKeyedDb {
    /// The clocks the compaction filter compares expiries with.
    pub(crate) fn set_time(&self, time: StateTime) {
        let shared = self.ttl_shared();
        shared.processing.store(time.processing, Ordering::Relaxed);
        shared.watermark.store(time.watermark, Ordering::Relaxed);
    }

    /// The time expiries on clock `time` are compared with.
    pub(crate) fn ttl_now(&self, time: TtlTime) -> i64 {
        self.ttl_shared().now(time)
    }

    /// The TTL settings stored for state `name` (from this run or a restore).
    pub(crate) fn stored_ttl(&self, name: &str) -> Result<Option<TtlSettings>, StateError> {
        let found = self
            .db()
            .get(ttl_meta_key(name))
            .map_err(|e| self.error(&format!("cannot read the TTL of state `{name}`"), e))?;
        found
            .map(|bytes| codec::decode(&bytes))
            .transpose()
            .map_err(|e| self.error(&format!("state `{name}` has unreadable TTL settings"), e))
    }

    /// Records state `name`'s time to live (or that it has none) and how far
    /// its clock is behind processing time: kept in the database for
    /// snapshots and later restores, and told to the compaction filter; the
    /// state's periodic compaction is applied.
    pub(crate) fn record_ttl(
        &self,
        name: &str,
        kind: StateKind,
        ttl: Option<(&TtlConfig, i64)>,
    ) -> Result<(), StateError> {
        let key = ttl_meta_key(name);
        let shared = self.ttl_shared();
        let mut states = shared.states.write().unwrap_or_else(|p| p.into_inner());
        let Some((config, offset)) = ttl else {
            states.remove(name.as_bytes());
            return self
                .db()
                .delete_opt(key, self.write_options())
                .map_err(|e| self.error(&format!("cannot write the TTL of state `{name}`"), e));
        };
        let settings = config.settings();
        let bytes = codec::encode(&settings).map_err(|e| StateError::Encode {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
        self.db()
            .put_opt(key, bytes, self.write_options())
            .map_err(|e| self.error(&format!("cannot write the TTL of state `{name}`"), e))?;
        // A zero period turns the periodic compaction off (as Flink's 0).
        // The option is the database's: the last state opened sets it.
        if let Some(periodic) = config.compaction_filter().filter(|p| !p.is_zero()) {
            let secs = periodic.as_secs().max(1).to_string();
            self.db()
                .set_options(&[("periodic_compaction_seconds", secs.as_str())])
                .map_err(|e| {
                    self.error(
                        &format!("cannot set the periodic compaction of state `{name}`"),
                        e,
                    )
                })?;
        }
        states.insert(
            name.as_bytes().to_vec(),
            FilteredState {
                kind,
                time: settings.time,
                offset,
                // The erasure sweep is a compaction that relies on the
                // filter, also when the filter cleanup itself is off.
                filter: config.compaction_filter().is_some() || config.erasure_bound().is_some(),
                removed: Arc::default(),
            },
        );
        Ok(())
    }

    /// Keeps the TTL settings a restored state was snapshotted with (until
    /// a descriptor opens it and records its own).
    pub(crate) fn restore_ttl_settings(
        &self,
        name: &str,
        settings: TtlSettings,
    ) -> Result<(), StateError> {
        let bytes = codec::encode(&settings).map_err(|e| StateError::Encode {
            name: name.to_string(),
            cause: e.to_string(),
        })?;
        self.db()
            .put_opt(ttl_meta_key(name), bytes, self.write_options())
            .map_err(|e| self.error(&format!("cannot write the TTL of state `{name}`"), e))
    }

    /// Expired values the compaction filter dropped from state `name`.
    pub(crate) fn expired_by_compaction(&self, name: &str) -> u64 {
        let states = self
            .ttl_shared()
            .states
            .read()
            .unwrap_or_else(|p| p.into_inner());
        states
            .get(name.as_bytes())
            .map_or(0, |s| s.removed.load(Ordering::Relaxed))
    }

    /// Rewrites every stored value of state `name` in the form `change` asks
    /// for (the time to live was switched on or off since they were written).
    pub(crate) fn change_form(
        &self,
        name: &str,
        kind: StateKind,
        change: FormChange,
    ) -> Result<(), StateError> {
        self.flush_cache()?;
        let now = match change {
            FormChange::DropExpiry(now) => now,
            FormChange::AddExpiry(_) => i64::MIN,
        };
        self.rewrite_values(name, |value| change_form(kind, value, change, now))
    }

    /// Every key of state `name` with its key group and earliest expiry.
    pub(crate) fn expiries<K: Key>(
        &self,
        name: &str,
        kind: StateKind,
    ) -> Result<Vec<(K, usize, i64)>, StateError> {
        self.flush_cache()?;
        let mut out: Vec<(K, usize, i64)> = Vec::new();
        let mut scan = self.group_scan();
        for group in self.range().start..self.range().end {
            scan.seek(group, name);
            let mut last: Option<(Vec<u8>, i64)> = None;
            while let Some((suffix, value)) = scan.entry() {
                let key_end = format::skip_value(suffix, 0).map_err(|e| corrupt(name, group, e))?;
                let key_bytes = &suffix[..key_end];
                let at = match kind {
                    StateKind::List => list_parts(value)
                        .map_err(|e| corrupt(name, group, e))?
                        .iter()
                        .map(|(at, _)| *at)
                        .min(),
                    _ => Some(split_expiry(value).map_err(|e| corrupt(name, group, e))?.0),
                };
                if let Some(at) = at {
                    match &mut last {
                        Some((k, earliest)) if k.as_slice() == key_bytes => {
                            *earliest = (*earliest).min(at)
                        }
                        _ => {
                            if let Some((k, earliest)) = last.take() {
                                let key: K = codec::decode(&k)
                                    .map_err(|e| corrupt(name, group, e.to_string()))?;
                                out.push((key, group, earliest));
                            }
                            last = Some((key_bytes.to_vec(), at));
                        }
                    }
                }
                scan.next();
            }
            scan.status()
                .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
            if let Some((k, earliest)) = last {
                let key: K = codec::decode(&k).map_err(|e| corrupt(name, group, e.to_string()))?;
                out.push((key, group, earliest));
            }
        }
        Ok(out)
    }

    /// Removes what of each key's value in state `name` expired at `now`
    /// (the keys whose cleanup timers fired, with their key groups): per key,
    /// how many values (list elements, map entries) and the earliest expiry
    /// left. One write-back of the entry cache and one write for them all.
    pub(crate) fn purge_keys<K: Key>(
        &self,
        name: &str,
        kind: StateKind,
        keys: &[(K, usize)],
        now: i64,
    ) -> Vec<(usize, Option<i64>)> {
        match self.try_purge_keys(name, kind, keys, now) {
            Ok(result) => result,
            Err(e) => {
                self.fail(e);
                vec![(0, None); keys.len()]
            }
        }
    }

    fn try_purge_keys<K: Key>(
        &self,
        name: &str,
        kind: StateKind,
        keys: &[(K, usize)],
        now: i64,
    ) -> Result<Vec<(usize, Option<i64>)>, StateError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.flush_cache()?;
        let mut batch = WriteBatch::default();
        // Data keys changed, with their new values (`None`: deleted).
        let mut changed: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
        let mut results = Vec::with_capacity(keys.len());
        let mut prefix = Vec::new();
        for (key, group) in keys {
            format::data_prefix(&mut prefix, *group, name.as_bytes());
            codec::encode_into(&mut prefix, key).map_err(|e| StateError::Corrupt {
                name: name.to_string(),
                group: *group,
                cause: e.to_string(),
            })?;
            results.push(self.purge_prefix(
                name,
                kind,
                *group,
                &prefix,
                now,
                &mut batch,
                &mut changed,
            )?);
        }
        if !batch.is_empty() {
            self.db()
                .write_opt(batch, self.write_options())
                .map_err(|e| self.error(&format!("cannot clean up state `{name}`"), e))?;
            // The entry cache (written back above) must not serve a removed
            // value again: its copies of the changed keys are replaced.
            let mut cache = self.cache();
            for (k, live) in &changed {
                if cache.contains(k) {
                    cache.insert(k, live.as_deref(), false);
                }
            }
        }
        Ok(results)
    }

    /// Removes what expired at `now` of the values under `prefix` (in key
    /// group `group` of state `name`) into `batch`, noting each changed data
    /// key with its new value in `changed`: how many values (list elements,
    /// map entries) and the earliest expiry left.
    #[allow(clippy::too_many_arguments)]
    fn purge_prefix(
        &self,
        name: &str,
        kind: StateKind,
        group: usize,
        prefix: &[u8],
        now: i64,
        batch: &mut WriteBatch,
        changed: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(usize, Option<i64>), StateError> {
        let mut purge = Purge::default();
        let mut iter = self.prefix_iter(prefix);
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            purge
                .entry(kind, key, value, now, batch, changed)
                .map_err(|cause| corrupt(name, group, cause))?;
            iter.next();
        }
        iter.status()
            .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
        Ok((purge.removed, purge.next))
    }

    /// The expired elements of list state `name` in key groups `groups`,
    /// removed (the compaction filter drops a list only when all its
    /// elements expired): how many. Part of the erasure sweep.
    pub(crate) fn erase_expired_elements(&self, name: &str, groups: &[usize], now: i64) -> usize {
        let mut removed = 0;
        let mut scan = self.group_scan();
        for &group in groups {
            match self.erase_expired_elements_in(&mut scan, name, group, now) {
                Ok(n) => removed += n,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
        }
        removed
    }

    /// [`erase_expired_elements`](Self::erase_expired_elements) in key group
    /// `group`, read through `scan`, written in one batch.
    fn erase_expired_elements_in(
        &self,
        scan: &mut GroupScan<'_>,
        name: &str,
        group: usize,
        now: i64,
    ) -> Result<usize, StateError> {
        let mut batch = WriteBatch::default();
        let mut changed = Vec::new();
        let mut purge = Purge::default();
        scan.seek(group, name);
        while let (Some((_, value)), Some(key)) = (scan.entry(), scan.key()) {
            purge
                .entry(StateKind::List, key, value, now, &mut batch, &mut changed)
                .map_err(|cause| corrupt(name, group, cause))?;
            scan.next();
        }
        scan.status()
            .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
        if !batch.is_empty() {
            self.db()
                .write_opt(batch, self.write_options())
                .map_err(|e| self.error(&format!("cannot clean up state `{name}`"), e))?;
        }
        Ok(purge.removed)
    }

    /// The erasure sweep of key groups `groups` (sorted): the entry cache is
    /// written back and emptied, the memtables flushed and the key ranges of
    /// those groups compacted, so that the compaction filter drops their
    /// expired values from disk and memory.
    pub(crate) fn erase_expired(&self, groups: &[usize]) {
        if let Err(e) = self.flush_cache() {
            return self.fail(e);
        }
        self.cache().clear();
        if let Err(e) = self.db().flush() {
            return self.fail(self.error("cannot flush the memtables", e));
        }
        // One compaction per run of consecutive groups.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &group in groups {
            match runs.last_mut() {
                Some((_, end)) if *end == group => *end = group + 1,
                _ => runs.push((group, group + 1)),
            }
        }
        for (start, end) in runs {
            self.db().compact_range(
                Some(&format::group_start(start)[..]),
                Some(&format::group_start(end)[..]),
            );
        }
    }
}

/// A stored entry of state `name` in key group `group` that does not decode.
fn corrupt(name: &str, group: usize, cause: String) -> StateError {
    StateError::Corrupt {
        name: name.to_string(),
        group,
        cause,
    }
}

/// What purging the expired values of stored entries found: how many
/// values (list elements, map entries) were removed, and the earliest
/// expiry left.
#[derive(Default)]
struct Purge {
    removed: usize,
    next: Option<i64>,
}

impl Purge {
    /// Removes what of the entry `key` -> `value` expired at `now` into
    /// `batch`, noting the changed key with its new value in `changed`.
    fn entry(
        &mut self,
        kind: StateKind,
        key: &[u8],
        value: &[u8],
        now: i64,
        batch: &mut WriteBatch,
        changed: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), String> {
        let parts: Vec<i64> = match kind {
            StateKind::List => list_parts(value)?.iter().map(|p| p.0).collect(),
            _ => vec![split_expiry(value)?.0],
        };
        let expired = parts.iter().filter(|at| is_expired(**at, now)).count();
        self.removed += expired;
        let left = parts
            .iter()
            .copied()
            .filter(|at| !is_expired(*at, now))
            .min();
        self.next = match (self.next, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if expired > 0 {
            let live = unexpired(kind, value, now)?;
            match &live {
                Some(live) => batch.put(key, live),
                None => batch.delete(key),
            }
            changed.push((key.to_vec(), live.map(|l| l.into_owned())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ttl::Expiring;

    fn enc<T: serde::Serialize>(value: &T) -> Vec<u8> {
        codec::encode(value).unwrap()
    }

    #[test]
    fn expiries_are_read_without_the_value_type() {
        let bytes = enc(&Expiring(1_700_000_000_000i64, "hello".to_string()));
        let (at, rest) = split_expiry(&bytes).unwrap();
        assert_eq!(at, 1_700_000_000_000);
        assert_eq!(rest, enc(&"hello".to_string()).as_slice());
        let mut added = Vec::new();
        add_expiry(&enc(&42u32), -5, &mut added);
        assert_eq!(
            codec::decode::<Expiring<u32>>(&added).unwrap(),
            Expiring(-5, 42)
        );
    }

    #[test]
    fn list_elements_expire_one_by_one() {
        let list = [
            enc(&Expiring(10, 1u8)),
            enc(&Expiring(30, 2u8)),
            enc(&Expiring(20, 3u8)),
        ]
        .concat();
        assert_eq!(list_parts(&list).unwrap().len(), 3);
        let live = unexpired(StateKind::List, &list, 20).unwrap().unwrap();
        assert_eq!(live.as_ref(), enc(&Expiring(30, 2u8)).as_slice());
        assert!(unexpired(StateKind::List, &list, 30).unwrap().is_none());
        assert!(matches!(
            unexpired(StateKind::List, &list, 0).unwrap(),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn forms_change_both_ways() {
        let plain = [enc(&1u8), enc(&2u8)].concat();
        let with = change_form(StateKind::List, &plain, FormChange::AddExpiry(50), 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            with,
            [enc(&Expiring(50, 1u8)), enc(&Expiring(50, 2u8))].concat()
        );
        let back = change_form(StateKind::List, &with, FormChange::DropExpiry(10), 10).unwrap();
        assert_eq!(back, Some(plain));
        assert_eq!(
            change_form(
                StateKind::Value,
                &enc(&Expiring(5, 1u8)),
                FormChange::DropExpiry(0),
                5
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn the_filter_drops_expired_values_of_filtered_states_only() {
        let shared = TtlShared::default();
        shared.processing.store(100, Ordering::Relaxed);
        let removed = Arc::new(AtomicU64::new(0));
        shared.states.write().unwrap().insert(
            b"seen".to_vec(),
            FilteredState {
                kind: StateKind::Value,
                time: TtlTime::ProcessingTime,
                offset: 0,
                filter: true,
                removed: removed.clone(),
            },
        );
        let mut key = Vec::new();
        format::data_prefix(&mut key, 3, b"seen");
        key.extend(enc(&7u64));
        assert!(matches!(
            shared.filter(&key, &enc(&Expiring(100, ()))),
            Decision::Remove
        ));
        assert!(matches!(
            shared.filter(&key, &enc(&Expiring(101, ()))),
            Decision::Keep
        ));
        let mut other = Vec::new();
        format::data_prefix(&mut other, 3, b"count");
        assert!(matches!(
            shared.filter(&other, &enc(&Expiring(1, ()))),
            Decision::Keep
        ));
        assert!(matches!(
            shared.filter(&format::meta_key("seen"), b"x"),
            Decision::Keep
        ));
        assert_eq!(removed.load(Ordering::Relaxed), 1);
    }
}

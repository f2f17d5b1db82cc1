//! How an entry with a time to live is stored ([`Expiring`]), what the heap
//! tables of such entries can do without knowing the state's kind
//! ([`Expirable`]), and the time of one state access ([`TtlAccess`]).
//!
//! The one formula of expiry lives here: an entry whose expiry is `at` is
//! expired once `at <= now`, where `now` is the processing time or the
//! watermark, and `at = time of the write (or read) + ttl`.

use std::borrow::Cow;
use std::cell::Cell;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::keys::KeyMap;
use crate::state::{Key, StateData};

/// A value with its expiry (ms, on the state's clock): how a state with a
/// time to live stores each value, list element and map value. Encoded as the
/// pair `[expiry, value]`, so a backend can read the expiry without the
/// value's type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring<V>(pub i64, pub V);

/// Counts of expired entries removed, per way of removal (the subtask's TTL
/// metrics, per state).
#[derive(Debug, Default)]
pub(crate) struct ExpiredCounters {
    pub on_read: Cell<u64>,
    pub by_sweep: Cell<u64>,
    pub by_timer: Cell<u64>,
}

impl ExpiredCounters {
    pub(crate) fn add(cell: &Cell<u64>, n: usize) {
        cell.set(cell.get() + n as u64);
    }
}

/// The time of one access to a state with a time to live (internal).
#[derive(Clone, Copy)]
pub struct TtlAccess<'a> {
    /// The expiry of an entry written (or refreshed) by this access: the
    /// time it stamps entries with (record timestamp or now) plus the ttl.
    expiry: i64,
    /// The time expiries are compared with (processing time or watermark).
    now: i64,
    refresh_on_read: bool,
    return_expired: bool,
    counters: &'a ExpiredCounters,
}

impl<'a> TtlAccess<'a> {
    pub(crate) fn new(
        ttl_ms: i64,
        stamp: i64,
        now: i64,
        refresh_on_read: bool,
        return_expired: bool,
        counters: &'a ExpiredCounters,
    ) -> Self {
        TtlAccess {
            expiry: stamp.saturating_add(ttl_ms),
            now,
            refresh_on_read,
            return_expired,
            counters,
        }
    }

    /// The expiry of an entry written (or refreshed) by this access.
    #[inline]
    pub(crate) fn expiry(&self) -> i64 {
        self.expiry
    }

    /// Whether an entry that expires at `at` has expired.
    #[inline]
    pub(crate) fn expired(&self, at: i64) -> bool {
        is_expired(at, self.now)
    }

    /// Whether a read restarts the entry's clock.
    #[inline]
    pub(crate) fn refresh_on_read(&self) -> bool {
        self.refresh_on_read
    }

    /// Whether an expired entry that is read is still returned.
    #[inline]
    pub(crate) fn return_expired(&self) -> bool {
        self.return_expired
    }

    /// Notes `n` expired entries removed by a read.
    pub(crate) fn removed_on_read(&self, n: usize) {
        ExpiredCounters::add(&self.counters.on_read, n);
    }

    /// Wraps `value` with this access's expiry.
    #[inline]
    pub(crate) fn wrap<V>(&self, value: V) -> Expiring<V> {
        Expiring(self.expiry(), value)
    }
}

/// Whether an entry that expires at `at` has expired at `now`.
#[inline]
pub(crate) fn is_expired(at: i64, now: i64) -> bool {
    at <= now
}

/// What the heap can do with a stored value of a state with a time to live,
/// whatever its kind: one value, a list of values or a map, each part with
/// its own expiry.
pub trait Expirable: StateData {
    /// Removes the expired parts at `now`; returns how many, and whether
    /// nothing is left.
    fn purge(&mut self, now: i64) -> (usize, bool);
    /// The value without its expired parts (`None`: nothing left), borrowed
    /// when nothing has expired.
    fn unexpired(&self, now: i64) -> Option<Cow<'_, Self>>;
    /// The earliest expiry of its parts.
    fn earliest_expiry(&self) -> Option<i64>;
    /// (live, expired) parts at `now`.
    fn count_parts(&self, now: i64) -> (usize, usize);
}

impl<V: StateData> Expirable for Expiring<V> {
    fn purge(&mut self, now: i64) -> (usize, bool) {
        if is_expired(self.0, now) {
            (1, true)
        } else {
            (0, false)
        }
    }
    fn unexpired(&self, now: i64) -> Option<Cow<'_, Self>> {
        (!is_expired(self.0, now)).then_some(Cow::Borrowed(self))
    }
    fn earliest_expiry(&self) -> Option<i64> {
        Some(self.0)
    }
    fn count_parts(&self, now: i64) -> (usize, usize) {
        match is_expired(self.0, now) {
            true => (0, 1),
            false => (1, 0),
        }
    }
}

impl<V: StateData> Expirable for Vec<Expiring<V>> {
    fn purge(&mut self, now: i64) -> (usize, bool) {
        let before = self.len();
        self.retain(|e| !is_expired(e.0, now));
        (before - self.len(), self.is_empty())
    }
    fn unexpired(&self, now: i64) -> Option<Cow<'_, Self>> {
        let live = self.iter().filter(|e| !is_expired(e.0, now)).count();
        match live {
            0 => None,
            n if n == self.len() => Some(Cow::Borrowed(self)),
            _ => Some(Cow::Owned(
                self.iter()
                    .filter(|e| !is_expired(e.0, now))
                    .cloned()
                    .collect(),
            )),
        }
    }
    fn earliest_expiry(&self) -> Option<i64> {
        self.iter().map(|e| e.0).min()
    }
    fn count_parts(&self, now: i64) -> (usize, usize) {
        let expired = self.iter().filter(|e| is_expired(e.0, now)).count();
        (self.len() - expired, expired)
    }
}

impl<UK: Key + Hash, UV: StateData> Expirable for KeyMap<UK, Expiring<UV>> {
    fn purge(&mut self, now: i64) -> (usize, bool) {
        let before = self.len();
        self.retain(|_, e| !is_expired(e.0, now));
        (before - self.len(), self.is_empty())
    }
    fn unexpired(&self, now: i64) -> Option<Cow<'_, Self>> {
        let live = self.values().filter(|e| !is_expired(e.0, now)).count();
        match live {
            0 => None,
            n if n == self.len() => Some(Cow::Borrowed(self)),
            _ => Some(Cow::Owned(
                self.iter()
                    .filter(|(_, e)| !is_expired(e.0, now))
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect(),
            )),
        }
    }
    fn earliest_expiry(&self) -> Option<i64> {
        self.values().map(|e| e.0).min()
    }
    fn count_parts(&self, now: i64) -> (usize, usize) {
        let expired = self.values().filter(|e| is_expired(e.0, now)).count();
        (self.len() - expired, expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_expires_when_its_expiry_is_reached() {
        assert!(!is_expired(100, 99));
        assert!(is_expired(100, 100));
        let counters = ExpiredCounters::default();
        let access = TtlAccess::new(10, 90, 95, false, false, &counters);
        assert_eq!(access.expiry(), 100);
        assert!(!access.expired(96));
        assert!(access.expired(95));
        let far = TtlAccess::new(i64::MAX, 5, 0, false, false, &counters);
        assert_eq!(far.expiry(), i64::MAX, "saturates");
    }

    #[test]
    fn lists_and_maps_expire_per_element_and_keep_order() {
        let mut list = vec![Expiring(5, 'a'), Expiring(20, 'b'), Expiring(7, 'c')];
        let live = list.unexpired(6).unwrap();
        assert_eq!(*live, vec![Expiring(20, 'b'), Expiring(7, 'c')]);
        assert!(matches!(list.unexpired(1), Some(Cow::Borrowed(_))));
        assert!(list.unexpired(20).is_none());
        assert_eq!(list.earliest_expiry(), Some(5));
        assert_eq!(list.purge(7), (2, false));
        assert_eq!(list, vec![Expiring(20, 'b')]);

        let mut map: KeyMap<u8, Expiring<u8>> = KeyMap::default();
        map.insert(1, Expiring(5, 10));
        map.insert(2, Expiring(9, 20));
        assert_eq!(map.unexpired(5).unwrap().len(), 1);
        assert_eq!(map.purge(9), (2, true));
    }
}

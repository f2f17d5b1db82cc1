//! Timers: keyed callbacks at an event time or a processing time.
//!
//! A timer is a (key, timestamp) pair, registered at most once: registering it
//! again does nothing, deleting it removes it. Timers fire in timestamp order,
//! timers with equal timestamps in the order they were registered, each with
//! its key in scope. Event-time timers fire when the watermark reaches their
//! timestamp, processing-time timers when the wall clock does.
//!
//! ```
//! use weir::state::timers::TimerQueue;
//! let mut timers = TimerQueue::default();
//! timers.register("b".to_string(), 20);
//! timers.register("a".to_string(), 10);
//! timers.register("a".to_string(), 10); // de-duplicated
//! assert_eq!(timers.pop_due(15), Some((10, "a".to_string())));
//! assert_eq!(timers.pop_due(15), None);
//! assert_eq!(timers.next_timestamp(), Some(20));
//! ```

use std::collections::{BTreeMap, VecDeque};

use super::Key;
use crate::keys::KeyMap;

/// The time a timer refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeDomain {
    /// Fires when the watermark reaches the timestamp.
    EventTime,
    /// Fires when the wall clock reaches the timestamp.
    ProcessingTime,
}

/// Timers of one time domain, in firing order, without duplicates.
///
/// Timers wait in one bucket per timestamp, in registration order: windows
/// and timeouts put many keys on few timestamps, and popping the front of a
/// bucket reads memory in order where a heap of 100 000 timers misses the
/// cache at every level (bench `window-count`). The live timers are a map
/// from (key, timestamp) to the sequence number of their registration; a
/// deleted timer stays in its bucket until it surfaces (or a compaction)
/// and is then skipped, as is an entry whose timer was deleted and
/// registered again (its sequence number differs).
pub struct TimerQueue<K> {
    buckets: BTreeMap<i64, VecDeque<(u64, K)>>,
    /// Entries in the buckets, deleted ones included.
    queued: usize,
    registered: KeyMap<(K, i64), u64>,
    next_sequence: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            buckets: BTreeMap::new(),
            queued: 0,
            registered: KeyMap::default(),
            next_sequence: 0,
        }
    }
}

impl<K: Key> TimerQueue<K> {
    /// Registers a timer for `key` at `timestamp` (no-op if it exists).
    #[inline]
    pub fn register(&mut self, key: K, timestamp: i64) {
        let std::collections::hash_map::Entry::Vacant(slot) =
            self.registered.entry((key.clone(), timestamp))
        else {
            return;
        };
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        slot.insert(sequence);
        self.buckets
            .entry(timestamp)
            .or_default()
            .push_back((sequence, key));
        self.queued += 1;
    }

    /// Deletes the timer for `key` at `timestamp`, if registered.
    ///
    /// Its bucket keeps the deleted entry until it surfaces, unless deleted
    /// entries come to outnumber live ones: then the buckets are rebuilt from
    /// the live timers, so a function that moves a timeout forward on every
    /// record holds memory for its live timers, not for every timer it ever set.
    pub fn delete(&mut self, key: &K, timestamp: i64) {
        if self.registered.remove(&(key.clone(), timestamp)).is_some()
            && self.queued > 2 * self.registered.len() + 64
        {
            self.compact();
        }
    }

    /// Whether the bucket entry `(sequence, key)` at `timestamp` is live.
    fn is_live(registered: &KeyMap<(K, i64), u64>, timestamp: i64, sequence: u64, key: &K) -> bool {
        registered.get(&(key.clone(), timestamp)) == Some(&sequence)
    }

    /// Rebuilds the buckets from the live timers (amortised: runs after at
    /// least as many deletions as there are live timers).
    #[cold]
    fn compact(&mut self) {
        let registered = &self.registered;
        self.buckets.retain(|timestamp, bucket| {
            bucket.retain(|(sequence, key)| Self::is_live(registered, *timestamp, *sequence, key));
            !bucket.is_empty()
        });
        self.queued = self.buckets.values().map(VecDeque::len).sum();
    }

    /// Entries in the buckets, deleted ones included (for tests of its bound).
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.queued
    }

    /// The earliest registered timestamp.
    pub fn next_timestamp(&mut self) -> Option<i64> {
        loop {
            let mut first = self.buckets.first_entry()?;
            let timestamp = *first.key();
            let bucket = first.get_mut();
            while let Some((sequence, key)) = bucket.front() {
                if Self::is_live(&self.registered, timestamp, *sequence, key) {
                    return Some(timestamp);
                }
                bucket.pop_front();
                self.queued -= 1;
            }
            first.remove();
        }
    }

    /// The earliest timestamp in the queue without tidying it: may be that of a
    /// deleted timer (then a wake-up finds nothing due), never later than the
    /// earliest live timer.
    pub fn peek_timestamp(&self) -> Option<i64> {
        self.buckets.keys().next().copied()
    }

    /// Removes and returns the next timer at or before `time`.
    #[inline]
    pub fn pop_due(&mut self, time: i64) -> Option<(i64, K)> {
        loop {
            let mut first = self.buckets.first_entry()?;
            let timestamp = *first.key();
            if timestamp > time {
                return None;
            }
            let bucket = first.get_mut();
            let Some((sequence, key)) = bucket.pop_front() else {
                first.remove();
                continue;
            };
            if bucket.is_empty() {
                first.remove();
            }
            self.queued -= 1;
            match self.registered.remove_entry(&(key, timestamp)) {
                Some(((key, _), live)) if live == sequence => return Some((timestamp, key)),
                // Deleted and registered again: the live entry is later.
                Some((timer, live)) => {
                    self.registered.insert(timer, live);
                }
                None => {}
            }
        }
    }

    /// Number of registered timers.
    pub fn len(&self) -> usize {
        self.registered.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.registered.is_empty()
    }

    /// Every registered timer, in firing order.
    pub fn to_vec(&self) -> Vec<(i64, K)> {
        self.buckets
            .iter()
            .flat_map(|(timestamp, bucket)| {
                bucket
                    .iter()
                    .filter(|(sequence, key)| {
                        Self::is_live(&self.registered, *timestamp, *sequence, key)
                    })
                    .map(|(_, key)| (*timestamp, key.clone()))
            })
            .collect()
    }
}

/// The event-time and processing-time timers of one keyed operator subtask.
pub struct TimerService<K> {
    /// Timers on event time.
    pub event_time: TimerQueue<K>,
    /// Timers on processing time.
    pub processing_time: TimerQueue<K>,
}

impl<K> Default for TimerService<K> {
    fn default() -> Self {
        TimerService {
            event_time: TimerQueue::default(),
            processing_time: TimerQueue::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_a_timeout_on_every_record_keeps_the_queue_bounded() {
        let mut timers = TimerQueue::default();
        for now in 0..10_000_i64 {
            timers.delete(&"k".to_string(), now + 999);
            timers.register("k".to_string(), now + 1000);
        }
        assert_eq!(timers.len(), 1);
        assert!(
            timers.heap_len() <= 2 * timers.len() + 65,
            "{}",
            timers.heap_len()
        );
        assert_eq!(timers.pop_due(i64::MAX), Some((10_999, "k".to_string())));
        assert_eq!(timers.pop_due(i64::MAX), None);
    }

    #[test]
    fn timers_fire_in_timestamp_then_registration_order() {
        let mut q = TimerQueue::default();
        q.register(3u32, 30);
        q.register(1, 10);
        q.register(2, 10);
        q.register(1, 10);
        assert_eq!(q.len(), 3);
        let fired: Vec<_> = std::iter::from_fn(|| q.pop_due(100)).collect();
        assert_eq!(fired, vec![(10, 1), (10, 2), (30, 3)]);
    }

    #[test]
    fn deleted_timers_do_not_fire_and_can_be_registered_again() {
        let mut q = TimerQueue::default();
        q.register(7u8, 5);
        q.delete(&7, 5);
        assert_eq!(q.next_timestamp(), None);
        assert_eq!(q.pop_due(10), None);
        q.register(7, 5);
        assert_eq!(q.pop_due(10), Some((5, 7)));
        assert!(q.is_empty());
    }

    #[test]
    fn a_timer_deleted_and_registered_again_fires_once_in_its_new_place() {
        let mut q = TimerQueue::default();
        q.register(1u8, 5);
        q.register(2, 5);
        q.delete(&1, 5);
        q.register(1, 5);
        assert_eq!(q.to_vec(), vec![(5, 2), (5, 1)]);
        let fired: Vec<_> = std::iter::from_fn(|| q.pop_due(10)).collect();
        assert_eq!(fired, vec![(5, 2), (5, 1)]);
        assert!(q.is_empty() && q.peek_timestamp().is_none());
    }

    #[test]
    fn nothing_fires_before_its_time() {
        let mut q = TimerQueue::default();
        q.register(1u8, 50);
        assert_eq!(q.pop_due(49), None);
        assert_eq!(q.to_vec(), vec![(50, 1)]);
        assert_eq!(q.pop_due(50), Some((50, 1)));
    }
}

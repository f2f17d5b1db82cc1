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

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

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
pub struct TimerQueue<K> {
    order: BinaryHeap<Reverse<(i64, u64)>>,
    by_sequence: HashMap<u64, (K, i64)>,
    registered: KeyMap<(K, i64), u64>,
    next_sequence: u64,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            order: BinaryHeap::new(),
            by_sequence: HashMap::new(),
            registered: KeyMap::default(),
            next_sequence: 0,
        }
    }
}

impl<K: Key> TimerQueue<K> {
    /// Registers a timer for `key` at `timestamp` (no-op if it exists).
    pub fn register(&mut self, key: K, timestamp: i64) {
        if self.registered.contains_key(&(key.clone(), timestamp)) {
            return;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.order.push(Reverse((timestamp, sequence)));
        self.by_sequence.insert(sequence, (key.clone(), timestamp));
        self.registered.insert((key, timestamp), sequence);
    }

    /// Deletes the timer for `key` at `timestamp`, if registered.
    ///
    /// The heap keeps the deleted entry until it surfaces, unless deleted
    /// entries come to outnumber live ones: then the heap is rebuilt from the
    /// live timers, so a function that moves a timeout forward on every record
    /// holds memory for its live timers, not for every timer it ever set.
    pub fn delete(&mut self, key: &K, timestamp: i64) {
        if let Some(sequence) = self.registered.remove(&(key.clone(), timestamp)) {
            self.by_sequence.remove(&sequence);
            if self.order.len() > 2 * self.by_sequence.len() + 64 {
                self.compact();
            }
        }
    }

    /// Rebuilds the heap from the live timers (amortised: runs after at least
    /// as many deletions as there are live timers).
    #[cold]
    fn compact(&mut self) {
        let by_sequence = &self.by_sequence;
        self.order
            .retain(|Reverse((_, sequence))| by_sequence.contains_key(sequence));
    }

    /// Entries in the heap, deleted ones included (for tests of its bound).
    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.order.len()
    }

    fn drop_deleted(&mut self) {
        while let Some(Reverse((_, sequence))) = self.order.peek() {
            if self.by_sequence.contains_key(sequence) {
                break;
            }
            self.order.pop();
        }
    }

    /// The earliest registered timestamp.
    pub fn next_timestamp(&mut self) -> Option<i64> {
        self.drop_deleted();
        self.order.peek().map(|Reverse((t, _))| *t)
    }

    /// The earliest timestamp in the queue without tidying it: may be that of a
    /// deleted timer (then a wake-up finds nothing due), never later than the
    /// earliest live timer.
    pub fn peek_timestamp(&self) -> Option<i64> {
        self.order.peek().map(|Reverse((t, _))| *t)
    }

    /// Removes and returns the next timer at or before `time`.
    pub fn pop_due(&mut self, time: i64) -> Option<(i64, K)> {
        self.drop_deleted();
        let Reverse((timestamp, sequence)) = *self.order.peek()?;
        if timestamp > time {
            return None;
        }
        self.order.pop();
        let (key, timestamp) = self.by_sequence.remove(&sequence)?;
        self.registered.remove(&(key.clone(), timestamp));
        Some((timestamp, key))
    }

    /// Number of registered timers.
    pub fn len(&self) -> usize {
        self.by_sequence.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.by_sequence.is_empty()
    }

    /// Every registered timer, in firing order.
    pub fn to_vec(&self) -> Vec<(i64, K)> {
        let mut all: Vec<(i64, u64, K)> = self
            .by_sequence
            .iter()
            .map(|(s, (k, t))| (*t, *s, k.clone()))
            .collect();
        all.sort_by_key(|(t, s, _)| (*t, *s));
        all.into_iter().map(|(t, _, k)| (t, k)).collect()
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
    fn moving_a_timeout_on_every_record_keeps_the_heap_bounded() {
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
    fn nothing_fires_before_its_time() {
        let mut q = TimerQueue::default();
        q.register(1u8, 50);
        assert_eq!(q.pop_due(49), None);
        assert_eq!(q.to_vec(), vec![(50, 1)]);
        assert_eq!(q.pop_due(50), Some((50, 1)));
    }
}

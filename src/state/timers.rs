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

use std::collections::hash_map::Entry;
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
/// cache at every level (bench `window-count`). Each bucket also knows its
/// keys (for de-duplication), with the sequence number of their
/// registration. Popping does not touch that map: an entry whose sequence
/// number is at most the last popped one has fired, and until a timer of the
/// bucket is deleted every queued entry is live, so a bucket drains without
/// a hash lookup and its map is dropped whole. A deleted timer stays queued
/// until it surfaces (or a compaction) and is then skipped, as is an entry
/// whose timer was deleted and registered again (its sequence number differs).
pub struct TimerQueue<K> {
    buckets: BTreeMap<i64, Bucket<K>>,
    /// Registered timers (live: neither fired nor deleted).
    live: usize,
    /// Entries in the buckets' queues, deleted ones included.
    queued: usize,
    /// The next registration's sequence number (from 1).
    next_sequence: u64,
    /// The last bucket that drained, emptied, for the next new timestamp
    /// to take: windows fill one bucket per window with every key, and a
    /// map that grows from empty to 100 000 keys rehashes all the way.
    spare: Option<Bucket<K>>,
}

/// The timers of one timestamp.
struct Bucket<K> {
    /// Entries not popped yet, in registration order (deleted ones until
    /// they surface).
    queue: VecDeque<(u64, K)>,
    /// The keys registered here since the bucket was made, with the
    /// sequence number of their last registration (deleted ones removed;
    /// fired ones kept until the bucket drains).
    members: KeyMap<K, u64>,
    /// The sequence number of the last entry popped (0: none): entries at
    /// or below it have left the queue.
    popped_through: u64,
    /// Whether a timer of the bucket was deleted since it was last
    /// compacted: until then, every queued entry is live.
    deleted: bool,
}

impl<K> Default for Bucket<K> {
    fn default() -> Self {
        Bucket {
            queue: VecDeque::new(),
            members: KeyMap::default(),
            popped_through: 0,
            deleted: false,
        }
    }
}

impl<K: Key> Bucket<K> {
    /// Whether the queued entry `(sequence, key)` is a live timer.
    #[inline]
    fn is_live(&self, sequence: u64, key: &K) -> bool {
        !self.deleted || self.members.get(key) == Some(&sequence)
    }

    /// Pops the front entry; returns it with whether it is live.
    #[inline]
    fn pop(&mut self) -> Option<(K, bool)> {
        let (sequence, key) = self.queue.pop_front()?;
        self.popped_through = sequence;
        let live = self.is_live(sequence, &key);
        Some((key, live))
    }
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            buckets: BTreeMap::new(),
            live: 0,
            queued: 0,
            next_sequence: 1,
            spare: None,
        }
    }
}

impl<K: Key> TimerQueue<K> {
    /// Registers a timer for `key` at `timestamp` (no-op if it exists).
    #[inline]
    pub fn register(&mut self, key: K, timestamp: i64) {
        let spare = &mut self.spare;
        let bucket = self
            .buckets
            .entry(timestamp)
            .or_insert_with(|| spare.take().unwrap_or_default());
        let sequence = self.next_sequence;
        let key = match bucket.members.entry(key) {
            Entry::Occupied(entry) if *entry.get() > bucket.popped_through => return,
            Entry::Occupied(mut entry) => {
                // Fired already: registered anew.
                entry.insert(sequence);
                entry.key().clone()
            }
            Entry::Vacant(entry) => {
                let key = entry.key().clone();
                entry.insert(sequence);
                key
            }
        };
        self.next_sequence += 1;
        bucket.queue.push_back((sequence, key));
        self.queued += 1;
        self.live += 1;
    }

    /// Deletes the timer for `key` at `timestamp`, if registered.
    ///
    /// Its bucket keeps the deleted entry until it surfaces, unless deleted
    /// entries come to outnumber live ones: then the buckets are rebuilt from
    /// the live timers, so a function that moves a timeout forward on every
    /// record holds memory for its live timers, not for every timer it ever set.
    pub fn delete(&mut self, key: &K, timestamp: i64) {
        let Some(bucket) = self.buckets.get_mut(&timestamp) else {
            return;
        };
        match bucket.members.get(key) {
            Some(&sequence) if sequence > bucket.popped_through => {
                bucket.members.remove(key);
                bucket.deleted = true;
                self.live -= 1;
            }
            _ => return,
        }
        if self.queued > 2 * self.live + 64 {
            self.compact();
        }
    }

    /// Rebuilds the buckets from the live timers (amortised: runs after at
    /// least as many deletions as there are live timers).
    #[cold]
    fn compact(&mut self) {
        self.buckets.retain(|_, bucket| {
            if bucket.deleted {
                let Bucket { queue, members, .. } = bucket;
                queue.retain(|(sequence, key)| members.get(key) == Some(sequence));
                bucket.deleted = false;
            }
            !bucket.queue.is_empty()
        });
        self.queued = self.buckets.values().map(|b| b.queue.len()).sum();
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
            while let Some((sequence, key)) = bucket.queue.front() {
                if bucket.is_live(*sequence, key) {
                    return Some(timestamp);
                }
                bucket.pop();
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
            let Some((key, live)) = bucket.pop() else {
                first.remove();
                continue;
            };
            self.queued -= 1;
            if bucket.queue.is_empty() {
                let drained = first.remove();
                self.keep_spare(drained);
            }
            if live {
                self.live -= 1;
                return Some((timestamp, key));
            }
        }
    }

    /// Calls `f` with the keys of the next (at most) `n` entries due at
    /// `time`, in firing order, deleted timers' included: what is about to
    /// fire, for looking its state up ahead.
    pub fn for_each_due_ahead<'a>(&'a self, time: i64, n: usize, mut f: impl FnMut(&'a K)) {
        let due = self
            .buckets
            .range(..=time)
            .flat_map(|(_, b)| b.queue.iter());
        for (_, key) in due.take(n) {
            f(key);
        }
    }

    /// Keeps `drained` (a bucket whose queue is empty), emptied, as the
    /// spare, unless the spare holds more.
    fn keep_spare(&mut self, mut drained: Bucket<K>) {
        let capacity = |b: &Bucket<K>| b.members.capacity();
        if self
            .spare
            .as_ref()
            .is_none_or(|s| capacity(s) < capacity(&drained))
        {
            drained.members.clear();
            drained.popped_through = 0;
            drained.deleted = false;
            self.spare = Some(drained);
        }
    }

    /// Number of registered timers.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every registered timer, in firing order.
    pub fn to_vec(&self) -> Vec<(i64, K)> {
        self.buckets
            .iter()
            .flat_map(|(timestamp, bucket)| {
                bucket
                    .queue
                    .iter()
                    .filter(|(sequence, key)| bucket.is_live(*sequence, key))
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

    /// The obvious model: a list of live timers, each with its
    /// registration order.
    #[derive(Default)]
    struct Model {
        live: Vec<(i64, u64, u8)>,
        order: u64,
    }

    impl Model {
        fn register(&mut self, key: u8, at: i64) {
            if !self.live.iter().any(|t| t.0 == at && t.2 == key) {
                self.order += 1;
                self.live.push((at, self.order, key));
            }
        }
        fn delete(&mut self, key: u8, at: i64) {
            self.live.retain(|t| !(t.0 == at && t.2 == key));
        }
        fn pop_due(&mut self, time: i64) -> Option<(i64, u8)> {
            let (i, _) = self
                .live
                .iter()
                .enumerate()
                .filter(|(_, t)| t.0 <= time)
                .min_by_key(|(_, t)| (t.0, t.1))?;
            let (at, _, key) = self.live.remove(i);
            Some((at, key))
        }
        fn to_vec(&self) -> Vec<(i64, u8)> {
            let mut all = self.live.clone();
            all.sort();
            all.into_iter().map(|(at, _, key)| (at, key)).collect()
        }
    }

    /// Random registrations, deletions and pops (also re-registrations of
    /// what just fired, at the time being fired) agree with [`Model`].
    #[test]
    fn the_queue_agrees_with_a_list_of_live_timers() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut queue = TimerQueue::default();
            let mut model = Model::default();
            let mut time = 0_i64;
            for _ in 0..300 {
                let key = next(6) as u8;
                let at = time + next(8) as i64;
                match next(10) {
                    0..=4 => {
                        queue.register(key, at);
                        model.register(key, at);
                    }
                    5..=6 => {
                        queue.delete(&key, at);
                        model.delete(key, at);
                    }
                    7 => assert_eq!(queue.next_timestamp(), model.to_vec().first().map(|t| t.0)),
                    _ => {
                        time += next(4) as i64;
                        while let Some(fired) = model.pop_due(time) {
                            assert_eq!(queue.pop_due(time), Some(fired));
                            if next(3) == 0 {
                                // on_timer registering at the time firing.
                                queue.register(fired.1, fired.0);
                                model.register(fired.1, fired.0);
                            }
                        }
                        assert_eq!(queue.pop_due(time), None);
                    }
                }
                assert_eq!(queue.len(), model.live.len());
                assert_eq!(queue.to_vec(), model.to_vec());
            }
        }
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

//! Partitioners: how the records of one output are spread over its channels.
//!
//! Each sending subtask owns one [`OutputPartitioner`] per output edge. It keeps
//! typed buffers per channel ([`ChannelBuffers`]); the subtask takes a batch out
//! when one is full (or the buffer lingered long enough, or an event must
//! follow it) and the channel has credit. Forward, rebalance, shuffle and
//! broadcast are generic over the record type and live here; hash partitioning
//! needs keys, so the API layer supplies its channel function to
//! [`SelectChannel`]. Timestamps travel with their records.
//!
//! ```
//! use weir_actors::batch::RecordBatch;
//! use weir_actors::partition::{OutputPartitioner, Rebalance, TypedPartitioner};
//! let mut p = TypedPartitioner::<u8, _>::new(Rebalance::starting_at(0), 2, 16);
//! p.partition(Box::new(RecordBatch::from(vec![1u8, 2, 3, 4, 5])));
//! assert_eq!((p.buffered(0), p.buffered(1)), (3, 2));
//! ```

use crate::batch::{downcast_batch, Batch, RecordBatch};
use crate::channel_buffers::ChannelBuffers;

/// The erased partitioner a subtask drives for one output edge.
pub trait OutputPartitioner: Send {
    /// Spreads the records of `batch` into the channel buffers.
    fn partition(&mut self, batch: Batch);
    /// Records waiting in channel `channel`'s buffer.
    fn buffered(&self, channel: usize) -> usize;
    /// Takes up to one batch (the oldest `batch_size` records) from channel
    /// `channel`'s buffer, if it is not empty.
    fn take(&mut self, channel: usize) -> Option<Batch>;
}

/// How a typed partitioner routes records into channel buffers.
pub trait ChannelSelector<T>: Send {
    /// Moves every record of `batch` into one or more of the channels of
    /// `buffers`.
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>);
}

/// A [`ChannelSelector`] over [`ChannelBuffers`]: a full buffer leaves as a
/// batch of its own (see [`ChannelBuffers`]).
pub struct TypedPartitioner<T, S> {
    buffers: ChannelBuffers<T>,
    selector: S,
}

impl<T, S: ChannelSelector<T>> TypedPartitioner<T, S> {
    /// A partitioner over `channels` channels whose batches hold `batch_size` records.
    pub fn new(selector: S, channels: usize, batch_size: usize) -> Self {
        TypedPartitioner {
            buffers: ChannelBuffers::new(channels, batch_size),
            selector,
        }
    }
}

impl<T, S> OutputPartitioner for TypedPartitioner<T, S>
where
    T: Clone + Send + serde::Serialize + 'static,
    S: ChannelSelector<T>,
{
    fn partition(&mut self, batch: Batch) {
        match downcast_batch::<T>(batch) {
            Ok(records) => self.selector.route(records, &mut self.buffers),
            // The graph builder types every edge; a mismatch is a bug in weir itself.
            Err(msg) => panic!("weir internal error: {msg}"),
        }
    }

    fn buffered(&self, channel: usize) -> usize {
        self.buffers.buffered(channel)
    }

    fn take(&mut self, channel: usize) -> Option<Batch> {
        self.buffers
            .take(channel)
            .map(|batch| Box::new(batch) as Batch)
    }
}

/// Sends each record to the channel `pick` chooses, timestamps alongside.
#[inline]
fn scatter<T>(
    batch: RecordBatch<T>,
    buffers: &mut ChannelBuffers<T>,
    mut pick: impl FnMut(&T) -> usize,
) {
    match batch.timestamps {
        None => {
            for record in batch.records {
                let channel = pick(&record);
                buffers.push(channel, record, None);
            }
        }
        Some(timestamps) => {
            for (record, ts) in batch.records.into_iter().zip(timestamps) {
                let channel = pick(&record);
                buffers.push(channel, record, Some(ts));
            }
        }
    }
}

/// Every record to the single channel (subtask `i` feeds subtask `i`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Forward;

impl<T: Send> ChannelSelector<T> for Forward {
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>) {
        buffers.append(0, batch);
    }
}

/// Records go round-robin over the channels, one record at a time.
#[derive(Clone, Copy, Debug)]
pub struct Rebalance {
    next: usize,
}

impl Rebalance {
    /// Starts with channel `first` (the sender's subtask index spreads the start).
    pub fn starting_at(first: usize) -> Self {
        Rebalance { next: first }
    }
}

impl<T: Send> ChannelSelector<T> for Rebalance {
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>) {
        let n = buffers.channels();
        if n == 1 {
            return buffers.append(0, batch);
        }
        let mut next = self.next % n;
        scatter(batch, buffers, |_| {
            let channel = next;
            next = if next + 1 == n { 0 } else { next + 1 };
            channel
        });
        self.next = next;
    }
}

/// Records go to uniformly random channels (a seeded xorshift, so runs repeat).
#[derive(Clone, Copy, Debug)]
pub struct Shuffle {
    state: u64,
}

impl Shuffle {
    /// A shuffle whose choices are fixed by `seed`.
    pub fn seeded(seed: u64) -> Self {
        Shuffle {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

impl<T: Send> ChannelSelector<T> for Shuffle {
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>) {
        let n = buffers.channels() as u64;
        scatter(batch, buffers, |_| (self.next() % n) as usize);
    }
}

/// Every record to every channel.
#[derive(Clone, Copy, Debug, Default)]
pub struct Broadcast;

impl<T: Clone + Send> ChannelSelector<T> for Broadcast {
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>) {
        let Some(last) = buffers.channels().checked_sub(1) else {
            return;
        };
        for channel in 0..last {
            buffers.append(channel, batch.clone());
        }
        buffers.append(last, batch);
    }
}

/// Each record to the channel a function picks (hash partitioning by key).
pub struct SelectChannel<F> {
    select: F,
    /// The channel of each record of the batch being routed (kept to reuse
    /// its allocation).
    channels: Vec<u32>,
}

impl<F> SelectChannel<F> {
    /// `select(record, channels)` must return an index below `channels`.
    pub fn new(select: F) -> Self {
        SelectChannel {
            select,
            channels: Vec::new(),
        }
    }
}

impl<T: Send, F: FnMut(&T, usize) -> usize + Send> ChannelSelector<T> for SelectChannel<F> {
    fn route(&mut self, batch: RecordBatch<T>, buffers: &mut ChannelBuffers<T>) {
        let n = buffers.channels();
        if n == 1 {
            // One receiver: no need to ask where each record goes.
            return buffers.append(0, batch);
        }
        // Every record's channel first, then the moves. Picking a channel
        // (a key's hash) and appending to it in one loop made each record
        // wait for the previous one's append to the buffer it might share;
        // apart, the picks of consecutive records overlap.
        let select = &mut self.select;
        self.channels.clear();
        self.channels
            .extend(batch.records.iter().map(|record| select(record, n) as u32));
        let mut picked = self.channels.iter();
        scatter(batch, buffers, |_| {
            picked.next().map_or(0, |&channel| channel as usize)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: Vec<u32>) -> Batch {
        Box::new(RecordBatch::from(records))
    }

    fn drain(p: &mut dyn OutputPartitioner, channels: usize) -> Vec<Vec<u32>> {
        (0..channels)
            .map(|c| {
                p.take(c)
                    .map(|b| downcast_batch(b).unwrap().records)
                    .unwrap_or_default()
            })
            .collect()
    }

    #[test]
    fn forward_keeps_order() {
        let mut p = TypedPartitioner::<u32, _>::new(Forward, 1, 4);
        p.partition(batch(vec![1, 2]));
        p.partition(batch(vec![3]));
        assert_eq!(drain(&mut p, 1), vec![vec![1, 2, 3]]);
        assert!(p.take(0).is_none());
    }

    #[test]
    fn a_batch_never_exceeds_the_batch_size() {
        let mut p = TypedPartitioner::<u32, _>::new(Forward, 1, 4);
        p.partition(Box::new(RecordBatch {
            records: (0..10u32).collect(),
            timestamps: Some((0..10).collect()),
        }));
        let sizes: Vec<usize> = std::iter::from_fn(|| p.take(0)).map(|b| b.len()).collect();
        assert_eq!(sizes, vec![4, 4, 2]);
    }

    #[test]
    fn a_long_buffer_leaves_in_order_with_its_timestamps_and_its_rest_fills_up() {
        let mut p = TypedPartitioner::<u32, _>::new(Forward, 1, 4);
        p.partition(Box::new(RecordBatch {
            records: (0..10u32).collect(),
            timestamps: Some((100..110).collect()),
        }));
        let first = downcast_batch::<u32>(p.take(0).unwrap()).unwrap();
        assert_eq!(first.records, [0, 1, 2, 3]);
        assert_eq!(first.timestamps, Some(vec![100, 101, 102, 103]));
        assert_eq!(p.buffered(0), 6);
        // Records arriving now queue behind the ones cut earlier; the partial
        // rest (8, 9) fills up with them.
        p.partition(Box::new(RecordBatch {
            records: vec![10u32, 11],
            timestamps: Some(vec![110, 111]),
        }));
        assert_eq!(p.buffered(0), 8);
        let rest: Vec<RecordBatch<u32>> = std::iter::from_fn(|| p.take(0))
            .map(|b| downcast_batch::<u32>(b).unwrap())
            .collect();
        let records: Vec<Vec<u32>> = rest.iter().map(|b| b.records.clone()).collect();
        assert_eq!(records, [vec![4, 5, 6, 7], vec![8, 9, 10, 11]]);
        assert_eq!(rest[1].timestamps, Some(vec![108, 109, 110, 111]));
    }

    #[test]
    fn rebalance_continues_round_robin_across_batches() {
        let mut p = TypedPartitioner::<u32, _>::new(Rebalance::starting_at(1), 3, 4);
        p.partition(batch(vec![0, 1]));
        p.partition(batch(vec![2, 3, 4]));
        assert_eq!(drain(&mut p, 3), vec![vec![2], vec![0, 3], vec![1, 4]]);
    }

    #[test]
    fn shuffle_reaches_every_channel_and_loses_nothing() {
        let mut p = TypedPartitioner::<u32, _>::new(Shuffle::seeded(7), 4, 1000);
        p.partition(batch((0..1000).collect()));
        let out = drain(&mut p, 4);
        assert!(
            out.iter().all(|c| c.len() > 150),
            "{:?}",
            out.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let mut all: Vec<u32> = out.concat();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn broadcast_copies_every_record_to_every_channel() {
        let mut p = TypedPartitioner::<u32, _>::new(Broadcast, 3, 4);
        p.partition(batch(vec![5, 6]));
        assert_eq!(drain(&mut p, 3), vec![vec![5, 6]; 3]);
    }

    #[test]
    fn select_channel_routes_by_function_with_timestamps() {
        let mut p =
            TypedPartitioner::<u32, _>::new(SelectChannel::new(|r: &u32, n| *r as usize % n), 2, 4);
        p.partition(Box::new(RecordBatch {
            records: vec![1u32, 2, 3, 4],
            timestamps: Some(vec![10, 20, 30, 40]),
        }));
        let even: RecordBatch<u32> = downcast_batch(p.take(0).unwrap()).unwrap();
        assert_eq!(
            even,
            RecordBatch {
                records: vec![2, 4],
                timestamps: Some(vec![20, 40])
            }
        );
        // The next batch is routed by its own records' channels, and a
        // channel's buffer that fills leaves as a batch of four.
        p.partition(batch(vec![5, 7, 9, 6]));
        p.partition(batch(vec![11]));
        assert_eq!(drain(&mut p, 2), vec![vec![6], vec![1, 3, 5, 7]]);
        assert_eq!(p.buffered(1), 2);
        assert_eq!(drain(&mut p, 2), vec![vec![], vec![9, 11]]);
    }
}

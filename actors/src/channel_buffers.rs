//! The per-channel buffers of a partitioner, cut into whole batches as they
//! fill.
//!
//! Each channel has one *open* buffer, always shorter than a batch, and a
//! queue of *sealed* batches of exactly `batch_size` records, oldest first
//! (all older than the open buffer's records). The first record pushed into
//! an empty buffer gives it a batch's capacity, and the record that fills it
//! seals it on the spot, so a buffer that records are pushed into never
//! grows: no reallocation, and no copying of a batch's tail into the next
//! one when it leaves. A whole batch appended at once (forward, broadcast)
//! moves in without a copy (or an allocation) when the open buffer is
//! empty, and a long one is cut into whole batches once, from the back
//! (each cut moves only what it cuts off; cutting from the front would move
//! the rest each time).
//!
//! ```
//! use weir_actors::batch::RecordBatch;
//! use weir_actors::channel_buffers::ChannelBuffers;
//! let mut buffers = ChannelBuffers::new(2, 2);
//! for record in [1u8, 2, 3] {
//!     buffers.push(0, record, None);
//! }
//! buffers.append(1, RecordBatch::from(vec![4u8, 5, 6, 7, 8]));
//! assert_eq!((buffers.buffered(0), buffers.buffered(1)), (3, 5));
//! assert_eq!(buffers.take(0).map(|b| b.records), Some(vec![1, 2]));
//! assert_eq!(buffers.take(0).map(|b| b.records), Some(vec![3]));
//! assert_eq!(buffers.take(1).map(|b| b.records), Some(vec![4, 5]));
//! ```

use std::collections::VecDeque;

use crate::batch::RecordBatch;

/// One open buffer and a queue of sealed batches per channel (see the
/// module documentation).
pub struct ChannelBuffers<T> {
    open: Vec<RecordBatch<T>>,
    sealed: Vec<VecDeque<RecordBatch<T>>>,
    /// Per channel: records in `sealed`.
    sealed_records: Vec<usize>,
    batch_size: usize,
}

impl<T> ChannelBuffers<T> {
    /// Buffers for `channels` channels whose batches hold `batch_size`
    /// records (at least one).
    pub fn new(channels: usize, batch_size: usize) -> Self {
        ChannelBuffers {
            open: (0..channels)
                .map(|_| RecordBatch::with_capacity(0))
                .collect(),
            sealed: (0..channels).map(|_| VecDeque::new()).collect(),
            sealed_records: vec![0; channels],
            batch_size: batch_size.max(1),
        }
    }

    /// Number of channels.
    #[inline]
    pub fn channels(&self) -> usize {
        self.open.len()
    }

    /// Appends one record (with its timestamp, if the stream has event
    /// time) to channel `channel`.
    #[inline]
    pub fn push(&mut self, channel: usize, record: T, timestamp: Option<i64>) {
        let open = &mut self.open[channel];
        if open.records.capacity() == 0 {
            open.records.reserve_exact(self.batch_size);
        }
        open.push(record, timestamp);
        if open.len() >= self.batch_size {
            self.seal(channel);
        }
    }

    /// Moves every record of `batch` to the end of channel `channel`.
    pub fn append(&mut self, channel: usize, batch: RecordBatch<T>) {
        let open = &mut self.open[channel];
        open.append(batch);
        if open.len() >= self.batch_size {
            self.cut(channel);
        }
    }

    /// Records waiting in channel `channel`.
    #[inline]
    pub fn buffered(&self, channel: usize) -> usize {
        self.sealed_records[channel] + self.open[channel].len()
    }

    /// Takes channel `channel`'s oldest batch (at most `batch_size`
    /// records), if it holds any record.
    pub fn take(&mut self, channel: usize) -> Option<RecordBatch<T>> {
        if let Some(batch) = self.sealed[channel].pop_front() {
            self.sealed_records[channel] -= batch.len();
            return Some(batch);
        }
        let open = &mut self.open[channel];
        if open.is_empty() {
            return None;
        }
        Some(std::mem::replace(open, RecordBatch::with_capacity(0)))
    }

    /// Seals channel `channel`'s open buffer, which holds a whole batch.
    #[cold]
    #[inline(never)]
    fn seal(&mut self, channel: usize) {
        let full = std::mem::replace(&mut self.open[channel], RecordBatch::with_capacity(0));
        self.sealed_records[channel] += full.len();
        self.sealed[channel].push_back(full);
    }

    /// Cuts channel `channel`'s open buffer, of a batch or more, into whole
    /// batches (sealed, in order) and a partial rest (left open).
    fn cut(&mut self, channel: usize) {
        let batch_size = self.batch_size;
        let mut long = std::mem::replace(&mut self.open[channel], RecordBatch::with_capacity(0));
        let partial = long.len() % batch_size;
        if partial > 0 {
            let at = long.len() - partial;
            self.open[channel] = long.split_off(at);
        }
        let mut cut = Vec::with_capacity(long.len() / batch_size);
        while long.len() > batch_size {
            let at = long.len() - batch_size;
            cut.push(long.split_off(at));
        }
        cut.push(long);
        let queue = &mut self.sealed[channel];
        for batch in cut.into_iter().rev() {
            self.sealed_records[channel] += batch.len();
            queue.push_back(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(buffers: &mut ChannelBuffers<u32>, channel: usize) -> Vec<Vec<u32>> {
        std::iter::from_fn(|| buffers.take(channel))
            .map(|b| b.records)
            .collect()
    }

    #[test]
    fn a_push_that_fills_a_buffer_seals_it_without_growing_it() {
        let mut buffers = ChannelBuffers::new(1, 4);
        for record in 0..4u32 {
            buffers.push(0, record, None);
        }
        assert_eq!(buffers.buffered(0), 4);
        buffers.push(0, 4, Some(40));
        let first = buffers.take(0).expect("a sealed batch");
        assert_eq!(first.records, [0, 1, 2, 3]);
        assert_eq!(
            first.records.capacity(),
            4,
            "given a batch's capacity, never grown"
        );
        assert_eq!(first.timestamps, None);
        let rest = buffers.take(0).expect("the open rest");
        assert_eq!(rest.records, [4]);
        assert_eq!(rest.timestamps, Some(vec![40]));
        assert!(buffers.take(0).is_none());
    }

    #[test]
    fn a_long_append_is_cut_into_whole_batches_and_a_rest_that_fills_up() {
        let mut buffers = ChannelBuffers::new(1, 4);
        buffers.push(0, 0, None);
        buffers.append(0, RecordBatch::from((1..10u32).collect::<Vec<_>>()));
        assert_eq!(buffers.buffered(0), 10);
        buffers.push(0, 10, None);
        buffers.push(0, 11, None);
        assert_eq!(
            drain(&mut buffers, 0),
            [vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
    }

    #[test]
    fn an_append_of_exactly_a_batch_into_an_empty_buffer_moves_it() {
        let mut buffers = ChannelBuffers::new(1, 3);
        let records = vec![7u32, 8, 9];
        let at = records.as_ptr();
        buffers.append(0, RecordBatch::from(records));
        let batch = buffers.take(0).expect("the batch");
        assert_eq!(batch.records.as_ptr(), at, "moved, not copied");
    }

    /// Any mix of pushes, appends and takes on several channels leaves
    /// every channel's records in order, counted, in batches of at most
    /// `batch_size`.
    #[test]
    fn any_mix_keeps_order_counts_and_batch_sizes() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..200 {
            let batch_size = 1 + next(8) as usize;
            let channels = 1 + next(3) as usize;
            let mut buffers = ChannelBuffers::new(channels, batch_size);
            let mut sent = vec![Vec::<u32>::new(); channels];
            let mut received = vec![Vec::<u32>::new(); channels];
            let mut counter = 0u32;
            for _ in 0..60 {
                let channel = next(channels as u64) as usize;
                match next(4) {
                    0 => {
                        let size = if next(5) == 0 { next(40) } else { next(6) } as u32;
                        let records: Vec<u32> = (counter..counter + size).collect();
                        counter += size;
                        sent[channel].extend(&records);
                        buffers.append(channel, RecordBatch::from(records));
                    }
                    1 | 2 => {
                        sent[channel].push(counter);
                        buffers.push(channel, counter, None);
                        counter += 1;
                    }
                    _ => {
                        if let Some(batch) = buffers.take(channel) {
                            assert!(batch.len() <= batch_size, "round {round}");
                            assert!(!batch.is_empty(), "round {round}");
                            received[channel].extend(batch.records);
                        }
                    }
                }
                let waiting = sent[channel].len() - received[channel].len();
                assert_eq!(buffers.buffered(channel), waiting, "round {round}");
            }
            for (channel, received) in received.iter_mut().enumerate() {
                received.extend(drain(&mut buffers, channel).concat());
            }
            assert_eq!(received, sent, "round {round}");
        }
    }
}

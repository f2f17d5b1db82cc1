//! The receiving side of a subtask's channels: one queue per input channel,
//! taken round-robin, with the event time of every channel in a
//! [`WatermarkValve`](crate::watermark::WatermarkValve). A channel held back
//! for a checkpoint's alignment is skipped until it is released.

use crate::codec::CodecError;
use std::collections::VecDeque;

use super::protocol::Upstream;
use crate::batch::Batch;
use crate::channel::ChannelEvent;
use crate::watermark::WatermarkValve;

/// One input channel of a receiver.
pub(crate) struct InputChannel {
    /// Logical input of the head operator (0, or 1 for a second input).
    pub input: usize,
    pub queue: VecDeque<ChannelEvent>,
    pub upstream: Upstream,
    pub ended: bool,
    /// Held back until a checkpoint's barriers are aligned.
    pub blocked: bool,
    /// Restored in-flight batches still at the front of `queue`.
    pub restored: usize,
    /// Record batches waiting in `queue` (events do not count).
    pub queued_batches: usize,
}

impl InputChannel {
    pub fn new(input: usize, upstream: Upstream) -> Self {
        InputChannel {
            input,
            queue: VecDeque::new(),
            upstream,
            ended: false,
            blocked: false,
            restored: 0,
            queued_batches: 0,
        }
    }
}

/// All input channels of a receiver, taken round-robin, and their event time.
#[derive(Default)]
pub(crate) struct InputGate {
    pub channels: Vec<InputChannel>,
    pub valve: WatermarkValve,
    next: usize,
    pub max_queued_batches: usize,
}

impl InputGate {
    pub fn new(channels: Vec<InputChannel>) -> Self {
        InputGate {
            valve: WatermarkValve::new(channels.len()),
            channels,
            ..Default::default()
        }
    }

    pub fn push(&mut self, channel: usize, event: ChannelEvent) {
        let ch = &mut self.channels[channel];
        if matches!(event, ChannelEvent::Records(_)) {
            ch.queued_batches += 1;
            self.max_queued_batches = self.max_queued_batches.max(ch.queued_batches);
        }
        ch.queue.push_back(event);
    }

    /// The next event, taking channels in turn so that no input starves another.
    pub fn pop(&mut self) -> Option<(usize, ChannelEvent)> {
        let n = self.channels.len();
        for k in 0..n {
            let index = (self.next + k) % n;
            if self.channels[index].blocked {
                continue;
            }
            if let Some(event) = self.channels[index].queue.pop_front() {
                if matches!(event, ChannelEvent::Records(_)) {
                    self.channels[index].queued_batches -= 1;
                }
                self.next = (index + 1) % n;
                return Some((index, event));
            }
        }
        None
    }

    /// Puts restored in-flight batches in front of everything queued on `channel`.
    pub fn restore_front(&mut self, channel: usize, batches: Vec<Batch>) {
        let ch = &mut self.channels[channel];
        ch.restored += batches.len();
        ch.queued_batches += batches.len();
        for batch in batches.into_iter().rev() {
            ch.queue.push_front(ChannelEvent::Records(batch));
        }
    }

    /// Releases every channel held back for an alignment.
    pub fn unblock_all(&mut self) {
        for channel in &mut self.channels {
            channel.blocked = false;
        }
    }

    /// Takes a copy of the records queued in channel `channel` (encoded), for
    /// an unaligned checkpoint's channel state.
    pub fn queued_records(&self, channel: usize) -> Result<Vec<Vec<u8>>, CodecError> {
        self.channels[channel]
            .queue
            .iter()
            .filter_map(|e| match e {
                ChannelEvent::Records(batch) => Some(batch.encode()),
                _ => None,
            })
            .collect()
    }

    /// Whether every channel of logical input `input` has ended.
    pub fn input_ended(&self, input: usize) -> bool {
        self.channels
            .iter()
            .filter(|c| c.input == input)
            .all(|c| c.ended)
    }

    /// Whether every channel has ended.
    pub fn all_ended(&self) -> bool {
        self.channels.iter().all(|c| c.ended)
    }
}

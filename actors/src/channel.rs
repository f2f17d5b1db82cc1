//! Channels between subtask actors: what travels on them, and the input gate on
//! the receiving side (see [`crate::output`] for the sending side).
//!
//! Flow control is by credits. A sender starts with `channel_credits` credits per
//! channel and spends one per batch it sends; the receiver returns one when it
//! takes the batch out of its queue. A channel without credit keeps its records
//! in the sender's buffer, and a subtask whose buffers are full stops pulling
//! input, so a slow consumer slows its producers and no queue grows past
//! `channel_credits` batches, whatever the rates.
//!
//! The input gate also tracks event time through a
//! [`WatermarkValve`](crate::watermark::WatermarkValve).

use std::collections::VecDeque;

use actix::Addr;

use crate::batch::Batch;
use crate::checkpoint::CheckpointBarrier;
use crate::subtask::Subtask;
use crate::watermark::WatermarkValve;

/// What travels on a channel (and between chained operators), in order.
pub enum ChannelEvent {
    /// A batch of records (costs the sender one credit).
    Records(Batch),
    /// Event time on this channel reached the given value.
    Watermark(i64),
    /// The sender went idle (`true`) or became active again (`false`).
    Idle(bool),
    /// The barrier of a checkpoint: what came before it belongs to the checkpoint.
    Barrier(CheckpointBarrier),
    /// The sender will send nothing more on this channel.
    EndOfInput,
}

impl std::fmt::Debug for ChannelEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelEvent::Records(b) => write!(f, "Records({})", b.len()),
            ChannelEvent::Watermark(w) => write!(f, "Watermark({w})"),
            ChannelEvent::Idle(i) => write!(f, "Idle({i})"),
            ChannelEvent::Barrier(b) => write!(f, "Barrier({})", b.id),
            ChannelEvent::EndOfInput => f.write_str("EndOfInput"),
        }
    }
}

/// Where a sender's channel leads.
#[derive(Clone)]
pub struct ChannelTarget {
    /// The receiving subtask.
    pub subtask: Addr<Subtask>,
    /// The index of the channel in the receiver's input gate.
    pub gate_channel: usize,
}

/// Who feeds one input channel (where to return credits).
#[derive(Clone)]
pub struct Upstream {
    /// The sending subtask.
    pub subtask: Addr<Subtask>,
    /// The output (edge slot) of the sender.
    pub output: usize,
    /// The sender's channel index on that output.
    pub channel: usize,
}

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
    pub fn queued_records(&self, channel: usize) -> Result<Vec<Vec<u8>>, String> {
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

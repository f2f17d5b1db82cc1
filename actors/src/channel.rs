//! What travels on a channel between subtask actors, and between the chained
//! operators of one subtask: records, watermarks, idleness, barriers and the
//! end of input, in order. The sending side is `output`, the receiving side
//! the subtask's input gate.
//!
//! Flow control is by credits. A sender starts with `channel_credits` credits per
//! channel and spends one per batch it sends; the receiver returns one when it
//! takes the batch out of its queue. A channel without credit keeps its records
//! in the sender's buffer, and a subtask whose buffers are full stops pulling
//! input, so a slow consumer slows its producers and no queue grows past
//! `channel_credits` batches, whatever the rates.

use crate::batch::Batch;
use crate::checkpoint::CheckpointBarrier;
use crate::operator::Emitter;

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
    /// Records of a side output (named by its tag), from an operator to its
    /// subtask's outputs: they leave on the edges of that side output as
    /// `Records`. Never sent on a channel.
    Side(std::sync::Arc<str>, Batch),
}

impl std::fmt::Debug for ChannelEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelEvent::Records(b) => write!(f, "Records({})", b.len()),
            ChannelEvent::Watermark(w) => write!(f, "Watermark({w})"),
            ChannelEvent::Idle(i) => write!(f, "Idle({i})"),
            ChannelEvent::Barrier(b) => write!(f, "Barrier({})", b.id),
            ChannelEvent::EndOfInput => f.write_str("EndOfInput"),
            ChannelEvent::Side(tag, b) => write!(f, "Side({tag}, {})", b.len()),
        }
    }
}

impl Emitter for Vec<ChannelEvent> {
    fn emit(&mut self, batch: Batch) {
        if !batch.is_empty() {
            self.push(ChannelEvent::Records(batch));
        }
    }

    fn emit_watermark(&mut self, watermark: i64) {
        self.push(ChannelEvent::Watermark(watermark));
    }

    fn emit_idle(&mut self, idle: bool) {
        self.push(ChannelEvent::Idle(idle));
    }

    fn emit_side(&mut self, tag: &std::sync::Arc<str>, batch: Batch) {
        if !batch.is_empty() {
            self.push(ChannelEvent::Side(tag.clone(), batch));
        }
    }
}

//! The subtask actor's protocol: every message it handles, and the addresses
//! its peers are wired with. An actor that sends one of these holds a
//! `Recipient` of it, not the subtask's `Addr`.

use actix::prelude::*;

use crate::channel::ChannelEvent;
use crate::checkpoint::CheckpointBarrier;

/// Where a sender's channel leads.
#[derive(Clone)]
pub struct ChannelTarget {
    /// The receiving subtask.
    pub subtask: Recipient<Deliver>,
    /// The index of the channel in the receiver's input gate.
    pub gate_channel: usize,
}

/// Who feeds one input channel (where to return credits).
#[derive(Clone)]
pub struct Upstream {
    /// The sending subtask.
    pub subtask: Recipient<Credit>,
    /// The output (edge slot) of the sender.
    pub output: usize,
    /// The sender's channel index on that output.
    pub channel: usize,
}

/// The peers of a subtask, sent once before [`Start`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wire {
    /// Per output edge, per channel: the receiving subtask and gate channel.
    pub outputs: Vec<Vec<ChannelTarget>>,
    /// Per input channel: who sends on it.
    pub inputs: Vec<Upstream>,
}

/// Open the operators and start processing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Start;

/// An event for one input channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// Index in the receiver's input gate.
    pub channel: usize,
    /// The batch or end-of-input.
    pub event: ChannelEvent,
}

/// Room for `credits` more batches on one output channel.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Credit {
    /// The sender's output (edge slot).
    pub output: usize,
    /// The channel on that output.
    pub channel: usize,
    /// Number of batches granted.
    pub credits: u32,
}

/// Stop processing and stop the actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// Take checkpoint `barrier.id` now (sent to source subtasks).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TriggerCheckpoint {
    /// The barrier to emit.
    pub barrier: CheckpointBarrier,
}

/// Checkpoint `id` completed (`complete`) or was aborted.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NotifyCheckpoint {
    /// The checkpoint.
    pub id: u64,
    /// Completed, or aborted.
    pub complete: bool,
}

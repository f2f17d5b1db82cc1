//! The sending side of a subtask: per output edge a typed partitioner, and per
//! channel its credits and a queue of sealed batches and events.
//!
//! Records are partitioned into channel buffers. A buffer leaves as a batch
//! when it is full and the channel has credit, when the linger time passes,
//! or when an event (a watermark, an idleness change, end of input) must follow
//! the records before it: the buffer is then *sealed* into the channel's queue
//! and the event queued behind it, so every channel delivers records and
//! events in the order they were emitted. A queued batch waits for credit;
//! events pass without.

use crate::codec::CodecError;
use std::collections::VecDeque;

use crate::batch::Batch;
use crate::channel::ChannelEvent;
use crate::checkpoint::metadata::ChannelState;
use crate::checkpoint::CheckpointBarrier;
use crate::partition::OutputPartitioner;
use crate::subtask::protocol::{ChannelTarget, Deliver};

struct OutputChannel {
    target: ChannelTarget,
    credits: u32,
    pending: VecDeque<ChannelEvent>,
}

struct OutputEdge {
    partitioner: Box<dyn OutputPartitioner>,
    /// The side output this edge carries, or `None`: the main output.
    side_output: Option<std::sync::Arc<str>>,
    channels: Vec<OutputChannel>,
}

/// One output edge as a subtask is given it: its partitioner, the side
/// output it carries (`None`: the main output), and its channels' targets.
pub(crate) type EdgeSpec = (
    Box<dyn OutputPartitioner>,
    Option<std::sync::Arc<str>>,
    Vec<ChannelTarget>,
);

/// All outputs of one subtask.
#[derive(Default)]
pub(crate) struct Outputs {
    edges: Vec<OutputEdge>,
    batch_size: usize,
    pub records_out: u64,
    /// Bytes sent on the main output, estimated ([`crate::batch::BatchData::estimated_bytes`]).
    pub bytes_out: u64,
    pub batches_out: u64,
    /// The last watermark emitted.
    pub watermark_out: Option<i64>,
}

impl Outputs {
    /// Outputs over `edges` (partitioner, side output tag or `None` for the
    /// main output, channel targets), each channel starting with `credits`.
    pub fn new(edges: Vec<EdgeSpec>, credits: u32, batch_size: usize) -> Self {
        let edges = edges
            .into_iter()
            .map(|(partitioner, side_output, targets)| OutputEdge {
                partitioner,
                side_output,
                channels: targets
                    .into_iter()
                    .map(|target| OutputChannel {
                        target,
                        credits,
                        pending: VecDeque::new(),
                    })
                    .collect(),
            })
            .collect();
        Outputs {
            edges,
            batch_size,
            records_out: 0,
            bytes_out: 0,
            batches_out: 0,
            watermark_out: None,
        }
    }

    /// The credits every output channel holds now, summed.
    pub fn credits(&self) -> u64 {
        self.edges
            .iter()
            .flat_map(|edge| &edge.channels)
            .map(|ch| u64::from(ch.credits))
            .sum()
    }

    /// Takes one element emitted by the last operator of the chain.
    pub fn emit(&mut self, event: ChannelEvent) {
        match event {
            ChannelEvent::Records(batch) => {
                self.records_out += batch.len() as u64;
                self.bytes_out += batch.estimated_bytes();
                self.partition(None, batch);
            }
            ChannelEvent::Side(tag, batch) => self.partition(Some(&tag), batch),
            ChannelEvent::Watermark(w) => {
                self.watermark_out = Some(w);
                self.broadcast_event(|| ChannelEvent::Watermark(w))
            }
            ChannelEvent::Idle(i) => self.broadcast_event(|| ChannelEvent::Idle(i)),
            ChannelEvent::EndOfInput => self.broadcast_event(|| ChannelEvent::EndOfInput),
            ChannelEvent::Barrier(b) => self.broadcast_event(|| ChannelEvent::Barrier(b)),
        }
    }

    /// Partitions `batch` over the edges of output `side` (`None`: the main
    /// output), copying it for all but the last.
    fn partition(&mut self, side: Option<&std::sync::Arc<str>>, batch: crate::Batch) {
        let mut edges = self
            .edges
            .iter_mut()
            .filter(|edge| edge.side_output.as_ref() == side)
            .peekable();
        while let Some(edge) = edges.next() {
            if edges.peek().is_some() {
                edge.partitioner.partition(batch.clone_batch());
            } else {
                edge.partitioner.partition(batch);
                return;
            }
        }
    }

    /// Queues an event on every channel, behind the records buffered so far.
    fn broadcast_event(&mut self, event: impl Fn() -> ChannelEvent) {
        for edge in &mut self.edges {
            for (c, ch) in edge.channels.iter_mut().enumerate() {
                while let Some(batch) = edge.partitioner.take(c) {
                    ch.pending.push_back(ChannelEvent::Records(batch));
                }
                let event = event();
                // Consecutive watermarks: only the newest matters.
                if let (ChannelEvent::Watermark(_), Some(ChannelEvent::Watermark(last))) =
                    (&event, ch.pending.back_mut())
                {
                    if let ChannelEvent::Watermark(w) = event {
                        *last = w;
                    }
                    continue;
                }
                ch.pending.push_back(event);
            }
        }
    }

    /// Sends `barrier` ahead of everything queued (an unaligned checkpoint) and
    /// returns the records it overtook, per channel, encoded: they stay queued
    /// and are delivered after the barrier, and they are this subtask's output
    /// channel state in the checkpoint.
    pub fn emit_barrier_ahead(
        &mut self,
        barrier: CheckpointBarrier,
    ) -> Result<Vec<ChannelState>, CodecError> {
        let mut captured = Vec::new();
        for (o, edge) in self.edges.iter_mut().enumerate() {
            for (c, ch) in edge.channels.iter_mut().enumerate() {
                while let Some(batch) = edge.partitioner.take(c) {
                    ch.pending.push_back(ChannelEvent::Records(batch));
                }
                let batches = ch
                    .pending
                    .iter()
                    .filter_map(|e| match e {
                        ChannelEvent::Records(batch) => Some(batch.encode()),
                        _ => None,
                    })
                    .collect::<Result<Vec<_>, CodecError>>()?;
                if !batches.is_empty() {
                    captured.push(ChannelState {
                        index: o,
                        channel: c,
                        batches,
                    });
                }
                ch.pending.push_front(ChannelEvent::Barrier(barrier));
            }
        }
        Ok(captured)
    }

    /// Puts restored in-flight batches at the front of one channel's queue.
    pub fn restore_front(
        &mut self,
        output: usize,
        channel: usize,
        batches: Vec<Batch>,
    ) -> Result<(), String> {
        let ch = self
            .edges
            .get_mut(output)
            .and_then(|o| o.channels.get_mut(channel))
            .ok_or_else(|| format!("restored in-flight records for output {output} channel {channel}, which does not exist"))?;
        for batch in batches.into_iter().rev() {
            ch.pending.push_front(ChannelEvent::Records(batch));
        }
        Ok(())
    }

    /// Adds credit to one channel.
    pub fn add_credit(&mut self, output: usize, channel: usize, credits: u32) {
        if let Some(ch) = self
            .edges
            .get_mut(output)
            .and_then(|o| o.channels.get_mut(channel))
        {
            ch.credits += credits;
        }
    }

    /// Sends what can go now: queued batches and events while there is credit,
    /// then buffers that hold a full batch (or any records, with `partial`).
    pub fn send(&mut self, partial: bool) {
        let batch_size = if partial { 1 } else { self.batch_size };
        for edge in &mut self.edges {
            for (c, ch) in edge.channels.iter_mut().enumerate() {
                while let Some(front) = ch.pending.front() {
                    if matches!(front, ChannelEvent::Records(_)) {
                        if ch.credits == 0 {
                            break;
                        }
                        ch.credits -= 1;
                        self.batches_out += 1;
                    }
                    if let Some(event) = ch.pending.pop_front() {
                        ch.target.subtask.do_send(Deliver {
                            channel: ch.target.gate_channel,
                            event,
                        });
                    }
                }
                while ch.pending.is_empty()
                    && ch.credits > 0
                    && edge.partitioner.buffered(c) >= batch_size
                {
                    let Some(batch) = edge.partitioner.take(c) else {
                        break;
                    };
                    ch.credits -= 1;
                    self.batches_out += 1;
                    let event = ChannelEvent::Records(batch);
                    ch.target.subtask.do_send(Deliver {
                        channel: ch.target.gate_channel,
                        event,
                    });
                }
            }
        }
    }

    /// Whether some channel has records it may not send for lack of credit
    /// (a sealed batch, or a full buffer): then the subtask takes no more input.
    pub fn blocked(&self) -> bool {
        self.edges.iter().any(|edge| {
            edge.channels.iter().enumerate().any(|(c, ch)| {
                ch.credits == 0
                    && (!ch.pending.is_empty() || edge.partitioner.buffered(c) >= self.batch_size)
            })
        })
    }

    /// Whether records or events are still waiting anywhere.
    pub fn has_unsent(&self) -> bool {
        self.edges.iter().any(|edge| {
            edge.channels
                .iter()
                .enumerate()
                .any(|(c, ch)| !ch.pending.is_empty() || edge.partitioner.buffered(c) > 0)
        })
    }
}

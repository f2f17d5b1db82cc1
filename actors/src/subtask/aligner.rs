//! Barrier alignment as a plain type: fed what happens on a subtask's input
//! channels (a barrier on channel `c`, an alignment timeout, an abort), it
//! returns what the subtask must do (block a channel, take the snapshot,
//! capture a channel's queued records, release the channels, write the
//! snapshot, decline an overtaken checkpoint). No actor, no clock, no I/O:
//! the subtask carries the decisions out, and these rules are tested with
//! scripted sequences of events.
//!
//! - **Aligned** (exactly-once): a channel that delivered barrier `n` is
//!   blocked until barrier `n` arrived on every channel; then the snapshot is
//!   taken and the channels are released.
//! - **Unaligned** (exactly-once): the snapshot is taken at the first barrier;
//!   what is queued on a channel when its barrier overtakes it, and what is
//!   taken from a channel before its barrier arrives, is in flight: captured.
//!   An aligned checkpoint whose alignment times out becomes unaligned.
//! - **At-least-once**: nothing is blocked; the snapshot is taken at the last
//!   barrier.
//!
//! A newer barrier overtakes an alignment in progress: the older checkpoint
//! is declined as subsumed. A channel whose input ended still delivers the
//! barriers of later checkpoints (a finished subtask takes part in
//! checkpoints until the final one), so the end of input needs no rule here.

use crate::checkpoint::{BarrierKind, CheckpointBarrier};

/// What the subtask must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Hold back the records of this channel (and withhold its credit).
    Block(usize),
    /// Arm the alignment timeout of this checkpoint.
    ArmTimeout(CheckpointBarrier),
    /// Take the synchronous part of the snapshot now and forward the barrier
    /// (ahead of the queued output when `unaligned`).
    Snapshot {
        /// The barrier to snapshot for and forward.
        barrier: CheckpointBarrier,
        /// Whether in-flight records are captured.
        unaligned: bool,
    },
    /// Capture the records queued on this channel as in flight.
    CaptureQueue(usize),
    /// Release every blocked channel.
    Release,
    /// Every barrier arrived: write the snapshot taken for this checkpoint.
    Complete(u64),
    /// Decline this checkpoint: a newer barrier overtook it.
    Subsumed {
        /// The overtaken checkpoint.
        checkpoint: u64,
        /// The newer one.
        by: u64,
    },
}

/// The checkpoint whose barriers are arriving.
#[derive(Clone, Debug)]
struct Pending {
    barrier: CheckpointBarrier,
    seen: Vec<bool>,
    remaining: usize,
    /// The snapshot is taken (unaligned: at the first barrier or the timeout).
    taken: bool,
}

/// The alignment state of one subtask with `channels` input channels.
#[derive(Clone, Debug, Default)]
pub(crate) struct BarrierAligner {
    channels: usize,
    /// The newest checkpoint snapshotted or given up.
    last: u64,
    pending: Option<Pending>,
}

impl BarrierAligner {
    /// An aligner over `channels` input channels.
    pub fn new(channels: usize) -> Self {
        BarrierAligner {
            channels,
            last: 0,
            pending: None,
        }
    }

    /// The checkpoint being aligned, if any.
    pub fn pending(&self) -> Option<CheckpointBarrier> {
        self.pending.as_ref().map(|p| p.barrier)
    }

    /// A source (no input channel) is told to take checkpoint `barrier.id`.
    pub fn on_trigger(&mut self, barrier: CheckpointBarrier) -> Vec<Decision> {
        if barrier.id <= self.last {
            return Vec::new();
        }
        self.last = barrier.id;
        vec![
            Decision::Snapshot {
                barrier,
                unaligned: barrier.kind == BarrierKind::Unaligned,
            },
            Decision::Complete(barrier.id),
        ]
    }

    /// Barrier `barrier` arrived on `channel`; `overtook` when it passed the
    /// records queued on that channel (an unaligned barrier).
    pub fn on_barrier(
        &mut self,
        channel: usize,
        barrier: CheckpointBarrier,
        overtook: bool,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        if barrier.id <= self.last {
            return decisions;
        }
        if let Some(current) = &self.pending {
            if barrier.id < current.barrier.id {
                return decisions;
            }
            if barrier.id > current.barrier.id {
                let old = current.barrier.id;
                decisions.extend(self.abandon());
                decisions.push(Decision::Subsumed {
                    checkpoint: old,
                    by: barrier.id,
                });
            }
        }
        let channels = self.channels;
        let pending = self.pending.get_or_insert_with(|| Pending {
            barrier,
            seen: vec![false; channels],
            remaining: channels,
            taken: false,
        });
        if pending.seen.get(channel).copied().unwrap_or(true) {
            return decisions;
        }
        let first = pending.remaining == channels;
        pending.seen[channel] = true;
        pending.remaining -= 1;
        let done = pending.remaining == 0;
        match pending.barrier.kind {
            BarrierKind::Unaligned => {
                if !pending.taken {
                    pending.taken = true;
                    decisions.push(Decision::Snapshot {
                        barrier: pending.barrier,
                        unaligned: true,
                    });
                }
                if overtook {
                    decisions.push(Decision::CaptureQueue(channel));
                }
            }
            BarrierKind::Aligned => {
                if !pending.taken && !done {
                    decisions.push(Decision::Block(channel));
                    if first && !pending.barrier.is_final {
                        decisions.push(Decision::ArmTimeout(pending.barrier));
                    }
                }
            }
            BarrierKind::AtLeastOnce => {}
        }
        if done {
            decisions.extend(self.end());
        }
        decisions
    }

    /// The alignment timeout of checkpoint `id` fired: an aligned checkpoint
    /// still waiting becomes unaligned (what blocked channels hold came after
    /// their barrier and is not captured).
    pub fn on_timeout(&mut self, id: u64) -> Vec<Decision> {
        let Some(pending) = self.pending.as_mut() else {
            return Vec::new();
        };
        if pending.barrier.id != id || pending.taken || pending.barrier.kind != BarrierKind::Aligned
        {
            return Vec::new();
        }
        pending.barrier.kind = BarrierKind::Unaligned;
        pending.taken = true;
        vec![
            Decision::Release,
            Decision::Snapshot {
                barrier: pending.barrier,
                unaligned: true,
            },
        ]
    }

    /// Checkpoint `id` was aborted: an alignment of it is given up.
    pub fn on_abort(&mut self, id: u64) -> Vec<Decision> {
        if self.pending.as_ref().is_some_and(|p| p.barrier.id == id) {
            self.abandon()
        } else {
            Vec::new()
        }
    }

    /// Whether records taken from `channel` now are in flight for the
    /// snapshot being taken (an unaligned snapshot waiting for that channel's
    /// barrier): they are captured as channel state.
    pub fn captures(&self, channel: usize) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.taken && !p.seen.get(channel).copied().unwrap_or(true))
    }

    /// Every barrier arrived.
    fn end(&mut self) -> Vec<Decision> {
        let Some(pending) = self.pending.take() else {
            return Vec::new();
        };
        self.last = pending.barrier.id;
        let mut decisions = vec![Decision::Release];
        if !pending.taken {
            decisions.push(Decision::Snapshot {
                barrier: pending.barrier,
                unaligned: false,
            });
        }
        decisions.push(Decision::Complete(pending.barrier.id));
        decisions
    }

    /// Gives up the alignment in progress.
    fn abandon(&mut self) -> Vec<Decision> {
        match self.pending.take() {
            Some(pending) => {
                self.last = self.last.max(pending.barrier.id);
                vec![Decision::Release]
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::*;
    use super::*;

    fn barrier(id: u64, kind: BarrierKind) -> CheckpointBarrier {
        CheckpointBarrier {
            id,
            timestamp: 0,
            kind,
            savepoint: false,
            is_final: false,
            stop: false,
            completed_before: None,
        }
    }

    fn snapshot(b: CheckpointBarrier, unaligned: bool) -> Decision {
        Snapshot {
            barrier: b,
            unaligned,
        }
    }

    #[test]
    fn aligned_blocks_each_channel_until_the_last_barrier_then_snapshots_and_releases() {
        let mut a = BarrierAligner::new(3);
        let b = barrier(1, BarrierKind::Aligned);
        assert_eq!(a.on_barrier(1, b, false), vec![Block(1), ArmTimeout(b)]);
        assert_eq!(a.on_barrier(1, b, false), vec![], "a repeated barrier");
        assert_eq!(a.on_barrier(0, b, false), vec![Block(0)]);
        assert!(!a.captures(2), "aligned checkpoints capture nothing");
        assert_eq!(
            a.on_barrier(2, b, false),
            vec![Release, snapshot(b, false), Complete(1)]
        );
        assert_eq!(a.pending(), None);
        assert_eq!(
            a.on_barrier(0, b, false),
            vec![],
            "a late barrier of a done checkpoint"
        );
    }

    #[test]
    fn unaligned_snapshots_at_the_first_barrier_and_captures_until_each_channels_barrier() {
        let mut a = BarrierAligner::new(2);
        let b = barrier(4, BarrierKind::Unaligned);
        assert_eq!(
            a.on_barrier(0, b, true),
            vec![snapshot(b, true), CaptureQueue(0)]
        );
        assert!(!a.captures(0), "its barrier is in");
        assert!(
            a.captures(1),
            "what channel 1 delivers before its barrier is in flight"
        );
        assert_eq!(
            a.on_barrier(1, b, true),
            vec![CaptureQueue(1), Release, Complete(4)]
        );
        assert!(!a.captures(1));
    }

    #[test]
    fn an_unaligned_barrier_taken_in_order_captures_no_queue() {
        let mut a = BarrierAligner::new(1);
        let b = barrier(2, BarrierKind::Unaligned);
        assert_eq!(
            a.on_barrier(0, b, false),
            vec![snapshot(b, true), Release, Complete(2)]
        );
    }

    #[test]
    fn an_aligned_checkpoint_that_times_out_becomes_unaligned() {
        let mut a = BarrierAligner::new(2);
        let b = barrier(3, BarrierKind::Aligned);
        assert_eq!(a.on_barrier(0, b, false), vec![Block(0), ArmTimeout(b)]);
        assert_eq!(a.on_timeout(2), vec![], "another checkpoint's timeout");
        let unaligned = barrier(3, BarrierKind::Unaligned);
        assert_eq!(a.on_timeout(3), vec![Release, snapshot(unaligned, true)]);
        assert!(a.captures(1) && !a.captures(0));
        assert_eq!(a.on_timeout(3), vec![], "once");
        assert_eq!(a.on_barrier(1, b, false), vec![Release, Complete(3)]);
    }

    #[test]
    fn a_final_aligned_checkpoint_never_times_out() {
        let mut a = BarrierAligner::new(2);
        let mut b = barrier(9, BarrierKind::Aligned);
        b.is_final = true;
        assert_eq!(a.on_barrier(0, b, false), vec![Block(0)]);
    }

    #[test]
    fn at_least_once_blocks_nothing_and_snapshots_at_the_last_barrier() {
        let mut a = BarrierAligner::new(2);
        let b = barrier(5, BarrierKind::AtLeastOnce);
        assert_eq!(a.on_barrier(1, b, false), vec![]);
        assert!(!a.captures(0));
        assert_eq!(
            a.on_barrier(0, b, false),
            vec![Release, snapshot(b, false), Complete(5)]
        );
    }

    #[test]
    fn a_newer_barrier_overtakes_the_alignment_in_progress() {
        let mut a = BarrierAligner::new(2);
        let (b1, b2) = (
            barrier(1, BarrierKind::Aligned),
            barrier(2, BarrierKind::Aligned),
        );
        assert_eq!(a.on_barrier(0, b1, false), vec![Block(0), ArmTimeout(b1)]);
        assert_eq!(
            a.on_barrier(1, b2, false),
            vec![
                Release,
                Subsumed {
                    checkpoint: 1,
                    by: 2
                },
                Block(1),
                ArmTimeout(b2)
            ]
        );
        assert_eq!(
            a.on_barrier(1, b1, false),
            vec![],
            "the overtaken barrier is ignored"
        );
        assert_eq!(
            a.on_barrier(0, b2, false),
            vec![Release, snapshot(b2, false), Complete(2)]
        );
    }

    #[test]
    fn concurrent_checkpoints_align_one_after_the_other() {
        // Checkpoint 2's barriers arrive only after 1's on every channel
        // (barriers travel in order): each aligns in turn.
        let mut a = BarrierAligner::new(2);
        let (b1, b2) = (
            barrier(1, BarrierKind::Aligned),
            barrier(2, BarrierKind::Aligned),
        );
        a.on_barrier(0, b1, false);
        assert_eq!(
            a.on_barrier(1, b1, false),
            vec![Release, snapshot(b1, false), Complete(1)]
        );
        assert_eq!(a.on_barrier(1, b2, false), vec![Block(1), ArmTimeout(b2)]);
        assert_eq!(
            a.on_barrier(0, b2, false),
            vec![Release, snapshot(b2, false), Complete(2)]
        );
    }

    #[test]
    fn an_aborted_alignment_is_released_and_its_late_barriers_ignored() {
        let mut a = BarrierAligner::new(2);
        let b = barrier(6, BarrierKind::Aligned);
        a.on_barrier(0, b, false);
        assert_eq!(a.on_abort(5), vec![], "another checkpoint");
        assert_eq!(a.on_abort(6), vec![Release]);
        assert_eq!(a.on_barrier(1, b, false), vec![]);
        let next = barrier(7, BarrierKind::Aligned);
        assert_eq!(
            a.on_barrier(1, next, false),
            vec![Block(1), ArmTimeout(next)]
        );
    }

    #[test]
    fn a_source_snapshots_once_per_checkpoint() {
        let mut a = BarrierAligner::new(0);
        let b = barrier(3, BarrierKind::Unaligned);
        assert_eq!(a.on_trigger(b), vec![snapshot(b, true), Complete(3)]);
        assert_eq!(a.on_trigger(b), vec![]);
        assert_eq!(a.on_trigger(barrier(2, BarrierKind::Aligned)), vec![]);
    }

    #[test]
    fn a_barrier_on_a_channel_that_does_not_exist_is_ignored() {
        let mut a = BarrierAligner::new(1);
        assert_eq!(
            a.on_barrier(4, barrier(1, BarrierKind::Aligned), false),
            vec![]
        );
    }
}

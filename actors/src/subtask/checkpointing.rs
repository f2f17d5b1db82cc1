//! A subtask's part in checkpoints: barrier alignment, snapshots, in-flight
//! capture, acknowledgements, and the final checkpoint.
//!
//! - **Aligned** (exactly-once): an input channel that delivered barrier `n`
//!   is blocked (its records wait in its queue, its credit is withheld) until
//!   barrier `n` arrived on every channel; then the subtask snapshots, forwards
//!   the barrier behind its output, and releases the channels.
//! - **Unaligned** (exactly-once): the barrier is handled as soon as it reaches
//!   the mailbox, ahead of the records queued before it. At the first barrier
//!   the subtask snapshots and sends the barrier ahead of its own queued output;
//!   the records the barriers overtook, on the input side (queued or still
//!   arriving before each channel's barrier) and on the output side, are
//!   captured as channel state. An aligned checkpoint whose alignment takes
//!   longer than the aligned timeout switches to this.
//! - **At-least-once**: nothing is blocked; the snapshot is taken when the
//!   last barrier arrived, so records after an early barrier may be in it.
//!
//! The rules are the [`BarrierAligner`]'s (a plain type, see `aligner`); this
//! file carries its decisions out. The synchronous part of a snapshot runs
//! here; serialising and writing run on a blocking thread, which then
//! acknowledges (or declines) to the coordinator.

use crate::codec::CodecError;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{debug, warn};

use super::aligner::{BarrierAligner, Decision};
use super::{Phase, Subtask};
use crate::batch::BatchData;
use crate::checkpoint::coordinator::{CheckpointReport, ReportKind};
use crate::checkpoint::metadata::{ChannelState, SubtaskState};
use crate::checkpoint::{BarrierKind, CheckpointBarrier, SubtaskCheckpointStats};
use crate::operator::PendingSnapshot;

/// A snapshot whose synchronous part is taken.
pub(crate) struct TakenSnapshot {
    barrier: CheckpointBarrier,
    operators: Vec<(String, PendingSnapshot)>,
    input_channels: BTreeMap<usize, Vec<Vec<u8>>>,
    output_channels: Vec<ChannelState>,
    sync: Duration,
    alignment: Duration,
    unaligned: bool,
    /// Why the snapshot cannot complete, if something went wrong after it was taken.
    broken: Option<String>,
}

/// What the subtask keeps of the checkpoint its barriers are arriving for
/// (the decisions are the [`BarrierAligner`]'s).
#[derive(Default)]
pub(crate) struct Checkpointing {
    aligner: BarrierAligner,
    /// When the alignment of this checkpoint began.
    started: Option<(u64, Instant)>,
    /// Its snapshot, once taken (unaligned: before every barrier arrived).
    taken: Option<TakenSnapshot>,
    /// The latest checkpoint whose completion the operators were told of.
    notified_complete: Option<u64>,
}

impl Checkpointing {
    /// Checkpointing over `channels` input channels.
    pub fn new(channels: usize) -> Self {
        Checkpointing {
            aligner: BarrierAligner::new(channels),
            ..Checkpointing::default()
        }
    }
}

impl Subtask {
    fn report_checkpoint(&self, kind: ReportKind) {
        if let Some(checkpointing) = &self.spec.checkpointing {
            checkpointing.coordinator.do_send(CheckpointReport {
                task: checkpointing.task,
                kind,
            });
        }
    }

    fn decline(&self, id: u64, reason: String) {
        warn!(parent: &self.span, checkpoint = id, %reason, "checkpoint declined");
        self.report_checkpoint(ReportKind::Declined {
            id,
            reason,
            subsumed: false,
        });
    }

    /// Whether the subtask may still take part in checkpoints.
    fn checkpointable(&self) -> bool {
        self.spec.checkpointing.is_some()
            && matches!(
                self.phase,
                Phase::Running | Phase::Draining | Phase::Finishing
            )
    }

    /// Tells the operators of the checkpoint `barrier` says completed before
    /// it, if the notification has not come yet (it may come after the
    /// barrier); whether the subtask still takes part in checkpoints after.
    fn hear_of_completion(&mut self, barrier: CheckpointBarrier, ctx: &mut Context<Self>) -> bool {
        if !self.checkpointable() {
            return false;
        }
        if let Some(completed) = barrier.completed_before {
            self.on_notify(completed, true, ctx);
        }
        self.checkpointable()
    }

    /// A source subtask takes checkpoint `barrier.id`.
    pub(super) fn trigger_at_source(
        &mut self,
        barrier: CheckpointBarrier,
        ctx: &mut Context<Self>,
    ) {
        if !self.hear_of_completion(barrier, ctx) {
            return;
        }
        let decisions = self.checkpoints.aligner.on_trigger(barrier);
        self.carry_out(decisions, ctx);
        self.after_work(ctx);
    }

    /// Barrier `barrier` arrived on input channel `channel`; `priority` when it
    /// overtook the records queued in that channel (unaligned).
    pub(super) fn on_barrier(
        &mut self,
        channel: usize,
        barrier: CheckpointBarrier,
        priority: bool,
        ctx: &mut Context<Self>,
    ) {
        if !self.hear_of_completion(barrier, ctx) {
            return;
        }
        let decisions = self
            .checkpoints
            .aligner
            .on_barrier(channel, barrier, priority);
        let aligning = self.checkpoints.aligner.pending().map(|b| b.id);
        if aligning.is_some() && self.checkpoints.started.map(|(id, _)| id) != aligning {
            self.checkpoints.started = aligning.map(|id| (id, Instant::now()));
        }
        self.carry_out(decisions, ctx);
        self.after_work(ctx);
    }

    /// Does what the aligner decided.
    fn carry_out(&mut self, decisions: Vec<Decision>, ctx: &mut Context<Self>) {
        for decision in decisions {
            match decision {
                Decision::Block(channel) => self.gate.channels[channel].blocked = true,
                Decision::ArmTimeout(barrier) => self.arm_aligned_timeout(barrier, ctx),
                Decision::Snapshot { barrier, unaligned } => {
                    let waited = match self.checkpoints.started {
                        Some((id, started)) if id == barrier.id => started.elapsed(),
                        _ => Duration::ZERO,
                    };
                    let taken = self.take_snapshot(barrier, unaligned, waited);
                    self.checkpoints.taken = Some(taken);
                }
                Decision::CaptureQueue(channel) => self.capture_queue(channel),
                Decision::Release => self.gate.unblock_all(),
                Decision::Complete(id) => {
                    if let Some(taken) = self.checkpoints.taken.take() {
                        if taken.barrier.id == id {
                            self.complete_snapshot(taken);
                        }
                    }
                }
                Decision::Subsumed { checkpoint, by } => {
                    self.drop_snapshot(checkpoint);
                    debug!(parent: &self.span, checkpoint, newer = by, "checkpoint overtaken");
                    self.report_checkpoint(ReportKind::Declined {
                        id: checkpoint,
                        reason: format!("overtaken by the barrier of checkpoint {by}"),
                        subsumed: true,
                    });
                }
            }
        }
    }

    /// Forgets the snapshot taken for `checkpoint`, if any (given up).
    fn drop_snapshot(&mut self, checkpoint: u64) {
        if self
            .checkpoints
            .taken
            .as_ref()
            .is_some_and(|t| t.barrier.id == checkpoint)
        {
            self.checkpoints.taken = None;
        }
    }

    fn arm_aligned_timeout(&mut self, barrier: CheckpointBarrier, ctx: &mut Context<Self>) {
        let Some(timeout) = self
            .spec
            .checkpointing
            .as_ref()
            .and_then(|c| c.aligned_timeout)
        else {
            return;
        };
        ctx.run_later(timeout, move |act, ctx| {
            let decisions = act.checkpoints.aligner.on_timeout(barrier.id);
            if decisions.is_empty() {
                return;
            }
            debug!(parent: &act.span, checkpoint = barrier.id, "alignment timed out: switching to unaligned");
            act.carry_out(decisions, ctx);
            act.after_work(ctx);
            act.schedule_step(ctx);
        });
    }

    /// The synchronous part: operator snapshots, then the barrier goes downstream.
    fn take_snapshot(
        &mut self,
        barrier: CheckpointBarrier,
        unaligned: bool,
        alignment: Duration,
    ) -> TakenSnapshot {
        let started = Instant::now();
        debug!(parent: &self.span, checkpoint = barrier.id, unaligned, "snapshot");
        let mut broken = self
            .spec
            .config
            .faults
            .as_ref()
            .and_then(|f| f.on_snapshot(barrier.id));
        let operators = match self.chain.snapshot(barrier.id, barrier.savepoint) {
            Ok(operators) => operators,
            Err(failure) => {
                broken = Some(format!(
                    "operator `{}` failed to snapshot: {}",
                    failure.operator, failure.cause
                ));
                Vec::new()
            }
        };
        let mut output_channels = Vec::new();
        if unaligned {
            let mut forwarded = barrier;
            forwarded.kind = BarrierKind::Unaligned;
            match self.outputs.emit_barrier_ahead(forwarded) {
                Ok(captured) => output_channels = captured,
                Err(e) => broken = Some(format!("cannot capture in-flight output records: {e}")),
            }
        } else {
            self.outputs
                .emit(crate::channel::ChannelEvent::Barrier(barrier));
        }
        self.outputs.send(false);
        if barrier.is_final {
            // The coordinator's final checkpoint: its completion ends the subtask.
            self.final_checkpoint = Some(barrier.id);
        }
        if barrier.stop {
            self.stopping = Some(barrier.id);
        }
        TakenSnapshot {
            barrier,
            operators,
            input_channels: BTreeMap::new(),
            output_channels,
            sync: started.elapsed(),
            alignment,
            unaligned,
            broken,
        }
    }

    fn capture(&mut self, channel: usize, encoded: Result<Vec<Vec<u8>>, CodecError>) {
        let Some(taken) = self.checkpoints.taken.as_mut() else {
            return;
        };
        match encoded {
            Ok(batches) if batches.is_empty() => {}
            Ok(batches) => taken
                .input_channels
                .entry(channel)
                .or_default()
                .extend(batches),
            Err(e) => {
                taken.broken = Some(format!(
                    "cannot capture in-flight records of input channel {channel}: {e}"
                ))
            }
        }
    }

    fn capture_queue(&mut self, channel: usize) {
        let encoded = self.gate.queued_records(channel);
        self.capture(channel, encoded);
    }

    /// A batch taken from `channel` while an unaligned snapshot waits for that
    /// channel's barrier was in flight at the snapshot: it is channel state.
    pub(super) fn capture_in_flight(&mut self, channel: usize, batch: &dyn BatchData) {
        if self.checkpoints.aligner.captures(channel) {
            let encoded = batch.encode().map(|b| vec![b]);
            self.capture(channel, encoded);
        }
    }

    /// Serialises and writes the snapshot off the processing path, then acknowledges.
    fn complete_snapshot(&mut self, taken: TakenSnapshot) {
        let Some(checkpointing) = self.spec.checkpointing.clone() else {
            return;
        };
        let id = taken.barrier.id;
        if let Some(reason) = taken.broken {
            return self.decline(id, reason);
        }
        let span = self.span.clone();
        let savepoint = taken.barrier.savepoint;
        actix_rt::task::spawn_blocking(move || {
            let started = Instant::now();
            let written = (|| -> Result<_, String> {
                let mut operators = Vec::with_capacity(taken.operators.len());
                for (uid, pending) in taken.operators {
                    let snapshot = pending.finish().map_err(|e| {
                        format!("operator `{uid}` failed to write its snapshot: {e}")
                    })?;
                    if savepoint {
                        snapshot.check_self_contained(&uid)?;
                    }
                    operators.push((uid, snapshot));
                }
                let state = SubtaskState {
                    checkpoint_id: id,
                    operators,
                    input_channels: taken
                        .input_channels
                        .into_iter()
                        .map(|(index, batches)| ChannelState {
                            index,
                            channel: 0,
                            batches,
                        })
                        .collect(),
                    output_channels: taken.output_channels,
                };
                let in_flight = state.in_flight_bytes();
                let bytes = state.encode().map_err(|e| e.to_string())?;
                let shared_refs = state.shared_refs();
                if !shared_refs.is_empty() {
                    // Written before the state, so that no moment exists where
                    // the state refers to files the storage does not count.
                    checkpointing
                        .storage
                        .write_shared_refs(id, &checkpointing.state_name, &shared_refs)
                        .map_err(|e| e.to_string())?;
                }
                let handle = checkpointing
                    .storage
                    .write_state(id, &checkpointing.state_name, &bytes)
                    .map_err(|e| e.to_string())?;
                Ok((handle, bytes.len() as u64, in_flight))
            })();
            let kind = match written {
                Ok((handle, state_bytes, in_flight_bytes)) => ReportKind::Acknowledged {
                    id,
                    handle,
                    stats: SubtaskCheckpointStats {
                        sync_duration: taken.sync,
                        async_duration: started.elapsed(),
                        alignment_duration: taken.alignment,
                        state_bytes,
                        in_flight_bytes,
                        unaligned: taken.unaligned,
                    },
                },
                Err(reason) => {
                    warn!(parent: &span, checkpoint = id, %reason, "checkpoint declined");
                    ReportKind::Declined {
                        id,
                        reason,
                        subsumed: false,
                    }
                }
            };
            checkpointing.coordinator.do_send(CheckpointReport {
                task: checkpointing.task,
                kind,
            });
        });
    }

    /// Checkpoint `id` completed or was aborted.
    pub(super) fn on_notify(&mut self, id: u64, complete: bool, ctx: &mut Context<Self>) {
        if !matches!(
            self.phase,
            Phase::Running | Phase::Draining | Phase::Finishing
        ) {
            return;
        }
        if complete {
            // Told already (by a later barrier), or of a later one.
            if self.checkpoints.notified_complete >= Some(id) {
                return;
            }
            self.checkpoints.notified_complete = Some(id);
            if let Some(cause) = self
                .spec
                .config
                .faults
                .as_ref()
                .and_then(|f| f.on_commit(id))
            {
                let operator = self.spec.task.clone();
                return self.fail(crate::chain::Failure::retryable(operator, cause), ctx);
            }
        }
        let notified = if complete {
            self.chain.notify_complete(id)
        } else {
            self.chain.notify_aborted(id)
        };
        if let Err(failure) = notified {
            return self.fail(failure, ctx);
        }
        if self.stopping == Some(id) {
            self.stopping = None;
            if complete {
                // Stopped with a savepoint: nothing came after its barrier, so
                // the subtask ends here, without draining or end of input.
                debug!(parent: &self.span, checkpoint = id, "stopped with a savepoint");
                return self.finish(ctx);
            }
            // The stop failed: the job goes on.
            self.final_checkpoint = None;
            self.schedule_step(ctx);
        }
        if !complete {
            let decisions = self.checkpoints.aligner.on_abort(id);
            if !decisions.is_empty() {
                self.carry_out(decisions, ctx);
                self.drop_snapshot(id);
                self.schedule_step(ctx);
            }
        }
        if complete && self.final_checkpoint.is_some_and(|f| id >= f) {
            self.final_complete = true;
            self.try_finish(ctx);
        }
        self.after_work(ctx);
    }
}

//! The subtask actor: one parallel instance of a chain of operators.
//!
//! Its protocol, as the `Handler` impls below:
//! - [`Wire`] (from the supervisor): the addresses of its peers, once.
//! - [`Start`]: build and open the operators, then run.
//! - [`Deliver`] (from an upstream subtask): a batch, a watermark, an idleness
//!   change or end-of-input for one input channel. The handler only enqueues;
//!   processing happens in steps.
//! - [`Credit`] (from a downstream subtask): room for more batches on one channel.
//! - [`Cancel`]: stop now.
//!
//! A *step* processes at most `batches_per_step` batches (or source polls) and
//! then yields to the Arbiter, so that messages and the other actors on the
//! thread get their turn (tokio looks at its timers every 61 yields of a busy
//! thread, so under full load a timer may be a few steps late); at most every
//! 250 µs the thread also offers its core to the other threads of the machine
//! (`sched_yield`), so that a thread of the service the job runs in does not
//! wait for the operating system to preempt a busy Arbiter. A step stops
//! early when the input gate is empty (a [`Deliver`] schedules the next), when
//! an output channel has a full batch and no credit (a [`Credit`] schedules the
//! next), or when a source had nothing to give (it is polled again after a
//! pause that doubles from 1 ms to 100 ms, so that an idle source lets its
//! thread sleep and its timers fire on time).
//!
//! User code runs under `catch_unwind`: a panic or a returned error ends the
//! subtask and is reported to the supervisor with the operator's name. A subtask
//! that disappears without reporting (dropped with its Arbiter, say) reports
//! itself from `Drop`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::prelude::*;
use tracing::{debug, Span};

mod aligner;
mod checkpointing;
mod input_gate;
pub mod protocol;
pub mod spec;

pub use protocol::{
    Cancel, ChannelTarget, Credit, Deliver, NotifyCheckpoint, Start, TriggerCheckpoint, Upstream,
    Wire,
};
pub use spec::{SubtaskCheckpointing, SubtaskSpec};

use std::time::Instant;

use crate::chain::{Chain, Failure};
use crate::channel::ChannelEvent;
use crate::checkpoint::protocol::{CheckpointReport, ReportKind};
use crate::checkpoint::BarrierKind;
use crate::liveness::Alive;
use crate::metrics::SubtaskMetrics;
use crate::operator::{processing_time_now, SourceStatus};
use crate::output::Outputs;
use crate::supervisor::protocol::{SubtaskOutcome, SubtaskReport};
use input_gate::{InputChannel, InputGate};

/// The longest a step runs before it yields (when its batches take long).
const STEP_TIME_BUDGET: Duration = Duration::from_millis(1);

/// How often a working subtask publishes its state metrics (computing them
/// is not free).
const STATE_METRICS_PERIOD: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    /// Inputs ended; delivering the last buffered output.
    Draining,
    /// Output delivered and ended; waiting for the final checkpoint to complete.
    Finishing,
    Finished,
    Failed,
    Canceled,
}

/// The actor running one parallel instance of a chain.
pub struct Subtask {
    spec: SubtaskSpec,
    reporter: Recipient<SubtaskReport>,
    /// Dropped with the subtask: tells the supervisor it is gone.
    _alive: Alive,
    chain: Chain,
    gate: InputGate,
    outputs: Outputs,
    phase: Phase,
    step_scheduled: bool,
    blocked: bool,
    linger_armed: bool,
    /// Processing time for which a timer is armed.
    timer_armed: Option<i64>,
    /// How long to wait before polling a source that had nothing to give.
    source_backoff: Duration,
    source_wait_armed: bool,
    records_in: u64,
    /// Bytes taken from the input channels, estimated.
    bytes_in: u64,
    batches_in: u64,
    /// When the state metrics were last published to the gauges.
    states_published: Option<Instant>,
    /// The checkpoint whose barriers are arriving.
    checkpoints: checkpointing::Checkpointing,
    /// The first checkpoint snapshotted after all input ended: its completion ends the subtask.
    final_checkpoint: Option<u64>,
    final_complete: bool,
    /// The stop-with-savepoint this subtask snapshotted: a source emits
    /// nothing more, no processing-time timer fires, and its completion ends
    /// the subtask.
    stopping: Option<u64>,
    span: Span,
}

/// How often, at most, a busy Arbiter thread offers its core to the other
/// threads of the machine ([`yield_thread_now_and_then`]).
const THREAD_YIELD_PERIOD: Duration = Duration::from_micros(250);

thread_local! {
    /// When this Arbiter thread last offered its core.
    static THREAD_YIELDED_AT: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Offers the core to another runnable thread (`sched_yield`), at most once
/// per [`THREAD_YIELD_PERIOD`] on this thread. A job that keeps every core
/// busy would otherwise leave a thread that wakes on one of them (a query
/// from the service the job is embedded in, an HTTP handler, the
/// supervisor) waiting for the operating system to preempt the Arbiter,
/// which took 3 ms at p99 on a 2-core machine; now it waits for the step in
/// progress. With nothing else to run, the call returns at once.
fn yield_thread_now_and_then() {
    let now = Instant::now();
    THREAD_YIELDED_AT.with(|at| {
        if at
            .get()
            .is_none_or(|at| now.duration_since(at) >= THREAD_YIELD_PERIOD)
        {
            at.set(Some(now));
            std::thread::yield_now();
        }
    });
}

/// A future that is pending once: lets the Arbiter run other tasks between steps.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Subtask {
    /// A subtask that reports to `reporter`; it does nothing before [`Wire`] and [`Start`].
    pub(crate) fn new(spec: SubtaskSpec, reporter: Recipient<SubtaskReport>, alive: Alive) -> Self {
        let span =
            tracing::info_span!("subtask", job = %spec.job, task = %spec.task, index = spec.index);
        Subtask {
            spec,
            reporter,
            _alive: alive,
            chain: Chain::default(),
            gate: InputGate::default(),
            outputs: Outputs::default(),
            phase: Phase::Created,
            step_scheduled: false,
            blocked: false,
            linger_armed: false,
            timer_armed: None,
            source_backoff: Duration::ZERO,
            source_wait_armed: false,
            records_in: 0,
            bytes_in: 0,
            batches_in: 0,
            states_published: None,
            checkpoints: checkpointing::Checkpointing::default(),
            final_checkpoint: None,
            final_complete: false,
            stopping: None,
            span,
        }
    }

    /// Puts the in-flight records of a restored unaligned checkpoint back:
    /// input records ahead of anything received, output records ahead of
    /// anything produced.
    fn restore_channel_state(&mut self) -> Result<(), String> {
        let Some(restored) = self.spec.restored.take() else {
            return Ok(());
        };
        for state in &restored.input_channels {
            let decode = self.spec.input_decoders.get(state.index).ok_or_else(|| {
                format!("restored in-flight records for input channel {} which this subtask does not have", state.index)
            })?;
            let batches = state
                .batches
                .iter()
                .map(|b| decode(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("restored in-flight records: {e}"))?;
            self.gate.restore_front(state.index, batches);
        }
        for state in &restored.output_channels {
            let decode = self.spec.output_decoders.get(state.index).ok_or_else(|| {
                format!(
                    "restored in-flight records for output {} which this subtask does not have",
                    state.index
                )
            })?;
            let batches = state
                .batches
                .iter()
                .map(|b| decode(b))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("restored in-flight records: {e}"))?;
            self.outputs
                .restore_front(state.index, state.channel, batches)?;
        }
        let batches: usize = restored
            .input_channels
            .iter()
            .chain(&restored.output_channels)
            .map(|c| c.batches.len())
            .sum();
        if batches > 0 {
            debug!(parent: &self.span, batches, "restored in-flight records");
        }
        self.spec.restored = Some(restored);
        Ok(())
    }

    fn report(&mut self, outcome: SubtaskOutcome) {
        self.reporter.do_send(SubtaskReport {
            attempt: self.spec.attempt,
            chain: self.spec.chain,
            subtask: self.spec.index,
            parallelism: self.spec.parallelism,
            outcome,
        });
    }

    fn fail(&mut self, failure: Failure, ctx: &mut Context<Self>) {
        if matches!(
            self.phase,
            Phase::Failed | Phase::Canceled | Phase::Finished
        ) {
            return;
        }
        // The supervisor logs the failure once, with what it decides.
        debug!(parent: &self.span, operator = %failure.operator, cause = %failure.cause, "subtask failed");
        self.phase = Phase::Failed;
        self.spec.gauges.set_running(false);
        self.report(SubtaskOutcome::Failed {
            operator: failure.operator,
            cause: failure.cause,
            retryable: failure.retryable,
        });
        self.close_after_abort();
        ctx.stop();
    }

    /// Closes the operators of a failed or canceled subtask (a finished one
    /// closed them already); a failure to close is only logged: the
    /// subtask's outcome is decided.
    fn close_after_abort(&mut self) {
        if let Err(failure) = self.chain.close() {
            debug!(parent: &self.span, operator = %failure.operator, cause = %failure.cause, "closing after the subtask ended failed");
        }
    }

    fn schedule_step(&mut self, ctx: &mut Context<Self>) {
        if !self.step_scheduled && matches!(self.phase, Phase::Running | Phase::Finishing) {
            self.step_scheduled = true;
            ctx.spawn(
                actix::fut::wrap_future::<_, Self>(YieldNow(false))
                    .map(|_, act, ctx| act.step(ctx)),
            );
        }
    }

    /// After a step whose user code took long, the next step comes after a
    /// deferred yield (`tokio::task::yield_now` in a task of its own): the
    /// thread first runs every actor that is ready, those woken from other
    /// threads included (a source's checkpoint trigger, a cancel), and polls
    /// its timers and I/O; then this subtask goes on at once, without
    /// sleeping. Re-queueing on the thread's local queue instead would let
    /// actors woken from other threads wait for the remote-queue check
    /// (every 31 polls); a zero-length timer would sleep up to a millisecond
    /// (the timer wheel's resolution) with the core idle while input waits.
    fn schedule_slow_step(&mut self, ctx: &mut Context<Self>) {
        if !self.step_scheduled && matches!(self.phase, Phase::Running | Phase::Finishing) {
            self.step_scheduled = true;
            // The yield runs as a task of its own: a message arriving
            // meanwhile polls this actor, and would end a yield polled here.
            ctx.spawn(
                actix::fut::wrap_future::<_, Self>(actix_rt::spawn(actix_rt::task::yield_now()))
                    .map(|_, act, ctx| act.step(ctx)),
            );
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        self.step_scheduled = false;
        if self.phase == Phase::Finishing {
            // Only checkpoint barriers still arrive.
            while let Some((channel, event)) = self.gate.pop() {
                if let ChannelEvent::Barrier(barrier) = event {
                    self.on_barrier(channel, barrier, false, ctx);
                }
            }
            self.outputs.send(true);
            return;
        }
        if self.phase != Phase::Running {
            return;
        }
        let started = Instant::now();
        let mut budget = self.spec.config.batches_per_step;
        loop {
            self.outputs.send(false);
            if self.outputs.blocked() {
                self.blocked = true;
                self.spec.gauges.blocked(Instant::now());
                break;
            }
            // A step ends after its batch budget or a millisecond, whichever
            // comes first, so a slow operator still lets the mailbox be read.
            if started.elapsed() >= STEP_TIME_BUDGET {
                self.schedule_slow_step(ctx);
                break;
            }
            if budget == 0 {
                self.schedule_step(ctx);
                break;
            }
            if self.stopping.is_some() && self.chain.is_source() {
                // Stopped at the savepoint barrier: nothing more until it completes (or fails).
                break;
            }
            budget -= 1;
            let progressed = if self.chain.is_source() {
                self.poll_source()
            } else {
                self.process_next_event(ctx)
            };
            match progressed {
                Err(failure) => return self.fail(failure, ctx),
                Ok(false) => {
                    if self.chain.is_source() {
                        self.wait_for_source(ctx);
                    }
                    break;
                }
                Ok(true) if self.phase != Phase::Running => break,
                Ok(true) => {}
            }
        }
        self.after_work(ctx);
        self.spec.gauges.add_busy(started.elapsed());
        yield_thread_now_and_then();
    }

    /// What every burst of work ends with: deliver, arm timers, or finish;
    /// then the live metrics are published.
    fn after_work(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Draining {
            self.drain(ctx);
        } else {
            self.outputs.send(false);
            self.arm_linger(ctx);
            self.arm_processing_timer(ctx);
        }
        self.publish_metrics();
    }

    /// Publishes the live figures (a few relaxed stores), and the state
    /// metrics and operator counters at most once a second.
    fn publish_metrics(&mut self) {
        let watermark = if self.chain.is_source() {
            self.outputs.watermark_out
        } else {
            Some(self.gate.valve.current()).filter(|&w| w != i64::MIN)
        };
        self.spec.gauges.publish(crate::live::StepFigures {
            records_in: self.records_in,
            records_out: self.outputs.records_out,
            bytes_in: self.bytes_in,
            bytes_out: self.outputs.bytes_out,
            batches_in: self.batches_in,
            batches_out: self.outputs.batches_out,
            queued_batches: self
                .gate
                .channels
                .iter()
                .map(|c| c.queued_batches as u64)
                .sum(),
            credits: self.outputs.credits(),
            watermark: watermark.unwrap_or(i64::MIN),
        });
        let now = Instant::now();
        if self
            .states_published
            .is_none_or(|at| now.duration_since(at) >= STATE_METRICS_PERIOD)
        {
            self.states_published = Some(now);
            self.spec
                .gauges
                .publish_states(self.chain.state_metrics(), self.chain.counters());
        }
    }

    /// Polls the source once and pushes its output through the chain.
    /// Returns `false` when the source had nothing to give right now.
    fn poll_source(&mut self) -> Result<bool, Failure> {
        let (status, emitted) = self
            .chain
            .poll_source(self.spec.config.batch_size, &mut self.outputs)?;
        if status == SourceStatus::Finished {
            debug!(parent: &self.span, "source finished");
            self.chain.end_inputs(0, &mut self.outputs)?;
            self.phase = Phase::Draining;
            return Ok(true);
        }
        if emitted {
            self.source_backoff = Duration::ZERO;
        }
        Ok(emitted)
    }

    /// A source that had nothing to give is polled again after a pause that
    /// doubles (1 ms up to 100 ms) while it stays empty, instead of at once:
    /// a spinning source would keep its Arbiter busy and delay every timer on it.
    fn wait_for_source(&mut self, ctx: &mut Context<Self>) {
        if self.source_wait_armed {
            return;
        }
        self.source_backoff =
            (self.source_backoff * 2).clamp(Duration::from_millis(1), Duration::from_millis(100));
        self.source_wait_armed = true;
        ctx.run_later(self.source_backoff, |act, ctx| {
            act.source_wait_armed = false;
            act.schedule_step(ctx);
        });
    }

    /// Hands a watermark advance and an idleness change from the input gate to the chain.
    fn on_event_time(
        &mut self,
        watermark: Option<i64>,
        idleness: Option<bool>,
    ) -> Result<(), Failure> {
        if let Some(watermark) = watermark {
            self.chain
                .head_event(ChannelEvent::Watermark(watermark), &mut self.outputs)?;
        }
        if let Some(idle) = idleness {
            self.chain
                .head_event(ChannelEvent::Idle(idle), &mut self.outputs)?;
        }
        Ok(())
    }

    /// Takes one event from the input gate and handles it.
    fn process_next_event(&mut self, ctx: &mut Context<Self>) -> Result<bool, Failure> {
        let Some((channel, event)) = self.gate.pop() else {
            return Ok(false);
        };
        let input = self.gate.channels[channel].input;
        match event {
            ChannelEvent::Records(batch) => {
                let gate_channel = &mut self.gate.channels[channel];
                if gate_channel.restored > 0 {
                    // Restored in-flight records: no sender gave credit for them.
                    gate_channel.restored -= 1;
                } else {
                    let upstream = &gate_channel.upstream;
                    upstream.subtask.do_send(Credit {
                        output: upstream.output,
                        channel: upstream.channel,
                        credits: 1,
                    });
                }
                self.records_in += batch.len() as u64;
                self.bytes_in += batch.estimated_bytes();
                self.batches_in += 1;
                // Restored records too: taken before this channel's barrier
                // while an unaligned snapshot waits for it, they are in flight.
                self.capture_in_flight(channel, &*batch);
                self.chain.head_records(input, batch, &mut self.outputs)?;
            }
            ChannelEvent::Watermark(w) => {
                let watermark = self.gate.valve.on_watermark(channel, w);
                self.on_event_time(watermark, None)?;
            }
            ChannelEvent::Idle(idle) => {
                let (watermark, idleness) = self.gate.valve.on_idle(channel, idle);
                self.on_event_time(watermark, idleness)?;
            }
            ChannelEvent::Barrier(barrier) => self.on_barrier(channel, barrier, false, ctx),
            ChannelEvent::Side(tag, _) => {
                return Err(Failure::retryable(
                    self.spec.task.clone(),
                    format!("side output `{tag}` arrived on input channel {channel}: side outputs never leave their subtask as such"),
                ))
            }
            ChannelEvent::EndOfInput => {
                self.gate.channels[channel].ended = true;
                let (watermark, idleness) = self.gate.valve.on_end(channel);
                self.on_event_time(watermark, idleness)?;
                if self.gate.input_ended(input) {
                    self.chain.end_head_input(input, &mut self.outputs)?;
                }
                if self.gate.all_ended() {
                    self.chain.end_inputs(1, &mut self.outputs)?;
                    self.phase = Phase::Draining;
                }
            }
        }
        Ok(true)
    }

    fn arm_linger(&mut self, ctx: &mut Context<Self>) {
        if self.linger_armed || !self.outputs.has_unsent() {
            return;
        }
        self.linger_armed = true;
        ctx.run_later(self.spec.config.linger, |act, ctx| {
            act.linger_armed = false;
            if act.phase == Phase::Running {
                act.outputs.send(true);
                act.arm_linger(ctx);
            }
        });
    }

    /// Arms a timer for the earliest processing time an operator asked for.
    ///
    /// A timer for time `t` fires once the clock has passed `t` (at `t + 1`
    /// ms, as Flink's processing-time service does): every record processed
    /// while the clock read `t` is in before it fires, so a processing-time
    /// window is never emitted and then filled again within its last
    /// millisecond.
    fn arm_processing_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.chain.next_processing_time() else {
            return;
        };
        if self.timer_armed.is_some_and(|armed| armed <= at) {
            return;
        }
        self.timer_armed = Some(at);
        let delay = Duration::from_millis((at + 1 - processing_time_now()).max(0) as u64);
        ctx.run_later(delay, move |act, ctx| {
            if act.timer_armed == Some(at) {
                act.timer_armed = None;
            }
            if act.phase != Phase::Running || act.stopping.is_some() {
                return;
            }
            let started = Instant::now();
            // Timers strictly before now (see above).
            if let Err(failure) = act
                .chain
                .fire_processing_time(processing_time_now() - 1, &mut act.outputs)
            {
                return act.fail(failure, ctx);
            }
            act.after_work(ctx);
            act.spec.gauges.add_busy(started.elapsed());
        });
    }

    /// After the inputs ended: deliver what is left, then end every channel;
    /// with checkpointing, wait for the final checkpoint before closing.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        self.outputs.send(true);
        if self.outputs.has_unsent() {
            return; // a Credit brings us back here
        }
        self.outputs.emit(ChannelEvent::EndOfInput);
        self.outputs.send(true);
        match &self.spec.checkpointing {
            Some(checkpointing) => {
                self.phase = Phase::Finishing;
                if self.chain.is_source() {
                    let task = checkpointing.task;
                    checkpointing.coordinator.do_send(CheckpointReport {
                        task,
                        kind: ReportKind::SourceFinished,
                    });
                }
                debug!(parent: &self.span, "waiting for the final checkpoint");
                self.schedule_step(ctx);
                self.try_finish(ctx);
            }
            None => self.finish(ctx),
        }
    }

    /// Ends the subtask once the final checkpoint completed (with checkpointing).
    fn try_finish(&mut self, ctx: &mut Context<Self>) {
        if self.phase == Phase::Finishing && self.final_complete {
            self.finish(ctx);
        }
    }

    /// Closes the operators and reports the subtask finished.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        let states = self.chain.state_metrics();
        let counters = self.chain.counters();
        if let Err(failure) = self.chain.close() {
            return self.fail(failure, ctx);
        }
        self.phase = Phase::Finished;
        self.spec.gauges.set_running(false);
        let metrics = SubtaskMetrics {
            task: self.spec.task.clone(),
            subtask: self.spec.index,
            records_in: self.records_in,
            records_out: self.outputs.records_out,
            batches_out: self.outputs.batches_out,
            max_queued_batches: self.gate.max_queued_batches,
            states,
            counters,
        };
        debug!(parent: &self.span, records_in = metrics.records_in, records_out = metrics.records_out, "subtask finished");
        self.report(SubtaskOutcome::Finished(metrics));
        ctx.stop();
    }
}

impl Actor for Subtask {
    type Context = Context<Self>;
}

impl Drop for Subtask {
    fn drop(&mut self) {
        if matches!(
            self.phase,
            Phase::Created | Phase::Running | Phase::Draining | Phase::Finishing
        ) {
            let operator = self.spec.task.clone();
            self.report(SubtaskOutcome::Failed {
                operator,
                cause: "subtask actor stopped unexpectedly".into(),
                retryable: true,
            });
        }
    }
}

impl Handler<Wire> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Wire, _ctx: &mut Self::Context) {
        let edges = self
            .spec
            .outputs
            .iter()
            .zip(msg.outputs)
            .map(|((factory, pctx, side), targets)| (factory(pctx), side.clone(), targets))
            .collect();
        self.outputs = Outputs::new(
            edges,
            self.spec.config.channel_credits,
            self.spec.config.batch_size,
        );
        let channels = self
            .spec
            .input_channels
            .iter()
            .zip(msg.inputs)
            .map(|(&input, upstream)| InputChannel::new(input, upstream))
            .collect();
        self.gate = InputGate::new(channels);
        self.checkpoints = checkpointing::Checkpointing::new(self.gate.channels.len());
    }
}

impl Handler<Start> for Subtask {
    type Result = ();

    fn handle(&mut self, _: Start, ctx: &mut Self::Context) {
        if self.phase != Phase::Created {
            return;
        }
        match Chain::open(&self.spec) {
            Ok(chain) => self.chain = chain,
            Err(failure) => return self.fail(failure, ctx),
        }
        if let Err(cause) = self.restore_channel_state() {
            let operator = self.spec.task.clone();
            // Restored in-flight records that do not decode stay that way.
            let failure = Failure {
                operator,
                cause,
                retryable: false,
            };
            return self.fail(failure, ctx);
        }
        self.phase = Phase::Running;
        self.spec.gauges.set_running(true);
        self.publish_metrics();
        debug!(parent: &self.span, "subtask running");
        self.schedule_step(ctx);
        self.arm_processing_timer(ctx);
    }
}

impl Handler<Deliver> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if let ChannelEvent::Barrier(barrier) = &msg.event {
            // Unaligned barriers overtake the records queued before them; before
            // `Start` the barrier waits in the queue like the records, and is
            // taken in order once the subtask runs.
            if barrier.kind == BarrierKind::Unaligned && self.phase != Phase::Created {
                let barrier = *barrier;
                return self.on_barrier(msg.channel, barrier, true, ctx);
            }
        }
        self.gate.push(msg.channel, msg.event);
        if !self.blocked {
            self.schedule_step(ctx);
        }
    }
}

impl Handler<Credit> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Credit, ctx: &mut Self::Context) {
        self.outputs
            .add_credit(msg.output, msg.channel, msg.credits);
        match self.phase {
            Phase::Running if self.blocked => {
                self.outputs.send(false);
                if !self.outputs.blocked() {
                    self.blocked = false;
                    self.spec.gauges.unblocked(Instant::now());
                    self.schedule_step(ctx);
                }
            }
            Phase::Draining => self.drain(ctx),
            _ => {}
        }
    }
}

impl Handler<TriggerCheckpoint> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: TriggerCheckpoint, ctx: &mut Self::Context) {
        self.trigger_at_source(msg.barrier, ctx);
    }
}

impl Handler<NotifyCheckpoint> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: NotifyCheckpoint, ctx: &mut Self::Context) {
        let lost = msg.complete
            && self
                .spec
                .config
                .faults
                .as_ref()
                .is_some_and(|f| f.on_notification(msg.id));
        if !lost {
            self.on_notify(msg.id, msg.complete, ctx);
        }
    }
}

impl Handler<Cancel> for Subtask {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Self::Context) {
        if matches!(
            self.phase,
            Phase::Created | Phase::Running | Phase::Draining
        ) {
            self.phase = Phase::Canceled;
        }
        self.spec.gauges.set_running(false);
        self.close_after_abort();
        ctx.stop();
    }
}

impl Handler<crate::query::QuerySubtask> for Subtask {
    type Result = Result<crate::query::StateAnswer, crate::query::QueryError>;

    /// Between two processing steps: the chain's state is whole.
    fn handle(&mut self, query: crate::query::QuerySubtask, _: &mut Self::Context) -> Self::Result {
        let unavailable = |reason: &str| crate::query::QueryError::Unavailable {
            job: self.spec.job.clone(),
            reason: reason.to_string(),
            retry: true,
        };
        match self.phase {
            Phase::Running | Phase::Draining | Phase::Finishing => {}
            Phase::Created => return Err(unavailable("the subtask is starting")),
            Phase::Finished => return Err(unavailable("the subtask has finished")),
            Phase::Failed | Phase::Canceled => {
                return Err(unavailable(
                    "the subtask failed or was canceled (restarting?)",
                ))
            }
        }
        self.chain.query(&query).unwrap_or_else(|| {
            Err(unavailable(&format!(
                "operator `{}` is not in this subtask's chain",
                query.uid
            )))
        })
    }
}

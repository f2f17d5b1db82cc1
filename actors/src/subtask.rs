//! The subtask actor: one parallel instance of a chain of operators.
//!
//! Its protocol, as the `Handler` impls below:
//! - [`Wire`] (from the supervisor): the addresses of its peers, once.
//! - [`Start`]: build and open the operators, then run.
//! - [`Deliver`] (from an upstream subtask): a batch or end-of-input for one input
//!   channel. The handler only enqueues; processing happens in steps.
//! - [`Credit`] (from a downstream subtask): room for more batches on one channel.
//! - [`Cancel`]: stop now.
//!
//! A *step* processes at most `batches_per_step` batches (or source polls) and
//! then yields to the Arbiter, so that messages, timers and the other actors on
//! the thread are served promptly even under full load. A step stops early when
//! the input gate is empty (a [`Deliver`] schedules the next) or when an output
//! channel has a full batch and no credit (a [`Credit`] schedules the next).
//!
//! User code runs under `catch_unwind`: a panic or a returned error ends the
//! subtask and is reported to the supervisor with the operator's name. A subtask
//! that disappears without reporting (dropped with its Arbiter, say) reports
//! itself from `Drop`.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use actix::prelude::*;
use tracing::{debug, Span};

use crate::batch::Batch;
use crate::channel::{
    ChannelEvent, ChannelTarget, InputChannel, InputGate, OutputChannel, OutputEdge, Upstream,
};
use crate::config::RuntimeConfig;
use crate::graph::{OperatorFactory, PartitionerContext, PartitionerFactory, SourceFactory};
use crate::metrics::SubtaskMetrics;
use crate::operator::{OperatorInfo, SourceOperator, SourceStatus, StreamOperator, UserError};

/// How to build one subtask: everything but its peers' addresses.
#[derive(Clone)]
pub struct SubtaskSpec {
    /// Index of the chain in the execution plan.
    pub chain: usize,
    /// The chain's display name.
    pub task: String,
    /// The job's name (for logs).
    pub job: String,
    /// This subtask's index.
    pub index: usize,
    /// The chain's parallelism.
    pub parallelism: usize,
    /// The source at the head of the chain, if it is a source chain.
    pub source: Option<(OperatorInfo, SourceFactory)>,
    /// The operators of the chain, head first (after the source, if any).
    pub operators: Vec<(OperatorInfo, OperatorFactory)>,
    /// Logical input of each input channel, in gate order.
    pub input_channels: Vec<usize>,
    /// Per output edge: the partitioner factory and its context.
    pub outputs: Vec<(PartitionerFactory, PartitionerContext)>,
    /// Batching and flow-control settings.
    pub config: RuntimeConfig,
}

/// How a subtask ended, as reported to the supervisor.
#[derive(Debug)]
pub enum SubtaskOutcome {
    /// All inputs ended and all output was delivered.
    Finished(SubtaskMetrics),
    /// User code failed, or the actor went away.
    Failed {
        /// The failing operator's name.
        operator: String,
        /// What happened.
        cause: String,
    },
}

/// A subtask's report to its supervisor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubtaskReport {
    /// Chain index.
    pub chain: usize,
    /// Subtask index.
    pub subtask: usize,
    /// Parallelism of the chain.
    pub parallelism: usize,
    /// The outcome.
    pub outcome: SubtaskOutcome,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
    /// Inputs ended and operators closed; delivering the last buffered output.
    Draining,
    Finished,
    Failed,
    Canceled,
}

struct Failure {
    operator: String,
    cause: String,
}

struct Chained<T: ?Sized> {
    info: OperatorInfo,
    logic: Box<T>,
}

/// The actor running one parallel instance of a chain.
pub struct Subtask {
    spec: SubtaskSpec,
    reporter: Recipient<SubtaskReport>,
    source: Option<Chained<dyn SourceOperator>>,
    operators: Vec<Chained<dyn StreamOperator>>,
    gate: InputGate,
    outputs: Vec<OutputEdge>,
    phase: Phase,
    step_scheduled: bool,
    blocked: bool,
    linger_armed: bool,
    metrics: SubtaskMetrics,
    span: Span,
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked with a non-string payload".to_string()
    }
}

/// Runs user code, turning a panic or an error into a [`Failure`] naming `info`.
fn guarded<R>(info: &OperatorInfo, f: impl FnOnce() -> Result<R, UserError>) -> Result<R, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Failure {
            operator: info.name.clone(),
            cause: e.to_string(),
        }),
        Err(payload) => Err(Failure {
            operator: info.name.clone(),
            cause: panic_message(payload),
        }),
    }
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
    pub fn new(spec: SubtaskSpec, reporter: Recipient<SubtaskReport>) -> Self {
        let span =
            tracing::info_span!("subtask", job = %spec.job, task = %spec.task, index = spec.index);
        let metrics = SubtaskMetrics {
            task: spec.task.clone(),
            subtask: spec.index,
            ..Default::default()
        };
        Subtask {
            spec,
            reporter,
            source: None,
            operators: Vec::new(),
            gate: InputGate::default(),
            outputs: Vec::new(),
            phase: Phase::Created,
            step_scheduled: false,
            blocked: false,
            linger_armed: false,
            metrics,
            span,
        }
    }

    fn report(&mut self, outcome: SubtaskOutcome) {
        self.reporter.do_send(SubtaskReport {
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
        tracing::error!(parent: &self.span, operator = %failure.operator, cause = %failure.cause, "subtask failed");
        self.phase = Phase::Failed;
        self.report(SubtaskOutcome::Failed {
            operator: failure.operator,
            cause: failure.cause,
        });
        ctx.stop();
    }

    /// Builds and opens the chain's operators.
    fn open(&mut self) -> Result<(), Failure> {
        if let Some((info, factory)) = self.spec.source.clone() {
            let mut logic = guarded(&info, || factory(&info))?;
            guarded(&info, || logic.open(&info))?;
            self.source = Some(Chained { info, logic });
        }
        for (info, factory) in self.spec.operators.clone() {
            let mut logic = guarded(&info, || factory(&info))?;
            guarded(&info, || logic.open(&info))?;
            self.operators.push(Chained { info, logic });
        }
        Ok(())
    }

    fn schedule_step(&mut self, ctx: &mut Context<Self>) {
        if !self.step_scheduled && matches!(self.phase, Phase::Running) {
            self.step_scheduled = true;
            ctx.spawn(
                actix::fut::wrap_future::<_, Self>(YieldNow(false))
                    .map(|_, act, ctx| act.step(ctx)),
            );
        }
    }

    fn step(&mut self, ctx: &mut Context<Self>) {
        self.step_scheduled = false;
        if self.phase != Phase::Running {
            return;
        }
        let mut budget = self.spec.config.batches_per_step;
        loop {
            self.send_full_batches();
            if self.output_blocked() {
                self.blocked = true;
                break;
            }
            if budget == 0 {
                self.schedule_step(ctx);
                break;
            }
            budget -= 1;
            let progressed = if self.source.is_some() {
                self.poll_source()
            } else {
                self.process_next_event()
            };
            match progressed {
                Err(failure) => return self.fail(failure, ctx),
                Ok(false) => break,
                Ok(true) if self.phase != Phase::Running => break,
                Ok(true) => {}
            }
        }
        if self.phase == Phase::Draining {
            self.drain(ctx);
        } else {
            self.arm_linger(ctx);
        }
    }

    /// Polls the source once and pushes its output through the chain.
    fn poll_source(&mut self) -> Result<bool, Failure> {
        let Some(source) = self.source.as_mut() else {
            return Ok(false);
        };
        let mut out: Vec<Batch> = Vec::new();
        let max = self.spec.config.batch_size;
        let status = guarded(&source.info, || source.logic.poll_batch(max, &mut out))?;
        self.run_chain(0, out)?;
        if status == SourceStatus::Finished {
            debug!(parent: &self.span, "source finished");
            if let Some(source) = self.source.as_mut() {
                guarded(&source.info, || source.logic.close())?;
            }
            self.finish_chain(0)?;
        }
        Ok(true)
    }

    /// Takes one event from the input gate and handles it.
    fn process_next_event(&mut self) -> Result<bool, Failure> {
        let Some((channel, event)) = self.gate.pop() else {
            return Ok(false);
        };
        let input = self.gate.channels[channel].input;
        match event {
            ChannelEvent::Records(batch) => {
                let upstream = &self.gate.channels[channel].upstream;
                upstream.subtask.do_send(Credit {
                    output: upstream.output,
                    channel: upstream.channel,
                    credits: 1,
                });
                self.metrics.records_in += batch.len() as u64;
                let head = &mut self.operators[0];
                let mut out: Vec<Batch> = Vec::new();
                guarded(&head.info, || {
                    head.logic.process_batch(input, batch, &mut out)
                })?;
                self.run_chain(1, out)?;
            }
            ChannelEvent::EndOfInput => {
                self.gate.channels[channel].ended = true;
                if self.gate.input_ended(input) {
                    let head = &mut self.operators[0];
                    let mut out: Vec<Batch> = Vec::new();
                    guarded(&head.info, || head.logic.end_input(input, &mut out))?;
                    self.run_chain(1, out)?;
                }
                if self.gate.all_ended() {
                    let head = &mut self.operators[0];
                    guarded(&head.info, || head.logic.close())?;
                    self.finish_chain(1)?;
                }
            }
        }
        Ok(true)
    }

    /// Pushes `batches` through the operators from index `from` on, then to the outputs.
    fn run_chain(&mut self, from: usize, mut batches: Vec<Batch>) -> Result<(), Failure> {
        for op in self.operators.iter_mut().skip(from) {
            if batches.is_empty() {
                return Ok(());
            }
            let mut next: Vec<Batch> = Vec::with_capacity(batches.len());
            for batch in batches.drain(..) {
                guarded(&op.info, || op.logic.process_batch(0, batch, &mut next))?;
            }
            batches = next;
        }
        for batch in batches {
            self.metrics.records_out += batch.len() as u64;
            if let Some((last, rest)) = self.outputs.split_last_mut() {
                for output in rest {
                    output.partitioner.partition(batch.clone_batch());
                }
                last.partitioner.partition(batch);
            }
        }
        Ok(())
    }

    /// Ends the input of every operator from `from` on, in chain order, and closes them.
    fn finish_chain(&mut self, from: usize) -> Result<(), Failure> {
        for i in from..self.operators.len() {
            let op = &mut self.operators[i];
            let mut out: Vec<Batch> = Vec::new();
            guarded(&op.info, || op.logic.end_input(0, &mut out))?;
            self.run_chain(i + 1, out)?;
            let op = &mut self.operators[i];
            guarded(&op.info, || op.logic.close())?;
        }
        self.phase = Phase::Draining;
        Ok(())
    }

    fn send(&mut self, output: usize, channel: usize) -> bool {
        let edge = &mut self.outputs[output];
        let ch = &mut edge.channels[channel];
        if ch.credits == 0 {
            return false;
        }
        let Some(batch) = edge.partitioner.take(channel) else {
            return false;
        };
        ch.credits -= 1;
        self.metrics.batches_out += 1;
        ch.target.subtask.do_send(Deliver {
            channel: ch.target.gate_channel,
            event: ChannelEvent::Records(batch),
        });
        true
    }

    /// Sends every buffer that holds at least a batch and has credit.
    fn send_full_batches(&mut self) {
        let batch_size = self.spec.config.batch_size;
        for o in 0..self.outputs.len() {
            for c in 0..self.outputs[o].channels.len() {
                if self.outputs[o].partitioner.buffered(c) >= batch_size {
                    self.send(o, c);
                }
            }
        }
    }

    /// Sends every non-empty buffer that has credit; true when nothing is left buffered.
    fn send_all_buffers(&mut self) -> bool {
        let mut empty = true;
        for o in 0..self.outputs.len() {
            for c in 0..self.outputs[o].channels.len() {
                if self.outputs[o].partitioner.buffered(c) > 0 {
                    self.send(o, c);
                    empty &= self.outputs[o].partitioner.buffered(c) == 0;
                }
            }
        }
        empty
    }

    /// Whether some channel holds a full batch it has no credit to send.
    fn output_blocked(&self) -> bool {
        let batch_size = self.spec.config.batch_size;
        self.outputs.iter().any(|o| {
            o.channels
                .iter()
                .enumerate()
                .any(|(c, ch)| ch.credits == 0 && o.partitioner.buffered(c) >= batch_size)
        })
    }

    fn has_partial_batches(&self) -> bool {
        self.outputs
            .iter()
            .any(|o| (0..o.channels.len()).any(|c| o.partitioner.buffered(c) > 0))
    }

    fn arm_linger(&mut self, ctx: &mut Context<Self>) {
        if self.linger_armed || !self.has_partial_batches() {
            return;
        }
        self.linger_armed = true;
        ctx.run_later(self.spec.config.linger, |act, ctx| {
            act.linger_armed = false;
            if act.phase == Phase::Running {
                act.send_all_buffers();
                act.arm_linger(ctx);
            }
        });
    }

    /// After the chain closed: deliver what is buffered, then end every channel.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if !self.send_all_buffers() {
            return; // a Credit brings us back here
        }
        for output in &self.outputs {
            for ch in &output.channels {
                ch.target.subtask.do_send(Deliver {
                    channel: ch.target.gate_channel,
                    event: ChannelEvent::EndOfInput,
                });
            }
        }
        self.phase = Phase::Finished;
        self.metrics.max_queued_batches = self.gate.max_queued_batches;
        let metrics = self.metrics.clone();
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
            Phase::Created | Phase::Running | Phase::Draining
        ) {
            let operator = self.spec.task.clone();
            self.report(SubtaskOutcome::Failed {
                operator,
                cause: "subtask actor stopped unexpectedly".into(),
            });
        }
    }
}

impl Handler<Wire> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Wire, _ctx: &mut Self::Context) {
        self.outputs = self
            .spec
            .outputs
            .iter()
            .zip(msg.outputs)
            .map(|((factory, pctx), targets)| OutputEdge {
                partitioner: factory(pctx),
                channels: targets
                    .into_iter()
                    .map(|target| OutputChannel {
                        target,
                        credits: self.spec.config.channel_credits,
                    })
                    .collect(),
            })
            .collect();
        let channels = self
            .spec
            .input_channels
            .iter()
            .zip(msg.inputs)
            .map(|(&input, upstream)| InputChannel {
                input,
                queue: Default::default(),
                upstream,
                ended: false,
                queued_batches: 0,
            })
            .collect();
        self.gate = InputGate::new(channels);
    }
}

impl Handler<Start> for Subtask {
    type Result = ();

    fn handle(&mut self, _: Start, ctx: &mut Self::Context) {
        if self.phase != Phase::Created {
            return;
        }
        if let Err(failure) = self.open() {
            return self.fail(failure, ctx);
        }
        self.phase = Phase::Running;
        debug!(parent: &self.span, "subtask running");
        self.schedule_step(ctx);
    }
}

impl Handler<Deliver> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.gate.push(msg.channel, msg.event);
        if !self.blocked {
            self.schedule_step(ctx);
        }
    }
}

impl Handler<Credit> for Subtask {
    type Result = ();

    fn handle(&mut self, msg: Credit, ctx: &mut Self::Context) {
        if let Some(ch) = self
            .outputs
            .get_mut(msg.output)
            .and_then(|o| o.channels.get_mut(msg.channel))
        {
            ch.credits += msg.credits;
        }
        match self.phase {
            Phase::Running => {
                if self.blocked {
                    self.send_full_batches();
                    if !self.output_blocked() {
                        self.blocked = false;
                        self.schedule_step(ctx);
                    }
                }
            }
            Phase::Draining => self.drain(ctx),
            _ => {}
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
        ctx.stop();
    }
}

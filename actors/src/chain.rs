//! The operators of one subtask, chained: batches pass from one to the next by
//! function call, and watermarks follow them in order.
//!
//! Every call into user code goes through [`guarded`], which turns a panic or an
//! `Err` into a [`Failure`] naming the operator. Each operator sees a watermark
//! only when it advances past the last one it saw.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use std::sync::Arc;

use crate::channel::ChannelEvent;
use crate::faults::FaultPlan;
use crate::operator::{
    OperatorInfo, PendingSnapshot, SourceOperator, SourceStatus, StreamOperator, UserError,
};
use crate::output::Outputs;
use crate::subtask::spec::SubtaskSpec;

/// User code failed in `operator`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub operator: String,
    pub cause: String,
    /// Whether a restart can help (see [`crate::error::is_retryable`]).
    pub retryable: bool,
}

impl Failure {
    /// A failure of `operator` that a restart may fix.
    pub fn retryable(operator: String, cause: String) -> Self {
        Failure {
            operator,
            cause,
            retryable: true,
        }
    }
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
pub(crate) fn guarded<R>(
    info: &OperatorInfo,
    f: impl FnOnce() -> Result<R, UserError>,
) -> Result<R, Failure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Failure {
            operator: info.name.clone(),
            cause: e.to_string(),
            retryable: crate::error::is_retryable(e.as_ref()),
        }),
        Err(payload) => Err(Failure::retryable(
            info.name.clone(),
            panic_message(payload),
        )),
    }
}

struct Link<T: ?Sized> {
    info: OperatorInfo,
    logic: Box<T>,
    watermark: i64,
}

/// A source (optionally) followed by operators, all in one subtask.
#[derive(Default)]
pub(crate) struct Chain {
    source: Option<Link<dyn SourceOperator>>,
    operators: Vec<Link<dyn StreamOperator>>,
    faults: Option<Arc<FaultPlan>>,
    /// `close` ran (it runs once, whatever ended the subtask).
    closed: bool,
}

/// Fails with a planned fault if `records` more records of `info` reach one.
fn check_faults(
    faults: &Option<Arc<FaultPlan>>,
    info: &OperatorInfo,
    records: usize,
) -> Result<(), Failure> {
    match faults {
        Some(plan) => plan
            .on_records(&info.name, info.subtask, records)
            .map_err(|cause| Failure::retryable(info.name.clone(), cause)),
        None => Ok(()),
    }
}

impl Chain {
    /// Answers a live query addressed to one of the chain's operators
    /// (`None`: no operator of the chain has the uid).
    pub fn query(
        &mut self,
        query: &crate::query::QuerySubtask,
    ) -> Option<Result<crate::query::StateAnswer, crate::query::QueryError>> {
        if self
            .source
            .as_ref()
            .is_some_and(|s| s.info.uid == query.uid)
        {
            // A source has no keyed state.
            return Some(Err(crate::query::QueryError::no_queryable_state(
                &query.uid,
                &query.name,
            )));
        }
        let link = self
            .operators
            .iter_mut()
            .find(|l| l.info.uid == query.uid)?;
        Some(
            link.logic
                .query_state(&link.info, &query.name, &query.query),
        )
    }

    /// Builds and opens the operators of `spec`. If one fails to, those
    /// already open are closed.
    pub fn open(spec: &SubtaskSpec) -> Result<Chain, Failure> {
        let mut chain = Chain {
            faults: spec.config.faults.clone(),
            ..Chain::default()
        };
        match chain.open_all(spec) {
            Ok(()) => Ok(chain),
            Err(failure) => {
                let _ = chain.close();
                Err(failure)
            }
        }
    }

    fn open_all(&mut self, spec: &SubtaskSpec) -> Result<(), Failure> {
        let chain = self;
        let mut restored = spec
            .restored
            .as_ref()
            .map(|r| r.operators.clone())
            .unwrap_or_default();
        let is_restored = spec.restored.is_some();
        // A restored job gives every operator a snapshot (an empty one if it had no state).
        let mut take = |uid: &str| is_restored.then(|| restored.remove(uid).unwrap_or_default());
        if let Some((info, factory)) = &spec.source {
            let mut logic = guarded(info, || factory(info))?;
            let snapshot = take(&info.uid);
            guarded(info, || logic.initialize_state(info, snapshot))?;
            guarded(info, || logic.open(info))?;
            chain.source = Some(Link {
                info: info.clone(),
                logic,
                watermark: i64::MIN,
            });
        }
        for (info, factory) in &spec.operators {
            let mut logic = guarded(info, || factory(info))?;
            let snapshot = take(&info.uid);
            guarded(info, || logic.initialize_state(info, snapshot))?;
            guarded(info, || logic.open(info))?;
            chain.operators.push(Link {
                info: info.clone(),
                logic,
                watermark: i64::MIN,
            });
        }
        Ok(())
    }

    pub fn is_source(&self) -> bool {
        self.source.is_some()
    }

    /// Feeds `events` to the operators from index `from` on, and their output to `outputs`.
    pub fn run(
        &mut self,
        from: usize,
        mut events: Vec<ChannelEvent>,
        outputs: &mut Outputs,
    ) -> Result<(), Failure> {
        for op in self.operators.iter_mut().skip(from) {
            if events.is_empty() {
                return Ok(());
            }
            let mut next: Vec<ChannelEvent> = Vec::with_capacity(events.len());
            for event in events.drain(..) {
                match event {
                    ChannelEvent::Records(batch) => {
                        check_faults(&self.faults, &op.info, batch.len())?;
                        guarded(&op.info, || op.logic.process_batch(0, batch, &mut next))?;
                    }
                    ChannelEvent::Watermark(w) => {
                        if w > op.watermark {
                            op.watermark = w;
                            guarded(&op.info, || op.logic.process_watermark(w, &mut next))?;
                        }
                    }
                    // The operator before produced them and, being chained,
                    // has no side output consumers: dropped, as in Flink.
                    ChannelEvent::Side(..) => {}
                    other => next.push(other),
                }
            }
            events = next;
        }
        if events.is_empty() {
            return Ok(());
        }
        // Partitioning runs user code too (key selectors): guard it, naming the producer.
        let producer = match self.operators.last() {
            Some(op) => &op.info,
            None => match &self.source {
                Some(source) => &source.info,
                None => return Ok(()),
            },
        };
        guarded(producer, || {
            for event in events {
                outputs.emit(event);
            }
            Ok(())
        })
        .map_err(|f| Failure {
            cause: format!("partitioning its output failed: {}", f.cause),
            ..f
        })
    }

    /// A batch from input `input` of the head operator.
    pub fn head_records(
        &mut self,
        input: usize,
        batch: crate::Batch,
        outputs: &mut Outputs,
    ) -> Result<(), Failure> {
        let head = &mut self.operators[0];
        check_faults(&self.faults, &head.info, batch.len())?;
        let mut out = Vec::new();
        guarded(&head.info, || {
            head.logic.process_batch(input, batch, &mut out)
        })?;
        self.run(1, out, outputs)
    }

    /// The subtask's input watermark advanced, or its idleness changed.
    pub fn head_event(
        &mut self,
        event: ChannelEvent,
        outputs: &mut Outputs,
    ) -> Result<(), Failure> {
        self.run(0, vec![event], outputs)
    }

    /// Polls the source once; on its end, sends the maximum watermark after its
    /// last records. Also says whether the poll emitted anything.
    pub fn poll_source(
        &mut self,
        max: usize,
        outputs: &mut Outputs,
    ) -> Result<(SourceStatus, bool), Failure> {
        let Some(source) = self.source.as_mut() else {
            return Ok((SourceStatus::Finished, false));
        };
        let mut out = Vec::new();
        let status = guarded(&source.info, || source.logic.poll_batch(max, &mut out))?;
        let emitted = !out.is_empty();
        if status == SourceStatus::Finished {
            out.push(ChannelEvent::Watermark(i64::MAX));
        }
        self.run(0, out, outputs)?;
        Ok((status, emitted))
    }

    /// Input `input` of the head operator ended.
    pub fn end_head_input(&mut self, input: usize, outputs: &mut Outputs) -> Result<(), Failure> {
        let head = &mut self.operators[0];
        let mut out = Vec::new();
        guarded(&head.info, || head.logic.end_input(input, &mut out))?;
        self.run(1, out, outputs)
    }

    /// Ends the input of every operator from `from` on, in chain order (the
    /// head's inputs, if `from` is 1, were ended one by one before).
    pub fn end_inputs(&mut self, from: usize, outputs: &mut Outputs) -> Result<(), Failure> {
        for i in from..self.operators.len() {
            let op = &mut self.operators[i];
            let mut out = Vec::new();
            guarded(&op.info, || op.logic.end_input(0, &mut out))?;
            self.run(i + 1, out, outputs)?;
        }
        Ok(())
    }

    /// The keyed-state metrics of every operator, each named by its operator.
    pub fn state_metrics(&self) -> Vec<crate::metrics::StateMetrics> {
        let mut all = Vec::new();
        for op in &self.operators {
            all.extend(op.logic.state_metrics().into_iter().map(|m| {
                crate::metrics::StateMetrics {
                    operator: op.info.name.clone(),
                    ..m
                }
            }));
        }
        all
    }

    /// The counters of every operator, each named by its operator.
    pub fn counters(&self) -> Vec<crate::metrics::OperatorCounter> {
        self.operators
            .iter()
            .flat_map(|op| {
                op.logic.counters().into_iter().map(|(name, value)| {
                    crate::metrics::OperatorCounter {
                        operator: op.info.name.clone(),
                        name: name.to_string(),
                        value,
                    }
                })
            })
            .collect()
    }

    /// Closes the source and every operator, head first, once: after the
    /// subtask finished, failed or was canceled (as Flink's `close`). Every
    /// operator is closed even if one fails to; the first failure is returned.
    pub fn close(&mut self) -> Result<(), Failure> {
        if std::mem::replace(&mut self.closed, true) {
            return Ok(());
        }
        let mut first = Ok(());
        if let Some(source) = self.source.as_mut() {
            first = guarded(&source.info, || source.logic.close());
        }
        for op in &mut self.operators {
            let closed = guarded(&op.info, || op.logic.close());
            if first.is_ok() {
                first = closed;
            }
        }
        first
    }

    /// The synchronous part of every operator's snapshot, by uid, source
    /// first (`savepoint`: self-contained, canonical snapshots).
    pub fn snapshot(
        &mut self,
        checkpoint_id: u64,
        savepoint: bool,
    ) -> Result<Vec<(String, PendingSnapshot)>, Failure> {
        let mut parts = Vec::with_capacity(self.operators.len() + 1);
        if let Some(source) = self.source.as_mut() {
            let pending = guarded(&source.info, || source.logic.snapshot_state(checkpoint_id))?;
            parts.push((source.info.uid.clone(), pending));
        }
        for op in &mut self.operators {
            let pending = guarded(&op.info, || {
                if savepoint {
                    op.logic.snapshot_savepoint(checkpoint_id)
                } else {
                    op.logic.snapshot_state(checkpoint_id)
                }
            })?;
            parts.push((op.info.uid.clone(), pending));
        }
        Ok(parts)
    }

    /// Tells every operator that checkpoint `id` completed.
    pub fn notify_complete(&mut self, id: u64) -> Result<(), Failure> {
        if let Some(source) = self.source.as_mut() {
            guarded(&source.info, || source.logic.notify_checkpoint_complete(id))?;
        }
        for op in &mut self.operators {
            guarded(&op.info, || op.logic.notify_checkpoint_complete(id))?;
        }
        Ok(())
    }

    /// Tells every operator that checkpoint `id` was aborted.
    pub fn notify_aborted(&mut self, id: u64) -> Result<(), Failure> {
        if let Some(source) = self.source.as_mut() {
            guarded(&source.info, || source.logic.notify_checkpoint_aborted(id))?;
        }
        for op in &mut self.operators {
            guarded(&op.info, || op.logic.notify_checkpoint_aborted(id))?;
        }
        Ok(())
    }

    /// The earliest processing time any operator asked to be called at.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.operators
            .iter()
            .filter_map(|op| op.logic.next_processing_time())
            .min()
    }

    /// Calls every operator whose processing-time callback is due at `now`.
    pub fn fire_processing_time(&mut self, now: i64, outputs: &mut Outputs) -> Result<(), Failure> {
        for i in 0..self.operators.len() {
            let op = &mut self.operators[i];
            if op.logic.next_processing_time().is_some_and(|t| t <= now) {
                let mut out = Vec::new();
                guarded(&op.info, || op.logic.on_processing_time(now, &mut out))?;
                self.run(i + 1, out, outputs)?;
            }
        }
        Ok(())
    }
}

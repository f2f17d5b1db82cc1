//! The supervisor actor: deploys a job's subtask actors, watches them, and ends
//! the job.
//!
//! Its protocol: [`SubtaskReport`] from every subtask (finished or failed) and
//! [`CancelJob`] from the [`crate::JobClient`]. Deployment follows the
//! [`ExecutionPlan`]: subtask `i` of every chain is placed on Arbiter `i % n` (slot
//! sharing, as in Flink, so that a pipeline of subtasks stays on one thread), wired
//! with [`Wire`] and started with [`Start`] once every address is known.
//!
//! A failure of any subtask fails the job (restart strategies build on this
//! point): every other subtask is canceled and the job's result names the
//! operator, the subtask and the cause.

pub mod protocol;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use tracing::{debug, info, warn, Span};

use crate::checkpoint::coordinator::{CheckpointCoordinator, CheckpointProgress, JobFacts};
use crate::checkpoint::layout::CheckpointPaths;
use crate::checkpoint::protocol::{JobEnded, Participant, Participants, TriggerCheckpointNow};
use crate::checkpoint::CheckpointStorage;
use crate::clock::processing_time_now;
use crate::config::RuntimeConfig;
use crate::error::{JobError, RestoreError};
use crate::graph::{JobGraph, PartitionerContext, VertexKind};
use crate::job::{JobShared, JobStatus};
use crate::liveness::{self, Gone};
use crate::metrics::{JobResult, SubtaskMetrics};
use crate::operator::OperatorInfo;
use crate::plan::{input_channels, output_channels, ExecutionPlan};
use crate::preflight::Hold;
use crate::restart::{RestartDecision, RestartTracker};
use crate::restore::RestoredSubtask;
use crate::startup::FirstDeployment;
use crate::startup::{assign_snapshot, describe_location, snapshot_storage};
use crate::subtask::protocol::{Cancel, ChannelTarget, Start, Upstream, Wire};
use crate::subtask::{Subtask, SubtaskCheckpointing, SubtaskSpec};
use protocol::{CancelJob, CheckpointingFailed, GetCoordinator, SubtaskOutcome, SubtaskReport};

/// The actor that owns one running job.
pub struct Supervisor {
    graph: Arc<JobGraph>,
    plan: ExecutionPlan,
    config: RuntimeConfig,
    shared: Arc<JobShared>,
    result: Option<oneshot::Sender<Result<JobResult, JobError>>>,
    arbiters: Vec<Arbiter>,
    subtasks: Vec<Vec<Addr<Subtask>>>,
    /// Resolve when the subtasks of the current deployment are gone.
    gone: Vec<Gone>,
    remaining: usize,
    finished: Vec<SubtaskMetrics>,
    started_at: Instant,
    stops_system: bool,
    coordinator: Option<Addr<CheckpointCoordinator>>,
    restart: RestartTracker,
    /// The current deployment (0, then +1 per restart).
    attempt: u32,
    /// What each subtask of the current deployment starts from.
    restored: HashMap<(usize, usize), RestoredSubtask>,
    /// The checkpoint the current deployment restored, if any.
    restored_from: Option<u64>,
    /// Locks the job holds while it runs (released before its outcome is announced).
    holds: Vec<Hold>,
    /// The live metrics of the current deployment's subtasks, per chain.
    gauges: Vec<Vec<Arc<crate::live::SubtaskGauges>>>,
    span: Span,
}

/// How long the supervisor waits for canceled subtasks to end before it
/// goes on (a restart, the job's outcome) without them.
const SUBTASK_EXIT_LIMIT: Duration = Duration::from_secs(30);

impl Supervisor {
    /// A supervisor for `graph` (validated and planned) that sends the job's outcome on `result`.
    pub(crate) fn new(
        graph: Arc<JobGraph>,
        plan: ExecutionPlan,
        config: RuntimeConfig,
        shared: Arc<JobShared>,
        result: oneshot::Sender<Result<JobResult, JobError>>,
        stops_system: bool,
        first: FirstDeployment,
    ) -> Self {
        let span = tracing::info_span!("job", job = %graph.name, id = %shared.job_id);
        let config_restart = config.restart_strategy();
        Supervisor {
            graph,
            plan,
            config,
            shared,
            result: Some(result),
            arbiters: Vec::new(),
            subtasks: Vec::new(),
            gone: Vec::new(),
            remaining: 0,
            finished: Vec::new(),
            started_at: Instant::now(),
            stops_system,
            coordinator: None,
            restart: RestartTracker::new(config_restart),
            attempt: 0,
            restored: first.restored,
            restored_from: first.restored_from,
            holds: first.holds,
            gauges: Vec::new(),
            span,
        }
    }

    fn operator_info(&self, vertex: usize, subtask: usize) -> OperatorInfo {
        let v = &self.graph.vertices[vertex];
        OperatorInfo {
            name: v.name.clone(),
            uid: v.uid.clone(),
            subtask,
            parallelism: v.parallelism,
            max_parallelism: v.max_parallelism,
            job: self.graph.name.clone(),
            lineage: self.shared.lineage.id(),
            restored_from: self.restored_from,
            checkpointing: self.config.checkpointing.is_some(),
            shared_state_dir: self
                .config
                .checkpointing
                .as_ref()
                .and(self.shared.storage.as_ref())
                .and_then(|storage| storage.shared_dir()),
        }
    }

    fn spec(&self, chain_index: usize, subtask: usize) -> SubtaskSpec {
        let chain = &self.plan.chains[chain_index];
        let mut source = None;
        let mut operators = Vec::new();
        for &v in &chain.vertices {
            let info = self.operator_info(v, subtask);
            match &self.graph.vertices[v].kind {
                VertexKind::Source(factory) => source = Some((info, factory.clone())),
                VertexKind::Operator { factory, .. } => operators.push((info, factory.clone())),
            }
        }
        let outputs = chain
            .out_edges
            .iter()
            .map(|&e| {
                let edge = &self.graph.edges[e];
                let ctx = PartitionerContext {
                    sender_subtask: subtask,
                    channels: output_channels(&self.graph, e, subtask).len(),
                    receiver_max_parallelism: self.graph.vertices[edge.target].max_parallelism,
                    batch_size: self.config.batch_size,
                };
                (edge.partitioner.clone(), ctx, edge.side_output.clone())
            })
            .collect();
        SubtaskSpec {
            chain: chain_index,
            task: chain.name.clone(),
            job: self.graph.name.clone(),
            index: subtask,
            parallelism: chain.parallelism,
            source,
            operators,
            input_channels: input_channels(&self.graph, chain, subtask)
                .iter()
                .map(|c| c.input)
                .collect(),
            outputs,
            config: self.config.clone(),
            checkpointing: self.subtask_checkpointing(chain_index, subtask),
            attempt: self.attempt,
            restored: self.restored.get(&(chain_index, subtask)).cloned(),
            input_decoders: input_channels(&self.graph, chain, subtask)
                .iter()
                .map(|c| self.graph.edges[c.edge].decoder)
                .collect(),
            output_decoders: chain
                .out_edges
                .iter()
                .map(|&e| self.graph.edges[e].decoder)
                .collect(),
            gauges: self
                .gauges
                .get(chain_index)
                .and_then(|g| g.get(subtask))
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// The checkpoint coordinator, if the job has checkpointing.
    fn start_coordinator(&mut self, ctx: &mut Context<Self>) {
        let (Some(settings), Some(storage)) = (&self.config.checkpointing, &self.shared.storage)
        else {
            return;
        };
        let operators = crate::restore::JobPlan::of(&self.graph).operators;
        let job = JobFacts {
            name: self.graph.name.clone(),
            id: self.shared.job_id.clone(),
            lineage: self.shared.lineage.clone(),
            operators,
            task_names: self.plan.chains.iter().map(|c| c.name.clone()).collect(),
            attempt: self.attempt,
        };
        let tasks = self
            .plan
            .chains
            .iter()
            .enumerate()
            .flat_map(|(c, chain)| (0..chain.parallelism).map(move |i| (c, i)));
        let coordinator = CheckpointCoordinator::new(
            settings.config.clone(),
            storage.clone(),
            job,
            tasks.collect(),
            ctx.address().recipient(),
            CheckpointProgress {
                history: self.shared.checkpoints.clone(),
                stopped_at: self.shared.stopped_at.clone(),
                next_id: self.shared.next_checkpoint_id.clone(),
                in_progress: self.shared.checkpoints_in_progress.clone(),
            },
        )
        .start();
        if let Ok(mut slot) = self.shared.coordinator.lock() {
            *slot = Some(coordinator.clone().recipient());
        }
        self.coordinator = Some(coordinator);
    }

    fn subtask_checkpointing(&self, chain: usize, subtask: usize) -> Option<SubtaskCheckpointing> {
        let (Some(coordinator), Some(storage), Some(settings)) = (
            &self.coordinator,
            &self.shared.storage,
            &self.config.checkpointing,
        ) else {
            return None;
        };
        let head = self.plan.chains[chain]
            .vertices
            .first()
            .map_or("task", |&v| self.graph.vertices[v].uid.as_str());
        Some(SubtaskCheckpointing {
            coordinator: coordinator.clone().recipient(),
            storage: storage.clone() as Arc<dyn CheckpointStorage>,
            task: (chain, subtask),
            state_name: CheckpointPaths::state_file_name(head, subtask),
            aligned_timeout: settings
                .config
                .aligned_timeout
                .filter(|_| settings.config.unaligned),
        })
    }

    fn deploy(&mut self, ctx: &mut Context<Self>) {
        if self.arbiters.is_empty() {
            match (0..self.config.arbiter_count())
                .map(|_| Arbiter::try_new())
                .collect::<std::io::Result<Vec<_>>>()
            {
                Ok(arbiters) => self.arbiters = arbiters,
                Err(e) => {
                    let error = JobError::Runtime(format!("cannot start the job's threads: {e}"));
                    return self.complete(Err(error), ctx);
                }
            }
        }
        self.record_restore();
        self.start_coordinator(ctx);
        let reporter = ctx.address().recipient::<SubtaskReport>();
        self.subtasks.clear();
        self.finished.clear();
        self.gauges = self.shared.live.new_deployment();
        let mut placed = 0;
        for c in 0..self.plan.chains.len() {
            let mut addrs = Vec::new();
            for i in 0..self.plan.chains[c].parallelism {
                let spec = self.spec(c, i);
                let reporter = reporter.clone();
                // Slot sharing (as Flink): subtask i of every chain on Arbiter i, so a
                // forward pipeline stays on one thread and its hops cost no wake-up.
                let arbiter = self.arbiters[i % self.arbiters.len()].handle();
                placed += 1;
                let (alive, gone) = liveness::token();
                self.gone.push(gone);
                addrs.push(Subtask::start_in_arbiter(&arbiter, move |_| {
                    Subtask::new(spec, reporter, alive)
                }));
            }
            self.subtasks.push(addrs);
        }
        self.remaining = placed;
        self.wire();
        if let Some(coordinator) = &self.coordinator {
            let mut subtasks = Vec::new();
            let mut sources = Vec::new();
            for (c, chain) in self.plan.chains.iter().enumerate() {
                let uids: Vec<String> = chain
                    .vertices
                    .iter()
                    .map(|&v| self.graph.vertices[v].uid.clone())
                    .collect();
                let is_source = chain
                    .vertices
                    .first()
                    .is_some_and(|&v| matches!(self.graph.vertices[v].kind, VertexKind::Source(_)));
                for (i, addr) in self.subtasks[c].iter().enumerate() {
                    subtasks.push(Participant {
                        task: (c, i),
                        trigger: addr.clone().recipient(),
                        notify: addr.clone().recipient(),
                        uids: uids.clone(),
                    });
                    if is_source {
                        sources.push((c, i));
                    }
                }
            }
            coordinator.do_send(Participants { subtasks, sources });
        }
        for addr in self.subtasks.iter().flatten() {
            addr.do_send(Start);
        }
        self.publish_query_routes();
        self.shared.set_status(JobStatus::Running);
        info!(parent: &self.span, subtasks = placed, tasks = self.plan.chains.len(), "job running");
    }

    /// Sends every subtask the addresses of its peers.
    fn wire(&self) {
        // Gate position of (edge, sender) in each receiving subtask.
        let mut gate_index: HashMap<(usize, usize, usize), usize> = HashMap::new();
        for (c, chain) in self.plan.chains.iter().enumerate() {
            for r in 0..chain.parallelism {
                for (k, spec) in input_channels(&self.graph, chain, r).iter().enumerate() {
                    gate_index.insert((spec.edge, spec.sender, r), k);
                    let _ = c;
                }
            }
        }
        for (c, chain) in self.plan.chains.iter().enumerate() {
            for i in 0..chain.parallelism {
                let outputs = chain
                    .out_edges
                    .iter()
                    .map(|&e| {
                        let target_chain = self.plan.chain_of[self.graph.edges[e].target];
                        output_channels(&self.graph, e, i)
                            .into_iter()
                            .map(|r| ChannelTarget {
                                subtask: self.subtasks[target_chain][r].clone().recipient(),
                                gate_channel: gate_index[&(e, i, r)],
                            })
                            .collect()
                    })
                    .collect();
                let inputs = input_channels(&self.graph, chain, i)
                    .into_iter()
                    .map(|spec| {
                        let source_chain = self.plan.chain_of[self.graph.edges[spec.edge].source];
                        let output = self.plan.chains[source_chain]
                            .out_edges
                            .iter()
                            .position(|&e| e == spec.edge)
                            .unwrap_or_default();
                        Upstream {
                            subtask: self.subtasks[source_chain][spec.sender].clone().recipient(),
                            output,
                            channel: spec.sender_channel,
                        }
                    })
                    .collect();
                self.subtasks[c][i].do_send(Wire { outputs, inputs });
            }
        }
    }

    /// Makes the running deployment's subtasks reachable by live queries.
    fn publish_query_routes(&self) {
        let operators = self
            .graph
            .vertices
            .iter()
            .enumerate()
            .map(|(v, vertex)| {
                let chain = self.plan.chain_of[v];
                let subtasks = self
                    .subtasks
                    .get(chain)
                    .map(|s| s.iter().map(|a| a.clone().recipient()).collect())
                    .unwrap_or_default();
                (vertex.uid.clone(), vertex.max_parallelism, subtasks)
            })
            .collect();
        let routes = crate::query::QueryRoutes::new(self.graph.name.clone(), operators);
        if let Ok(mut published) = self.shared.query_routes.lock() {
            *published = Some(Arc::new(routes));
        }
    }

    fn cancel_subtasks(&self) {
        if let Ok(mut published) = self.shared.query_routes.lock() {
            *published = None;
        }
        for addr in self.subtasks.iter().flatten() {
            addr.do_send(Cancel);
        }
    }

    /// A failure: restart from the latest completed checkpoint, or fail the
    /// job, as the restart strategy decides; a failure no restart can fix
    /// fails the job at once. A failure the job restarts from is logged here,
    /// once; the last one is the job's outcome and is the caller's to report.
    fn fail_or_restart(&mut self, error: JobError, ctx: &mut Context<Self>) {
        if let Ok(mut last) = self.shared.last_failure.lock() {
            *last = Some(error.clone());
        }
        self.cancel_subtasks();
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.do_send(JobEnded { canceled: false });
        }
        let decision = if error.is_retryable() {
            self.restart.on_failure(processing_time_now().max(0) as u64)
        } else {
            RestartDecision::GiveUp("a restart cannot fix this failure".into())
        };
        let (operator, subtask) = match &error {
            JobError::OperatorFailed {
                operator, subtask, ..
            } => (Some(operator.clone()), Some(*subtask)),
            _ => (None, None),
        };
        self.shared.record_failure(crate::job::FailureRecord {
            timestamp_ms: processing_time_now(),
            operator,
            subtask,
            message: error.to_string(),
            restarted: matches!(decision, RestartDecision::RestartAfter(_)),
        });
        if let Ok(mut supervision) = self.shared.supervision.lock() {
            *supervision = self.restart.supervision();
        }
        match decision {
            RestartDecision::GiveUp(why) => {
                self.shared.set_status(JobStatus::Failing);
                info!(parent: &self.span, error = %error, %why, "the job fails: not restarting");
                self.complete(Err(error), ctx);
            }
            RestartDecision::RestartAfter(delay) => {
                self.shared.set_status(JobStatus::Restarting);
                self.shared.restarts.fetch_add(1, Ordering::Relaxed);
                self.attempt += 1;
                warn!(parent: &self.span, error = %error, attempt = self.attempt, delay_ms = delay.as_millis() as u64, "restarting");
                // The new subtasks start once the delay passed and the old
                // ones are gone (closed, their last writes done).
                // Only the newest restart deploys: exactly one deployment
                // runs at a time.
                let attempt = self.attempt;
                let gone = self.subtasks_gone();
                async move {
                    futures::join!(gone, actix_rt::time::sleep(delay));
                }
                .into_actor(self)
                .then(move |_, act, ctx| {
                    if act.attempt == attempt {
                        act.redeploy(ctx);
                    }
                    actix::fut::ready(())
                })
                .spawn(ctx);
            }
        }
    }

    /// Deploys the job again, from the newest snapshot of its lineage if there is one.
    fn redeploy(&mut self, ctx: &mut Context<Self>) {
        if self.result.is_none() {
            return;
        }
        match self.load_restore() {
            Ok(restored) => {
                self.restored = restored;
                self.deploy(ctx);
            }
            Err(error) => self.fail_or_restart(error, ctx),
        }
    }

    /// Notes, for the job's readers, the snapshot this deployment restores
    /// (if any).
    fn record_restore(&self) {
        let Some(id) = self.restored_from else {
            return;
        };
        let snapshot = self
            .shared
            .lineage
            .latest()
            .filter(|s| s.id == id)
            .unwrap_or_else(|| crate::lineage::SnapshotRef::checkpoint(id));
        let restored = crate::job::RestoredSnapshot {
            id,
            restore_timestamp_ms: crate::clock::processing_time_now(),
            savepoint: snapshot.savepoint,
            location: describe_location(&snapshot, self.shared.lineage.dir()),
        };
        if let Ok(mut restores) = self.shared.restores.lock() {
            restores.count += 1;
            restores.latest = Some(restored);
        }
    }

    /// Reads the newest snapshot of the job's lineage and assigns it to the
    /// subtasks (empty: start afresh), for a restart.
    fn load_restore(&mut self) -> Result<HashMap<(usize, usize), RestoredSubtask>, JobError> {
        if let Some(cause) = self.config.faults.as_ref().and_then(|f| f.on_restore()) {
            return Err(JobError::RestoreFailed(RestoreError::Interrupted {
                reason: cause,
            }));
        }
        let Some(snapshot) = self.shared.lineage.latest() else {
            self.restored_from = None;
            return Ok(HashMap::new());
        };
        let where_ = describe_location(&snapshot, self.shared.lineage.dir());
        let storage =
            snapshot_storage(&snapshot, self.shared.storage.as_ref()).map_err(|reason| {
                JobError::RestoreFailed(RestoreError::Unreadable {
                    snapshot: snapshot.describe(),
                    location: where_.clone(),
                    reason,
                })
            })?;
        let restored = assign_snapshot(
            &self.graph,
            &self.plan,
            &snapshot,
            storage.as_ref(),
            &where_,
            &self.config,
        )?;
        info!(parent: &self.span, snapshot = %snapshot.describe(), location = %where_, "restoring");
        self.restored_from = Some(snapshot.id);
        Ok(restored)
    }

    fn complete(&mut self, outcome: Result<JobResult, JobError>, ctx: &mut Context<Self>) {
        let status = match &outcome {
            Ok(_) => JobStatus::Finished,
            Err(JobError::Canceled(_)) => JobStatus::Canceled,
            Err(_) => JobStatus::Failed,
        };
        if let Ok(mut published) = self.shared.query_routes.lock() {
            *published = None;
        }
        self.shared.set_status(status);
        match &outcome {
            Ok(r) => info!(parent: &self.span, seconds = r.duration.as_secs_f64(), "job finished"),
            // The outcome goes to the caller, who reports it.
            Err(e) => debug!(parent: &self.span, error = %e, "job ended"),
        }
        let canceled = matches!(outcome, Err(JobError::Canceled(_)));
        // The outcome is announced only after every subtask is gone (its
        // operators closed) and the coordinator cleaned up (aborted
        // checkpoints deleted, retention applied), so `wait` sees the final
        // state and another run may take the directories.
        let gone = self.subtasks_gone();
        let coordinator = self.coordinator.take();
        async move {
            gone.await;
            if let Some(coordinator) = coordinator {
                let _ = coordinator.send(JobEnded { canceled }).await;
            }
        }
        .into_actor(self)
        .then(move |_, act, ctx| {
            act.announce(outcome);
            ctx.stop();
            actix::fut::ready(())
        })
        .wait(ctx);
    }

    /// Resolves when the current deployment's subtasks are gone (they were
    /// told to cancel, or finished), or after [`SUBTASK_EXIT_LIMIT`] with a
    /// warning naming how many still run user code that does not return.
    fn subtasks_gone(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let gone = std::mem::take(&mut self.gone);
        let span = self.span.clone();
        async move {
            let still_there = liveness::all_gone(gone, SUBTASK_EXIT_LIMIT).await;
            if still_there > 0 {
                warn!(parent: &span, subtasks = still_there, limit_s = SUBTASK_EXIT_LIMIT.as_secs(), "subtasks did not end after being canceled (user code that does not return?): going on without them");
            }
        }
    }

    fn announce(&mut self, outcome: Result<JobResult, JobError>) {
        // Another job may start on the same directories as soon as this one is over.
        self.holds.clear();
        let outcome = outcome.map(|mut result| {
            result.checkpoints = self
                .shared
                .checkpoints
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            result
        });
        if let Some(tx) = self.result.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.started_at = Instant::now();
        // The first deployment's restore was read before the job started.
        self.deploy(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        if self.stops_system {
            System::current().stop();
        }
    }
}

impl Handler<SubtaskReport> for Supervisor {
    type Result = ();

    fn handle(&mut self, report: SubtaskReport, ctx: &mut Self::Context) {
        if self.result.is_none() || report.attempt != self.attempt {
            return;
        }
        match report.outcome {
            SubtaskOutcome::Finished(metrics) => {
                self.finished.push(metrics);
                self.remaining -= 1;
                if self.remaining == 0 {
                    let mut subtasks = std::mem::take(&mut self.finished);
                    subtasks.sort_by(|a, b| (&a.task, a.subtask).cmp(&(&b.task, b.subtask)));
                    let result = JobResult {
                        job_name: self.graph.name.clone(),
                        job_id: self.shared.job_id.clone(),
                        lineage: self.shared.lineage.id(),
                        duration: self.started_at.elapsed(),
                        subtasks,
                        checkpoints: Vec::new(),
                        restarts: self.restart.restarts(),
                        stopped_at: self.shared.stopped_at.lock().ok().and_then(|s| s.clone()),
                    };
                    self.complete(Ok(result), ctx);
                }
            }
            SubtaskOutcome::Failed {
                operator,
                cause,
                retryable,
            } => {
                let error = JobError::OperatorFailed {
                    operator,
                    subtask: report.subtask,
                    parallelism: report.parallelism,
                    cause,
                    retryable,
                };
                self.fail_or_restart(error, ctx);
            }
        }
    }
}

impl Handler<CheckpointingFailed> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: CheckpointingFailed, ctx: &mut Self::Context) {
        // A coordinator of a deployment that failed otherwise (the job is
        // restarting) may still report a checkpoint it declined before it
        // was told: that deployment is gone, and restarting again would run
        // a second deployment beside the next one.
        if self.result.is_none() || msg.attempt != self.attempt {
            return;
        }
        self.fail_or_restart(msg.error, ctx);
    }
}

impl Handler<GetCoordinator> for Supervisor {
    type Result = Option<Recipient<TriggerCheckpointNow>>;

    fn handle(&mut self, _: GetCoordinator, _ctx: &mut Self::Context) -> Self::Result {
        self.coordinator.clone().map(Addr::recipient)
    }
}

impl Handler<CancelJob> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: CancelJob, ctx: &mut Self::Context) {
        if self.result.is_none() {
            return;
        }
        self.shared.set_status(JobStatus::Canceling);
        self.cancel_subtasks();
        self.complete(Err(JobError::Canceled(self.graph.name.clone())), ctx);
    }
}

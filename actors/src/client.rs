//! Starting a job and talking to it while it runs.
//!
//! [`launch`] validates and plans a [`JobGraph`], starts its [`Supervisor`] and
//! returns a [`JobClient`]. Where it runs:
//! - inside a running actix `System` (under `#[actix::main]` or
//!   `#[actix_web::main]`), the supervisor lives on the caller's Arbiter;
//! - anywhere else (plain `main`, a tokio runtime, a test), the job gets an actix
//!   `System` of its own on a dedicated thread, which ends with the job.
//!
//! Either way the subtasks run on Arbiters (threads) the job starts for itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Recipient, System};
use futures::channel::oneshot;

use crate::checkpoint::coordinator::{SavepointRequest, TriggerCheckpointNow};
use crate::checkpoint::{CheckpointStats, CheckpointStorage, RetainedCheckpoint};
use crate::config::RuntimeConfig;
use crate::error::JobError;
use crate::graph::JobGraph;
use crate::job::JobShared;
pub use crate::job::JobStatus;
use crate::lineage::SnapshotRef;
use crate::metrics::JobResult;
use crate::plan::plan;
use crate::startup::prepare;
use crate::supervisor::protocol::{CancelJob, GetCoordinator};
use crate::supervisor::Supervisor;

/// A handle on a running job: its status, a way to cancel it, and its outcome.
///
/// Everything but [`wait`](JobClient::wait) is on its [`JobControl`] (the
/// client dereferences to it); [`control`](JobClient::control) clones that
/// for another thread or task, for example to stop the job on a signal while
/// this one waits.
pub struct JobClient {
    control: JobControl,
    result: Option<oneshot::Receiver<Result<JobResult, JobError>>>,
    outcome: Option<Result<JobResult, JobError>>,
}

/// What can be done with a running job besides waiting for it: status,
/// checkpoints, savepoints, stop and cancel. Cheap to clone; usable from any
/// thread or executor.
#[derive(Clone)]
pub struct JobControl {
    name: String,
    shared: Arc<JobShared>,
    supervisor: Addr<Supervisor>,
}

impl std::ops::Deref for JobClient {
    type Target = JobControl;

    fn deref(&self) -> &JobControl {
        &self.control
    }
}

impl JobControl {
    /// The job's id (unique per launch).
    pub fn job_id(&self) -> &str {
        &self.shared.job_id
    }

    /// The job's lineage id: the same for every run of the job restored from
    /// its own snapshots (see [`crate::lineage`]).
    pub fn lineage(&self) -> String {
        self.shared.lineage.id()
    }

    /// The newest complete snapshot of the job's lineage (what a restart, or
    /// a later run with `resume_from("latest")`, restores).
    pub fn latest_snapshot(&self) -> Option<SnapshotRef> {
        self.shared.lineage.latest()
    }

    /// The newest complete snapshot's id and directory, if it is on disk
    /// (`None`: none yet, or in-memory checkpoint storage).
    pub fn latest_snapshot_dir(&self) -> Option<(u64, PathBuf)> {
        let latest = self.latest_snapshot()?;
        let dir = latest.dir(self.shared.lineage.dir())?;
        Some((latest.id, dir))
    }

    /// The job's checkpoint storage (`None` without checkpointing): where
    /// a snapshot without a directory of its own (an in-memory checkpoint)
    /// is read, with [`crate::restore::read`].
    pub fn checkpoint_storage(&self) -> Option<Arc<dyn CheckpointStorage>> {
        let storage = self.shared.storage.clone()?;
        Some(storage)
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The job's current status.
    pub fn status(&self) -> JobStatus {
        self.shared.status()
    }

    /// The value of `key` (encoded; its key group given the max parallelism
    /// by `key_group`) in queryable state `name` of operator `uid` (`None`:
    /// whichever operator has a queryable state of that name): a live query
    /// (see [`crate::query`]), answered by the subtask that owns the key.
    /// The typed form is the API layer's.
    pub async fn query_state(
        &self,
        uid: Option<&str>,
        name: &str,
        key: Vec<u8>,
        key_group: crate::query::KeyGroupOf,
    ) -> Result<Option<Vec<u8>>, crate::query::QueryError> {
        use crate::query::StateQuery;
        self.lookup(uid, name, &key_group, |key_group| StateQuery::Get {
            key_group,
            key: key.clone(),
        })
        .await
    }

    /// The value of the key written as JSON text `key_json` (if the text is
    /// not JSON: the text as a string) in queryable state `name` of
    /// operator `uid` (`None`: whichever operator has it), for callers that
    /// do not know the key's type: the key is located first
    /// ([`JobControl::locate_json_key`]), then the subtask that owns it
    /// answers as [`JobControl::query_state`] does.
    pub async fn query_state_json_key(
        &self,
        uid: Option<&str>,
        name: &str,
        key_json: &str,
    ) -> Result<Option<Vec<u8>>, crate::query::QueryError> {
        let (uid, group, key) = self.locate_json_key(uid, name, key_json).await?;
        let key_group: crate::query::KeyGroupOf = Box::new(move |_| group);
        self.query_state(Some(&uid), name, key, key_group).await
    }

    /// The key written as JSON text `key_json` (or the text as a string) as
    /// operator `uid` reads it, or (`None`) the operator that has queryable
    /// state `name`: that operator's uid, the key's group and its encoding.
    /// A running subtask of the operator reads the key as its key type
    /// ([`crate::query::StateQuery::Locate`]); a key it cannot read is
    /// [`QueryError::Codec`](crate::query::QueryError::Codec).
    pub async fn locate_json_key(
        &self,
        uid: Option<&str>,
        name: &str,
        key_json: &str,
    ) -> Result<(String, usize, Vec<u8>), crate::query::QueryError> {
        use crate::query::QueryError;
        let routes = self.query_routes()?;
        let named = uid.is_some();
        let candidates = routes.candidates_for(uid, name);
        let mut unknown = Vec::new();
        for uid in &candidates {
            // Unnamed: only an operator that has the state reads the key.
            if !named {
                match self.knows(&routes, uid, name).await {
                    Ok(()) => {}
                    Err(e @ QueryError::Unavailable { .. }) => return Err(e),
                    Err(e) => {
                        unknown.push(e);
                        continue;
                    }
                }
            }
            let (group, key) = self.locate_in(&routes, uid, name, key_json).await?;
            routes.learn(name, uid);
            return Ok((uid.clone(), group, key));
        }
        Err(routes.unknown(None, name, unknown))
    }

    /// [`locate_json_key`](Self::locate_json_key) in operator `uid`: asks
    /// its subtasks in turn until one that runs answers.
    async fn locate_in(
        &self,
        routes: &crate::query::QueryRoutes,
        uid: &str,
        name: &str,
        key_json: &str,
    ) -> Result<(usize, Vec<u8>), crate::query::QueryError> {
        use crate::query::{QueryError, StateAnswer, StateQuery};
        let mut unavailable = None;
        for target in routes.all(uid)? {
            let locate = StateQuery::Locate {
                key_json: key_json.to_string(),
            };
            match self.ask(target, uid, name, locate).await {
                Ok(StateAnswer::Located { key_group, key }) => return Ok((key_group, key)),
                Ok(_) => {
                    return Err(QueryError::Failed {
                        uid: uid.to_string(),
                        name: name.to_string(),
                        cause: "locating a key got another kind of answer".into(),
                    })
                }
                Err(e @ QueryError::Unavailable { .. }) => unavailable = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(unavailable.unwrap_or_else(|| QueryError::Unavailable {
            job: self.name.clone(),
            reason: format!("operator `{uid}` has no running subtask"),
            retry: true,
        }))
    }

    /// The value under `user_key` (encoded) in the map of `key` (encoded;
    /// its group given by `key_group`) of queryable map state `name` of
    /// operator `uid` (`None`: whichever has it): one entry, not the whole map.
    pub async fn query_entry_state(
        &self,
        uid: Option<&str>,
        name: &str,
        key: Vec<u8>,
        key_group: crate::query::KeyGroupOf,
        user_key: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, crate::query::QueryError> {
        use crate::query::StateQuery;
        self.lookup(uid, name, &key_group, |key_group| StateQuery::Entry {
            key_group,
            key: key.clone(),
            user_key: user_key.clone(),
        })
        .await
    }

    /// A lookup of one key, in operator `uid` or in whichever operator has
    /// the queryable name. The subtask that owns the key answers; if it has
    /// not used the state yet while another subtask of the operator has,
    /// the key has no value (`None`).
    async fn lookup(
        &self,
        uid: Option<&str>,
        name: &str,
        key_group: &crate::query::KeyGroupOf,
        query: impl Fn(usize) -> crate::query::StateQuery,
    ) -> Result<Option<Vec<u8>>, crate::query::QueryError> {
        use crate::query::{QueryError, StateAnswer};
        let routes = self.query_routes()?;
        let named = uid.is_some();
        let candidates = routes.candidates_for(uid, name);
        let mut unknown = Vec::new();
        let mut wrong_key = None;
        for uid in &candidates {
            let (target, group) = routes.route(uid, key_group)?;
            match self.ask(target, uid, name, query(group)).await {
                Ok(StateAnswer::Value(value)) => {
                    routes.learn(name, uid);
                    return Ok(value);
                }
                Ok(StateAnswer::Keys(_) | StateAnswer::Located { .. }) => {
                    return Err(QueryError::Codec(
                        "a lookup got another kind of answer".into(),
                    ))
                }
                Err(e @ QueryError::UnknownState { .. }) => {
                    if self.known_by(&routes, uid, name).await {
                        routes.learn(name, uid);
                        return Ok(None);
                    }
                    unknown.push(e);
                }
                // Another operator's key type: not the operator asked for,
                // unless it was named.
                Err(e @ QueryError::Codec(_)) if !named => {
                    wrong_key.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let asked = named.then_some(candidates[0].as_str());
        Err(wrong_key.unwrap_or_else(|| routes.unknown(asked, name, unknown)))
    }

    /// Whether some subtask of operator `uid` has queryable state `name`.
    async fn known_by(&self, routes: &crate::query::QueryRoutes, uid: &str, name: &str) -> bool {
        self.knows(routes, uid, name).await.is_ok()
    }

    /// `Ok` if some subtask of operator `uid` has queryable state `name`,
    /// else what one of them answered.
    async fn knows(
        &self,
        routes: &crate::query::QueryRoutes,
        uid: &str,
        name: &str,
    ) -> Result<(), crate::query::QueryError> {
        use crate::query::{QueryError, StateQuery};
        let probes = routes.all(uid)?.into_iter().map(|target| {
            let probe = StateQuery::Keys {
                limit: 0,
                after: None,
            };
            self.ask(target, uid, name, probe)
        });
        let answers = futures::future::join_all(probes).await;
        if answers.iter().any(Result::is_ok) {
            return Ok(());
        }
        Err(answers
            .into_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| QueryError::no_queryable_state(uid, name)))
    }

    /// Up to `limit` keys (encoded, in byte order, after `after` if given)
    /// that have a value in queryable state `name` of operator `uid`
    /// (`None`: whichever has it), from every subtask of the operator: a
    /// page of a bounded listing.
    pub async fn query_keys(
        &self,
        uid: Option<&str>,
        name: &str,
        limit: usize,
        after: Option<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, crate::query::QueryError> {
        use crate::query::{QueryError, StateAnswer, StateQuery};
        let routes = self.query_routes()?;
        let candidates = routes.candidates_for(uid, name);
        let mut unknown_errors = Vec::new();
        for uid in &candidates {
            let asks = routes.all(uid)?.into_iter().map(|target| {
                let query = StateQuery::Keys {
                    limit,
                    after: after.clone(),
                };
                self.ask(target, uid, name, query)
            });
            let mut keys = Vec::new();
            // A subtask whose keys never used the state does not know it
            // yet: it has none of its keys, unless no subtask knows the name.
            let mut unknown = None;
            let mut known = false;
            for answer in futures::future::join_all(asks).await {
                match answer {
                    Ok(StateAnswer::Keys(some)) => {
                        known = true;
                        keys.extend(some);
                    }
                    Ok(StateAnswer::Value(_) | StateAnswer::Located { .. }) => {
                        return Err(QueryError::Codec(
                            "a key listing got another kind of answer".into(),
                        ))
                    }
                    Err(e @ QueryError::UnknownState { .. }) => unknown = Some(e),
                    Err(e) => return Err(e),
                }
            }
            if known {
                routes.learn(name, uid);
                keys.sort();
                keys.dedup();
                keys.truncate(limit);
                return Ok(keys);
            }
            unknown_errors.extend(unknown);
        }
        Err(routes.unknown(uid, name, unknown_errors))
    }

    /// The current deployment's query routes, or why there are none.
    fn query_routes(&self) -> Result<Arc<crate::query::QueryRoutes>, crate::query::QueryError> {
        let routes = self.shared.query_routes.lock().ok().and_then(|r| r.clone());
        routes.ok_or_else(|| {
            let status = self.status();
            crate::query::QueryError::Unavailable {
                job: self.name.clone(),
                reason: format!("it is {status:?}"),
                retry: !status.is_terminal(),
            }
        })
    }

    /// Sends `query` to one subtask.
    async fn ask(
        &self,
        target: Recipient<crate::query::QuerySubtask>,
        uid: &str,
        name: &str,
        query: crate::query::StateQuery,
    ) -> Result<crate::query::StateAnswer, crate::query::QueryError> {
        let message = crate::query::QuerySubtask {
            uid: uid.to_string(),
            name: name.to_string(),
            query,
        };
        target.send(message).await.unwrap_or_else(|_| {
            Err(crate::query::QueryError::Unavailable {
                job: self.name.clone(),
                reason: "a subtask of the operator has stopped (restarting?)".into(),
                retry: true,
            })
        })
    }

    /// Triggers a checkpoint now and waits until it completes (or fails).
    pub async fn trigger_checkpoint(&self) -> Result<CheckpointStats, JobError> {
        self.trigger(None, false).await
    }

    /// Stops the job with a checkpoint of its lineage (as
    /// [`stop_with_savepoint`](Self::stop_with_savepoint), but the snapshot is
    /// a regular checkpoint in the checkpoint directory): sources emit nothing
    /// after its barrier, sinks commit what it covers, and the job ends.
    /// Returns its directory (`memory:chk-<n>` for in-memory checkpoints); a
    /// later run with `resume_from("latest")` continues from it. If the
    /// checkpoint fails, the job keeps running and the error says why.
    pub async fn stop_with_checkpoint(&self) -> Result<String, JobError> {
        let stats = self.trigger(None, true).await?;
        stats.location.ok_or_else(|| {
            JobError::Runtime(format!(
                "job `{}`: checkpoint {} completed without a location",
                self.name, stats.id
            ))
        })
    }

    /// Stops the job gracefully, as a service manager asks: with a savepoint
    /// into the configured savepoint directory if there is one, else with a
    /// checkpoint; without checkpointing, by canceling it (there is nothing
    /// to resume from). Returns where the job can resume from, if anywhere.
    /// [`JobClient::wait`] then gives the outcome.
    pub async fn stop(&self) -> Result<Option<String>, JobError> {
        if self.shared.storage.is_none() {
            self.cancel();
            return Ok(None);
        }
        if self.shared.savepoint_dir.is_some() {
            let path = self.stop_with_savepoint(None).await?;
            return Ok(Some(path.display().to_string()));
        }
        self.stop_with_checkpoint().await.map(Some)
    }

    /// Takes a savepoint and returns its directory, `<dir>/savepoint-<job>-<n>`,
    /// once it is complete. `dir` defaults to the configured savepoint
    /// directory (`state.savepoints.dir`). The job goes on running; the
    /// savepoint is the user's: the engine never deletes it.
    ///
    /// Savepoints are aligned and hold every operator's full state, so a job
    /// can be restored from one at any parallelism
    /// ([`RuntimeConfig::restore_from`](crate::RuntimeConfig::restore_from)).
    /// The job needs checkpointing enabled (periodic or not).
    pub async fn trigger_savepoint(&self, dir: Option<&Path>) -> Result<PathBuf, JobError> {
        self.savepoint(dir, false).await
    }

    /// Stops the job with a savepoint: sources emit nothing after its barrier,
    /// the savepoint completes, sinks commit what it covers, and every
    /// subtask ends (without the end-of-input watermark: timers that are not
    /// due stay in the savepoint). Returns the savepoint's directory;
    /// [`JobClient::wait`] then reports the job finished. If the savepoint
    /// fails, the job keeps running and the error says why.
    pub async fn stop_with_savepoint(&self, dir: Option<&Path>) -> Result<PathBuf, JobError> {
        self.savepoint(dir, true).await
    }

    async fn savepoint(&self, dir: Option<&Path>, stop: bool) -> Result<PathBuf, JobError> {
        let parent_dir = dir
            .map(Path::to_path_buf)
            .or_else(|| self.shared.savepoint_dir.clone())
            .ok_or_else(|| {
                JobError::InvalidJob(format!(
                    "job `{}`: no savepoint directory given and none configured (state.savepoints_dir)",
                    self.name
                ))
            })?;
        let stats = self
            .trigger(Some(SavepointRequest { parent_dir, stop }), false)
            .await?;
        stats.location.map(PathBuf::from).ok_or_else(|| {
            JobError::Runtime(format!(
                "job `{}`: savepoint {} completed without a location",
                self.name, stats.id
            ))
        })
    }

    pub(crate) async fn trigger(
        &self,
        savepoint: Option<SavepointRequest>,
        stop: bool,
    ) -> Result<CheckpointStats, JobError> {
        if self.shared.storage.is_none() {
            return Err(JobError::InvalidJob(format!(
                "job `{}` has no checkpointing (enable it on the StreamEnv, or configure \
                 checkpoint.interval_ms or state.checkpoints_dir)",
                self.name
            )));
        }
        let deployed = self.shared.coordinator.lock().ok().and_then(|c| c.clone());
        let coordinator = match deployed {
            Some(coordinator) => coordinator,
            // Just started: the supervisor deploys before it reads its mailbox.
            None => self
                .supervisor
                .send(GetCoordinator)
                .await
                .ok()
                .flatten()
                .ok_or_else(|| {
                    JobError::Runtime(format!(
                        "job `{}` is not running (status {:?}): no checkpoint can be taken now",
                        self.name,
                        self.status()
                    ))
                })?,
        };
        let receiver = coordinator
            .send(TriggerCheckpointNow { savepoint, stop })
            .await
            .map_err(|_| {
                JobError::Runtime(format!(
                    "job `{}` has ended: no checkpoint can be taken",
                    self.name
                ))
            })?;
        match receiver.await {
            Ok(Ok(stats)) => Ok(stats),
            Ok(Err(not_taken)) => Err(not_taken),
            Err(_) => Err(JobError::Runtime(format!(
                "job `{}` ended before the checkpoint completed",
                self.name
            ))),
        }
    }

    /// Every vertex's live metrics now, with its subtasks' (see
    /// [`crate::live`]): records in and out and their rates, busy /
    /// backpressured / idle ratios over the last seconds, queue and credit
    /// levels, watermarks, state sizes. Cheap: it reads atomics.
    pub fn live_metrics(&self) -> Vec<crate::live::LiveVertex> {
        self.shared.live.sample(crate::clock::processing_time_now())
    }

    /// The job's vertices (chains of operators) and the edges between them.
    pub fn vertices(&self) -> &[crate::live::VertexInfo] {
        self.shared.live.vertices()
    }

    /// The latest failures, oldest first (at most
    /// [`FAILURE_HISTORY`](crate::job::FAILURE_HISTORY)), each with what the
    /// supervisor decided.
    pub fn failures(&self) -> Vec<crate::job::FailureRecord> {
        self.shared
            .failures
            .lock()
            .map(|f| f.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Where the restart strategy stands: the strategy, restarts so far,
    /// how much of its limit is used.
    pub fn supervision(&self) -> crate::restart::Supervision {
        self.shared
            .supervision
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// When the job was launched (milliseconds since the epoch).
    pub fn started_ms(&self) -> i64 {
        self.shared.started_ms
    }

    /// When the job ended (milliseconds since the epoch), once it has.
    pub fn ended_ms(&self) -> Option<i64> {
        self.shared.ended_ms()
    }

    /// Failures so far, restarted from or not.
    pub fn failures_total(&self) -> u64 {
        self.shared.failures_total.load(Ordering::Relaxed)
    }

    /// Checkpoints triggered and not ended yet.
    pub fn checkpoints_in_progress(&self) -> usize {
        if self.status().is_terminal() {
            return 0;
        }
        self.shared.checkpoints_in_progress.load(Ordering::Relaxed)
    }

    /// How often the job restored a snapshot, and the latest one.
    pub fn restores(&self) -> crate::job::Restores {
        self.shared
            .restores
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Its checkpoint settings (`None`: it does not checkpoint).
    pub fn checkpoint_config(&self) -> Option<&crate::checkpoint::CheckpointConfig> {
        self.shared.checkpoint_config.as_ref()
    }

    /// How often the job restarted so far.
    pub fn restarts(&self) -> u32 {
        self.shared.restarts.load(Ordering::Relaxed)
    }

    /// The last failure (with operator, subtask and cause), if any.
    pub fn last_failure(&self) -> Option<JobError> {
        self.shared.last_failure.lock().ok().and_then(|f| f.clone())
    }

    /// Statistics of every checkpoint that ended so far (complete or not), oldest first.
    pub fn checkpoint_stats(&self) -> Vec<CheckpointStats> {
        self.shared
            .checkpoints
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }

    /// How many checkpoints completed and failed so far, and how long the
    /// latest completed one took, without copying the history.
    pub fn checkpoint_counts(&self) -> crate::checkpoint::CheckpointCounts {
        let mut counts = crate::checkpoint::CheckpointCounts::default();
        if let Ok(history) = self.shared.checkpoints.lock() {
            for c in history.iter() {
                match &c.failure {
                    None => {
                        counts.completed += 1;
                        counts.last_completed_duration = Some(c.end_to_end);
                    }
                    Some(failure) if failure.counts_as_failure() => counts.failed += 1,
                    Some(_) => {}
                }
            }
        }
        counts
    }

    /// The complete checkpoints the storage holds (id, time, size, location).
    pub fn retained_checkpoints(&self) -> Result<Vec<RetainedCheckpoint>, JobError> {
        match &self.shared.storage {
            Some(storage) => storage.list().map_err(|e| JobError::Runtime(e.to_string())),
            None => Ok(Vec::new()),
        }
    }

    /// Asks the job to stop; [`JobClient::wait`] then returns [`JobError::Canceled`]
    /// (unless the job ended first).
    pub fn cancel(&self) {
        self.supervisor.do_send(CancelJob);
    }
}

impl JobClient {
    /// A handle for another thread or task to stop, cancel or watch the job.
    pub fn control(&self) -> JobControl {
        self.control.clone()
    }

    /// Waits until the job ends and returns its outcome (again on later calls).
    pub async fn wait(&mut self) -> Result<JobResult, JobError> {
        if let Some(receiver) = self.result.take() {
            let outcome = receiver.await.unwrap_or_else(|_| {
                Err(JobError::Runtime(format!(
                    "job `{}` lost its supervisor before reporting an outcome",
                    self.control.name
                )))
            });
            self.outcome = Some(outcome);
        }
        match &self.outcome {
            Some(outcome) => outcome.clone(),
            None => Err(JobError::Runtime(format!(
                "job `{}` has no outcome",
                self.control.name
            ))),
        }
    }
}

fn new_job_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:016x}",
        nanos.rotate_left(17) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    )
}

/// Validates, plans and starts `graph`; see the module docs for where it runs.
///
/// With `own_system` the job always gets a System of its own on a dedicated
/// thread, even when the caller is inside one (needed to block on the job from a
/// System's own thread).
pub async fn launch(
    graph: JobGraph,
    config: RuntimeConfig,
    own_system: bool,
) -> Result<JobClient, JobError> {
    graph.validate()?;
    config.validate()?;
    let plan = plan(&graph, config.chaining);
    let name = graph.name.clone();
    let job_id = new_job_id();
    let prepared = prepare(&graph, &plan, &config, &job_id)?;
    let savepoint_dir = config.savepoint_dir.clone();
    let shared = Arc::new(JobShared {
        job_id,
        status: Mutex::new(JobStatus::Created),
        checkpoints: Arc::default(),
        coordinator: Mutex::new(None),
        next_checkpoint_id: Arc::new(AtomicU64::new(prepared.first_checkpoint_id)),
        restarts: AtomicU32::new(0),
        last_failure: Mutex::new(None),
        storage: prepared.storage,
        savepoint_dir,
        lineage: prepared.lineage,
        stopped_at: Arc::default(),
        query_routes: Mutex::new(None),
        live: crate::live::LiveMetrics::new(
            plan.chains
                .iter()
                .map(|chain| crate::live::VertexInfo {
                    name: chain.name.clone(),
                    operators: chain
                        .vertices
                        .iter()
                        .map(|&v| graph.vertices[v].uid.clone())
                        .collect(),
                    parallelism: chain.parallelism,
                    inputs: chain
                        .in_edges
                        .iter()
                        .map(|&e| {
                            let edge = &graph.edges[e];
                            crate::live::VertexInput {
                                id: plan.chain_of[edge.source],
                                ship_strategy: edge.partitioning.to_string(),
                                side_output: edge.side_output.as_deref().map(str::to_string),
                            }
                        })
                        .collect(),
                })
                .collect(),
        ),
        failures: Mutex::default(),
        supervision: Mutex::new(
            crate::restart::RestartTracker::new(config.restart_strategy()).supervision(),
        ),
        started_ms: crate::clock::processing_time_now(),
        checkpoint_config: config.checkpointing.as_ref().map(|c| c.config.clone()),
        ended_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        failures_total: AtomicU64::new(0),
        checkpoints_in_progress: Arc::default(),
        restores: Mutex::default(),
    });
    let first = prepared.first;
    let (result_tx, result_rx) = oneshot::channel();
    let graph = Arc::new(graph);

    let supervisor = if System::try_current().is_some() && !own_system {
        Supervisor::new(graph, plan, config, shared.clone(), result_tx, false, first).start()
    } else {
        let (addr_tx, addr_rx) = oneshot::channel();
        let job_shared = shared.clone();
        std::thread::Builder::new()
            .name(format!("weir-job-{}", name.replace('\0', " ")))
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let addr =
                        Supervisor::new(graph, plan, config, job_shared, result_tx, true, first)
                            .start();
                    let _ = addr_tx.send(addr);
                });
                if let Err(e) = system.run() {
                    tracing::error!(error = %e, "the job's actor system ended with an error");
                }
            })
            .map_err(|e| JobError::Runtime(format!("cannot start the job's thread: {e}")))?;
        addr_rx
            .await
            .map_err(|_| JobError::Runtime("the job's actor system did not start".into()))?
    };
    Ok(JobClient {
        control: JobControl {
            name,
            shared,
            supervisor,
        },
        result: Some(result_rx),
        outcome: None,
    })
}

//! The stream environment: job-wide defaults, sources, and execution.
//!
//! A [`StreamEnv`] collects the operators a program declares (through the
//! [`DataStream`] API) into a job graph, and runs it with
//! [`execute`](StreamEnv::execute) (async), [`execute_blocking`](StreamEnv::execute_blocking)
//! (plain `main`) or [`start`](StreamEnv::start) (returns a [`JobClient`]).
//!
//! ```
//! use weir::StreamEnv;
//! let env = StreamEnv::with_parallelism(2);
//! let lengths = env
//!     .from_collection(vec!["a".to_string(), "bb".into(), "ccc".into()])
//!     .map(|s: String| s.len())
//!     .collect();
//! env.execute_blocking("lengths").unwrap();
//! let mut lengths = lengths.take();
//! lengths.sort();
//! assert_eq!(lengths, vec![1, 2, 3]);
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use weir_actors::graph::{ChainingStrategy, PartitionerFactory, VertexId, VertexKind};
use weir_actors::{
    launch, Edge, JobClient, JobError, JobGraph, JobResult, Partitioning, RuntimeConfig, Vertex,
};

use crate::config::{apply, ConfigError, Configuration, Effective};
use crate::data::Data;
use crate::plan::{Plan, RestoreReport};
use crate::source::{
    source_factory, source_preflight, CollectionSource, GeneratorSource, Source, TextFileSource,
};
use crate::state::{BackendCell, HeapStateBackend, StateBackend};
use crate::stream::DataStream;
use weir_actors::checkpoint::layout::parse_dir;
use weir_actors::checkpoint::{CheckpointConfig, StorageSpec};
use weir_actors::config::CheckpointSettings;
use weir_actors::restart::RestartStrategy;
use weir_actors::restore::{JobPlan, RestoreSource};

/// The default max parallelism (number of key groups), as in Flink for small jobs.
pub const DEFAULT_MAX_PARALLELISM: usize = 128;

/// Where a job is declared and from where it runs.
///
/// Cloning gives another handle on the same environment.
#[derive(Clone)]
pub struct StreamEnv {
    inner: Arc<Mutex<Builder>>,
}

pub(crate) struct VertexDraft {
    pub name: String,
    pub uid: Option<String>,
    pub parallelism: Option<usize>,
    /// The only parallelism a non-parallel source supports.
    pub fixed_parallelism: Option<usize>,
    pub max_parallelism: Option<usize>,
    pub chaining: ChainingStrategy,
    pub kind: VertexKind,
    /// The key type, for an operator fed by a keyed stream.
    pub key_type: Option<&'static str>,
    /// What to check (and hold) before the job starts.
    pub preflight: Option<weir_actors::preflight::PreflightFn>,
    /// The key type whose keyed state it restores by migrating the keys.
    pub migrates_keys_from: Option<String>,
    /// The keyed states its function declares (see
    /// [`Lifecycle::declare_states`](crate::Lifecycle::declare_states)).
    pub states: Vec<crate::state::schema::DeclaredState>,
}

pub(crate) struct EdgeDraft {
    pub source: VertexId,
    pub target: VertexId,
    pub input: usize,
    /// `None`: forward when parallelisms match, else rebalance (as Flink).
    pub partitioning: Option<Partitioning>,
    /// The key-aware partitioner of a hash edge.
    pub hash: Option<PartitionerFactory>,
    /// Builds the partitioner for the other kinds, typed for the edge's records.
    pub generic: fn(Partitioning) -> PartitionerFactory,
    /// Decodes the edge's records (in-flight data of unaligned checkpoints).
    pub decoder: weir_actors::batch::BatchDecoder,
    /// The side output of `source` the edge carries (`None`: its main output).
    pub side_output: Option<Arc<str>>,
}

pub(crate) struct Builder {
    parallelism: usize,
    max_parallelism: usize,
    runtime: RuntimeConfig,
    state_backend: Option<Arc<dyn StateBackend>>,
    /// A snapshot directory or `latest`, set in code.
    resume_from: Option<String>,
    /// Settings from the command line, the environment and files.
    configuration: Configuration,
    /// The configuration keys set in code: configuration does not override them.
    code_keys: BTreeSet<&'static str>,
    /// The backend the job resolved to, read by keyed operators when they open.
    backend_cell: BackendCell,
    pub vertices: Vec<VertexDraft>,
    pub edges: Vec<EdgeDraft>,
    /// API misuse found while declaring the job; reported by `execute`.
    pub errors: Vec<String>,
}

impl Default for StreamEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEnv {
    /// An environment whose default parallelism is the number of cores (as Flink's local environment).
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_default_parallelism(cores)
    }

    /// An environment with default parallelism `parallelism` (set in code:
    /// configuration does not override it).
    pub fn with_parallelism(parallelism: usize) -> Self {
        let env = Self::with_default_parallelism(parallelism);
        env.builder().code_keys.insert("parallelism");
        env
    }

    fn with_default_parallelism(parallelism: usize) -> Self {
        StreamEnv {
            inner: Arc::new(Mutex::new(Builder {
                parallelism,
                max_parallelism: DEFAULT_MAX_PARALLELISM,
                runtime: RuntimeConfig::default(),
                state_backend: None,
                resume_from: None,
                configuration: Configuration::new(),
                code_keys: BTreeSet::new(),
                backend_cell: BackendCell::default(),
                vertices: Vec::new(),
                edges: Vec::new(),
                errors: Vec::new(),
            })),
        }
    }

    /// Adds settings from the command line, the environment and files (see
    /// [`crate::config`]); settings made in code win over them, before or
    /// after this call. The process environment (`WEIR_*`, `WEIR_CONFIG`)
    /// is read when the job is built, whether or not this is called.
    pub fn configure(&self, configuration: &Configuration) -> &Self {
        self.builder().configuration.merge(configuration);
        self
    }

    fn code(&self, keys: &[&'static str]) -> MutexGuard<'_, Builder> {
        let mut builder = self.builder();
        builder.code_keys.extend(keys.iter().copied());
        builder
    }

    pub(crate) fn builder(&self) -> MutexGuard<'_, Builder> {
        // The builder is only mutated by short, non-panicking sections.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the default parallelism of operators that do not set their own.
    pub fn set_parallelism(&self, parallelism: usize) -> &Self {
        self.code(&["parallelism"]).parallelism = parallelism;
        self
    }

    /// The default parallelism in effect (code, else configuration, else the number of cores).
    pub fn parallelism(&self) -> usize {
        let builder = self.builder();
        builder
            .effective()
            .map_or(builder.parallelism, |e| e.parallelism)
    }

    /// Sets the default max parallelism (number of key groups, default 128).
    pub fn set_max_parallelism(&self, max_parallelism: usize) -> &Self {
        self.code(&["max_parallelism"]).max_parallelism = max_parallelism;
        self
    }

    /// Sets the number of records per batch (default 1024).
    pub fn set_batch_size(&self, records: usize) -> &Self {
        self.builder().runtime.batch_size = records;
        self
    }

    /// Sets how long a partly filled batch may wait before it is sent (default 5 ms).
    pub fn set_linger(&self, linger: Duration) -> &Self {
        self.builder().runtime.linger = linger;
        self
    }

    /// Sets how many batches may be in flight per channel (default 4).
    pub fn set_channel_credits(&self, credits: u32) -> &Self {
        self.builder().runtime.channel_credits = credits;
        self
    }

    /// Sets the number of Arbiters (threads) subtasks are placed on (default: one per core).
    pub fn set_arbiters(&self, arbiters: usize) -> &Self {
        self.builder().runtime.arbiters = Some(arbiters);
        self
    }

    /// Runs every operator in its own actor (chaining is on by default).
    pub fn disable_chaining(&self) -> &Self {
        self.builder().runtime.chaining = false;
        self
    }

    /// Replaces the whole runtime configuration (all of it counts as set in code).
    pub fn set_runtime_config(&self, config: RuntimeConfig) -> &Self {
        let keys: Vec<&'static str> = crate::config::KEYS
            .iter()
            .map(|k| k.key)
            .filter(|k| {
                k.starts_with("checkpoint.")
                    || k.starts_with("restart.")
                    || k.starts_with("restore.")
                    || k.starts_with("sink.")
                    || *k == "state.checkpoints_dir"
                    || *k == "state.savepoints_dir"
            })
            .collect();
        self.code(&keys).runtime = config;
        self
    }

    /// Turns on periodic checkpoints every `interval` (exactly-once, aligned,
    /// in-memory storage unless set otherwise).
    pub fn enable_checkpointing(&self, interval: Duration) -> &Self {
        let mut builder = self.code(&["checkpoint.interval_ms"]);
        let settings = builder
            .runtime
            .checkpointing
            .get_or_insert_with(CheckpointSettings::default);
        settings.config.interval = Some(interval);
        drop(builder);
        self
    }

    /// Reads the `weir.toml` file at `path` (see [`crate::config`]): every
    /// key it sets applies unless set in code, on the command line or in
    /// the environment.
    pub fn load_config_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<&Self, ConfigError> {
        let mut configuration = Configuration::new();
        configuration.load_file(path.as_ref())?;
        self.configure(&configuration);
        Ok(self)
    }

    /// Sets every checkpoint setting (turning checkpointing on).
    pub fn set_checkpoint_config(&self, config: CheckpointConfig) -> &Self {
        let keys: Vec<&'static str> = crate::config::KEYS
            .iter()
            .map(|k| k.key)
            .filter(|k| k.starts_with("checkpoint."))
            .collect();
        self.code(&keys)
            .runtime
            .checkpointing
            .get_or_insert_with(CheckpointSettings::default)
            .config = config;
        self
    }

    /// The checkpoint settings in effect, if checkpointing is on.
    pub fn checkpoint_config(&self) -> Option<CheckpointConfig> {
        self.runtime_config().checkpointing.map(|c| c.config)
    }

    /// Where checkpoints are written (turning checkpointing on).
    pub fn set_checkpoint_storage(&self, storage: StorageSpec) -> &Self {
        self.code(&["state.checkpoints_dir"])
            .runtime
            .checkpointing
            .get_or_insert_with(CheckpointSettings::default)
            .storage = storage;
        self
    }

    /// Writes checkpoints under `dir` (a plain path, `file:///path`, or with
    /// the cargo feature `s3` an object store URL `s3://bucket/prefix`), in
    /// `<dir>/<job-id>/chk-<n>/`; turns checkpointing on. A bad value is
    /// reported when the job starts. How an `s3://` URL is reached: the
    /// `[s3]` configuration keys, the `AWS_*` environment variables, or
    /// [`crate::location::configure_s3_bucket`].
    pub fn set_checkpoint_dir(&self, dir: &str) -> &Self {
        match parse_dir(dir) {
            Ok(path) => {
                self.set_checkpoint_storage(StorageSpec::Filesystem(path));
            }
            Err(e) => self.builder().errors.push(e),
        }
        self
    }

    /// How the job restarts after a failure (default as in Flink: with
    /// checkpointing, fixed delay with unlimited attempts and 1 s delay; else none).
    pub fn set_restart_strategy(&self, strategy: RestartStrategy) -> &Self {
        self.code(&["restart.strategy"]).runtime.restart = Some(strategy);
        self
    }

    /// Starts the job from a retained checkpoint: `path` is its directory
    /// (`.../chk-<n>`), or `"latest"` to take the newest complete checkpoint
    /// under the checkpoint directory set with [`set_checkpoint_dir`](Self::set_checkpoint_dir).
    /// State is matched to operators by uid.
    pub fn resume_from(&self, path: &str) -> &Self {
        self.code(&["restore.from"]).resume_from = Some(path.to_string());
        self
    }

    /// Where savepoints go when [`JobControl::trigger_savepoint`](crate::JobControl::trigger_savepoint) or
    /// [`JobControl::stop_with_savepoint`](crate::JobControl::stop_with_savepoint) is given no directory (Flink's
    /// `state.savepoints.dir`).
    pub fn set_savepoint_dir(&self, dir: impl Into<PathBuf>) -> &Self {
        self.code(&["state.savepoints_dir"]).runtime.savepoint_dir = Some(dir.into());
        self
    }

    /// Lets a restore skip state whose operator (uid) this job no longer has
    /// (Flink's `--allowNonRestoredState`); without it, that is an error that
    /// lists the uids.
    pub fn set_allow_non_restored_state(&self, allow: bool) -> &Self {
        self.code(&["restore.allow_non_restored_state"])
            .runtime
            .allow_non_restored_state = allow;
        self
    }

    /// Lets two-phase-commit sinks accept a restore from a snapshot older than
    /// what they already committed, or into output committed by another
    /// lineage (`sink.allow_rewind`, `--allow-sink-rewind`). **The output then
    /// holds duplicates**: what was committed after the snapshot is committed
    /// again. Without it such a restore stops before the job starts, naming
    /// both checkpoints.
    pub fn set_allow_sink_rewind(&self, allow: bool) -> &Self {
        self.code(&["sink.allow_rewind"]).runtime.allow_sink_rewind = allow;
        self
    }

    /// Injects the failures of `faults` into the job (see [`crate::testing::Faults`]).
    pub fn set_faults(&self, faults: std::sync::Arc<crate::testing::Faults>) -> &Self {
        self.builder().runtime.faults = Some(faults);
        self
    }

    /// Chooses the state backend in code (this wins over configuration).
    pub fn set_state_backend(&self, backend: impl StateBackend) -> &Self {
        self.code(&["state.backend"]).state_backend = Some(Arc::new(backend));
        self
    }

    /// The state backend the job will use: set in code, else by configuration
    /// (`state.backend`, `WEIR_STATE_BACKEND`), else the heap backend (a
    /// test body run by [`with_state_backend`](crate::testing::with_state_backend)
    /// gets that backend instead of a configured one).
    pub fn state_backend(&self) -> Result<Arc<dyn StateBackend>, JobError> {
        let builder = self.builder();
        builder.backend(|| Ok(builder.configured()?.state_backend))
    }

    /// The runtime configuration in effect (code, then configuration).
    pub fn runtime_config(&self) -> RuntimeConfig {
        let builder = self.builder();
        builder
            .effective()
            .map_or_else(|_| builder.runtime.clone(), |e| e.runtime)
    }

    /// Adds a source and returns its stream.
    pub fn add_source<T: Data, S: Source<T>>(&self, source: S) -> DataStream<T> {
        let fixed = source.parallelism();
        let name = std::any::type_name::<S>()
            .rsplit("::")
            .next()
            .unwrap_or("Source")
            .to_string();
        self.add_source_named(format!("Source: {name}"), fixed, source)
    }

    pub(crate) fn add_source_named<T: Data, S: Source<T>>(
        &self,
        name: String,
        fixed_parallelism: Option<usize>,
        source: S,
    ) -> DataStream<T> {
        let vertex = self.builder().add_vertex(VertexDraft {
            name,
            uid: None,
            parallelism: None,
            fixed_parallelism,
            max_parallelism: None,
            chaining: ChainingStrategy::Always,
            preflight: Some(source_preflight(&source)),
            kind: VertexKind::Source(source_factory(source)),
            key_type: None,
            states: Vec::new(),
            migrates_keys_from: None,
        });
        DataStream::from_vertex(self.clone(), vertex)
    }

    /// A stream of the given records, in order, from a single subtask.
    pub fn from_collection<T: Data + Sync>(
        &self,
        records: impl IntoIterator<Item = T>,
    ) -> DataStream<T> {
        let source = CollectionSource::new(records.into_iter().collect());
        self.add_source_named("Source: Collection".into(), Some(1), source)
    }

    /// A parallel stream of `generate(i)` for `i` in `0..count`; subtask `s` of `p`
    /// produces the indices `i` with `i % p == s`, in increasing order.
    pub fn generate<T: Data, F>(&self, count: u64, generate: F) -> DataStream<T>
    where
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        self.add_source_named(
            "Source: Generator".into(),
            None,
            GeneratorSource::new(count, generate),
        )
    }

    /// The lines of a UTF-8 text file (without line endings), read by one subtask.
    pub fn read_text_file(&self, path: impl Into<PathBuf>) -> DataStream<String> {
        let path = path.into();
        let name = format!("Source: {}", path.display());
        self.add_source_named(name, Some(1), TextFileSource::new(path))
    }

    /// The job graph the runtime would run, with every default resolved.
    pub fn job_graph(&self, job_name: &str) -> Result<(JobGraph, RuntimeConfig), JobError> {
        let prepared = self.prepare(job_name)?;
        Ok((prepared.graph, prepared.config))
    }

    /// The job graph, its runtime configuration and how the job is shown,
    /// from one reading of the configuration (file, environment) and one
    /// lookup of the snapshot to resume from.
    fn prepare(&self, job_name: &str) -> Result<Prepared, JobError> {
        let builder = self.builder();
        let effective = builder.effective()?;
        let backend = builder.backend(|| Ok(effective.state_backend.clone()))?;
        tracing::debug!(
            job = job_name,
            state_backend = backend.name(),
            "state backend"
        );
        builder.backend_cell.set(backend);
        let (web, progress) = (effective.web.clone(), effective.progress);
        let (graph, config) = builder.build(job_name, effective)?;
        Ok(Prepared {
            graph,
            config,
            web,
            progress,
        })
    }

    /// Where this environment's keyed operators find the state backend.
    pub(crate) fn backend_cell(&self) -> BackendCell {
        self.builder().backend_cell.clone()
    }

    /// What a restore sees of the job: its operators with uid, parallelism,
    /// max parallelism and key type. `serde_json::to_string(&plan)` is what
    /// `--dump-plan` prints and `weir check-restore --plan` reads.
    pub fn plan(&self, job_name: &str) -> Result<Plan, JobError> {
        let (graph, config) = self.job_graph(job_name)?;
        self.plan_of(&graph, &config)
    }

    fn plan_of(&self, graph: &JobGraph, config: &RuntimeConfig) -> Result<Plan, JobError> {
        let execution = weir_actors::plan::plan(graph, config.chaining);
        let mut job = JobPlan::with_chains(graph, &execution);
        job.state_backend = Some(self.state_backend()?.name().to_string());
        // The uids as the graph gave them (the drafts are in its order).
        let states = self
            .builder()
            .vertices
            .iter()
            .zip(&graph.vertices)
            .filter(|(draft, _)| !draft.states.is_empty())
            .map(|(draft, vertex)| (vertex.uid.clone(), draft.states.clone()))
            .collect();
        Ok(Plan { job, states })
    }

    /// The pre-flight check of a restore: whether the savepoint or retained
    /// checkpoint in `snapshot` restores onto this job, per uid (matched,
    /// rescaled, new, missing, max parallelism changed, state type mismatch),
    /// without starting anything.
    ///
    /// The keyed states functions declare
    /// ([`Lifecycle::declare_states`](crate::Lifecycle::declare_states))
    /// are checked against the schemas the snapshot recorded: identical,
    /// compatible as is, after migration (from which version), or refused
    /// (why); a state not declared is checked when it is first used.
    pub fn check_restore(
        &self,
        snapshot: impl AsRef<std::path::Path>,
        job_name: &str,
    ) -> Result<RestoreReport, JobError> {
        let (graph, config) = self.job_graph(job_name)?;
        crate::plan::check_restore_dir(
            snapshot.as_ref(),
            &self.plan_of(&graph, &config)?,
            config.allow_non_restored_state,
        )
        .map_err(JobError::InvalidJob)
    }

    /// Starts the job and returns a client for it, without waiting for it to end.
    ///
    /// Inside a running actix `System` the job's supervisor lives on the current
    /// Arbiter; elsewhere the job brings its own System on a dedicated thread.
    ///
    /// With `web.port` configured (`--web-port`, `[web] port`), the job is
    /// shown on this process's web server on that port (started with the
    /// first job; see [`crate::web`]).
    pub async fn start(&self, job_name: &str) -> Result<JobClient, JobError> {
        Ok(self.start_shown(job_name, false, false).await?.0)
    }

    /// Starts the job (`blocking`: its System on a thread of its own, for
    /// a caller that blocks on it), shows it on the web if configured, and
    /// draws its progress line if `progress` is configured (or
    /// `progress_default` when it is not) and stderr is a terminal.
    pub(crate) async fn start_shown(
        &self,
        job_name: &str,
        blocking: bool,
        progress_default: bool,
    ) -> Result<(JobClient, Option<crate::progress::ProgressLine>), JobError> {
        let Prepared {
            graph,
            config,
            web,
            progress,
        } = self.prepare(job_name)?;
        let client = launch(graph, config, blocking).await?;
        show_on_web(&web, &client)?;
        let line = progress
            .unwrap_or(progress_default)
            .then(|| crate::progress::ProgressLine::show(client.control()))
            .flatten();
        Ok((client, line))
    }

    /// Where jobs of this environment are shown on the web (`[web]`).
    pub fn web_settings(&self) -> Result<crate::config::WebSettings, JobError> {
        Ok(self.builder().configured()?.web)
    }

    /// Runs the job to its end.
    pub async fn execute(&self, job_name: &str) -> Result<JobResult, JobError> {
        self.start(job_name).await?.wait().await
    }

    /// Runs the job to its end, blocking the calling thread (for plain `main`).
    ///
    /// Do not call this from a thread that runs an actix System (it would block
    /// the System); there, `execute(..).await` instead.
    ///
    /// With `progress = true`, a live progress line is shown on stderr
    /// while the job runs, when stderr is a terminal (see
    /// [`crate::progress`]; job binaries run by [`crate::cli::JobArgs`]
    /// show it unless `progress = false`).
    pub fn execute_blocking(&self, job_name: &str) -> Result<JobResult, JobError> {
        futures::executor::block_on(async move {
            let (mut client, progress) = self.start_shown(job_name, true, false).await?;
            let result = client.wait().await;
            if let Some(progress) = progress {
                progress.finish();
            }
            result
        })
    }
}

/// What [`StreamEnv::prepare`] reads once for a job's start.
struct Prepared {
    graph: JobGraph,
    config: RuntimeConfig,
    web: crate::config::WebSettings,
    /// `progress`, if configured.
    progress: Option<bool>,
}

/// Shows `client`'s job on this process's web server, if `web` names a port;
/// a job that cannot be shown there is canceled and the error says why.
fn show_on_web(web: &crate::config::WebSettings, client: &JobClient) -> Result<(), JobError> {
    let Some(port) = web.port else {
        return Ok(());
    };
    let address = std::net::SocketAddr::new(web.address, port);
    match crate::web::shared_server(address, web.writes) {
        Ok(jobs) => {
            jobs.add(client);
            Ok(())
        }
        Err(e) => {
            client.cancel();
            Err(e)
        }
    }
}

impl Builder {
    pub fn add_vertex(&mut self, draft: VertexDraft) -> VertexId {
        self.vertices.push(draft);
        self.vertices.len() - 1
    }

    /// The settings in effect: code, then configuration (command line,
    /// environment, file, job defaults), then weir's defaults.
    fn effective(&self) -> Result<Effective, JobError> {
        let mut effective = self.configured()?;
        if let Some(path) = &effective.resume_from {
            effective.runtime.restore_from = Some(restore_source(path, &effective.runtime)?);
        }
        Ok(effective)
    }

    /// The state backend: set in code, else a test's, else `configured`'s
    /// (read only then), else the heap.
    fn backend(
        &self,
        configured: impl FnOnce() -> Result<Option<Arc<dyn StateBackend>>, JobError>,
    ) -> Result<Arc<dyn StateBackend>, JobError> {
        if let Some(backend) = &self.state_backend {
            return Ok(backend.clone());
        }
        if let Some(backend) = crate::testing::test_backend() {
            return Ok(backend);
        }
        Ok(configured()?.unwrap_or_else(|| Arc::new(HeapStateBackend)))
    }

    /// The settings in effect, before the snapshot to resume from is looked up.
    fn configured(&self) -> Result<Effective, JobError> {
        let config_error = |e: ConfigError| JobError::InvalidJob(e.to_string());
        let mut configuration = self.configuration.clone();
        configuration.load_file_from_env().map_err(config_error)?;
        configuration.load_env().map_err(config_error)?;
        let mut effective = Effective {
            parallelism: self.parallelism,
            max_parallelism: self.max_parallelism,
            runtime: self.runtime.clone(),
            state_backend: self.state_backend.clone(),
            resume_from: self.resume_from.clone(),
            rocksdb: Vec::new(),
            web: Default::default(),
            progress: None,
        };
        apply(&configuration, &self.code_keys, &mut effective).map_err(config_error)?;
        configuration.install_s3_settings().map_err(config_error)?;
        Ok(effective)
    }

    fn build(
        &self,
        job_name: &str,
        effective: Effective,
    ) -> Result<(JobGraph, RuntimeConfig), JobError> {
        if !self.errors.is_empty() {
            return Err(JobError::InvalidJob(self.errors.join("; ")));
        }
        if effective.parallelism == 0 {
            return Err(JobError::InvalidJob(
                "the default parallelism must be at least 1".into(),
            ));
        }
        let mut vertices = Vec::with_capacity(self.vertices.len());
        for (id, d) in self.vertices.iter().enumerate() {
            let parallelism = d
                .parallelism
                .or(d.fixed_parallelism)
                .unwrap_or(effective.parallelism);
            if let Some(fixed) = d.fixed_parallelism {
                if parallelism != fixed {
                    return Err(JobError::InvalidJob(format!(
                        "`{}` is not a parallel source: it runs with parallelism {fixed}, not {parallelism}",
                        d.name
                    )));
                }
            }
            let uid = d.uid.clone().unwrap_or_else(|| format!("auto-{id}"));
            vertices.push(Vertex {
                name: d.name.clone(),
                restore_check: restore_check(&uid, &d.states),
                uid,
                parallelism,
                max_parallelism: d.max_parallelism.unwrap_or(effective.max_parallelism),
                chaining: d.chaining,
                kind: d.kind.clone(),
                key_type: d.key_type.map(str::to_string),
                preflight: d.preflight.clone(),
                migrates_keys_from: d.migrates_keys_from.clone(),
            });
        }
        // Named by the uid they get and their name: `auto-3 (Sink: Discard)`.
        let auto: Vec<String> = self
            .vertices
            .iter()
            .zip(&vertices)
            .filter(|(d, _)| d.uid.is_none())
            .map(|(d, v)| format!("{} ({})", v.uid, d.name))
            .collect();
        let uids_matter =
            effective.runtime.checkpointing.is_some() || effective.runtime.restore_from.is_some();
        if uids_matter && !auto.is_empty() {
            tracing::warn!(
                job = job_name,
                operators = %auto.join(", "),
                "operators without a uid get one from their position (auto-<n>): set `.uid(..)` on every \
                 stateful operator, so that its state survives changes to the job"
            );
        }
        let edges = self
            .edges
            .iter()
            .map(|d| {
                let same = vertices[d.source].parallelism == vertices[d.target].parallelism;
                let partitioning = d.partitioning.unwrap_or(if same {
                    Partitioning::Forward
                } else {
                    Partitioning::Rebalance
                });
                let partitioner = match (&d.hash, partitioning) {
                    (Some(hash), Partitioning::Hash) => hash.clone(),
                    _ => (d.generic)(partitioning),
                };
                Edge {
                    side_output: d.side_output.clone(),
                    decoder: d.decoder,
                    source: d.source,
                    target: d.target,
                    target_input: d.input,
                    partitioning,
                    partitioner,
                }
            })
            .collect();
        Ok((
            JobGraph {
                name: job_name.to_string(),
                vertices,
                edges,
            },
            effective.runtime,
        ))
    }
}

/// Where `path` (a snapshot directory, or `latest` in the checkpoint directory) restores from.
fn restore_source(path: &str, runtime: &RuntimeConfig) -> Result<RestoreSource, JobError> {
    if path == "latest" {
        return match &runtime.checkpointing {
            Some(CheckpointSettings {
                storage: StorageSpec::Filesystem(root),
                ..
            }) => Ok(RestoreSource::LatestIn(root.clone())),
            _ => Err(JobError::InvalidJob(
                "resume from \"latest\": it needs a checkpoint directory (set_checkpoint_dir, \
                 state.checkpoints_dir or --checkpoint-dir)"
                    .into(),
            )),
        };
    }
    parse_dir(path)
        .map(RestoreSource::Path)
        .map_err(|e| JobError::InvalidJob(format!("resume from {path:?}: {e}")))
}

/// The check of an operator's restored keyed state against the states its
/// function declares: every one must restore (see
/// [`crate::state::schema::check_states`]).
fn restore_check(
    uid: &str,
    states: &[crate::state::schema::DeclaredState],
) -> Option<weir_actors::graph::RestoreCheckFn> {
    if states.is_empty() {
        return None;
    }
    let (uid, states) = (uid.to_string(), states.to_vec());
    Some(Arc::new(move |snapshots| {
        let checks = crate::state::schema::check_states(&uid, &states, snapshots)?;
        let refused: Vec<String> = checks
            .iter()
            .filter_map(|c| {
                c.verdict
                    .error()
                    .map(|e| format!("state `{}` cannot be restored: {e}", c.state))
            })
            .collect();
        match refused.is_empty() {
            true => Ok(()),
            false => Err(refused.join("; ")),
        }
    }))
}

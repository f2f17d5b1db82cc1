//! # bench: weir's benchmark harness
//!
//! Runs one benchmark job and prints, as the **last line of stdout**, one JSON
//! object describing the run. Everything else (progress, engine logs) goes to
//! stderr, so `... | tail -n 1` always yields the result.
//!
//! ```text
//! cargo run --release --example bench -- --job JOB [--records N] [--keys K]
//!     [--parallelism P] [--no-chaining] [--sink-delay-ms MS]
//!     [--batch-size B] [--channel-credits C] [--arbiters A]
//! ```
//!
//! This file parses the arguments, runs the job and prints its [`Report`];
//! every job lives in a module of its own, whose documentation says what it
//! measures.
//!
//! ## Jobs
//!
//! - `stateless` ([`stateless`]): generate → map → filter → discard, chained
//!   or not: the engine's own per-batch cost.
//! - `slow-sink` ([`slow_sink`]): a sink far slower than its sources:
//!   credit-based flow control bounds memory.
//! - `raw-loop` ([`raw_loop`]): the keyed count in a plain loop, no engine:
//!   the ceiling of keyed jobs.
//! - `keyed-count` ([`keyed_count`]): a count per key in keyed `ValueState`
//!   (with `--ttl-ms`: with a time to live).
//! - `ttl-churn` ([`ttl_churn`]): distinct keys each seen once, with or
//!   without a time to live (`--ttl-ms`, `--cleanup-within-ms`): peak RSS,
//!   live entries over time, and the time from expiry to physical removal.
//! - `window-count`, `window-sliding`, `window-session` ([`windows`]): a
//!   count per key in 1 s tumbling, 60 s/1 s sliding or 1 s-gap session
//!   event-time windows.
//! - `snapshot` ([`snapshot`]): the synchronous and asynchronous parts of a
//!   snapshot of one keyed operator instance.
//! - `recovery` ([`recovery`]): from an injected failure to the first record
//!   after the restore.
//! - `burst` ([`burst`]): one record whose `flat_map` emits `--records`
//!   records at once.
//! - `lineage` ([`lineage`]): finding the newest of `--checkpoints` retained
//!   checkpoints, and a run resumed from it.
//! - `large-state` ([`large_state`], feature `rocksdb`): full and incremental
//!   checkpoints of a large RocksDB state.
//! - `schema-migration` ([`schema_migration`]): a restore of `--keys` keys
//!   with and without a state schema migration (heap or `--backend
//!   rocksdb`), and the pre-flight check of 100 states.
//! - `web` ([`web`]): REST latency with `--web-jobs` keyed-count jobs
//!   running, and the web page's first load.
//! - `postgres-sink` ([`postgres_sink`], feature `postgres`): rows per second
//!   into PostgreSQL (`--postgres CONNECTION`), exactly once or with
//!   `--plain-sink`.
//! - `jetstream` ([`jetstream`], feature `nats`): messages per second from
//!   and to NATS JetStream (`--nats URL`).
//!
//! `--batch-size`, `--channel-credits` and `--arbiters` override the engine's
//! runtime defaults (1024, 4, one Arbiter per core) for any engine job.
//! `--backend rocksdb` (built with `--features rocksdb`) keeps keyed state in
//! RocksDB, in `--local-dir` (default: the system's temporary directory) with
//! a block cache of `--block-cache-mb` (default 128) and an entry cache of
//! `--entry-cache-mb` (default 32; 0 turns it off).
//!
//! ## Output fields
//!
//! Always: `job`, `records` (generated), `parallelism`, `chaining`,
//! `seconds` (wall time of the job's execution, including deployment and
//! teardown), `records_per_sec` (`records / seconds`), `peak_rss_mb` (VmHWM of
//! the process, `null` where `/proc/self/status` is unreadable),
//! `cpu_seconds` (user and system CPU time of the whole process, every
//! thread, setup included), `records_per_cpu_sec` (`records / cpu_seconds`:
//! throughput per core), `cores_busy` (`cpu_seconds / seconds`: a job that
//! leaves its core idle while input waits shows below its parallelism) and
//! `first_record_ms` (from just before execution to the first record reaching
//! the sink; `null` if none did, 0 for `raw-loop`). Engine jobs add
//! `batch_size`, `channel_credits`, `engine_seconds` (the job's own duration
//! from deployment to the last subtask), `records_out` (records that reached
//! the sink) and `max_queued_batches`; each job may add its own fields.
//!
//! The job's output is checked (for example that the sink saw exactly the
//! records it should); a wrong count, like a failed job, is reported on stderr
//! and the harness exits non-zero.

mod burst;
mod jetstream;
mod keyed_count;
mod large_state;
mod lineage;
mod postgres_sink;
mod raw_loop;
mod recovery;
mod schema_migration;
mod slow_sink;
mod snapshot;
mod stateless;
mod ttl_churn;
mod web;
mod windows;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{json, Map, Value};
use weir::{CheckpointConfig, CheckpointMode, JobResult, StorageSpec, StreamEnv};

type BenchResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The benchmark jobs (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Job {
    /// generate -> map -> filter -> discard.
    Stateless,
    /// generate -> rebalance -> a sink that sleeps per batch.
    SlowSink,
    /// a plain single-threaded counting loop, no engine.
    RawLoop,
    /// generate (key = i % keys) -> key_by -> count in ValueState -> emit (key, count) -> discard.
    KeyedCount,
    /// one keyed operator instance holding `--keys` keys: times a snapshot's two parts.
    Snapshot,
    /// keyed-count with checkpoints every second and one failure after the first one completed.
    Recovery,
    /// RocksDB: 20M keys with 100-byte values, then incremental checkpoints before and after changing 1%.
    LargeState,
    /// one record -> flat_map emitting --records records -> rebalance -> discard.
    Burst,
    /// resolve `latest` among --checkpoints retained checkpoints, and run a job from it.
    Lineage,
    /// one keyed operator instance seeing --records distinct keys once each, with or without TTL.
    TtlChurn,
    /// generate (1 000 records per ms) -> key_by -> 1 s tumbling event-time count -> discard.
    WindowCount,
    /// the same with 60 s windows sliding by 1 s.
    WindowSliding,
    /// the same with sessions of a 1 s gap.
    WindowSession,
    /// one keyed operator instance: --keys keys (default 1M) restored with and without a schema migration.
    SchemaMigration,
    /// --web-jobs keyed-count jobs on one web server: REST latency and the page's load time.
    Web,
    /// generate -> the PostgreSQL sink (--postgres), exactly once or --plain-sink.
    PostgresSink,
    /// the JetStream source (--nats) -> discard, and generate -> the JetStream sink.
    Jetstream,
}

impl Job {
    /// The job's name in the JSON output (as on the command line).
    fn name(self) -> &'static str {
        match self {
            Job::Stateless => "stateless",
            Job::SlowSink => "slow-sink",
            Job::RawLoop => "raw-loop",
            Job::KeyedCount => "keyed-count",
            Job::Snapshot => "snapshot",
            Job::Recovery => "recovery",
            Job::LargeState => "large-state",
            Job::Burst => "burst",
            Job::Lineage => "lineage",
            Job::TtlChurn => "ttl-churn",
            Job::WindowCount => "window-count",
            Job::WindowSliding => "window-sliding",
            Job::WindowSession => "window-session",
            Job::SchemaMigration => "schema-migration",
            Job::Web => "web",
            Job::PostgresSink => "postgres-sink",
            Job::Jetstream => "jetstream",
        }
    }

    /// Records generated when `--records` is not given.
    fn default_records(self) -> u64 {
        match self {
            Job::Stateless => 1_000_000_000,
            Job::SlowSink => 20_000_000,
            Job::RawLoop => 100_000_000,
            Job::KeyedCount => 100_000_000,
            Job::Snapshot => 0,
            Job::Recovery => 20_000_000,
            Job::LargeState => 0,
            Job::Burst => 5_000_000,
            Job::Lineage => 1,
            Job::TtlChurn => 50_000_000,
            Job::WindowCount | Job::WindowSliding | Job::WindowSession => 100_000_000,
            Job::SchemaMigration => 0,
            Job::Web => 1_000_000_000,
            Job::PostgresSink => 1_000_000,
            Job::Jetstream => 2_000_000,
        }
    }
}

/// Runs one weir benchmark job and prints its result as JSON on stdout's last line.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// The job to run.
    #[arg(long, value_enum)]
    job: Job,
    /// Records to generate (default depends on the job).
    #[arg(long)]
    records: Option<u64>,
    /// Distinct keys, for keyed jobs and raw-loop (key = i % keys).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Parallelism of every operator (raw-loop always runs on one thread).
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
    /// Run every operator in its own actor.
    #[arg(long)]
    no_chaining: bool,
    /// Milliseconds the slow-sink job's sink sleeps per batch.
    #[arg(long, default_value_t = 1)]
    sink_delay_ms: u64,
    /// Records per batch (engine default: 1024).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Batches in flight per channel (engine default: 4).
    #[arg(long)]
    channel_credits: Option<u32>,
    /// Threads the subtasks run on (engine default: one per core).
    #[arg(long)]
    arbiters: Option<usize>,
    /// Checkpoint every MS milliseconds (off when not given).
    #[arg(long, value_name = "MS")]
    checkpoint_interval_ms: Option<u64>,
    /// Checkpointing mode.
    #[arg(long, value_enum, default_value_t = Mode::ExactlyOnce)]
    mode: Mode,
    /// Unaligned checkpoints (exactly-once only).
    #[arg(long)]
    unaligned: bool,
    /// Where checkpoints are written (default: in memory).
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<String>,
    /// State backend: heap, or rocksdb (built with `--features rocksdb`).
    #[arg(long, default_value = "heap")]
    backend: String,
    /// RocksDB: the block cache, in MiB.
    #[arg(long, default_value_t = 128)]
    block_cache_mb: usize,
    /// RocksDB: the entry cache (write-back, per job), in MiB; 0 turns it off.
    #[arg(long, default_value_t = 32)]
    entry_cache_mb: usize,
    /// RocksDB: the local working directory.
    #[arg(long, value_name = "DIR")]
    local_dir: Option<std::path::PathBuf>,
    /// keyed-count, ttl-churn: a processing-time time to live on the state, in ms.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    ttl_ms: Option<u64>,
    /// keyed-count: live queries of the count (a random key each) at this
    /// rate while the job runs, from one thread that sends the queries due
    /// once a millisecond; reports their latency (p50, p99, max) and how
    /// late that thread woke (p99: the operating system's share).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    queries_per_sec: Option<u64>,
    /// keyed-count with --queries-per-sec: read the latest completed
    /// checkpoint (`Committed`) instead of the live state (needs
    /// --checkpoint-interval-ms; in memory without --checkpoint-dir).
    #[arg(long)]
    committed_queries: bool,
    /// ttl-churn: with --ttl-ms, a guaranteed-erasure bound (`cleanup_within`), in ms.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    cleanup_within_ms: Option<u64>,
    /// lineage: retained checkpoints of the job.
    #[arg(long, default_value_t = 20_000)]
    checkpoints: u64,
    /// web: keyed-count jobs running at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    web_jobs: u64,
    /// web: REST requests sent.
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// postgres-sink: the server, as a libpq connection string.
    #[arg(long, value_name = "CONNECTION")]
    postgres: Option<String>,
    /// postgres-sink: the sink without prepared transactions (a commit per batch).
    #[arg(long)]
    plain_sink: bool,
    /// jetstream: the NATS server's URL.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    ExactlyOnce,
    AtLeastOnce,
}

impl Args {
    fn records(&self) -> u64 {
        self.records.unwrap_or_else(|| self.job.default_records())
    }

    /// The state backend the command line names.
    fn backend(&self) -> BenchResult<Arc<dyn weir::state::StateBackend>> {
        match self.backend.as_str() {
            #[cfg(feature = "rocksdb")]
            "rocksdb" => {
                let mut backend = weir::state::RocksDbBackend::new()
                    .with_block_cache_bytes(self.block_cache_mb << 20)
                    .with_entry_cache_bytes(self.entry_cache_mb << 20);
                if let Some(dir) = &self.local_dir {
                    backend = backend.with_local_dirs([dir.clone()]);
                }
                Ok(Arc::new(backend))
            }
            other => Ok(weir::state::backend_from_config(other)
                .map_err(|e| format!("--backend {other:?}: {e}"))?),
        }
    }

    /// A stream environment configured from the command line.
    fn env(&self) -> StreamEnv {
        let env = StreamEnv::with_parallelism(self.parallelism);
        match self.backend() {
            Ok(backend) => {
                env.set_state_backend(backend);
            }
            Err(e) => {
                // Reported again (and fatally) by `run`, before any job starts.
                eprintln!("bench: {e}");
            }
        }
        if self.no_chaining {
            env.disable_chaining();
        }
        if let Some(records) = self.batch_size {
            env.set_batch_size(records);
        }
        if let Some(credits) = self.channel_credits {
            env.set_channel_credits(credits);
        }
        if let Some(arbiters) = self.arbiters {
            env.set_arbiters(arbiters);
        }
        if let Some(ms) = self.checkpoint_interval_ms {
            env.set_checkpoint_config(CheckpointConfig {
                interval: Some(Duration::from_millis(ms)),
                mode: match self.mode {
                    Mode::ExactlyOnce => CheckpointMode::ExactlyOnce,
                    Mode::AtLeastOnce => CheckpointMode::AtLeastOnce,
                },
                unaligned: self.unaligned,
                ..CheckpointConfig::default()
            });
            match &self.checkpoint_dir {
                Some(dir) => {
                    env.set_checkpoint_dir(dir);
                }
                None => {
                    env.set_checkpoint_storage(StorageSpec::Memory {
                        max_state_size: 1 << 30,
                    });
                }
            }
        }
        env
    }
}

/// The JSON line: the fields every job reports, plus job-specific ones.
#[derive(Debug, Serialize)]
struct Report {
    job: &'static str,
    records: u64,
    parallelism: usize,
    chaining: bool,
    seconds: f64,
    records_per_sec: f64,
    peak_rss_mb: Option<f64>,
    /// User and system CPU time of the whole process, all threads.
    cpu_seconds: Option<f64>,
    /// `records / cpu_seconds`: throughput per core.
    records_per_cpu_sec: Option<f64>,
    /// `cpu_seconds / seconds`: how many cores the run kept busy.
    cores_busy: Option<f64>,
    first_record_ms: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Report {
    /// A report for `records` records processed in `elapsed`; peak RSS is read now.
    fn new(args: &Args, records: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        let cpu_seconds = cpu_seconds();
        let per = |n: f64, d: f64| (d > 0.0).then(|| n / d);
        Report {
            job: args.job.name(),
            records,
            parallelism: args.parallelism,
            chaining: !args.no_chaining,
            seconds,
            records_per_sec: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                0.0
            },
            peak_rss_mb: peak_rss_mb(),
            cpu_seconds,
            records_per_cpu_sec: cpu_seconds.and_then(|cpu| per(records as f64, cpu)),
            cores_busy: cpu_seconds.and_then(|cpu| per(cpu, seconds)),
            first_record_ms: None,
            extra: Map::new(),
        }
    }

    /// Sets the delay from `start` to the first record, if one arrived.
    fn first_record(mut self, start: Instant, first: Option<Instant>) -> Self {
        self.first_record_ms = first.map(|at| millis(at.saturating_duration_since(start)));
        self
    }

    /// Adds the engine-side figures of a finished job.
    fn engine(self, env: &StreamEnv, result: &JobResult, records_out: u64) -> Self {
        let config = env.runtime_config();
        let mut durations: Vec<f64> = result
            .completed_checkpoints()
            .map(|c| millis(c.end_to_end))
            .collect();
        durations.sort_by(f64::total_cmp);
        let median = durations.get(durations.len() / 2).copied();
        let checkpoint_bytes = result.completed_checkpoints().last().map(|c| c.state_bytes);
        let failed = result.checkpoints.len() - durations.len();
        let this = self
            .with("checkpoints_completed", json!(durations.len()))
            .with("checkpoints_failed", json!(failed))
            .with("checkpoint_median_ms", json!(median))
            .with("checkpoint_last_bytes", json!(checkpoint_bytes));
        this.with("batch_size", json!(config.batch_size))
            .with("channel_credits", json!(config.channel_credits))
            .with("engine_seconds", json!(result.duration.as_secs_f64()))
            .with("records_out", json!(records_out))
            .with("max_queued_batches", json!(result.max_queued_batches()))
    }

    /// Adds a job-specific field.
    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The CPU time (user and system, every thread) the process used so far.
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: it returned 0, so it filled the struct.
    let usage = unsafe { usage.assume_init() };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// The process's peak resident set size (VmHWM) in MB, if `/proc` tells.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Fails unless `actual == expected`, naming `what`.
fn check(what: &str, actual: u64, expected: u64) -> BenchResult<()> {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected}, got {actual}").into())
    }
}

/// Runs the job `--job` names, in the module of that job, once the
/// `--backend` it names is known to exist.
fn run(args: &Args) -> BenchResult<Report> {
    args.backend()?;
    match args.job {
        Job::Stateless => stateless::run(args),
        Job::SlowSink => slow_sink::run(args),
        Job::RawLoop => raw_loop::run(args),
        Job::KeyedCount => keyed_count::run(args),
        Job::WindowCount | Job::WindowSliding | Job::WindowSession => windows::run(args),
        Job::Snapshot => snapshot::run(args),
        Job::Recovery => recovery::run(args),
        Job::LargeState => large_state::run(args),
        Job::Burst => burst::run(args),
        Job::Lineage => lineage::run(args),
        Job::TtlChurn => ttl_churn::run(args),
        Job::SchemaMigration => schema_migration::run(args),
        Job::Web => web::run(args),
        Job::PostgresSink => postgres_sink::run(args),
        Job::Jetstream => jetstream::run(args),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    eprintln!(
        "bench: job={} records={} parallelism={} chaining={}",
        args.job.name(),
        args.records(),
        args.parallelism,
        !args.no_chaining
    );
    let report = match run(&args) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("bench: job `{}` failed: {e}", args.job.name());
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "bench: done in {:.3} s ({:.1} M records/s)",
        report.seconds,
        report.records_per_sec / 1e6
    );
    match serde_json::to_string(&report) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: cannot serialise the report: {e}");
            ExitCode::FAILURE
        }
    }
}

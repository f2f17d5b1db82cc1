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
//! ## Jobs
//!
//! - `stateless`: `generate(records, |i| i)` → `map` (`i * 3 ^ 5`, wrapping) →
//!   `filter` (keeps the even results, i.e. exactly `records / 2`) →
//!   `discard()`. With chaining (the default) the whole pipeline is one actor
//!   per subtask, so this measures the per-batch cost of the engine itself;
//!   with `--no-chaining` every operator is its own actor and every batch
//!   crosses three credit-controlled channels. Default 1G records: about
//!   1.5 s chained and 10-15 s unchained at parallelism 1 on a 2-core machine
//!   (100M records take 0.15 s chained, too short to measure).
//! - `slow-sink`: `generate` → `rebalance()` → a sink that sleeps
//!   `--sink-delay-ms` per batch. The sources are far faster than the sink, so
//!   this shows that credit-based flow control bounds memory: see `peak_rss_mb`
//!   and `max_queued_batches` (the deepest input queue of any subtask, never
//!   above `channel_credits`). Default 20M records (about 11 s at parallelism 2
//!   with 1024-record batches and 1 ms per batch). The sleep blocks the sink's
//!   Arbiter; with the default two Arbiters each sink shares its thread with a
//!   source, which slows that source too. `--arbiters 4` gives every subtask a
//!   thread of its own, so that only the credits hold the sources back.
//! - `raw-loop`: no engine at all: one thread counts the same records
//!   (`key = i % keys`) in a [`weir::keys::KeyMap`] in a plain loop. It is the
//!   ceiling that keyed jobs are compared with. Default 100M records; it
//!   reports `parallelism` 1, `chaining` false and `first_record_ms` 0.
//!
//! - `burst`: one record whose `flat_map` emits `--records` records (default
//!   5M) at once → `rebalance()` → `discard()`: the cost of a burst must grow
//!   linearly with its size (time and `peak_rss_mb`).
//!
//! - `lineage`: a checkpoint directory whose job has `--checkpoints`
//!   retained checkpoints (default 20 000, written directly, small): times
//!   what `resume_from("latest")` does to find the newest (`resolve_ms`: scan
//!   the lineages, read the newest `_metadata`) and a whole run of a
//!   one-record job resuming from it (`job_ms`: start to end, retention kept
//!   above the count so that nothing is deleted).
//!
//! - `large-state` (feature `rocksdb`): one keyed operator instance, driven
//!   directly (no engine), with the RocksDB backend: writes `--keys` keys
//!   (default 20M) with 100-byte values, takes an incremental checkpoint
//!   (everything is uploaded), takes checkpoints without changes until the
//!   compactions the bulk load left behind are done (at most a minute; the last
//!   one's size is the full size), changes 1% of the keys and takes one more
//!   (only the new SST files are uploaded: the incremental size). Reports
//!   records/s of the writes, peak RSS and the checkpoint sizes.
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
//! the process, `null` where `/proc/self/status` is unreadable) and
//! `first_record_ms` (from just before execution to the first record reaching
//! the sink; `null` if none did, 0 for `raw-loop`). Engine jobs add
//! `batch_size`, `channel_credits`, `engine_seconds` (the job's own duration
//! from deployment to the last subtask), `records_out` (records that reached
//! the sink) and `max_queued_batches`; each job may add its own fields.
//!
//! The job's output is checked (for example that the sink saw exactly the
//! records it should); a wrong count, like a failed job, is reported on stderr
//! and the harness exits non-zero.

use std::error::Error;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{json, Map, Value};
use weir::keys::KeyMap;
use weir::sink::Sink;
use weir::state::{ValueStateDescriptor, ValueStateWithDefault};
use weir::testing::OperatorHarness;
use weir::{CheckpointConfig, CheckpointMode, Lifecycle, RestartStrategy, StorageSpec};
use weir::{Collector, KeyedContext, KeyedProcessFunction};
use weir::{JobResult, StreamEnv, UserError};

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
    /// lineage: retained checkpoints of the job.
    #[arg(long, default_value_t = 20_000)]
    checkpoints: u64,
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
    first_record_ms: Option<f64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl Report {
    /// A report for `records` records processed in `elapsed`; peak RSS is read now.
    fn new(args: &Args, records: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
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

// ---------------------------------------------------------------------------
// stateless
// ---------------------------------------------------------------------------

/// generate -> map -> filter -> discard.
fn stateless(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let counter = env
        .generate(records, |i| i)
        .map(|i: u64| i.wrapping_mul(3) ^ 5)
        // `3i ^ 5` is even exactly when `i` is odd: keeps `records / 2`.
        .filter(|x| x & 1 == 0)
        .discard();

    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();

    let kept = counter.records();
    check("records reaching the sink", kept, records / 2)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, counter.first_record_at())
        .engine(&env, &result, kept))
}

// ---------------------------------------------------------------------------
// slow-sink
// ---------------------------------------------------------------------------

/// A sink that sleeps for `delay` per batch and counts records (over all subtasks).
#[derive(Clone)]
struct SlowSink {
    delay: Duration,
    records: Arc<AtomicU64>,
    first_record_at: Arc<OnceLock<Instant>>,
}

impl Lifecycle for SlowSink {}

impl Sink<u64> for SlowSink {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        self.first_record_at.get_or_init(Instant::now);
        self.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), UserError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.first_record_at.get_or_init(Instant::now);
        self.records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Blocks the sink's Arbiter on purpose: a slow external system.
        std::thread::sleep(self.delay);
        Ok(())
    }
}

/// generate -> rebalance -> a sink that sleeps per batch.
fn slow_sink(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let sink = SlowSink {
        delay: Duration::from_millis(args.sink_delay_ms),
        records: Arc::default(),
        first_record_at: Arc::default(),
    };
    env.generate(records, |i| i)
        .rebalance()
        .add_sink(sink.clone());

    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();

    let written = sink.records.load(Ordering::Relaxed);
    check("records reaching the sink", written, records)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, sink.first_record_at.get().copied())
        .engine(&env, &result, written)
        .with("sink_delay_ms", json!(args.sink_delay_ms)))
}

// ---------------------------------------------------------------------------
// raw-loop
// ---------------------------------------------------------------------------

/// Counts `i % keys` for `i` in `0..records` in a plain loop: the keyed ceiling.
fn raw_loop(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let keys = args.keys;
    let mut counts: KeyMap<u64, u64> = KeyMap::default();

    let start = Instant::now();
    for i in 0..records {
        let record = std::hint::black_box(i);
        *counts.entry(record % keys).or_insert(0) += 1;
    }
    let elapsed = start.elapsed();

    check("total count", counts.values().sum(), records)?;
    check("distinct keys", counts.len() as u64, keys.min(records))?;
    let mut report = Report::new(args, records, elapsed).with("keys", json!(keys));
    report.parallelism = 1;
    report.chaining = false;
    report.first_record_ms = Some(0.0);
    Ok(report)
}

// ---------------------------------------------------------------------------
// keyed-count
// ---------------------------------------------------------------------------

/// Counts records per key in keyed `ValueState` and emits `(key, count)`.
#[derive(Clone)]
struct CountPerKey {
    count: ValueStateWithDefault<u64>,
}

impl CountPerKey {
    fn new() -> Self {
        CountPerKey {
            count: ValueStateDescriptor::new("count").with_default(0),
        }
    }
}

impl Lifecycle for CountPerKey {}

impl KeyedProcessFunction<u64, u64, (u64, u64)> for CountPerKey {
    fn process_element(
        &mut self,
        key: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<(), UserError> {
        let count = self.count.modify(ctx, |c| {
            *c += 1;
            *c
        })?;
        out.collect((key, count));
        Ok(())
    }
}

/// generate (key = i % keys) -> key_by -> count per key -> discard.
fn keyed_count(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let keys = args.keys;
    let env = args.env();
    let counter = env
        .generate(records, move |i| i % keys)
        .key_by(|key: &u64| *key)
        .process(CountPerKey::new())
        .discard();

    let start = Instant::now();
    let result = env.execute_blocking("keyed-count")?;
    let elapsed = start.elapsed();

    check("records counted", counter.records(), records)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, counter.first_record_at())
        .engine(&env, &result, counter.records())
        .with("keys", json!(keys)))
}

// ---------------------------------------------------------------------------
// snapshot
// ---------------------------------------------------------------------------

/// Fills one keyed operator instance with `--keys` keys, then times the
/// synchronous part of a snapshot (on the processing path), its asynchronous
/// part (serialisation), and the first batch of writes after it (copy-on-write).
fn snapshot(args: &Args) -> BenchResult<Report> {
    let keys = args.keys;
    let mut harness = OperatorHarness::keyed(CountPerKey::new(), |k: &u64| *k, 0, 1, 128);
    harness.open(None)?;
    let fill = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1024) {
        harness.process(chunk.to_vec())?;
        harness.take_output();
    }
    let fill = fill.elapsed();

    let sync_start = Instant::now();
    let pending = harness.begin_snapshot(1)?;
    let sync = sync_start.elapsed();

    let write_start = Instant::now();
    harness.process((0..1024).collect())?;
    let first_writes = write_start.elapsed();

    let async_start = Instant::now();
    let snapshot = pending.finish()?;
    let asynchronous = async_start.elapsed();

    let mut report = Report::new(args, keys, fill)
        .with("keys", json!(keys))
        .with("sync_ms", json!(millis(sync)))
        .with("async_ms", json!(millis(asynchronous)))
        .with("first_1024_writes_after_ms", json!(millis(first_writes)))
        .with("state_bytes", json!(snapshot.size()));
    report.parallelism = 1;
    Ok(report)
}

// ---------------------------------------------------------------------------
// recovery
// ---------------------------------------------------------------------------

/// When the injected failure happened and when the first record after the restore was processed.
#[derive(Clone, Default)]
struct RecoveryClock {
    armed: Arc<std::sync::atomic::AtomicBool>,
    failed_at: Arc<std::sync::Mutex<Option<Instant>>>,
    resumed_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Counts per key; fails once, on the first record after the first completed checkpoint.
#[derive(Clone)]
struct CountThenFail {
    count: ValueStateWithDefault<u64>,
    clock: RecoveryClock,
    restored: bool,
}

impl Lifecycle for CountThenFail {
    fn initialize_state(
        &mut self,
        ctx: &mut weir::state::StateInitContext,
    ) -> Result<(), UserError> {
        self.restored = ctx.is_restored();
        Ok(())
    }
}

impl KeyedProcessFunction<u64, u64, (u64, u64)> for CountThenFail {
    fn process_element(
        &mut self,
        key: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<(), UserError> {
        let failed = self
            .clock
            .failed_at
            .lock()
            .map(|f| f.is_some())
            .unwrap_or(true);
        if !failed && self.clock.armed.load(Ordering::Relaxed) {
            if let Ok(mut at) = self.clock.failed_at.lock() {
                *at = Some(Instant::now());
            }
            return Err("injected failure after the first completed checkpoint".into());
        }
        if failed && self.restored {
            if let Ok(mut at) = self.clock.resumed_at.lock() {
                at.get_or_insert_with(Instant::now);
            }
        }
        let count = self.count.modify(ctx, |c| {
            *c += 1;
            *c
        })?;
        out.collect((key, count));
        Ok(())
    }
}

/// Arms the failure when the first checkpoint completes.
#[derive(Clone)]
struct ArmOnCheckpoint(RecoveryClock);

impl Lifecycle for ArmOnCheckpoint {
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        self.0.armed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Sink<(u64, u64)> for ArmOnCheckpoint {
    fn write(&mut self, _record: (u64, u64)) -> Result<(), UserError> {
        Ok(())
    }

    fn write_batch(&mut self, _batch: Vec<(u64, u64)>) -> Result<(), UserError> {
        Ok(())
    }
}

/// keyed-count (`--keys`, default 1 000 000 here) with a 1 s checkpoint
/// interval, one failure right after the first completed checkpoint, and a
/// fixed-delay restart without delay.
fn recovery(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let keys = if args.keys == 100_000 {
        1_000_000
    } else {
        args.keys
    };
    let env = args.env();
    if args.checkpoint_interval_ms.is_none() {
        env.enable_checkpointing(Duration::from_secs(1));
        env.set_checkpoint_storage(StorageSpec::Memory {
            max_state_size: 1 << 30,
        });
    }
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 1,
        delay: Duration::ZERO,
    });
    let clock = RecoveryClock::default();
    env.generate(records, move |i| i % keys)
        .key_by(|key: &u64| *key)
        .process(CountThenFail {
            count: ValueStateDescriptor::new("count").with_default(0),
            clock: clock.clone(),
            restored: false,
        })
        .add_sink(ArmOnCheckpoint(clock.clone()));

    let start = Instant::now();
    let result = env.execute_blocking("recovery")?;
    let elapsed = start.elapsed();

    let failed = clock
        .failed_at
        .lock()
        .ok()
        .and_then(|t| *t)
        .ok_or("the failure was never injected")?;
    let resumed = clock
        .resumed_at
        .lock()
        .ok()
        .and_then(|t| *t)
        .ok_or("no record after the restore")?;
    check("restarts", u64::from(result.restarts), 1)?;
    let state_bytes = result.completed_checkpoints().map(|c| c.state_bytes).max();
    Ok(Report::new(args, records, elapsed)
        .engine(&env, &result, records)
        .with("keys", json!(keys))
        .with(
            "recovery_ms",
            json!(millis(resumed.saturating_duration_since(failed))),
        )
        .with("state_bytes", json!(state_bytes)))
}

// ---------------------------------------------------------------------------

fn run(args: &Args) -> BenchResult<Report> {
    args.backend()?;
    match args.job {
        Job::Stateless => stateless(args),
        Job::SlowSink => slow_sink(args),
        Job::RawLoop => raw_loop(args),
        Job::KeyedCount => keyed_count(args),
        Job::Snapshot => snapshot(args),
        Job::Recovery => recovery(args),
        Job::LargeState => large_state(args),
        Job::Burst => burst(args),
        Job::Lineage => lineage(args),
    }
}

// ---------------------------------------------------------------------------
// lineage
// ---------------------------------------------------------------------------

/// `--checkpoints` retained checkpoints of one job; the time to find the
/// newest, and to run a job resumed from it.
fn lineage(args: &Args) -> BenchResult<Report> {
    use weir::runtime::checkpoint::metadata::{CheckpointMetadata, METADATA_VERSION};
    use weir::runtime::checkpoint::storage::encode_metadata;
    use weir::runtime::lineage::{current, scan_root, LineageRecord, SnapshotRef, LINEAGE_VERSION};
    let count = args.checkpoints;
    let root = tempfile_dir("weir-bench-lineage")?;
    let job = "lineage-bench";
    let lineage = "00000000000000aa";
    let dir = root.join(lineage);
    std::fs::create_dir_all(&dir)?;
    for id in 1..=count {
        let chk = dir.join(format!("chk-{id}"));
        std::fs::create_dir_all(&chk)?;
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            job_name: job.into(),
            job_id: lineage.into(),
            lineage: lineage.into(),
            checkpoint_id: id,
            savepoint: false,
            trigger_time_ms: 0,
            completion_time_ms: 0,
            operators: Vec::new(),
            subtasks: Vec::new(),
        };
        std::fs::write(chk.join("_metadata"), encode_metadata(&metadata)?)?;
    }
    LineageRecord {
        version: LINEAGE_VERSION,
        lineage: lineage.into(),
        job_name: job.into(),
        generation: 1,
        branch_start: 1,
        latest: Some(SnapshotRef::checkpoint(count)),
        parent: None,
    }
    .write(&dir)?;

    let start = Instant::now();
    let lineages = scan_root(&root)?;
    let newest = current(job, &root, &lineages)?
        .and_then(|l| l.newest())
        .ok_or("no newest checkpoint")?;
    let (_, metadata) =
        weir::runtime::restore::open_snapshot_dir(&dir.join(format!("chk-{}", newest.id)))?;
    let resolve = start.elapsed();
    check("the newest checkpoint", metadata.checkpoint_id, count)?;

    let env = StreamEnv::with_parallelism(1);
    env.set_checkpoint_config(CheckpointConfig {
        retained: count as usize + 10,
        ..CheckpointConfig::default()
    });
    env.set_checkpoint_dir(&root.display().to_string());
    env.resume_from("latest");
    let counter = env.from_collection(vec![1u64]).uid("one").discard();
    let start = Instant::now();
    let result = env.execute_blocking(job)?;
    let job_time = start.elapsed();
    check("records reaching the sink", counter.records(), 1)?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(Report::new(args, 1, job_time)
        .engine(&env, &result, 1)
        .with("checkpoints", json!(count))
        .with("resolve_ms", json!(millis(resolve)))
        .with("job_ms", json!(millis(job_time))))
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir(tag: &str) -> BenchResult<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// ---------------------------------------------------------------------------
// burst
// ---------------------------------------------------------------------------

/// One record -> flat_map emitting `records` words -> rebalance -> discard.
fn burst(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let counter = env
        .from_collection(vec![records])
        .flat_map(|n: u64| (0..n).map(|i| format!("w{i}")).collect::<Vec<String>>())
        .rebalance()
        .discard();
    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();
    let kept = counter.records();
    check("records reaching the sink", kept, records)?;
    Ok(Report::new(args, records, elapsed).engine(&env, &result, kept))
}

// ---------------------------------------------------------------------------
// large-state
// ---------------------------------------------------------------------------

/// Keeps a 100-byte value per key (derived from the key and a version).
#[cfg(feature = "rocksdb")]
#[derive(Clone)]
struct StoreValue {
    value: ValueStateDescriptor<Vec<u8>>,
}

#[cfg(feature = "rocksdb")]
impl Lifecycle for StoreValue {}

#[cfg(feature = "rocksdb")]
impl KeyedProcessFunction<u64, (u64, u8), ()> for StoreValue {
    fn process_element(
        &mut self,
        (key, version): (u64, u8),
        ctx: &mut KeyedContext<u64>,
        _out: &mut Collector<()>,
    ) -> Result<(), UserError> {
        let mut value = vec![version; 100];
        value[..8].copy_from_slice(&key.to_le_bytes());
        ctx.state(&self.value)?.update(value);
        Ok(())
    }
}

#[cfg(not(feature = "rocksdb"))]
fn large_state(_args: &Args) -> BenchResult<Report> {
    Err("large-state needs the RocksDB backend: build with `--features rocksdb`".into())
}

/// Bytes of the files `snapshot`'s incremental handles refer to that are not in `before`.
#[cfg(feature = "rocksdb")]
fn new_shared_bytes(
    snapshot: &weir::runtime::snapshot::OperatorSnapshot,
    before: &std::collections::HashSet<String>,
) -> (u64, std::collections::HashSet<String>) {
    let mut names = std::collections::HashSet::new();
    let mut bytes = 0;
    for handle in &snapshot.keyed_handles {
        bytes += handle.data.len() as u64;
        for file in &handle.shared {
            if !before.contains(&file.name) {
                bytes += file.size;
            }
            names.insert(file.name.clone());
        }
    }
    (bytes, names)
}

/// Bytes of every file (and the inline bytes) `snapshot`'s handles refer to.
#[cfg(feature = "rocksdb")]
fn total_shared_bytes(snapshot: &weir::runtime::snapshot::OperatorSnapshot) -> u64 {
    snapshot
        .keyed_handles
        .iter()
        .map(|h| h.data.len() as u64 + h.shared.iter().map(|f| f.size).sum::<u64>())
        .sum()
}

#[cfg(feature = "rocksdb")]
fn large_state(args: &Args) -> BenchResult<Report> {
    let keys = if args.keys == 100_000 {
        20_000_000
    } else {
        args.keys
    };
    let root = args
        .local_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("weir-large-state-{}", std::process::id()));
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared)?;
    let backend = weir::state::RocksDbBackend::new()
        .with_local_dirs([root.join("local")])
        .with_block_cache_bytes(args.block_cache_mb << 20)
        .with_entry_cache_bytes(args.entry_cache_mb << 20);
    let result =
        weir::testing::with_state_backend(backend, Some(&shared), || -> BenchResult<Report> {
            let function = StoreValue {
                value: ValueStateDescriptor::new("value"),
            };
            let mut harness: OperatorHarness<(u64, u8), ()> =
                OperatorHarness::keyed(function, |r: &(u64, u8)| r.0, 0, 1, 128);
            harness.open(None)?;
            let fill = Instant::now();
            let mut chunk = Vec::with_capacity(4096);
            for key in 0..keys {
                chunk.push((key, 1u8));
                if chunk.len() == 4096 {
                    harness.process(std::mem::take(&mut chunk))?;
                }
            }
            harness.process(chunk)?;
            let fill = fill.elapsed();
            eprintln!("bench: {keys} keys written in {:.1} s", fill.as_secs_f64());

            let started = Instant::now();
            let first = harness.snapshot(1)?;
            let first_ms = millis(started.elapsed());
            let (first_bytes, mut files) = new_shared_bytes(&first, &Default::default());

            // The bulk load leaves compactions behind that rewrite files for a
            // while; checkpoints without changes show when they are done (at
            // most a minute), and the last one is the baseline.
            let settle = Instant::now();
            let mut id = 1;
            let mut full_bytes = first_bytes;
            let mut unsettled_bytes = None;
            while settle.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_secs(2));
                id += 1;
                let snapshot = harness.snapshot(id)?;
                let (new_bytes, names) = new_shared_bytes(&snapshot, &files);
                unsettled_bytes.get_or_insert(new_bytes);
                full_bytes = total_shared_bytes(&snapshot);
                files = names;
                if new_bytes * 1000 < full_bytes {
                    break;
                }
            }
            let settle_s = settle.elapsed().as_secs_f64();

            // 1% of the keys, spread over the whole key space.
            let changed: Vec<(u64, u8)> = (0..keys).step_by(100).map(|k| (k, 2u8)).collect();
            let changed_count = changed.len();
            for chunk in changed.chunks(4096) {
                harness.process(chunk.to_vec())?;
            }
            let started = Instant::now();
            let second = harness.snapshot(id + 1)?;
            let second_ms = millis(started.elapsed());
            let (incremental_bytes, _) = new_shared_bytes(&second, &files);

            let mut report = Report::new(args, keys, fill)
                .with("keys", json!(keys))
                .with("value_bytes", json!(100))
                .with("block_cache_mb", json!(args.block_cache_mb))
                .with("first_checkpoint_bytes", json!(first_bytes))
                .with("first_checkpoint_ms", json!(first_ms))
                .with(
                    "next_checkpoint_new_bytes_while_compacting",
                    json!(unsettled_bytes),
                )
                .with("compactions_settled_after_s", json!(settle_s))
                .with("full_checkpoint_bytes", json!(full_bytes))
                .with("changed_keys", json!(changed_count))
                .with("incremental_checkpoint_bytes", json!(incremental_bytes))
                .with("incremental_checkpoint_ms", json!(second_ms))
                .with(
                    "incremental_over_full",
                    json!(incremental_bytes as f64 / full_bytes.max(1) as f64),
                );
            report.parallelism = 1;
            Ok(report)
        });
    let _ = std::fs::remove_dir_all(&root);
    result
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

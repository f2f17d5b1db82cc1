//! The exactly-once verification job.
//!
//! P source subtasks; subtask `s` emits the values `v` in `0..N` with
//! `v % P == s`, in increasing order (replayable: positions are checkpointed).
//! Records are keyed by `v % K`; a keyed operator counts and sums per key and
//! emits `{"key":k,"count":c,"sum":s}` for every record into a transactional
//! file sink in `--output` (visible files appear when checkpoints complete).
//! `--fail-at V1,V2,...` makes the operator after `key_by` panic when it
//! processes one of those values, once per value in this process; the job then
//! restarts from its latest checkpoint (`--restart`).
//!
//! Exactly-once means: for every key k the committed `count` values are exactly
//! `1..=n_k`, each once, and the line with `n_k` has the exact sum. [`audit`]
//! checks that.
//!
//! ```sh
//! cargo run --release --example exactly_once -- --output /tmp/out --checkpoint-dir /tmp/ck --fail-at 300000,700000
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::sink::TransactionalFileSink;
use weir::state::ValueStateDescriptor;
use weir::testing::{audit_exactly_once, CountLine, Expected};
use weir::{
    CheckpointConfig, CheckpointMode, Collector, KeyedContext, KeyedProcessFunction,
    RestartStrategy, StreamEnv, UserError,
};

/// The verification job's flags.
#[derive(Clone, Debug, Parser)]
pub struct Args {
    /// Values to emit, over all source subtasks.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Distinct keys (key = value % keys).
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// Parallelism of every operator.
    #[arg(long, default_value_t = 2)]
    pub parallelism: usize,
    /// Checkpoint interval.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_interval_ms: u64,
    /// exactly-once or at-least-once.
    #[arg(long, default_value = "exactly-once")]
    pub mode: String,
    /// Unaligned checkpoints.
    #[arg(long)]
    pub unaligned: bool,
    /// State backend: heap, or rocksdb (built with `--features rocksdb`).
    #[arg(long, default_value = "heap")]
    pub backend: String,
    /// Records per second over all source subtasks (default: unlimited).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Values at which the keyed operator panics (once each per process).
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// fixed-delay:ATTEMPTS:DELAY_MS, failure-rate:MAX:INTERVAL_MS:DELAY_MS, exponential:INITIAL_MS:MAX_MS or none.
    #[arg(long, default_value = "fixed-delay:10:0")]
    pub restart: String,
    /// Where committed output files go.
    #[arg(long)]
    pub output: PathBuf,
    /// Where checkpoints go.
    #[arg(long)]
    pub checkpoint_dir: PathBuf,
    /// Resume from a retained checkpoint directory, or `latest` in `--checkpoint-dir`.
    #[arg(long)]
    pub resume_from: Option<String>,
}

/// One output line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The key.
    pub key: u64,
    /// Records of the key so far.
    pub count: u64,
    /// Sum of their values.
    pub sum: u64,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            r#"{{"key":{},"count":{},"sum":{}}}"#,
            self.key, self.count, self.sum
        )
    }
}

/// Counts and sums per key; panics once at each value of `fail_at`.
#[derive(Clone)]
struct CountAndSum {
    state: ValueStateDescriptor<(u64, u64)>,
    fail_at: Arc<Mutex<HashSet<u64>>>,
}

impl KeyedProcessFunction<u64, u64, Line> for CountAndSum {
    fn process_element(
        &mut self,
        value: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<Line>,
    ) -> Result<(), UserError> {
        let fail = self
            .fail_at
            .lock()
            .map(|mut f| f.remove(&value))
            .unwrap_or(false);
        if fail {
            panic!("injected failure at value {value}");
        }
        let key = *ctx.current_key();
        let mut state = ctx.state(&self.state)?;
        let (count, sum) = state.value().unwrap_or((0, 0));
        let (count, sum) = (count + 1, sum + value);
        state.update((count, sum));
        out.collect(Line { key, count, sum });
        Ok(())
    }
}

/// A source of `v % p == s`, at most `rate` per second overall.
#[derive(Clone)]
struct Values {
    records: u64,
    rate: Option<u64>,
    next: u64,
    step: u64,
    start: Option<Instant>,
    emitted: u64,
    restored: Option<u64>,
}

impl weir::source::Source<u64> for Values {
    fn initialize_state(
        &mut self,
        ctx: &mut weir::state::StateInitContext,
    ) -> Result<(), UserError> {
        if ctx.is_restored() {
            let positions = ctx.operator_state().list(&position())?.get()?;
            self.restored = positions.first().copied();
        }
        Ok(())
    }

    fn snapshot_state(
        &mut self,
        ctx: &mut weir::state::StateSnapshotContext,
    ) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&position())?
            .update(&[self.next])?;
        Ok(())
    }

    fn open(&mut self, ctx: &weir::RuntimeContext) -> Result<(), UserError> {
        self.step = ctx.parallelism() as u64;
        self.next = self.restored.unwrap_or(ctx.subtask_index() as u64);
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut Vec<u64>,
        max: usize,
    ) -> Result<weir::source::SourceStatus, UserError> {
        let mut allowed = max as u64;
        if let Some(rate) = self.rate {
            let start = *self.start.get_or_insert_with(Instant::now);
            let per_subtask = (rate / self.step).max(1);
            let due = (start.elapsed().as_secs_f64() * per_subtask as f64) as u64;
            allowed = allowed.min(due.saturating_sub(self.emitted));
        }
        while allowed > 0 && self.next < self.records {
            out.push(self.next);
            self.next += self.step;
            self.emitted += 1;
            allowed -= 1;
        }
        Ok(if self.next >= self.records {
            weir::source::SourceStatus::Finished
        } else {
            weir::source::SourceStatus::More
        })
    }
}

fn position() -> weir::state::ListStateDescriptor<u64> {
    weir::state::ListStateDescriptor::new("values-position")
}

/// Builds the verification job on `env`.
pub fn build(env: &StreamEnv, args: &Args) -> Result<(), String> {
    let backend = weir::state::backend_from_config(&args.backend)
        .map_err(|e| format!("--backend {:?}: {e}", args.backend))?;
    env.set_state_backend(backend);
    let mode = match args.mode.as_str() {
        "exactly-once" => CheckpointMode::ExactlyOnce,
        "at-least-once" => CheckpointMode::AtLeastOnce,
        other => {
            return Err(format!(
                "--mode {other:?}: expected exactly-once or at-least-once"
            ))
        }
    };
    env.set_parallelism(args.parallelism);
    env.set_checkpoint_config(CheckpointConfig {
        interval: Some(Duration::from_millis(args.checkpoint_interval_ms.max(1))),
        mode,
        unaligned: args.unaligned,
        retained: 3,
        ..CheckpointConfig::default()
    });
    env.set_checkpoint_dir(&args.checkpoint_dir.display().to_string());
    env.set_restart_strategy(RestartStrategy::parse(&args.restart)?);
    if let Some(from) = &args.resume_from {
        env.resume_from(from);
    }
    let keys = args.keys.max(1);
    let fail_at = Arc::new(Mutex::new(
        args.fail_at.iter().copied().collect::<HashSet<u64>>(),
    ));
    env.add_source(Values {
        records: args.records,
        rate: args.rate,
        next: 0,
        step: 1,
        start: None,
        emitted: 0,
        restored: None,
    })
    .uid("values")
    .key_by(move |v: &u64| v % keys)
    .process(CountAndSum {
        state: ValueStateDescriptor::new("count-and-sum"),
        fail_at,
    })
    .name("count-and-sum")
    .uid("count-and-sum")
    .write_text_files_exactly_once(&args.output)
    .uid("output");
    Ok(())
}

/// Reads every committed line under `dir`.
fn committed_lines(dir: &Path) -> Result<Vec<CountLine>, String> {
    let files = TransactionalFileSink::committed_files(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (n, raw) in text.lines().enumerate() {
            let line: Line = serde_json::from_str(raw).map_err(|e| {
                format!(
                    "{}:{}: not an output line ({e}): {raw}",
                    file.display(),
                    n + 1
                )
            })?;
            lines.push(CountLine {
                key: line.key,
                count: line.count,
                sum: line.sum,
            });
        }
    }
    Ok(lines)
}

/// What every key must reach: its records are the values `v` in `0..records` with `v % keys == key`.
fn expected(records: u64, keys: u64) -> BTreeMap<u64, Expected> {
    (0..keys.min(records))
        .map(|key| {
            let values = (key..records).step_by(keys as usize);
            let (n, sum) = values.fold((0, 0), |(n, s), v| (n + 1, s + v));
            (key, Expected { records: n, sum })
        })
        .collect()
}

/// Checks the committed output in `dir` for loss and duplicates (see
/// [`weir::testing::audit_exactly_once`]). Returns the number of lines.
pub fn audit(dir: &Path, records: u64, keys: u64) -> Result<u64, String> {
    audit_exactly_once(committed_lines(dir)?, &expected(records, keys))
}

/// At-least-once: nothing lost (see [`weir::testing::audit_no_loss`]).
pub fn audit_no_loss(dir: &Path, records: u64, keys: u64) -> Result<u64, String> {
    weir::testing::audit_no_loss(committed_lines(dir)?, &expected(records, keys))
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let env = StreamEnv::new();
    if let Err(e) = build(&env, &args) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let start = Instant::now();
    match env.execute_blocking("exactly-once") {
        Ok(result) => {
            let summary = serde_json::json!({
                "records": args.records,
                "restarts": result.restarts,
                "checkpoints_completed": result.completed_checkpoints().count(),
                "seconds": start.elapsed().as_secs_f64(),
            });
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

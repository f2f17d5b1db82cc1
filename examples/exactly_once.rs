//! The exactly-once verification job.
//!
//! The values `v` in `0..N` are cut into [`SPLITS`] splits (split `j` holds the
//! values with `v % SPLITS == j`, in increasing order); source subtask `i` of
//! `p` reads the splits `j` with `j % p == i`. Every split's position is in
//! union list state: after a failure, or when the job resumes at another
//! parallelism, each subtask gets every position and takes its own splits.
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
//! `--stop-with-savepoint-after-ms MS --savepoint-dir DIR` stops the job with a
//! savepoint after MS milliseconds (the summary line then carries
//! `"savepoint":"<path>"`); `--resume-from <that path>` (or `latest`) with any
//! `--parallelism` finishes the job, and the audit holds over both runs'
//! committed files together. SIGINT or SIGTERM stops it the same way (with a
//! savepoint if `--savepoint-dir` is set, else with a checkpoint).
//!
//! The summary (the last line of stdout, JSON) counts what is committed in
//! `--output` after the run: `committed` lines. `--audit` checks them: a run
//! that finished must hold every record exactly once (at-least-once: none
//! lost); a stopped one must hold no duplicate. A failed audit names the key
//! and ends with exit code 1.
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
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

/// The verification job's flags.
#[derive(Clone, Debug, Parser)]
pub struct Args {
    /// Values to emit, over all source subtasks.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Distinct keys (key = value % keys).
    #[arg(long, default_value_t = 1_000)]
    pub keys: u64,
    /// exactly-once or at-least-once.
    #[arg(long, default_value = "exactly-once")]
    pub mode: String,
    /// Unaligned checkpoints.
    #[arg(long)]
    pub unaligned: bool,
    /// Records per second over all source subtasks (default: unlimited).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Values at which the keyed operator panics (once each per process).
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// Where committed output files go.
    #[arg(long)]
    pub output: PathBuf,
    /// Stop the job with a savepoint after this many milliseconds (into
    /// `--savepoint-dir`, or the configured savepoint directory).
    #[arg(long)]
    pub stop_with_savepoint_after_ms: Option<u64>,
    /// Audit the committed output after the run (loss, duplicates, sums).
    #[arg(long)]
    pub audit: bool,
    /// The standard job flags: --parallelism (default 2),
    /// --checkpoint-interval-ms (default 100), --checkpoint-dir, --restart
    /// (default fixed-delay:10:0), --resume-from, --savepoint-dir,
    /// --state-backend/--backend, --config, --dump-plan, ...
    #[command(flatten)]
    pub job: weir::cli::JobArgs,
}

impl Args {
    /// The job's flags with every default and no standard flag set.
    pub fn new(records: u64, keys: u64, output: PathBuf) -> Self {
        Args {
            records,
            keys,
            mode: "exactly-once".into(),
            unaligned: false,
            rate: None,
            fail_at: Vec::new(),
            output,
            stop_with_savepoint_after_ms: None,
            audit: false,
            job: weir::cli::JobArgs::default(),
        }
    }
}

/// Splits of the value space: the most source subtasks that all get work.
pub const SPLITS: u64 = 60;

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

impl Lifecycle for CountAndSum {}

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

/// A source over its share of the [`SPLITS`] splits, at most `rate` per
/// second overall; each split's position is an element of union list state,
/// so that a restored subtask finds its splits whatever the parallelism was.
#[derive(Clone)]
pub struct Values {
    records: u64,
    rate: Option<u64>,
    /// (split, next value) of the splits this subtask reads.
    splits: Vec<(u64, u64)>,
    parallelism: u64,
    start: Option<Instant>,
    emitted: u64,
    restored: Option<Vec<(u64, u64)>>,
}

impl Lifecycle for Values {
    fn initialize_state(
        &mut self,
        ctx: &mut weir::state::StateInitContext,
    ) -> Result<(), UserError> {
        // Every split's position, or none when the snapshot had no state
        // for this source (then it starts from the beginning).
        let restored = ctx.operator_state().union_list(&position())?.get()?;
        if !restored.is_empty() {
            self.restored = Some(restored);
        }
        Ok(())
    }

    fn open(&mut self, ctx: &weir::RuntimeContext) -> Result<(), UserError> {
        self.parallelism = ctx.parallelism() as u64;
        let subtask = ctx.subtask_index() as u64;
        let positions: Vec<(u64, u64)> = match self.restored.take() {
            Some(positions) => positions,
            None => (0..SPLITS).map(|j| (j, j)).collect(),
        };
        if positions.len() as u64 != SPLITS {
            return Err(format!(
                "restored {} split positions, expected {SPLITS}",
                positions.len()
            )
            .into());
        }
        self.splits = positions
            .into_iter()
            .filter(|(j, _)| j % self.parallelism == subtask)
            .collect();
        Ok(())
    }

    fn snapshot_state(
        &mut self,
        ctx: &mut weir::state::StateSnapshotContext,
    ) -> Result<(), UserError> {
        ctx.operator_state()
            .union_list(&position())?
            .update(&self.splits)?;
        Ok(())
    }
}

impl weir::source::Source<u64> for Values {
    fn poll_next(
        &mut self,
        out: &mut Vec<u64>,
        max: usize,
    ) -> Result<weir::source::SourceStatus, UserError> {
        let mut allowed = max as u64;
        if let Some(rate) = self.rate {
            let start = *self.start.get_or_insert_with(Instant::now);
            let per_subtask = (rate / self.parallelism).max(1);
            let due = (start.elapsed().as_secs_f64() * per_subtask as f64) as u64;
            allowed = allowed.min(due.saturating_sub(self.emitted));
        }
        // Round-robin over the splits, one value each per turn.
        while allowed > 0 {
            let mut any = false;
            for (_, next) in self.splits.iter_mut() {
                if allowed == 0 {
                    break;
                }
                if *next < self.records {
                    out.push(*next);
                    *next += SPLITS;
                    self.emitted += 1;
                    allowed -= 1;
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        Ok(
            if self.splits.iter().all(|(_, next)| *next >= self.records) {
                weir::source::SourceStatus::Finished
            } else {
                weir::source::SourceStatus::More
            },
        )
    }
}

impl Values {
    /// The values `0..records`, at most `rate` per second overall.
    pub fn new(records: u64, rate: Option<u64>) -> Self {
        Values {
            records,
            rate,
            splits: Vec::new(),
            parallelism: 1,
            start: None,
            emitted: 0,
            restored: None,
        }
    }
}

fn position() -> weir::state::ListStateDescriptor<(u64, u64)> {
    weir::state::ListStateDescriptor::new("split-positions")
}

/// Builds the verification job on `env`: its defaults, then the
/// configuration (file, environment, flags), then the job's own flags.
pub fn build(env: &StreamEnv, args: &Args) -> Result<(), String> {
    let mut config = weir::config::Configuration::new();
    let defaults = [
        ("parallelism", "2"),
        ("checkpoint.interval_ms", "100"),
        ("checkpoint.retained", "3"),
        ("restart.strategy", "fixed-delay:10:0"),
    ];
    for (key, value) in defaults {
        config.set_default(key, value).map_err(|e| e.to_string())?;
    }
    config.merge(&args.job.configuration().map_err(|e| e.to_string())?);
    config
        .set("checkpoint.mode", &args.mode, "--mode")
        .map_err(|e| e.to_string())?;
    if args.unaligned {
        config
            .set("checkpoint.unaligned", "true", "--unaligned")
            .map_err(|e| e.to_string())?;
    }
    env.configure(&config);
    let keys = args.keys.max(1);
    let fail_at = Arc::new(Mutex::new(
        args.fail_at.iter().copied().collect::<HashSet<u64>>(),
    ));
    env.add_source(Values::new(args.records, args.rate))
        .uid("values")
        .key_by(move |v: &u64| v % keys)
        .process(CountAndSum {
            state: ValueStateDescriptor::new("count-and-sum").queryable("count-and-sum"),
            fail_at,
        })
        .name("count-and-sum")
        .uid("count-and-sum")
        .write_text_files_exactly_once(&args.output)
        .uid("output");
    Ok(())
}

/// Reads every committed line under `dir`.
pub fn committed_lines(dir: &Path) -> Result<Vec<CountLine>, String> {
    let files = TransactionalFileSink::committed_files(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut lines = Vec::new();
    for file in files {
        lines.extend(lines_of(&file)?);
    }
    Ok(lines)
}

/// Reads the lines of one committed file.
pub fn lines_of(file: &Path) -> Result<Vec<CountLine>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut lines = Vec::new();
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
    Ok(lines)
}

/// What every key must reach: its records are the values `v` in `0..records` with `v % keys == key`.
pub fn expected(records: u64, keys: u64) -> BTreeMap<u64, Expected> {
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

/// For a run stopped part-way: every key's committed counts are `1..=n`,
/// each once (no duplicate, no gap). Returns the number of lines.
pub fn audit_no_duplicates(dir: &Path) -> Result<u64, String> {
    weir::testing::audit_no_duplicates(committed_lines(dir)?)
}

/// At-least-once: nothing lost (see [`weir::testing::audit_no_loss`]).
pub fn audit_no_loss(dir: &Path, records: u64, keys: u64) -> Result<u64, String> {
    weir::testing::audit_no_loss(committed_lines(dir)?, &expected(records, keys))
}

fn main() -> ExitCode {
    weir::cli::main(run_and_report)
}

/// Runs the job and prints its summary (and audit) as one JSON line.
fn run_and_report(args: Args) -> Result<(), String> {
    let env = StreamEnv::new();
    build(&env, &args)?;
    let start = Instant::now();
    let Some((result, savepoint)) = run(&env, &args).map_err(|e| e.to_string())? else {
        return Ok(()); // --dump-plan
    };
    let mut summary = serde_json::json!({
        "committed": committed_lines(&args.output)?.len(),
        "restarts": result.restarts,
        "checkpoints_completed": result.completed_checkpoints().count(),
        "seconds": start.elapsed().as_secs_f64(),
    });
    if let Some(path) = &savepoint {
        summary["savepoint"] = serde_json::Value::String(path.display().to_string());
    }
    let mut failed_audit = None;
    if args.audit {
        // A run that went to its end holds everything; a stopped one a prefix.
        let finished = savepoint.is_none() && result.stopped_at.is_none();
        let audit = match (finished, args.mode.as_str()) {
            (true, "at-least-once") => audit_no_loss(&args.output, args.records, args.keys),
            (true, _) => audit(&args.output, args.records, args.keys),
            (false, _) => audit_no_duplicates(&args.output),
        };
        summary["audit"] = match audit {
            Ok(_) if finished => "complete".into(),
            Ok(_) => "no duplicates (stopped part-way)".into(),
            Err(e) => {
                failed_audit = Some(format!("audit of {}: {e}", args.output.display()));
                "failed".into()
            }
        };
    }
    weir::cli::write_lines([summary])?;
    failed_audit.map_or(Ok(()), Err)
}

/// Runs the job to its end (stopping gracefully on SIGINT/SIGTERM), or until
/// it is stopped with a savepoint (`--stop-with-savepoint-after-ms`); returns
/// the savepoint's path then. `None` for `--dump-plan`.
pub fn run(
    env: &StreamEnv,
    args: &Args,
) -> Result<Option<(weir::JobResult, Option<PathBuf>)>, weir::JobError> {
    let stop_after = args.stop_with_savepoint_after_ms.map(Duration::from_millis);
    args.job
        .execute_or_stop_with_savepoint(env, "exactly-once", stop_after)
}

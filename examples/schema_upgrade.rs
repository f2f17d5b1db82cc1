//! State schema evolution: one keyed job in three versions of its state.
//!
//! The values `0..N` are generated in parallel (`--rate R` per second
//! overall) and keyed by `v % K`; a counter per key emits
//! `{"key":k,"count":n}` for every record into an exactly-once file sink in
//! `--output`. `--state-version` picks the type of the counter's state:
//!
//! - 1: `CountV1 { count: u32 }`;
//! - 2: `CountV2 { count: u32, last_seen_ms: i64 }`, the new field with a
//!   serde default: a version-1 snapshot reads as is;
//! - 3: `CountV3 { count: u64, last_seen_ms: i64 }`: `count` changes type,
//!   so version 3 migrates from version 2 (and from version 1, chained).
//!
//! The state is declared (`Lifecycle::declare_states`), so a resume checks
//! it before the job starts, and `--dump-plan` carries its schema:
//! `weir check-restore SAVEPOINT --plan plan.json` gives the verdict
//! without running anything.
//!
//! ```sh
//! cargo run --example schema_upgrade -- --state-version 1 --records 300000 --rate 50000 \
//!     --output /tmp/up/out --savepoint-dir /tmp/up/sp --stop-with-savepoint-after-ms 2000
//! cargo run --example schema_upgrade -- --state-version 2 ... --resume-from <savepoint>
//! cargo run --example schema_upgrade -- --state-version 3 ... --resume-from <savepoint> --audit
//! ```
//!
//! The last line of stdout is a JSON summary: `committed` lines, the
//! `savepoint` taken (if stopped), and with `--audit` the audit of every
//! key's counts over all runs into `--output` (`1..=n` each once; complete
//! once a run went to the end).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir::sink::TransactionalFileSink;
use weir::state::schema::StateDeclarations;
use weir::state::ValueStateDescriptor;
use weir::testing::CountLine;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

/// The job's flags.
#[derive(Clone, Debug, Parser)]
pub struct Args {
    /// Which version of the state type the job runs (1, 2 or 3).
    #[arg(long, default_value_t = 3)]
    pub state_version: u32,
    /// Values to emit, over all source subtasks.
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// Distinct keys (key = value % keys).
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Records per second over all source subtasks (default: unlimited).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Where committed output files go.
    #[arg(long)]
    pub output: PathBuf,
    /// Stop the job with a savepoint after this many milliseconds.
    #[arg(long)]
    pub stop_with_savepoint_after_ms: Option<u64>,
    /// Audit the committed output after the run.
    #[arg(long)]
    pub audit: bool,
    /// The standard job flags: --parallelism (default 2), --checkpoint-dir,
    /// --resume-from, --savepoint-dir, --state-backend, --dump-plan, ...
    #[command(flatten)]
    pub job: weir::cli::JobArgs,
}

impl Args {
    /// The job's flags with every default, at `state_version`.
    pub fn new(state_version: u32, records: u64, keys: u64, output: PathBuf) -> Self {
        Args {
            state_version,
            records,
            keys,
            rate: None,
            output,
            stop_with_savepoint_after_ms: None,
            audit: false,
            job: weir::cli::JobArgs::default(),
        }
    }
}

/// Version 1 of the counter's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountV1 {
    /// Records of the key.
    pub count: u32,
}

/// Version 2: when the key was last seen, defaulted for version-1 data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountV2 {
    /// Records of the key.
    pub count: u32,
    /// Processing time of the key's last record (ms; 0: not known).
    #[serde(default)]
    pub last_seen_ms: i64,
}

/// Version 3: a 64-bit count (a type change: migrated from version 2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountV3 {
    /// Records of the key.
    pub count: u64,
    /// Processing time of the key's last record (ms; 0: not known).
    pub last_seen_ms: i64,
}

/// What the counter needs of a state version.
pub trait Count: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// The state after one more record at `now_ms`.
    fn next(previous: Option<Self>, now_ms: i64) -> Self;
    /// The count it holds.
    fn count(&self) -> u64;
}

impl Count for CountV1 {
    fn next(previous: Option<Self>, _now_ms: i64) -> Self {
        CountV1 {
            count: previous.map_or(0, |p| p.count) + 1,
        }
    }
    fn count(&self) -> u64 {
        self.count.into()
    }
}

impl Count for CountV2 {
    fn next(previous: Option<Self>, now_ms: i64) -> Self {
        CountV2 {
            count: previous.map_or(0, |p| p.count) + 1,
            last_seen_ms: now_ms,
        }
    }
    fn count(&self) -> u64 {
        self.count.into()
    }
}

impl Count for CountV3 {
    fn next(previous: Option<Self>, now_ms: i64) -> Self {
        CountV3 {
            count: previous.map_or(0, |p| p.count) + 1,
            last_seen_ms: now_ms,
        }
    }
    fn count(&self) -> u64 {
        self.count
    }
}

/// The state descriptor of each version.
pub fn v1() -> ValueStateDescriptor<CountV1> {
    ValueStateDescriptor::new("count")
}

/// Version 2 reads version-1 data as is (the new field has a default).
pub fn v2() -> ValueStateDescriptor<CountV2> {
    ValueStateDescriptor::new("count").version(2)
}

/// Version 3 migrates from version 2, and from version 1 through 2 (a
/// chain: v1 -> v2, then v2 -> v3).
pub fn v3() -> ValueStateDescriptor<CountV3> {
    ValueStateDescriptor::new("count")
        .version(3)
        .migrate_from::<CountV2>(2, |old| CountV3 {
            count: u64::from(old.count),
            last_seen_ms: old.last_seen_ms,
        })
        .migrate_via::<CountV1, CountV2>(1, |old| CountV2 {
            count: old.count,
            last_seen_ms: 0,
        })
}

/// Counts per key and emits the running count.
#[derive(Clone)]
pub struct Counter<V> {
    /// The state it counts in.
    pub state: ValueStateDescriptor<V>,
}

impl<V: Count> Lifecycle for Counter<V> {
    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.state);
    }
}

impl<V: Count> KeyedProcessFunction<u64, u64, String> for Counter<V> {
    fn process_element(
        &mut self,
        _value: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<String>,
    ) -> Result<(), UserError> {
        let key = *ctx.current_key();
        let now = ctx.current_processing_time();
        let mut state = ctx.state(&self.state)?;
        let next = V::next(state.value(), now);
        let count = next.count();
        state.update(next);
        out.collect(format!(r#"{{"key":{key},"count":{count}}}"#));
        Ok(())
    }
}

/// The source's parallelism, whatever `--parallelism` says: a generator
/// resumes only at the parallelism it was checkpointed at (the counter and
/// the sink follow `--parallelism`, and rescale).
pub const SOURCE_PARALLELISM: usize = 2;

/// Builds the job on `env` for `args.state_version`.
pub fn build(env: &StreamEnv, args: &Args) -> Result<(), String> {
    let mut config = weir::config::Configuration::new();
    for (key, value) in [("parallelism", "2"), ("checkpoint.interval_ms", "100")] {
        config.set_default(key, value).map_err(|e| e.to_string())?;
    }
    config.merge(&args.job.configuration().map_err(|e| e.to_string())?);
    env.configure(&config);
    let keys = args.keys.max(1);
    let per_subtask = args.rate.map(|r| (r / SOURCE_PARALLELISM as u64).max(1));
    let values = env
        .generate(args.records, throttled(per_subtask))
        .uid("values")
        .set_parallelism(SOURCE_PARALLELISM)
        .key_by(move |v: &u64| v % keys);
    let counts = match args.state_version {
        1 => values.process(Counter { state: v1() }),
        2 => values.process(Counter { state: v2() }),
        3 => values.process(Counter { state: v3() }),
        other => {
            return Err(format!(
                "--state-version {other}: the job has versions 1, 2 and 3"
            ))
        }
    };
    counts
        .uid("counter")
        .name("counter")
        .write_text_files_exactly_once(&args.output)
        .uid("output");
    Ok(())
}

/// The identity on indices, at most `per_second` a second per subtask.
fn throttled(per_second: Option<u64>) -> impl FnMut(u64) -> u64 + Clone + Send + 'static {
    let mut start: Option<Instant> = None;
    let mut made = 0u64;
    move |i| {
        if let Some(rate) = per_second {
            made += 1;
            let start = *start.get_or_insert_with(Instant::now);
            let due = start + Duration::from_secs_f64(made as f64 / rate as f64);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
        i
    }
}

/// Reads every committed line under `dir`.
pub fn committed_lines(dir: &Path) -> Result<Vec<CountLine>, String> {
    #[derive(Deserialize)]
    struct Line {
        key: u64,
        count: u64,
    }
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
                sum: 0,
            });
        }
    }
    Ok(lines)
}

/// Checks the committed output in `dir`: every key's counts are `1..=n`,
/// each once; if `complete`, `n` is the key's number of records. Returns
/// the number of lines.
pub fn audit(dir: &Path, records: u64, keys: u64, complete: bool) -> Result<u64, String> {
    let lines = committed_lines(dir)?;
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for line in &lines {
        let n = last.entry(line.key).or_default();
        *n = (*n).max(line.count);
    }
    let total = weir::testing::audit_no_duplicates(lines)?;
    if complete {
        for key in 0..keys.min(records) {
            let want = (key..records).step_by(keys as usize).count() as u64;
            let got = last.get(&key).copied().unwrap_or(0);
            if got != want {
                return Err(format!("key {key}: counted {got} records, expected {want}"));
            }
        }
    }
    Ok(total)
}

/// Runs the job to its end, or until it is stopped with a savepoint
/// (returned). `None` for `--dump-plan`.
pub fn run(
    env: &StreamEnv,
    args: &Args,
) -> Result<Option<(weir::JobResult, Option<PathBuf>)>, weir::JobError> {
    let stop_after = args.stop_with_savepoint_after_ms.map(Duration::from_millis);
    args.job
        .execute_or_stop_with_savepoint(env, "schema-upgrade", stop_after)
}

fn main() -> ExitCode {
    weir::cli::main(run_and_report)
}

fn run_and_report(args: Args) -> Result<(), String> {
    let env = StreamEnv::new();
    build(&env, &args)?;
    let Some((result, savepoint)) = run(&env, &args).map_err(|e| e.to_string())? else {
        return Ok(()); // --dump-plan
    };
    let mut summary = serde_json::json!({
        "state_version": args.state_version,
        "committed": committed_lines(&args.output)?.len(),
        "restarts": result.restarts,
    });
    if let Some(path) = &savepoint {
        summary["savepoint"] = serde_json::Value::String(path.display().to_string());
    }
    let mut failed = None;
    if args.audit {
        let complete = savepoint.is_none() && result.stopped_at.is_none();
        summary["audit"] = match audit(&args.output, args.records, args.keys, complete) {
            Ok(_) if complete => "complete".into(),
            Ok(_) => "no duplicates (stopped part-way)".into(),
            Err(e) => {
                failed = Some(format!("audit of {}: {e}", args.output.display()));
                "failed".into()
            }
        };
    }
    weir::cli::write_lines([summary])?;
    failed.map_or(Ok(()), Err)
}

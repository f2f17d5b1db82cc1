//! The `weir` command end to end: a small deterministic job leaves a retained
//! checkpoint on disk, and the real binary lists and inspects it.
//!
//! The job: a collection of orders (operator list state: its position) keyed
//! by customer into a keyed-broadcast operator of parallelism 2 that keeps a
//! running total (value state) and every amount (list state) per customer,
//! and stores the rules of a second collection in broadcast state. A bounded
//! job ends with a final checkpoint holding everything, so the state is the
//! same at every run; the job id, times and temporary paths are not, and are
//! replaced with placeholders before the output is snapshotted.
//!
//! Errors: a missing path, a directory without `_metadata`, a corrupted state
//! file and a corrupted `_metadata` exit with status 1 and a message on
//! stderr naming the path and the problem.
//!
//! Time to live: a second job keeps visits per user in keyed states with a
//! time to live (event time; processing time, long enough that nothing
//! expires before the inspection, with either downtime policy) and is
//! stopped with a savepoint once it has processed its 12 visits (no
//! end-of-input watermark, which would expire the event-time entries);
//! `weir inspect` shows their settings and live and expired entries. With
//! the RocksDB backend too: its savepoint shows the same, its incremental
//! checkpoints are not decoded and show as unknown. Expired entries at a
//! fixed time are the unit tests' (`weir::inspect::inspect_at`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::source::{Source, SourceStatus};
use weir::state::ttl::{DowntimePolicy, TtlConfig, TtlTime, TtlUpdate};
use weir::state::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};
use weir::time::WatermarkStrategy;
use weir::{
    Collector, KeyedBroadcastContext, KeyedBroadcastProcessFunction, KeyedContext,
    KeyedProcessFunction, Lifecycle, StreamEnv, UserError,
};

/// An order: (customer, amount).
type Order = (u32, u64);

#[derive(Clone)]
struct Totals {
    total: ValueStateDescriptor<u64>,
    amounts: ListStateDescriptor<u64>,
    rules: MapStateDescriptor<String, u64>,
}

impl Lifecycle for Totals {}

impl<K: weir::state::Key> KeyedBroadcastProcessFunction<K, Order, (String, u64), u64> for Totals {
    fn process_element(
        &mut self,
        (_, amount): Order,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.amounts)?.add(amount);
        let total = ctx.state(&self.total)?.value().unwrap_or(0) + amount;
        ctx.state(&self.total)?.update(total);
        out.collect(total);
        Ok(())
    }

    fn process_broadcast_element(
        &mut self,
        (name, limit): (String, u64),
        ctx: &mut KeyedBroadcastContext<K>,
        _out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.broadcast_state(&self.rules)?.put(name, limit);
        Ok(())
    }
}

/// A finished job's retained checkpoint.
struct Checkpoint {
    /// The checkpoint directory (the temporary root).
    root: tempfile::TempDir,
    job_id: String,
    /// `<root>/<job-id>/chk-<n>`.
    path: PathBuf,
}

/// Runs the job with checkpoints under a new temporary directory.
fn checkpoint() -> Checkpoint {
    let root = tempfile::tempdir().unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(root.path().to_str().unwrap());
    let rules = MapStateDescriptor::<String, u64>::new("rules");
    let rule_stream = env
        .from_collection(vec![("limit".to_string(), 100), ("alert".to_string(), 30)])
        .uid("rules")
        .broadcast_state(std::slice::from_ref(&rules));
    let orders: Vec<Order> = (0..12).map(|i| (i % 4, u64::from(i) * 5)).collect();
    env.from_collection(orders)
        .uid("orders")
        .key_by(|o: &Order| o.0)
        .connect(rule_stream)
        .process(Totals {
            total: ValueStateDescriptor::new("total"),
            amounts: ListStateDescriptor::new("amounts"),
            rules,
        })
        .uid("totals")
        .discard();
    let result = env.execute_blocking("cli-test").unwrap();
    retained(root, result.job_id)
}

/// Adds to `env` the orders keyed by `keyed` into the keyed broadcast
/// process `totals` and a rolling sum `sums`, and returns what they emit.
fn totals_and_sums<K: weir::state::Key + weir::Data>(
    env: &StreamEnv,
    orders: Vec<Order>,
    keyed: impl Fn(weir::DataStream<Order>) -> weir::KeyedStream<Order, K>,
) -> (
    weir::sink::CollectHandle<u64>,
    weir::sink::CollectHandle<(K, u64)>,
) {
    let rules = MapStateDescriptor::<String, u64>::new("rules");
    let rule_stream = env
        .from_collection(vec![("limit".to_string(), 100)])
        .uid("rules")
        .broadcast_state(std::slice::from_ref(&rules));
    let orders = env.from_collection(orders).uid("orders");
    let totals = keyed(orders.clone())
        .connect(rule_stream)
        .process(Totals {
            total: ValueStateDescriptor::new("total"),
            amounts: ListStateDescriptor::new("amounts"),
            rules,
        })
        .uid("totals")
        .collect();
    let sums = keyed(orders).sum(|o: &Order| o.1).uid("sums").collect();
    (totals, sums)
}

/// `migrate_keys_from` before a keyed broadcast process and a rolling sum
/// moves their restored state to the new key type: the totals continue.
/// Without it, the restore is refused.
#[test]
fn keyed_operators_keys_migrate_to_another_type_on_restore() {
    let root = tempfile::tempdir().unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(root.path().to_str().unwrap());
    let orders: Vec<Order> = (0..12).map(|i| (i % 4, u64::from(i) * 5)).collect();
    let _ = totals_and_sums(&env, orders.clone(), |s| s.key_by(|o: &Order| o.0));
    let result = env.execute_blocking("numbered customers").unwrap();
    let checkpoint = retained(root, result.job_id);
    let resumed = || {
        let env = StreamEnv::with_parallelism(2);
        env.resume_from(arg(&checkpoint.path));
        env
    };
    // The collection resumes after the 12 orders it had emitted.
    let more: Vec<Order> = orders.into_iter().chain([(0, 1), (3, 2)]).collect();

    let env = resumed();
    let (totals, sums) = totals_and_sums(&env, more.clone(), |s| {
        s.key_by(|o: &Order| o.0.to_string())
            .migrate_keys_from::<u32>(|id| id.to_string())
    });
    env.execute_blocking("named customers").unwrap();
    let mut totals = totals.take();
    totals.sort();
    let mut sums = sums.take();
    sums.sort();
    // Customer 0 had 0 + 20 + 40, customer 3 had 15 + 35 + 55.
    assert_eq!(totals, vec![61, 107]);
    assert_eq!(sums, vec![("0".to_string(), 61), ("3".to_string(), 107)]);

    let env = resumed();
    let _ = totals_and_sums(&env, more.clone(), |s| {
        s.key_by(|o: &Order| o.0.to_string())
    });
    let error = env
        .execute_blocking("not migrated")
        .unwrap_err()
        .to_string();
    assert!(error.contains("key type"), "{error}");

    // A rolling sum declares its state: a narrower type is refused
    // before the job starts, naming the operator and the state.
    let env = resumed();
    env.set_allow_non_restored_state(true);
    env.from_collection(more)
        .uid("orders")
        .key_by(|o: &Order| o.0)
        .sum(|o: &Order| o.1 as u8)
        .uid("sums")
        .discard();
    assert_state_refused_before_start(&env, &checkpoint.path, "sums", "rolling");
}

/// A key migration followed by an operator without keyed state would go
/// unused: the job is refused, naming the operator.
#[test]
fn a_key_migration_before_an_operator_without_keyed_state_is_refused() {
    let env = StreamEnv::with_parallelism(2);
    env.from_collection(vec![(1u32, 5u64)])
        .key_by(|o: &Order| o.0.to_string())
        .migrate_keys_from::<u32>(|id| id.to_string())
        .map(|o: Order| o.1)
        .discard();
    assert_job_refused(
        &env,
        &[
            "migrate_keys_from::<u32>()",
            "`map`",
            "keeps no keyed state",
        ],
    );
}

/// `env`'s job fails, and its error names each of `parts`.
fn assert_job_refused(env: &StreamEnv, parts: &[&str]) {
    let error = env.execute_blocking("refused").unwrap_err().to_string();
    for part in parts {
        assert!(error.contains(part), "{part}: {error}");
    }
}

/// `check_restore` of `env`'s job from `snapshot` finds the state `state`
/// of the operator `uid` incompatible, and the restore stops naming both.
fn assert_state_refused_before_start(env: &StreamEnv, snapshot: &Path, uid: &str, state: &str) {
    let report = env.check_restore(snapshot, "changed state").unwrap();
    assert!(!report.is_ok(), "{report}");
    let checked = report
        .states
        .iter()
        .find(|s| s.uid == uid && s.state == state)
        .unwrap_or_else(|| panic!("no check of {uid}'s {state}: {report}"));
    assert!(checked.verdict.error().is_some(), "{report}");
    assert_job_refused(env, &[uid, state]);
}

/// The one retained checkpoint of job `job_id` under `root`.
fn retained(root: tempfile::TempDir, job_id: String) -> Checkpoint {
    let job_dir = root.path().join(&job_id);
    let mut chk: Vec<PathBuf> = std::fs::read_dir(&job_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("_metadata").is_file())
        .collect();
    assert_eq!(chk.len(), 1, "one retained checkpoint: {chk:?}");
    Checkpoint {
        path: chk.pop().unwrap(),
        job_id,
        root,
    }
}

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .unwrap()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "weir failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The exit status and stderr of a run that must fail.
fn failure(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `text` with `value` replaced by `label` padded to the same width, so that
/// table columns stay aligned.
fn mask(text: &str, value: &str, label: &str) -> String {
    text.replace(value, &format!("{label:_<width$}", width = value.len()))
}

/// `text` without what changes between runs and machines: the temporary
/// directory, the job id and the checkpoint's times.
fn stable(text: &str, checkpoint: &Checkpoint) -> String {
    let report = weir::inspect::inspect(&checkpoint.path).unwrap();
    let text = text.replace(arg(checkpoint.root.path()), "<DIR>");
    let text = mask(&text, &checkpoint.job_id, "<JOB-ID>");
    let text = mask(&text, &report.triggered, "<TRIGGERED>");
    let text = mask(&text, &report.completed, "<COMPLETED>");
    let text = text.replace(&report.trigger_time_ms.to_string(), "<TRIGGER-MS>");
    text.replace(&report.completion_time_ms.to_string(), "<COMPLETION-MS>")
}

#[test]
fn inspect_shows_operators_and_states() {
    let checkpoint = checkpoint();
    let text = stdout(&weir(&["inspect", arg(&checkpoint.path)]));
    insta::assert_snapshot!(stable(&text, &checkpoint));
}

#[test]
fn inspect_as_json_has_every_operator_and_state() {
    let checkpoint = checkpoint();
    let json = stdout(&weir(&[
        "inspect",
        arg(&checkpoint.path),
        "--format",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["kind"], "checkpoint");
    assert_eq!(report["job_name"], "cli-test");
    assert_eq!(report["job_id"], checkpoint.job_id.as_str());
    assert_eq!(report["in_flight_bytes"], 0);
    let operators = report["operators"].as_array().unwrap();
    let uids: Vec<&str> = operators.iter().filter_map(|o| o["uid"].as_str()).collect();
    for uid in ["rules", "orders", "totals"] {
        assert!(uids.contains(&uid), "{uid} in {uids:?}");
    }
    let totals = operators.iter().find(|o| o["uid"] == "totals").unwrap();
    assert_eq!(
        (&totals["parallelism"], &totals["max_parallelism"]),
        (&2.into(), &128.into())
    );
    let states: Vec<(&str, &str, u64)> = totals["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["kind"].as_str().unwrap(),
                s["entries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("total", "keyed_value", 4),
            ("amounts", "keyed_list", 4),
            ("rules", "broadcast", 2)
        ]
    );
    let orders = operators.iter().find(|o| o["uid"] == "orders").unwrap();
    assert_eq!(orders["states"][0]["name"], "collection-position");
    assert_eq!(orders["states"][0]["kind"], "operator_list");
    assert_eq!(orders["states"][0]["entries"], 1);
    insta::assert_snapshot!(stable(&json, &checkpoint));
}

#[test]
fn checkpoints_lists_what_a_directory_holds() {
    let checkpoint = checkpoint();
    let job_dir = checkpoint.path.parent().unwrap();
    let text = stdout(&weir(&["checkpoints", arg(checkpoint.root.path())]));
    // The same one checkpoint, from the root, the job directory or itself.
    assert_eq!(
        stdout(&weir(&["checkpoints", arg(job_dir)])),
        text,
        "from the job directory"
    );
    assert_eq!(
        stdout(&weir(&["checkpoints", arg(&checkpoint.path)])),
        text,
        "from the checkpoint itself"
    );
    insta::assert_snapshot!(stable(&text, &checkpoint));

    let json = stdout(&weir(&[
        "checkpoints",
        arg(checkpoint.root.path()),
        "--format",
        "json",
    ]));
    let listing: serde_json::Value = serde_json::from_str(&json).unwrap();
    let listed = &listing["snapshots"][0];
    assert_eq!(listed["path"], arg(&checkpoint.path));
    assert_eq!(listed["kind"], "checkpoint");
    assert_eq!(listed["operators"].as_array().unwrap().len(), 4);
}

#[test]
fn a_missing_path_or_a_directory_without_metadata_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let stderr = failure(&weir(&["inspect", arg(&missing)]));
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(arg(&missing))
            && stderr.contains("no such file or directory"),
        "{stderr}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let stderr = failure(&weir(&["inspect", arg(&empty)]));
    assert!(
        stderr.contains(arg(&empty)) && stderr.contains("no _metadata"),
        "{stderr}"
    );
    let stderr = failure(&weir(&["checkpoints", arg(&empty)]));
    assert!(
        stderr.contains(arg(&empty)) && stderr.contains("no checkpoint or savepoint"),
        "{stderr}"
    );
    let stderr = failure(&weir(&["checkpoints", arg(&missing)]));
    assert!(
        stderr.contains(arg(&missing)) && stderr.contains("cannot list"),
        "{stderr}"
    );
}

/// The write end of a pipe whose reader has exited: writing to it fails
/// with a broken pipe.
fn closed_pipe() -> std::process::ChildStdin {
    let mut reader = Command::new("true")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = reader.stdin.take().unwrap();
    reader.wait().unwrap();
    pipe
}

#[test]
fn output_into_a_closed_pipe_is_not_an_error() {
    // As in `weir checkpoints DIR | head -1` once `head` is done.
    let checkpoint = checkpoint();
    for args in [
        [
            "checkpoints",
            arg(checkpoint.root.path()),
            "--format",
            "text",
        ],
        ["inspect", arg(&checkpoint.path), "--format", "json"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), "", "{args:?}");
    }
    // The exit status is still the command's answer.
    let plan = write_plan(checkpoint.root.path(), "empty.json", Vec::new());
    let output = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["check-restore", arg(&checkpoint.path), "--plan", arg(&plan)])
        .stdout(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
}

#[test]
fn a_foreign_metadata_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("chk-1");
    std::fs::create_dir(&snapshot).unwrap();
    let metadata = snapshot.join("_metadata");
    // Bytes that are not weir's: a fixed pseudo-random sequence.
    let bytes: Vec<u8> = (0u32..512)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&metadata, bytes).unwrap();
    for command in ["inspect", "checkpoints"] {
        let stderr = failure(&weir(&[command, arg(&snapshot)]));
        assert!(
            stderr.starts_with("error: ")
                && stderr.contains(arg(&metadata))
                && stderr.contains("not a weir checkpoint file"),
            "{command}: {stderr}"
        );
    }
}

/// Flips the bits of the byte in the middle of `file`.
fn corrupt(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_corrupted_state_file_is_an_error_naming_it() {
    let checkpoint = checkpoint();
    let mut state_files: Vec<PathBuf> = std::fs::read_dir(&checkpoint.path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "state"))
        .collect();
    state_files.sort();
    let file = &state_files[0];
    corrupt(file);

    let stderr = failure(&weir(&["inspect", arg(&checkpoint.path)]));
    assert!(
        stderr.contains(arg(file)) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
    // Listing reads only the metadata: the checkpoint is still listed.
    stdout(&weir(&["checkpoints", arg(checkpoint.root.path())]));
}

#[test]
fn a_corrupted_metadata_file_is_an_error_naming_it() {
    let checkpoint = checkpoint();
    let metadata = checkpoint.path.join("_metadata");
    corrupt(&metadata);

    let stderr = failure(&weir(&["inspect", arg(&checkpoint.path)]));
    assert!(
        stderr.contains(arg(&metadata)) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
    let output = weir(&["checkpoints", arg(checkpoint.root.path())]);
    let stderr = failure(&output);
    assert!(
        stderr.contains(arg(&metadata)) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );
}

fn operator(
    uid: &str,
    parallelism: usize,
    key_type: Option<&str>,
) -> weir::runtime::restore::PlannedOperator {
    weir::runtime::restore::PlannedOperator {
        uid: uid.into(),
        name: uid.into(),
        parallelism,
        max_parallelism: 128,
        key_type: key_type.map(str::to_string),
    }
}

fn write_plan(
    dir: &Path,
    name: &str,
    operators: Vec<weir::runtime::restore::PlannedOperator>,
) -> PathBuf {
    let plan = weir::JobPlan {
        job: "cli-test".into(),
        operators,
        state_backend: Some("heap".into()),
        chains: Vec::new(),
        key_migrations: Default::default(),
    };
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string(&plan).unwrap()).unwrap();
    path
}

#[test]
fn check_restore_reports_every_uid_and_fails_when_state_would_be_lost() {
    let checkpoint = checkpoint();
    let dir = checkpoint.root.path();
    // Rescaled to 3, and a new operator: the restore is possible.
    let rescaled = write_plan(
        dir,
        "rescaled.json",
        vec![
            operator("rules", 1, None),
            operator("orders", 1, None),
            operator("totals", 3, Some("u32")),
            operator("audit", 3, None),
        ],
    );
    let text = stdout(&weir(&[
        "check-restore",
        arg(&checkpoint.path),
        "--plan",
        arg(&rescaled),
    ]));
    insta::assert_snapshot!("check_restore_possible", text);

    // The keyed operator gone: not possible, unless its state may be dropped.
    let removed = write_plan(
        dir,
        "removed.json",
        vec![operator("rules", 1, None), operator("orders", 1, None)],
    );
    let refused = weir(&[
        "check-restore",
        arg(&checkpoint.path),
        "--plan",
        arg(&removed),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8(refused.stdout).unwrap();
    insta::assert_snapshot!("check_restore_not_possible", text);
    let allowed = weir(&[
        "check-restore",
        arg(&checkpoint.path),
        "--plan",
        arg(&removed),
        "--allow-non-restored-state",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&allowed)).unwrap();
    assert_eq!(json["uids"][2]["uid"], "totals");
    assert_eq!(json["uids"][2]["verdict"], "missing");

    // A plan that is not one.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"job\": 3}").unwrap();
    let err = failure(&weir(&[
        "check-restore",
        arg(&checkpoint.path),
        "--plan",
        arg(&bad),
    ]));
    assert!(
        err.contains("bad.json") && err.contains("not a job plan"),
        "{err}"
    );
}

/// A visit: (user, page, event time).
type Visit = (u32, u32, i64);

/// 4 users, 12 visits, at most 5 distinct pages per user.
fn visits() -> Vec<Visit> {
    (0..12)
        .map(|i| (i % 4, i % 5, 1_000 * i64::from(i)))
        .collect()
}

/// Emits its records, then nothing until the job is stopped.
#[derive(Clone)]
struct Held<T> {
    left: Vec<T>,
}

impl<T> Lifecycle for Held<T> {}

impl<T: Clone + Send + 'static> Source<T> for Held<T> {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus, UserError> {
        let n = self.left.len().min(max);
        out.extend(self.left.drain(..n));
        Ok(SourceStatus::More)
    }
}

/// Per user: the time of the last visit (event-time TTL), the pages visited
/// (processing-time TTL, the clock continuing through downtime) and visits
/// per page (processing-time TTL paused during downtime).
#[derive(Clone)]
struct Visits {
    last: ValueStateDescriptor<i64>,
    pages: ListStateDescriptor<u32>,
    per_page: MapStateDescriptor<u32, u64>,
    processed: Arc<AtomicUsize>,
}

impl Visits {
    fn new(processed: Arc<AtomicUsize>) -> Self {
        // Ten years: nothing written by the job expires before it is inspected.
        let long = Duration::from_secs(10 * 365 * 24 * 3600);
        Visits {
            last: ValueStateDescriptor::new("last-visit")
                .with_ttl(TtlConfig::new(Duration::from_secs(3600)).time(TtlTime::EventTime)),
            pages: ListStateDescriptor::new("pages").with_ttl(TtlConfig::new(long)),
            per_page: MapStateDescriptor::new("per-page").with_ttl(
                TtlConfig::new(long)
                    .update_type(TtlUpdate::OnReadAndWrite)
                    .downtime(DowntimePolicy::PauseDuringDowntime),
            ),
            processed,
        }
    }
}

impl Lifecycle for Visits {}

impl KeyedProcessFunction<u32, Visit, u64> for Visits {
    fn process_element(
        &mut self,
        (_, page, time): Visit,
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.state(&self.last)?.update(time);
        ctx.state(&self.pages)?.add(page);
        let mut per_page = ctx.state(&self.per_page)?;
        let n = per_page.get(&page).unwrap_or(0) + 1;
        per_page.put(page, n);
        out.collect(n);
        self.processed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A new job environment of parallelism 2 keeping visits from `source`,
/// with checkpoints and savepoints under `root`.
fn visits_env<S: Source<Visit>>(
    root: &Path,
    source: S,
    processed: Arc<AtomicUsize>,
    configure: impl FnOnce(&StreamEnv),
) -> StreamEnv {
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(root.to_str().unwrap());
    env.set_savepoint_dir(root.join("savepoints"));
    configure(&env);
    env.add_source(source)
        .name("Source: HeldVisits")
        .uid("visits")
        .assign_timestamps_and_watermarks(
            // A watermark after every visit: what the savepoint holds does
            // not depend on when periodic watermarks happen to be emitted.
            WatermarkStrategy::punctuated(|_: &Visit, ts| Some(ts))
                .with_timestamp_assigner(|v: &Visit| v.2),
        )
        .uid("timestamps")
        .key_by(|v: &Visit| v.0)
        .process(Visits::new(processed))
        .uid("per-user")
        .discard();
    env
}

/// Runs the visits job until it has processed every visit, and stops it
/// with a savepoint (`configure` may set the state backend).
fn ttl_savepoint(configure: impl FnOnce(&StreamEnv)) -> Checkpoint {
    let root = tempfile::tempdir().unwrap();
    let processed = Arc::new(AtomicUsize::new(0));
    let source = Held { left: visits() };
    let env = visits_env(root.path(), source, processed.clone(), |env| {
        env.enable_checkpointing(Duration::from_secs(3600));
        configure(env);
    });
    stop_with_savepoint_after(&env, "cli-ttl", &processed, 12, root)
}

/// Starts the job of `env` as `name`, stops it with a savepoint once
/// `processed` reaches `records` (a savepoint's barrier follows every record
/// counted), and returns the savepoint (`root`: the job's checkpoint
/// directory).
fn stop_with_savepoint_after(
    env: &StreamEnv,
    name: &str,
    processed: &AtomicUsize,
    records: usize,
    root: tempfile::TempDir,
) -> Checkpoint {
    let (job_id, path) = futures::executor::block_on(async {
        let mut client = env.start(name).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while processed.load(Ordering::SeqCst) < records {
            assert!(
                Instant::now() < deadline,
                "{records} records not processed in 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let path = client.stop_with_savepoint(None).await.unwrap();
        let result = client.wait().await.unwrap();
        (result.job_id, path)
    });
    Checkpoint { root, job_id, path }
}

/// [`stable`], and without the savepoint's name, any time (the
/// processing-time clocks in the snapshot, the time of the inspection) and
/// the bytes of whole subtask files and operators (a few of them depend on
/// the run's timing and on the snapshot format's metadata, not on the
/// entries; the BYTES of each state stay).
fn stable_ttl(text: &str, savepoint: &Checkpoint) -> String {
    let name = savepoint.path.file_name().unwrap().to_str().unwrap();
    let text = mask_times(&mask(text, name, "<SAVEPOINT>"));
    let report = weir::inspect::inspect(&savepoint.path).unwrap();
    let mut text = text.replace(
        &format!("state:      {} bytes", report.state_bytes),
        "state:      <BYTES> bytes",
    );
    for operator in report.operators.iter().filter(|o| o.state_bytes > 0) {
        let row = format!("  {}  ", operator.state_bytes);
        text = text.replace(
            &row,
            &format!("  {:>width$}  ", "<B>", width = row.len() - 4),
        );
    }
    stable(&text, savepoint)
}

/// `text` with every RFC 3339 time (`2023-11-14T22:13:20.123Z`) replaced by
/// `<TIME>` padded to the same width.
fn mask_times(text: &str) -> String {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    let mut out = String::new();
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        let is_time = rest.len() >= shape.len()
            && rest.bytes().zip(shape.bytes()).all(|(b, s)| match s {
                b'd' => b.is_ascii_digit(),
                s => b == s,
            });
        if is_time {
            out.push_str(&format!("{:_<width$}", "<TIME>", width = shape.len()));
            rest = &rest[shape.len()..];
        } else {
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

/// The last table of `weir inspect`'s text whose header starts with
/// `header` and holds `column`, and what follows it.
fn table_from<'a>(text: &'a str, header: &str, column: &str) -> &'a str {
    let start = text
        .rfind(&format!("\n{header}"))
        .filter(|&i| text[i..].contains(column))
        .unwrap_or_else(|| panic!("a table with {column:?} in {text}"));
    &text[start + 1..]
}

/// The TTL table of `weir inspect`'s text and what follows it.
#[cfg(feature = "rocksdb")]
fn ttl_table(text: &str) -> &str {
    table_from(text, "OPERATOR  STATE ", " LIVE  EXPIRED ")
}

#[test]
fn inspect_shows_the_time_to_live_of_keyed_states() {
    let savepoint = ttl_savepoint(|_| ());
    let text = stdout(&weir(&["inspect", arg(&savepoint.path)]));
    insta::assert_snapshot!(stable_ttl(&text, &savepoint));

    let json = stdout(&weir(&[
        "inspect",
        arg(&savepoint.path),
        "--format",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let per_user = report["operators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["uid"] == "per-user")
        .unwrap();
    let state = |name: &str| {
        per_user["states"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {per_user}"))
    };
    let last = state("last-visit");
    let mut settings = last["ttl"].clone();
    // The watermark at the savepoint, if the snapshot records it: then
    // expired entries are counted against it; else they are not counted.
    let watermark = settings
        .as_object_mut()
        .unwrap()
        .remove("clock_ms")
        .and_then(|c| c.as_i64());
    assert_eq!(
        settings,
        serde_json::json!({
            "ttl_ms": 3_600_000,
            "update": "OnCreateAndWrite",
            "visibility": "NeverReturnExpired",
            "time": "EventTime",
            "downtime": "ClockContinues"
        })
    );
    let (expired, against): (serde_json::Value, &str) = match watermark {
        Some(watermark) => {
            assert!(watermark <= 11_000, "watermark {watermark}");
            (0.into(), "snapshot_clock")
        }
        None => (serde_json::Value::Null, "unknown"),
    };
    assert_eq!(
        (
            &last["live_entries"],
            &last["expired_entries"],
            &last["expired_against"]
        ),
        (&4.into(), &expired, &against.into())
    );
    // Processing time: the state's clock at the savepoint is recorded, and
    // expired entries are counted against the time of the inspection.
    let pages = state("pages");
    assert_eq!(pages["ttl"]["time"], "ProcessingTime");
    let clock = pages["ttl"]["clock_ms"].as_i64().unwrap();
    let (triggered, completed) = (
        report["trigger_time_ms"].as_i64().unwrap(),
        report["completion_time_ms"].as_i64().unwrap(),
    );
    assert!(
        (triggered - 1_000..=completed).contains(&clock),
        "clock {clock} at a savepoint taken from {triggered} to {completed}"
    );
    assert!(pages["expired_as_of_ms"].as_i64().unwrap() >= completed);
    assert_eq!(
        (
            &pages["entries"],
            &pages["live_entries"],
            &pages["expired_entries"],
            &pages["expired_against"]
        ),
        (&4.into(), &12.into(), &0.into(), &"inspection_time".into())
    );
    let per_page = state("per-page");
    assert_eq!(per_page["ttl"]["downtime"], "PauseDuringDowntime");
    assert_eq!(per_page["ttl"]["update"], "OnReadAndWrite");
    assert_eq!(per_page["expired_against"], "snapshot_clock");
    assert_eq!(per_page["expired_as_of_ms"], per_page["ttl"]["clock_ms"]);
    assert_eq!(
        (&per_page["live_entries"], &per_page["expired_entries"]),
        (&12.into(), &0.into())
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn inspect_shows_the_time_to_live_of_rocksdb_state_or_says_it_is_unknown() {
    use weir::state::RocksDbBackend;
    let heap = ttl_savepoint(|_| ());
    let heap_text = stable_ttl(&stdout(&weir(&["inspect", arg(&heap.path)])), &heap);

    // A savepoint is in the canonical format whatever the backend.
    let local = tempfile::tempdir().unwrap();
    let backend = RocksDbBackend::new().with_local_dirs([local.path().to_path_buf()]);
    let savepoint = ttl_savepoint(|env| {
        env.set_state_backend(backend.clone());
    });
    let text = stable_ttl(
        &stdout(&weir(&["inspect", arg(&savepoint.path)])),
        &savepoint,
    );
    assert_eq!(ttl_table(&text), ttl_table(&heap_text));

    // The final checkpoint of a bounded job: incremental, the database's own
    // files, which are not decoded.
    let root = tempfile::tempdir().unwrap();
    let processed = Arc::new(AtomicUsize::new(0));
    let source = weir::source::CollectionSource::new(visits());
    let env = visits_env(root.path(), source, processed, |env| {
        env.set_state_backend(backend);
    });
    let result = env.execute_blocking("cli-ttl").unwrap();
    let checkpoint = retained(root, result.job_id);
    let text = stdout(&weir(&["inspect", arg(&checkpoint.path)]));
    assert_eq!(
        ttl_table(&text),
        "\
OPERATOR  STATE                         LIVE  EXPIRED  AS OF  SNAPSHOT CLOCK  TIME TO LIVE
per-user  keyed (rocksdb, incremental)     -        -  -      -               unknown

LIVE and EXPIRED count values, list elements and map entries (ENTRIES counts keys).
unknown: keyed bytes in a backend's own format (incremental checkpoint) are not decoded.
"
    );
}

// ------------------------------------------------------------------ query

/// `weir query`'s lines, parsed as JSON.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[test]
fn query_prints_a_keyed_state_entry_by_entry_and_the_typed_reader_agrees() {
    let checkpoint = checkpoint();
    let path = arg(&checkpoint.path);
    let text = stdout(&weir(&[
        "query", path, "--uid", "totals", "--state", "total", "--all", "--format", "json",
    ]));
    insta::assert_snapshot!(text);
    // Orders (i % 4, 5 i) for i < 12: customer c paid 5 (c + c+4 + c+8).
    let mut totals: Vec<(u64, u64)> = json_lines(&text)
        .iter()
        .map(|row| (row["key"].as_u64().unwrap(), row["value"].as_u64().unwrap()))
        .collect();
    totals.sort();
    assert_eq!(totals, vec![(0, 60), (1, 75), (2, 90), (3, 105)]);
    let mut typed: Vec<(u32, u64)> =
        weir::inspect::read_keyed_state(&checkpoint.path, "totals", "total").unwrap();
    typed.sort();
    let as_u64: Vec<(u64, u64)> = typed.iter().map(|&(k, v)| (u64::from(k), v)).collect();
    assert_eq!(as_u64, totals);

    // One key of a list state, as text.
    let text = stdout(&weir(&[
        "query", path, "--uid", "totals", "--state", "amounts", "--key", "1",
    ]));
    assert_eq!(text, "1 -> [5,25,45]\n");
    let lists: Vec<(u32, Vec<u64>)> =
        weir::inspect::read_keyed_state(&checkpoint.path, "totals", "amounts").unwrap();
    assert!(lists.contains(&(1, vec![5, 25, 45])), "{lists:?}");
    // A key that is not there: no line.
    let text = stdout(&weir(&[
        "query", path, "--uid", "totals", "--state", "amounts", "--key", "9",
    ]));
    assert_eq!(text, "");
}

#[test]
fn query_reads_map_and_ttl_state_without_expiries() {
    let savepoint = ttl_savepoint(|_| ());
    let path = arg(&savepoint.path);
    // Visits (i % 4, page i % 5) for i < 12: user 1 saw pages 1, 0, 4.
    let text = stdout(&weir(&[
        "query", path, "--uid", "per-user", "--state", "per-page", "--key", "1", "--format", "json",
    ]));
    let mut rows: Vec<(u64, u64)> = json_lines(&text)
        .iter()
        .map(|row| {
            assert_eq!(row["key"], 1);
            (
                row["user_key"].as_u64().unwrap(),
                row["value"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(0, 1), (1, 1), (4, 1)]);
    let text = stdout(&weir(&[
        "query", path, "--uid", "per-user", "--state", "pages", "--key", "1",
    ]));
    assert_eq!(text, "1 -> [1,0,4]\n");
    let last: Vec<(u32, i64)> =
        weir::inspect::read_keyed_state(&savepoint.path, "per-user", "last-visit").unwrap();
    let mut last = last;
    last.sort();
    assert_eq!(last, vec![(0, 8_000), (1, 9_000), (2, 10_000), (3, 11_000)]);
    let maps: Vec<(u32, std::collections::BTreeMap<u32, u64>)> =
        weir::inspect::read_keyed_state(&savepoint.path, "per-user", "per-page").unwrap();
    assert_eq!(maps.len(), 4);
}

#[test]
fn query_names_what_is_there_when_the_uid_or_the_state_is_not() {
    let checkpoint = checkpoint();
    let path = arg(&checkpoint.path);
    let err = failure(&weir(&[
        "query", path, "--uid", "nope", "--state", "total", "--all",
    ]));
    assert!(err.contains("no operator with uid \"nope\""), "{err}");
    assert!(err.contains("totals"), "{err}");
    let err = failure(&weir(&[
        "query", path, "--uid", "totals", "--state", "nope", "--all",
    ]));
    assert!(
        err.contains(
            "operator totals has no keyed state \"nope\"; its keyed states are: amounts, total"
        ),
        "{err}"
    );
    // Neither --key nor --all: a usage error.
    let output = weir(&["query", path, "--uid", "totals", "--state", "total"]);
    assert!(!output.status.success());
}

/// Sets an event-time timer a minute after each visit.
#[derive(Clone)]
struct Reminders {
    processed: Arc<AtomicUsize>,
}

impl Lifecycle for Reminders {}

impl KeyedProcessFunction<u32, Visit, u64> for Reminders {
    fn process_element(
        &mut self,
        (_, _, time): Visit,
        ctx: &mut KeyedContext<u32>,
        _out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        ctx.register_event_time_timer(time + 60_000);
        self.processed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn query_prints_the_timers_of_a_keyed_operator() {
    let root = tempfile::tempdir().unwrap();
    let processed = Arc::new(AtomicUsize::new(0));
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(root.path().to_str().unwrap());
    env.enable_checkpointing(Duration::from_secs(3600));
    env.set_savepoint_dir(root.path().join("savepoints"));
    env.add_source(Held { left: visits() })
        .uid("visits")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &Visit, ts| Some(ts))
                .with_timestamp_assigner(|v: &Visit| v.2),
        )
        .key_by(|v: &Visit| v.0)
        .process(Reminders {
            processed: processed.clone(),
        })
        .uid("reminders")
        .discard();
    let savepoint = stop_with_savepoint_after(&env, "cli-timers", &processed, 12, root);
    let path = savepoint.path.clone();
    let text = stdout(&weir(&[
        "query",
        arg(&path),
        "--uid",
        "reminders",
        "--timers",
        "--all",
        "--format",
        "json",
    ]));
    let mut timers: Vec<(u64, i64, String)> = json_lines(&text)
        .iter()
        .map(|t| {
            (
                t["key"].as_u64().unwrap(),
                t["timestamp"].as_i64().unwrap(),
                t["domain"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    timers.sort();
    // Visit i at 1 000 i ms by user i % 4: a timer at 60 000 + 1 000 i.
    let mut expected: Vec<(u64, i64, String)> = (0..12)
        .map(|i| (i % 4, 60_000 + 1_000 * i as i64, "event_time".to_string()))
        .collect();
    expected.sort();
    assert_eq!(timers, expected);
    let text = stdout(&weir(&[
        "query",
        arg(&path),
        "--uid",
        "reminders",
        "--timers",
        "--key",
        "2",
    ]));
    assert_eq!(
        text,
        "2 -> event_time at 62000\n2 -> event_time at 66000\n2 -> event_time at 70000\n"
    );
}

/// The final checkpoint of a bounded job on RocksDB is incremental: its
/// keyed state is the database's own files, which `weir query` opens and
/// reads; a savepoint of the same job (canonical) reads the same.
#[cfg(feature = "rocksdb")]
#[test]
fn query_reads_an_incremental_rocksdb_checkpoint_and_a_rocksdb_savepoint() {
    let local = tempfile::tempdir().unwrap();
    let backend = weir::state::RocksDbBackend::new().with_local_dirs([local.path().to_path_buf()]);
    let root = tempfile::tempdir().unwrap();
    let processed = Arc::new(AtomicUsize::new(0));
    let source = weir::source::CollectionSource::new(visits());
    let env = visits_env(root.path(), source, processed, |env| {
        env.set_state_backend(backend.clone());
    });
    let result = env.execute_blocking("cli-query-rocksdb").unwrap();
    let checkpoint = retained(root, result.job_id);
    let report = stdout(&weir(&["inspect", arg(&checkpoint.path)]));
    assert!(report.contains("keyed (rocksdb, incremental)"), "{report}");
    let text = stdout(&weir(&[
        "query",
        arg(&checkpoint.path),
        "--uid",
        "per-user",
        "--state",
        "pages",
        "--key",
        "1",
    ]));
    assert_eq!(text, "1 -> [1,0,4]\n");
    let mut pages: Vec<(u32, Vec<u32>)> =
        weir::inspect::read_keyed_state(&checkpoint.path, "per-user", "pages").unwrap();
    pages.sort();
    assert_eq!(
        pages,
        vec![
            (0, vec![0, 4, 3]),
            (1, vec![1, 0, 4]),
            (2, vec![2, 1, 0]),
            (3, vec![3, 2, 1])
        ]
    );

    let savepoint = ttl_savepoint(|env| {
        env.set_state_backend(backend);
    });
    let text = stdout(&weir(&[
        "query",
        arg(&savepoint.path),
        "--uid",
        "per-user",
        "--state",
        "pages",
        "--key",
        "1",
    ]));
    assert_eq!(text, "1 -> [1,0,4]\n");
}

/// A reading: (sensor, event time, value).
type Reading = (u32, i64, u64);

/// Two sensors' readings: sensor 1 in 3 one-second slices and one session,
/// sensor 2 in 2 slices and 2 sessions (gap 1 s).
fn readings() -> Vec<Reading> {
    vec![
        (1, 0, 5),
        (2, 200, 1),
        (1, 500, 2),
        (1, 1_500, 4),
        (1, 2_500, 3),
        (2, 3_100, 6),
    ]
}

/// Runs a job summing readings per sensor in 1 s tumbling windows (the
/// slice engine) and in sessions with a 1 s gap (the session engine, and
/// the general operator: one entry per window),
/// with a watermark 10 s behind the readings (no window fires), and stops
/// it with a savepoint once both window operators have every reading.
fn window_savepoint(configure: impl FnOnce(&StreamEnv)) -> Checkpoint {
    use weir::window::{EventTimeSessionWindows, EventTimeTrigger, TumblingEventTimeWindows};
    let root = tempfile::tempdir().unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(root.path().to_str().unwrap());
    env.set_savepoint_dir(root.path().join("savepoints"));
    env.enable_checkpointing(Duration::from_secs(3600));
    configure(&env);
    let counted = Arc::new(AtomicUsize::new(0));
    let seen = counted.clone();
    let stream = env
        .add_source(Held { left: readings() })
        .uid("readings")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &Reading, ts| Some(ts - 10_000))
                .with_timestamp_assigner(|r: &Reading| r.1),
        )
        .uid("timestamps")
        // One subtask up to the windows: each key's readings arrive in
        // order (the session engine's timers depend on it).
        .set_parallelism(1)
        .map(move |r: Reading| {
            seen.fetch_add(1, Ordering::SeqCst);
            r
        })
        .uid("count")
        .set_parallelism(1);
    let sum = |a: Reading, b: Reading| (a.0, a.1.max(b.1), a.2 + b.2);
    stream
        .clone()
        .key_by(|r: &Reading| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(sum)
        .uid("per-second")
        .discard();
    stream
        .clone()
        .key_by(|r: &Reading| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
        .reduce(sum)
        .uid("sessions")
        .discard();
    // The same sessions on the general window operator (a trigger given).
    stream
        .key_by(|r: &Reading| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
        .trigger(EventTimeTrigger::create())
        .reduce(sum)
        .uid("session-windows")
        .discard();
    stop_with_savepoint_after(&env, "cli-windows", &counted, readings().len(), root)
}

/// A job resumed from the window savepoint (the state of operators it
/// leaves out allowed to go) and its readings: none new, so the end of
/// input fires every restored window.
fn resumed_from(savepoint: &Checkpoint) -> (StreamEnv, weir::DataStream<Reading>) {
    let env = StreamEnv::with_parallelism(2);
    env.resume_from(arg(&savepoint.path));
    env.set_allow_non_restored_state(true);
    let readings = env
        .from_collection(Vec::<Reading>::new())
        .uid("readings")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &Reading, ts| Some(ts - 10_000))
                .with_timestamp_assigner(|r: &Reading| r.1),
        )
        .uid("timestamps");
    (env, readings)
}

/// The window table of `weir inspect`'s text (the last table).
fn window_table(text: &str) -> &str {
    table_from(text, "OPERATOR  ", " WINDOW STATE ")
}

/// A savepoint whose sessions the session engine kept does not resume
/// into the general window operator (a trigger given, same uid): the job
/// stops naming the operator and both window states, instead of starting
/// without the open sessions.
#[test]
fn windows_kept_by_another_engine_are_refused_on_restore() {
    use weir::window::{EventTimeSessionWindows, EventTimeTrigger};
    let savepoint = window_savepoint(|_| ());
    let (env, readings) = resumed_from(&savepoint);
    readings
        .key_by(|r: &Reading| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
        .trigger(EventTimeTrigger::create())
        .reduce(|a: Reading, b: Reading| (a.0, a.1.max(b.1), a.2 + b.2))
        .uid("sessions")
        .discard();
    assert_job_refused(
        &env,
        &[
            "uid `sessions`",
            "keeps its windows in `window-sessions`",
            "now keeps them in `window-contents`",
        ],
    );
}

/// Window operators declare their window state: a savepoint whose
/// `per-second` slices hold `Reading`s does not resume into an aggregate
/// whose accumulator is another type. `check_restore` says so per state
/// before anything starts, and so does the restore itself, naming the
/// operator and the state (before, the job started and failed at the
/// first record that opened the state).
#[test]
fn a_window_accumulator_of_another_type_is_refused_before_the_job_starts() {
    use weir::state::AggregateFunction;
    use weir::window::TumblingEventTimeWindows;

    /// The readings' values joined as text: a `String` accumulator.
    #[derive(Clone)]
    struct Joined;
    impl AggregateFunction for Joined {
        type In = Reading;
        type Acc = String;
        type Out = String;
        fn create_accumulator(&self) -> String {
            String::new()
        }
        fn add(&self, r: Reading, acc: &mut String) {
            acc.push_str(&r.2.to_string());
        }
        fn get_result(&self, acc: &String) -> String {
            acc.clone()
        }
        fn merge(&self, acc: &mut String, other: String) {
            acc.push_str(&other);
        }
    }

    let savepoint = window_savepoint(|_| ());
    let (env, readings) = resumed_from(&savepoint);
    readings
        .key_by(|r: &Reading| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate(Joined)
        .uid("per-second")
        .discard();
    assert_state_refused_before_start(&env, &savepoint.path, "per-second", "window-slices");
}

/// The open windows of a savepoint keyed by `u32` resume under `String`
/// keys with `migrate_keys_from`: they fire the same sums as a resume
/// under the old key type; without the migration the restore is refused.
#[test]
fn window_keys_migrate_to_another_type_on_restore() {
    use weir::window::TumblingEventTimeWindows;
    let savepoint = window_savepoint(|_| ());
    let resumed = || resumed_from(&savepoint);
    let sum = |a: Reading, b: Reading| (a.0, a.1.max(b.1), a.2 + b.2);
    let sorted = |mut fired: Vec<(String, i64, u64)>| {
        fired.sort();
        fired
    };

    let (env, readings) = resumed();
    let fired = readings
        .key_by(|r: &Reading| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(sum)
        .uid("per-second")
        .collect();
    env.execute_blocking("same keys").unwrap();
    let same = sorted(
        fired
            .take()
            .into_iter()
            .map(|r| (r.0.to_string(), r.1, r.2))
            .collect(),
    );
    assert_eq!(same.len(), 5, "the savepoint's open slices: {same:?}");

    let (env, readings) = resumed();
    let fired = readings
        .key_by(|r: &Reading| r.0.to_string())
        .migrate_keys_from::<u32>(|id| id.to_string())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(move |a: Reading, b: Reading| sum(a, b))
        .uid("per-second")
        .map(|r: Reading| (r.0.to_string(), r.1, r.2))
        .collect();
    env.execute_blocking("string keys").unwrap();
    assert_eq!(sorted(fired.take()), same);

    let (env, readings) = resumed();
    readings
        .key_by(|r: &Reading| r.0.to_string())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .reduce(sum)
        .uid("per-second")
        .discard();
    let error = env
        .execute_blocking("not migrated")
        .unwrap_err()
        .to_string();
    assert!(error.contains("per-second"), "{error}");
}

#[test]
fn inspect_shows_the_open_windows_of_window_operators() {
    let savepoint = window_savepoint(|_| ());
    let text = stdout(&weir(&["inspect", arg(&savepoint.path)]));
    insta::assert_snapshot!(window_table(&text));

    let json = stdout(&weir(&[
        "inspect",
        arg(&savepoint.path),
        "--format",
        "json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let windows = report["windows"].as_array().unwrap();
    for (uid, engine, state) in [
        ("sessions", "sessions", "window-sessions"),
        ("session-windows", "windows", "window-contents"),
    ] {
        let sessions = windows.iter().find(|w| w["uid"] == uid).unwrap();
        assert_eq!(sessions["engine"], engine);
        assert_eq!(sessions["state"], state);
        assert_eq!(
            (sessions["keys"].as_u64(), sessions["open"].as_u64()),
            (Some(2), Some(3))
        );
        assert_eq!(sessions["earliest_start"], 0);
        assert_eq!(
            (
                sessions["earliest_end"].as_i64(),
                sessions["latest_end"].as_i64()
            ),
            (Some(1_200), Some(4_100))
        );
    }
    let tumbling = windows.iter().find(|w| w["uid"] == "per-second").unwrap();
    assert_eq!(tumbling["engine"], "slices");
    assert_eq!(
        (tumbling["keys"].as_u64(), tumbling["open"].as_u64()),
        (Some(2), Some(5))
    );
    assert_eq!(
        (
            tumbling["most_of_one_key"].as_u64(),
            tumbling["busiest_key"].as_str()
        ),
        (Some(3), Some("1"))
    );
}

/// A savepoint of the RocksDB backend holds the same windows (savepoints
/// are in the canonical format whatever the backend).
#[cfg(feature = "rocksdb")]
#[test]
fn inspect_shows_the_open_windows_of_rocksdb_state() {
    let heap = window_savepoint(|_| ());
    let local = tempfile::tempdir().unwrap();
    let backend = weir::state::RocksDbBackend::new().with_local_dirs([local.path().to_path_buf()]);
    let rocksdb = window_savepoint(|env| {
        env.set_state_backend(backend);
    });
    let heap_text = stdout(&weir(&["inspect", arg(&heap.path)]));
    let rocksdb_text = stdout(&weir(&["inspect", arg(&rocksdb.path)]));
    assert_eq!(window_table(&rocksdb_text), window_table(&heap_text));
}

//! Restores that can never duplicate or lose, run as a user runs them: the
//! example binaries as their own processes (`exactly_once`, `word_count`),
//! killed, stopped by signals, resumed, and their committed output audited.
//!
//! - `latest` is the newest snapshot of the job's own lineage, savepoints
//!   included, never another job's; an unreadable newest snapshot is an error
//!   naming it, never a silent fallback to an older one;
//! - an exactly-once sink refuses a restore behind what it committed, and
//!   output of another job, unless told to accept duplicates;
//! - what no restart can fix stops the job before it starts, said once;
//! - a second job on the same output or checkpoints is refused, naming the
//!   first; a `kill -9` releases the locks;
//! - SIGTERM stops a job so that `latest` resumes it exactly once;
//! - restarts and kills leave no transaction file and no unfinished
//!   checkpoint behind.
//!
//! Waits are for facts (a checkpoint on disk), with a deadline that only turns
//! a hang into a failure.

#[allow(dead_code)] // only the audits are used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// An example binary cargo built next to this test.
fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join(name)
}

/// `exactly_once` with `records` records over `keys` keys into `dir/out`,
/// checkpointing every 20 ms into `dir/ck`, then `args`.
fn exactly_once(dir: &Path, records: u64, keys: u64, args: &[&str]) -> Command {
    exactly_once_at(&dir.join("out"), &dir.join("ck"), records, keys, args)
}

/// The same into `out`, checkpointing into `ck`.
fn exactly_once_at(out: &Path, ck: &Path, records: u64, keys: u64, args: &[&str]) -> Command {
    let mut command = Command::new(binary("exactly_once"));
    command
        .args([
            "--records",
            &records.to_string(),
            "--keys",
            &keys.to_string(),
        ])
        .args(["--checkpoint-interval-ms", "20"])
        .arg("--output")
        .arg(out)
        .arg("--checkpoint-dir")
        .arg(ck)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to its end (a deadline turns a hang into a failure).
fn finish(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `word_count` with `args`.
fn word_count(args: &[&str]) -> Output {
    let mut command = Command::new(binary("word_count"));
    command.args(args);
    finish(command)
}

/// Runs `word_count` to its end, checkpointing into `ck`: another job's
/// lineage in the same checkpoint directory.
fn word_count_checkpointing_into(ck: &Path) {
    let words = word_count(&["--checkpoint-dir", &ck.display().to_string()]);
    assert!(words.status.success(), "{}", stderr(&words));
}

/// Runs `exactly_once` at 50 000 records a second and stops it with a
/// savepoint into `savepoints` after 200 ms; returns its summary.
fn stop_with_a_savepoint(
    dir: &Path,
    records: u64,
    keys: u64,
    savepoints: &str,
) -> serde_json::Value {
    summary(&finish(exactly_once(
        dir,
        records,
        keys,
        &[
            "--rate",
            "50000",
            "--savepoint-dir",
            savepoints,
            "--stop-with-savepoint-after-ms",
            "200",
        ],
    )))
}

/// Resumes `exactly_once` with `args` and asserts that its audit is complete.
fn resume_exactly_once(dir: &Path, records: u64, keys: u64, args: &[&str]) {
    let args = [args, &["--audit"]].concat();
    let resumed = summary(&finish(exactly_once(dir, records, keys, &args)));
    assert_eq!(resumed["audit"], "complete", "{resumed}");
    assert_eq!(resumed["committed"], records, "{resumed}");
}

/// The summary line a successful `exactly_once` prints last.
fn summary(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr(output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every `chk-<n>` under the lineage directories of `root`: (path, has `_metadata`).
fn checkpoint_dirs(root: &Path) -> Vec<(PathBuf, u64, bool)> {
    let mut found = Vec::new();
    for lineage in std::fs::read_dir(root).into_iter().flatten().flatten() {
        for chk in std::fs::read_dir(lineage.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = chk.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("chk-").and_then(|n| n.parse().ok()) {
                found.push((chk.path(), id, chk.path().join("_metadata").exists()));
            }
        }
    }
    found.sort_by_key(|(_, id, _)| *id);
    found
}

/// The complete checkpoints under `root`, oldest first.
fn complete_checkpoints(root: &Path) -> Vec<(PathBuf, u64)> {
    checkpoint_dirs(root)
        .into_iter()
        .filter(|(_, _, complete)| *complete)
        .map(|(path, id, _)| (path, id))
        .collect()
}

/// Waits until `child` has completed a checkpoint under `root`.
fn wait_for_a_checkpoint(child: &mut Child, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while complete_checkpoints(root).is_empty() {
        assert!(Instant::now() < deadline, "no checkpoint completed");
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The files of `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn an_unreadable_newest_checkpoint_is_an_error_and_an_older_one_is_refused_by_the_sink() {
    for damage in ["deleted", "emptied", "corrupted", "state file"] {
        let dir = tempfile::tempdir().unwrap();
        let (records, keys) = (20_000, 31);
        let first = finish(exactly_once(
            dir.path(),
            records,
            keys,
            &["--rate", "40000"],
        ));
        assert_eq!(summary(&first)["committed"], records, "{damage}");
        let complete = complete_checkpoints(&dir.path().join("ck"));
        assert!(complete.len() >= 2, "{complete:?}");
        let (newest, newest_id) = complete.last().unwrap().clone();
        let (older, older_id) = complete[complete.len() - 2].clone();
        let metadata = newest.join("_metadata");
        let flip_last_byte = |path: &Path| {
            let mut bytes = std::fs::read(path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(path, bytes).unwrap();
        };
        let state_file = newest.join("count-and-sum-0.state");
        match damage {
            "deleted" => std::fs::remove_file(&metadata).unwrap(),
            "emptied" => std::fs::write(&metadata, b"").unwrap(),
            "corrupted" => flip_last_byte(&metadata),
            _ => flip_last_byte(&state_file),
        }

        // `latest` is the damaged checkpoint: an error naming it, nothing runs.
        let resumed = finish(exactly_once(
            dir.path(),
            records,
            keys,
            &["--resume-from", "latest"],
        ));
        let text = stderr(&resumed);
        assert!(!resumed.status.success(), "{damage}: {text}");
        if damage == "state file" {
            // The metadata reads; the state file names itself.
            assert!(
                text.contains(&format!("checkpoint {newest_id}"))
                    && text.contains(&state_file.display().to_string())
                    && text.contains("checksum mismatch"),
                "{damage}: {text}"
            );
        } else {
            assert!(
                text.contains(&format!("checkpoint {newest_id} of job `exactly-once`"))
                    && text.contains(&newest.display().to_string()),
                "{damage}: {text}"
            );
            assert!(
                text.contains("an older snapshot is used only when named"),
                "{text}"
            );
        }
        assert_eq!(text.matches("error:").count(), 1, "said once: {text}");
        assert_eq!(
            example::audit(&dir.path().join("out"), records, keys),
            Ok(records)
        );

        // Naming the older one: the sink already committed the newer one.
        let older_arg = older.display().to_string();
        let rewind = finish(exactly_once(
            dir.path(),
            records,
            keys,
            &["--resume-from", &older_arg],
        ));
        let text = stderr(&rewind);
        assert!(!rewind.status.success(), "{damage}: {text}");
        assert!(
            text.contains(&format!(
                "already committed the output of checkpoint {newest_id}"
            )) && text.contains(&format!("restores checkpoint {older_id}")),
            "{damage}: {text}"
        );
        assert_eq!(
            example::audit(&dir.path().join("out"), records, keys),
            Ok(records)
        );
    }
}

#[test]
fn a_rewind_the_user_allows_goes_ahead_and_says_it_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (20_000, 31);
    summary(&finish(exactly_once(
        dir.path(),
        records,
        keys,
        &["--rate", "40000"],
    )));
    let complete = complete_checkpoints(&dir.path().join("ck"));
    let older = complete[complete.len() - 2].0.display().to_string();
    let allowed = finish(exactly_once(
        dir.path(),
        records,
        keys,
        &["--resume-from", &older, "--allow-sink-rewind", "--audit"],
    ));
    let text = stderr(&allowed);
    assert!(text.contains("you will get duplicates"), "{text}");
    assert!(
        text.contains("duplicated counts"),
        "the audit finds them: {text}"
    );
    assert!(!allowed.status.success());
}

#[test]
fn latest_resumes_a_stop_with_savepoint_not_the_checkpoint_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (40_000, 53);
    let savepoints = dir.path().join("sp").display().to_string();
    let first = stop_with_a_savepoint(dir.path(), records, keys, &savepoints);
    assert!(first["savepoint"].is_string(), "{first}");
    resume_exactly_once(
        dir.path(),
        records,
        keys,
        &["--savepoint-dir", &savepoints, "--resume-from", "latest"],
    );
}

#[test]
fn latest_never_takes_another_jobs_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (40_000, 53);
    let savepoints = dir.path().join("sp").display().to_string();
    stop_with_a_savepoint(dir.path(), records, keys, &savepoints);
    // Another job checkpoints into the same directory afterwards.
    word_count_checkpointing_into(&dir.path().join("ck"));
    resume_exactly_once(dir.path(), records, keys, &["--resume-from", "latest"]);
}

#[test]
fn a_snapshot_of_another_job_without_its_state_starts_this_one_over() {
    let dir = tempfile::tempdir().unwrap();
    word_count_checkpointing_into(&dir.path().join("ck"));
    let (snapshot, _) = complete_checkpoints(&dir.path().join("ck"))
        .pop()
        .expect("word_count's final checkpoint");
    let (records, keys) = (5_000, 7);
    resume_exactly_once(
        dir.path(),
        records,
        keys,
        &[
            "--resume-from",
            &snapshot.display().to_string(),
            "--allow-non-restored-state",
        ],
    );
}

#[test]
fn what_a_restart_cannot_fix_stops_the_job_before_it_starts_and_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let shown = file.display().to_string();
    let missing = dir.path().join("missing.txt").display().to_string();
    let cases = [
        (word_count(&["--checkpoint-dir", &shown]), shown.clone()),
        (
            word_count(&[
                "--input",
                &missing,
                "--checkpoint-dir",
                &dir.path().join("ck").display().to_string(),
            ]),
            missing.clone(),
        ),
        (
            finish(exactly_once_at(&file, &dir.path().join("ck"), 100, 3, &[])),
            shown.clone(),
        ),
    ];
    for (output, path) in cases {
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{text}");
        assert!(
            errors[0].contains(&path) && errors[0].contains("invalid job"),
            "{text}"
        );
        assert!(!text.contains("restarting"), "{text}");
    }
}

#[test]
fn a_second_job_on_the_same_output_or_checkpoints_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (1_000_000, 17);
    let mut first = exactly_once(dir.path(), records, keys, &["--rate", "20000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ck = dir.path().join("ck");
    wait_for_a_checkpoint(&mut first, &ck);
    let holder = format!("process {} (job `exactly-once`)", first.id());

    let other = tempfile::tempdir().unwrap();
    let same_output = finish(exactly_once_at(
        &dir.path().join("out"),
        &other.path().join("ck"),
        100,
        3,
        &[],
    ));
    let text = stderr(&same_output);
    assert!(!same_output.status.success(), "{text}");
    assert!(
        text.contains(&holder) && text.contains("out/.weir-lock"),
        "{text}"
    );

    let same_checkpoints = finish(exactly_once_at(&other.path().join("out"), &ck, 100, 3, &[]));
    let text = stderr(&same_checkpoints);
    assert!(!same_checkpoints.status.success(), "{text}");
    assert!(
        text.contains(&holder) && text.contains("exactly-once.lock"),
        "{text}"
    );

    // kill -9 releases both locks: the job resumes where it was.
    first.kill().unwrap();
    first.wait().unwrap();
    resume_exactly_once(dir.path(), records, keys, &["--resume-from", "latest"]);
}

#[test]
fn sigterm_stops_a_job_so_that_latest_resumes_it_exactly_once() {
    for with_savepoint_dir in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (records, keys) = (400_000, 41);
        let savepoints = dir.path().join("sp");
        let mut command = exactly_once(dir.path(), records, keys, &["--rate", "50000"]);
        if with_savepoint_dir {
            command.arg("--savepoint-dir").arg(&savepoints);
        }
        let mut job = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_a_checkpoint(&mut job, &dir.path().join("ck"));
        signal(&job, "TERM");
        let stopped = job.wait_with_output().unwrap();
        let text = stderr(&stopped);
        let stopped_summary = summary(&stopped);
        assert!(
            text.contains("SIGTERM: stopping job `exactly-once`"),
            "{text}"
        );
        assert!(
            text.contains("resume it with --resume-from latest"),
            "{text}"
        );
        if with_savepoint_dir {
            assert!(text.contains(&savepoints.display().to_string()), "{text}");
        }
        let committed = stopped_summary["committed"].as_u64().unwrap();
        assert!(committed < records, "stopped part-way: {stopped_summary}");
        assert!(example::audit_no_duplicates(&dir.path().join("out")).is_ok());

        let mut command = exactly_once(
            dir.path(),
            records,
            keys,
            &["--resume-from", "latest", "--audit"],
        );
        if with_savepoint_dir {
            command.arg("--savepoint-dir").arg(&savepoints);
        }
        let resumed = summary(&finish(command));
        assert_eq!(resumed["audit"], "complete", "{resumed}");
    }
}

#[test]
fn restarts_and_kills_leave_no_transaction_file_and_no_unfinished_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (300_000, 23);
    let mut job = exactly_once(
        dir.path(),
        records,
        keys,
        &["--rate", "100000", "--fail-at", "1000,20000,40000"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_a_checkpoint(&mut job, &dir.path().join("ck"));
    std::thread::sleep(Duration::from_millis(300));
    job.kill().unwrap();
    job.wait().unwrap();
    resume_exactly_once(
        dir.path(),
        records,
        keys,
        &["--resume-from", "latest", "--fail-at", "150000"],
    );
    let out = dir.path().join("out");
    assert_eq!(files_starting(&out, ".part-"), Vec::<String>::new());
    let unfinished: Vec<PathBuf> = checkpoint_dirs(&dir.path().join("ck"))
        .into_iter()
        .filter(|(_, _, complete)| !complete)
        .map(|(path, _, _)| path)
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
}

#[test]
fn examples_end_quietly_when_their_reader_goes_away_and_log_without_colours() {
    for example in ["word_count", "fraud_detection"] {
        let mut child = Command::new(binary(example))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before any output
        let output = child.wait_with_output().unwrap();
        let text = stderr(&output);
        assert!(output.status.success(), "{example}: {text}");
        assert!(!text.contains("error"), "{example}: {text}");
        assert!(
            !text.contains('\u{1b}'),
            "{example}: colour codes in {text:?}"
        );
    }
}

#[test]
fn a_failed_explicit_restore_changes_nothing_that_latest_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (records, keys) = (20_000, 31);
    summary(&finish(exactly_once(
        dir.path(),
        records,
        keys,
        &["--rate", "40000"],
    )));
    let complete = complete_checkpoints(&dir.path().join("ck"));
    let (older, _) = complete[complete.len() - 2].clone();
    std::fs::write(older.join("count-and-sum-0.state"), b"damaged").unwrap();
    // Allowed to rewind, but the older checkpoint cannot be read: nothing
    // about the run is written down (lineage record, sink ledger).
    let failed = finish(exactly_once(
        dir.path(),
        records,
        keys,
        &[
            "--resume-from",
            &older.display().to_string(),
            "--allow-sink-rewind",
        ],
    ));
    let text = stderr(&failed);
    assert!(!failed.status.success(), "{text}");
    assert!(text.contains("count-and-sum-0.state"), "{text}");
    assert!(!text.contains("you will get duplicates"), "{text}");
    resume_exactly_once(dir.path(), records, keys, &["--resume-from", "latest"]);
}

#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_its_own_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    word_count_checkpointing_into(&ck);
    let (words_snapshot, _) = complete_checkpoints(&ck).pop().unwrap();
    let (records, keys) = (2_000, 7);
    let from_words = [
        "--resume-from",
        &words_snapshot.display().to_string(),
        "--allow-non-restored-state",
    ];
    // Started from another job's snapshot, killed before any checkpoint.
    let mut first = Command::new(binary("exactly_once"))
        .args([
            "--records",
            &records.to_string(),
            "--keys",
            &keys.to_string(),
        ])
        .args(["--checkpoint-interval-ms", "3600000", "--rate", "1000"])
        .arg("--output")
        .arg(dir.path().join("out"))
        .arg("--checkpoint-dir")
        .arg(&ck)
        .args(from_words)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let lineages = |ck: &Path| {
        std::fs::read_dir(ck)
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("_lineage").exists())
            .count()
    };
    while lineages(&ck) < 2 {
        assert!(Instant::now() < deadline, "the run did not start");
        assert!(first.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // `latest` is that run's newest snapshot (the other job's): it continues
    // that run's lineage instead of beginning a third.
    resume_exactly_once(
        dir.path(),
        records,
        keys,
        &[&["--resume-from", "latest"][..], &from_words[2..]].concat(),
    );
    assert_eq!(lineages(&ck), 2);
}

//! The exactly-once verification job (`examples/exactly_once.rs`) run as its
//! own process. A killed process loses nothing: the job is killed with
//! SIGKILL once it has completed checkpoints, then started again with
//! `--resume-from latest`. A job stopped with a savepoint
//! (`--stop-with-savepoint-after-ms`) resumes from it at another parallelism,
//! and the `weir` command lists the savepoint and checks it against the plan
//! the job dumps (`--dump-plan`). Either way, the committed files of both
//! runs together must pass the exactly-once audit.

#[allow(dead_code)] // only the audit is used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The example binary cargo built next to this test.
fn example_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join("exactly_once")
}

fn completed_checkpoints(root: &std::path::Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(root) else {
        return 0;
    };
    jobs.flatten()
        .filter_map(|job| std::fs::read_dir(job.path()).ok())
        .flat_map(|chks| chks.flatten())
        .filter(|chk| chk.path().join("_metadata").exists())
        .count()
}

#[test]
fn a_job_killed_with_sigkill_resumes_from_its_latest_checkpoint_exactly_once() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} (built by cargo test)",
        binary.display()
    );
    let dir = std::env::temp_dir().join(format!("weir-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (output, checkpoints) = (dir.join("out"), dir.join("checkpoints"));
    let (records, keys) = (400_000u64, 101u64);
    let common = |cmd: &mut Command| {
        cmd.arg("--records")
            .arg(records.to_string())
            .arg("--keys")
            .arg(keys.to_string())
            .arg("--checkpoint-interval-ms")
            .arg("20")
            .arg("--output")
            .arg(&output)
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };

    let mut first = Command::new(&binary);
    common(&mut first);
    first.arg("--rate").arg("100000");
    let mut child = first.spawn().unwrap();
    // Wait (not for a time: for a fact) until some checkpoints are complete.
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed_checkpoints(&checkpoints) < 1 {
        assert!(
            Instant::now() < deadline,
            "the first run completed no checkpoint"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let partial = example::audit(&output, records, keys);
    assert!(
        partial.is_err(),
        "the killed run must not have committed everything"
    );

    let mut second = Command::new(&binary);
    common(&mut second);
    second.arg("--resume-from").arg("latest");
    let status = second.status().unwrap();
    assert!(status.success(), "the resumed run failed: {status}");
    let lines = example::audit(&output, records, keys).unwrap();
    assert_eq!(lines, records);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn resuming_latest_with_nothing_to_resume_starts_fresh_and_says_so() {
    let binary = example_binary();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
    let out = Command::new(&binary)
        .args([
            "--records",
            "10",
            "--keys",
            "3",
            "--resume-from",
            "latest",
            "--output",
        ])
        .arg(dir.path().join("out"))
        .arg("--checkpoint-dir")
        .arg(dir.path().join("checkpoints"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting fresh"), "{stderr}");
    assert_eq!(example::audit(&dir.path().join("out"), 10, 3).unwrap(), 10);
}

/// Runs the `weir` command.
fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a run that must succeed.
fn stdout(what: &str, output: &Output) -> String {
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_job_stopped_with_a_savepoint_resumes_at_another_parallelism_exactly_once() {
    let binary = example_binary();
    let dir = tempfile::tempdir().unwrap();
    let (output, savepoints) = (dir.path().join("out"), dir.path().join("savepoints"));
    let (records, keys) = (40_000u64, 53u64);
    let job = |args: &[&str]| {
        Command::new(&binary)
            .args([
                "--records",
                &records.to_string(),
                "--keys",
                &keys.to_string(),
            ])
            .args(["--checkpoint-interval-ms", "20", "--output", arg(&output)])
            .args(["--savepoint-dir", arg(&savepoints)])
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap()
    };

    // At most 50 000 records a second: still running after 150 ms.
    let first = job(&[
        "--parallelism",
        "2",
        "--rate",
        "50000",
        "--stop-with-savepoint-after-ms",
        "150",
    ]);
    let first = stdout("the first run", &first);
    let summary: serde_json::Value =
        serde_json::from_str(first.lines().last().unwrap_or_default()).unwrap();
    let savepoint = PathBuf::from(summary["savepoint"].as_str().expect("a savepoint path"));
    assert!(savepoint.starts_with(&savepoints), "{summary}");
    assert!(
        example::audit(&output, records, keys).is_err(),
        "stopped part-way, the output is incomplete"
    );

    // `weir checkpoints` lists it as a savepoint.
    let listing = stdout(
        "weir checkpoints",
        &weir(&["checkpoints", arg(&savepoints), "--format", "json"]),
    );
    let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let snapshots = listing["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 1, "{listing}");
    assert_eq!(snapshots[0]["kind"], "savepoint");
    assert_eq!(snapshots[0]["path"], arg(&savepoint));
    let text = stdout(
        "weir checkpoints",
        &weir(&["checkpoints", arg(&savepoints)]),
    );
    assert!(
        text.lines().nth(1).unwrap().starts_with("savepoint "),
        "{text}"
    );

    // The plan at parallelism 3, as `--dump-plan` prints it, restores.
    let plan = stdout("--dump-plan", &job(&["--parallelism", "3", "--dump-plan"]));
    let plan_file = dir.path().join("plan.json");
    std::fs::write(&plan_file, plan).unwrap();
    let check = ["check-restore", arg(&savepoint), "--plan", arg(&plan_file)];
    let text = stdout("weir check-restore", &weir(&check));
    let json = stdout(
        "weir check-restore --format json",
        &weir(&[&check[..], &["--format", "json"]].concat()),
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    // State sizes depend on how far the first run got; paths on the machine.
    let mut stable = text.replace(arg(dir.path()), "<DIR>");
    for uid in json["uids"].as_array().unwrap() {
        let bytes = uid["state_bytes"].as_u64().unwrap();
        assert!(bytes > 0, "{uid}");
        stable = stable.replacen(&format!("{bytes:>11}"), &format!("{:>11}", "<BYTES>"), 1);
    }
    insta::assert_snapshot!("check_restore_at_parallelism_3", stable);

    let second = job(&["--parallelism", "3", "--resume-from", arg(&savepoint)]);
    let second = stdout("the resumed run", &second);
    assert!(!second.contains("\"savepoint\""), "{second}");
    let lines = example::audit(&output, records, keys).unwrap();
    assert_eq!(lines, records);
    assert!(savepoint.join("_metadata").is_file(), "a savepoint is kept");
}

#[test]
fn the_file_weir_config_names_configures_the_job() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "parallelism = 5\nmax_parallelism = 64\n").unwrap();
    let plan = |flags: &[&str]| -> serde_json::Value {
        let output = Command::new(example_binary())
            .args(["--output", "/nonexistent/out", "--dump-plan"])
            .args(flags)
            .env("WEIR_CONFIG", config.path())
            .output()
            .unwrap();
        serde_json::from_str(&stdout("--dump-plan", &output)).unwrap()
    };
    let settings = |plan: &serde_json::Value| -> Vec<(u64, u64)> {
        plan["operators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let number = |key: &str| o[key].as_u64().unwrap();
                (number("parallelism"), number("max_parallelism"))
            })
            .collect()
    };
    // The file beats the job's default parallelism (2) and weir's max (128).
    assert_eq!(settings(&plan(&[])), vec![(5, 64); 3]);
    // A flag beats the file.
    assert_eq!(settings(&plan(&["--parallelism", "3"])), vec![(3, 64); 3]);
}

/// A job binary shows its progress line when stderr is a terminal (here a
/// pseudo-terminal from util-linux's `script`), not when it is a pipe, and
/// not with `--no-progress`.
#[test]
fn the_progress_line_shows_on_a_terminal_only() {
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("skipped: no `script` (util-linux) to give the job a terminal");
        return;
    };
    let dir = std::env::temp_dir().join(format!("weir-progress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Each run writes to directories of its own (`tag`).
    let job = |tag: &str, extra: &str| {
        format!(
            "{} --records 30000 --rate 20000 --output {} --checkpoint-dir {} {extra}",
            example_binary().display(),
            dir.join(tag).join("out").display(),
            dir.join(tag).join("checkpoints").display(),
        )
    };
    let on_a_terminal = |tag: &str, extra: &str| {
        let output = Command::new(script)
            .args(["-qec", &job(tag, extra), "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let shown = on_a_terminal("shown", "");
    assert!(
        shown.contains("exactly-once RUNNING") && shown.contains("records/s"),
        "{shown}"
    );
    let off = on_a_terminal("off", "--no-progress");
    assert!(!off.contains("records/s"), "{off}");
    let piped = Command::new(example_binary())
        .args(job("piped", "").split_whitespace().skip(1))
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("records/s"));
    let _ = std::fs::remove_dir_all(&dir);
}

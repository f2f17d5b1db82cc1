//! A killed process loses nothing: the exactly-once verification job
//! (`examples/exactly_once.rs`, run as its own process) is killed with SIGKILL
//! once it has completed checkpoints, then started again with
//! `--resume-from latest`; the committed files of both runs together must pass
//! the exactly-once audit.

#[allow(dead_code)] // only the audit is used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::PathBuf;
use std::process::{Command, Stdio};
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
fn resuming_without_a_checkpoint_fails_with_a_clear_error() {
    let binary = example_binary();
    let dir = std::env::temp_dir().join(format!("weir-resume-none-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    let out = Command::new(&binary)
        .args(["--records", "10", "--resume-from", "latest", "--output"])
        .arg(dir.join("out"))
        .arg("--checkpoint-dir")
        .arg(dir.join("checkpoints"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no complete checkpoint under"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

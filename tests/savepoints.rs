//! Savepoints end to end: stop-with-savepoint and resume at another
//! parallelism under the exactly-once audit, relocated savepoints, savepoints
//! of a running job, and what a savepoint refuses.

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};

use weir::StreamEnv;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-savepoints-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn args(dir: &Path, records: u64, parallelism: usize) -> example::Args {
    example::Args {
        records,
        keys: 97,
        parallelism,
        checkpoint_interval_ms: 20,
        mode: "exactly-once".into(),
        unaligned: false,
        backend: "heap".into(),
        rate: Some(100_000),
        fail_at: Vec::new(),
        restart: "fixed-delay:10:0".into(),
        output: dir.join("out"),
        checkpoint_dir: dir.join("checkpoints"),
        resume_from: None,
        stop_with_savepoint_after_ms: None,
        savepoint_dir: Some(dir.join("savepoints")),
    }
}

/// Runs the verification job until it stops with a savepoint; returns its path.
fn stop_with_savepoint(args: &example::Args, after_ms: u64) -> PathBuf {
    let mut args = args.clone();
    args.stop_with_savepoint_after_ms = Some(after_ms);
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    let (result, savepoint) = example::run(&env, &args).unwrap();
    assert_eq!(result.restarts, 0);
    savepoint.expect("the job was still running: it stopped with a savepoint")
}

/// Resumes the verification job from `from` and runs it to its end.
fn resume(args: &example::Args, from: &Path) {
    let mut args = args.clone();
    args.resume_from = Some(from.display().to_string());
    args.rate = None;
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    env.execute_blocking("exactly-once").unwrap();
}

#[test]
fn stop_with_savepoint_then_resume_at_other_parallelisms_is_exactly_once() {
    for (before, after) in [(2, 3), (3, 1)] {
        let dir = temp_dir(&format!("stop-{before}-{after}"));
        let records = 60_000;
        let first = args(&dir, records, before);
        let savepoint = stop_with_savepoint(&first, 150);
        assert!(savepoint.starts_with(dir.join("savepoints")), "{savepoint:?}");
        assert!(savepoint.join("_metadata").is_file());
        // Stopped part-way: the output so far is incomplete, and nothing is duplicated.
        assert!(example::audit(&first.output, records, first.keys).is_err());
        resume(&args(&dir, records, after), &savepoint);
        let lines = example::audit(&first.output, records, first.keys)
            .unwrap_or_else(|e| panic!("{before} -> {after}: {e}"));
        assert_eq!(lines, records);
        assert!(savepoint.join("_metadata").is_file(), "a savepoint is never deleted");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn a_savepoint_moved_elsewhere_still_restores() {
    let dir = temp_dir("moved");
    let records = 40_000;
    let first = args(&dir, records, 2);
    let savepoint = stop_with_savepoint(&first, 100);
    let moved = dir.join("elsewhere").join("my-savepoint");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&savepoint, &moved).unwrap();
    resume(&args(&dir, records, 2), &moved);
    example::audit(&first.output, records, first.keys).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

//! End-to-end exactly-once through failures: the verification job of
//! `examples/exactly_once.rs` (compiled in by path) runs with panics injected
//! at values drawn from a seed, restarts from its checkpoints, and its
//! committed output must hold every key's counts `1..=n` exactly once with the
//! exact final sum. A failing seed is a regression test: add it to `SEEDS`.

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};

use weir::StreamEnv;

const SEEDS: [u64; 6] = [1, 2, 3, 42, 1234, 987_654];

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-exactly-once-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The verification job's flags for a test: parallelism 2, checkpoints
/// every 5 ms under `dir`, output in `dir/out`.
fn job_args(dir: &Path, records: u64, keys: u64, restart: &str) -> example::Args {
    let mut args = example::Args::new(records, keys, dir.join("out"));
    args.job.parallelism = Some(2);
    args.job.checkpoint_interval_ms = Some(5);
    args.job.state_backend = Some("heap".into());
    args.job.restart = Some(restart.into());
    args.job.checkpoint_dir = Some(dir.join("checkpoints").display().to_string());
    args
}

/// A few failure values in `0..records`, fixed by `seed` (xorshift).
fn failures(seed: u64, records: u64, count: usize) -> Vec<u64> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % records
        })
        .collect()
}

fn run(tag: &str, seed: u64, parallelism: usize) -> (u64, u32) {
    run_with(tag, seed, parallelism, false)
}

fn run_with(tag: &str, seed: u64, parallelism: usize, unaligned: bool) -> (u64, u32) {
    run_on("heap", tag, seed, parallelism, unaligned)
}

fn run_on(backend: &str, tag: &str, seed: u64, parallelism: usize, unaligned: bool) -> (u64, u32) {
    let records = 60_000;
    let dir = temp_dir(&format!("{tag}-{seed}"));
    let mut args = job_args(&dir, records, 97, "fixed-delay:10:0");
    args.job.parallelism = Some(parallelism);
    args.unaligned = unaligned;
    args.fail_at = failures(seed, records, 3);
    args.job.state_backend = Some(backend.into());
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    let result = env.execute_blocking("exactly-once").unwrap();
    let lines = example::audit(&args.output, records, args.keys)
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    (lines, result.restarts)
}

#[test]
fn a_job_that_ends_leaves_no_transaction_open() {
    let records = 5_000;
    let dir = temp_dir("no-open-transaction");
    let args = job_args(&dir, records, 7, "none");
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, &args).unwrap();
    env.execute_blocking("no-open-transaction").unwrap();
    let lines = example::audit(&args.output, records, args.keys).unwrap();
    assert_eq!(lines, records);
    let hidden: Vec<String> = std::fs::read_dir(&args.output)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".part-"))
        .collect();
    assert!(hidden.is_empty(), "left open: {hidden:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_committed_output_is_exactly_once_through_injected_failures() {
    for seed in SEEDS {
        let (lines, restarts) = run("aligned", seed, 2);
        assert_eq!(lines, 60_000, "seed {seed}: one line per record");
        assert!(
            restarts >= 1,
            "seed {seed}: the injected failures restarted the job"
        );
    }
}

/// The RocksDB backend (incremental checkpoints, restores from shared files)
/// passes the same audit through the same failures.
#[cfg(feature = "rocksdb")]
#[test]
fn the_committed_output_is_exactly_once_with_rocksdb_through_injected_failures() {
    for seed in [1, 42, 987_654] {
        let (lines, restarts) = run_on("rocksdb", "rocksdb", seed, 2, false);
        assert_eq!(lines, 60_000, "seed {seed}: one line per record");
        assert!(
            restarts >= 1,
            "seed {seed}: the injected failures restarted the job"
        );
    }
    let (lines, _) = run_on("rocksdb", "rocksdb-unaligned", 3, 3, true);
    assert_eq!(lines, 60_000);
}

#[cfg(not(feature = "rocksdb"))]
#[test]
fn rocksdb_without_the_feature_is_a_clear_error() {
    let dir = temp_dir("no-rocksdb");
    let mut args = job_args(&dir, 10, 2, "none");
    args.job.state_backend = Some("rocksdb".into());
    let err = example::build(&StreamEnv::new(), &args).unwrap_err();
    assert!(err.contains("--features rocksdb"), "{err}");
}

#[test]
fn exactly_once_also_holds_at_another_parallelism() {
    let (lines, _) = run("p3", 7, 3);
    assert_eq!(lines, 60_000);
}

#[test]
fn the_audit_catches_a_duplicate_and_a_loss() {
    let dir = temp_dir("audit");
    std::fs::create_dir_all(&dir).unwrap();
    let line = |k, c, s| format!("{{\"key\":{k},\"count\":{c},\"sum\":{s}}}\n");
    // Two records (0 and 2) of one key (keys = 2, records = 3: key 0 has 0 and 2).
    std::fs::write(
        dir.join("part-0-a"),
        line(0, 1, 0) + &line(0, 2, 2) + &line(1, 1, 1),
    )
    .unwrap();
    assert_eq!(example::audit(&dir, 3, 2).unwrap(), 3);
    std::fs::write(dir.join("part-0-b"), line(0, 2, 2)).unwrap();
    assert!(example::audit(&dir, 3, 2)
        .unwrap_err()
        .contains("duplicated"));
    std::fs::remove_file(dir.join("part-0-b")).unwrap();
    std::fs::write(dir.join("part-0-a"), line(0, 1, 0) + &line(1, 1, 1)).unwrap();
    assert!(example::audit(&dir, 3, 2).unwrap_err().contains("key 0"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The verification job with a seeded fault plan: record failures in the
/// keyed operator, a failed snapshot, a failure between pre-commit and commit
/// (the two-phase-commit sink must commit on restore), and a failed restore.
fn run_with_faults(seed: u64) {
    // The job's log (checkpoints completed, failures, restores) goes to the
    // test's captured output: shown when the test fails, for the story.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .try_init();
    let records = 40_000;
    let dir = temp_dir(&format!("faults-{seed}"));
    let mut args = job_args(&dir, records, 53, "fixed-delay:20:0");
    // Slow enough that the planned checkpoints (up to the 9th) happen.
    args.rate = Some(80_000);
    let faults = std::sync::Arc::new(weir::testing::Faults::from_seed(
        seed,
        "count-and-sum",
        records / 2,
        2,
        true,
    ));
    faults.fail_restores(1);
    let env = StreamEnv::new();
    env.set_batch_size(64);
    env.set_faults(faults.clone());
    example::build(&env, &args).unwrap();
    let result = env
        .execute_blocking("exactly-once")
        .unwrap_or_else(|e| panic!("seed {seed}:\n{faults}\n{e}"));
    let lines = example::audit(&args.output, records, args.keys).unwrap_or_else(|e| {
        panic!(
            "seed {seed}: {e}\nplan:\n{faults}\nfired: {:?}\ncommitted files of key 0:\n{}",
            faults.fired(),
            files_of_key(&args.output, 0)
        )
    });
    assert_eq!(lines, records);
    let fired = faults.fired();
    assert!(
        fired.iter().filter(|f| f.contains("at record")).count() == 2,
        "seed {seed}: {fired:?}"
    );
    assert!(
        fired
            .iter()
            .any(|f| f.contains("between pre-commit and commit")),
        "seed {seed}: {fired:?}"
    );
    assert!(
        fired.iter().any(|f| f.contains("during restore")),
        "seed {seed}: {fired:?}"
    );
    assert!(
        result.restarts >= 4,
        "seed {seed}: {} restarts, {fired:?}",
        result.restarts
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// For a failed audit: each committed file that holds lines of `key`, in
/// the order of its modification time, with the key's counts in it (which
/// transactions hold the same records).
fn files_of_key(dir: &Path, key: u64) -> String {
    let Ok(files) = weir::sink::TransactionalFileSink::committed_files(dir) else {
        return format!("cannot list {}", dir.display());
    };
    let mut rows: Vec<(std::time::SystemTime, String)> = Vec::new();
    for file in files {
        let counts: Vec<u64> = match example::lines_of(&file) {
            Ok(lines) => lines
                .iter()
                .filter(|l| l.key == key)
                .map(|l| l.count)
                .collect(),
            Err(e) => {
                rows.push((std::time::UNIX_EPOCH, e));
                continue;
            }
        };
        let (Some(first), Some(last)) = (counts.first(), counts.last()) else {
            continue;
        };
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        rows.push((
            modified,
            format!(
                "{name}: {} lines of key {key}, counts {first}..={last}",
                counts.len()
            ),
        ));
    }
    rows.sort();
    rows.into_iter().map(|(_, row)| row + "\n").collect()
}

#[test]
fn seeded_fault_plans_keep_the_output_exactly_once() {
    for seed in [5, 6, 7, 8] {
        run_with_faults(seed);
    }
}

#[test]
fn at_least_once_loses_nothing_through_injected_failures() {
    for seed in [11, 12, 13] {
        let records = 40_000;
        let dir = temp_dir(&format!("alo-{seed}"));
        let mut args = job_args(&dir, records, 61, "fixed-delay:10:0");
        args.mode = "at-least-once".into();
        args.fail_at = failures(seed, records, 3);
        let env = StreamEnv::new();
        env.set_batch_size(64);
        example::build(&env, &args).unwrap();
        env.execute_blocking("at-least-once").unwrap();
        let lines = example::audit_no_loss(&args.output, records, args.keys)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(lines >= records, "seed {seed}: {lines} lines");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn unaligned_checkpoints_keep_the_output_exactly_once_through_failures() {
    for seed in SEEDS {
        let (lines, restarts) = run_with("unaligned", seed, 2, true);
        assert_eq!(lines, 60_000, "seed {seed}: one line per record");
        assert!(restarts >= 1, "seed {seed}");
    }
}

//! Configuration end to end: a `weir.toml` file, command-line flags through
//! `weir::cli::JobArgs`, and settings in code, on a real `StreamEnv`; what
//! wins, and what a bad value says.

use clap::Parser;
use weir::cli::JobArgs;
use weir::{CheckpointMode, StreamEnv};

fn file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn declare(env: &StreamEnv) {
    env.from_collection(vec![1u64, 2, 3])
        .uid("numbers")
        .key_by(|n: &u64| n % 2)
        .reduce(|a, b| a + b)
        .uid("sums")
        .discard();
}

#[test]
fn code_beats_flags_beat_the_file() {
    let config = file(
        "parallelism = 2\nmax_parallelism = 64\n\n[state]\nsavepoints_dir = \"/tmp/from-file\"\n\n\
         [checkpoint]\ninterval_ms = 700\nmode = \"at-least-once\"\nretained = 4\n\n\
         [restart]\nstrategy = \"none\"\n",
    );
    let path = config.path().to_str().unwrap();
    let args = JobArgs::parse_from([
        "job",
        "--config",
        path,
        "--parallelism",
        "3",
        "--checkpoint-interval-ms",
        "300",
    ]);
    let env = StreamEnv::new();
    args.configure(&env).unwrap();
    // Code, before or after the configuration, wins.
    env.set_max_parallelism(32);
    declare(&env);

    let plan = env.plan("precedence").unwrap();
    let sums = plan.operators.iter().find(|o| o.uid == "sums").unwrap();
    assert_eq!(sums.parallelism, 3, "the flag beats the file");
    assert_eq!(sums.max_parallelism, 32, "code beats the file");
    let runtime = env.runtime_config();
    let checkpointing = runtime.checkpointing.unwrap();
    assert_eq!(
        checkpointing.config.interval,
        Some(std::time::Duration::from_millis(300)),
        "the flag beats the file"
    );
    assert_eq!(
        checkpointing.config.mode,
        CheckpointMode::AtLeastOnce,
        "from the file"
    );
    assert_eq!(checkpointing.config.retained, 4);
    assert_eq!(
        runtime.savepoint_dir.as_deref(),
        Some(std::path::Path::new("/tmp/from-file"))
    );
    assert_eq!(runtime.restart, Some(weir::RestartStrategy::NoRestart));

    // Code set before the flags still wins.
    let env = StreamEnv::with_parallelism(5);
    env.enable_checkpointing(std::time::Duration::from_millis(50));
    args.configure(&env).unwrap();
    declare(&env);
    assert_eq!(env.parallelism(), 5);
    assert_eq!(
        env.checkpoint_config().unwrap().interval,
        Some(std::time::Duration::from_millis(50))
    );
    assert_eq!(
        env.checkpoint_config().unwrap().retained,
        4,
        "the rest from the file"
    );
}

#[test]
fn a_configured_job_runs_and_dumps_its_plan() {
    let dir = tempfile::tempdir().unwrap();
    let config = file(&format!(
        "[state]\ncheckpoints_dir = {:?}\n[checkpoint]\ninterval_ms = 10\n",
        dir.path().display().to_string()
    ));
    let args = JobArgs::parse_from(["job", "--config", config.path().to_str().unwrap()]);
    let env = args.environment(&[("parallelism", "2")]).unwrap();
    declare(&env);
    let result = args.execute_blocking(&env, "configured").unwrap().unwrap();
    // The bounded job's final checkpoint went to the configured directory.
    assert!(dir.path().join(&result.job_id).is_dir());

    let dump = JobArgs::parse_from(["job", "--dump-plan"]);
    let env = dump.environment(&[]).unwrap();
    declare(&env);
    assert!(dump.execute_blocking(&env, "configured").unwrap().is_none());
}

#[test]
fn bad_values_name_the_key_the_value_and_what_is_allowed() {
    let error = |text: &str| {
        let config = file(text);
        let args = JobArgs::parse_from(["job", "--config", config.path().to_str().unwrap()]);
        args.configure(&StreamEnv::new()).unwrap_err().to_string()
    };
    let err = error("paralelism = 2");
    assert!(
        err.contains("paralelism") && err.contains("parallelism"),
        "{err}"
    );
    let err = error("[restart]\nstrategy = \"twice\"");
    assert!(
        err.contains("restart.strategy") && err.contains("twice") && err.contains("fixed-delay"),
        "{err}"
    );
    let err = error("[state]\nbackend = \"redis\"");
    assert!(
        err.contains("state.backend") && err.contains("redis") && err.contains("heap"),
        "{err}"
    );
    let err = error("parallelism = 0");
    assert!(
        err.contains("parallelism = 0") && err.contains("at least 1"),
        "{err}"
    );

    let args = JobArgs::parse_from(["job", "--restart", "sometimes"]);
    let err = args.configure(&StreamEnv::new()).unwrap_err().to_string();
    assert!(
        err.contains("--restart") && err.contains("sometimes"),
        "{err}"
    );
    let args = JobArgs::parse_from(["job", "--config", "/nonexistent/weir.toml"]);
    let err = args.configure(&StreamEnv::new()).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/weir.toml"), "{err}");
    let args = JobArgs::parse_from(["job", "--resume-from", "latest"]);
    let env = args.environment(&[]).unwrap();
    declare(&env);
    let err = env
        .execute_blocking("no-checkpoint-dir")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("latest") && err.contains("checkpoint directory"),
        "{err}"
    );
}

/// The error configuring a job from a file holding `text`, and the file's path.
fn file_error(text: &str) -> (String, String) {
    let config = file(text);
    let path = config.path().display().to_string();
    let args = JobArgs::parse_from(["job", "--config", &path]);
    let err = args.configure(&StreamEnv::new()).unwrap_err().to_string();
    (err, path)
}

#[test]
fn a_syntax_error_names_the_file_and_the_line() {
    let (err, path) = file_error("parallelism = 2\n\n[checkpoint\ninterval_ms = 10\n");
    assert!(err.contains(&path) && err.contains("line 3"), "{err}");
}

#[test]
fn a_negative_number_is_an_error_naming_the_key() {
    let (err, path) = file_error("parallelism = -2");
    assert!(
        err.contains(&path) && err.contains("parallelism = -2") && err.contains("at least 1"),
        "{err}"
    );
    let (err, _) = file_error("[checkpoint]\nmin_pause_ms = -1");
    assert!(
        err.contains("checkpoint.min_pause_ms = -1") && err.contains("a whole number"),
        "{err}"
    );
    let err = weir::config::Configuration::new()
        .load_env_vars([("WEIR_PARALLELISM".to_string(), "-2".to_string())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WEIR_PARALLELISM") && err.contains("\"-2\""),
        "{err}"
    );
}

/// `[rocksdb]` values are checked in every build, with or without the
/// `rocksdb` feature; they apply when `state.backend` is `rocksdb`.
#[test]
fn rocksdb_values_are_checked_and_errors_name_the_key() {
    let (err, _) = file_error("[rocksdb]\nblock_cache_mb = 0");
    assert!(
        err.contains("rocksdb.block_cache_mb = 0") && err.contains("at least 1"),
        "{err}"
    );
    let (err, _) = file_error("[rocksdb]\nwrite_buffer_mb = \"lots\"");
    assert!(
        err.contains("rocksdb.write_buffer_mb = \"lots\"") && err.contains("a whole number"),
        "{err}"
    );
    let (err, _) = file_error("[rocksdb]\ndir_strategy = \"fastest\"");
    assert!(
        err.contains("rocksdb.dir_strategy = \"fastest\"")
            && err.contains("round-robin, least-used, random"),
        "{err}"
    );
    let (err, _) = file_error("[rocksdb]\nincremental = \"yes\"");
    assert!(
        err.contains("rocksdb.incremental") && err.contains("true or false"),
        "{err}"
    );
    let (err, _) = file_error("[rocksdb]\nlocal_dir = \"/var/tmp\"");
    assert!(
        err.contains("local_dir") && err.contains("rocksdb.local_dirs"),
        "{err}"
    );
    let err = weir::config::Configuration::new()
        .load_env_vars([("WEIR_ROCKSDB_BLOCK_CACHE_MB".to_string(), "0".to_string())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WEIR_ROCKSDB_BLOCK_CACHE_MB") && err.contains("at least 1"),
        "{err}"
    );

    // Good values with the heap backend: accepted, and the job runs on the heap.
    let config = file("[rocksdb]\nblock_cache_mb = 64\ndir_strategy = \"least-used\"\n");
    let args = JobArgs::parse_from(["job", "--config", config.path().to_str().unwrap()]);
    let env = StreamEnv::new();
    args.configure(&env).unwrap();
    assert_eq!(env.state_backend().unwrap().name(), "heap");
}

/// Without the `rocksdb` feature, asking for the backend says how to get it.
#[cfg(not(feature = "rocksdb"))]
#[test]
fn the_rocksdb_backend_in_a_build_without_it_says_to_rebuild() {
    let (err, path) = file_error("[state]\nbackend = \"rocksdb\"\n[rocksdb]\nblock_cache_mb = 64");
    assert!(
        err.contains(&path)
            && err.contains("state.backend = \"rocksdb\"")
            && err.contains("--features rocksdb"),
        "{err}"
    );
}

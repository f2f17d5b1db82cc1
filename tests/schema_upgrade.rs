//! State schema evolution through savepoints, on both backends: the job of
//! `examples/schema_upgrade.rs` (compiled in by path) runs at state version
//! 1, stops with a savepoint, resumes at version 2 (compatible as is) at
//! another parallelism, stops again, and finishes at version 3 (migrated):
//! the committed output holds every key's counts exactly once. A snapshot
//! the job cannot read (a required field added, a newer version) stops the
//! job before it starts, with an error naming the state and the field.

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/schema_upgrade.rs"]
mod example;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weir::state::schema::{Compatibility, StateVerdict};
use weir::state::ValueStateDescriptor;
use weir::StreamEnv;

const RECORDS: u64 = 30_000;
const KEYS: u64 = 50;

fn temp_dir(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("weir-schema-upgrade-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn args(dir: &Path, version: u32, backend: &str, parallelism: usize) -> example::Args {
    let mut args = example::Args::new(version, RECORDS, KEYS, dir.join("out"));
    args.rate = Some(20_000);
    args.job.parallelism = Some(parallelism);
    args.job.state_backend = Some(backend.into());
    args.job.checkpoint_interval_ms = Some(50);
    args.job.checkpoint_dir = Some(dir.join("checkpoints").display().to_string());
    args.job.savepoint_dir = Some(dir.join("savepoints").display().to_string());
    args
}

/// Runs `args` (resuming from `from`), stopping with a savepoint after
/// `stop_ms` if given; returns the savepoint.
fn run(mut args: example::Args, from: Option<&Path>, stop_ms: Option<u64>) -> Option<PathBuf> {
    args.job.resume_from = from.map(|p| p.display().to_string());
    args.stop_with_savepoint_after_ms = stop_ms;
    let env = StreamEnv::new();
    example::build(&env, &args).unwrap();
    let (_, savepoint) = example::run(&env, &args).unwrap().unwrap();
    savepoint
}

fn state_verdict(env_args: &example::Args, savepoint: &Path) -> StateVerdict {
    let env = StreamEnv::new();
    example::build(&env, env_args).unwrap();
    let report = env.check_restore(savepoint, "schema-upgrade").unwrap();
    assert!(report.is_ok(), "{report}");
    let state = report
        .states
        .iter()
        .find(|s| s.uid == "counter" && s.state == "count");
    state
        .unwrap_or_else(|| panic!("no verdict on `count` in {report}"))
        .verdict
        .clone()
}

fn upgrades_exactly_once(backend: &str) {
    let dir = temp_dir(backend);
    let first = run(args(&dir, 1, backend, 2), None, Some(600)).expect("stopped with a savepoint");
    let stopped = example::audit(&dir.join("out"), RECORDS, KEYS, false).unwrap();
    assert!(
        stopped > 0 && stopped < RECORDS,
        "{stopped} lines after the first run"
    );

    // The pre-flight check, without running anything.
    assert_eq!(
        state_verdict(&args(&dir, 2, backend, 3), &first),
        StateVerdict::Restores {
            compatibility: Compatibility::AsIs
        }
    );
    assert_eq!(
        state_verdict(&args(&dir, 3, backend, 2), &first),
        StateVerdict::Restores {
            compatibility: Compatibility::AfterMigration { from: 1, to: 3 }
        }
    );

    let second =
        run(args(&dir, 2, backend, 3), Some(&first), Some(600)).expect("stopped with a savepoint");
    assert_eq!(
        state_verdict(&args(&dir, 3, backend, 2), &second),
        StateVerdict::Restores {
            compatibility: Compatibility::AfterMigration { from: 2, to: 3 }
        }
    );
    assert!(run(args(&dir, 3, backend, 2), Some(&second), None).is_none());
    let lines = example::audit(&dir.join("out"), RECORDS, KEYS, true).unwrap();
    assert_eq!(lines, RECORDS);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn v1_to_v2_to_v3_through_savepoints_is_exactly_once_on_the_heap() {
    upgrades_exactly_once("heap");
}

#[cfg(feature = "rocksdb")]
#[test]
fn v1_to_v2_to_v3_through_savepoints_is_exactly_once_on_rocksdb() {
    upgrades_exactly_once("rocksdb");
}

/// Version 1 with a field added that has no default (and no migration).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Required {
    count: u32,
    last_seen_ms: i64,
}

impl example::Count for Required {
    fn next(previous: Option<Self>, now_ms: i64) -> Self {
        Required {
            count: previous.map_or(0, |p| p.count) + 1,
            last_seen_ms: now_ms,
        }
    }
    fn count(&self) -> u64 {
        self.count.into()
    }
}

#[test]
fn a_snapshot_the_job_cannot_read_stops_it_before_it_starts() {
    let dir = temp_dir("refused");
    let first = run(args(&dir, 1, "heap", 2), None, Some(400)).expect("stopped with a savepoint");
    let committed = example::committed_lines(&dir.join("out")).unwrap().len();

    // A required field added without a migration.
    let env = StreamEnv::new();
    let mut resumed = args(&dir, 2, "heap", 2);
    resumed.job.resume_from = Some(first.display().to_string());
    resumed.job.configure(&env).unwrap();
    env.generate(RECORDS, |i| i)
        .uid("values")
        .key_by(|v: &u64| v % KEYS)
        .process(example::Counter {
            state: ValueStateDescriptor::<Required>::new("count").version(2),
        })
        .uid("counter")
        .write_text_files_exactly_once(dir.join("out"))
        .uid("output");
    let error = env
        .execute_blocking("schema-upgrade")
        .unwrap_err()
        .to_string();
    for part in [
        "counter",
        "state `count`",
        "last_seen_ms: added (i64)",
        "migrate_from",
    ] {
        assert!(error.contains(part), "{part} in {error}");
    }
    let report = env.check_restore(&first, "schema-upgrade").unwrap();
    assert!(!report.is_ok(), "{report}");
    assert!(report.to_string().contains("INCOMPATIBLE"), "{report}");

    // A savepoint of version 3 resumed by version 2.
    let third =
        run(args(&dir, 3, "heap", 2), Some(&first), Some(400)).expect("stopped with a savepoint");
    let before = example::committed_lines(&dir.join("out")).unwrap().len();
    assert!(before > committed);
    let mut downgrade = args(&dir, 2, "heap", 2);
    downgrade.job.resume_from = Some(third.display().to_string());
    let env = StreamEnv::new();
    example::build(&env, &downgrade).unwrap();
    let error = example::run(&env, &downgrade).unwrap_err().to_string();
    assert!(
        error.contains("version 3") && error.contains("version 2"),
        "{error}"
    );
    assert_eq!(
        example::committed_lines(&dir.join("out")).unwrap().len(),
        before
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts per key of any type, emitting `{"key":n,"count":c}` with the
/// key's number (`number(key)`).
#[derive(Clone)]
struct CountByKey<K> {
    count: ValueStateDescriptor<u64>,
    number: fn(&K) -> u64,
}

impl<K> weir::Lifecycle for CountByKey<K> {}

impl<K: weir::state::Key + weir::Data> weir::KeyedProcessFunction<K, u64, String>
    for CountByKey<K>
{
    fn process_element(
        &mut self,
        _value: u64,
        ctx: &mut weir::KeyedContext<K>,
        out: &mut weir::Collector<String>,
    ) -> Result<(), weir::UserError> {
        let number = (self.number)(ctx.current_key());
        let mut state = ctx.state(&self.count)?;
        let count = state.value().unwrap_or(0) + 1;
        state.update(count);
        out.collect(format!(r#"{{"key":{number},"count":{count}}}"#));
        Ok(())
    }
}

/// A job counting by key, keyed by `u64` (`None`) or by `"k<n>"` strings
/// migrated from the `u64`s with `migrate` (`Some`).
fn keyed_job(
    dir: &Path,
    backend: &str,
    parallelism: usize,
    from: Option<&Path>,
    migrate: Option<fn(u64) -> String>,
) -> StreamEnv {
    let mut args = args(dir, 1, backend, parallelism);
    args.job.resume_from = from.map(|p| p.display().to_string());
    let env = StreamEnv::new();
    args.job.configure(&env).unwrap();
    let values = env
        .generate(RECORDS, |i| {
            if i % 64 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            i
        })
        .uid("values")
        .set_parallelism(2);
    let counts = match migrate {
        None => values
            .key_by(|v: &u64| v % KEYS)
            .process(CountByKey::<u64> {
                count: ValueStateDescriptor::new("count"),
                number: |k| *k,
            }),
        Some(migrate) => values
            .key_by(|v: &u64| format!("k{}", v % KEYS))
            .migrate_keys_from::<u64>(migrate)
            .process(CountByKey::<String> {
                count: ValueStateDescriptor::new("count"),
                number: |k| k.trim_start_matches('k').parse().unwrap_or(u64::MAX),
            }),
    };
    counts
        .uid("counter")
        .write_text_files_exactly_once(dir.join("out"))
        .uid("output");
    env
}

fn stop_with_savepoint(env: &StreamEnv, after_ms: u64) -> PathBuf {
    futures::executor::block_on(async {
        let mut client = env.start("schema-upgrade").await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        let savepoint = client.stop_with_savepoint(None).await.unwrap();
        client.wait().await.unwrap();
        savepoint
    })
}

fn keys_migrate(backend: &str) {
    let dir = temp_dir(&format!("keys-{backend}"));
    let savepoint = stop_with_savepoint(&keyed_job(&dir, backend, 2, None, None), 300);
    let stopped = example::audit(&dir.join("out"), RECORDS, KEYS, false).unwrap();
    assert!(stopped > 0 && stopped < RECORDS, "{stopped} lines");

    // Another key type without a migration: refused before it starts.
    let env = StreamEnv::new();
    let mut refused = args(&dir, 1, backend, 2);
    refused.job.resume_from = Some(savepoint.display().to_string());
    refused.job.configure(&env).unwrap();
    env.generate(RECORDS, |i| i)
        .uid("values")
        .set_parallelism(2)
        .key_by(|v: &u64| format!("k{}", v % KEYS))
        .process(CountByKey::<String> {
            count: ValueStateDescriptor::new("count"),
            number: |_| 0,
        })
        .uid("counter")
        .write_text_files_exactly_once(dir.join("out"))
        .uid("output");
    let error = env
        .execute_blocking("schema-upgrade")
        .unwrap_err()
        .to_string();
    assert!(error.contains("key type"), "{error}");

    // Two old keys that become one: an error naming them.
    let collide = keyed_job(
        &dir,
        backend,
        3,
        Some(&savepoint),
        Some(|k| format!("k{}", k % 3)),
    );
    let error = collide
        .execute_blocking("schema-upgrade")
        .unwrap_err()
        .to_string();
    assert!(error.contains("not one-to-one"), "{error}");
    assert!(error.contains("-> \"k0\""), "{error}");

    // Migrated, at another parallelism: every key's counts continue.
    let migrated = keyed_job(
        &dir,
        backend,
        3,
        Some(&savepoint),
        Some(|k| format!("k{k}")),
    );
    migrated.execute_blocking("schema-upgrade").unwrap();
    assert_eq!(
        example::audit(&dir.join("out"), RECORDS, KEYS, true).unwrap(),
        RECORDS
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keys_migrated_to_another_type_are_rehashed_and_counted_exactly_once_on_the_heap() {
    keys_migrate("heap");
}

#[cfg(feature = "rocksdb")]
#[test]
fn keys_migrated_to_another_type_are_rehashed_and_counted_exactly_once_on_rocksdb() {
    keys_migrate("rocksdb");
}

/// Counts per `u64` key in a state of the given type (not declared).
#[derive(Clone)]
struct Undeclared<V> {
    count: ValueStateDescriptor<V>,
    next: fn(Option<V>) -> V,
}

impl<V> weir::Lifecycle for Undeclared<V> {}

impl<V: weir::state::StateData> weir::KeyedProcessFunction<u64, u64, String> for Undeclared<V> {
    fn process_element(
        &mut self,
        _value: u64,
        ctx: &mut weir::KeyedContext<u64>,
        _out: &mut weir::Collector<String>,
    ) -> Result<(), weir::UserError> {
        let mut state = ctx.state(&self.count)?;
        let next = (self.next)(state.value());
        state.update(next);
        Ok(())
    }
}

#[test]
fn an_undeclared_state_the_job_cannot_read_fails_the_job_once_naming_it() {
    let dir = temp_dir("undeclared");
    let job = |from: Option<&Path>, string: bool| {
        let env = StreamEnv::new();
        let mut a = args(&dir, 1, "heap", 2);
        a.job.resume_from = from.map(|p| p.display().to_string());
        a.job.restart = Some("fixed-delay:3:0".into());
        a.job.configure(&env).unwrap();
        let keyed = env
            .generate(RECORDS, |i| {
                if i % 64 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                i
            })
            .uid("values")
            .set_parallelism(2)
            .key_by(|v: &u64| v % KEYS);
        let counts = match string {
            false => keyed.process(Undeclared::<u64> {
                count: ValueStateDescriptor::new("count"),
                next: |n| n.unwrap_or(0) + 1,
            }),
            true => keyed.process(Undeclared::<String> {
                count: ValueStateDescriptor::new("count"),
                next: |s| s.unwrap_or_default() + "x",
            }),
        };
        counts.uid("counter").discard();
        env
    };
    let savepoint = stop_with_savepoint(&job(None, false), 300);
    let error = job(Some(&savepoint), true)
        .execute_blocking("schema-upgrade")
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("state `count` of operator `counter` cannot be restored"),
        "{text}"
    );
    assert!(text.contains("the value: u64 -> String"), "{text}");
    // Not retried: a restart cannot fix it.
    assert!(!error.is_retryable(), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

//! Checkpoints, savepoints and RocksDB's shared files on an S3-compatible
//! store (cargo feature `s3`), against a real server: each test starts its
//! own moto server (`moto_server`, PyPI's `moto[server]`) on a free
//! loopback port. The exactly-once example runs with its checkpoint and
//! savepoint directories as `s3://` URLs, through injected failures, a stop
//! with a savepoint and resumes that read nothing but the bucket. Without
//! the server the tests skip with a message, unless `WEIR_REQUIRE_SERVERS`
//! is set (CI), where they fail.
#![cfg(feature = "s3")]

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/exactly_once.rs"]
mod example;
#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "support/servers.rs"]
mod servers;

use std::path::{Path, PathBuf};

use s3_server::Server;
use weir::location::{configure_s3_bucket, S3Options};
use weir::StreamEnv;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-s3-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const KEYS: u64 = 53;

fn args(server: &Server, out: &Path, records: u64, parallelism: usize) -> example::Args {
    example::Args {
        records,
        keys: KEYS,
        mode: "exactly-once".into(),
        unaligned: false,
        rate: None,
        fail_at: Vec::new(),
        output: out.to_path_buf(),
        stop_with_savepoint_after_ms: None,
        audit: false,
        job: weir::cli::JobArgs {
            parallelism: Some(parallelism),
            checkpoint_interval_ms: Some(30),
            state_backend: Some("heap".into()),
            restart: Some("fixed-delay:10:0".into()),
            checkpoint_dir: Some(server.url("checkpoints")),
            resume_from: None,
            savepoint_dir: Some(server.url("savepoints")),
            ..Default::default()
        },
    }
}

fn run(args: &example::Args) -> (weir::JobResult, Option<PathBuf>) {
    let env = StreamEnv::new();
    env.set_batch_size(64);
    example::build(&env, args).unwrap();
    example::run(&env, args).unwrap().unwrap()
}

/// The lineage directories under `checkpoints/` (by their `_lineage` record).
fn lineages(server: &Server) -> Vec<String> {
    server
        .keys("checkpoints/")
        .iter()
        .filter_map(|k| k.strip_suffix("/_lineage"))
        .filter_map(|k| k.strip_prefix("checkpoints/"))
        .map(str::to_string)
        .collect()
}

/// The ids of the checkpoints of `lineage` holding `_metadata`.
fn complete_checkpoints(server: &Server, lineage: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = server
        .keys(&format!("checkpoints/{lineage}/chk-"))
        .iter()
        .filter_map(|k| k.strip_suffix("/_metadata"))
        .filter_map(|k| k.rsplit_once("chk-"))
        .filter_map(|(_, id)| id.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn exactly_once_through_failures_with_checkpoints_only_on_s3() {
    let Some(server) = Server::start("failures") else {
        return;
    };
    let out = temp_dir("failures");
    let records = 40_000;
    let mut first = args(&server, &out, records, 2);
    first.fail_at = vec![9_000, 23_000, 31_000];
    let (result, _) = run(&first);
    assert!(result.restarts >= 3, "restarts: {}", result.restarts);
    assert_eq!(
        example::audit(&out, records, KEYS).unwrap(),
        records,
        "every record counted exactly once"
    );
    // The bucket holds the lineage, its retained checkpoints (3, the
    // example's `checkpoint.retained`) and nothing of discarded ones.
    let lineages = lineages(&server);
    assert_eq!(lineages.len(), 1, "{lineages:?}");
    let complete = complete_checkpoints(&server, &lineages[0]);
    assert!(
        !complete.is_empty() && complete.len() <= 3,
        "retained: {complete:?}"
    );
    let dirs: std::collections::BTreeSet<String> = server
        .keys(&format!("checkpoints/{}/chk-", lineages[0]))
        .iter()
        .filter_map(|k| k.split('/').nth(2).map(str::to_string))
        .collect();
    assert_eq!(
        dirs.len(),
        complete.len(),
        "only complete, retained checkpoints are left: {dirs:?}"
    );

    // `weir checkpoints` and `weir inspect` read the bucket.
    let listing = weir::inspect::list_checkpoints(Path::new(&server.url("checkpoints"))).unwrap();
    let listed: Vec<u64> = listing.snapshots.iter().map(|s| s.id).collect();
    assert_eq!(listed, complete, "{listing}");
    let newest = Path::new(&server.url("checkpoints"))
        .join(&lineages[0])
        .join(format!("chk-{}", complete.last().unwrap()));
    let report = weir::inspect::inspect(&newest).unwrap();
    assert!(
        report.operators.iter().any(|o| o.state_bytes > 0),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The key of the object store URL `url` in `server`'s bucket.
fn key_of(server: &Server, url: &Path) -> String {
    let shown = url.display().to_string();
    shown
        .strip_prefix(&format!("s3://{}/", server.bucket))
        .unwrap_or_else(|| panic!("{shown} is not in bucket {}", server.bucket))
        .to_string()
}

#[test]
fn savepoints_on_s3_resume_by_url_and_as_latest_at_other_parallelisms() {
    let Some(server) = Server::start("savepoint") else {
        return;
    };
    let out = temp_dir("savepoint");
    let records = 60_000;
    let mut first = args(&server, &out, records, 2);
    first.rate = Some(50_000);
    first.stop_with_savepoint_after_ms = Some(300);
    let (_, savepoint) = run(&first);
    let savepoint = savepoint.expect("stopped with a savepoint");
    let shown = savepoint.display().to_string();
    assert!(
        shown.starts_with(&server.url("savepoints/savepoint-")),
        "{shown}"
    );
    let key = key_of(&server, &savepoint);
    assert!(
        server.keys(&key).contains(&format!("{key}/_metadata")),
        "{:?}",
        server.keys(&key)
    );
    assert!(
        example::audit(&out, records, KEYS).is_err(),
        "stopped part-way"
    );
    let report = weir::inspect::inspect(&savepoint).unwrap();
    assert_eq!(
        report.kind,
        weir::inspect::SnapshotKind::Savepoint,
        "{report}"
    );

    // Resumed from the savepoint by its URL at parallelism 3, and stopped
    // with a second savepoint.
    let mut second = args(&server, &out, records, 3);
    second.job.resume_from = Some(shown.clone());
    second.rate = Some(50_000);
    second.stop_with_savepoint_after_ms = Some(300);
    let (result, again) = run(&second);
    assert_eq!(result.restarts, 0);
    let again = again.expect("stopped with a second savepoint");
    assert_ne!(again, savepoint);

    // `latest` finds the second savepoint through the lineage record in the
    // bucket, at parallelism 1; the output is then complete, exactly once.
    let mut third = args(&server, &out, records, 1);
    third.job.resume_from = Some("latest".into());
    let (result, _) = run(&third);
    assert_eq!(result.restarts, 0);
    assert_eq!(example::audit(&out, records, KEYS).unwrap(), records);
    for savepoint in [&savepoint, &again] {
        let key = key_of(&server, savepoint);
        assert!(
            server.keys(&key).contains(&format!("{key}/_metadata")),
            "a savepoint is never deleted"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bucket_that_cannot_be_written_stops_the_job_before_it_starts_naming_the_url() {
    let Some(server) = Server::start("unwritable") else {
        return;
    };
    let out = temp_dir("unwritable");
    // A bucket the server does not have.
    let missing = format!("{}-missing", server.bucket);
    configure_s3_bucket(&missing, server.options());
    let mut job = args(&server, &out, 1_000, 1);
    job.job.checkpoint_dir = Some(format!("s3://{missing}/checkpoints"));
    let env = StreamEnv::new();
    example::build(&env, &job).unwrap();
    let err = env
        .execute_blocking("exactly-once")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("s3://{missing}/checkpoints"))
            && err.contains("checkpoint directory"),
        "{err}"
    );
    // A store nobody answers at: the request is retried, then the job says so.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("{}-unreachable", server.bucket);
    configure_s3_bucket(
        &unreachable,
        S3Options {
            endpoint: Some(format!("http://127.0.0.1:{closed}")),
            max_retries: 1,
            ..server.options()
        },
    );
    job.job.checkpoint_dir = Some(format!("s3://{unreachable}/checkpoints"));
    let env = StreamEnv::new();
    example::build(&env, &job).unwrap();
    let err = env
        .execute_blocking("exactly-once")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("s3://{unreachable}/checkpoints")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_damaged_snapshot_on_s3_is_refused_naming_its_object() {
    let Some(server) = Server::start("damaged") else {
        return;
    };
    let out = temp_dir("damaged");
    let records = 30_000;
    let mut first = args(&server, &out, records, 2);
    first.rate = Some(40_000);
    first.stop_with_savepoint_after_ms = Some(200);
    let (_, savepoint) = run(&first);
    let savepoint = savepoint.unwrap();
    let key = key_of(&server, &savepoint);
    let state = server
        .keys(&key)
        .into_iter()
        .find(|k| k.ends_with(".state"))
        .expect("a state object");
    let damaged = PathBuf::from(format!("s3://{}/{state}", server.bucket));
    weir::location::write(&damaged, b"not a state file").unwrap();
    let mut second = args(&server, &temp_dir("damaged-2"), records, 2);
    second.job.resume_from = Some(savepoint.display().to_string());
    let env = StreamEnv::new();
    example::build(&env, &second).unwrap();
    let err = env
        .execute_blocking("exactly-once")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("s3://{}/{state}", server.bucket)),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn the_weir_command_lists_and_inspects_checkpoints_in_a_bucket() {
    let Some(server) = Server::start("command") else {
        return;
    };
    let out = temp_dir("command");
    run(&args(&server, &out, 20_000, 2));
    // The bucket through the AWS_* variables, or through weir's [s3] keys.
    let aws = [
        ("AWS_ENDPOINT", server.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "weir-test"),
        ("AWS_SECRET_ACCESS_KEY", "weir-test-secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    let weir_keys = [
        ("WEIR_S3_ENDPOINT", server.endpoint.as_str()),
        ("WEIR_S3_ACCESS_KEY", "weir-test"),
        ("WEIR_S3_SECRET_KEY", "weir-test-secret"),
    ];
    let weir_command_with = |vars: &[(&str, &str)], args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    let weir_command = |args: &[&str]| weir_command_with(&aws, args);
    let root = server.url("checkpoints");
    let (ok, text) = weir_command(&["checkpoints", &root]);
    assert!(ok && text.contains("chk-"), "{text}");
    let (ok, text) = weir_command_with(&weir_keys, &["checkpoints", &root]);
    assert!(ok && text.contains("chk-"), "{text}");
    let lineage = &lineages(&server)[0];
    let newest = complete_checkpoints(&server, lineage).pop().unwrap();
    let checkpoint = format!("{root}/{lineage}/chk-{newest}");
    let (ok, text) = weir_command(&["inspect", &checkpoint]);
    assert!(ok && text.contains("count-and-sum"), "{text}");
    let (ok, text) = weir_command(&[
        "query",
        &checkpoint,
        "--uid",
        "count-and-sum",
        "--state",
        "count-and-sum",
        "--all",
        "--format",
        "json",
    ]);
    assert!(ok, "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with('{')).count() as u64,
        KEYS,
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// RocksDB's incremental checkpoints upload each SST file once, to the
/// lineage's `shared/` prefix, and restores after failures download them.
#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_incremental_checkpoints_share_their_files_in_the_bucket() {
    let Some(server) = Server::start("rocksdb") else {
        return;
    };
    let out = temp_dir("rocksdb");
    let records = 40_000;
    let mut job = args(&server, &out, records, 2);
    job.job.state_backend = Some("rocksdb".into());
    job.fail_at = vec![12_000, 27_000];
    let (result, _) = run(&job);
    assert!(result.restarts >= 2, "restarts: {}", result.restarts);
    assert_eq!(example::audit(&out, records, KEYS).unwrap(), records);

    let lineage = &lineages(&server)[0];
    let shared: Vec<String> = server
        .keys(&format!("checkpoints/{lineage}/shared/"))
        .into_iter()
        .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert!(
        shared.iter().any(|name| name.ends_with(".sst")),
        "{shared:?}"
    );
    let mut referenced = std::collections::BTreeSet::new();
    for key in server.keys(&format!("checkpoints/{lineage}/chk-")) {
        if key.ends_with(".refs") {
            let url = PathBuf::from(format!("s3://{}/{key}", server.bucket));
            let text = weir::location::read_to_string(&url).unwrap();
            referenced.extend(text.lines().map(str::to_string));
        }
    }
    // Nothing a retained checkpoint needs is gone. (A checkpoint aborted by a
    // failure may leave a file nobody refers to, as on a local disk; the
    // deletion of released files is checked exactly below.)
    for name in &referenced {
        assert!(shared.contains(name), "{name} is referred to but missing");
    }
    // The newest checkpoint reads back: its keyed state from the shared files.
    let newest = complete_checkpoints(&server, lineage).pop().unwrap();
    let checkpoint = Path::new(&server.url("checkpoints"))
        .join(lineage)
        .join(format!("chk-{newest}"));
    let rows = weir::inspect::query_keyed_state(
        &checkpoint,
        "count-and-sum",
        "count-and-sum",
        &weir::inspect::KeySelection::All,
    )
    .unwrap();
    assert_eq!(rows.len() as u64, KEYS);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_bucket_root_is_a_checkpoint_directory_too() {
    let Some(server) = Server::start("root") else {
        return;
    };
    let out = temp_dir("root");
    let records = 20_000;
    let mut job = args(&server, &out, records, 2);
    job.job.checkpoint_dir = Some(format!("s3://{}/", server.bucket));
    job.fail_at = vec![7_000];
    let (result, _) = run(&job);
    assert_eq!(result.restarts, 1);
    assert_eq!(example::audit(&out, records, KEYS).unwrap(), records);
    let lineage: Vec<String> = server
        .keys("")
        .iter()
        .filter_map(|k| k.strip_suffix("/_lineage").map(str::to_string))
        .collect();
    assert_eq!(lineage.len(), 1, "{:?}", server.keys(""));
    let listing =
        weir::inspect::list_checkpoints(Path::new(&format!("s3://{}", server.bucket))).unwrap();
    assert!(!listing.snapshots.is_empty(), "{listing}");
    // The probe object is gone.
    assert!(
        !server.keys("").iter().any(|k| k.contains(".weir-probe")),
        "{:?}",
        server.keys("")
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Shared files in a bucket are counted by the checkpoints that refer to
/// them: discarding a completed checkpoint deletes the ones no other
/// checkpoint (complete or still being written) refers to; discarding an
/// unfinished one deletes none.
#[test]
fn shared_files_in_a_bucket_are_deleted_when_no_checkpoint_refers_to_them() {
    use weir_actors::checkpoint::metadata::{
        CheckpointMetadata, OperatorMetadata, StateHandle, SubtaskStateMetadata,
    };
    use weir_actors::checkpoint::{CheckpointStorage, FsStorage};
    let Some(server) = Server::start("shared") else {
        return;
    };
    let root = PathBuf::from(server.url("ck"));
    let storage = FsStorage::new(&root, "job");
    let shared = storage.shared_dir().unwrap();
    for name in ["a.sst", "b.sst", "c.sst", "orphan.sst"] {
        weir::location::write(&shared.join(name), name.as_bytes()).unwrap();
    }
    let metadata = |id: u64, handle: StateHandle| CheckpointMetadata {
        version: 1,
        job_name: "j".into(),
        job_id: "id".into(),
        lineage: "job".into(),
        checkpoint_id: id,
        savepoint: false,
        trigger_time_ms: 1,
        completion_time_ms: 2,
        operators: vec![OperatorMetadata {
            uid: "u".into(),
            name: "n".into(),
            parallelism: 1,
            max_parallelism: 128,
            key_type: None,
        }],
        subtasks: vec![SubtaskStateMetadata {
            operators: vec!["u".into()],
            subtask: 0,
            handle,
            in_flight_bytes: 0,
        }],
    };
    for (id, files) in [(1, ["a.sst", "b.sst"]), (2, ["b.sst", "c.sst"])] {
        let refs: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        storage.write_shared_refs(id, "t-0.state", &refs).unwrap();
        let handle = storage.write_state(id, "t-0.state", b"x").unwrap();
        storage.write_metadata(&metadata(id, handle)).unwrap();
    }
    // An unfinished checkpoint refers to c.sst too.
    storage
        .write_shared_refs(3, "t-0.state", &["c.sst".to_string()])
        .unwrap();
    let left = || -> Vec<String> {
        server
            .keys("ck/job/shared/")
            .iter()
            .map(|k| k.rsplit('/').next().unwrap_or_default().to_string())
            .collect()
    };
    storage.discard(1).unwrap();
    assert_eq!(left(), ["b.sst", "c.sst", "orphan.sst"]);
    storage.discard(2).unwrap();
    assert_eq!(
        left(),
        ["c.sst", "orphan.sst"],
        "c.sst: checkpoint 3 refers to it"
    );
    storage.discard(3).unwrap();
    assert_eq!(
        left(),
        ["c.sst", "orphan.sst"],
        "an unfinished checkpoint releases none"
    );
    assert!(
        server.keys("ck/job/chk-").is_empty(),
        "{:?}",
        server.keys("ck/job/")
    );
    assert_eq!(storage.retained_ids().unwrap(), Vec::<u64>::new());
}

//! The output of `examples/dedup.rs` (event-time state TTL), pinned by a
//! snapshot on the bundled events, and checked to be the same at every
//! parallelism, batch size and state backend; the parser's errors name the
//! file and the line.

#[allow(dead_code)] // the example's `main` and its argument parser are not used here
#[path = "../examples/dedup.rs"]
mod dedup;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use weir::{JobError, StreamEnv};

const TTL: Duration = Duration::from_millis(dedup::DEFAULT_TTL_MS);

/// The emitted events as the example prints them, sorted.
fn run_on(env: &StreamEnv, input: &Path, ttl: Duration) -> Result<Vec<String>, JobError> {
    let unique = dedup::unique_events(env, input, ttl).collect();
    env.execute_blocking("dedup")?;
    let mut lines: Vec<String> = unique
        .take()
        .iter()
        .map(|event| serde_json::to_string(event).unwrap())
        .collect();
    lines.sort();
    Ok(lines)
}

fn run(input: &Path, ttl: Duration) -> Result<Vec<String>, JobError> {
    run_on(&StreamEnv::with_parallelism(2), input, ttl)
}

fn csv(lines: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(lines.as_bytes()).unwrap();
    file
}

#[test]
fn dedup_emits_the_first_event_of_an_id_and_the_first_after_its_state_expired() {
    let lines = run(Path::new(dedup::EVENTS), TTL).unwrap();
    // Emitted: every id's first event; order-c at ...070000 (the watermark
    // reached its expiry exactly), order-b at ...095000 (expired at ...090000,
    // the watermark is ...092000), and order-a, order-c and order-d at
    // ...200000. Dropped: order-a at ...002000, ...061000 (each refreshing
    // it) and ...125000, order-b at ...030000, order-f's second event.
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn dedup_does_not_depend_on_parallelism_or_batching() {
    let expected = run(Path::new(dedup::EVENTS), TTL).unwrap();
    for parallelism in [1, 3] {
        let env = StreamEnv::with_parallelism(parallelism);
        let lines = run_on(&env, Path::new(dedup::EVENTS), TTL).unwrap();
        assert_eq!(lines, expected, "parallelism {parallelism}");
    }
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(1);
    assert_eq!(
        run_on(&env, Path::new(dedup::EVENTS), TTL).unwrap(),
        expected
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn dedup_gives_the_same_output_on_rocksdb() {
    let expected = run(Path::new(dedup::EVENTS), TTL).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_state_backend(weir::state::RocksDbBackend::new().with_local_dirs([dir.path()]));
    assert_eq!(
        run_on(&env, Path::new(dedup::EVENTS), TTL).unwrap(),
        expected
    );
}

#[test]
fn the_subtask_metrics_count_the_expired_ids_of_the_seen_state() {
    let env = StreamEnv::with_parallelism(2);
    let unique = dedup::unique_events(&env, Path::new(dedup::EVENTS), TTL).collect();
    let result = env.execute_blocking("dedup").unwrap();
    assert_eq!(unique.take().len(), 11);
    let states: Vec<_> = result.state_metrics().collect();
    assert_eq!(
        states.len(),
        2,
        "one per subtask of the de-duplicator: {states:?}"
    );
    for state in &states {
        assert_eq!(state.operator, "Deduplicate");
        assert_eq!(state.state, "seen");
        assert_eq!(
            state.ttl.as_deref(),
            Some("ttl 60000 ms, event time, OnCreateAndWrite, NeverReturnExpired")
        );
        assert_eq!(state.expired_by_compaction, 0);
    }
    // Expired and read again: order-c at ...070000, order-b at ...095000,
    // order-a, order-c and order-d at ...200000 (an incremental cleanup may
    // have removed some before their read; at most the 6 ids exist).
    let expired: u64 = states.iter().map(|s| s.expired()).sum();
    assert!((5..=11).contains(&expired), "{states:?}");
    assert!(states.iter().map(|s| s.expired_on_read).sum::<u64>() >= 1);
    let stored: u64 = states.iter().map(|s| s.stored_keys.unwrap()).sum();
    assert_eq!(
        stored + expired,
        6 + 5,
        "every write is stored until expired"
    );
}

#[test]
fn the_time_to_live_decides_what_is_a_duplicate() {
    // The watermark an event sees is the previous event's timestamp.
    let file = csv("x,0\ny,900\nx,1000\nx,2000\ny,5000\nx,5500\n");
    let emitted = |ttl_ms| -> Vec<String> {
        run(file.path(), Duration::from_millis(ttl_ms))
            .unwrap()
            .into_iter()
            .filter(|line| line.contains("\"x\""))
            .collect()
    };
    let x = |ts: i64| format!(r#"{{"id":"x","timestamp_ms":{ts}}}"#);
    // TTL 1000: x at 1000 sees the watermark 900 (x expires at 1000): dropped,
    // and x now expires at 2000; x at 2000 sees 1000: dropped (expires at
    // 3000); x at 5500 sees 5000: emitted.
    assert_eq!(emitted(1000), vec![x(0), x(5500)]);
    // TTL 3500: every event refreshes x, and x at 5500 sees 5000 < 5500.
    assert_eq!(emitted(3500), vec![x(0)]);
    // TTL 500: x at 1000 sees 900 >= 500: emitted; x at 2000 sees 1000 <
    // 1500: dropped; x at 5500 sees 5000 >= 2500: emitted.
    assert_eq!(emitted(500), vec![x(0), x(1000), x(5500)]);
}

#[test]
fn a_malformed_event_is_an_error_naming_the_file_and_line() {
    let file = csv("# a comment\n\nid-1,5\nid-1,6,7\n");
    let error = run(file.path(), TTL).unwrap_err().to_string();
    assert!(
        error.contains(&format!("{}:4:", file.path().display())),
        "{error}"
    );
    assert!(error.contains("expected 2 fields"), "{error}");

    let file = csv("id-1,5\nid-2,four\n");
    let error = run(file.path(), TTL).unwrap_err().to_string();
    assert!(
        error.contains(&format!("{}:2:", file.path().display())),
        "{error}"
    );
    assert!(error.contains("bad timestamp `four`"), "{error}");

    let file = csv("id-1,5\nid-1,4\n");
    let error = run(file.path(), TTL).unwrap_err().to_string();
    assert!(error.contains("sorted by timestamp"), "{error}");
}

#[test]
fn events_parse_from_csv_fields() {
    assert_eq!(
        dedup::parse_event(" id-7 , 1700000000000 "),
        Ok(dedup::Event {
            id: "id-7".into(),
            timestamp_ms: 1_700_000_000_000,
        })
    );
    for bad in ["", "a", "a,1,2", ",1", "a,x", "a,1.5"] {
        assert!(dedup::parse_event(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn an_invalid_time_to_live_fails_the_job_at_once_whatever_the_restart_strategy() {
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(weir::RestartStrategy::FixedDelay {
        attempts: 3,
        delay: Duration::ZERO,
    });
    let unique = dedup::unique_events(&env, Path::new(dedup::EVENTS), Duration::ZERO).collect();
    let error = futures::executor::block_on(async {
        let mut client = env.start("dedup").await.unwrap();
        let error = client.wait().await.unwrap_err();
        assert_eq!(client.restarts(), 0, "no restart can fix a configuration");
        error
    });
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("invalid state time-to-live"), "{message}");
    assert!(message.contains("state `seen`"), "{message}");
    assert!(message.contains("at least 1 ms"), "{message}");
    assert!(unique.take().is_empty());
}

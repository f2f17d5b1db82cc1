//! The examples' outputs on their bundled inputs, pinned by snapshots, and the
//! examples' building blocks.
//!
//! Each example's module is compiled into this test (by path, as
//! `tests/pipeline_output.rs` does), so the tests run exactly the pipelines the
//! examples declare, in-process, into collecting sinks:
//! - `word_count`: the `word<TAB>count` lines for the bundled sample, sorted;
//!   the total of the counts equals the number of words;
//! - `fraud_detection`: the alerts for the bundled transactions, sorted (four:
//!   see the pattern per account in `examples/data/transactions.csv`); the
//!   parser's errors name the file and the line;
//! - `buffering_sink`: flushes at the threshold and at the end, and its buffer
//!   survives a snapshot and a restore through the operator harness, at the
//!   same parallelism and at another (even-split redistribution).

#[allow(dead_code)] // the example's `main` and its argument parser are not used here
#[path = "../examples/word_count.rs"]
mod word_count;

#[allow(dead_code)]
#[path = "../examples/fraud_detection.rs"]
mod fraud_detection;

#[allow(dead_code)]
#[path = "../examples/buffering_sink.rs"]
mod buffering_sink;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::sink::SinkOperator;
use weir::testing::OperatorHarness;
use weir::{JobError, StreamEnv};

// ------------------------------------------------------------------ word count

#[test]
fn word_count_prints_every_word_of_the_sample_with_its_count() {
    let env = StreamEnv::with_parallelism(2);
    let running = word_count::word_counts(&env, Path::new(word_count::SAMPLE)).collect();
    env.execute_blocking("word-count").unwrap();
    let running = running.take();

    let text = std::fs::read_to_string(word_count::SAMPLE).unwrap();
    let words: Vec<String> = text.lines().flat_map(word_count::words).collect();
    assert_eq!(running.len(), words.len(), "one running count per word");

    let counts = word_count::final_counts(running);
    assert_eq!(counts.values().sum::<u64>(), words.len() as u64);
    assert_eq!(
        counts["weir"],
        words.iter().filter(|w| *w == "weir").count() as u64
    );
    insta::assert_snapshot!(word_count::lines(&counts).join("\n"));
}

#[test]
fn word_count_takes_the_largest_running_count_of_each_word() {
    let running = vec![
        ("b".to_string(), 1),
        ("a".to_string(), 1),
        ("b".to_string(), 2),
        ("a".to_string(), 2),
        ("a".to_string(), 3),
    ];
    let counts = word_count::final_counts(running);
    assert_eq!(word_count::lines(&counts), vec!["a\t3", "b\t2"]);
}

// ------------------------------------------------------------- fraud detection

fn run_fraud_detection(input: &Path) -> Result<Vec<String>, JobError> {
    let env = StreamEnv::with_parallelism(2);
    let alerts = fraud_detection::alerts(&env, input).collect();
    env.execute_blocking("fraud-detection")?;
    let mut lines: Vec<String> = alerts
        .take()
        .iter()
        .map(|alert| serde_json::to_string(alert).unwrap())
        .collect();
    lines.sort();
    Ok(lines)
}

#[test]
fn fraud_detection_alerts_on_the_bundled_transactions() {
    let lines = run_fraud_detection(Path::new(fraud_detection::TRANSACTIONS)).unwrap();
    // Alerts for acc-1002 (0.99 then 501.00 59.9 s later), acc-1003 (0.50 then
    // 725.00), acc-1004 (0.10, 0.30 restarting the window, 600.00 57 s after
    // it) and acc-1005 (0.01 then 1200.00); none for acc-1005's 880.00 after
    // 75 s, acc-1007's 950.00 after a 12.40 in between, acc-1006's 1.00 (not
    // small) and acc-1002's 500.00 (not large).
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn fraud_detection_is_independent_of_batching() {
    let expected = run_fraud_detection(Path::new(fraud_detection::TRANSACTIONS)).unwrap();
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(1);
    let alerts = fraud_detection::alerts(&env, Path::new(fraud_detection::TRANSACTIONS)).collect();
    env.execute_blocking("fraud-detection").unwrap();
    let mut lines: Vec<String> = alerts
        .take()
        .iter()
        .map(|alert| serde_json::to_string(alert).unwrap())
        .collect();
    lines.sort();
    assert_eq!(lines, expected);
}

fn csv(lines: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(lines.as_bytes()).unwrap();
    file
}

#[test]
fn fraud_detection_keeps_the_window_even_when_no_watermark_closed_it_yet() {
    // The large one comes 60 s after the small one, before any watermark
    // reached the end of the window: no alert. 59.999 s: an alert.
    let file = csv("a,1000,0.50\nb,1000,0.50\nb,60999,900.00\na,61000,900.00\n");
    let lines = run_fraud_detection(file.path()).unwrap();
    assert_eq!(
        lines,
        vec![r#"{"account_id":"b","timestamp_ms":60999,"amount":900.0}"#]
    );
}

#[test]
fn a_malformed_transaction_is_an_error_naming_the_file_and_line() {
    let file = csv("# a comment\n\nacc-1,5,0.5\nacc-1,6\n");
    let error = run_fraud_detection(file.path()).unwrap_err().to_string();
    let place = format!("{}:4:", file.path().display());
    assert!(error.contains(&place), "{error}");
    assert!(error.contains("expected 3 fields"), "{error}");

    let file = csv("acc-1,5,0.5\nacc-1,6,-3\n");
    let error = run_fraud_detection(file.path()).unwrap_err().to_string();
    assert!(
        error.contains(&format!("{}:2:", file.path().display())),
        "{error}"
    );

    let file = csv("acc-1,5,0.5\nacc-1,4,3\n");
    let error = run_fraud_detection(file.path()).unwrap_err().to_string();
    assert!(
        error.contains(&format!("{}:2:", file.path().display())),
        "{error}"
    );
    assert!(error.contains("sorted by timestamp"), "{error}");
}

#[test]
fn transactions_parse_from_csv_fields() {
    assert_eq!(
        fraud_detection::parse_transaction("acc-7, 1700000000000, 12.50"),
        Ok(fraud_detection::Transaction {
            account_id: "acc-7".into(),
            timestamp_ms: 1_700_000_000_000,
            amount: 12.5,
        })
    );
    for bad in ["", "a,1", "a,1,2,3", ",1,2", "a,x,2", "a,1,x", "a,1,NaN"] {
        assert!(fraud_detection::parse_transaction(bad).is_err(), "{bad:?}");
    }
}

// -------------------------------------------------------------- buffering sink

type Flushes = Arc<Mutex<Vec<(usize, Vec<String>)>>>;

/// A sink flushing `threshold` at a time into the returned log.
fn recording_sink(threshold: usize) -> (buffering_sink::BufferingSink<String>, Flushes) {
    let flushes: Flushes = Arc::default();
    let log = flushes.clone();
    let sink = buffering_sink::BufferingSink::new(threshold, move |subtask, records| {
        log.lock().unwrap().push((subtask, records));
        Ok(())
    });
    (sink, flushes)
}

type SinkHarness = OperatorHarness<String, ()>;

fn sink_harness(
    threshold: usize,
    subtask: usize,
    parallelism: usize,
    restored: Option<OperatorSnapshot>,
) -> (SinkHarness, Flushes) {
    let (sink, flushes) = recording_sink(threshold);
    let mut h = OperatorHarness::new(SinkOperator(sink), subtask, parallelism, 128);
    h.open(restored).unwrap();
    (h, flushes)
}

fn events(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("e{i}")).collect()
}

fn take(flushes: &Flushes) -> Vec<(usize, Vec<String>)> {
    std::mem::take(&mut *flushes.lock().unwrap())
}

#[test]
fn the_buffering_sink_flushes_at_the_threshold_and_at_the_end() {
    let (mut h, flushes) = sink_harness(4, 0, 1, None);
    h.process(events(0..3)).unwrap();
    assert!(take(&flushes).is_empty());
    h.process(events(3..9)).unwrap();
    assert_eq!(take(&flushes), vec![(0, events(0..4)), (0, events(4..8))]);
    h.end_input().unwrap();
    assert_eq!(take(&flushes), vec![(0, events(8..9))]);
}

#[test]
fn the_buffering_sink_restores_its_buffer_from_a_snapshot() {
    let (mut h, flushes) = sink_harness(5, 0, 1, None);
    h.process(events(0..7)).unwrap();
    assert_eq!(take(&flushes), vec![(0, events(0..5))]);
    let snapshot = h.snapshot(1).unwrap();
    // What the old instance does after the snapshot is not in it.
    h.process(events(100..102)).unwrap();

    let (mut restored, flushes) = sink_harness(5, 0, 1, Some(snapshot));
    restored.process(events(7..10)).unwrap();
    assert_eq!(
        take(&flushes),
        vec![(0, events(5..10))],
        "the two buffered records come first"
    );
    restored.process(events(10..11)).unwrap();
    restored.end_input().unwrap();
    assert_eq!(take(&flushes), vec![(0, events(10..11))]);
}

#[test]
fn the_buffering_sink_buffers_are_dealt_out_on_a_change_of_parallelism() {
    // Two subtasks buffer 3 and 2 records.
    let (mut a, _) = sink_harness(10, 0, 2, None);
    let (mut b, _) = sink_harness(10, 1, 2, None);
    a.process(events(0..3)).unwrap();
    b.process(events(3..5)).unwrap();
    let old = vec![a.snapshot(1).unwrap(), b.snapshot(1).unwrap()];

    // Three subtasks: 5 records dealt 2, 2, 1; nothing lost, nothing twice.
    let mut flushed = Vec::new();
    for (i, snapshot) in redistribute(&old, 3, 128).into_iter().enumerate() {
        let (mut h, flushes) = sink_harness(10, i, 3, Some(snapshot));
        h.end_input().unwrap();
        let mut got = take(&flushes);
        assert_eq!(got.len(), 1, "subtask {i} flushes its share at the end");
        let (subtask, records) = got.remove(0);
        assert_eq!(subtask, i);
        assert_eq!(records.len(), [2, 2, 1][i], "subtask {i}");
        flushed.extend(records);
    }
    assert_eq!(flushed, events(0..5));
}

#[test]
fn the_buffering_sink_runs_in_a_job() {
    let (sink, flushes) = recording_sink(7);
    let env = StreamEnv::with_parallelism(2);
    env.generate(50, |i| format!("e{i}")).add_sink(sink);
    env.execute_blocking("buffering").unwrap();
    let flushes = take(&flushes);
    let mut all: Vec<String> = flushes.iter().flat_map(|(_, r)| r.clone()).collect();
    all.sort();
    let mut expected = events(0..50);
    expected.sort();
    assert_eq!(all, expected);
    for subtask in 0..2 {
        let sizes: Vec<usize> = flushes
            .iter()
            .filter(|(s, _)| *s == subtask)
            .map(|(_, r)| r.len())
            .collect();
        // 25 records each: three full groups, then the rest at the end.
        assert_eq!(sizes, vec![7, 7, 7, 4], "subtask {subtask}");
    }
}

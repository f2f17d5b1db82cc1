//! The exactly-once PostgreSQL sink against a real server (cargo feature
//! `postgres`): each test starts its own PostgreSQL (`initdb` + `pg_ctl`
//! from the Debian package) on a free port in a temporary directory and
//! stops it at the end. Without the server the tests skip with a message,
//! unless `WEIR_REQUIRE_SERVERS` is set (CI), where they fail.
#![cfg(feature = "postgres")]

#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/servers.rs"]
mod servers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use postgres_server::{path, Server};

use weir::sink::postgres::PostgresSink;
use weir::sink::SinkOperator;
use weir::testing::{Faults, OperatorHarness};
use weir::{RestartStrategy, StreamEnv};

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-pg-job-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const CUSTOMERS: u64 = 37;

/// (order id, customer, amount) of order `i`.
fn order(i: u64) -> (i64, String, i64) {
    (
        i as i64,
        format!("customer-{}", i % CUSTOMERS),
        (i % 100 + 1) as i64,
    )
}

fn create_tables(server: &Server) {
    server.query(
        "CREATE TABLE orders (id bigint NOT NULL, customer text NOT NULL, amount bigint NOT NULL);
         CREATE TABLE totals (customer text PRIMARY KEY, total bigint NOT NULL)",
    );
}

/// Orders into `orders` (appended) and per-customer running totals into
/// `totals` (upserted), both exactly once.
fn orders_job(env: &StreamEnv, server: &Server, orders: u64) {
    let slow = move |i: u64| {
        if i.is_multiple_of(50) {
            std::thread::sleep(Duration::from_millis(1));
        }
        order(i)
    };
    let stream = env.generate(orders, slow);
    stream
        .clone()
        .add_sink(
            insert_orders(server)
                .batch_rows(100)
                .lock_timeout(Duration::from_secs(3))
                .exactly_once(),
        )
        .uid("orders-sink");
    stream
        .key_by(|(_, customer, _)| customer.clone())
        .sum(|(_, _, amount)| *amount)
        .name("totals")
        .add_sink(
            upsert_totals(server)
                .lock_timeout(Duration::from_secs(3))
                .exactly_once(),
        )
        .uid("totals-sink");
}

fn expected_totals(orders: u64) -> Vec<String> {
    let mut totals = std::collections::BTreeMap::new();
    for i in 0..orders {
        let (_, customer, amount) = order(i);
        *totals.entry(customer).or_insert(0i64) += amount;
    }
    totals
        .into_iter()
        .map(|(c, t)| format!("{c}|{t}"))
        .collect()
}

/// The insert of `(id, customer, amount)` into `orders`.
fn insert_orders(server: &Server) -> PostgresSink<(i64, String, i64)> {
    PostgresSink::insert(
        &server.connection(),
        "orders",
        &["id", "customer", "amount"],
        |o: (i64, String, i64)| o,
    )
    .unwrap()
}

/// Every order once, every total exact, no prepared transaction left.
fn audit(server: &Server, orders: u64) {
    assert_eq!(
        server.one("SELECT count(*), count(DISTINCT id) FROM orders"),
        format!("{orders}|{orders}")
    );
    assert_eq!(
        server.query("SELECT customer, total FROM totals ORDER BY customer"),
        expected_totals(orders)
    );
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "0");
}

#[test]
fn every_order_is_written_exactly_once_through_failures() {
    let Some(server) = Server::start("faults", &["max_prepared_transactions=20"]) else {
        return;
    };
    create_tables(&server);
    let orders = 6_000;
    let dir = temp_dir("faults");
    let faults = Arc::new(Faults::new());
    faults
        .fail_at_record("totals", 1_500, None)
        .fail_at_record("totals", 2_500, Some(1))
        .fail_snapshot(3)
        .fail_before_commit(5)
        .fail_restores(1);
    let env = StreamEnv::with_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(20));
    env.set_checkpoint_dir(path(&dir.join("checkpoints")));
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::from_millis(10),
    });
    env.set_faults(faults.clone());
    orders_job(&env, &server, orders);
    let result = env
        .execute_blocking("orders")
        .unwrap_or_else(|e| panic!("{e}\nplan:\n{faults}"));
    assert!(
        result.restarts >= 3,
        "{} restarts: {:?}",
        result.restarts,
        faults.fired()
    );
    let fired = faults.fired();
    assert!(
        fired
            .iter()
            .any(|f| f.contains("between pre-commit and commit")),
        "{fired:?}"
    );
    audit(&server, orders);
    // Markers: one per subtask of each sink is kept (the latest commit).
    assert_eq!(
        server.query("SELECT sink, count(*) FROM weir_sink_commits GROUP BY sink ORDER BY sink"),
        vec!["orders:orders-sink|2", "orders:totals-sink|2"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A harness around the exactly-once upsert sink into `totals`.
fn totals_harness(server: &Server) -> OperatorHarness<(String, i64), ()> {
    let sink = upsert_totals(server)
        .lock_timeout(Duration::from_secs(5))
        .exactly_once();
    OperatorHarness::new(SinkOperator(sink), 0, 1, 128)
}

fn row(customer: &str, total: i64) -> (String, i64) {
    (customer.to_string(), total)
}

/// Checkpoint 2's barrier comes before checkpoint 1's completion (as a
/// job's final checkpoint may): its rows would wait for the locks of
/// checkpoint 1's prepared transaction, so they are deferred into the
/// checkpoint and land after it, in order.
#[test]
fn a_barrier_before_the_previous_commit_defers_the_rows_and_keeps_their_order() {
    let Some(server) = Server::start("deferred", &["max_prepared_transactions=4"]) else {
        return;
    };
    create_tables(&server);
    let mut harness = totals_harness(&server);
    harness.open(None).unwrap();
    harness.process(vec![row("a", 1), row("b", 1)]).unwrap();
    harness.snapshot(1).unwrap();
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "1");
    assert_eq!(server.one("SELECT count(*) FROM totals"), "0");
    harness.process(vec![row("a", 2)]).unwrap();
    // Would wait for the lock on `a` (and time out) if it were sent.
    harness.snapshot(2).unwrap();
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "1");
    harness.notify_checkpoint_complete(2).unwrap();
    harness.close().unwrap();
    assert_eq!(
        server.query("SELECT customer, total FROM totals ORDER BY customer"),
        vec!["a|2", "b|1"]
    );
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "0");
}

/// A failure after checkpoint 2 completed and before anyone committed: the
/// restore commits checkpoint 1's prepared transaction and writes checkpoint
/// 2's deferred rows, once, even when restored twice.
#[test]
fn a_restore_commits_prepared_and_deferred_transactions_once() {
    let Some(server) = Server::start("restore", &["max_prepared_transactions=4"]) else {
        return;
    };
    server.query("CREATE TABLE totals (customer text PRIMARY KEY, total bigint NOT NULL)");
    let mut harness = totals_harness(&server);
    harness.open(None).unwrap();
    harness.process(vec![row("a", 1), row("b", 1)]).unwrap();
    harness.snapshot(1).unwrap();
    harness.process(vec![row("a", 2), row("c", 1)]).unwrap();
    let snapshot = harness.snapshot(2).unwrap();
    drop(harness);
    for _ in 0..2 {
        let mut restored = totals_harness(&server);
        restored.set_restored_checkpoint(2);
        restored.open(Some(snapshot.clone())).unwrap();
        restored.close().unwrap();
        assert_eq!(
            server.query("SELECT customer, total FROM totals ORDER BY customer"),
            vec!["a|2", "b|1", "c|1"]
        );
        assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "0");
    }
    // One marker per transaction, pruned to the latest.
    assert_eq!(
        server.query("SELECT sink, subtask, checkpoint FROM weir_sink_commits"),
        vec!["harness:harness|0|2"]
    );
}

fn short_job(env: &StreamEnv, sink: PostgresSink<(String, i64)>) {
    env.from_collection(vec![row("a", 1), row("b", 2)])
        .add_sink(sink.exactly_once())
        .uid("totals-sink");
}

/// The exactly-once upsert of `(customer, total)` into `totals`.
fn upsert_totals(server: &Server) -> PostgresSink<(String, i64)> {
    PostgresSink::upsert(
        &server.connection(),
        "totals",
        &["customer", "total"],
        &["customer"],
        |t: (String, i64)| t,
    )
    .unwrap()
}

#[test]
fn a_fresh_start_refuses_what_an_earlier_run_left_prepared() {
    let Some(server) = Server::start("leftover", &["max_prepared_transactions=4"]) else {
        return;
    };
    create_tables(&server);
    server.query("BEGIN; INSERT INTO totals VALUES ('x', 9); PREPARE TRANSACTION 'weir:orders:totals-sink:0:3'");
    let env = StreamEnv::with_parallelism(1);
    short_job(&env, upsert_totals(&server));
    let error = env.execute_blocking("orders").unwrap_err().to_string();
    assert!(error.contains("1 prepared transaction(s) of an earlier run of this sink (weir:orders:totals-sink:0:3)"), "{error}");
    assert!(error.contains("sink.allow_rewind"), "{error}");
    assert_eq!(server.one("SELECT count(*) FROM totals"), "0");
    // Allowed to rewind: rolled back, and the job writes.
    let env = StreamEnv::with_parallelism(1);
    env.set_allow_sink_rewind(true);
    short_job(&env, upsert_totals(&server));
    env.execute_blocking("orders").unwrap();
    assert_eq!(
        server.query("SELECT customer, total FROM totals ORDER BY customer"),
        vec!["a|1", "b|2"]
    );
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "0");
    // A new run (another lineage) would mix its output with that one: refused.
    let env = StreamEnv::with_parallelism(1);
    short_job(&env, upsert_totals(&server));
    let error = env.execute_blocking("orders").unwrap_err().to_string();
    assert!(
        error.contains("table weir_sink_commits (sink orders:totals-sink)"),
        "{error}"
    );
    assert!(error.contains("lineage"), "{error}");
}

#[test]
fn a_server_without_prepared_transactions_is_refused_with_the_fix() {
    let Some(server) = Server::start("no-prepared", &[]) else {
        return;
    };
    create_tables(&server);
    let env = StreamEnv::with_parallelism(2);
    short_job(&env, upsert_totals(&server));
    let error = env.execute_blocking("orders").unwrap_err().to_string();
    assert!(
        error.contains("has max_prepared_transactions = 0"),
        "{error}"
    );
    assert!(
        error.contains("set max_prepared_transactions = 4 or more"),
        "{error}"
    );
}

#[test]
fn a_missing_table_and_a_violated_constraint_are_named_and_stop_the_job() {
    let Some(server) = Server::start("errors", &["max_prepared_transactions=4"]) else {
        return;
    };
    server.query("CREATE TABLE totals (customer text PRIMARY KEY, total bigint NOT NULL CONSTRAINT positive CHECK (total > 0))");
    let missing = PostgresSink::insert(
        &server.connection(),
        "nope",
        &["customer", "total"],
        |t: (String, i64)| t,
    )
    .unwrap();
    let env = StreamEnv::with_parallelism(1);
    short_job(&env, missing);
    let error = env.execute_blocking("orders").unwrap_err().to_string();
    assert!(
        error.contains(r#"relation "nope" does not exist"#),
        "{error}"
    );
    assert!(error.contains(r#"INSERT INTO "nope""#), "{error}");

    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 100,
        delay: Duration::from_millis(1),
    });
    env.from_collection(vec![row("a", 1), row("b", -5)])
        .add_sink(upsert_totals(&server).exactly_once())
        .uid("totals-sink");
    let error = env.execute_blocking("checked").unwrap_err();
    let text = error.to_string();
    assert!(text.contains(r#"cannot write row ("b", -5)"#), "{text}");
    assert!(
        text.contains(r#"violates check constraint "positive""#),
        "{text}"
    );
    assert!(!error.is_retryable(), "{text}");
    assert_eq!(server.one("SELECT count(*) FROM totals"), "0");
    assert_eq!(server.one("SELECT count(*) FROM pg_prepared_xacts"), "0");
}

#[test]
fn a_malformed_connection_string_is_an_error() {
    let error = PostgresSink::insert("host=x port=notaport", "t", &["a"], |a: (i64,)| a)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("invalid PostgreSQL connection settings"),
        "{error}"
    );
}

/// Without `exactly_once`, each batch commits by itself (at least once).
#[test]
fn the_plain_sink_inserts_every_row() {
    let Some(server) = Server::start("plain", &[]) else {
        return;
    };
    create_tables(&server);
    let env = StreamEnv::with_parallelism(2);
    env.generate(5_000, order)
        .add_sink(insert_orders(&server).batch_rows(300));
    env.execute_blocking("plain").unwrap();
    assert_eq!(
        server.one("SELECT count(*), count(DISTINCT id) FROM orders"),
        "5000|5000"
    );
}

/// The built-in statements send up to 256 rows at once; an upsert's
/// statement never holds a key twice, and rows land in their order.
#[test]
fn statements_of_many_rows_keep_the_order_of_repeated_keys() {
    let Some(server) = Server::start("many", &["max_prepared_transactions=4"]) else {
        return;
    };
    create_tables(&server);
    let mut harness = totals_harness(&server);
    harness.open(None).unwrap();
    // 300 distinct keys, then 20 keys repeated over and over.
    let key = |i: i64| if i < 600 { i % 300 } else { i % 20 };
    let rows: Vec<(String, i64)> = (0..1_000).map(|i| (format!("k{}", key(i)), i)).collect();
    harness.process(rows).unwrap();
    harness.snapshot(1).unwrap();
    harness.notify_checkpoint_complete(1).unwrap();
    harness.close().unwrap();
    let expected: Vec<String> = {
        let mut last = std::collections::BTreeMap::new();
        for i in 0..1_000i64 {
            last.insert(format!("k{}", key(i)), i);
        }
        last.into_iter().map(|(k, v)| format!("{k}|{v}")).collect()
    };
    assert_eq!(
        server.query("SELECT customer, total FROM totals ORDER BY customer"),
        expected
    );
    // Inserts: every row once.
    let env = StreamEnv::with_parallelism(2);
    env.generate(3_001, order)
        .add_sink(insert_orders(&server).exactly_once());
    env.execute_blocking("many").unwrap();
    assert_eq!(
        server.one("SELECT count(*), count(DISTINCT id) FROM orders"),
        "3001|3001"
    );
}

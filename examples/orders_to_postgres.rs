//! Orders from NATS JetStream, running totals per customer, into
//! PostgreSQL, exactly once, checkpoints on S3 (cargo features `postgres`,
//! `nats` and `s3`).
//!
//! Orders (`{"id":..,"customer":..,"amount":..}`) are read from the stream
//! `--stream` (subjects `orders.eu`, `orders.us`, `orders.ap`, one partition
//! each) of the NATS server `--nats`. Every order is inserted into the table
//! `orders` (primary key `id`), and its customer's running total and count
//! are upserted into `customer_totals`, both through the exactly-once
//! PostgreSQL sink (prepared transactions committed with the checkpoints),
//! on the server `--postgres`. The tables are created if missing.
//! `--fail-at ID,ID,...` makes the totals operator fail at those orders
//! (once each per process); the job restarts from its latest checkpoint.
//! Checkpoints go to `--checkpoint-dir`: an S3 URL (`s3://bucket/prefix`,
//! the store from the `[s3]` keys, e.g. `WEIR_S3_ENDPOINT`, or the `AWS_*`
//! variables) or a local directory.
//!
//! `--publish N` publishes N generated orders into the stream (creating it)
//! and exits; `--audit N` checks, after the run, that the tables hold those
//! N orders once each, exact totals, and no prepared transaction.
//!
//! ```sh
//! cargo run --features postgres,nats,s3 --example orders_to_postgres -- --publish 100000
//! WEIR_S3_ENDPOINT=http://127.0.0.1:9000 WEIR_S3_ACCESS_KEY=weir WEIR_S3_SECRET_KEY=weir-secret \
//! cargo run --features postgres,nats,s3 --example orders_to_postgres -- \
//!     --checkpoint-dir s3://weir/checkpoints --fail-at 20000,70000 --audit 100000
//! ```

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::sink::postgres::PostgresSink;
use weir::source::jetstream::JetStreamSource;
use weir::state::ValueStateDescriptor;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

/// The job's flags.
#[derive(Clone, Debug, Parser)]
pub struct Args {
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The JetStream stream of orders.
    #[arg(long, default_value = "ORDERS")]
    pub stream: String,
    /// The PostgreSQL server (a libpq connection string).
    #[arg(long, default_value = "host=127.0.0.1 user=postgres dbname=postgres")]
    pub postgres: String,
    /// Publish this many generated orders into the stream, and exit.
    #[arg(long)]
    pub publish: Option<u64>,
    /// Customers of the generated orders.
    #[arg(long, default_value_t = 100)]
    pub customers: u64,
    /// Keep reading new orders (default: what the stream holds, then end).
    #[arg(long)]
    pub follow: bool,
    /// Order ids at which the totals operator fails (once each per process).
    #[arg(long, value_delimiter = ',')]
    pub fail_at: Vec<u64>,
    /// After the run, check that the tables hold these many generated
    /// orders exactly once, with exact totals.
    #[arg(long)]
    pub audit: Option<u64>,
    /// The standard job flags: --parallelism (default 2),
    /// --checkpoint-interval-ms (default 200), --checkpoint-dir, --restart,
    /// --resume-from, ...
    #[command(flatten)]
    pub job: weir::cli::JobArgs,
}

/// An order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Unique.
    pub id: u64,
    /// Who ordered.
    pub customer: String,
    /// In cents.
    pub amount: i64,
}

/// The regions: one subject, one partition each.
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// Generated order `i`.
pub fn order(i: u64, customers: u64) -> Order {
    Order {
        id: i,
        customer: format!("customer-{:04}", i % customers.max(1)),
        amount: (i % 97) as i64 + 1,
    }
}

fn subject(i: u64) -> String {
    format!("orders.{}", REGIONS[(i % 3) as usize])
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Publishes `count` generated orders into `stream` (created if missing).
pub fn publish(nats: &str, stream: &str, count: u64, customers: u64) -> Result<(), String> {
    runtime()?.block_on(async {
        let client = async_nats::connect(nats)
            .await
            .map_err(|e| format!("{nats}: {e}"))?;
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.to_string(),
            subjects: vec!["orders.*".to_string()],
            ..Default::default()
        })
        .await
        .map_err(|e| format!("{nats}: stream {stream}: {e}"))?;
        let mut acks = Vec::new();
        for i in 0..count {
            let payload = serde_json::to_vec(&order(i, customers)).map_err(|e| e.to_string())?;
            acks.push(
                js.publish(subject(i), payload.into())
                    .await
                    .map_err(|e| e.to_string())?,
            );
            if acks.len() >= 10_000 {
                for ack in acks.drain(..) {
                    ack.await.map_err(|e| e.to_string())?;
                }
            }
        }
        for ack in acks {
            ack.await.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// Runs `statements` on the PostgreSQL server; the first column of every
/// row of the last one, as text.
fn sql(postgres: &str, statements: &[&str]) -> Result<Vec<String>, String> {
    runtime()?.block_on(async {
        let (client, connection) = tokio_postgres::connect(postgres, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
        let driver = tokio::spawn(connection);
        let mut last = Vec::new();
        for statement in statements {
            last = client
                .simple_query(statement)
                .await
                .map_err(|e| format!("PostgreSQL: {statement}: {e}"))?
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).unwrap_or_default().to_string())
                    }
                    _ => None,
                })
                .collect();
        }
        drop(client);
        let _ = driver.await;
        Ok(last)
    })
}

/// Creates the tables if missing.
pub fn create_tables(postgres: &str) -> Result<(), String> {
    sql(
        postgres,
        &[
            "CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, customer text NOT NULL, amount bigint NOT NULL)",
            "CREATE TABLE IF NOT EXISTS customer_totals (customer text PRIMARY KEY, total bigint NOT NULL, orders bigint NOT NULL)",
        ],
    )
    .map(|_| ())
}

/// Keeps a customer's running total and count; fails at `--fail-at` orders.
#[derive(Clone)]
struct Totals {
    state: ValueStateDescriptor<(i64, i64)>,
    fail_at: Arc<Mutex<HashSet<u64>>>,
}

impl Lifecycle for Totals {}

impl KeyedProcessFunction<String, Order, (String, i64, i64)> for Totals {
    fn process_element(
        &mut self,
        order: Order,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<(String, i64, i64)>,
    ) -> Result<(), UserError> {
        if self
            .fail_at
            .lock()
            .map_err(|_| "poisoned")?
            .remove(&order.id)
        {
            return Err(format!("injected failure at order {}", order.id).into());
        }
        let mut state = ctx.state(&self.state)?;
        let (total, count) = state.value().unwrap_or((0, 0));
        let (total, count) = (total + order.amount, count + 1);
        state.update((total, count));
        out.collect((order.customer, total, count));
        Ok(())
    }
}

/// Builds the job on `env`: its defaults, the configuration, its flags.
pub fn build(env: &StreamEnv, args: &Args) -> Result<(), String> {
    let mut config = weir::config::Configuration::new();
    for (key, value) in [
        ("parallelism", "2"),
        ("checkpoint.interval_ms", "200"),
        ("restart.strategy", "fixed-delay:10:0"),
    ] {
        config.set_default(key, value).map_err(|e| e.to_string())?;
    }
    config.merge(&args.job.configuration().map_err(|e| e.to_string())?);
    env.configure(&config);
    create_tables(&args.postgres)?;
    let mut source = JetStreamSource::new(&args.nats, &args.stream, |payload: &[u8]| {
        Ok(serde_json::from_slice::<Order>(payload)?)
    })
    .partitions(REGIONS.iter().map(|r| format!("orders.{r}")));
    if !args.follow {
        source = source.bounded();
    }
    let orders = env.add_source(source).uid("orders");
    orders
        .clone()
        .add_sink(
            PostgresSink::insert(
                &args.postgres,
                "orders",
                &["id", "customer", "amount"],
                |o: Order| (o.id as i64, o.customer, o.amount),
            )
            .map_err(|e| e.to_string())?
            .exactly_once(),
        )
        .uid("orders-table");
    let fail_at = Arc::new(Mutex::new(args.fail_at.iter().copied().collect()));
    orders
        .key_by(|o: &Order| o.customer.clone())
        .process(Totals {
            state: ValueStateDescriptor::new("total-and-count"),
            fail_at,
        })
        .name("totals")
        .uid("totals")
        // Keyed by customer: each customer's row has one writer.
        .add_sink(
            PostgresSink::upsert(
                &args.postgres,
                "customer_totals",
                &["customer", "total", "orders"],
                &["customer"],
                |t: (String, i64, i64)| t,
            )
            .map_err(|e| e.to_string())?
            .exactly_once(),
        )
        .uid("totals-table");
    Ok(())
}

/// Checks the tables against `count` generated orders: every order once,
/// every total exact, no prepared transaction left.
pub fn audit(postgres: &str, count: u64, customers: u64) -> Result<(), String> {
    let rows = sql(
        postgres,
        &["SELECT count(*)::text || '/' || count(DISTINCT id)::text FROM orders"],
    )?;
    let expected_rows = format!("{count}/{count}");
    if rows.first() != Some(&expected_rows) {
        return Err(format!(
            "orders: {rows:?} rows/distinct ids, expected {expected_rows}"
        ));
    }
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..count {
        let o = order(i, customers);
        let entry = expected.entry(o.customer).or_default();
        entry.0 += o.amount;
        entry.1 += 1;
    }
    let totals = sql(
        postgres,
        &["SELECT customer || '=' || total || '/' || orders FROM customer_totals ORDER BY customer"],
    )?;
    let expected: Vec<String> = expected
        .into_iter()
        .map(|(c, (t, n))| format!("{c}={t}/{n}"))
        .collect();
    if totals != expected {
        let wrong = totals
            .iter()
            .zip(&expected)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("{a}, expected {b}"))
            .unwrap_or_else(|| format!("{} customers, expected {}", totals.len(), expected.len()));
        return Err(format!("customer_totals: {wrong}"));
    }
    let prepared = sql(postgres, &["SELECT count(*)::text FROM pg_prepared_xacts"])?;
    if prepared.first().map(String::as_str) != Some("0") {
        return Err(format!("{prepared:?} prepared transactions left"));
    }
    Ok(())
}

fn main() -> ExitCode {
    weir::cli::main(run_and_report)
}

/// Publishes, or runs the job and prints its summary (and audit) as one JSON line.
fn run_and_report(args: Args) -> Result<(), String> {
    if let Some(count) = args.publish {
        publish(&args.nats, &args.stream, count, args.customers)?;
        return weir::cli::write_lines([serde_json::json!({ "published": count })]);
    }
    let env = StreamEnv::new();
    build(&env, &args)?;
    let start = Instant::now();
    let Some(result) = args
        .job
        .execute_blocking(&env, "orders-to-postgres")
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // --dump-plan
    };
    let mut summary = serde_json::json!({
        "restarts": result.restarts,
        "checkpoints_completed": result.completed_checkpoints().count(),
        "seconds": start.elapsed().as_secs_f64(),
    });
    let mut failed = None;
    if let Some(count) = args.audit {
        summary["audit"] = match audit(&args.postgres, count, args.customers) {
            Ok(()) => "complete".into(),
            Err(e) => {
                failed = Some(format!("audit: {e}"));
                "failed".into()
            }
        };
    }
    weir::cli::write_lines([summary])?;
    failed.map_or(Ok(()), Err)
}

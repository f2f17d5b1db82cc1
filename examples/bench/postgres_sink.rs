//! `postgres-sink` (feature `postgres`): `generate` → the PostgreSQL sink,
//! inserting `(id, customer, amount)` rows into a fresh table
//! `weir_bench_orders` of the server `--postgres` names (a libpq
//! connection string; the table is dropped and created first). By default
//! exactly once (prepared transactions committed with the checkpoints,
//! every `--checkpoint-interval-ms`, default 1000); with `--plain-sink`
//! the same sink without prepared transactions (a commit per batch of
//! rows): what the exactly-once protocol costs. Checks that the table holds
//! every row once, and that no prepared transaction is left. The commit
//! table (`weir_sink_commits`) is dropped first too: every run is a new job
//! history, which the markers of the last would refuse. Without the
//! feature the job fails with a message saying so.

#[cfg(not(feature = "postgres"))]
pub(crate) fn run(_args: &crate::Args) -> crate::BenchResult<crate::Report> {
    Err("the postgres-sink job needs the PostgreSQL sink: build with --features postgres".into())
}

#[cfg(feature = "postgres")]
pub(crate) use with_postgres::run;

#[cfg(feature = "postgres")]
mod with_postgres {
    use std::time::{Duration, Instant};

    use serde_json::json;
    use tokio_postgres::NoTls;
    use weir::sink::postgres::PostgresSink;

    use crate::{check, Args, BenchResult, Report};

    /// Runs `sql` statements on the server and returns the first column of
    /// the first row of the last one (if it returns rows).
    fn sql(connection: &str, statements: &[&str]) -> BenchResult<Option<i64>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(connection, NoTls).await?;
            let driver = tokio::spawn(connection);
            let mut last = None;
            for statement in statements {
                let rows = client.query(*statement, &[]).await?;
                last = rows.first().map(|row| row.get::<_, i64>(0));
            }
            drop(client);
            let _ = driver.await;
            Ok(last)
        })
    }

    pub(crate) fn run(args: &Args) -> BenchResult<Report> {
        let connection = args.postgres.clone().ok_or(
            "the postgres-sink job needs --postgres CONNECTION (a libpq connection string)",
        )?;
        sql(
            &connection,
            &[
                "DROP TABLE IF EXISTS weir_bench_orders",
                // Each run is a new job history: its markers would refuse the next.
                "DROP TABLE IF EXISTS weir_sink_commits",
                "CREATE TABLE weir_bench_orders (id bigint NOT NULL, customer text NOT NULL, amount bigint NOT NULL)",
            ],
        )?;
        let records = args.records();
        let env = args.env();
        if args.checkpoint_interval_ms.is_none() {
            env.enable_checkpointing(Duration::from_millis(1000));
        }
        let sink = PostgresSink::insert(
            &connection,
            "weir_bench_orders",
            &["id", "customer", "amount"],
            |(id, customer, amount): (i64, String, i64)| (id, customer, amount),
        )?;
        let rows = env.generate(records, |i| {
            (i as i64, format!("customer-{}", i % 1000), (i % 100) as i64)
        });
        if args.plain_sink {
            rows.add_sink(sink).uid("orders");
        } else {
            rows.add_sink(sink.exactly_once()).uid("orders");
        }
        let start = Instant::now();
        let result = env.execute_blocking(args.job.name())?;
        let elapsed = start.elapsed();
        let written = sql(
            &connection,
            &["SELECT count(DISTINCT id) FROM weir_bench_orders"],
        )?
        .unwrap_or(0) as u64;
        check("distinct rows in the table", written, records)?;
        let total =
            sql(&connection, &["SELECT count(*) FROM weir_bench_orders"])?.unwrap_or(0) as u64;
        check("rows in the table", total, records)?;
        let prepared =
            sql(&connection, &["SELECT count(*) FROM pg_prepared_xacts"])?.unwrap_or(0) as u64;
        check("prepared transactions left", prepared, 0)?;
        Ok(Report::new(args, records, elapsed)
            .engine(&env, &result, written)
            .with(
                "delivery",
                json!(if args.plain_sink {
                    "plain"
                } else {
                    "exactly-once"
                }),
            )
            .with("checkpoints", json!(result.checkpoints.len())))
    }
}

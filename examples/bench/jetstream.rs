//! `jetstream` (feature `nats`): messages per second from and to NATS
//! JetStream on the server `--nats` names. Publishes `--records` messages
//! (8-byte payloads over 4 subjects) into a fresh stream `WEIR_BENCH_IN`
//! first (not timed); then times a job reading them all with the
//! [JetStream source](weir::source::jetstream) (bounded, one partition per
//! subject) into a discard sink (`records_per_sec`), and a job publishing
//! `--records` generated records with the
//! [JetStream sink](weir::sink::jetstream) into a fresh `WEIR_BENCH_OUT`
//! (`write_per_sec`), each with checkpoints every `--checkpoint-interval-ms`
//! (default 1000). Checks both counts. Without the feature the job fails
//! with a message saying so.

#[cfg(not(feature = "nats"))]
pub(crate) fn run(_args: &crate::Args) -> crate::BenchResult<crate::Report> {
    Err("the jetstream job needs the NATS connectors: build with --features nats".into())
}

#[cfg(feature = "nats")]
pub(crate) use with_nats::run;

#[cfg(feature = "nats")]
mod with_nats {
    use std::time::{Duration, Instant};

    use async_nats::jetstream::{self, stream};
    use serde_json::json;
    use weir::sink::jetstream::JetStreamSink;
    use weir::source::jetstream::JetStreamSource;

    use crate::{check, Args, BenchResult, Report};

    const SUBJECTS: [&str; 4] = ["bench.a", "bench.b", "bench.c", "bench.d"];

    fn block_on<F: std::future::Future>(future: F) -> BenchResult<F::Output> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(future))
    }

    /// Recreates `name` over `subjects`; publishes `records` messages if asked.
    fn prepare(url: &str, name: &str, subjects: &[&str], records: u64) -> BenchResult<()> {
        block_on(async {
            let js = jetstream::new(async_nats::connect(url).await?);
            let _ = js.delete_stream(name).await;
            js.create_stream(stream::Config {
                name: name.to_string(),
                subjects: subjects.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })
            .await?;
            let mut acks = Vec::new();
            for i in 0..records {
                let subject = SUBJECTS[(i % 4) as usize];
                acks.push(js.publish(subject, i.to_le_bytes().to_vec().into()).await?);
                if acks.len() >= 10_000 {
                    for ack in acks.drain(..) {
                        ack.await?;
                    }
                }
            }
            for ack in acks {
                ack.await?;
            }
            Ok::<(), async_nats::Error>(())
        })?
        .map_err(|e| e.to_string().into())
    }

    fn messages(url: &str, name: &str) -> BenchResult<u64> {
        block_on(async {
            let js = jetstream::new(async_nats::connect(url).await?);
            let mut stream = js.get_stream(name).await?;
            Ok::<u64, async_nats::Error>(stream.info().await?.state.messages)
        })?
        .map_err(|e| e.to_string().into())
    }

    pub(crate) fn run(args: &Args) -> BenchResult<Report> {
        let url = args
            .nats
            .clone()
            .ok_or("the jetstream job needs --nats URL (nats://host:port)")?;
        let records = args.records();
        prepare(&url, "WEIR_BENCH_IN", &["bench.*"], records)?;
        prepare(&url, "WEIR_BENCH_OUT", &["bench-out.*"], 0)?;

        let env = args.env();
        if args.checkpoint_interval_ms.is_none() {
            env.enable_checkpointing(Duration::from_millis(1000));
        }
        let read = env
            .add_source(
                JetStreamSource::new(&url, "WEIR_BENCH_IN", |payload: &[u8]| {
                    Ok(u64::from_le_bytes(payload.try_into()?))
                })
                .partitions(SUBJECTS)
                .bounded(),
            )
            .uid("in")
            .discard();
        let start = Instant::now();
        let result = env.execute_blocking("jetstream-read")?;
        let elapsed = start.elapsed();
        check("records read", read.records(), records)?;

        let env = args.env();
        if args.checkpoint_interval_ms.is_none() {
            env.enable_checkpointing(Duration::from_millis(1000));
        }
        env.generate(records, |i| i)
            .add_sink(JetStreamSink::new(&url, |i: u64| {
                ("bench-out.x".to_string(), i.to_le_bytes().to_vec())
            }))
            .uid("out");
        let write_start = Instant::now();
        env.execute_blocking("jetstream-write")?;
        let write_seconds = write_start.elapsed().as_secs_f64();
        check(
            "messages published",
            messages(&url, "WEIR_BENCH_OUT")?,
            records,
        )?;

        Ok(Report::new(args, records, elapsed)
            .engine(&env, &result, records)
            .with("write_seconds", json!(write_seconds))
            .with("write_per_sec", json!(records as f64 / write_seconds)))
    }
}

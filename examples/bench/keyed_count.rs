//! `keyed-count`: `generate` (key = `i % keys`) → `key_by` → [`CountPerKey`]
//! (a count per key in keyed `ValueState`, emitting `(key, count)`) →
//! `discard()`: the engine's keyed path, compared with `raw-loop`. Default
//! 100M records over `--keys` (100 000) keys; with `--backend rocksdb` the
//! counts live in RocksDB. With `--ttl-ms MS` the count has a processing-time
//! time to live of MS ([`TtlConfig`]'s defaults: `OnCreateAndWrite`,
//! incremental cleanup on the heap, the compaction filter on RocksDB): what
//! TTL costs. [`CountPerKey`] is also what `snapshot` fills.

use std::time::{Duration, Instant};

use serde_json::json;
use weir::state::ttl::TtlConfig;
use weir::state::{ValueStateDescriptor, ValueStateWithDefault};
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::{check, Args, BenchResult, Report};

/// Counts records per key in keyed `ValueState` and emits `(key, count)`.
#[derive(Clone)]
pub(crate) struct CountPerKey {
    count: ValueStateWithDefault<u64>,
}

impl CountPerKey {
    pub(crate) fn new() -> Self {
        CountPerKey {
            count: ValueStateDescriptor::new("count").with_default(0),
        }
    }

    /// The count, queryable as `count` (live queries).
    pub(crate) fn queryable() -> Self {
        CountPerKey {
            count: ValueStateDescriptor::new("count")
                .queryable("count")
                .with_default(0),
        }
    }

    /// The count with a processing-time time to live of `ttl`.
    pub(crate) fn with_ttl(ttl: Duration) -> Self {
        CountPerKey {
            count: ValueStateDescriptor::new("count")
                .with_ttl(TtlConfig::new(ttl))
                .with_default(0),
        }
    }
}

impl Lifecycle for CountPerKey {}

impl KeyedProcessFunction<u64, u64, (u64, u64)> for CountPerKey {
    fn process_element(
        &mut self,
        key: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<(), UserError> {
        let count = self.count.modify(ctx, |c| {
            *c += 1;
            *c
        })?;
        out.collect((key, count));
        Ok(())
    }
}

/// generate (key = i % keys) -> key_by -> count per key -> discard.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    if let Some(rate) = args.queries_per_sec {
        return run_with_queries(args, rate);
    }
    let records = args.records();
    let keys = args.keys;
    let env = args.env();
    let function = match args.ttl_ms {
        Some(ms) => CountPerKey::with_ttl(Duration::from_millis(ms)),
        None => CountPerKey::new(),
    };
    let counter = env
        .generate(records, move |i| i % keys)
        .key_by(|key: &u64| *key)
        .process(function)
        .discard();

    let start = Instant::now();
    let result = env.execute_blocking("keyed-count")?;
    let elapsed = start.elapsed();

    check("records counted", counter.records(), records)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, counter.first_record_at())
        .engine(&env, &result, counter.records())
        .with("keys", json!(keys))
        .with("ttl_ms", json!(args.ttl_ms))
        .with(
            "ttl_expired",
            json!(result.state_metrics().map(|s| s.expired()).sum::<u64>()),
        ))
}

/// keyed-count with live queries of the count at `rate` per second (random
/// keys, from another thread) while it runs: their latency.
///
/// The querier is open-loop and ticks once a millisecond: each tick sends the
/// queries that are due (10 at 10 000 per second) at once and waits for
/// their answers, each timed from its own sending. A thread that slept
/// between single queries would wake 10 000 times a second, and on this
/// 2-core VM those wake-ups alone (no query sent) took a quarter of the
/// job's throughput at parallelism 2: the figure would measure the
/// querier's scheduler, not the engine.
fn run_with_queries(args: &Args, rate: u64) -> BenchResult<Report> {
    let records = args.records();
    let keys = args.keys;
    let env = args.env();
    let counter = env
        .generate(records, move |i| i % keys)
        .key_by(|key: &u64| *key)
        .process(CountPerKey::queryable())
        .uid("counter")
        .discard();
    let start = Instant::now();
    let mut client = futures::executor::block_on(env.start("keyed-count"))?;
    let querier = {
        let control = client.control();
        let committed = args.committed_queries;
        std::thread::spawn(move || query_at(&control, rate as f64, keys, committed))
    };
    let result = futures::executor::block_on(client.wait())?;
    let elapsed = start.elapsed();
    let mut queried = querier.join().map_err(|_| "the query thread panicked")?;
    let latencies = sorted(&mut queried.latencies_us);
    let tick_late = sorted(&mut queried.tick_late_us);
    check("records counted", counter.records(), records)?;
    Ok(Report::new(args, records, elapsed)
        .engine(&env, &result, counter.records())
        .with("keys", json!(keys))
        .with("queries_per_sec", json!(rate))
        .with("committed_queries", json!(args.committed_queries))
        .with("queries_answered", json!(queried.answered))
        .with("queries_unanswered", json!(queried.unanswered))
        .with("query_p50_us", json!(quantile(latencies, 0.5)))
        .with("query_p99_us", json!(quantile(latencies, 0.99)))
        .with("query_max_us", json!(quantile(latencies, 1.0)))
        .with("querier_late_p99_us", json!(quantile(tick_late, 0.99))))
}

/// `values`, sorted.
fn sorted(values: &mut [f64]) -> &[f64] {
    values.sort_by(f64::total_cmp);
    values
}

/// The `q` quantile of sorted `values` (`None` if there are none).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q) as usize])
}

/// What the querier measured.
struct Queried {
    /// Latency of each answered query, µs.
    latencies_us: Vec<f64>,
    answered: u64,
    /// Not answered: the state not registered yet, at the start.
    unanswered: u64,
    /// How late the querier's thread woke for each tick, µs: the operating
    /// system's share of the latencies.
    tick_late_us: Vec<f64>,
}

/// Queries the count of random keys at `rate` per second until the job
/// ends, a tick a millisecond (or one query a tick below 1 000 per second).
fn query_at(control: &weir::JobControl, rate: f64, keys: u64, committed: bool) -> Queried {
    use weir::query::{Consistency, QueryableState};
    let consistency = match committed {
        true => Consistency::Committed,
        false => Consistency::Live,
    };
    let mut queried = Queried {
        latencies_us: Vec::new(),
        answered: 0,
        unanswered: 0,
        tick_late_us: Vec::new(),
    };
    let tick = Duration::from_secs_f64((1.0 / rate).max(0.001));
    let per_tick = rate * tick.as_secs_f64();
    let begin = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut sent = 0_u64;
    for i in 1_u32.. {
        if control.status().is_terminal() {
            break;
        }
        let due_at = begin + tick * i;
        if let Some(wait) = due_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let late = Instant::now().saturating_duration_since(due_at);
        queried.tick_late_us.push(late.as_secs_f64() * 1e6);
        // The queries due by the end of this tick (fractional rates carry over).
        let due = (per_tick * f64::from(i)) as u64 - sent;
        sent += due;
        let queries = (0..due).map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let key = seed % keys;
            let asked = Instant::now();
            async move {
                let answer = control.query::<u64, u64>(("counter", "count"), &key, consistency);
                answer.await.map(|_| asked.elapsed().as_secs_f64() * 1e6)
            }
        });
        for answer in futures::executor::block_on(futures::future::join_all(queries)) {
            match answer {
                Ok(latency_us) => {
                    queried.latencies_us.push(latency_us);
                    queried.answered += 1;
                }
                Err(_) => queried.unanswered += 1,
            }
        }
    }
    queried
}

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

/// keyed-count with live queries of the count at `rate` per second (a
/// random key each, from another thread) while it runs: their latency.
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
    // Each querier thread waits for its answers: several share the rate,
    // so that one slow answer does not hold the rate back.
    let threads = rate.div_ceil(5_000).max(1);
    let queriers: Vec<_> = (0..threads)
        .map(|t| {
            let control = client.control();
            let committed = args.committed_queries;
            std::thread::spawn(move || {
                query_at(&control, rate as f64 / threads as f64, keys, t, committed)
            })
        })
        .collect();
    let result = futures::executor::block_on(client.wait())?;
    let elapsed = start.elapsed();
    let (mut latencies, mut answered, mut unanswered) = (Vec::new(), 0, 0);
    for querier in queriers {
        let (l, a, u) = querier.join().map_err(|_| "a query thread panicked")?;
        latencies.extend(l);
        answered += a;
        unanswered += u;
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        (!latencies.is_empty()).then(|| latencies[((latencies.len() - 1) as f64 * q) as usize])
    };
    check("records counted", counter.records(), records)?;
    Ok(Report::new(args, records, elapsed)
        .engine(&env, &result, counter.records())
        .with("keys", json!(keys))
        .with("queries_per_sec", json!(rate))
        .with("committed_queries", json!(args.committed_queries))
        .with("queries_answered", json!(answered))
        .with("queries_unanswered", json!(unanswered))
        .with("query_p50_us", json!(at(0.5)))
        .with("query_p99_us", json!(at(0.99)))
        .with("query_max_us", json!(at(1.0))))
}

/// Queries the count of random keys at `rate` per second until the job
/// ends: the latencies of the answers (µs), how many were answered, how
/// many were not (the state not registered yet, at the start).
fn query_at(
    control: &weir::JobControl,
    rate: f64,
    keys: u64,
    seed: u64,
    committed: bool,
) -> (Vec<f64>, u64, u64) {
    use weir::query::{Consistency, QueryableState};
    let consistency = match committed {
        true => Consistency::Committed,
        false => Consistency::Live,
    };
    let mut latencies_us: Vec<f64> = Vec::new();
    let (mut answered, mut unanswered) = (0_u64, 0_u64);
    let period = Duration::from_secs_f64(1.0 / rate);
    let begin = Instant::now();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64 ^ (seed + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for i in 0_u32.. {
        if control.status().is_terminal() {
            break;
        }
        if let Some(wait) = (begin + period * i).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let key = seed % keys;
        let asked = Instant::now();
        let query = control.query::<u64, u64>(("counter", "count"), &key, consistency);
        match futures::executor::block_on(query) {
            Ok(_) => {
                latencies_us.push(asked.elapsed().as_secs_f64() * 1e6);
                answered += 1;
            }
            Err(_) => unanswered += 1,
        }
    }
    (latencies_us, answered, unanswered)
}

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

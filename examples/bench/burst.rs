//! `burst`: one record whose `flat_map` emits `--records` records (default
//! 5M) at once → `rebalance()` → `discard()`: the cost of a burst must grow
//! linearly with its size (time and `peak_rss_mb`).

use std::time::Instant;

use crate::{check, Args, BenchResult, Report};

/// One record -> flat_map emitting `records` words -> rebalance -> discard.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let counter = env
        .from_collection(vec![records])
        .flat_map(|n: u64| (0..n).map(|i| format!("w{i}")).collect::<Vec<String>>())
        .rebalance()
        .discard();
    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();
    let kept = counter.records();
    check("records reaching the sink", kept, records)?;
    Ok(Report::new(args, records, elapsed).engine(&env, &result, kept))
}

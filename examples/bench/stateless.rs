//! `stateless`: `generate(records, |i| i)` → `map` (`i * 3 ^ 5`, wrapping) →
//! `filter` (keeps the even results, i.e. exactly `records / 2`) →
//! `discard()`. With chaining (the default) the whole pipeline is one actor
//! per subtask, so this measures the per-batch cost of the engine itself;
//! with `--no-chaining` every operator is its own actor and every batch
//! crosses three credit-controlled channels. Default 1G records: about
//! 1.5 s chained and 10-15 s unchained at parallelism 1 on a 2-core machine
//! (100M records take 0.15 s chained, too short to measure).

use std::time::Instant;

use crate::{check, Args, BenchResult, Report};

/// generate -> map -> filter -> discard.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let env = args.env();
    let counter = env
        .generate(records, |i| i)
        .map(|i: u64| i.wrapping_mul(3) ^ 5)
        // `3i ^ 5` is even exactly when `i` is odd: keeps `records / 2`.
        .filter(|x| x & 1 == 0)
        .discard();

    let start = Instant::now();
    let result = env.execute_blocking(args.job.name())?;
    let elapsed = start.elapsed();

    let kept = counter.records();
    check("records reaching the sink", kept, records / 2)?;
    Ok(Report::new(args, records, elapsed)
        .first_record(start, counter.first_record_at())
        .engine(&env, &result, kept))
}

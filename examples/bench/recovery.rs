//! `recovery`: keyed-count (`--keys`, default 1 000 000 here) with a 1 s
//! checkpoint interval (unless `--checkpoint-interval-ms` is given), one
//! failure injected right after the first completed checkpoint
//! ([`CountThenFail`], armed by [`ArmOnCheckpoint`]), and a fixed-delay
//! restart without delay. `recovery_ms` is the time from the failure to the
//! first record processed after the restore; `state_bytes` the largest
//! completed checkpoint.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use weir::sink::Sink;
use weir::state::{ValueStateDescriptor, ValueStateWithDefault};
use weir::{
    Collector, KeyedContext, KeyedProcessFunction, Lifecycle, RestartStrategy, StorageSpec,
    UserError,
};

use crate::{check, millis, Args, BenchResult, Report};

/// When the injected failure happened and when the first record after the restore was processed.
#[derive(Clone, Default)]
struct RecoveryClock {
    armed: Arc<std::sync::atomic::AtomicBool>,
    failed_at: Arc<std::sync::Mutex<Option<Instant>>>,
    resumed_at: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Counts per key; fails once, on the first record after the first completed checkpoint.
#[derive(Clone)]
struct CountThenFail {
    count: ValueStateWithDefault<u64>,
    clock: RecoveryClock,
    restored: bool,
}

impl Lifecycle for CountThenFail {
    fn initialize_state(
        &mut self,
        ctx: &mut weir::state::StateInitContext,
    ) -> Result<(), UserError> {
        self.restored = ctx.is_restored();
        Ok(())
    }
}

impl KeyedProcessFunction<u64, u64, (u64, u64)> for CountThenFail {
    fn process_element(
        &mut self,
        key: u64,
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<(u64, u64)>,
    ) -> Result<(), UserError> {
        let failed = self
            .clock
            .failed_at
            .lock()
            .map(|f| f.is_some())
            .unwrap_or(true);
        if !failed && self.clock.armed.load(Ordering::Relaxed) {
            if let Ok(mut at) = self.clock.failed_at.lock() {
                *at = Some(Instant::now());
            }
            return Err("injected failure after the first completed checkpoint".into());
        }
        if failed && self.restored {
            if let Ok(mut at) = self.clock.resumed_at.lock() {
                at.get_or_insert_with(Instant::now);
            }
        }
        let count = self.count.modify(ctx, |c| {
            *c += 1;
            *c
        })?;
        out.collect((key, count));
        Ok(())
    }
}

/// Arms the failure when the first checkpoint completes.
#[derive(Clone)]
struct ArmOnCheckpoint(RecoveryClock);

impl Lifecycle for ArmOnCheckpoint {
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        self.0.armed.store(true, Ordering::Relaxed);
        Ok(())
    }
}

impl Sink<(u64, u64)> for ArmOnCheckpoint {
    fn write(&mut self, _record: (u64, u64)) -> Result<(), UserError> {
        Ok(())
    }

    fn write_batch(&mut self, _batch: Vec<(u64, u64)>) -> Result<(), UserError> {
        Ok(())
    }
}

/// keyed-count (`--keys`, default 1 000 000 here) with a 1 s checkpoint
/// interval, one failure right after the first completed checkpoint, and a
/// fixed-delay restart without delay.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let records = args.records();
    let keys = if args.keys == 100_000 {
        1_000_000
    } else {
        args.keys
    };
    let env = args.env();
    if args.checkpoint_interval_ms.is_none() {
        env.enable_checkpointing(Duration::from_secs(1));
        env.set_checkpoint_storage(StorageSpec::Memory {
            max_state_size: 1 << 30,
        });
    }
    env.set_restart_strategy(RestartStrategy::FixedDelay {
        attempts: 1,
        delay: Duration::ZERO,
    });
    let clock = RecoveryClock::default();
    env.generate(records, move |i| i % keys)
        .key_by(|key: &u64| *key)
        .process(CountThenFail {
            count: ValueStateDescriptor::new("count").with_default(0),
            clock: clock.clone(),
            restored: false,
        })
        .add_sink(ArmOnCheckpoint(clock.clone()));

    let start = Instant::now();
    let result = env.execute_blocking("recovery")?;
    let elapsed = start.elapsed();

    let failed = clock
        .failed_at
        .lock()
        .ok()
        .and_then(|t| *t)
        .ok_or("the failure was never injected")?;
    let resumed = clock
        .resumed_at
        .lock()
        .ok()
        .and_then(|t| *t)
        .ok_or("no record after the restore")?;
    check("restarts", u64::from(result.restarts), 1)?;
    let state_bytes = result.completed_checkpoints().map(|c| c.state_bytes).max();
    Ok(Report::new(args, records, elapsed)
        .engine(&env, &result, records)
        .with("keys", json!(keys))
        .with(
            "recovery_ms",
            json!(millis(resumed.saturating_duration_since(failed))),
        )
        .with("state_bytes", json!(state_bytes)))
}

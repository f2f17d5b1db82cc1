//! `schema-migration`: one keyed operator instance ([`Counter`]) driven
//! directly, on `--backend` (heap or rocksdb): writes `--keys` keys
//! (default 1M) at state version 2, snapshots them (a savepoint on the
//! heap; an incremental checkpoint on RocksDB), and restores twice, the
//! runs interleaved: at version 2 again (no migration) and at version 3
//! (every value migrated). For each: the restore (open) time, the first
//! record's time (where the heap migrates every restored value and
//! RocksDB rewrites the state's values), and the time to read every key.
//! Then the cost of the pre-flight check of a savepoint with 100 states
//! (`check_states`, one verdict each).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use weir::runtime::snapshot::OperatorSnapshot;
use weir::state::schema::{check_states, StateDeclarations};
use weir::state::ValueStateDescriptor;
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::{millis, Args, BenchResult, Report};

#[derive(Clone, Serialize, Deserialize)]
struct V2 {
    count: u32,
    #[serde(default)]
    last_seen_ms: i64,
}

#[derive(Clone, Serialize, Deserialize)]
struct V3 {
    count: u64,
    last_seen_ms: i64,
}

/// What the counter needs of a state version.
trait Count: Clone + Send + Sync + Serialize + serde::de::DeserializeOwned + 'static {
    fn next(previous: Option<Self>) -> Self;
}

impl Count for V2 {
    fn next(previous: Option<Self>) -> Self {
        V2 {
            count: previous.map_or(0, |p| p.count) + 1,
            last_seen_ms: 1,
        }
    }
}

impl Count for V3 {
    fn next(previous: Option<Self>) -> Self {
        V3 {
            count: previous.map_or(0, |p| p.count) + 1,
            last_seen_ms: 1,
        }
    }
}

/// Counts per key: `(key, true)` reads (and emits nothing), `(key, false)` counts.
#[derive(Clone)]
struct Counter<V> {
    state: ValueStateDescriptor<V>,
}

impl<V: Count> Lifecycle for Counter<V> {}

impl<V: Count> KeyedProcessFunction<u64, (u64, bool), u64> for Counter<V> {
    fn process_element(
        &mut self,
        (_, read): (u64, bool),
        ctx: &mut KeyedContext<u64>,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        let mut state = ctx.state(&self.state)?;
        if read {
            out.collect(u64::from(state.value().is_some()));
        } else {
            let next = V::next(state.value());
            state.update(next);
        }
        Ok(())
    }
}

type Harness = OperatorHarness<(u64, bool), u64>;

fn harness<V: Count>(state: ValueStateDescriptor<V>) -> Harness {
    OperatorHarness::keyed(Counter { state }, |r: &(u64, bool)| r.0, 0, 1, 128)
}

/// Restores `snapshot` with `state` and times the open, the first record
/// and a read of every key (ms each).
fn restore<V: Count>(
    state: ValueStateDescriptor<V>,
    snapshot: &OperatorSnapshot,
    keys: u64,
) -> BenchResult<(f64, f64, f64)> {
    let mut h = harness(state);
    let started = Instant::now();
    h.open(Some(snapshot.clone()))?;
    let open = millis(started.elapsed());
    let started = Instant::now();
    h.process(vec![(0, true)])?;
    let first = millis(started.elapsed());
    h.take_output();
    let started = Instant::now();
    let mut found = 0;
    let mut chunk = Vec::with_capacity(4096);
    for key in 0..keys {
        chunk.push((key, true));
        if chunk.len() == 4096 {
            h.process(std::mem::take(&mut chunk))?;
            found += h.take_output().into_iter().sum::<u64>();
        }
    }
    h.process(chunk)?;
    found += h.take_output().into_iter().sum::<u64>();
    let read = millis(started.elapsed());
    if found != keys {
        return Err(format!("read {found} keys back, wrote {keys}").into());
    }
    Ok((open, first, read))
}

/// 100 states of one key, snapshotted, and the time of a pre-flight check
/// of them against declarations of a compatible next version (ms).
fn check_of_100_states() -> BenchResult<f64> {
    #[derive(Clone)]
    struct Many(Vec<ValueStateDescriptor<V2>>);
    impl Lifecycle for Many {}
    impl KeyedProcessFunction<u64, (u64, bool), u64> for Many {
        fn process_element(
            &mut self,
            _: (u64, bool),
            ctx: &mut KeyedContext<u64>,
            _out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            for d in &self.0 {
                ctx.state(d)?.update(V2::next(None));
            }
            Ok(())
        }
    }
    let names: Vec<String> = (0..100).map(|i| format!("state-{i}")).collect();
    let mut h: Harness = OperatorHarness::keyed(
        Many(names.iter().map(|n| ValueStateDescriptor::new(n)).collect()),
        |r: &(u64, bool)| r.0,
        0,
        1,
        128,
    );
    h.open(None)?;
    h.process(vec![(1, false)])?;
    let savepoint = h.savepoint(1)?;
    let mut declarations = StateDeclarations::default();
    for name in &names {
        declarations.keyed(
            &ValueStateDescriptor::<V3>::new(name)
                .version(3)
                .migrate_from::<V2>(2, |old| V3 {
                    count: old.count.into(),
                    last_seen_ms: old.last_seen_ms,
                }),
        );
    }
    let declared = declarations.states().to_vec();
    let started = Instant::now();
    let checks = check_states("many", &declared, &[&savepoint])?;
    let elapsed = millis(started.elapsed());
    if checks.len() != 100 || checks.iter().any(|c| c.verdict.error().is_some()) {
        return Err(format!("unexpected verdicts: {checks:?}").into());
    }
    Ok(elapsed)
}

pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let keys = if args.keys == 100_000 {
        1_000_000
    } else {
        args.keys
    };
    let root = args
        .local_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("weir-schema-migration-{}", std::process::id()));
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared)?;
    let body = || -> BenchResult<Report> {
        let mut h = harness(ValueStateDescriptor::<V2>::new("count").version(2));
        h.open(None)?;
        let fill = Instant::now();
        let mut chunk = Vec::with_capacity(4096);
        for key in 0..keys {
            chunk.push((key, false));
            if chunk.len() == 4096 {
                h.process(std::mem::take(&mut chunk))?;
            }
        }
        h.process(chunk)?;
        let fill = fill.elapsed();
        let snapshot = match args.backend.as_str() {
            "rocksdb" => h.snapshot(1)?,
            _ => h.savepoint(1)?,
        };
        drop(h);
        let same = || ValueStateDescriptor::<V2>::new("count").version(2);
        let migrated = || {
            ValueStateDescriptor::<V3>::new("count")
                .version(3)
                .migrate_from::<V2>(2, |old| V3 {
                    count: old.count.into(),
                    last_seen_ms: old.last_seen_ms,
                })
        };
        // Interleaved, twice each; the better run of each counts.
        let mut plain = Vec::new();
        let mut with_migration = Vec::new();
        for _ in 0..2 {
            plain.push(restore(same(), &snapshot, keys)?);
            with_migration.push(restore(migrated(), &snapshot, keys)?);
        }
        let best = |runs: &[(f64, f64, f64)]| {
            runs.iter()
                .copied()
                .fold((f64::MAX, f64::MAX, f64::MAX), |a, r| {
                    (a.0.min(r.0), a.1.min(r.1), a.2.min(r.2))
                })
        };
        let (plain, with_migration) = (best(&plain), best(&with_migration));
        let check_ms = check_of_100_states()?;
        let mut report = Report::new(args, keys, fill)
            .with("keys", json!(keys))
            .with("restore_open_ms", json!(plain.0))
            .with("restore_first_record_ms", json!(plain.1))
            .with("restore_read_all_ms", json!(plain.2))
            .with("migrated_open_ms", json!(with_migration.0))
            .with("migrated_first_record_ms", json!(with_migration.1))
            .with("migrated_read_all_ms", json!(with_migration.2))
            .with(
                "migration_ms_per_million",
                json!((with_migration.1 - plain.1) * 1e6 / keys as f64),
            )
            .with("check_100_states_ms", json!(check_ms));
        report.parallelism = 1;
        Ok(report)
    };
    let result = match args.backend.as_str() {
        #[cfg(feature = "rocksdb")]
        "rocksdb" => {
            let backend = weir::state::RocksDbBackend::new()
                .with_local_dirs([root.join("local")])
                .with_block_cache_bytes(args.block_cache_mb << 20)
                .with_entry_cache_bytes(args.entry_cache_mb << 20);
            weir::testing::with_state_backend(backend, Some(&shared), body)
        }
        _ => body(),
    };
    let _ = std::fs::remove_dir_all(&root);
    result
}

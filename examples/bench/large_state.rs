//! `large-state` (feature `rocksdb`): one keyed operator instance
//! ([`StoreValue`]), driven directly (no engine), with the RocksDB backend:
//! writes `--keys` keys (default 20M) with 100-byte values, takes an
//! incremental checkpoint (everything is uploaded), takes checkpoints without
//! changes until the compactions the bulk load left behind are done (at most a
//! minute; the last one's size is the full size), changes 1% of the keys and
//! takes one more (only the new SST files are uploaded: the incremental size).
//! Reports records/s of the writes, peak RSS and the checkpoint sizes. Without
//! the feature the job fails with a message saying so.

#[cfg(feature = "rocksdb")]
use std::time::{Duration, Instant};

#[cfg(feature = "rocksdb")]
use serde_json::json;
#[cfg(feature = "rocksdb")]
use weir::state::ValueStateDescriptor;
#[cfg(feature = "rocksdb")]
use weir::testing::OperatorHarness;
#[cfg(feature = "rocksdb")]
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

#[cfg(feature = "rocksdb")]
use crate::millis;
use crate::{Args, BenchResult, Report};

/// Keeps a 100-byte value per key (derived from the key and a version).
#[cfg(feature = "rocksdb")]
#[derive(Clone)]
struct StoreValue {
    value: ValueStateDescriptor<Vec<u8>>,
}

#[cfg(feature = "rocksdb")]
impl Lifecycle for StoreValue {}

#[cfg(feature = "rocksdb")]
impl KeyedProcessFunction<u64, (u64, u8), ()> for StoreValue {
    fn process_element(
        &mut self,
        (key, version): (u64, u8),
        ctx: &mut KeyedContext<u64>,
        _out: &mut Collector<()>,
    ) -> Result<(), UserError> {
        let mut value = vec![version; 100];
        value[..8].copy_from_slice(&key.to_le_bytes());
        ctx.state(&self.value)?.update(value);
        Ok(())
    }
}

#[cfg(not(feature = "rocksdb"))]
pub(crate) fn run(_args: &Args) -> BenchResult<Report> {
    Err("large-state needs the RocksDB backend: build with `--features rocksdb`".into())
}

/// Bytes of the files `snapshot`'s incremental handles refer to that are not in `before`.
#[cfg(feature = "rocksdb")]
fn new_shared_bytes(
    snapshot: &weir::runtime::snapshot::OperatorSnapshot,
    before: &std::collections::HashSet<String>,
) -> (u64, std::collections::HashSet<String>) {
    let mut names = std::collections::HashSet::new();
    let mut bytes = 0;
    for handle in &snapshot.keyed_handles {
        bytes += handle.data.len() as u64;
        for file in &handle.shared {
            if !before.contains(&file.name) {
                bytes += file.size;
            }
            names.insert(file.name.clone());
        }
    }
    (bytes, names)
}

/// Bytes of every file (and the inline bytes) `snapshot`'s handles refer to.
#[cfg(feature = "rocksdb")]
fn total_shared_bytes(snapshot: &weir::runtime::snapshot::OperatorSnapshot) -> u64 {
    snapshot
        .keyed_handles
        .iter()
        .map(|h| h.data.len() as u64 + h.shared.iter().map(|f| f.size).sum::<u64>())
        .sum()
}

#[cfg(feature = "rocksdb")]
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let keys = if args.keys == 100_000 {
        20_000_000
    } else {
        args.keys
    };
    let root = args
        .local_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("weir-large-state-{}", std::process::id()));
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared)?;
    let backend = weir::state::RocksDbBackend::new()
        .with_local_dirs([root.join("local")])
        .with_block_cache_bytes(args.block_cache_mb << 20)
        .with_entry_cache_bytes(args.entry_cache_mb << 20);
    let result =
        weir::testing::with_state_backend(backend, Some(&shared), || -> BenchResult<Report> {
            let function = StoreValue {
                value: ValueStateDescriptor::new("value"),
            };
            let mut harness: OperatorHarness<(u64, u8), ()> =
                OperatorHarness::keyed(function, |r: &(u64, u8)| r.0, 0, 1, 128);
            harness.open(None)?;
            let fill = Instant::now();
            let mut chunk = Vec::with_capacity(4096);
            for key in 0..keys {
                chunk.push((key, 1u8));
                if chunk.len() == 4096 {
                    harness.process(std::mem::take(&mut chunk))?;
                }
            }
            harness.process(chunk)?;
            let fill = fill.elapsed();
            eprintln!("bench: {keys} keys written in {:.1} s", fill.as_secs_f64());

            let started = Instant::now();
            let first = harness.snapshot(1)?;
            let first_ms = millis(started.elapsed());
            let (first_bytes, mut files) = new_shared_bytes(&first, &Default::default());

            // The bulk load leaves compactions behind that rewrite files for a
            // while; checkpoints without changes show when they are done (at
            // most a minute), and the last one is the baseline.
            let settle = Instant::now();
            let mut id = 1;
            let mut full_bytes = first_bytes;
            let mut unsettled_bytes = None;
            while settle.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_secs(2));
                id += 1;
                let snapshot = harness.snapshot(id)?;
                let (new_bytes, names) = new_shared_bytes(&snapshot, &files);
                unsettled_bytes.get_or_insert(new_bytes);
                full_bytes = total_shared_bytes(&snapshot);
                files = names;
                if new_bytes * 1000 < full_bytes {
                    break;
                }
            }
            let settle_s = settle.elapsed().as_secs_f64();

            // 1% of the keys, spread over the whole key space.
            let changed: Vec<(u64, u8)> = (0..keys).step_by(100).map(|k| (k, 2u8)).collect();
            let changed_count = changed.len();
            for chunk in changed.chunks(4096) {
                harness.process(chunk.to_vec())?;
            }
            let started = Instant::now();
            let second = harness.snapshot(id + 1)?;
            let second_ms = millis(started.elapsed());
            let (incremental_bytes, _) = new_shared_bytes(&second, &files);

            let mut report = Report::new(args, keys, fill)
                .with("keys", json!(keys))
                .with("value_bytes", json!(100))
                .with("block_cache_mb", json!(args.block_cache_mb))
                .with("first_checkpoint_bytes", json!(first_bytes))
                .with("first_checkpoint_ms", json!(first_ms))
                .with(
                    "next_checkpoint_new_bytes_while_compacting",
                    json!(unsettled_bytes),
                )
                .with("compactions_settled_after_s", json!(settle_s))
                .with("full_checkpoint_bytes", json!(full_bytes))
                .with("changed_keys", json!(changed_count))
                .with("incremental_checkpoint_bytes", json!(incremental_bytes))
                .with("incremental_checkpoint_ms", json!(second_ms))
                .with(
                    "incremental_over_full",
                    json!(incremental_bytes as f64 / full_bytes.max(1) as f64),
                );
            report.parallelism = 1;
            Ok(report)
        });
    let _ = std::fs::remove_dir_all(&root);
    result
}

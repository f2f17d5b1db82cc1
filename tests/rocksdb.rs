//! The RocksDB state backend beyond the shared keyed-state suite (which
//! `tests/state.rs` runs for every backend):
//! - **incremental checkpoint chains**: each checkpoint uploads only the SST
//!   files the shared directory lacks; discarding a subsumed checkpoint deletes
//!   the shared files no retained checkpoint refers to, and every retained one
//!   still restores;
//! - **damaged checkpoints**: a corrupted or missing shared file is an error
//!   naming the file; the heap backend refuses an incremental RocksDB snapshot
//!   with an error saying what to do;
//! - **the canonical format**: a heap snapshot restores into RocksDB and a full
//!   RocksDB snapshot into the heap; a savepoint is canonical even when
//!   checkpoints are incremental;
//! - **memory**: state ten times the configured memory is kept and read back;
//! - **local directories** are removed when a job's subtasks end;
//! - **whole jobs**: their checkpoints are incremental, `weir inspect` and the
//!   pre-flight check see that state, and the shared directory holds exactly
//!   the files the retained checkpoint refers to after many were subsumed.
#![cfg(feature = "rocksdb")]

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use weir::runtime::checkpoint::metadata::SubtaskStateMetadata;
use weir::runtime::checkpoint::{
    CheckpointMetadata, CheckpointStorage, FsStorage, StateHandle, SubtaskState,
};
use weir::runtime::snapshot::OperatorSnapshot;
use weir::state::{
    HeapStateBackend, ListStateDescriptor, MapStateDescriptor, RocksDbBackend,
    ValueStateDescriptor, ValueStateWithDefault,
};
use weir::testing::{with_state_backend, OperatorHarness};
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};

const QUERY: u32 = u32::MAX;

/// Per key: a count, the values seen (list) and the last value per residue mod 7 (map).
#[derive(Clone)]
struct Counter {
    count: ValueStateWithDefault<u64>,
    seen: ListStateDescriptor<u32>,
    by_residue: MapStateDescriptor<u8, u32>,
}

impl Counter {
    fn new() -> Self {
        Counter {
            count: ValueStateDescriptor::new("count").with_default(0),
            seen: ListStateDescriptor::new("seen"),
            by_residue: MapStateDescriptor::new("by-residue"),
        }
    }
}

/// (key, count, list length, map length)
type Reply = (u32, u64, usize, usize);

impl Lifecycle for Counter {}

impl KeyedProcessFunction<u32, (u32, u32), Reply> for Counter {
    fn process_element(
        &mut self,
        (key, value): (u32, u32),
        ctx: &mut KeyedContext<u32>,
        out: &mut Collector<Reply>,
    ) -> Result<(), UserError> {
        if value == QUERY {
            let count = ctx.state(&self.count)?.value().unwrap_or(0);
            let seen = ctx.state(&self.seen)?.len();
            let residues = ctx.state(&self.by_residue)?.len();
            out.collect((key, count, seen, residues));
            return Ok(());
        }
        ctx.state(&self.count)?.modify(|c| *c += 1);
        ctx.state(&self.seen)?.add(value);
        ctx.state(&self.by_residue)?.put((value % 7) as u8, value);
        Ok(())
    }
}

type Harness = OperatorHarness<(u32, u32), Reply>;

fn harness(restored: Option<OperatorSnapshot>) -> Result<Harness, UserError> {
    let mut h = OperatorHarness::keyed(Counter::new(), |r: &(u32, u32)| r.0, 0, 1, 128);
    h.open(restored)?;
    Ok(h)
}

/// Feeds `rounds` values to each of `keys` keys and returns the expected replies.
fn feed(h: &mut Harness, keys: u32, from: u32, rounds: u32, model: &mut BTreeMap<u32, Vec<u32>>) {
    for round in from..from + rounds {
        let batch: Vec<(u32, u32)> = (0..keys).map(|k| (k, round * 1000 + k)).collect();
        for &(k, v) in &batch {
            model.entry(k).or_default().push(v);
        }
        h.process(batch).unwrap();
    }
}

fn expected(model: &BTreeMap<u32, Vec<u32>>) -> Vec<Reply> {
    model
        .iter()
        .map(|(k, vs)| {
            let residues: HashSet<u32> = vs.iter().map(|v| v % 7).collect();
            (*k, vs.len() as u64, vs.len(), residues.len())
        })
        .collect()
}

fn query(h: &mut Harness, keys: u32) -> Vec<Reply> {
    h.take_output();
    h.process((0..keys).map(|k| (k, QUERY)).collect()).unwrap();
    let mut replies = h.take_output();
    replies.sort();
    replies
}

fn rocksdb(local: &Path) -> RocksDbBackend {
    RocksDbBackend::new()
        .with_local_dirs([local.to_path_buf()])
        .with_block_cache_bytes(1 << 20)
        .with_write_buffer_bytes(4 << 20)
}

fn metadata(id: u64) -> CheckpointMetadata {
    CheckpointMetadata {
        version: 1,
        job_name: "rocksdb".into(),
        job_id: "job".into(),
        lineage: "lineage".into(),
        checkpoint_id: id,
        savepoint: false,
        trigger_time_ms: 0,
        completion_time_ms: 0,
        operators: Vec::new(),
        subtasks: vec![SubtaskStateMetadata {
            operators: vec!["counter".into()],
            subtask: 0,
            handle: StateHandle::File {
                name: "counter-0.state".into(),
                size: 0,
            },
            in_flight_bytes: 0,
        }],
    }
}

/// Writes `snapshot` as checkpoint `id` the way a subtask and the coordinator do.
fn complete(storage: &FsStorage, id: u64, snapshot: OperatorSnapshot) -> SubtaskState {
    let state = SubtaskState {
        checkpoint_id: id,
        operators: vec![("counter".into(), snapshot)],
        ..SubtaskState::default()
    };
    storage
        .write_shared_refs(id, "counter-0.state", &state.shared_refs())
        .unwrap();
    storage
        .write_state(id, "counter-0.state", &state.encode().unwrap())
        .unwrap();
    storage.write_metadata(&metadata(id)).unwrap();
    state
}

fn files_in(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_incremental_chain_uploads_new_files_only_and_deletes_what_no_retained_checkpoint_needs() {
    let root = tempfile::tempdir().unwrap();
    let storage = FsStorage::new(root.path(), "job");
    let shared: PathBuf = storage.shared_dir().unwrap();
    let mut model = BTreeMap::new();
    let mut retained: Vec<(u64, SubtaskState)> = Vec::new();
    let mut deleted_any = false;
    let mut reused = 0;
    with_state_backend(rocksdb(&root.path().join("local")), Some(&shared), || {
        let mut h = harness(None).unwrap();
        let mut previous: HashSet<String> = HashSet::new();
        for id in 1..=8u64 {
            feed(&mut h, 2_000, id as u32 * 3, 3, &mut model);
            let before = files_in(&shared);
            let snapshot = h.snapshot(id).unwrap();
            let handle = &snapshot.keyed_handles[0];
            let names: HashSet<String> = handle.shared.iter().map(|f| f.name.clone()).collect();
            let added: HashSet<String> = files_in(&shared).difference(&before).cloned().collect();
            let expected_new: HashSet<String> = names.difference(&previous).cloned().collect();
            assert!(!added.is_empty(), "checkpoint {id} flushed new data");
            assert_eq!(
                added, expected_new,
                "checkpoint {id} uploads exactly the files the previous one lacked"
            );
            reused += names.intersection(&previous).count();
            previous = names;
            retained.push((id, complete(&storage, id, snapshot)));
            // Keep two checkpoints, as `retained: 2` does.
            if retained.len() > 2 {
                let (old, _) = retained.remove(0);
                let before = files_in(&shared);
                storage.discard(old).unwrap();
                deleted_any |= files_in(&shared).len() < before.len();
            }
            // Every file in the shared directory is referenced by a retained
            // checkpoint, and every referenced file is there.
            let referenced: HashSet<String> =
                retained.iter().flat_map(|(_, s)| s.shared_refs()).collect();
            assert_eq!(files_in(&shared), referenced, "after checkpoint {id}");
        }
    });
    assert!(
        deleted_any,
        "compactions made some shared files unreferenced"
    );
    // Both retained checkpoints restore, each to its own state.
    with_state_backend(rocksdb(&root.path().join("local-2")), Some(&shared), || {
        let (_, newest) = retained.last().unwrap();
        let mut h = harness(Some(newest.operators[0].1.clone())).unwrap();
        assert_eq!(query(&mut h, 2_000), expected(&model));
    });
}

fn one_incremental_snapshot(root: &Path) -> (OperatorSnapshot, PathBuf, BTreeMap<u32, Vec<u32>>) {
    let shared = root.join("shared");
    let mut model = BTreeMap::new();
    let snapshot = with_state_backend(rocksdb(&root.join("local")), Some(&shared), || {
        let mut h = harness(None).unwrap();
        feed(&mut h, 500, 0, 4, &mut model);
        h.snapshot(1).unwrap()
    });
    (snapshot, shared, model)
}

#[test]
fn a_corrupted_shared_file_is_detected_and_named() {
    let root = tempfile::tempdir().unwrap();
    let (snapshot, shared, _) = one_incremental_snapshot(root.path());
    let file = shared.join(&snapshot.keyed_handles[0].shared[0].name);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = with_state_backend(rocksdb(&root.path().join("restore")), Some(&shared), || {
        harness(Some(snapshot)).err().expect("the restore fails")
    });
    let message = err.to_string();
    assert!(
        message.contains("is corrupt") && message.contains(&file.display().to_string()),
        "{message}"
    );
}

#[test]
fn a_missing_shared_file_is_detected_and_named() {
    let root = tempfile::tempdir().unwrap();
    let (snapshot, shared, _) = one_incremental_snapshot(root.path());
    let file = shared.join(&snapshot.keyed_handles[0].shared[0].name);
    std::fs::remove_file(&file).unwrap();
    let err = with_state_backend(rocksdb(&root.path().join("restore")), Some(&shared), || {
        harness(Some(snapshot)).err().expect("the restore fails")
    });
    let message = err.to_string();
    assert!(
        message.contains("is missing") && message.contains(&file.display().to_string()),
        "{message}"
    );
}

#[test]
fn the_heap_backend_refuses_an_incremental_rocksdb_snapshot_clearly() {
    let root = tempfile::tempdir().unwrap();
    let (snapshot, _, _) = one_incremental_snapshot(root.path());
    let err = with_state_backend(HeapStateBackend, None, || {
        harness(Some(snapshot)).err().expect("the restore fails")
    });
    let message = err.to_string();
    assert!(
        message.contains("incrementally") && message.contains("savepoint"),
        "{message}"
    );
}

#[test]
fn full_snapshots_move_between_the_heap_and_rocksdb_in_the_canonical_format() {
    let root = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    let heap_snapshot = with_state_backend(HeapStateBackend, None, || {
        let mut h = harness(None).unwrap();
        feed(&mut h, 300, 0, 3, &mut model);
        h.snapshot(1).unwrap()
    });
    // Heap -> RocksDB, which goes on and takes a full snapshot.
    let rocks_snapshot = with_state_backend(rocksdb(&root.path().join("a")), None, || {
        let mut h = harness(Some(heap_snapshot.clone())).unwrap();
        assert_eq!(query(&mut h, 300), expected(&model));
        feed(&mut h, 300, 3, 2, &mut model);
        let snapshot = h.snapshot(2).unwrap();
        assert!(
            snapshot.keyed_handles.is_empty(),
            "a full snapshot has no handle"
        );
        snapshot
    });
    // RocksDB -> heap.
    with_state_backend(HeapStateBackend, None, || {
        let mut h = harness(Some(rocks_snapshot.clone())).unwrap();
        assert_eq!(query(&mut h, 300), expected(&model));
    });
    // The two backends write the same bytes for the same state.
    let heap_again = with_state_backend(HeapStateBackend, None, || {
        let mut h = harness(Some(rocks_snapshot.clone())).unwrap();
        h.snapshot(3).unwrap()
    });
    let rocks_again = with_state_backend(rocksdb(&root.path().join("b")), None, || {
        let mut h = harness(Some(rocks_snapshot.clone())).unwrap();
        h.snapshot(3).unwrap()
    });
    assert_eq!(heap_again.keyed.len(), rocks_again.keyed.len());
}

#[test]
fn a_savepoint_is_canonical_even_with_incremental_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared");
    let mut model = BTreeMap::new();
    let savepoint = with_state_backend(rocksdb(&root.path().join("a")), Some(&shared), || {
        let mut h = harness(None).unwrap();
        feed(&mut h, 200, 0, 2, &mut model);
        assert!(!h.snapshot(1).unwrap().keyed_handles.is_empty());
        h.savepoint(2).unwrap()
    });
    assert!(savepoint.keyed_handles.is_empty() && !savepoint.keyed.is_empty());
    with_state_backend(HeapStateBackend, None, || {
        let mut h = harness(Some(savepoint)).unwrap();
        assert_eq!(query(&mut h, 200), expected(&model));
    });
}

#[test]
fn state_ten_times_the_configured_memory_is_kept_and_read_back() {
    // 1 MiB of block cache and 4 MiB of write buffers; ~60 MB of state.
    let root = tempfile::tempdir().unwrap();
    let backend = rocksdb(&root.path().join("local"));
    #[derive(Clone)]
    struct Big(ValueStateDescriptor<Vec<u8>>);
    impl Lifecycle for Big {}

    impl KeyedProcessFunction<u32, (u32, bool), (u32, u8)> for Big {
        fn process_element(
            &mut self,
            (key, read): (u32, bool),
            ctx: &mut KeyedContext<u32>,
            out: &mut Collector<(u32, u8)>,
        ) -> Result<(), UserError> {
            let mut state = ctx.state(&self.0)?;
            if read {
                let value = state.value().unwrap_or_default();
                let ok = value.len() == 128 && value[..4] == key.to_le_bytes();
                out.collect((key, u8::from(ok)));
            } else {
                let mut value = vec![key as u8; 128];
                value[..4].copy_from_slice(&key.to_le_bytes());
                state.update(value);
            }
            Ok(())
        }
    }
    with_state_backend(backend, None, || {
        let mut h: OperatorHarness<(u32, bool), (u32, u8)> = OperatorHarness::keyed(
            Big(ValueStateDescriptor::new("big")),
            |r: &(u32, bool)| r.0,
            0,
            1,
            128,
        );
        h.open(None).unwrap();
        let keys = 400_000u32;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(4096) {
            h.process(chunk.iter().map(|&k| (k, false)).collect())
                .unwrap();
        }
        let mut good = 0usize;
        for chunk in (0..keys).collect::<Vec<_>>().chunks(4096) {
            h.process(chunk.iter().map(|&k| (k, true)).collect())
                .unwrap();
            good += h.take_output().iter().filter(|(_, ok)| *ok == 1).count();
        }
        assert_eq!(good, keys as usize);
    });
}

#[test]
fn a_jobs_local_directories_are_removed_when_it_ends() {
    let root = tempfile::tempdir().unwrap();
    let local = root.path().join("local");
    let env = StreamEnv::with_parallelism(2);
    env.set_state_backend(rocksdb(&local));
    let counts = env
        .from_collection((0..1_000u32).map(|i| (i % 10, i)).collect::<Vec<_>>())
        .key_by(|r: &(u32, u32)| r.0)
        .process(Counter::new())
        .collect();
    env.execute_blocking("local-dirs").unwrap();
    assert!(counts.take().is_empty());
    assert_eq!(
        files_in(&local),
        HashSet::new(),
        "nothing is left in {}",
        local.display()
    );
}

/// A bounded job at parallelism 2 counting `records` records over `keys`
/// keys with `backend` (`None`: the heap), checkpoints under `checkpoints`.
fn counting_job(
    backend: Option<RocksDbBackend>,
    checkpoints: &Path,
    records: u32,
    keys: u32,
) -> StreamEnv {
    let env = StreamEnv::with_parallelism(2);
    env.set_checkpoint_dir(checkpoints.to_str().unwrap());
    match backend {
        Some(backend) => env.set_state_backend(backend),
        None => env.set_state_backend(HeapStateBackend),
    };
    env.from_collection((0..records).map(|i| (i % keys, i)).collect::<Vec<_>>())
        .uid("values")
        .key_by(|r: &(u32, u32)| r.0)
        .process(Counter::new())
        .uid("counter")
        .discard();
    env
}

fn retained_checkpoint(checkpoints: &Path, job_id: &str) -> PathBuf {
    let mut chk: Vec<PathBuf> = std::fs::read_dir(checkpoints.join(job_id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("_metadata").is_file())
        .collect();
    assert_eq!(chk.len(), 1, "one retained checkpoint: {chk:?}");
    chk.pop().unwrap()
}

#[test]
fn an_incremental_checkpoint_is_inspected_and_restores_only_onto_rocksdb() {
    use weir::inspect::StateReportKind;
    use weir::Verdict;
    let root = tempfile::tempdir().unwrap();
    let checkpoints = root.path().join("checkpoints");
    let local = root.path().join("local");
    let result = counting_job(Some(rocksdb(&local)), &checkpoints, 2_000, 50)
        .execute_blocking("incremental")
        .unwrap();
    let chk = retained_checkpoint(&checkpoints, &result.job_id);

    // `weir inspect` shows the keyed state by the shared files it refers to.
    let report = weir::inspect::inspect(&chk).unwrap();
    let counter = report
        .operators
        .iter()
        .find(|o| o.uid == "counter")
        .expect("the counter operator");
    let keyed = counter
        .states
        .iter()
        .find(|s| s.name == "keyed (rocksdb, incremental)")
        .unwrap_or_else(|| panic!("an incremental keyed state in {:?}", counter.states));
    assert_eq!(keyed.kind, StateReportKind::OpaqueKeyed);
    let shared: u64 = std::fs::read_dir(checkpoints.join(&result.job_id).join("shared"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        keyed.bytes >= shared && shared > 0,
        "{} bytes reported, {shared} bytes of shared files",
        keyed.bytes
    );
    assert!(counter.state_bytes >= keyed.bytes);

    // The pre-flight check: only a RocksDB job can restore it.
    let verdict = |env: StreamEnv| {
        env.check_restore(&chk, "incremental")
            .unwrap()
            .check
            .uids
            .into_iter()
            .find(|u| u.uid == "counter")
            .unwrap()
            .verdict
    };
    let onto_heap = verdict(counting_job(None, &checkpoints, 2_000, 50));
    let Verdict::StateTypeMismatch { snapshot, job } = &onto_heap else {
        panic!("onto the heap backend: {onto_heap:?}");
    };
    assert!(
        snapshot.contains("incrementally by the rocksdb backend"),
        "{snapshot}"
    );
    assert!(job.contains("the heap backend"), "{job}");
    let onto_rocksdb = verdict(counting_job(Some(rocksdb(&local)), &checkpoints, 2_000, 50));
    assert_eq!(onto_rocksdb, Verdict::Matched);
}

#[test]
fn a_job_keeps_exactly_the_shared_files_its_retained_checkpoint_refers_to() {
    let root = tempfile::tempdir().unwrap();
    let checkpoints = root.path().join("checkpoints");
    // Enough records (in small batches) for periodic checkpoints to complete
    // and be subsumed before the final one; how many does not matter: the
    // shared files must always match what the retained checkpoint lists.
    let env = counting_job(
        Some(rocksdb(&root.path().join("local"))),
        &checkpoints,
        20_000,
        500,
    );
    env.enable_checkpointing(std::time::Duration::from_millis(20));
    env.set_batch_size(64);
    let result = env.execute_blocking("shared-files").unwrap();
    let chk = retained_checkpoint(&checkpoints, &result.job_id);
    let referenced: HashSet<String> = std::fs::read_dir(&chk)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "refs"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !referenced.is_empty(),
        "the final checkpoint is incremental"
    );
    let shared = files_in(&checkpoints.join(&result.job_id).join("shared"));
    assert_eq!(shared, referenced, "no shared file is missing or left over");
}

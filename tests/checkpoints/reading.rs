//! Reading completed checkpoints back: [`load`] reads one from its files
//! (`FsStorage`, `SubtaskState::decode`), and [`Loaded`] inspects keyed state
//! by restoring the keyed operator's snapshot into an `OperatorHarness` and
//! probing each key. In-flight records of unaligned checkpoints (channel
//! state, rmp-serde encoded `RecordBatch`es) are decoded by the engine's own
//! operator-state decoder ([`decode_batches`]), since integration tests
//! cannot use rmp-serde.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir::keys::{key_group, KeyGroupRange};
use weir::runtime::checkpoint::metadata::{ChannelState, OperatorMetadata, SubtaskStateMetadata};
use weir::runtime::checkpoint::{CheckpointMetadata, CheckpointStorage, FsStorage, SubtaskState};
use weir::runtime::snapshot::{ListStateSnapshot, OperatorSnapshot, Redistribution};
use weir::state::{ListStateDescriptor, StateInitContext};
use weir::testing::OperatorHarness;
use weir::{Collector, Lifecycle, OneInputOperator, RecordBatch, UserError};

use crate::kit::{rec, sorted, Rec, Tallied, Tally, KEYS, PROBE};

/// A completed checkpoint, read back from its files.
pub(crate) struct Loaded {
    pub(crate) meta: CheckpointMetadata,
    parts: Vec<(SubtaskStateMetadata, SubtaskState)>,
}

pub(crate) fn load(storage: &FsStorage, id: u64) -> Loaded {
    let meta = storage
        .read_metadata(id)
        .unwrap_or_else(|e| panic!("checkpoint {id}: {e}"));
    assert_eq!(meta.checkpoint_id, id);
    let parts = meta
        .subtasks
        .iter()
        .map(|s| {
            let bytes = storage
                .read_state(id, &s.handle)
                .unwrap_or_else(|e| panic!("checkpoint {id}: {e}"));
            assert_eq!(bytes.len() as u64, s.handle.size(), "{s:?}");
            let state = SubtaskState::decode(&bytes).unwrap();
            assert_eq!(state.checkpoint_id, id);
            (s.clone(), state)
        })
        .collect();
    Loaded { meta, parts }
}

/// A snapshot of an operator: (subtask index, snapshot).
type Snapshots = Vec<(usize, OperatorSnapshot)>;

impl Loaded {
    fn operator(&self, uid: &str) -> &OperatorMetadata {
        self.meta
            .operators
            .iter()
            .find(|o| o.uid == uid)
            .unwrap_or_else(|| panic!("no operator {uid} in {:?}", self.meta.operators))
    }

    /// The snapshots of operator `uid`, by subtask.
    fn snapshots(&self, uid: &str) -> Snapshots {
        let mut out: Snapshots = self
            .parts
            .iter()
            .filter_map(|(m, s)| {
                let (_, snapshot) = s.operators.iter().find(|(u, _)| u == uid)?;
                Some((m.subtask, snapshot.clone()))
            })
            .collect();
        out.sort_by_key(|(s, _)| *s);
        assert_eq!(out.len(), self.operator(uid).parallelism, "{uid}");
        out
    }

    /// The raw state of operator `uid` per subtask, as text.
    pub(crate) fn raw(&self, uid: &str) -> BTreeMap<usize, String> {
        self.snapshots(uid)
            .into_iter()
            .map(|(s, snap)| (s, String::from_utf8(snap.raw.unwrap_or_default()).unwrap()))
            .collect()
    }

    /// The positions of source `uid` (records emitted before its barrier), per subtask.
    pub(crate) fn positions(&self, uid: &str) -> BTreeMap<usize, u64> {
        self.raw(uid)
            .into_iter()
            .map(|(s, raw)| (s, raw.parse().unwrap()))
            .collect()
    }

    /// Every id in the keyed state of the [`Tally`] `uid`, over all subtasks, sorted.
    pub(crate) fn tallied(&self, uid: &str) -> Vec<u64> {
        let op = self.operator(uid).clone();
        let mut all = Vec::new();
        for (subtask, snapshot) in self.snapshots(uid) {
            let mut harness = OperatorHarness::<Rec, Tallied>::keyed(
                Tally::new(),
                |r: &Rec| r.0,
                subtask,
                op.parallelism,
                op.max_parallelism,
            );
            harness.open(Some(snapshot)).unwrap();
            for key in 0..KEYS {
                let owner = KeyGroupRange::owner_of(
                    key_group(&key, op.max_parallelism),
                    op.max_parallelism,
                    op.parallelism,
                );
                if owner == subtask {
                    harness.process(vec![(key, PROBE)]).unwrap();
                }
            }
            for (key, ids) in harness.take_output() {
                assert!(
                    ids.iter().all(|&id| rec(id).0 == key),
                    "key {key} holds foreign ids {ids:?}"
                );
                all.extend(ids);
            }
        }
        sorted(all)
    }

    /// Every record in channel state (input and output side, all subtasks), sorted.
    pub(crate) fn in_flight(&self) -> Vec<u64> {
        sorted(
            self.parts
                .iter()
                .flat_map(|(_, s)| s.input_channels.iter().chain(&s.output_channels))
                .flat_map(|c| decode_batches(&c.batches))
                .map(|(_, id)| id)
                .collect(),
        )
    }

    /// Whether any subtask captured in-flight records.
    pub(crate) fn has_channel_state(&self) -> bool {
        self.parts
            .iter()
            .any(|(_, s)| !s.input_channels.is_empty() || !s.output_channels.is_empty())
    }

    /// The state of the subtask `subtask` of the chain headed by `uid`.
    pub(crate) fn part(&self, uid: &str, subtask: usize) -> &SubtaskState {
        &self
            .parts
            .iter()
            .find(|(m, _)| {
                m.operators.first().map(String::as_str) == Some(uid) && m.subtask == subtask
            })
            .unwrap_or_else(|| panic!("no subtask {uid}-{subtask}"))
            .1
    }
}

/// Reads an operator list state "batches" of `RecordBatch<Rec>` elements in
/// `initialize_state`: the engine's own decoder applied to channel state.
#[derive(Clone)]
struct BatchDecoder(Arc<Mutex<Vec<RecordBatch<Rec>>>>);

impl Lifecycle for BatchDecoder {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let batches = ListStateDescriptor::<RecordBatch<Rec>>::new("batches");
        *self.0.lock().unwrap() = ctx.operator_state().list(&batches)?.get()?;
        Ok(())
    }
}

impl OneInputOperator<u8, u8> for BatchDecoder {
    fn process_batch(
        &mut self,
        _batch: RecordBatch<u8>,
        _out: &mut Collector<u8>,
    ) -> Result<(), UserError> {
        Ok(())
    }
}

/// The records of captured in-flight batches (each an rmp-serde `RecordBatch<Rec>`).
fn decode_batches(batches: &[Vec<u8>]) -> Vec<Rec> {
    if batches.is_empty() {
        return Vec::new();
    }
    let decoded = Arc::default();
    let mut harness = OperatorHarness::<u8, u8>::new(BatchDecoder(Arc::clone(&decoded)), 0, 1, 128);
    let snapshot = OperatorSnapshot {
        lists: vec![ListStateSnapshot::new(
            "batches",
            Redistribution::EvenSplit,
            batches.to_vec(),
        )],
        ..OperatorSnapshot::default()
    };
    harness
        .open(Some(snapshot))
        .unwrap_or_else(|e| panic!("channel state is not a batch of (u32, u64): {e}"));
    let batches = std::mem::take(&mut *decoded.lock().unwrap());
    batches.into_iter().flat_map(|b| b.records).collect()
}

pub(crate) fn channel_records(channels: &[ChannelState]) -> Vec<u64> {
    channels
        .iter()
        .flat_map(|c| decode_batches(&c.batches))
        .map(|(_, id)| id)
        .collect()
}

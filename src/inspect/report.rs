//! One snapshot, read completely: its operators and, per operator, its states
//! with their kind, number of keys or entries, and bytes.
//!
//! The runtime stores state as opaque bytes ([`OperatorSnapshot`]); this
//! module decodes as much as the API layer's own encodings allow without
//! knowing the record types: the msgpack *array headers* hold the counts.
//! Keyed bytes another state backend wrote in its own format are reported as
//! one `opaque keyed` state with their size, not as an error, and so is the
//! keyed state of an incremental checkpoint (`keyed (rocksdb, incremental)`:
//! the shared files it refers to and the backend's inline bytes); a damaged
//! file (checksum, magic, truncation) is an error.

use crate::runtime::codec;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weir_actors::checkpoint::metadata::SubtaskState;
use weir_actors::restore;
use weir_actors::snapshot::{OperatorSnapshot, Redistribution};

use super::table::{Align, Table};
use super::{format_rfc3339_millis, InspectError, SnapshotKind};
use crate::state::key_group_format::read_key_group;
use crate::state::StateKind;

/// A snapshot (checkpoint or savepoint), as [`inspect`] reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotReport {
    /// The snapshot directory.
    pub path: PathBuf,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// The job's name.
    pub job_name: String,
    /// The job's id.
    pub job_id: String,
    /// The checkpoint id.
    pub id: u64,
    /// When it was triggered, RFC 3339 UTC.
    pub triggered: String,
    /// When it completed, RFC 3339 UTC.
    pub completed: String,
    /// When it was triggered, ms since the epoch.
    pub trigger_time_ms: i64,
    /// When it completed, ms since the epoch.
    pub completion_time_ms: i64,
    /// Bytes of state over all subtask files (payloads, as the metadata records them).
    pub state_bytes: u64,
    /// Number of subtask state files.
    pub subtask_files: usize,
    /// Bytes of captured in-flight records (unaligned checkpoints).
    pub in_flight_bytes: u64,
    /// Every operator of the job, in the metadata's order.
    pub operators: Vec<OperatorReport>,
}

/// One operator of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperatorReport {
    /// Its stable id.
    pub uid: String,
    /// Its display name.
    pub name: String,
    /// Its parallelism when the snapshot was taken.
    pub parallelism: usize,
    /// Its max parallelism (the number of key groups).
    pub max_parallelism: usize,
    /// Bytes of its state over all subtasks.
    pub state_bytes: u64,
    /// Bytes of in-flight records captured at its inputs (as the head of its
    /// chain) and outputs (as the tail).
    pub in_flight_bytes: u64,
    /// Its states, keyed first, by kind and name.
    pub states: Vec<StateReport>,
}

/// One state of an operator, summed over its subtasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateReport {
    /// The state's name (`timers`, `raw` and `keyed` for those kinds).
    pub name: String,
    /// What kind of state it is.
    pub kind: StateReportKind,
    /// The stored type, for keyed states (as `std::any::type_name` spells it).
    pub type_name: Option<String>,
    /// Keys for keyed states, timers for timers, elements for operator list
    /// states, entries of one copy for broadcast states; `None` when the
    /// bytes do not say (raw and opaque state).
    pub entries: Option<u64>,
    /// Bytes of its serialised entries (for broadcast state, all copies).
    pub bytes: u64,
}

/// The kinds of state a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StateReportKind {
    /// Keyed value state.
    KeyedValue,
    /// Keyed list state.
    KeyedList,
    /// Keyed map state.
    KeyedMap,
    /// Keyed reducing state.
    KeyedReducing,
    /// Keyed aggregating state.
    KeyedAggregating,
    /// Keyed bytes in a format this reader does not know (another state backend).
    OpaqueKeyed,
    /// Event-time and processing-time timers of a keyed operator.
    Timers,
    /// Operator list state, split evenly on restore.
    OperatorList,
    /// Operator list state, given whole to every subtask on restore.
    UnionList,
    /// Broadcast (map) state, the same on every subtask.
    Broadcast,
    /// The operator's own bytes.
    Raw,
}

impl StateReportKind {
    fn of_keyed(kind: StateKind) -> Self {
        match kind {
            StateKind::Value => StateReportKind::KeyedValue,
            StateKind::List => StateReportKind::KeyedList,
            StateKind::Map => StateReportKind::KeyedMap,
            StateKind::Reducing => StateReportKind::KeyedReducing,
            StateKind::Aggregating => StateReportKind::KeyedAggregating,
        }
    }
}

impl fmt::Display for StateReportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            StateReportKind::KeyedValue => "keyed value",
            StateReportKind::KeyedList => "keyed list",
            StateReportKind::KeyedMap => "keyed map",
            StateReportKind::KeyedReducing => "keyed reducing",
            StateReportKind::KeyedAggregating => "keyed aggregating",
            StateReportKind::OpaqueKeyed => "opaque keyed",
            StateReportKind::Timers => "timers",
            StateReportKind::OperatorList => "operator list",
            StateReportKind::UnionList => "union list",
            StateReportKind::Broadcast => "broadcast",
            StateReportKind::Raw => "raw",
        })
    }
}

/// Reads the snapshot (checkpoint or savepoint) in directory `path`: its
/// metadata and every state file, and decodes what each operator holds.
pub fn inspect(path: &Path) -> Result<SnapshotReport, InspectError> {
    if !path.exists() {
        return Err(InspectError::Open(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    let (storage, metadata) = restore::open_snapshot_dir(path).map_err(InspectError::Open)?;
    let (metadata, states) =
        restore::read(&storage, metadata.checkpoint_id).map_err(|cause| InspectError::Read {
            path: path.to_path_buf(),
            cause,
        })?;

    let mut operators: Vec<OperatorReport> = metadata
        .operators
        .iter()
        .map(|o| OperatorReport {
            uid: o.uid.clone(),
            name: o.name.clone(),
            parallelism: o.parallelism,
            max_parallelism: o.max_parallelism,
            state_bytes: 0,
            in_flight_bytes: 0,
            states: Vec::new(),
        })
        .collect();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (meta, state) in metadata.subtasks.iter().zip(&states) {
        for (uid, snapshot) in &state.operators {
            tallies.entry(uid.clone()).or_default().add(snapshot);
        }
        let (inputs, outputs) = in_flight(state);
        if let Some(head) = meta.operators.first() {
            tallies.entry(head.clone()).or_default().in_flight += inputs;
        }
        if let Some(tail) = meta.operators.last() {
            tallies.entry(tail.clone()).or_default().in_flight += outputs;
        }
    }
    for (uid, tally) in tallies {
        let index = match operators.iter().position(|o| o.uid == uid) {
            Some(index) => index,
            None => {
                // State for an operator the metadata does not list: show it
                // rather than hide it.
                operators.push(OperatorReport {
                    uid: uid.clone(),
                    name: "(not in the metadata)".into(),
                    parallelism: 0,
                    max_parallelism: 0,
                    state_bytes: 0,
                    in_flight_bytes: 0,
                    states: Vec::new(),
                });
                operators.len() - 1
            }
        };
        let operator = &mut operators[index];
        operator.state_bytes = tally.bytes;
        operator.in_flight_bytes = tally.in_flight;
        operator.states = tally.into_states();
    }

    Ok(SnapshotReport {
        path: path.to_path_buf(),
        kind: SnapshotKind::of(metadata.savepoint),
        job_name: metadata.job_name.clone(),
        job_id: metadata.job_id.clone(),
        id: metadata.checkpoint_id,
        triggered: format_rfc3339_millis(metadata.trigger_time_ms),
        completed: format_rfc3339_millis(metadata.completion_time_ms),
        trigger_time_ms: metadata.trigger_time_ms,
        completion_time_ms: metadata.completion_time_ms,
        state_bytes: metadata.state_size(),
        subtask_files: metadata.subtasks.len(),
        in_flight_bytes: operators.iter().map(|o| o.in_flight_bytes).sum(),
        operators,
    })
}

/// Bytes of in-flight records at a subtask's inputs and at its outputs.
fn in_flight(state: &SubtaskState) -> (u64, u64) {
    let bytes = |channels: &[weir_actors::checkpoint::metadata::ChannelState]| {
        channels
            .iter()
            .flat_map(|c| &c.batches)
            .map(|b| b.len() as u64)
            .sum::<u64>()
    };
    (bytes(&state.input_channels), bytes(&state.output_channels))
}

/// One state, summed over subtasks.
#[derive(Default)]
struct StateTally {
    type_name: Option<String>,
    entries: u64,
    /// Some part's entries could not be counted.
    uncounted: bool,
    bytes: u64,
}

impl StateTally {
    /// Adds a part of the state (a key group, a subtask's list).
    fn add(&mut self, entries: Option<u64>, bytes: u64) {
        match entries {
            Some(n) => self.entries += n,
            None => self.uncounted = true,
        }
        self.bytes += bytes;
    }

    /// Adds a copy of the state (broadcast state: the same on every subtask).
    fn add_copy(&mut self, entries: Option<u64>, bytes: u64) {
        match entries {
            Some(n) => self.entries = self.entries.max(n),
            None => self.uncounted = true,
        }
        self.bytes += bytes;
    }

    fn entries(&self) -> Option<u64> {
        (!self.uncounted).then_some(self.entries)
    }
}

/// One operator's states, summed over its subtasks.
#[derive(Default)]
struct Tally {
    states: BTreeMap<(StateReportKind, String), StateTally>,
    bytes: u64,
    in_flight: u64,
}

impl Tally {
    fn state(&mut self, kind: StateReportKind, name: &str) -> &mut StateTally {
        self.states.entry((kind, name.to_string())).or_default()
    }

    fn add(&mut self, snapshot: &OperatorSnapshot) {
        self.bytes += snapshot.size() as u64;
        for bytes in snapshot.keyed.values() {
            match read_key_group(bytes) {
                Ok(group) => {
                    for state in &group.states {
                        let tally = self.state(StateReportKind::of_keyed(state.kind), &state.name);
                        tally.add(
                            codec::sequence_len(&state.entries),
                            state.entries.len() as u64,
                        );
                        tally
                            .type_name
                            .get_or_insert_with(|| state.type_name.clone());
                    }
                    if !group.timers.is_empty() {
                        self.state(StateReportKind::Timers, "timers").add(
                            codec::sequence_len(&group.timers),
                            group.timers.len() as u64,
                        );
                    }
                }
                Err(_) => self
                    .state(StateReportKind::OpaqueKeyed, "keyed")
                    .add(None, bytes.len() as u64),
            }
        }
        for handle in &snapshot.keyed_handles {
            // Incremental keyed state: the backend's own files, listed with
            // their sizes (the handle's inline bytes count in `size()`).
            let shared: u64 = handle.shared.iter().map(|f| f.size).sum();
            self.bytes += shared;
            self.state(
                StateReportKind::OpaqueKeyed,
                &format!("keyed ({}, incremental)", handle.backend),
            )
            .add(None, shared + handle.data.len() as u64);
        }
        for list in &snapshot.lists {
            let kind = match list.mode {
                Redistribution::EvenSplit => StateReportKind::OperatorList,
                Redistribution::Union => StateReportKind::UnionList,
            };
            let bytes = list.elements.iter().map(|e| e.len() as u64).sum();
            self.state(kind, &list.name)
                .add(Some(list.elements.len() as u64), bytes);
        }
        for (name, bytes) in &snapshot.broadcast {
            self.state(StateReportKind::Broadcast, name)
                .add_copy(codec::sequence_len(bytes), bytes.len() as u64);
        }
        if let Some(raw) = &snapshot.raw {
            self.state(StateReportKind::Raw, "raw")
                .add(None, raw.len() as u64);
        }
    }

    fn into_states(self) -> Vec<StateReport> {
        self.states
            .into_iter()
            .map(|((kind, name), tally)| StateReport {
                name,
                kind,
                entries: tally.entries(),
                type_name: tally.type_name,
                bytes: tally.bytes,
            })
            .collect()
    }
}

impl fmt::Display for SnapshotReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} of job {:?} ({})",
            self.kind, self.id, self.job_name, self.job_id
        )?;
        writeln!(f, "path:       {}", self.path.display())?;
        writeln!(f, "triggered:  {}", self.triggered)?;
        writeln!(f, "completed:  {}", self.completed)?;
        writeln!(
            f,
            "state:      {} bytes in {} subtask files",
            self.state_bytes, self.subtask_files
        )?;
        writeln!(f, "in flight:  {} bytes", self.in_flight_bytes)?;

        writeln!(f)?;
        let mut operators = Table::new(&[
            ("UID", Align::Left),
            ("NAME", Align::Left),
            ("PARALLELISM", Align::Right),
            ("MAX PARALLELISM", Align::Right),
            ("STATE BYTES", Align::Right),
            ("IN-FLIGHT BYTES", Align::Right),
        ]);
        for o in &self.operators {
            operators.row(vec![
                o.uid.clone(),
                o.name.clone(),
                o.parallelism.to_string(),
                o.max_parallelism.to_string(),
                o.state_bytes.to_string(),
                o.in_flight_bytes.to_string(),
            ]);
        }
        write!(f, "{operators}")?;

        writeln!(f)?;
        if self.operators.iter().all(|o| o.states.is_empty()) {
            return writeln!(f, "no state");
        }
        let mut states = Table::new(&[
            ("OPERATOR", Align::Left),
            ("STATE", Align::Left),
            ("KIND", Align::Left),
            ("ENTRIES", Align::Right),
            ("BYTES", Align::Right),
        ]);
        for o in &self.operators {
            for s in &o.states {
                states.row(vec![
                    o.uid.clone(),
                    s.name.clone(),
                    s.kind.to_string(),
                    s.entries.map_or_else(|| "-".into(), |n| n.to_string()),
                    s.bytes.to_string(),
                ]);
            }
        }
        write!(f, "{states}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_actors::checkpoint::metadata::{
        ChannelState, CheckpointMetadata, OperatorMetadata, SubtaskStateMetadata, METADATA_VERSION,
    };
    use weir_actors::checkpoint::{CheckpointStorage, FsStorage};
    use weir_actors::snapshot::ListStateSnapshot;

    use crate::state::key_group_format::{encode_key_group, Timer, TimerKind};
    use crate::state::StateBytes;

    fn keyed_group(states: &[(&str, StateKind, usize)], timers: usize) -> Vec<u8> {
        let states = states
            .iter()
            .map(|(name, kind, keys)| StateBytes {
                name: name.to_string(),
                kind: *kind,
                type_name: "u64".into(),
                entries: codec::encode(&vec![(1u32, 7u64); *keys]).unwrap(),
                ttl: None,
            })
            .collect();
        let timer = Timer {
            kind: TimerKind::EventTime,
            timestamp: 5,
            key: 1u32,
        };
        encode_key_group(states, &vec![timer; timers]).unwrap()
    }

    /// Writes a snapshot of two subtasks of `keyed` (chained behind nothing)
    /// and one of `source` into `dir`, as the runtime would.
    fn write_snapshot(dir: &Path, keyed: [OperatorSnapshot; 2], source: OperatorSnapshot) {
        let storage = FsStorage::of_snapshot_dir(dir);
        let mut subtasks = Vec::new();
        let mut chains: Vec<(&str, usize, OperatorSnapshot, Vec<ChannelState>)> =
            vec![("source", 0, source, Vec::new())];
        let [k0, k1] = keyed;
        chains.push((
            "counts",
            0,
            k0,
            vec![ChannelState {
                index: 0,
                channel: 0,
                batches: vec![vec![0; 10], vec![0; 5]],
            }],
        ));
        chains.push(("counts", 1, k1, Vec::new()));
        for (uid, subtask, snapshot, inputs) in chains {
            let state = SubtaskState {
                checkpoint_id: 4,
                operators: vec![(uid.to_string(), snapshot)],
                input_channels: inputs,
                output_channels: Vec::new(),
            };
            let name = format!("{uid}-{subtask}.state");
            let handle = storage
                .write_state(4, &name, &state.encode().unwrap())
                .unwrap();
            subtasks.push(SubtaskStateMetadata {
                operators: vec![uid.to_string()],
                subtask,
                handle,
                in_flight_bytes: state.in_flight_bytes(),
            });
        }
        let operator = |uid: &str, parallelism| OperatorMetadata {
            uid: uid.into(),
            name: format!("{uid} op"),
            parallelism,
            max_parallelism: 8,
            key_type: None,
        };
        storage
            .write_metadata(&CheckpointMetadata {
                version: METADATA_VERSION,
                job_name: "unit".into(),
                job_id: "00ff".into(),
                lineage: "lineage".into(),
                checkpoint_id: 4,
                savepoint: true,
                trigger_time_ms: 1_700_000_000_000,
                completion_time_ms: 1_700_000_000_250,
                operators: vec![operator("source", 1), operator("counts", 2)],
                subtasks,
            })
            .unwrap();
    }

    fn keyed(groups: &[(usize, Vec<u8>)]) -> OperatorSnapshot {
        OperatorSnapshot {
            keyed: groups.iter().cloned().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn states_are_summed_over_key_groups_and_subtasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("savepoint-00ff00-4");
        let k0 = keyed(&[
            (0, keyed_group(&[("count", StateKind::Value, 2)], 1)),
            (
                3,
                keyed_group(
                    &[("count", StateKind::Value, 1), ("seen", StateKind::List, 3)],
                    0,
                ),
            ),
        ]);
        let k1 = OperatorSnapshot {
            broadcast: BTreeMap::from([(
                "rules".to_string(),
                codec::encode(&vec![(1u8, 2u8), (3, 4)]).unwrap(),
            )]),
            raw: Some(b"raw!".to_vec()),
            ..keyed(&[(5, keyed_group(&[("count", StateKind::Value, 4)], 2))])
        };
        let source = OperatorSnapshot {
            lists: vec![
                ListStateSnapshot::new("offsets", Redistribution::EvenSplit, vec![vec![1, 2]]),
                ListStateSnapshot::new("all", Redistribution::Union, vec![vec![1], vec![2]]),
            ],
            ..Default::default()
        };
        write_snapshot(&path, [k0, k1], source);

        let report = inspect(&path).unwrap();
        assert_eq!(
            (report.kind, report.id, report.job_id.as_str()),
            (SnapshotKind::Savepoint, 4, "00ff")
        );
        assert_eq!(report.completed, "2023-11-14T22:13:20.250Z");
        assert_eq!(report.in_flight_bytes, 15);
        type States<'a> = Vec<(StateReportKind, &'a str, Option<u64>)>;
        let summary: Vec<(&str, States)> = report
            .operators
            .iter()
            .map(|o| {
                let states = o
                    .states
                    .iter()
                    .map(|s| (s.kind, s.name.as_str(), s.entries))
                    .collect();
                (o.uid.as_str(), states)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "source",
                    vec![
                        (StateReportKind::OperatorList, "offsets", Some(1)),
                        (StateReportKind::UnionList, "all", Some(2)),
                    ]
                ),
                (
                    "counts",
                    vec![
                        (StateReportKind::KeyedValue, "count", Some(7)),
                        (StateReportKind::KeyedList, "seen", Some(3)),
                        (StateReportKind::Timers, "timers", Some(3)),
                        (StateReportKind::Broadcast, "rules", Some(2)),
                        (StateReportKind::Raw, "raw", None),
                    ]
                ),
            ]
        );
        let counts = &report.operators[1];
        assert_eq!(counts.in_flight_bytes, 15);
        assert_eq!(counts.states[0].type_name.as_deref(), Some("u64"));
        let text = report.to_string();
        assert!(
            text.starts_with("savepoint 4 of job \"unit\" (00ff)\n"),
            "{text}"
        );
        assert!(text.contains("counts    count    keyed value"), "{text}");
    }

    #[test]
    fn keyed_bytes_in_another_format_are_opaque_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-4");
        let foreign = keyed(&[(1, b"\x01rocksdb sst handle".to_vec())]);
        let fine = keyed(&[(6, keyed_group(&[("count", StateKind::Value, 1)], 0))]);
        write_snapshot(&path, [foreign, fine], OperatorSnapshot::default());

        let report = inspect(&path).unwrap();
        let states: Vec<(StateReportKind, Option<u64>, u64)> = report.operators[1]
            .states
            .iter()
            .map(|s| (s.kind, s.entries, s.bytes))
            .collect();
        assert_eq!(
            states[..],
            [
                (StateReportKind::KeyedValue, Some(1), 4),
                (StateReportKind::OpaqueKeyed, None, 19)
            ]
        );
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-4");
        write_snapshot(
            &path,
            [OperatorSnapshot::default(), OperatorSnapshot::default()],
            OperatorSnapshot::default(),
        );
        let file = path.join("counts-1.state");
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(&file, bytes).unwrap();

        let err = inspect(&path).unwrap_err().to_string();
        assert!(
            err.contains("counts-1.state") && err.contains("checksum mismatch"),
            "{err}"
        );
    }
}

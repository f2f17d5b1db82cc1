//! The checkpoint format: insta snapshots of a hand-made
//! `CheckpointMetadata` (debug form and the bytes of `_metadata`) and of a
//! state file; a version 1 `_metadata` still reads; what a job writes matches
//! the public encoding.

use std::collections::{BTreeMap, BTreeSet};

use weir::runtime::checkpoint::format::{self, FileKind};
use weir::runtime::checkpoint::layout::METADATA_FILE;
use weir::runtime::checkpoint::metadata::{
    ChannelState, OperatorMetadata, SubtaskStateMetadata, METADATA_VERSION,
};
use weir::runtime::checkpoint::storage::{decode_metadata, encode_metadata};
use weir::runtime::checkpoint::{CheckpointMetadata, CheckpointStorage, StateHandle, SubtaskState};
use weir::runtime::snapshot::{ListStateSnapshot, OperatorSnapshot, Redistribution};

use crate::kit::{storage_of, three_checkpoints};

fn hex_dump(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  |{text}|", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sample_metadata() -> CheckpointMetadata {
    CheckpointMetadata {
        version: METADATA_VERSION,
        job_name: "format".into(),
        job_id: "00000000deadbeef".into(),
        lineage: "00000000c0ffee00".into(),
        checkpoint_id: 7,
        savepoint: false,
        trigger_time_ms: 1_700_000_000_000,
        completion_time_ms: 1_700_000_000_042,
        operators: vec![
            OperatorMetadata {
                uid: "feed".into(),
                name: "Source: Feed".into(),
                parallelism: 1,
                max_parallelism: 128,
                key_type: None,
            },
            OperatorMetadata {
                uid: "tally".into(),
                name: "KeyedProcess".into(),
                parallelism: 2,
                max_parallelism: 128,
                key_type: Some("u64".into()),
            },
        ],
        subtasks: vec![
            SubtaskStateMetadata {
                operators: vec!["feed".into()],
                subtask: 0,
                handle: StateHandle::File {
                    name: "feed-0.state".into(),
                    size: 60,
                },
                in_flight_bytes: 0,
            },
            SubtaskStateMetadata {
                operators: vec!["tally".into(), "sink".into()],
                subtask: 1,
                handle: StateHandle::Memory {
                    key: "tally-1.state".into(),
                    size: 120,
                },
                in_flight_bytes: 17,
            },
        ],
    }
}

#[test]
fn the_metadata_format_is_pinned() {
    let metadata = sample_metadata();
    insta::assert_snapshot!("metadata_debug", format!("{metadata:#?}"));
    let bytes = encode_metadata(&metadata).unwrap();
    assert_eq!(&bytes[..4], b"WEIR");
    assert_eq!(bytes[4..6], format::VERSION.to_le_bytes());
    assert_eq!(bytes[6], FileKind::Metadata as u8);
    let payload = format::decode(&bytes, FileKind::Metadata, "_metadata").unwrap();
    assert_eq!(format::encode(FileKind::Metadata, payload), bytes);
    assert_eq!(decode_metadata(&bytes, "_metadata").unwrap(), metadata);
    assert_eq!(metadata.state_size(), 180);
    insta::assert_snapshot!("metadata_file", hex_dump(&bytes));
}

#[test]
fn metadata_of_version_1_reads_with_the_job_id_as_its_lineage() {
    // The pinned bytes of a version 1 `_metadata` (before lineages).
    let bytes = include_bytes!("../data/metadata-v1.bin");
    let metadata = decode_metadata(bytes, "_metadata").unwrap();
    assert_eq!(metadata.version, 1);
    assert!(metadata.lineage.is_empty());
    assert_eq!(metadata.lineage(), "00000000deadbeef");
    let expected = CheckpointMetadata {
        version: 1,
        lineage: String::new(),
        ..sample_metadata()
    };
    assert_eq!(metadata, expected);
}

#[test]
fn the_state_file_format_is_pinned() {
    let state = SubtaskState {
        checkpoint_id: 7,
        operators: vec![(
            "tally".into(),
            OperatorSnapshot {
                keyed: BTreeMap::from([(3, vec![1, 2, 3])]),
                keyed_handles: Vec::new(),
                meta: BTreeMap::new(),
                lists: vec![ListStateSnapshot::new(
                    "buffer",
                    Redistribution::Union,
                    vec![vec![9]],
                )],
                broadcast: BTreeMap::from([("rules".to_string(), vec![4, 5])]),
                raw: Some(b"raw".to_vec()),
            },
        )],
        input_channels: vec![ChannelState {
            index: 1,
            channel: 0,
            batches: vec![vec![0xaa, 0xbb]],
        }],
        output_channels: vec![],
    };
    let payload = state.encode().unwrap();
    assert_eq!(SubtaskState::decode(&payload).unwrap(), state);
    assert_eq!(state.in_flight_bytes(), 2);
    insta::assert_snapshot!(
        "state_file",
        hex_dump(&format::encode(FileKind::State, &payload))
    );
}

/// What the engine writes reads back with the public decoder and re-encodes
/// to the same bytes: `SubtaskState::encode` is the format the subtasks use.
#[test]
fn state_files_written_by_a_job_match_the_public_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let result = three_checkpoints(dir.path(), 1);
    let storage = storage_of(dir.path(), &result.job_id);
    let listed = storage.list().unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![3]);
    let metadata = storage.read_metadata(3).unwrap();
    assert_eq!(metadata.version, METADATA_VERSION);
    assert_eq!(metadata.job_name, "three");
    assert_eq!(metadata.job_id, result.job_id);
    assert!(metadata.trigger_time_ms <= metadata.completion_time_ms);
    let uids: Vec<&str> = metadata.operators.iter().map(|o| o.uid.as_str()).collect();
    assert_eq!(uids, vec!["feed", "tally", "sink"]);
    let mut files: Vec<String> = Vec::new();
    for part in &metadata.subtasks {
        let bytes = storage.read_state(3, &part.handle).unwrap();
        let state = SubtaskState::decode(&bytes).unwrap();
        assert_eq!(state.encode().unwrap(), bytes);
        let StateHandle::File { name, size } = &part.handle else {
            panic!("{:?}", part.handle)
        };
        assert_eq!(*size, bytes.len() as u64);
        files.push(name.clone());
    }
    files.sort();
    assert_eq!(
        files,
        vec!["feed-0.state", "tally-0.state", "tally-1.state"]
    );
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(dir.path().join(&result.job_id).join("chk-3"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
    let mut expected: BTreeSet<String> = files.into_iter().collect();
    expected.insert(METADATA_FILE.to_string());
    assert_eq!(on_disk, expected);
}

//! The canonical format of one key group of a keyed operator's snapshot: its
//! states (each a [`StateBytes`]: name, kind, type and rmp-serde entries) and
//! its timers, and the operator's watermark when it was taken. Keyed
//! operators write it ([`encode_key_group`]), restores read it
//! ([`decode_key_group`]), and `weir inspect` reads it without knowing the
//! key type ([`KeyGroupState`], whose timers stay bytes). A savepoint's keyed
//! state is in this format whatever the backend.
//!
//! ```
//! use weir::state::key_group_format::{decode_key_group, encode_key_group, Timer, TimerKind};
//! let timers = [Timer { kind: TimerKind::EventTime, timestamp: 7, key: 3u32 }];
//! let bytes = encode_key_group(Vec::new(), &timers, Some(5)).unwrap();
//! let group = decode_key_group::<u32>(&bytes, 5).unwrap();
//! assert!(group.states.is_empty());
//! assert_eq!(group.timers[0].timestamp, 7);
//! assert_eq!(group.watermark, Some(5));
//! ```

use crate::runtime::codec::{self, CodecError};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Key, StateBytes, StateError};

/// One key group's part of a keyed snapshot, timers still encoded.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyGroupState {
    /// Every state's entries of the key group.
    pub states: Vec<StateBytes>,
    /// rmp-serde of the key group's timers, `Vec<(kind, timestamp, key)>`
    /// (empty: none).
    pub timers: Vec<u8>,
    /// The operator's watermark when the snapshot was taken (absent: none
    /// yet, or a snapshot from before weir recorded it). A restore starts
    /// from it, so that a record late before a failure is late after it.
    #[serde(default)]
    pub watermark: Option<i64>,
    /// The operator's queryable states, queryable name -> state name (in
    /// the first key group of each subtask; empty elsewhere): what a
    /// committed query reads from a checkpoint.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queryable: BTreeMap<String, String>,
}

/// One key group read back with its key type known.
#[derive(Debug)]
pub struct DecodedKeyGroup<K> {
    /// Every state's entries of the key group.
    pub states: Vec<StateBytes>,
    /// The key group's timers.
    pub timers: Vec<Timer<K>>,
    /// The operator's watermark when the snapshot was taken, if it had one.
    pub watermark: Option<i64>,
}

/// Which clock a timer waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// The watermark.
    EventTime,
    /// The wall clock.
    ProcessingTime,
}

impl TimerKind {
    fn code(self) -> u8 {
        match self {
            TimerKind::EventTime => 0,
            TimerKind::ProcessingTime => 1,
        }
    }

    fn of(code: u8) -> Self {
        match code {
            0 => TimerKind::EventTime,
            _ => TimerKind::ProcessingTime,
        }
    }
}

/// A timer of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timer<K> {
    /// Its clock.
    pub kind: TimerKind,
    /// When it fires (ms).
    pub timestamp: i64,
    /// Its key.
    pub key: K,
}

/// The bytes of one key group: `states`, `timers` and the operator's
/// `watermark` (`None` before the first).
pub fn encode_key_group<K: Key>(
    states: Vec<StateBytes>,
    timers: &[Timer<K>],
    watermark: Option<i64>,
) -> Result<Vec<u8>, StateError> {
    encode_key_group_with(states, timers, watermark, BTreeMap::new())
}

/// [`encode_key_group`] with the operator's queryable states (queryable
/// name -> state name).
pub fn encode_key_group_with<K: Key>(
    states: Vec<StateBytes>,
    timers: &[Timer<K>],
    watermark: Option<i64>,
    queryable: BTreeMap<String, String>,
) -> Result<Vec<u8>, StateError> {
    let encode_error = |name: &str, e: codec::CodecError| StateError::Encode {
        name: name.to_string(),
        cause: e.to_string(),
    };
    let timers = if timers.is_empty() {
        Vec::new()
    } else {
        let rows: Vec<(u8, i64, &K)> = timers
            .iter()
            .map(|t| (t.kind.code(), t.timestamp, &t.key))
            .collect();
        codec::encode(&rows).map_err(|e| encode_error("timers", e))?
    };
    codec::encode(&KeyGroupState {
        states,
        timers,
        watermark,
        queryable,
    })
    .map_err(|e| encode_error("key group", e))
}

/// Reads the bytes of key group `group`: its states, timers and watermark.
pub fn decode_key_group<K: Key>(
    bytes: &[u8],
    group: usize,
) -> Result<DecodedKeyGroup<K>, StateError> {
    let corrupt = |cause: String| StateError::Corrupt {
        name: "keyed state".into(),
        group,
        cause,
    };
    let state = read_key_group(bytes).map_err(|e| corrupt(e.to_string()))?;
    let timers = if state.timers.is_empty() {
        Vec::new()
    } else {
        let rows: Vec<(u8, i64, K)> =
            codec::decode(&state.timers).map_err(|e| corrupt(e.to_string()))?;
        rows.into_iter()
            .map(|(kind, timestamp, key)| Timer {
                kind: TimerKind::of(kind),
                timestamp,
                key,
            })
            .collect()
    };
    Ok(DecodedKeyGroup {
        states: state.states,
        timers,
        watermark: state.watermark,
    })
}

/// Reads the bytes of a key group without decoding its timers' keys (for
/// tools that do not know the key type).
pub fn read_key_group(bytes: &[u8]) -> Result<KeyGroupState, CodecError> {
    codec::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateKind;

    #[test]
    fn a_key_group_round_trips_and_its_timers_count_without_the_key_type() {
        let states = vec![StateBytes {
            name: "count".into(),
            kind: StateKind::Value,
            type_name: "u64".into(),
            entries: vec![0x90],
            ttl: None,
        }];
        let timers = [
            Timer {
                kind: TimerKind::EventTime,
                timestamp: 5,
                key: "a".to_string(),
            },
            Timer {
                kind: TimerKind::ProcessingTime,
                timestamp: 9,
                key: "b".to_string(),
            },
        ];
        let bytes = encode_key_group(states.clone(), &timers, Some(-4)).unwrap();
        let read = decode_key_group::<String>(&bytes, 3).unwrap();
        assert_eq!(
            (read.states, read.timers, read.watermark),
            (states.clone(), timers.to_vec(), Some(-4))
        );
        let raw = read_key_group(&bytes).unwrap();
        assert_eq!(
            rmp::decode::read_array_len(&mut &raw.timers[..]).unwrap(),
            2
        );
        let err = decode_key_group::<String>(b"\xc1", 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key group 3"), "{err}");
    }

    #[test]
    fn a_key_group_written_before_watermarks_were_recorded_reads_without_one() {
        #[derive(Serialize)]
        struct Before {
            states: Vec<StateBytes>,
            timers: Vec<u8>,
        }
        let bytes = codec::encode(&Before {
            states: Vec::new(),
            timers: Vec::new(),
        })
        .unwrap();
        let read = decode_key_group::<u32>(&bytes, 0).unwrap();
        assert_eq!(read.watermark, None);
    }
}

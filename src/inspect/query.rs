//! Reading the keyed state of a checkpoint or savepoint entry by entry
//! (`weir query`; Flink's State Processor API, read side, without code).
//!
//! Keyed state is stored as MessagePack with struct fields by name
//! ([`crate::runtime::codec`]), so it decodes without the job's Rust types:
//! [`query_keyed_state`] and [`query_timers`] turn every key, user key and
//! value into JSON as serde would write it (a map whose keys are not strings
//! gets them as JSON text: `{"7": ..}`). [`read_keyed_state`] reads the same
//! entries into the job's own types. Entries of a state with a time to live
//! come without their expiries (a full snapshot holds none expired at its
//! own time).
//!
//! Savepoints and full checkpoints hold keyed state in the canonical format,
//! whatever the backend. An incremental RocksDB checkpoint refers to the
//! database's own files: with the `rocksdb` feature they are copied into a
//! temporary directory, opened and read (entries expired as of now left out,
//! as a full snapshot would); without it, reading them is an error that says so.
//!
//! ```no_run
//! use weir::inspect::{query_keyed_state, KeySelection};
//! let rows = query_keyed_state("/var/weir/savepoints/savepoint-3f2a-7".as_ref(), "totals", "total", &KeySelection::All)?;
//! for row in rows {
//!     println!("{} -> {}", row.key, row.value);
//! }
//! # Ok::<(), weir::inspect::InspectError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;
use weir_actors::checkpoint::CheckpointStorage;
use weir_actors::restore;
use weir_actors::snapshot::OperatorSnapshot;

use super::InspectError;
use crate::runtime::codec;
use crate::state::key_group_format::read_key_group;
use crate::state::{StateBytes, StateKind};

/// Which keys a query returns.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySelection {
    /// Every key.
    All,
    /// The key that is this JSON value (as serde writes the key type to JSON).
    Key(Json),
}

impl KeySelection {
    fn admits(&self, key: &Json) -> bool {
        match self {
            KeySelection::All => true,
            KeySelection::Key(wanted) => wanted == key,
        }
    }
}

/// One entry of a keyed state: for map state one per map entry (with its
/// `user_key`), for value, list, reducing and aggregating state one per key
/// (a list's value is the JSON array of its elements).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueryRow {
    /// The key.
    pub key: Json,
    /// The map entry's key (map state only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_key: Option<Json>,
    /// The value.
    pub value: Json,
}

impl fmt::Display for QueryRow {
    /// `key -> value`, or `key / user_key -> value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user_key {
            Some(user_key) => write!(f, "{} / {} -> {}", self.key, user_key, self.value),
            None => write!(f, "{} -> {}", self.key, self.value),
        }
    }
}

/// One timer of a keyed operator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimerRow {
    /// The key it fires for.
    pub key: Json,
    /// When it fires (ms).
    pub timestamp: i64,
    /// `event_time` or `processing_time`.
    pub domain: &'static str,
}

impl fmt::Display for TimerRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} at {}", self.key, self.domain, self.timestamp)
    }
}

/// The entries of keyed state `state` of operator `uid` in the snapshot at
/// `path`, the keys `keys` selects, in key-group order.
pub fn query_keyed_state(
    path: &Path,
    uid: &str,
    state: &str,
    keys: &KeySelection,
) -> Result<Vec<QueryRow>, InspectError> {
    let mut rows = Vec::new();
    OperatorKeyedState::read(path, uid)?.rows(state, keys, |row| rows.push(row))?;
    Ok(rows)
}

/// One operator's keyed state in a snapshot, read once, for several
/// passes over it.
pub(crate) struct OperatorKeyedState<'p> {
    path: &'p Path,
    uid: String,
    groups: KeyGroups,
}

impl<'p> OperatorKeyedState<'p> {
    /// Reads operator `uid`'s key groups in the snapshot at `path`.
    pub(crate) fn read(path: &'p Path, uid: &str) -> Result<Self, InspectError> {
        Ok(OperatorKeyedState {
            path,
            uid: uid.to_string(),
            groups: key_groups(path, uid)?,
        })
    }

    /// The rows of keyed state `state`, as [`query_keyed_state`] returns
    /// them, one at a time: a key's rows come one after another.
    pub(crate) fn rows(
        &self,
        state: &str,
        keys: &KeySelection,
        row: impl FnMut(QueryRow),
    ) -> Result<(), InspectError> {
        rows_of(self.path, &self.uid, &self.groups, state, keys, row)
    }

    /// The timers, as [`query_timers`] returns them, one at a time.
    pub(crate) fn timers(
        &self,
        keys: &KeySelection,
        timer: impl FnMut(TimerRow),
    ) -> Result<(), InspectError> {
        timers_of(self.path, &self.uid, &self.groups, keys, timer)
    }
}

/// The rows of keyed state `state` in `groups` (operator `uid`'s key groups
/// in the snapshot at `path`), one key group decoded at a time.
fn rows_of(
    path: &Path,
    uid: &str,
    groups: &KeyGroups,
    state: &str,
    keys: &KeySelection,
    mut row: impl FnMut(QueryRow),
) -> Result<(), InspectError> {
    for part in state_parts(path, uid, groups, state)? {
        let entries: Vec<(Generic, Generic)> = decode(path, uid, state, &part.entries)?;
        for (key, value) in entries {
            let key = key.to_json();
            if !keys.admits(&key) {
                continue;
            }
            let value = value.without_expiries(part.kind, part.ttl.is_some());
            match (part.kind, value) {
                (StateKind::Map, Generic::Map(entries)) => {
                    for (user_key, value) in entries {
                        row(QueryRow {
                            key: key.clone(),
                            user_key: Some(user_key.to_json()),
                            value: value.to_json(),
                        });
                    }
                }
                (_, value) => row(QueryRow {
                    key,
                    user_key: None,
                    value: value.to_json(),
                }),
            }
        }
    }
    Ok(())
}

/// The entries of keyed state `state` of operator `uid` in the snapshot at
/// `path`, as the job's types: `V` is the value for value, reducing and
/// aggregating state, `Vec<E>` for list state, a map (`HashMap`,
/// `BTreeMap`) for map state.
///
/// ```no_run
/// let totals: Vec<(u32, u64)> = weir::inspect::read_keyed_state("/var/weir/savepoints/savepoint-3f2a-7".as_ref(), "totals", "total")?;
/// # Ok::<(), weir::inspect::InspectError>(())
/// ```
pub fn read_keyed_state<K: DeserializeOwned, V: DeserializeOwned>(
    path: &Path,
    uid: &str,
    state: &str,
) -> Result<Vec<(K, V)>, InspectError> {
    let groups = key_groups(path, uid)?;
    let mut out = Vec::new();
    for part in state_parts(path, uid, &groups, state)? {
        let typed = if part.ttl.is_none() {
            decode::<Vec<(K, V)>>(path, uid, state, &part.entries)?
        } else {
            let entries: Vec<(Generic, Generic)> = decode(path, uid, state, &part.entries)?;
            let plain: Vec<(Generic, Generic)> = entries
                .into_iter()
                .map(|(key, value)| (key, value.without_expiries(part.kind, true)))
                .collect();
            let bytes = codec::encode(&plain).map_err(|e| read_error(path, uid, state, e))?;
            decode::<Vec<(K, V)>>(path, uid, state, &bytes)?
        };
        out.extend(typed);
    }
    Ok(out)
}

/// The timers of keyed operator `uid` in the snapshot at `path`, of the keys
/// `keys` selects, in key-group order.
pub fn query_timers(
    path: &Path,
    uid: &str,
    keys: &KeySelection,
) -> Result<Vec<TimerRow>, InspectError> {
    let mut rows = Vec::new();
    OperatorKeyedState::read(path, uid)?.timers(keys, |timer| rows.push(timer))?;
    Ok(rows)
}

/// The timers in `groups` (operator `uid`'s key groups in the snapshot at
/// `path`), one at a time.
fn timers_of(
    path: &Path,
    uid: &str,
    groups: &KeyGroups,
    keys: &KeySelection,
    mut timer: impl FnMut(TimerRow),
) -> Result<(), InspectError> {
    for group in groups.values() {
        if group.timers.is_empty() {
            continue;
        }
        let timers: Vec<(u8, i64, Generic)> = decode(path, uid, "timers", &group.timers)?;
        for (kind, timestamp, key) in timers {
            let key = key.to_json();
            if keys.admits(&key) {
                timer(TimerRow {
                    key,
                    timestamp,
                    domain: if kind == 0 {
                        "event_time"
                    } else {
                        "processing_time"
                    },
                });
            }
        }
    }
    Ok(())
}

fn read_error(path: &Path, uid: &str, state: &str, cause: impl fmt::Display) -> InspectError {
    InspectError::Read {
        path: path.to_path_buf(),
        cause: format!("operator {uid}, state {state}: {cause}"),
    }
}

fn decode<T: DeserializeOwned>(
    path: &Path,
    uid: &str,
    state: &str,
    bytes: &[u8],
) -> Result<T, InspectError> {
    codec::decode(bytes).map_err(|e| read_error(path, uid, state, e))
}

/// Every key group of `uid`'s keyed state in the snapshot, decoded: the
/// canonical key groups (states, timers, watermark), with the states of
/// incremental RocksDB handles read into them.
fn key_groups(path: &Path, uid: &str) -> Result<KeyGroups, InspectError> {
    key_groups_and_max(path, uid).map(|(groups, _)| groups)
}

/// An operator's key groups in a snapshot, decoded, by key group.
type KeyGroups = BTreeMap<usize, crate::state::key_group_format::KeyGroupState>;

/// [`key_groups`], and the operator's max parallelism.
fn key_groups_and_max(
    path: &Path,
    uid: &str,
) -> Result<
    (
        BTreeMap<usize, crate::state::key_group_format::KeyGroupState>,
        usize,
    ),
    InspectError,
> {
    let (snapshots, max_parallelism) = operator_snapshots_and_max(path, uid)?;
    Ok((decode_groups(path, uid, &snapshots)?, max_parallelism))
}

/// The key groups of `uid`'s part `snapshots` of the snapshot at `path`,
/// decoded, with the states of incremental RocksDB handles read into them.
fn decode_groups(
    path: &Path,
    uid: &str,
    snapshots: &[OperatorSnapshot],
) -> Result<BTreeMap<usize, crate::state::key_group_format::KeyGroupState>, InspectError> {
    let mut groups = BTreeMap::new();
    for (&group, bytes) in snapshots.iter().flat_map(|s| &s.keyed) {
        let decoded = read_key_group(bytes).map_err(|e| {
            read_error(
                path,
                uid,
                "(keyed)",
                format!(
                    "key group {group} is not in weir's canonical keyed format (a state \
                     backend's own format?): {e}"
                ),
            )
        })?;
        groups.insert(group, decoded);
    }
    for handle in snapshots.iter().flat_map(|s| &s.keyed_handles) {
        for (group, states) in handle_states(path, uid, handle)? {
            groups
                .entry(group)
                .or_insert_with(|| crate::state::key_group_format::KeyGroupState {
                    states: Vec::new(),
                    timers: Vec::new(),
                    watermark: None,
                    queryable: BTreeMap::new(),
                })
                .states
                .extend(states);
        }
    }
    Ok(groups)
}

/// The states an incremental snapshot's handle holds, per key group.
#[cfg(feature = "rocksdb")]
fn handle_states(
    path: &Path,
    uid: &str,
    handle: &weir_actors::snapshot::KeyedStateHandle,
) -> Result<BTreeMap<usize, Vec<StateBytes>>, InspectError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if handle.backend != crate::state::rocksdb::HANDLE_BACKEND {
        return Err(read_error(
            path,
            uid,
            "(keyed)",
            format!("keyed state of an unknown backend {:?}", handle.backend),
        ));
    }
    let work = std::env::temp_dir().join(format!(
        "weir-query-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let read = crate::state::rocksdb::read_handle(handle, uid, &work);
    let _ = std::fs::remove_dir_all(&work);
    read.map_err(|e| read_error(path, uid, "(keyed)", e))
}

/// Without the RocksDB backend built in, an incremental snapshot's handle
/// cannot be read.
#[cfg(not(feature = "rocksdb"))]
fn handle_states(
    path: &Path,
    uid: &str,
    handle: &weir_actors::snapshot::KeyedStateHandle,
) -> Result<BTreeMap<usize, Vec<StateBytes>>, InspectError> {
    Err(read_error(
        path,
        uid,
        "(keyed)",
        format!(
            "the keyed state is an incremental {} checkpoint's own files; this weir was \
             built without the `rocksdb` feature, which reads them (or read a savepoint)",
            handle.backend
        ),
    ))
}

/// The parts (one per key group) of keyed state `state` in `groups`
/// (operator `uid`'s key groups in the snapshot at `path`).
fn state_parts<'g>(
    path: &Path,
    uid: &str,
    groups: &'g KeyGroups,
    state: &str,
) -> Result<Vec<&'g StateBytes>, InspectError> {
    let mut names = BTreeSet::new();
    let mut parts = Vec::new();
    for group in groups.values() {
        for bytes in &group.states {
            names.insert(bytes.name.as_str());
            if bytes.name == state {
                parts.push(bytes);
            }
        }
    }
    if parts.is_empty() {
        let known = match names.is_empty() {
            true => "it holds no keyed state".to_string(),
            false => format!(
                "its keyed states are: {}",
                names.into_iter().collect::<Vec<_>>().join(", ")
            ),
        };
        return Err(InspectError::Open(format!(
            "{}: operator {uid} has no keyed state {state:?}; {known}",
            path.display()
        )));
    }
    Ok(parts)
}

/// Operator `uid`'s part of every subtask's state, and its max parallelism.
fn operator_snapshots_and_max(
    path: &Path,
    uid: &str,
) -> Result<(Vec<OperatorSnapshot>, usize), InspectError> {
    let (operators, mut snapshots) = all_operator_snapshots(path)?;
    let Some(&(_, max_parallelism)) = operators.iter().find(|(u, _)| u == uid) else {
        let uids: Vec<&str> = operators.iter().map(|(u, _)| u.as_str()).collect();
        return Err(InspectError::Open(format!(
            "{}: no operator with uid {uid:?}; its operators are: {}",
            path.display(),
            uids.join(", ")
        )));
    };
    Ok((snapshots.remove(uid).unwrap_or_default(), max_parallelism))
}

/// Every operator of the snapshot at `path` (uid, max parallelism), and
/// every subtask's part of each, by uid: the snapshot read once.
#[allow(clippy::type_complexity)]
fn all_operator_snapshots(
    path: &Path,
) -> Result<
    (
        Vec<(String, usize)>,
        BTreeMap<String, Vec<OperatorSnapshot>>,
    ),
    InspectError,
> {
    let (storage, metadata) = super::open_snapshot(path)?;
    operator_snapshots_in(path, &storage, metadata.checkpoint_id)
}

/// [`all_operator_snapshots`] of snapshot `id` in `storage` (a job's own
/// checkpoint storage, in memory too); `label` names it in errors.
#[allow(clippy::type_complexity)]
fn operator_snapshots_in(
    label: &Path,
    storage: &dyn CheckpointStorage,
    id: u64,
) -> Result<
    (
        Vec<(String, usize)>,
        BTreeMap<String, Vec<OperatorSnapshot>>,
    ),
    InspectError,
> {
    let (metadata, states) = restore::read(storage, id).map_err(|cause| InspectError::Read {
        path: label.to_path_buf(),
        cause,
    })?;
    let operators = metadata
        .operators
        .iter()
        .map(|o| (o.uid.clone(), o.max_parallelism))
        .collect();
    let mut snapshots: BTreeMap<String, Vec<OperatorSnapshot>> = BTreeMap::new();
    for (uid, snapshot) in states.into_iter().flat_map(|s| s.operators) {
        snapshots.entry(uid).or_default().push(snapshot);
    }
    Ok((operators, snapshots))
}

/// One operator's queryable keyed state in one snapshot, indexed by key, as
/// committed queries read it (`weir::query` with `Consistency::Committed`).
pub(crate) struct CommittedState {
    uid: String,
    /// Queryable name -> state name.
    queryable: BTreeMap<String, String>,
    /// Per queryable state: encoded key -> encoded value (without expiries).
    values: BTreeMap<String, HashMap<Vec<u8>, Vec<u8>>>,
}

impl CommittedState {
    /// Reads every operator's keyed state from the snapshot at `path` (the
    /// snapshot read once), by uid, and indexes its queryable states by key.
    pub(crate) fn read_all(path: &Path) -> Result<BTreeMap<String, Self>, InspectError> {
        Self::index_all(path, all_operator_snapshots(path)?)
    }

    /// [`read_all`](Self::read_all) of snapshot `id` in a job's checkpoint
    /// `storage` (in memory too); `label` names it in errors.
    pub(crate) fn read_all_in(
        label: &Path,
        storage: &dyn CheckpointStorage,
        id: u64,
    ) -> Result<BTreeMap<String, Self>, InspectError> {
        Self::index_all(label, operator_snapshots_in(label, storage, id)?)
    }

    #[allow(clippy::type_complexity)]
    fn index_all(
        path: &Path,
        (operators, mut snapshots): (
            Vec<(String, usize)>,
            BTreeMap<String, Vec<OperatorSnapshot>>,
        ),
    ) -> Result<BTreeMap<String, Self>, InspectError> {
        let mut all = BTreeMap::new();
        for (uid, _) in operators {
            let parts = snapshots.remove(&uid).unwrap_or_default();
            let groups = decode_groups(path, &uid, &parts)?;
            let queryable: BTreeMap<String, String> =
                groups.values().flat_map(|g| g.queryable.clone()).collect();
            let mut values: BTreeMap<String, HashMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
            for part in groups.into_values().flat_map(|g| g.states) {
                if !queryable.values().any(|state| *state == part.name) {
                    continue;
                }
                let failed = |e: codec::CodecError| read_error(path, &uid, &part.name, e);
                let entries: Vec<(Generic, Generic)> =
                    codec::decode(&part.entries).map_err(failed)?;
                let index = values.entry(part.name.clone()).or_default();
                for (key, value) in entries {
                    let value = value.without_expiries(part.kind, part.ttl.is_some());
                    index.insert(
                        codec::encode(&key).map_err(failed)?,
                        codec::encode(&value).map_err(failed)?,
                    );
                }
            }
            all.insert(
                uid.clone(),
                CommittedState {
                    uid,
                    queryable,
                    values,
                },
            );
        }
        Ok(all)
    }

    /// Whether the operator has a queryable state `queryable`.
    pub(crate) fn has_queryable(&self, queryable: &str) -> bool {
        self.queryable.contains_key(queryable)
    }

    /// The operator's queryable names.
    pub(crate) fn queryable_names(&self) -> Vec<String> {
        self.queryable.keys().cloned().collect()
    }

    /// The value (encoded, without expiries) of the key `key` (encoded) in
    /// the state queryable as `queryable`.
    pub(crate) fn lookup(
        &self,
        queryable: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, weir_actors::QueryError> {
        let Some(state) = self.queryable.get(queryable) else {
            return Err(weir_actors::QueryError::UnknownState {
                uid: self.uid.clone(),
                name: queryable.to_string(),
                known: weir_actors::query::known_names(self.queryable.keys()),
            });
        };
        Ok(self.values.get(state).and_then(|v| v.get(key)).cloned())
    }
}

/// One encoded value as JSON text, without its type (for messages); bytes
/// that do not decode are shown as such.
pub(crate) fn msgpack_as_json(bytes: &[u8]) -> String {
    match codec::decode::<Generic>(bytes) {
        Ok(value) => value.to_json().to_string(),
        Err(_) => format!("<{} undecodable bytes>", bytes.len()),
    }
}

/// One encoded value as JSON, without its type (the REST API's answers).
pub(crate) fn msgpack_to_json(bytes: &[u8]) -> Result<Json, codec::CodecError> {
    codec::decode::<Generic>(bytes).map(|value| value.to_json())
}

/// JSON text encoded as a value of the same shape would be, without its
/// type: an object's fields in the order the text has them (as a struct
/// key's fields must be, in declaration order). Text that is not JSON is
/// encoded as that string.
pub(crate) fn json_text_to_msgpack(text: &str) -> Result<Vec<u8>, codec::CodecError> {
    match serde_json::from_str::<Generic>(text) {
        Ok(value) => codec::encode(&value),
        Err(_) => codec::encode(&text),
    }
}

/// Any MessagePack value, maps kept as pairs (their keys may be any value).
#[derive(Clone, Debug, PartialEq)]
enum Generic {
    Scalar(Json),
    Bytes(Vec<u8>),
    Array(Vec<Generic>),
    Map(Vec<(Generic, Generic)>),
}

impl Generic {
    /// The value as JSON; a map key that is not a string becomes its JSON text.
    fn to_json(&self) -> Json {
        match self {
            Generic::Scalar(value) => value.clone(),
            Generic::Bytes(bytes) => Json::Array(bytes.iter().map(|&b| Json::from(b)).collect()),
            Generic::Array(items) => Json::Array(items.iter().map(Generic::to_json).collect()),
            Generic::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match k.to_json() {
                            Json::String(s) => s,
                            other => other.to_string(),
                        };
                        (key, v.to_json())
                    })
                    .collect(),
            ),
        }
    }

    /// A stored value of a state of `kind` without the expiries a time to
    /// live adds (`[expiry, value]` pairs: the value, the list's elements,
    /// the map's values), if `ttl`.
    fn without_expiries(self, kind: StateKind, ttl: bool) -> Generic {
        if !ttl {
            return self;
        }
        let value_of = |pair: Generic| match pair {
            Generic::Array(mut items) if items.len() == 2 => {
                items.pop().unwrap_or(Generic::Scalar(Json::Null))
            }
            other => other,
        };
        match (kind, self) {
            (StateKind::List, Generic::Array(items)) => {
                Generic::Array(items.into_iter().map(value_of).collect())
            }
            (StateKind::Map, Generic::Map(entries)) => {
                Generic::Map(entries.into_iter().map(|(k, v)| (k, value_of(v))).collect())
            }
            (_, value) => value_of(value),
        }
    }
}

impl<'de> Deserialize<'de> for Generic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GenericVisitor)
    }
}

struct GenericVisitor;

impl<'de> Visitor<'de> for GenericVisitor {
    type Value = Generic;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any MessagePack value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::String(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::String(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Generic, E> {
        Ok(Generic::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Generic, E> {
        Ok(Generic::Bytes(v))
    }
    fn visit_unit<E>(self) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::Null))
    }
    fn visit_none<E>(self) -> Result<Generic, E> {
        Ok(Generic::Scalar(Json::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Generic, D::Error> {
        Generic::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Generic, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Generic::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Generic, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Generic::Map(entries))
    }
}

impl Serialize for Generic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Generic::Scalar(value) => value.serialize(serializer),
            Generic::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Generic::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Generic::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Serialize)]
    struct Reading {
        sensor: String,
        values: Vec<i32>,
    }

    #[test]
    fn stored_values_decode_to_json_as_serde_writes_them() {
        let mut per_page: BTreeMap<u32, Reading> = BTreeMap::new();
        per_page.insert(
            7,
            Reading {
                sensor: "t1".into(),
                values: vec![-1, 2],
            },
        );
        let bytes = codec::encode(&vec![("ann", per_page)]).unwrap();
        let entries: Vec<(Generic, Generic)> = codec::decode(&bytes).unwrap();
        assert_eq!(entries[0].0.to_json(), serde_json::json!("ann"));
        assert_eq!(
            entries[0].1.to_json(),
            serde_json::json!({"7": {"sensor": "t1", "values": [-1, 2]}})
        );
        // Round trip through the generic form: the same bytes.
        assert_eq!(codec::encode(&entries).unwrap(), bytes);
    }

    #[test]
    fn json_keys_encode_as_the_typed_keys_do() {
        #[derive(Serialize)]
        struct Account {
            bank: String,
            number: u32,
        }
        let same = |text: &str, typed: Vec<u8>| {
            assert_eq!(json_text_to_msgpack(text).unwrap(), typed, "{text}")
        };
        same("7", codec::encode(&7_u64).unwrap());
        same("-3", codec::encode(&-3_i32).unwrap());
        same("\"alice\"", codec::encode(&"alice".to_string()).unwrap());
        same("alice", codec::encode(&"alice".to_string()).unwrap());
        same("[1,\"a\"]", codec::encode(&(1_u8, "a")).unwrap());
        let account = Account {
            bank: "b".into(),
            number: 9,
        };
        same(
            "{\"bank\":\"b\",\"number\":9}",
            codec::encode(&account).unwrap(),
        );
        assert_eq!(
            msgpack_to_json(&codec::encode(&(3_u64, 12_u64)).unwrap()).unwrap(),
            serde_json::json!([3, 12])
        );
    }

    #[test]
    fn expiries_are_dropped_by_state_kind() {
        let pair = |at: i64, v: i64| {
            Generic::Array(vec![Generic::Scalar(at.into()), Generic::Scalar(v.into())])
        };
        let value = pair(100, 5).without_expiries(StateKind::Value, true);
        assert_eq!(value.to_json(), serde_json::json!(5));
        let list =
            Generic::Array(vec![pair(1, 2), pair(3, 4)]).without_expiries(StateKind::List, true);
        assert_eq!(list.to_json(), serde_json::json!([2, 4]));
        let map = Generic::Map(vec![(Generic::Scalar(9.into()), pair(1, 8))])
            .without_expiries(StateKind::Map, true);
        assert_eq!(map.to_json(), serde_json::json!({"9": 8}));
        // Without a time to live, nothing changes.
        assert_eq!(
            pair(1, 2).without_expiries(StateKind::Value, false),
            pair(1, 2)
        );
    }
}

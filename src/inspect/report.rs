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
//!
//! # Time to live
//!
//! A keyed state with a time to live records its [`TtlSettings`] in the
//! snapshot, and every value, list element and map value is stored with its
//! expiry ([`Expiring`](crate::state::ttl::Expiring)); the report shows the
//! settings and counts those entries as live or expired
//! ([`StateTtlReport`]). What "expired" is measured against
//! ([`ExpiredAgainst`]):
//! - processing time, clock continuing through downtime (the default): the
//!   wall clock at the inspection (`now`, passed to [`inspect_at`]), i.e.
//!   what a restore now would find expired. A full snapshot holds no entry
//!   expired at its own time, so these are the entries that expired since;
//! - processing time paused during downtime: the state's clock recorded in
//!   the snapshot (`clock_ms`), which a restore resumes from;
//! - event time: the watermark is not known outside the job, so the
//!   snapshot's recorded clock if there is one; else every entry is counted
//!   live and the expired count is unknown.
//!
//! Keyed state whose bytes are not decoded (another backend's format, the
//! shared files of an incremental RocksDB checkpoint) has unknown settings
//! and counts, never guessed ones.

use crate::runtime::codec;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weir_actors::checkpoint::metadata::SubtaskState;
use weir_actors::restore;
use weir_actors::snapshot::{OperatorSnapshot, Redistribution};

use super::table::{Align, Table};
use super::windows::{window_reports, write_windows, WindowReport};
use super::{format_rfc3339_millis, InspectError, SnapshotKind};
use crate::state::key_group_format::read_key_group;
use crate::state::schema::decode_schemas;
use crate::state::ttl::{count_by_expiry, DowntimePolicy, TtlSettings, TtlTime};
use crate::state::{StateBytes, StateKind};

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
    /// The window view of every window operator whose state is decoded
    /// ([`WindowReport`]); left out of JSON when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowReport>,
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
    /// Its states' versions and types as the snapshot recorded them, by
    /// state name (none: no state, or written before weir recorded
    /// schemas).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub schemas: BTreeMap<String, crate::state::schema::StateSchema>,
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
    /// For a keyed state with a time to live: its settings and its entries
    /// by expiry; for keyed state whose bytes are not decoded (opaque): all
    /// unknown; `None` for a state without a time to live. In JSON its
    /// fields sit beside the others (`ttl`, `live_entries`,
    /// `expired_entries`, ...) and are left out when it is `None`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<StateTtlReport>,
}

/// A keyed state's time to live, as a snapshot records it, and its entries
/// (values, list elements and map entries; not keys, which
/// [`StateReport::entries`] counts) by expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateTtlReport {
    /// The settings (JSON `ttl`); `None` when not known (opaque keyed
    /// state). `clock_ms`, if any, is the state's clock when the snapshot was
    /// taken (over subtasks: the latest).
    #[serde(rename = "ttl")]
    pub settings: Option<TtlSettings>,
    /// Entries not expired at `expired_as_of_ms` (all of them when that is
    /// not known); `None` when the entries cannot be counted.
    pub live_entries: Option<u64>,
    /// Entries expired at `expired_as_of_ms`; `None` when not known.
    pub expired_entries: Option<u64>,
    /// What the expiries were compared with.
    pub expired_against: ExpiredAgainst,
    /// That time, ms (on the state's clock); `None` when not known.
    pub expired_as_of_ms: Option<i64>,
}

impl StateTtlReport {
    /// All unknown: keyed state whose bytes are not decoded.
    fn unknown() -> Self {
        StateTtlReport {
            settings: None,
            live_entries: None,
            expired_entries: None,
            expired_against: ExpiredAgainst::Unknown,
            expired_as_of_ms: None,
        }
    }
}

/// What a state's expired entries were counted against (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiredAgainst {
    /// The wall clock at the inspection: processing time whose clock
    /// continues through downtime (what a restore now would find expired).
    InspectionTime,
    /// The state's clock recorded in the snapshot: processing time paused
    /// during downtime (a restore resumes from it), or event time with a
    /// recorded clock.
    SnapshotClock,
    /// Not counted: event time without a recorded watermark (every entry
    /// counts as live), or the entries are not known at all.
    Unknown,
}

impl ExpiredAgainst {
    /// What entries stored with `settings` are compared with at `now` (the
    /// inspection's wall clock), and its time.
    pub fn of(settings: &TtlSettings, now: i64) -> (Self, Option<i64>) {
        match (settings.time, settings.downtime, settings.clock_ms) {
            (TtlTime::ProcessingTime, DowntimePolicy::PauseDuringDowntime, Some(clock))
            | (TtlTime::EventTime, _, Some(clock)) => (ExpiredAgainst::SnapshotClock, Some(clock)),
            (TtlTime::ProcessingTime, ..) => (ExpiredAgainst::InspectionTime, Some(now)),
            (TtlTime::EventTime, _, None) => (ExpiredAgainst::Unknown, None),
        }
    }
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
/// Processing-time entries with a time to live are counted as expired
/// against the wall clock of now (see [`inspect_at`]).
pub fn inspect(path: &Path) -> Result<SnapshotReport, InspectError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    inspect_at(path, now)
}

/// [`inspect`] at wall-clock time `now_ms` (ms since the epoch): what a
/// restore at that time would find expired in processing-time state whose
/// clock continues through downtime. The report depends only on the
/// snapshot and `now_ms`.
pub fn inspect_at(path: &Path, now_ms: i64) -> Result<SnapshotReport, InspectError> {
    let (storage, metadata) = super::open_snapshot(path)?;
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
            schemas: BTreeMap::new(),
        })
        .collect();
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for (meta, state) in metadata.subtasks.iter().zip(&states) {
        for (uid, snapshot) in &state.operators {
            tallies
                .entry(uid.clone())
                .or_insert_with(|| Tally::new(now_ms))
                .add(snapshot);
        }
        let (inputs, outputs) = in_flight(state);
        if let Some(head) = meta.operators.first() {
            tallies
                .entry(head.clone())
                .or_insert_with(|| Tally::new(now_ms))
                .in_flight += inputs;
        }
        if let Some(tail) = meta.operators.last() {
            tallies
                .entry(tail.clone())
                .or_insert_with(|| Tally::new(now_ms))
                .in_flight += outputs;
        }
    }
    for (uid, mut tally) in tallies {
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
                    schemas: BTreeMap::new(),
                });
                operators.len() - 1
            }
        };
        let operator = &mut operators[index];
        operator.state_bytes = tally.bytes;
        operator.in_flight_bytes = tally.in_flight;
        operator.schemas = std::mem::take(&mut tally.schemas);
        operator.states = tally.into_states();
    }

    let windows = window_reports(path, &operators);
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
        windows,
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
    /// The time to live, if some part has one (or the state is opaque).
    ttl: Option<TtlTally>,
    /// Some part of a keyed state has no time to live.
    plain_parts: bool,
}

/// A state's time to live, summed over its parts.
struct TtlTally {
    /// The first part's settings, with the latest clock of all parts.
    settings: Option<TtlSettings>,
    live: u64,
    expired: u64,
    /// Some part's entries could not be counted.
    uncounted: bool,
    /// The first part's reference, and the latest of the parts' times.
    against: ExpiredAgainst,
    as_of: Option<i64>,
}

impl TtlTally {
    fn into_report(self, plain_parts: bool) -> StateTtlReport {
        if self.settings.is_none() {
            return StateTtlReport::unknown();
        }
        // Parts without a time to live as well: their entries are not
        // counted the same way (keys, not elements), so no total is right.
        let counted = !self.uncounted && !plain_parts;
        let known = self.against != ExpiredAgainst::Unknown;
        StateTtlReport {
            settings: self.settings,
            live_entries: counted.then_some(self.live),
            expired_entries: (counted && known).then_some(self.expired),
            expired_against: self.against,
            expired_as_of_ms: self.as_of,
        }
    }
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

    /// Adds a part of a keyed state (one key group), counting its entries by
    /// expiry if it has a time to live (against `now`, see [`ExpiredAgainst`]).
    fn add_keyed(&mut self, state: &StateBytes, now: i64) {
        self.add(
            codec::sequence_len(&state.entries),
            state.entries.len() as u64,
        );
        self.type_name
            .get_or_insert_with(|| state.type_name.clone());

        let Some(settings) = state.ttl else {
            self.plain_parts = true;
            return;
        };
        let (against, as_of) = ExpiredAgainst::of(&settings, now);
        let counts = count_by_expiry(state.kind, &state.entries, as_of);
        let tally = self.ttl.get_or_insert(TtlTally {
            settings: Some(settings),
            live: 0,
            expired: 0,
            uncounted: false,
            against,
            as_of,
        });
        if let Some(recorded) = tally.settings.as_mut() {
            recorded.clock_ms = recorded.clock_ms.max(settings.clock_ms);
        }
        tally.as_of = tally.as_of.max(as_of);
        match counts {
            Ok(counts) => {
                tally.live += counts.live;
                tally.expired += counts.expired;
            }
            Err(_) => tally.uncounted = true,
        }
    }

    /// Marks the state's time to live as not known (opaque keyed bytes).
    fn ttl_unknown(&mut self) {
        self.ttl = Some(TtlTally {
            settings: None,
            live: 0,
            expired: 0,
            uncounted: true,
            against: ExpiredAgainst::Unknown,
            as_of: None,
        });
    }
}

/// One operator's states, summed over its subtasks.
struct Tally {
    states: BTreeMap<(StateReportKind, String), StateTally>,
    /// The keyed states' recorded schemas, by name.
    schemas: BTreeMap<String, crate::state::schema::StateSchema>,
    bytes: u64,
    in_flight: u64,
    /// The wall clock of the inspection (ms since the epoch).
    now: i64,
}

impl Tally {
    fn new(now: i64) -> Self {
        Tally {
            states: BTreeMap::new(),
            schemas: BTreeMap::new(),
            bytes: 0,
            in_flight: 0,
            now,
        }
    }

    fn state(&mut self, kind: StateReportKind, name: &str) -> &mut StateTally {
        self.states.entry((kind, name.to_string())).or_default()
    }

    fn add(&mut self, snapshot: &OperatorSnapshot) {
        self.bytes += snapshot.size() as u64;
        // Schemas that do not decode are left out (a restore names them).
        use crate::state::schema::Scope;
        for scope in [Scope::Keyed, Scope::Operator, Scope::Broadcast] {
            for (name, recorded) in decode_schemas(scope, &snapshot.meta).unwrap_or_default() {
                self.schemas.entry(name).or_insert(recorded.schema);
            }
        }
        for bytes in snapshot.keyed.values() {
            match read_key_group(bytes) {
                Ok(group) => {
                    let now = self.now;
                    for state in &group.states {
                        self.state(StateReportKind::of_keyed(state.kind), &state.name)
                            .add_keyed(state, now);
                    }
                    if !group.timers.is_empty() {
                        self.state(StateReportKind::Timers, "timers").add(
                            codec::sequence_len(&group.timers),
                            group.timers.len() as u64,
                        );
                    }
                }
                Err(_) => {
                    let tally = self.state(StateReportKind::OpaqueKeyed, "keyed");
                    tally.add(None, bytes.len() as u64);
                    tally.ttl_unknown();
                }
            }
        }
        for handle in &snapshot.keyed_handles {
            // Incremental keyed state: the backend's own files, listed with
            // their sizes (the handle's inline bytes count in `size()`).
            let shared: u64 = handle.shared.iter().map(|f| f.size).sum();
            self.bytes += shared;
            let tally = self.state(
                StateReportKind::OpaqueKeyed,
                &format!("keyed ({}, incremental)", handle.backend),
            );
            tally.add(None, shared + handle.data.len() as u64);
            tally.ttl_unknown();
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
                ttl: tally.ttl.map(|t| t.into_report(tally.plain_parts)),
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
        write!(f, "{states}")?;
        write_schemas(f, &self.operators)?;
        write_ttl(f, &self.operators)?;
        write_windows(f, &self.windows)
    }
}

/// The table of the states' recorded schemas (none: nothing): each
/// state's version and type, its shape written out.
fn write_schemas(f: &mut fmt::Formatter<'_>, operators: &[OperatorReport]) -> fmt::Result {
    let mut table = Table::new(&[
        ("OPERATOR", Align::Left),
        ("STATE", Align::Left),
        ("VERSION", Align::Right),
        ("TYPE", Align::Left),
    ]);
    let mut any = false;
    for o in operators {
        for (name, schema) in &o.schemas {
            any = true;
            let shape = match &schema.user_key {
                Some(key) => format!("{key} -> {}", schema.value),
                None => schema.value.to_string(),
            };
            table.row(vec![
                o.uid.clone(),
                name.clone(),
                schema.version.to_string(),
                shape,
            ]);
        }
    }
    if !any {
        return Ok(());
    }
    writeln!(f)?;
    write!(f, "{table}")
}

/// The table of the states with a time to live (none: nothing), and what
/// its columns mean.
fn write_ttl(f: &mut fmt::Formatter<'_>, operators: &[OperatorReport]) -> fmt::Result {
    let rows: Vec<(&OperatorReport, &StateReport, &StateTtlReport)> = operators
        .iter()
        .flat_map(|o| {
            o.states
                .iter()
                .filter_map(move |s| s.ttl.as_ref().map(|t| (o, s, t)))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&[
        ("OPERATOR", Align::Left),
        ("STATE", Align::Left),
        ("LIVE", Align::Right),
        ("EXPIRED", Align::Right),
        ("AS OF", Align::Left),
        ("SNAPSHOT CLOCK", Align::Left),
        ("TIME TO LIVE", Align::Left),
    ]);
    let count = |n: Option<u64>| n.map_or_else(|| "-".into(), |n| n.to_string());
    let (mut now, mut event_time, mut unknown) = (None, false, false);
    for (o, s, t) in &rows {
        let settings = match &t.settings {
            Some(settings) => describe(settings),
            None => {
                unknown = true;
                "unknown".into()
            }
        };
        let as_of = match t.expired_against {
            ExpiredAgainst::InspectionTime => {
                now = now.or(t.expired_as_of_ms);
                "now".to_string()
            }
            ExpiredAgainst::SnapshotClock => "snapshot clock".into(),
            ExpiredAgainst::Unknown => {
                event_time |= t.settings.is_some();
                "-".into()
            }
        };
        let clock = t
            .settings
            .and_then(|s| s.clock_ms)
            .map_or_else(|| "-".into(), format_rfc3339_millis);
        table.row(vec![
            o.uid.clone(),
            s.name.clone(),
            count(t.live_entries),
            count(t.expired_entries),
            as_of,
            clock,
            settings,
        ]);
    }
    writeln!(f)?;
    write!(f, "{table}")?;
    writeln!(f)?;
    writeln!(
        f,
        "LIVE and EXPIRED count values, list elements and map entries (ENTRIES counts keys)."
    )?;
    if let Some(now) = now {
        writeln!(
            f,
            "now: {}, the time of this inspection (expired: what a restore now would drop).",
            format_rfc3339_millis(now)
        )?;
    }
    if rows
        .iter()
        .any(|(_, _, t)| t.expired_against == ExpiredAgainst::SnapshotClock)
    {
        writeln!(
            f,
            "snapshot clock: the state's clock in the snapshot (the watermark for event time)."
        )?;
    }
    if event_time {
        writeln!(
            f,
            "event time: the snapshot does not record the watermark; every entry is counted live."
        )?;
    }
    if unknown {
        writeln!(
            f,
            "unknown: keyed bytes in a backend's own format (incremental checkpoint) are not decoded."
        )?;
    }
    Ok(())
}

/// `settings` in words (without the clock), the downtime policy of
/// processing time always said.
fn describe(settings: &TtlSettings) -> String {
    let settings = TtlSettings {
        clock_ms: None,
        ..*settings
    };
    match (settings.time, settings.downtime) {
        (TtlTime::ProcessingTime, DowntimePolicy::ClockContinues) => {
            format!("{settings}, clock continues")
        }
        _ => settings.to_string(),
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
        encode_key_group(states, &vec![timer; timers], None).unwrap()
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

    /// One state with a time to live of `settings`: `entries` per key, each
    /// `(key, expiries)` (one value for value state; list elements; map
    /// entries).
    fn ttl_state(
        name: &str,
        kind: StateKind,
        settings: TtlSettings,
        entries: &[(u32, &[i64])],
    ) -> StateBytes {
        use crate::keys::KeyMap;
        use crate::state::ttl::Expiring;
        let entries = match kind {
            StateKind::List => codec::encode(
                &entries
                    .iter()
                    .map(|(k, at)| (*k, at.iter().map(|&at| Expiring(at, 1u8)).collect()))
                    .collect::<Vec<(u32, Vec<Expiring<u8>>)>>(),
            ),
            StateKind::Map => codec::encode(
                &entries
                    .iter()
                    .map(|(k, at)| {
                        let map: KeyMap<String, Expiring<u8>> = at
                            .iter()
                            .enumerate()
                            .map(|(i, &at)| (i.to_string(), Expiring(at, 2u8)))
                            .collect();
                        (*k, map)
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => codec::encode(
                &entries
                    .iter()
                    .map(|(k, at)| (*k, Expiring(at[0], "v".to_string())))
                    .collect::<Vec<_>>(),
            ),
        }
        .unwrap();
        StateBytes {
            name: name.into(),
            kind,
            type_name: "t".into(),
            entries,
            ttl: Some(settings),
        }
    }

    fn settings(time: TtlTime, downtime: DowntimePolicy, clock_ms: Option<i64>) -> TtlSettings {
        TtlSettings {
            ttl_ms: 60_000,
            update: crate::state::ttl::TtlUpdate::OnCreateAndWrite,
            visibility: crate::state::ttl::TtlVisibility::NeverReturnExpired,
            time,
            downtime,
            clock_ms,
        }
    }

    /// A snapshot whose keyed operator holds states with a time to live:
    /// written at (state clock) 1000 and 1100 by its two subtasks.
    fn ttl_snapshot(dir: &Path) {
        use DowntimePolicy::*;
        use TtlTime::*;
        let group = |states: Vec<StateBytes>| encode_key_group::<u32>(states, &[], None).unwrap();
        let k0 = keyed(&[(
            0,
            group(vec![
                // Processing time: expiries 1500, 2000, 3000 and never.
                ttl_state(
                    "sessions",
                    StateKind::Value,
                    settings(ProcessingTime, ClockContinues, Some(1000)),
                    &[(1, &[1500]), (2, &[3000])],
                ),
                ttl_state(
                    "clicks",
                    StateKind::List,
                    settings(ProcessingTime, ClockContinues, Some(1000)),
                    &[(1, &[1500, 2000, i64::MAX])],
                ),
                ttl_state(
                    "paused",
                    StateKind::Map,
                    settings(ProcessingTime, PauseDuringDowntime, Some(1000)),
                    &[(1, &[1500, 2000])],
                ),
                ttl_state(
                    "seen",
                    StateKind::Value,
                    settings(EventTime, ClockContinues, None),
                    &[(1, &[5]), (2, &[10])],
                ),
            ]),
        )]);
        let k1 = keyed(&[
            (
                5,
                group(vec![ttl_state(
                    "sessions",
                    StateKind::Value,
                    settings(ProcessingTime, ClockContinues, Some(1100)),
                    &[(3, &[1999])],
                )]),
            ),
            (6, keyed_group(&[("count", StateKind::Value, 2)], 0)),
        ]);
        write_snapshot(dir, [k0, k1], OperatorSnapshot::default());
    }

    #[test]
    fn ttl_states_show_their_settings_and_entries_by_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("savepoint-00ff00-4");
        ttl_snapshot(&path);

        // At 2000: processing time with the clock continuing is counted
        // against it (expired at exactly the expiry), paused processing time
        // against its clock in the snapshot, event time not at all.
        let report = inspect_at(&path, 2000).unwrap();
        let ttl = |name: &str| {
            report.operators[1]
                .states
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{name} in {:?}", report.operators[1]))
                .ttl
                .clone()
        };
        use DowntimePolicy::*;
        use TtlTime::*;
        assert_eq!(
            ttl("sessions"),
            Some(StateTtlReport {
                // The latest clock of the two subtasks.
                settings: Some(settings(ProcessingTime, ClockContinues, Some(1100))),
                live_entries: Some(1),
                expired_entries: Some(2),
                expired_against: ExpiredAgainst::InspectionTime,
                expired_as_of_ms: Some(2000),
            })
        );
        // List elements, not keys.
        let clicks = ttl("clicks").unwrap();
        assert_eq!(
            (clicks.live_entries, clicks.expired_entries),
            (Some(1), Some(2))
        );
        assert_eq!(
            ttl("paused"),
            Some(StateTtlReport {
                settings: Some(settings(ProcessingTime, PauseDuringDowntime, Some(1000))),
                live_entries: Some(2),
                expired_entries: Some(0),
                expired_against: ExpiredAgainst::SnapshotClock,
                expired_as_of_ms: Some(1000),
            })
        );
        assert_eq!(
            ttl("seen"),
            Some(StateTtlReport {
                settings: Some(settings(EventTime, ClockContinues, None)),
                live_entries: Some(2),
                expired_entries: None,
                expired_against: ExpiredAgainst::Unknown,
                expired_as_of_ms: None,
            })
        );
        assert_eq!(ttl("count"), None);
        // ENTRIES still counts keys.
        let entries: Vec<(&str, Option<u64>)> = report.operators[1]
            .states
            .iter()
            .map(|s| (s.name.as_str(), s.entries))
            .collect();
        assert_eq!(
            entries,
            [
                ("count", Some(2)),
                ("seen", Some(2)),
                ("sessions", Some(3)),
                ("clicks", Some(1)),
                ("paused", Some(1))
            ]
        );

        // Earlier, less has expired; the rest of the report is the same.
        let before = inspect_at(&path, 1000).unwrap();
        let sessions = before.operators[1]
            .states
            .iter()
            .find(|s| s.name == "sessions")
            .and_then(|s| s.ttl.clone())
            .unwrap();
        assert_eq!(
            (sessions.live_entries, sessions.expired_entries),
            (Some(3), Some(0))
        );
    }

    #[test]
    fn ttl_states_print_as_a_table_after_the_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("savepoint-00ff00-4");
        ttl_snapshot(&path);
        let text = inspect_at(&path, 1_700_000_000_000).unwrap().to_string();
        let (_, ttl) = text
            .split_once("OPERATOR  STATE     LIVE")
            .unwrap_or_else(|| panic!("a TTL table in {text}"));
        assert_eq!(
            format!("OPERATOR  STATE     LIVE{ttl}"),
            "\
OPERATOR  STATE     LIVE  EXPIRED  AS OF           SNAPSHOT CLOCK            TIME TO LIVE
counts    seen         2        -  -               -                         ttl 60000 ms, event time, OnCreateAndWrite, NeverReturnExpired
counts    sessions     0        3  now             1970-01-01T00:00:01.100Z  ttl 60000 ms, processing time, OnCreateAndWrite, NeverReturnExpired, clock continues
counts    clicks       1        2  now             1970-01-01T00:00:01.000Z  ttl 60000 ms, processing time, OnCreateAndWrite, NeverReturnExpired, clock continues
counts    paused       2        0  snapshot clock  1970-01-01T00:00:01.000Z  ttl 60000 ms, processing time, OnCreateAndWrite, NeverReturnExpired, paused during downtime

LIVE and EXPIRED count values, list elements and map entries (ENTRIES counts keys).
now: 2023-11-14T22:13:20.000Z, the time of this inspection (expired: what a restore now would drop).
snapshot clock: the state's clock in the snapshot (the watermark for event time).
event time: the snapshot does not record the watermark; every entry is counted live.
"
        );
        // The states table itself is as without a time to live.
        assert!(
            text.contains("counts    sessions  keyed value        3     26\n"),
            "{text}"
        );
    }

    #[test]
    fn ttl_fields_are_in_the_json_only_for_states_with_a_time_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("savepoint-00ff00-4");
        ttl_snapshot(&path);
        let report = inspect_at(&path, 2000).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let states = json["operators"][1]["states"].as_array().unwrap();
        let state = |name: &str| states.iter().find(|s| s["name"] == name).unwrap();
        let count = state("count").as_object().unwrap();
        let keys: Vec<&str> = count.keys().map(String::as_str).collect();
        assert_eq!(keys, ["bytes", "entries", "kind", "name", "type_name"]);
        assert_eq!(
            state("seen"),
            &serde_json::json!({
                "name": "seen",
                "kind": "keyed_value",
                "type_name": "t",
                "entries": 2,
                "bytes": state("seen")["bytes"],
                "ttl": {
                    "ttl_ms": 60000,
                    "update": "OnCreateAndWrite",
                    "visibility": "NeverReturnExpired",
                    "time": "EventTime",
                    "downtime": "ClockContinues"
                },
                "live_entries": 2,
                "expired_entries": null,
                "expired_against": "unknown",
                "expired_as_of_ms": null
            })
        );
        let sessions = state("sessions");
        assert_eq!(sessions["ttl"]["clock_ms"], 1100);
        assert_eq!(
            (
                &sessions["live_entries"],
                &sessions["expired_entries"],
                &sessions["expired_against"],
                &sessions["expired_as_of_ms"]
            ),
            (
                &1.into(),
                &2.into(),
                &"inspection_time".into(),
                &2000.into()
            )
        );
    }

    #[test]
    fn undecoded_keyed_bytes_have_an_unknown_time_to_live() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-4");
        let foreign = keyed(&[(1, b"\x01rocksdb sst handle".to_vec())]);
        write_snapshot(
            &path,
            [foreign, OperatorSnapshot::default()],
            OperatorSnapshot::default(),
        );
        let report = inspect_at(&path, 0).unwrap();
        let opaque = &report.operators[1].states[0];
        assert_eq!(opaque.kind, StateReportKind::OpaqueKeyed);
        assert_eq!(opaque.ttl, Some(StateTtlReport::unknown()));
        let json = serde_json::to_value(opaque).unwrap();
        assert_eq!(
            (
                &json["ttl"],
                &json["live_entries"],
                &json["expired_entries"]
            ),
            (
                &serde_json::Value::Null,
                &serde_json::Value::Null,
                &serde_json::Value::Null
            )
        );
        let text = report.to_string();
        assert!(
            text.contains("counts    keyed     -        -  -      -               unknown\n"),
            "{text}"
        );
        assert!(
            text.contains("\nunknown: keyed bytes in a backend's own format"),
            "{text}"
        );
    }

    #[test]
    fn ttl_entries_that_do_not_decode_are_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chk-4");
        let mut broken = ttl_state(
            "sessions",
            StateKind::Value,
            settings(
                TtlTime::ProcessingTime,
                DowntimePolicy::ClockContinues,
                None,
            ),
            &[(1, &[5])],
        );
        // Values without their expiries.
        broken.entries = codec::encode(&vec![(1u32, 7u64)]).unwrap();
        let k0 = keyed(&[(0, encode_key_group::<u32>(vec![broken], &[], None).unwrap())]);
        write_snapshot(
            &path,
            [k0, OperatorSnapshot::default()],
            OperatorSnapshot::default(),
        );
        let report = inspect_at(&path, 10).unwrap();
        let state = &report.operators[1].states[0];
        assert_eq!(state.entries, Some(1));
        let ttl = state.ttl.as_ref().unwrap();
        assert!(ttl.settings.is_some());
        assert_eq!((ttl.live_entries, ttl.expired_entries), (None, None));
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

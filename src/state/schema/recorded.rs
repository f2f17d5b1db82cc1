//! What a snapshot recorded of an operator's keyed states (kind and
//! schema, per state name), read from its subtasks' snapshots: the key
//! groups' bytes, and for incremental RocksDB handles the registrations in
//! the database they restore.

use std::collections::BTreeMap;

use weir_actors::snapshot::OperatorSnapshot;

use super::declare::DeclaredState;
use super::verdict::{Compatibility, SchemaProblem, StateSchema};
use crate::state::key_group_format::read_key_group;
use crate::state::StateKind;

/// One keyed state as a snapshot recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedState {
    /// Its kind.
    pub kind: StateKind,
    /// Its schema (`None`: written before weir recorded schemas).
    pub schema: Option<StateSchema>,
}

/// The keyed states `snapshots` (one operator's, any subtasks) recorded,
/// by name. Key groups in another format are skipped (the restore reports
/// them); an incremental handle's database is opened in a temporary
/// directory to read its registrations.
pub fn recorded_states(
    uid: &str,
    snapshots: &[&OperatorSnapshot],
) -> Result<BTreeMap<String, RecordedState>, String> {
    let mut out: BTreeMap<String, RecordedState> = BTreeMap::new();
    let mut note = |name: &str, kind: StateKind, schema: Option<&StateSchema>| {
        let entry = out
            .entry(name.to_string())
            .or_insert(RecordedState { kind, schema: None });
        if entry.schema.is_none() {
            entry.schema = schema.cloned();
        }
    };
    // After a change of parallelism, one handle reaches several subtasks.
    #[cfg(feature = "rocksdb")]
    let mut handles_read: Vec<&weir_actors::snapshot::KeyedStateHandle> = Vec::new();
    for snapshot in snapshots {
        for bytes in snapshot.keyed.values() {
            if let Ok(group) = read_key_group(bytes) {
                for state in &group.states {
                    note(&state.name, state.kind, state.schema.as_ref());
                }
            }
        }
        #[cfg(feature = "rocksdb")]
        for handle in &snapshot.keyed_handles {
            if handles_read.contains(&handle) {
                continue;
            }
            handles_read.push(handle);
            let work = std::env::temp_dir().join(format!(
                "weir-schemas-{}-{}",
                std::process::id(),
                handle.start
            ));
            let read = crate::state::rocksdb::read_handle_registrations(handle, uid, &work);
            let _ = std::fs::remove_dir_all(&work);
            for (name, kind, schema) in read.map_err(|e| e.to_string())? {
                note(&name, kind, schema.as_ref());
            }
        }
        #[cfg(not(feature = "rocksdb"))]
        if !snapshot.keyed_handles.is_empty() {
            return Err(format!(
                "operator `{uid}` has incremental RocksDB state: its schemas are read by a \
                 binary built with the `rocksdb` feature"
            ));
        }
    }
    Ok(out)
}

/// The verdict on one declared state against what a snapshot recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum StateVerdict {
    /// The snapshot recorded it with a schema the job reads.
    Restores {
        /// How.
        #[serde(flatten)]
        compatibility: Compatibility,
    },
    /// The snapshot does not hold it: it starts empty.
    New,
    /// The snapshot holds it without a schema (written before weir
    /// recorded schemas): it is checked as it is decoded.
    NotRecorded,
    /// Another kind of state under the same name.
    KindChanged {
        /// The snapshot's.
        snapshot: StateKind,
        /// The job's.
        job: StateKind,
    },
    /// The job cannot read it.
    Refused {
        /// Why, and what to do.
        reason: String,
    },
}

impl StateVerdict {
    /// The verdict on `declared`, recorded as `recorded` (if at all).
    pub fn of(declared: &DeclaredState, recorded: Option<&RecordedState>) -> StateVerdict {
        let Some(recorded) = recorded else {
            return StateVerdict::New;
        };
        if recorded.kind != declared.kind {
            return StateVerdict::KindChanged {
                snapshot: recorded.kind,
                job: declared.kind,
            };
        }
        let Some(schema) = &recorded.schema else {
            return StateVerdict::NotRecorded;
        };
        match declared.verdict(schema) {
            Ok(compatibility) => StateVerdict::Restores { compatibility },
            Err(
                problem @ (SchemaProblem::Downgrade { .. } | SchemaProblem::Incompatible { .. }),
            ) => StateVerdict::Refused {
                reason: problem.to_string(),
            },
        }
    }

    /// What prevents the restore, if anything.
    pub fn error(&self) -> Option<String> {
        match self {
            StateVerdict::KindChanged { snapshot, job } => Some(format!(
                "the snapshot holds a {snapshot:?} state under this name and the job declares a {job:?} state"
            )),
            StateVerdict::Refused { reason } => Some(reason.clone()),
            _ => None,
        }
    }
}

impl std::fmt::Display for StateVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateVerdict::Restores { compatibility } => match compatibility {
                Compatibility::Identical => f.write_str("identical"),
                Compatibility::AsIs => f.write_str("compatible as is"),
                Compatibility::AfterMigration { from, to } => {
                    write!(f, "after migration {from} -> {to}")
                }
                Compatibility::Unchecked => f.write_str("unchecked (opaque type)"),
            },
            StateVerdict::New => f.write_str("new (starts empty)"),
            StateVerdict::NotRecorded => f.write_str("no schema recorded"),
            StateVerdict::KindChanged { .. } => f.write_str("KIND CHANGED"),
            StateVerdict::Refused { reason }
                if reason.starts_with("the snapshot was written by version") =>
            {
                f.write_str("DOWNGRADE")
            }
            StateVerdict::Refused { .. } => f.write_str("INCOMPATIBLE"),
        }
    }
}

/// The verdict on one declared state of one operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateCheck {
    /// The operator's uid.
    pub uid: String,
    /// The state's name.
    pub state: String,
    /// Its version in the job.
    pub version: u32,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: StateVerdict,
}

/// The verdicts on the states operator `uid` declares, against its
/// `snapshots`.
pub fn check_states(
    uid: &str,
    declared: &[DeclaredState],
    snapshots: &[&OperatorSnapshot],
) -> Result<Vec<StateCheck>, String> {
    if declared.is_empty() {
        return Ok(Vec::new());
    }
    let recorded = recorded_states(uid, snapshots)?;
    Ok(declared
        .iter()
        .map(|d| StateCheck {
            uid: uid.to_string(),
            state: d.name.clone(),
            version: d.schema.version,
            verdict: StateVerdict::of(d, recorded.get(&d.name)),
        })
        .collect())
}

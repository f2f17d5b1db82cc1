//! What a snapshot records of an operator's states as a whole: each
//! state's kind and schema, in the operator snapshot's `meta` under
//! `schema/<name>` (keyed states), `operator-schema/<name>` (operator list
//! states) or `broadcast-schema/<name>` (broadcast states), as
//! `msgpack([kind, schema])` (one owner of that format: [`encode_schemas`],
//! [`decode_schemas`]); and the verdict on the states a job declares
//! against them.

use std::collections::BTreeMap;

use weir_actors::snapshot::OperatorSnapshot;

use super::declare::DeclaredState;
use super::verdict::{Compatibility, SchemaProblem, StateSchema};
use crate::runtime::codec;
use crate::state::StateKind;

/// Which states a schema in `meta` belongs to.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Keyed states.
    #[default]
    Keyed,
    /// Operator list states.
    Operator,
    /// Broadcast states.
    Broadcast,
}

impl Scope {
    fn prefix(self) -> &'static str {
        match self {
            Scope::Keyed => "schema/",
            Scope::Operator => "operator-schema/",
            Scope::Broadcast => "broadcast-schema/",
        }
    }
}

/// One state as a snapshot recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedState {
    /// Its kind.
    pub kind: StateKind,
    /// Its schema.
    pub schema: StateSchema,
}

/// The `meta` entries of the states of `scope` in `states` (name -> kind
/// and schema).
pub(crate) fn encode_schemas(
    scope: Scope,
    states: &BTreeMap<String, RecordedState>,
) -> Result<BTreeMap<String, Vec<u8>>, codec::CodecError> {
    states
        .iter()
        .map(|(name, r)| {
            codec::encode(&(r.kind, &r.schema))
                .map(|bytes| (format!("{}{name}", scope.prefix()), bytes))
        })
        .collect()
}

/// The kinds and schemas of the states of `scope` in `meta`, by name; an
/// entry that does not decode is an error naming the state.
pub fn decode_schemas(
    scope: Scope,
    meta: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, RecordedState>, String> {
    meta.iter()
        .filter_map(|(key, bytes)| Some((key.strip_prefix(scope.prefix())?, bytes)))
        .map(|(name, bytes)| {
            let (kind, schema): (StateKind, StateSchema) = codec::decode(bytes).map_err(|e| {
                format!("the recorded schema of state `{name}` does not decode: {e}")
            })?;
            Ok((name.to_string(), RecordedState { kind, schema }))
        })
        .collect()
}

/// The keyed states `snapshots` (one operator's, any subtasks) recorded,
/// by name.
pub fn recorded_states(
    snapshots: &[&OperatorSnapshot],
) -> Result<BTreeMap<String, RecordedState>, String> {
    let mut out = BTreeMap::new();
    for snapshot in snapshots {
        for (name, state) in decode_schemas(Scope::Keyed, &snapshot.meta)? {
            out.entry(name).or_insert(state);
        }
    }
    Ok(out)
}

/// Whether `snapshots` hold keyed state at all.
fn has_keyed_state(snapshots: &[&OperatorSnapshot]) -> bool {
    snapshots
        .iter()
        .any(|s| !s.keyed.is_empty() || !s.keyed_handles.is_empty())
}

/// The verdict on one declared state against what a snapshot recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum StateVerdict {
    /// The snapshot holds it and the job does not declare it: it is judged
    /// when a descriptor first opens it.
    Undeclared,
    /// The snapshot recorded it with a schema the job reads.
    Restores {
        /// How.
        #[serde(flatten)]
        compatibility: Compatibility,
    },
    /// The snapshot does not hold it: it starts empty.
    New,
    /// The snapshot holds keyed state without schemas (written before
    /// weir recorded them): it is checked as it is decoded.
    NotRecorded,
    /// Another kind of state under the same name.
    KindChanged {
        /// The snapshot's.
        snapshot: StateKind,
        /// The job's.
        job: StateKind,
    },
    /// The snapshot was written by a newer version of the state.
    Downgrade {
        /// The snapshot's version.
        snapshot: u32,
        /// The job's.
        job: u32,
    },
    /// The job cannot read it.
    Refused {
        /// Why, and what to do.
        reason: String,
    },
}

impl StateVerdict {
    /// The verdict on `declared`, recorded as `recorded` (if at all; a
    /// snapshot with keyed state but no schemas was written before weir
    /// recorded them: `legacy`).
    pub fn of(
        declared: &DeclaredState,
        recorded: Option<&RecordedState>,
        legacy: bool,
    ) -> StateVerdict {
        let Some(recorded) = recorded else {
            return match legacy {
                true => StateVerdict::NotRecorded,
                false => StateVerdict::New,
            };
        };
        if recorded.kind != declared.kind {
            return StateVerdict::KindChanged {
                snapshot: recorded.kind,
                job: declared.kind,
            };
        }
        match declared.verdict(&recorded.schema) {
            Ok(compatibility) => StateVerdict::Restores { compatibility },
            Err(SchemaProblem::Downgrade { snapshot, job }) => {
                StateVerdict::Downgrade { snapshot, job }
            }
            Err(SchemaProblem::Incompatible { detail }) => StateVerdict::Refused { reason: detail },
        }
    }

    /// What prevents the restore, if anything.
    pub fn error(&self) -> Option<String> {
        match self {
            StateVerdict::KindChanged { snapshot, job } => Some(format!(
                "the snapshot holds a {snapshot:?} state under this name and the job declares a {job:?} state"
            )),
            StateVerdict::Downgrade { snapshot, job } => Some(
                SchemaProblem::Downgrade {
                    snapshot: *snapshot,
                    job: *job,
                }
                .to_string(),
            ),
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
            StateVerdict::Undeclared => f.write_str("not declared (judged when first opened)"),
            StateVerdict::NotRecorded => f.write_str("no schema recorded"),
            StateVerdict::KindChanged { .. } => f.write_str("KIND CHANGED"),
            StateVerdict::Downgrade { .. } => f.write_str("DOWNGRADE"),
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

/// The verdicts on the keyed states operator `uid` declares, against its
/// `snapshots`, and the states the snapshots recorded that it does not
/// declare (keyed, operator and broadcast: [`StateVerdict::Undeclared`],
/// with their recorded version).
pub fn check_states(
    uid: &str,
    declared: &[DeclaredState],
    snapshots: &[&OperatorSnapshot],
) -> Result<Vec<StateCheck>, String> {
    let recorded = recorded_states(snapshots).map_err(|e| format!("operator `{uid}`: {e}"))?;
    let legacy = recorded.is_empty() && has_keyed_state(snapshots);
    let mut scoped: BTreeMap<Scope, BTreeMap<String, RecordedState>> = BTreeMap::new();
    scoped.insert(Scope::Keyed, recorded);
    for scope in [Scope::Operator, Scope::Broadcast] {
        let states = scoped.entry(scope).or_default();
        for snapshot in snapshots {
            for (name, state) in decode_schemas(scope, &snapshot.meta)
                .map_err(|e| format!("operator `{uid}`: {e}"))?
            {
                states.entry(name).or_insert(state);
            }
        }
    }
    let mut checks: Vec<StateCheck> = declared
        .iter()
        .map(|d| {
            let recorded = scoped.get(&d.scope).and_then(|states| states.get(&d.name));
            StateCheck {
                uid: uid.to_string(),
                state: d.name.clone(),
                version: d.schema.version,
                verdict: StateVerdict::of(d, recorded, legacy && d.scope == Scope::Keyed),
            }
        })
        .collect();
    let mut undeclared = |name: &str, state: &RecordedState| {
        checks.push(StateCheck {
            uid: uid.to_string(),
            state: name.to_string(),
            version: state.schema.version,
            verdict: StateVerdict::Undeclared,
        })
    };
    for (scope, states) in &scoped {
        for (name, state) in states {
            if !declared
                .iter()
                .any(|d| d.scope == *scope && &d.name == name)
            {
                undeclared(name, state);
            }
        }
    }
    Ok(checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::schema::{StateDeclarations, TypeSchema};
    use crate::state::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};

    fn recorded<T: serde::de::DeserializeOwned>(kind: StateKind) -> RecordedState {
        RecordedState {
            kind,
            schema: StateSchema {
                version: 1,
                value: TypeSchema::of::<T>(),
                user_key: (kind == StateKind::Map).then(TypeSchema::of::<String>),
            },
        }
    }

    #[test]
    fn every_state_of_every_scope_gets_a_verdict() {
        let mut meta = BTreeMap::new();
        for (scope, name, state) in [
            (Scope::Keyed, "count", recorded::<u32>(StateKind::Value)),
            (Scope::Operator, "buffer", recorded::<u32>(StateKind::List)),
            (Scope::Broadcast, "rules", recorded::<u32>(StateKind::Map)),
            (
                Scope::Operator,
                "positions",
                recorded::<u64>(StateKind::List),
            ),
        ] {
            meta.extend(
                encode_schemas(scope, &BTreeMap::from([(name.to_string(), state)])).unwrap(),
            );
        }
        let snapshot = OperatorSnapshot {
            meta,
            ..Default::default()
        };
        let mut states = StateDeclarations::default();
        states
            .keyed(&ValueStateDescriptor::<u64>::new("count"))
            .operator(&ListStateDescriptor::<String>::new("buffer"))
            .broadcast(&MapStateDescriptor::<String, u32>::new("rules"))
            .keyed(&ValueStateDescriptor::<u64>::new("new"));
        let checks = check_states("op", states.states(), &[&snapshot]).unwrap();
        let verdict = |name: &str| {
            checks
                .iter()
                .find(|c| c.state == name)
                .map(|c| c.verdict.to_string())
                .unwrap()
        };
        assert_eq!(verdict("count"), "compatible as is");
        assert_eq!(verdict("buffer"), "INCOMPATIBLE");
        assert_eq!(verdict("rules"), "identical");
        assert_eq!(verdict("new"), "new (starts empty)");
        assert_eq!(
            verdict("positions"),
            "not declared (judged when first opened)"
        );
        assert_eq!(checks.len(), 5);
    }
}

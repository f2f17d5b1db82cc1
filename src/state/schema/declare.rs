//! States declared ahead of their first use: a function lists its keyed
//! state descriptors in [`Lifecycle::declare_states`](crate::Lifecycle::declare_states),
//! so that the job's plan (`--dump-plan`) carries every state's schema and
//! a restore is checked before the job starts (`check_restore`,
//! `weir check-restore`), not when a state is first used.

use serde::{Deserialize, Serialize};

use super::recorded::Scope;
use super::shape::TypeSchema;
use super::verdict::{verdict, Compatibility, SchemaProblem, StateSchema};
use crate::state::{
    Key, ListStateDescriptor, MapStateDescriptor, StateData, StateDescriptor, StateKind,
};

fn is_keyed(scope: &Scope) -> bool {
    *scope == Scope::Keyed
}

/// One declared state: its name, kind, schema and migrations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredState {
    /// The state's name.
    pub name: String,
    /// Keyed, operator or broadcast state.
    #[serde(default, skip_serializing_if = "is_keyed")]
    pub scope: Scope,
    /// Its kind.
    pub kind: StateKind,
    /// Its version and types.
    pub schema: StateSchema,
    /// The versions it migrates from, oldest first, with their types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<DeclaredMigration>,
}

/// A migration a state declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredMigration {
    /// The version it migrates from.
    pub from: u32,
    /// The type of that version's values.
    pub old: TypeSchema,
}

impl DeclaredState {
    /// The verdict on this state restored from a snapshot that recorded
    /// `recorded`.
    pub fn verdict(&self, recorded: &StateSchema) -> Result<Compatibility, SchemaProblem> {
        let first = self
            .migrations
            .iter()
            .find(|m| m.from >= recorded.version && m.from < self.schema.version)
            .map(|m| (m.from, &m.old));
        verdict(recorded, &self.schema, first)
    }
}

/// What [`Lifecycle::declare_states`](crate::Lifecycle::declare_states)
/// fills in.
///
/// ```
/// use weir::state::schema::StateDeclarations;
/// use weir::state::{MapStateDescriptor, ValueStateDescriptor};
/// let mut states = StateDeclarations::default();
/// states
///     .keyed(&ValueStateDescriptor::<u64>::new("count"))
///     .keyed(&MapStateDescriptor::<String, u64>::new("by-name"));
/// assert_eq!(states.states().len(), 2);
/// assert_eq!(states.states()[1].schema.user_key.as_ref().unwrap().to_string(), "String");
/// ```
#[derive(Clone, Debug, Default)]
pub struct StateDeclarations {
    states: Vec<DeclaredState>,
}

impl StateDeclarations {
    /// Declares the keyed state `descriptor` opens.
    pub fn keyed<D: StateDescriptor>(&mut self, descriptor: &D) -> &mut Self {
        self.declare(Scope::Keyed, descriptor)
    }

    /// Declares the operator list state `descriptor` opens (`list` or
    /// `union_list` in `initialize_state`).
    pub fn operator<T: StateData>(&mut self, descriptor: &ListStateDescriptor<T>) -> &mut Self {
        self.declare(Scope::Operator, descriptor)
    }

    /// Declares the broadcast state `descriptor` opens.
    pub fn broadcast<K: Key, V: StateData>(
        &mut self,
        descriptor: &MapStateDescriptor<K, V>,
    ) -> &mut Self {
        self.declare(Scope::Broadcast, descriptor)
    }

    fn declare<D: StateDescriptor>(&mut self, scope: Scope, descriptor: &D) -> &mut Self {
        let declared = descriptor.declared();
        let migrations = declared
            .evolution
            .steps()
            .iter()
            .map(|step| DeclaredMigration {
                from: step.from,
                old: (step.old_schema)(),
            })
            .collect();
        self.states
            .retain(|s| s.scope != scope || s.name != descriptor.name());
        self.states.push(DeclaredState {
            name: descriptor.name().to_string(),
            scope,
            kind: descriptor.kind(),
            schema: declared.schema,
            migrations,
        });
        self
    }

    /// The states declared so far.
    pub fn states(&self) -> &[DeclaredState] {
        &self.states
    }

    pub(crate) fn into_states(self) -> Vec<DeclaredState> {
        self.states
    }
}

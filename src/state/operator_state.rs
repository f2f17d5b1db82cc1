//! Operator state: state that belongs to a parallel instance of an operator
//! rather than to a key, and the contexts in which a function snapshots and
//! restores it (as Flink's `CheckpointedFunction`).
//!
//! An operator list state is a list of elements per subtask. On a restore at
//! another parallelism its elements are redistributed: with
//! [`OperatorStateStore::list`] each subtask gets an even share of all
//! elements, with [`OperatorStateStore::union_list`] every subtask gets all of
//! them. An operator may also keep *raw* state: bytes of its own, written at a
//! snapshot and handed back on restore.
//!
//! ```
//! use weir::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};
//! use weir::UserError;
//!
//! /// Keeps a buffer that survives restarts.
//! #[derive(Clone)]
//! struct Buffered { buffer: Vec<String>, state: ListStateDescriptor<String> }
//!
//! impl Buffered {
//!     fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
//!         ctx.operator_state().list(&self.state)?.update(&self.buffer)?;
//!         Ok(())
//!     }
//!     fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
//!         if ctx.is_restored() {
//!             self.buffer = ctx.operator_state().list(&self.state)?.get()?;
//!         }
//!         Ok(())
//!     }
//! }
//! ```

use crate::runtime::codec;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use weir_actors::snapshot::{ListStateSnapshot, Redistribution};

use super::descriptor::{ListStateDescriptor, StateDescriptor};
use super::error::StateError;
use super::schema::{self, decode_schemas, encode_schemas, RecordedState, Scope};
use super::{StateData, StateKind};
use crate::context::RuntimeContext;

/// The operator list states of one operator subtask, kept serialised.
#[derive(Clone, Debug, Default)]
pub struct OperatorStateStore {
    lists: BTreeMap<String, (Redistribution, Vec<Vec<u8>>)>,
    /// Each state's schema: as restored until a descriptor opens it (then
    /// its restored elements are judged, and migrated if need be), then
    /// the descriptor's.
    schemas: BTreeMap<String, RecordedState>,
    /// The states a descriptor opened.
    opened: BTreeSet<String>,
}

impl OperatorStateStore {
    /// The restored `lists`, with the schemas `meta` recorded (an entry
    /// that does not decode is an error naming the state).
    pub(crate) fn from_snapshot(
        lists: Vec<ListStateSnapshot>,
        meta: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, StateError> {
        Ok(OperatorStateStore {
            lists: lists
                .into_iter()
                .map(|l| (l.name, (l.mode, l.elements)))
                .collect(),
            schemas: decode_schemas(Scope::Operator, meta).map_err(StateError::Backend)?,
            opened: BTreeSet::new(),
        })
    }

    /// The `meta` entries of the states' schemas.
    pub(crate) fn meta(&self) -> Result<BTreeMap<String, Vec<u8>>, StateError> {
        encode_schemas(Scope::Operator, &self.schemas).map_err(|e| StateError::Encode {
            name: "the operator states' schemas".into(),
            cause: e.to_string(),
        })
    }

    /// At the first open of `descriptor`'s state: judges its restored
    /// elements against the schema they were recorded with, migrates them
    /// if need be, and records the descriptor's schema.
    fn judge<T: StateData>(
        &mut self,
        descriptor: &ListStateDescriptor<T>,
    ) -> Result<(), StateError> {
        let name = descriptor.name();
        if self.opened.contains(name) {
            return Ok(());
        }
        let declared = schema::declared_checked(descriptor)?;
        if let Some(recorded) = self.schemas.get(name) {
            let (_, migrations) = schema::judge(&recorded.schema, &declared)
                .map_err(|problem| StateError::schema(name, problem.to_string()))?;
            if let (false, Some((_, elements))) = (migrations.is_empty(), self.lists.get_mut(name))
            {
                // All or nothing: a failed migration leaves the restored elements.
                *elements = elements
                    .iter()
                    .map(|element| schema::migrate_value(&migrations, element))
                    .collect::<Result<_, _>>()
                    .map_err(|e| StateError::schema(name, format!("migrating an element: {e}")))?;
            }
        }
        self.schemas.insert(
            name.to_string(),
            RecordedState {
                kind: StateKind::List,
                schema: declared.schema,
            },
        );
        self.opened.insert(name.to_string());
        Ok(())
    }

    pub(crate) fn to_snapshot(&self) -> Vec<ListStateSnapshot> {
        self.lists
            .iter()
            .map(|(name, (mode, elements))| ListStateSnapshot {
                name: name.clone(),
                mode: *mode,
                elements: elements.clone(),
            })
            .collect()
    }

    fn open<'a, T>(
        &'a mut self,
        name: &'a str,
        mode: Redistribution,
    ) -> Result<OperatorListState<'a, T>, StateError> {
        let (existing, elements) = self
            .lists
            .entry(name.to_string())
            .or_insert_with(|| (mode, Vec::new()));
        if *existing != mode {
            return Err(StateError::Mismatch {
                name: name.to_string(),
                declared: format!("operator list state ({existing:?})"),
                requested: format!("operator list state ({mode:?})"),
            });
        }
        Ok(OperatorListState {
            name,
            elements,
            _type: PhantomData,
        })
    }

    /// The list state `descriptor`, split evenly over the subtasks on restore.
    pub fn list<'a, T: StateData>(
        &'a mut self,
        descriptor: &'a ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'a, T>, StateError> {
        no_ttl(descriptor, "operator")?;
        self.judge(descriptor)?;
        self.open(descriptor.name(), Redistribution::EvenSplit)
    }

    /// The list state `descriptor`, given whole to every subtask on restore.
    pub fn union_list<'a, T: StateData>(
        &'a mut self,
        descriptor: &'a ListStateDescriptor<T>,
    ) -> Result<OperatorListState<'a, T>, StateError> {
        no_ttl(descriptor, "operator")?;
        self.judge(descriptor)?;
        self.open(descriptor.name(), Redistribution::Union)
    }
}

/// Refuses a descriptor with a time to live for `what` (operator or
/// broadcast) state, which has none, as in Flink.
pub(crate) fn no_ttl(descriptor: &impl StateDescriptor, what: &str) -> Result<(), StateError> {
    match descriptor.ttl() {
        None => Ok(()),
        Some(_) => Err(StateError::invalid_ttl(format!(
            "{what} state `{}` cannot have a time to live (only keyed state can): \
             remove `with_ttl` from its descriptor",
            descriptor.name()
        ))),
    }
}

/// One operator list state, opened.
pub struct OperatorListState<'a, T> {
    name: &'a str,
    elements: &'a mut Vec<Vec<u8>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: StateData> OperatorListState<'_, T> {
    fn encode(&self, value: &T) -> Result<Vec<u8>, StateError> {
        codec::encode(value).map_err(|e| StateError::Encode {
            name: self.name.to_string(),
            cause: e.to_string(),
        })
    }

    /// The elements.
    pub fn get(&self) -> Result<Vec<T>, StateError> {
        self.elements
            .iter()
            .map(|bytes| {
                codec::decode(bytes).map_err(|e| StateError::Corrupt {
                    name: self.name.to_string(),
                    group: 0,
                    cause: e.to_string(),
                })
            })
            .collect()
    }

    /// Appends one element.
    pub fn add(&mut self, value: &T) -> Result<(), StateError> {
        let bytes = self.encode(value)?;
        self.elements.push(bytes);
        Ok(())
    }

    /// Replaces the elements.
    pub fn update(&mut self, values: &[T]) -> Result<(), StateError> {
        let encoded = values
            .iter()
            .map(|v| self.encode(v))
            .collect::<Result<Vec<_>, _>>()?;
        *self.elements = encoded;
        Ok(())
    }

    /// Removes every element.
    pub fn clear(&mut self) {
        self.elements.clear();
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether there is no element.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }
}

/// Given to `initialize_state`, once per instance, before `open`.
pub struct StateInitContext<'a> {
    pub(crate) runtime: &'a RuntimeContext,
    pub(crate) restored: bool,
    pub(crate) operator_state: &'a mut OperatorStateStore,
    pub(crate) raw: Option<&'a [u8]>,
    pub(crate) keyed: Option<&'a BTreeMap<usize, Vec<u8>>>,
    pub(crate) keyed_handles: &'a [weir_actors::snapshot::KeyedStateHandle],
    pub(crate) meta: Option<&'a BTreeMap<String, Vec<u8>>>,
    pub(crate) broadcast: Option<&'a BTreeMap<String, Vec<u8>>>,
}

impl StateInitContext<'_> {
    /// Whether the instance starts from a snapshot (after a failure or from a savepoint).
    pub fn is_restored(&self) -> bool {
        self.restored
    }

    /// Where this instance runs.
    pub fn runtime(&self) -> &RuntimeContext {
        self.runtime
    }

    /// The operator list states (restored ones hold their elements).
    pub fn operator_state(&mut self) -> &mut OperatorStateStore {
        self.operator_state
    }

    /// The raw bytes this subtask index wrote at the snapshot, if any.
    pub fn raw_state(&self) -> Option<&[u8]> {
        self.raw
    }

    pub(crate) fn keyed_state(&self) -> Option<&BTreeMap<usize, Vec<u8>>> {
        self.keyed
    }

    pub(crate) fn keyed_handles(&self) -> &[weir_actors::snapshot::KeyedStateHandle] {
        self.keyed_handles
    }

    pub(crate) fn meta(&self) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.meta
    }

    pub(crate) fn broadcast_state(&self) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.broadcast
    }
}

/// The keyed part of a snapshot: bytes per key group, handles over
/// key-group ranges (incremental snapshots), and what describes the keyed
/// state as a whole (its states' schemas).
pub(crate) type KeyedOutput = (
    BTreeMap<usize, Vec<u8>>,
    Vec<weir_actors::snapshot::KeyedStateHandle>,
    BTreeMap<String, Vec<u8>>,
);

type KeyedFinish = Box<dyn FnOnce() -> Result<KeyedOutput, StateError> + Send>;

/// Given to `snapshot_state` at every snapshot.
pub struct StateSnapshotContext<'a> {
    pub(crate) checkpoint_id: u64,
    pub(crate) operator_state: &'a mut OperatorStateStore,
    pub(crate) raw: Option<Vec<u8>>,
    pub(crate) keyed: Option<KeyedFinish>,
    /// A full snapshot in the canonical format is required (a savepoint).
    pub(crate) full: bool,
    pub(crate) broadcast: Option<BTreeMap<String, Vec<u8>>>,
    /// What describes the states as a whole (the broadcast states' schemas).
    pub(crate) meta: BTreeMap<String, Vec<u8>>,
}

impl StateSnapshotContext<'_> {
    /// The id of the checkpoint (or savepoint) being taken.
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// The operator list states, to be brought up to date.
    pub fn operator_state(&mut self) -> &mut OperatorStateStore {
        self.operator_state
    }

    /// Stores the operator's own bytes in the snapshot.
    pub fn write_raw_state(&mut self, bytes: Vec<u8>) {
        self.raw = Some(bytes);
    }

    /// Whether the snapshot must be full and in the canonical format (a
    /// savepoint), whatever the state backend would otherwise take.
    pub fn is_full(&self) -> bool {
        self.full
    }

    pub(crate) fn set_keyed(&mut self, finish: KeyedFinish) {
        self.keyed = Some(finish);
    }

    pub(crate) fn set_broadcast(
        &mut self,
        states: BTreeMap<String, Vec<u8>>,
        meta: BTreeMap<String, Vec<u8>>,
    ) {
        self.broadcast = Some(states);
        self.meta.extend(meta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restored(store: &OperatorStateStore) -> OperatorStateStore {
        OperatorStateStore::from_snapshot(store.to_snapshot(), &store.meta().unwrap()).unwrap()
    }

    #[test]
    fn restored_list_state_is_judged_by_its_schema_and_migrated() {
        let buffer = ListStateDescriptor::<u32>::new("buffer");
        let mut store = OperatorStateStore::default();
        store.list(&buffer).unwrap().update(&[1, 2]).unwrap();

        // A type that does not read the elements: refused, nothing lost.
        let mut again = restored(&store);
        let wrong = ListStateDescriptor::<String>::new("buffer");
        let Err(err) = again.list(&wrong) else {
            panic!("a state of another type was read")
        };
        assert!(
            err.to_string().contains("the value: u32 -> String"),
            "{err}"
        );
        assert_eq!(again.to_snapshot(), store.to_snapshot());

        // Widened as is, and migrated.
        let mut again = restored(&store);
        let wide = ListStateDescriptor::<u64>::new("buffer");
        assert_eq!(again.list(&wide).unwrap().get().unwrap(), vec![1, 2]);
        let mut again = restored(&store);
        let migrated = ListStateDescriptor::<String>::new("buffer")
            .version(2)
            .migrate_from::<u32>(1, |n| n.to_string());
        assert!(matches!(
            again.union_list(&migrated),
            Err(StateError::Mismatch { .. })
        ));
        assert_eq!(
            again.list(&migrated).unwrap().get().unwrap(),
            vec!["1", "2"]
        );
        let recorded = decode_schemas(Scope::Operator, &again.meta().unwrap()).unwrap();
        assert_eq!(recorded["buffer"].schema.version, 2);
    }
}

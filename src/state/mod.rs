//! Managed state: what an operator remembers, kept by weir so that it can be
//! checkpointed, restored and redistributed.
//!
//! - **Keyed state** belongs to one key of a [`KeyedStream`](crate::KeyedStream)
//!   and is reached through the context of a keyed function, always for the
//!   key of the record (or timer) at hand: [`ValueStateDescriptor`],
//!   [`ListStateDescriptor`], [`MapStateDescriptor`], [`ReducingStateDescriptor`]
//!   and [`AggregatingStateDescriptor`] declare it; `ctx.state(&descriptor)?`
//!   opens it. It is partitioned by key group (see [`crate::keys`]), which is
//!   how it moves when the parallelism changes.
//! - **Operator state** ([`OperatorStateStore`]) belongs to a parallel instance:
//!   list states redistributed by even split or union on a change of
//!   parallelism, and raw bytes; functions write it in `snapshot_state` and read
//!   it back in `initialize_state`.
//! - **Broadcast state** ([`BroadcastState`]) is a map that is the same on every
//!   subtask: written by the broadcast side of a connected stream, read only
//!   ([`ReadOnlyBroadcastState`]) by the other side.
//! - **Timers** ([`timers`]) are keyed state too: event-time and processing-time
//!   callbacks per (key, timestamp), de-duplicated.
//!
//! ```
//! use weir::state::ValueStateDescriptor;
//! use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError};
//!
//! /// Counts records per key and emits the running count.
//! #[derive(Clone)]
//! struct Count { count: ValueStateDescriptor<u64> }
//!
//! impl Lifecycle for Count {}
//!
//! impl KeyedProcessFunction<String, String, (String, u64)> for Count {
//!     fn process_element(&mut self, word: String, ctx: &mut KeyedContext<String>, out: &mut Collector<(String, u64)>) -> Result<(), UserError> {
//!         let mut count = ctx.state(&self.count)?;
//!         let n = count.value().unwrap_or(0) + 1;
//!         count.update(n);
//!         out.collect((word, n));
//!         Ok(())
//!     }
//! }
//!
//! let env = StreamEnv::with_parallelism(2);
//! let counts = env
//!     .from_collection(["a", "b", "a"].map(String::from))
//!     .key_by(|w: &String| w.clone())
//!     .process(Count { count: ValueStateDescriptor::new("count") })
//!     .collect();
//! env.execute_blocking("count").unwrap();
//! let mut counts = counts.take();
//! counts.sort();
//! assert_eq!(counts, vec![("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]);
//! ```

mod access;
mod broadcast;
mod descriptor;
mod error;
mod handles;
mod heap;
pub mod key_group_format;
pub mod key_migration;
mod keyed;
mod operator_state;
#[cfg(feature = "rocksdb")]
pub mod rocksdb;
pub mod schema;
pub mod timers;
pub mod ttl;

#[doc(hidden)]
pub use access::TableRef;
pub use access::{AggregatingStateRef, ListStateRef, MapStateRef, ReducingStateRef, ValueStateRef};
pub use broadcast::{BroadcastState, BroadcastStateStore, ReadOnlyBroadcastState};
pub use descriptor::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, StateDescriptor, ValueStateDescriptor, ValueStateWithDefault,
};
pub use error::StateError;
pub use heap::{HeapStateBackend, HeapTable};
pub use keyed::{
    KeyedSnapshotParts, KeyedStateSnapshot, KeyedStateStore, SnapshotOptions, StateBytes,
    StateKind, StateTime, UnknownQueryable,
};
pub use operator_state::{
    OperatorListState, OperatorStateStore, StateInitContext, StateSnapshotContext,
};
#[cfg(feature = "rocksdb")]
pub use rocksdb::{LocalDirStrategy, RocksDbBackend};

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a key must be: hashable (for key groups), comparable, cloneable,
/// shareable and serialisable (keyed state is stored by key).
pub trait Key: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<K: Hash + Eq + Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Key for K {}

/// What a state value must be: a record type that is also `Sync` (snapshots
/// share values across threads).
pub trait StateData: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> StateData for T {}

/// A state backend: where keyed state lives. Chosen per job, in code
/// ([`StreamEnv::set_state_backend`](crate::StreamEnv::set_state_backend)), else
/// by configuration (the environment variable `WEIR_STATE_BACKEND`, Flink's
/// `state.backend`), else the heap; code wins.
///
/// Two backends exist: [`HeapStateBackend`] (typed values in memory) and,
/// with the cargo feature `rocksdb`, `RocksDbBackend` (state on local disk,
/// incremental checkpoints).
pub trait StateBackend: std::fmt::Debug + Send + Sync + 'static {
    /// The backend's name, as configuration spells it (`"heap"`, `"rocksdb"`).
    fn name(&self) -> &'static str;
    #[doc(hidden)]
    /// How keyed operators keep their state with this backend.
    fn keyed_backend(&self) -> KeyedBackend {
        KeyedBackend::Heap
    }
}

impl StateBackend for std::sync::Arc<dyn StateBackend> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn keyed_backend(&self) -> KeyedBackend {
        (**self).keyed_backend()
    }
}

/// How keyed operators keep their state (what a [`StateBackend`] stands for).
#[doc(hidden)]
#[derive(Clone)]
pub enum KeyedBackend {
    /// Typed values in memory.
    Heap,
    /// RocksDB on local disk.
    #[cfg(feature = "rocksdb")]
    RocksDb(RocksDbBackend),
}

/// The backend a job resolved to, shared by the environment (which sets it
/// when the job is built) and the job's keyed operators (which read it when
/// they open); empty means the heap.
#[derive(Clone, Default)]
pub(crate) struct BackendCell(
    std::sync::Arc<std::sync::RwLock<Option<std::sync::Arc<dyn StateBackend>>>>,
);

impl BackendCell {
    pub(crate) fn set(&self, backend: std::sync::Arc<dyn StateBackend>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(backend);
    }

    pub(crate) fn keyed_backend(&self) -> KeyedBackend {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(KeyedBackend::Heap, |b| b.keyed_backend())
    }
}

/// The configuration key (an environment variable) that names the state backend.
pub const STATE_BACKEND_VARIABLE: &str = "WEIR_STATE_BACKEND";

/// The state backends this build has, as configuration names them.
#[cfg(feature = "rocksdb")]
pub const BACKEND_NAMES: &str = "heap (alias hashmap), rocksdb";
/// The state backends this build has, as configuration names them.
#[cfg(not(feature = "rocksdb"))]
pub const BACKEND_NAMES: &str = "heap (alias hashmap); rocksdb with the cargo feature `rocksdb`";

/// Whether this build has a backend called `name`; an error says what is allowed.
pub(crate) fn check_backend_name(name: &str) -> Result<(), String> {
    match name.trim() {
        "heap" | "hashmap" => Ok(()),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(()),
        #[cfg(not(feature = "rocksdb"))]
        "rocksdb" => Err(
            "the RocksDB backend is not in this build (build weir with `--features rocksdb`)"
                .into(),
        ),
        other => Err(format!(
            "{other:?} is not a state backend; allowed: {BACKEND_NAMES}"
        )),
    }
}

/// The backend called `name` (`state.backend`), or an error saying what is allowed.
pub fn backend_named(name: &str) -> Result<std::sync::Arc<dyn StateBackend>, String> {
    check_backend_name(name)?;
    #[cfg(feature = "rocksdb")]
    if name.trim() == "rocksdb" {
        return rocksdb::from_environment().map(|b| std::sync::Arc::new(b) as _);
    }
    Ok(std::sync::Arc::new(HeapStateBackend))
}

/// The backend a configuration value names, or an error naming the key, the
/// value and what is allowed. `"rocksdb"` needs the cargo feature `rocksdb`
/// (without it, the error says so); its settings then come from
/// `WEIR_ROCKSDB_LOCAL_DIRS` (directories separated by `,`),
/// `WEIR_ROCKSDB_DIR_STRATEGY` (`round-robin`, `least-used`, `random`),
/// `WEIR_ROCKSDB_BLOCK_CACHE_MB`, `WEIR_ROCKSDB_WRITE_BUFFER_MB`,
/// `WEIR_ROCKSDB_ENTRY_CACHE_MB` (0: no entry cache) and
/// `WEIR_ROCKSDB_INCREMENTAL` (`true`/`false`).
///
/// ```
/// assert_eq!(weir::state::backend_from_config("heap").unwrap().name(), "heap");
/// let err = weir::state::backend_from_config("redis").unwrap_err();
/// assert!(err.contains("WEIR_STATE_BACKEND") && err.contains("redis") && err.contains("heap"));
/// ```
pub fn backend_from_config(value: &str) -> Result<std::sync::Arc<dyn StateBackend>, String> {
    backend_named(value).map_err(|e| format!("{STATE_BACKEND_VARIABLE}={value:?}: {e}"))
}

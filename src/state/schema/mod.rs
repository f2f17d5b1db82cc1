//! State schema evolution: what a snapshot records of each keyed state's
//! types, and how a restore decides whether the job can read it.
//!
//! - [`TypeSchema`] (in `shape`): a type's structural description, traced
//!   from its `Deserialize` implementation, with a fingerprint.
//! - [`StateSchema`]: a state's version and value (and map key) schemas,
//!   written into every checkpoint and savepoint.
//! - [`Evolution`] (in `evolution`): the version a descriptor declares and
//!   its migrations from older versions.
//! - [`Compatibility`] (in `verdict`): identical, readable as is, readable
//!   after migration, or [`SchemaProblem`] (incompatible, or a downgrade).
//! - [`StateDeclarations`] (in `declare`): the states a function declares
//!   ahead of their first use, for the plan and the pre-flight check.
//! - `rewrite`: applying migrations to a state's stored bytes.
//!
//! Compatible as is, with no code: adding a field with `#[serde(default)]`
//! (or an `Option`), removing a field, renaming one with
//! `#[serde(alias)]`, adding an enum variant, widening an integer. Anything
//! else needs a migration:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use weir::state::ValueStateDescriptor;
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct CountV2 { count: u32, #[serde(default)] last_seen_ms: i64 }
//! #[derive(Clone, Serialize, Deserialize)]
//! struct CountV3 { count: u64, last_seen_ms: i64 }
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! struct CountV1 { count: u32 }
//!
//! let state = ValueStateDescriptor::<CountV3>::new("count")
//!     .version(3)
//!     // Version 2 -> 3 (the current type).
//!     .migrate_from::<CountV2>(2, |old| CountV3 {
//!         count: u64::from(old.count),
//!         last_seen_ms: old.last_seen_ms,
//!     })
//!     // Version 1 -> 2, then on through 2 -> 3: a chain.
//!     .migrate_via::<CountV1, CountV2>(1, |old| CountV2 { count: old.count, last_seen_ms: 0 });
//! # let _ = state;
//! ```

mod declare;
mod evolution;
mod probe;
mod recorded;
pub(crate) mod rewrite;
mod shape;
mod verdict;

pub use declare::{DeclaredMigration, DeclaredState, StateDeclarations};
pub use evolution::Evolution;
pub(crate) use evolution::{migrate_value, MigrationStep};
pub(crate) use recorded::encode_schemas;
pub use recorded::{
    check_states, decode_schemas, recorded_states, RecordedState, Scope, StateCheck, StateVerdict,
};
pub use shape::{Container, Field, Shape, TypeSchema, Variant, VariantFields};
#[doc(hidden)]
pub use verdict::Declared;
pub(crate) use verdict::{declared_checked, judge};
pub use verdict::{problems, verdict, Compatibility, SchemaProblem, StateSchema};

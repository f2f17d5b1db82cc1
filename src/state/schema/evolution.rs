//! A state's version and its migrations from older versions, as a
//! descriptor declares them (`.version(3).migrate_from::<V2>(2, |old| ..)`),
//! kept type-erased: each step decodes a value of its old type, applies the
//! user's function and encodes the result, so that steps chain through
//! bytes (v1 -> v2 -> v3) whatever their types.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::shape::TypeSchema;
use crate::runtime::codec;

/// A function that migrates a state value from an older type `Old` to the
/// next version's type: any `Fn(Old) -> New` with `New: Serialize`.
pub trait Migrate<Old>: Send + Sync + 'static {
    /// The migrated value, encoded.
    #[doc(hidden)]
    fn migrate_encoded(&self, old: Old) -> Result<Vec<u8>, String>;
}

impl<Old, New, F> Migrate<Old> for F
where
    F: Fn(Old) -> New + Send + Sync + 'static,
    New: Serialize,
{
    fn migrate_encoded(&self, old: Old) -> Result<Vec<u8>, String> {
        codec::encode(&self(old)).map_err(|e| e.to_string())
    }
}

type Step = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// One migration: from version `from` to the next version the descriptor
/// knows.
#[derive(Clone)]
pub(crate) struct MigrationStep {
    pub(crate) from: u32,
    /// The schema of the old type.
    pub(crate) old_schema: fn() -> TypeSchema,
    pub(crate) apply: Step,
}

/// A state's version (1 unless set) and its migrations, oldest first.
#[derive(Clone)]
pub struct Evolution {
    version: u32,
    steps: Vec<MigrationStep>,
}

impl Default for Evolution {
    fn default() -> Self {
        Evolution {
            version: 1,
            steps: Vec::new(),
        }
    }
}

impl fmt::Debug for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MigrationStep {{ from: {} }}", self.from)
    }
}

impl fmt::Debug for Evolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evolution")
            .field("version", &self.version)
            .field(
                "migrations_from",
                &self.steps.iter().map(|s| s.from).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether `bytes` decode as a `T` (the decoder's message if not).
pub(crate) fn decodes<T: DeserializeOwned>(bytes: &[u8]) -> Result<(), String> {
    codec::decode::<T>(bytes)
        .map(drop)
        .map_err(|e| e.to_string())
}

impl Evolution {
    /// The current version.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds the migration from version `from`, whose values are `Old`s.
    pub(crate) fn with_migration<Old: DeserializeOwned + 'static>(
        mut self,
        from: u32,
        migrate: impl Migrate<Old>,
    ) -> Self {
        let apply: Step = Arc::new(move |bytes: &[u8]| {
            let old: Old = codec::decode(bytes).map_err(|e| {
                format!(
                    "not a {} (version {from}): {e}",
                    std::any::type_name::<Old>()
                )
            })?;
            migrate.migrate_encoded(old)
        });
        self.steps.retain(|s| s.from != from);
        self.steps.push(MigrationStep {
            from,
            old_schema: TypeSchema::of::<Old>,
            apply,
        });
        self.steps.sort_by_key(|s| s.from);
        self
    }

    /// Every migration, oldest first.
    pub(crate) fn steps(&self) -> &[MigrationStep] {
        &self.steps
    }

    /// The migrations that bring a value of version `recorded` to the
    /// current version: the steps from the first one at or after it.
    pub(crate) fn chain_from(&self, recorded: u32) -> &[MigrationStep] {
        let first = self.steps.partition_point(|s| s.from < recorded);
        let last = self.steps.partition_point(|s| s.from < self.version);
        &self.steps[first..last.max(first)]
    }

    /// Checks that the migrations are declared from versions older than
    /// the current one (a descriptor mistake, found on first use).
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        if self.version == 0 {
            return Err(format!("state `{name}`: versions start at 1, not 0"));
        }
        match self.steps.iter().find(|s| s.from >= self.version) {
            Some(s) => Err(format!(
                "state `{name}` is at version {} but declares a migration from version {}: \
                 a migration must come from an older version",
                self.version, s.from
            )),
            None => Ok(()),
        }
    }
}

/// Applies `steps` to one encoded value, in order.
pub(crate) fn migrate_value(steps: &[MigrationStep], bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut current = bytes.to_vec();
    for step in steps {
        current = (step.apply)(&current)?;
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct V1 {
        count: u32,
    }
    #[derive(Serialize, Deserialize)]
    struct V2 {
        count: u32,
        last: i64,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V3 {
        count: u64,
        last: i64,
    }

    #[test]
    fn steps_chain_from_the_recorded_version() {
        let evolution = Evolution::default()
            .with_version(3)
            .with_migration::<V2>(2, |old: V2| V3 {
                count: u64::from(old.count) * 10,
                last: old.last,
            })
            .with_migration::<V1>(1, |old: V1| V2 {
                count: old.count + 1,
                last: -1,
            });
        assert_eq!(evolution.chain_from(1).len(), 2);
        assert_eq!(evolution.chain_from(2).len(), 1);
        assert!(evolution.chain_from(3).is_empty());
        let v1 = codec::encode(&V1 { count: 4 }).unwrap();
        let v3: V3 = codec::decode(&migrate_value(evolution.chain_from(1), &v1).unwrap()).unwrap();
        assert_eq!(
            v3,
            V3 {
                count: 50,
                last: -1
            }
        );
        let err = migrate_value(evolution.chain_from(2), &v1).unwrap_err();
        assert!(err.contains("version 2"), "{err}");
        assert!(evolution.check("s").is_ok());
        let wrong = evolution.with_version(2);
        assert!(wrong.check("s").unwrap_err().contains("from version 2"));
    }
}

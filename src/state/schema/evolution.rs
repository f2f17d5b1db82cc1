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

type Step = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// One migration: from version `from`, to the current version or (a step
/// of a chain) to the version of the next migration.
#[derive(Clone)]
pub(crate) struct MigrationStep {
    pub(crate) from: u32,
    /// The schema of the old type.
    pub(crate) old_schema: fn() -> TypeSchema,
    /// The schema of what it produces, if not the current type (a step
    /// of a chain: `migrate_via`).
    pub(crate) new_schema: Option<fn() -> TypeSchema>,
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

    /// Adds the migration from version `from`, whose values are `Old`s, to
    /// `New`s: the current type (`to_current`), or the next migration's old
    /// type.
    pub(crate) fn with_migration<Old, New>(
        mut self,
        from: u32,
        migrate: impl Fn(Old) -> New + Send + Sync + 'static,
        to_current: bool,
    ) -> Self
    where
        Old: DeserializeOwned + 'static,
        New: Serialize + DeserializeOwned + 'static,
    {
        let apply: Step = Arc::new(move |bytes: &[u8]| {
            let old: Old = codec::decode(bytes).map_err(|e| {
                format!(
                    "not a {} (version {from}): {e}",
                    std::any::type_name::<Old>()
                )
            })?;
            codec::encode(&migrate(old)).map_err(|e| e.to_string())
        });
        self.steps.retain(|s| s.from != from);
        self.steps.push(MigrationStep {
            from,
            old_schema: TypeSchema::of::<Old>,
            new_schema: (!to_current).then_some(TypeSchema::of::<New> as fn() -> TypeSchema),
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
        let below = self.steps.partition_point(|s| s.from < self.version);
        // Up to and with the first step that produces the current type.
        let last = self.steps[first..below.max(first)]
            .iter()
            .position(|s| s.new_schema.is_none())
            .map_or(below.max(first), |i| first + i + 1);
        &self.steps[first..last]
    }

    /// Checks the descriptor's declarations (a mistake found on first use):
    /// migrations come from versions older than the current one, and what
    /// a step of a chain produces reads as the next step's old type (the
    /// current type, `current`, after the last).
    pub(crate) fn check(&self, name: &str, current: &TypeSchema) -> Result<(), String> {
        if self.version == 0 {
            return Err(format!("state `{name}`: versions start at 1, not 0"));
        }
        if let Some(s) = self.steps.iter().find(|s| s.from >= self.version) {
            return Err(format!(
                "state `{name}` is at version {} but declares a migration from version {}: \
                 a migration must come from an older version",
                self.version, s.from
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let Some(new_schema) = step.new_schema else {
                continue;
            };
            let produced = new_schema();
            let (next, what) = match self.steps.get(i + 1) {
                Some(next) => (
                    (next.old_schema)(),
                    format!("the migration from version {}", next.from),
                ),
                None => (
                    current.clone(),
                    format!("the current version {}", self.version),
                ),
            };
            let problems = super::verdict::problems(&produced, &next);
            if !problems.is_empty() {
                return Err(format!(
                    "state `{name}`: the migration from version {} produces {produced}, which \
                     {what} does not read as {next}: {}",
                    step.from,
                    problems.join("; ")
                ));
            }
        }
        Ok(())
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

    #[derive(Clone, Serialize, Deserialize)]
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
            .with_migration(
                2,
                |old: V2| V3 {
                    count: u64::from(old.count) * 10,
                    last: old.last,
                },
                true,
            )
            .with_migration(
                1,
                |old: V1| V2 {
                    count: old.count + 1,
                    last: -1,
                },
                false,
            );
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
        let current = TypeSchema::of::<V3>();
        assert!(evolution.check("s", &current).is_ok());
        // A step that produces what the next one does not read.
        let broken = evolution
            .clone()
            .with_migration(1, |old: V1| old.count.to_string(), false);
        let err = broken.check("s", &current).unwrap_err();
        assert!(
            err.contains("migration from version 1 produces String"),
            "{err}"
        );
        // A direct migration ends the chain: v1 goes straight to v3.
        let direct = evolution.clone().with_migration(
            1,
            |old: V1| V3 {
                count: 7 + u64::from(old.count),
                last: 0,
            },
            true,
        );
        assert_eq!(direct.chain_from(1).len(), 1);
        let v3: V3 = codec::decode(&migrate_value(direct.chain_from(1), &v1).unwrap()).unwrap();
        assert_eq!(v3.count, 11);
        let wrong = evolution.with_version(2);
        assert!(wrong
            .check("s", &current)
            .unwrap_err()
            .contains("from version 2"));
    }

    /// Random chains: versions up to 8, migrations from a random subset of
    /// the older ones, each to the current type or a step of a chain. A
    /// value of every recorded version goes through exactly the steps a
    /// plain walk over the sorted migrations gives: from the first at or
    /// after its version, on until one that produces the current type.
    #[test]
    fn random_version_chains_apply_the_steps_a_plain_walk_gives() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Trail(Vec<u32>);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let version = 1 + next(8) as u32;
            // (from, to the current type?)
            let mut steps: Vec<(u32, bool)> = Vec::new();
            for from in 1..version {
                if next(3) > 0 {
                    steps.push((from, next(2) == 0));
                }
            }
            let mut evolution = Evolution::default().with_version(version);
            for &(from, to_current) in &steps {
                evolution = evolution.with_migration(
                    from,
                    move |mut trail: Trail| {
                        trail.0.push(from);
                        trail
                    },
                    to_current,
                );
            }
            steps.sort();
            for recorded in 1..=version {
                let mut expected = Vec::new();
                for &(from, to_current) in steps.iter().filter(|(from, _)| *from >= recorded) {
                    expected.push(from);
                    if to_current {
                        break;
                    }
                }
                let bytes = codec::encode(&Trail(Vec::new())).unwrap();
                let migrated = migrate_value(evolution.chain_from(recorded), &bytes).unwrap();
                let trail: Trail = codec::decode(&migrated).unwrap();
                assert_eq!(
                    trail.0, expected,
                    "version {version}, steps {steps:?}, recorded {recorded}"
                );
            }
            assert!(evolution.check("s", &TypeSchema::of::<Trail>()).is_ok());
        }
    }
}

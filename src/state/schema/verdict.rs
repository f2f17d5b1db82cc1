//! The verdict on one state of a snapshot: how the schema it was written
//! with relates to the schema the job declares now — the same, readable as
//! is, readable after the descriptor's migrations, or not at all (why, and
//! what to do) — and the differences that name the fields involved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;

use super::evolution::{decodes, Evolution, MigrationStep};
use super::probe;
use super::shape::{Container, Field, Shape, TypeSchema, VariantFields};

/// What a snapshot records of one state's types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateSchema {
    /// The state's version when the snapshot was written (1 unless the
    /// descriptor set one).
    pub version: u32,
    /// The value type (a list's element, a map's value, an aggregate's
    /// accumulator).
    pub value: TypeSchema,
    /// A map state's user-key type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_key: Option<TypeSchema>,
}

/// What the job declares of one state now: its schema, how to tell whether
/// bytes decode as its types, and its migrations.
#[derive(Clone, Debug)]
#[doc(hidden)]
pub struct Declared {
    pub(crate) schema: StateSchema,
    pub(crate) value_decodes: fn(&[u8]) -> Result<(), String>,
    pub(crate) user_key_decodes: Option<fn(&[u8]) -> Result<(), String>>,
    pub(crate) evolution: Evolution,
}

impl Declared {
    /// A state whose values are `T`s, at `evolution`'s version.
    pub(crate) fn of<T: DeserializeOwned>(evolution: Evolution) -> Self {
        Declared {
            schema: StateSchema {
                version: evolution.version(),
                value: TypeSchema::of::<T>(),
                user_key: None,
            },
            value_decodes: decodes::<T>,
            user_key_decodes: None,
            evolution,
        }
    }

    /// The same, a map state whose user keys are `UK`s.
    pub(crate) fn with_user_key<UK: DeserializeOwned>(mut self) -> Self {
        self.schema.user_key = Some(TypeSchema::of::<UK>());
        self.user_key_decodes = Some(decodes::<UK>);
        self
    }
}

/// How a state of a snapshot restores onto the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "schema", rename_all = "kebab-case")]
pub enum Compatibility {
    /// The same shape (and version).
    Identical,
    /// Another shape that reads as the current type unchanged (a field
    /// with a default added, a field removed, a variant added, an integer
    /// widened).
    AsIs,
    /// Read through the descriptor's migrations from this version.
    AfterMigration {
        /// The snapshot's version.
        from: u32,
        /// The job's.
        to: u32,
    },
    /// A type without a traceable shape: it is checked as it is decoded.
    Unchecked,
}

/// Why a state cannot be restored onto the job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaProblem {
    /// The snapshot's version is newer than the job's.
    Downgrade {
        /// The snapshot's.
        snapshot: u32,
        /// The job's.
        job: u32,
    },
    /// The snapshot's data does not read as the job's type, and no
    /// migration covers it.
    Incompatible {
        /// What differs and what to do.
        detail: String,
    },
}

impl std::fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaProblem::Downgrade { snapshot, job } => write!(
                f,
                "the snapshot was written by version {snapshot} of the state, newer than \
                 this job's version {job}: restore it with a binary that knows version \
                 {snapshot}, or from an older snapshot"
            ),
            SchemaProblem::Incompatible { detail } => f.write_str(detail),
        }
    }
}

/// The verdict on a state recorded with `recorded`, and the migrations to
/// apply to each of its values.
pub(crate) fn judge(
    recorded: &StateSchema,
    declared: &Declared,
) -> Result<(Compatibility, Vec<MigrationStep>), SchemaProblem> {
    let job_version = declared.evolution.version();
    if recorded.version > job_version {
        return Err(SchemaProblem::Downgrade {
            snapshot: recorded.version,
            job: job_version,
        });
    }
    if let (Some(old), Some(new), Some(decodes)) = (
        &recorded.user_key,
        &declared.schema.user_key,
        declared.user_key_decodes,
    ) {
        check(old, new, decodes).map_err(|why| SchemaProblem::Incompatible {
            detail: format!(
                "its map keys were {old} and are {new} now, which does not read them ({why}); \
                 map keys cannot be migrated: keep the key type"
            ),
        })?;
    }
    let chain = declared.evolution.chain_from(recorded.version);
    let Some(first) = chain.first() else {
        let new = &declared.schema.value;
        let compatibility = check(&recorded.value, new, declared.value_decodes).map_err(|why| {
            SchemaProblem::Incompatible {
                detail: format!(
                    "it holds {} (version {}) and the job reads {new} (version {job_version}), \
                     which does not read it: {why}. Either make the change readable as is \
                     (give an added field `#[serde(default)]`, rename with \
                     `#[serde(alias = \"..\")]`), or raise the descriptor's version and \
                     migrate: `.version({}).migrate_from::<Old>({}, |old| ..)`",
                    recorded.value,
                    recorded.version,
                    job_version.max(recorded.version) + u32::from(job_version == recorded.version),
                    recorded.version,
                ),
            }
        })?;
        return Ok((compatibility, Vec::new()));
    };
    let old = (first.old_schema)();
    check(&recorded.value, &old, first.old_decodes).map_err(|why| SchemaProblem::Incompatible {
        detail: format!(
            "it holds {} (version {}), which the migration from version {} does not read \
             as its old type {old}: {why}",
            recorded.value, recorded.version, first.from
        ),
    })?;
    Ok((
        Compatibility::AfterMigration {
            from: recorded.version,
            to: job_version,
        },
        chain.to_vec(),
    ))
}

/// Whether data of shape `old` reads as `new` (whose decoder is `decodes`).
fn check(
    old: &TypeSchema,
    new: &TypeSchema,
    decodes: fn(&[u8]) -> Result<(), String>,
) -> Result<Compatibility, String> {
    if !old.is_traced() || !new.is_traced() {
        return Ok(Compatibility::Unchecked);
    }
    if old.fingerprint() == new.fingerprint() {
        return Ok(Compatibility::Identical);
    }
    for sample in probe::samples(old) {
        if let Err(e) = decodes(&sample) {
            let differences = differences(old, new);
            return Err(if differences.is_empty() {
                e
            } else {
                format!("{} ({e})", differences.join("; "))
            });
        }
    }
    Ok(Compatibility::AsIs)
}

/// What differs between `old` and `new`, by path (`count: u32 -> u64`,
/// `last_seen_ms: added`, `Kind::B: variant removed`).
pub fn differences(old: &TypeSchema, new: &TypeSchema) -> Vec<String> {
    let mut out = Vec::new();
    Differ {
        old: &old.containers,
        new: &new.containers,
        seen: Vec::new(),
    }
    .shape("", &old.root, &new.root, old, new, &mut out);
    out
}

struct Differ<'a> {
    old: &'a BTreeMap<String, Container>,
    new: &'a BTreeMap<String, Container>,
    seen: Vec<(String, String)>,
}

fn at(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

impl Differ<'_> {
    fn shape(
        &mut self,
        path: &str,
        old: &Shape,
        new: &Shape,
        old_schema: &TypeSchema,
        new_schema: &TypeSchema,
        out: &mut Vec<String>,
    ) {
        let name = if path.is_empty() { "the value" } else { path };
        match (old, new) {
            (Shape::Named(a), Shape::Named(b)) => {
                if self.seen.contains(&(a.clone(), b.clone())) {
                    return;
                }
                self.seen.push((a.clone(), b.clone()));
                match (self.old.get(a), self.new.get(b)) {
                    (Some(Container::Struct(x)), Some(Container::Struct(y))) => {
                        self.fields(path, x, y, old_schema, new_schema, out)
                    }
                    (Some(Container::Enum(x)), Some(Container::Enum(y))) => {
                        for variant in x {
                            let here = at(path, &format!("{b}::{}", variant.name));
                            match y.iter().find(|v| v.name == variant.name) {
                                None => out.push(format!("{here}: variant removed")),
                                Some(now) => match (&variant.fields, &now.fields) {
                                    (VariantFields::Newtype(p), VariantFields::Newtype(q)) => {
                                        self.shape(&here, p, q, old_schema, new_schema, out)
                                    }
                                    (VariantFields::Struct(p), VariantFields::Struct(q)) => {
                                        self.fields(&here, p, q, old_schema, new_schema, out)
                                    }
                                    (p, q) if p == q => {}
                                    _ => out.push(format!("{here}: its fields changed")),
                                },
                            }
                        }
                    }
                    (Some(Container::Newtype(p)), Some(Container::Newtype(q))) => {
                        self.shape(path, p, q, old_schema, new_schema, out)
                    }
                    (x, y) if x == y => {}
                    _ => out.push(format!(
                        "{name}: {} -> {}",
                        old_schema.describe(old),
                        new_schema.describe(new)
                    )),
                }
            }
            (Shape::Option(p), Shape::Option(q)) | (Shape::Seq(p), Shape::Seq(q)) => {
                self.shape(path, p, q, old_schema, new_schema, out)
            }
            (Shape::Map(k1, v1), Shape::Map(k2, v2)) => {
                self.shape(&at(path, "<key>"), k1, k2, old_schema, new_schema, out);
                self.shape(&at(path, "<value>"), v1, v2, old_schema, new_schema, out);
            }
            (Shape::Tuple(p), Shape::Tuple(q)) if p.len() == q.len() => {
                for (i, (a, b)) in p.iter().zip(q).enumerate() {
                    self.shape(&at(path, &i.to_string()), a, b, old_schema, new_schema, out);
                }
            }
            (a, b) if a == b => {}
            _ => out.push(format!(
                "{name}: {} -> {}",
                old_schema.describe(old),
                new_schema.describe(new)
            )),
        }
    }

    fn fields(
        &mut self,
        path: &str,
        old: &[Field],
        new: &[Field],
        old_schema: &TypeSchema,
        new_schema: &TypeSchema,
        out: &mut Vec<String>,
    ) {
        for field in new {
            let here = at(path, &field.name);
            match old.iter().find(|f| f.name == field.name) {
                Some(was) => {
                    self.shape(&here, &was.shape, &field.shape, old_schema, new_schema, out)
                }
                None => out.push(format!(
                    "{here}: added ({}), without a value in the snapshot",
                    new_schema.describe(&field.shape)
                )),
            }
        }
        for field in old {
            if !new.iter().any(|f| f.name == field.name) {
                out.push(format!("{}: removed", at(path, &field.name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    mod v1 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Count {
            pub count: u32,
        }
    }
    mod v2 {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Count {
            pub count: u32,
            #[serde(default)]
            pub last_seen_ms: i64,
        }
    }
    mod required {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Count {
            pub count: u32,
            pub last_seen_ms: i64,
        }
    }
    mod renamed {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Count {
            #[serde(alias = "count")]
            pub total: u32,
        }
    }
    mod widened {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Count {
            pub count: u64,
        }
    }

    fn schema<T: serde::de::DeserializeOwned>(version: u32) -> StateSchema {
        StateSchema {
            version,
            value: TypeSchema::of::<T>(),
            user_key: None,
        }
    }

    fn declared<T: serde::de::DeserializeOwned>(evolution: Evolution) -> Declared {
        Declared {
            schema: schema::<T>(evolution.version()),
            value_decodes: decodes::<T>,
            user_key_decodes: None,
            evolution,
        }
    }

    #[test]
    fn compatible_changes_read_as_is() {
        let old = schema::<v1::Count>(1);
        let verdict = |d: Declared| judge(&old, &d).map(|(c, steps)| (c, steps.len()));
        assert_eq!(
            verdict(declared::<v1::Count>(Evolution::default())),
            Ok((Compatibility::Identical, 0))
        );
        for d in [
            declared::<v2::Count>(Evolution::default()),
            declared::<widened::Count>(Evolution::default()),
        ] {
            assert!(d.schema.value.is_traced(), "{:?}", d.schema.value);
            assert_eq!(verdict(d), Ok((Compatibility::AsIs, 0)));
        }
        // serde lists an alias among the fields; the tracer records the
        // field under one of its names, and the data reads either way.
        let renamed = declared::<renamed::Count>(Evolution::default());
        assert!(renamed.schema.value.is_traced());
        assert!(verdict(renamed).is_ok());
        // Removing a field.
        let old = schema::<v2::Count>(1);
        assert_eq!(
            judge(&old, &declared::<v1::Count>(Evolution::default())).map(|r| r.0),
            Ok(Compatibility::AsIs)
        );
    }

    #[test]
    fn incompatible_changes_name_the_field_and_what_to_do() {
        let err = judge(
            &schema::<v1::Count>(1),
            &declared::<required::Count>(Evolution::default()),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("last_seen_ms: added (i64)"), "{text}");
        assert!(text.contains("migrate_from::<Old>(1"), "{text}");
        let err = judge(
            &schema::<widened::Count>(1),
            &declared::<v1::Count>(Evolution::default()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("count: u64 -> u32"), "{err}");
    }

    #[test]
    fn a_migration_covers_an_incompatible_change_and_a_newer_snapshot_is_refused() {
        let evolution = Evolution::default()
            .with_version(2)
            .with_migration::<widened::Count>(1, |old: widened::Count| v1::Count {
                count: old.count.min(u64::from(u32::MAX)) as u32,
            });
        let d = declared::<v1::Count>(evolution);
        let (verdict, steps) = judge(&schema::<widened::Count>(1), &d).unwrap();
        assert_eq!(verdict, Compatibility::AfterMigration { from: 1, to: 2 });
        assert_eq!(steps.len(), 1);
        assert_eq!(
            judge(&schema::<v1::Count>(3), &d).unwrap_err(),
            SchemaProblem::Downgrade {
                snapshot: 3,
                job: 2
            }
        );
        // The snapshot's data is not what the migration expects.
        let err = judge(&schema::<String>(1), &d).unwrap_err();
        assert!(
            err.to_string().contains("migration from version 1"),
            "{err}"
        );
    }
}

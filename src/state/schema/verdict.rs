//! The verdict on one state of a snapshot: how the schema it was written
//! with relates to the schema the job declares now — the same, readable as
//! is, readable after the descriptor's migrations, or not at all (why, and
//! what to do) — and the differences that name the fields involved.

use serde::{Deserialize, Serialize};

use serde::de::DeserializeOwned;

use super::evolution::{Evolution, MigrationStep};
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

/// What the job declares of one state now: its schema and its migrations.
#[derive(Clone, Debug)]
#[doc(hidden)]
pub struct Declared {
    pub(crate) schema: StateSchema,
    pub(crate) evolution: Evolution,
}

/// What `descriptor` declares, its migrations checked (a descriptor mistake
/// is an error naming the state).
pub(crate) fn declared_checked<D: crate::state::StateDescriptor>(
    descriptor: &D,
) -> Result<Declared, crate::state::StateError> {
    let name = descriptor.name();
    let declared = descriptor.declared();
    declared
        .evolution
        .check(name, &declared.schema.value)
        .map_err(|message| crate::state::StateError::schema(name, message))?;
    Ok(declared)
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
            evolution,
        }
    }

    /// The same, a map state whose user keys are `UK`s.
    pub(crate) fn with_user_key<UK: DeserializeOwned>(mut self) -> Self {
        self.schema.user_key = Some(TypeSchema::of::<UK>());
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
    let chain = declared.evolution.chain_from(recorded.version);
    let first = chain.first().map(|step| (step.from, (step.old_schema)()));
    let compatibility = verdict(
        recorded,
        &declared.schema,
        first.as_ref().map(|(from, old)| (*from, old)),
    )?;
    Ok((compatibility, chain.to_vec()))
}

/// The verdict on a state recorded with `recorded` that the job declares
/// as `current`: `first_migration` is the first migration a value of the
/// recorded version goes through (the version it migrates from and its old
/// type), if the job has one.
pub fn verdict(
    recorded: &StateSchema,
    current: &StateSchema,
    first_migration: Option<(u32, &TypeSchema)>,
) -> Result<Compatibility, SchemaProblem> {
    let job_version = current.version;
    if recorded.version > job_version {
        return Err(SchemaProblem::Downgrade {
            snapshot: recorded.version,
            job: job_version,
        });
    }
    if let (Some(old), Some(new)) = (&recorded.user_key, &current.user_key) {
        check(old, new).map_err(|why| SchemaProblem::Incompatible {
            detail: format!(
                "its map keys were {old} and are {new} now, which does not read them ({why}); \
                 map keys cannot be migrated: keep the key type"
            ),
        })?;
    }
    let Some((from, old)) = first_migration else {
        let new = &current.value;
        return check(&recorded.value, new).map_err(|why| SchemaProblem::Incompatible {
            detail: format!(
                "it holds {} (version {}) and the job reads {new} (version {job_version}), \
                 which does not read it: {why}. Either make the change readable as is \
                 (give an added field `#[serde(default)]`, rename with \
                 `#[serde(alias = \"..\")]`), or raise the descriptor's version and \
                 migrate: `.version({}).migrate_from::<Old>({}, |old| ..)`",
                recorded.value,
                recorded.version,
                // The job's version if it was raised, else the next one.
                if job_version > recorded.version {
                    job_version
                } else {
                    job_version + 1
                },
                recorded.version,
            ),
        });
    };
    check(&recorded.value, old).map_err(|why| SchemaProblem::Incompatible {
        detail: format!(
            "it holds {} (version {}), which the migration from version {from} does not read \
             as its old type {old}: {why}",
            recorded.value, recorded.version
        ),
    })?;
    Ok(Compatibility::AfterMigration {
        from: recorded.version,
        to: job_version,
    })
}

/// Whether data of shape `old` reads as `new`: the same shape, or a shape
/// `new` reads unchanged (else the problems, by path).
fn check(old: &TypeSchema, new: &TypeSchema) -> Result<Compatibility, String> {
    if !old.is_traced() || !new.is_traced() {
        return Ok(Compatibility::Unchecked);
    }
    if old.fingerprint() == new.fingerprint() {
        return Ok(Compatibility::Identical);
    }
    match problems(old, new) {
        problems if problems.is_empty() => Ok(Compatibility::AsIs),
        problems => Err(problems.join("; ")),
    }
}

/// Why data of shape `old` does not read as `new`, by path (`count: u64
/// -> u32`, `last_seen_ms: added (i64), without a value in the snapshot`,
/// `Kind::B: variant removed`); empty if it reads. What reads as is: a
/// field added with a default, a field removed, a field renamed with an
/// alias, a variant added, an integer widened, a float widened, an integer
/// read as a float, a character read as a string, a value read as an
/// `Option` of it, a newtype struct read as what it wraps and back.
pub fn problems(old: &TypeSchema, new: &TypeSchema) -> Vec<String> {
    let mut out = Vec::new();
    Checker {
        old,
        new,
        seen: Vec::new(),
    }
    .shape("", &old.root, &new.root, &mut out);
    out
}

struct Checker<'a> {
    old: &'a TypeSchema,
    new: &'a TypeSchema,
    seen: Vec<(String, String)>,
}

fn at(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

/// The bits of an integer shape and whether it is signed.
fn integer(shape: &Shape) -> Option<(u32, bool)> {
    Some(match shape {
        Shape::U8 => (8, false),
        Shape::U16 => (16, false),
        Shape::U32 => (32, false),
        Shape::U64 => (64, false),
        Shape::U128 => (128, false),
        Shape::I8 => (8, true),
        Shape::I16 => (16, true),
        Shape::I32 => (32, true),
        Shape::I64 => (64, true),
        Shape::I128 => (128, true),
        _ => return None,
    })
}

/// What a newtype struct wraps (it is written as that), else the shape.
fn unwrap_newtype<'s>(shape: &'s Shape, schema: &'s TypeSchema) -> &'s Shape {
    let mut shape = shape;
    for _ in 0..16 {
        match shape {
            Shape::Named(name) => match schema.containers.get(name) {
                Some(Container::Newtype(inner)) => shape = inner,
                _ => break,
            },
            _ => break,
        }
    }
    shape
}

impl Checker<'_> {
    fn problem(&self, path: &str, old: &Shape, new: &Shape, out: &mut Vec<String>) {
        out.push(format!(
            "{}: {} -> {}",
            if path.is_empty() { "the value" } else { path },
            self.old.describe(old),
            self.new.describe(new)
        ));
    }

    fn shape(&mut self, path: &str, old: &Shape, new: &Shape, out: &mut Vec<String>) {
        let (old, new) = (unwrap_newtype(old, self.old), unwrap_newtype(new, self.new));
        match (old, new) {
            (Shape::Opaque, _) | (_, Shape::Opaque) => {}
            (Shape::Named(a), Shape::Named(b)) => self.containers(path, old, new, a, b, out),
            (Shape::Option(p), Shape::Option(q)) | (Shape::Seq(p), Shape::Seq(q)) => {
                self.shape(path, p, q, out)
            }
            (_, Shape::Option(q)) => self.shape(path, old, q, out),
            (Shape::Map(k1, v1), Shape::Map(k2, v2)) => {
                self.shape(&at(path, "<key>"), k1, k2, out);
                self.shape(&at(path, "<value>"), v1, v2, out);
            }
            (Shape::Tuple(p), Shape::Tuple(q)) if p.len() == q.len() => {
                for (i, (a, b)) in p.iter().zip(q).enumerate() {
                    self.shape(&at(path, &i.to_string()), a, b, out);
                }
            }
            (Shape::Array(p, n), Shape::Array(q, m)) if n == m => self.shape(path, p, q, out),
            (Shape::F32, Shape::F64) | (Shape::Char, Shape::Str) => {}
            (a, Shape::F32 | Shape::F64) if integer(a).is_some() => {}
            (a, b) if integer(a).is_some() && integer(b).is_some() => {
                let ((from, from_signed), (to, to_signed)) = (
                    integer(a).unwrap_or_default(),
                    integer(b).unwrap_or_default(),
                );
                let widened = match (from_signed, to_signed) {
                    (false, false) | (true, true) => to >= from,
                    (false, true) => to > from,
                    (true, false) => false,
                };
                if !widened {
                    self.problem(path, old, new, out);
                }
            }
            (a, b) if a == b => {}
            _ => self.problem(path, old, new, out),
        }
    }

    fn containers(
        &mut self,
        path: &str,
        old: &Shape,
        new: &Shape,
        a: &str,
        b: &str,
        out: &mut Vec<String>,
    ) {
        if self.seen.iter().any(|(x, y)| x == a && y == b) {
            return;
        }
        self.seen.push((a.to_string(), b.to_string()));
        let (old_schema, new_schema) = (self.old, self.new);
        match (old_schema.containers.get(a), new_schema.containers.get(b)) {
            (Some(Container::Struct(x)), Some(Container::Struct(y))) => {
                self.fields(path, x, y, true, out)
            }
            (Some(Container::Enum(x)), Some(Container::Enum(y))) => {
                for variant in x {
                    let here = at(path, &format!("{b}::{}", variant.name));
                    let Some(now) = y.iter().find(|v| v.name == variant.name) else {
                        out.push(format!("{here}: variant removed"));
                        continue;
                    };
                    match (&variant.fields, &now.fields) {
                        (VariantFields::Unit, VariantFields::Unit) => {}
                        (VariantFields::Newtype(p), VariantFields::Newtype(q)) => {
                            self.shape(&here, p, q, out)
                        }
                        (VariantFields::Tuple(p), VariantFields::Tuple(q))
                            if p.len() == q.len() =>
                        {
                            for (i, (p, q)) in p.iter().zip(q).enumerate() {
                                self.shape(&at(&here, &i.to_string()), p, q, out);
                            }
                        }
                        (VariantFields::Struct(p), VariantFields::Struct(q)) => {
                            self.fields(&here, p, q, false, out)
                        }
                        _ => out.push(format!("{here}: its fields changed")),
                    }
                }
            }
            (Some(Container::TupleStruct(p)), Some(Container::TupleStruct(q)))
                if p.len() == q.len() =>
            {
                for (i, (p, q)) in p.iter().zip(q).enumerate() {
                    self.shape(&at(path, &i.to_string()), p, q, out);
                }
            }
            (Some(Container::UnitStruct), Some(Container::UnitStruct)) => {}
            _ => self.problem(path, old, new, out),
        }
    }

    /// Old fields against new ones: each new field needs a value under one
    /// of its names, or a default (known for structs, not for variants).
    fn fields(
        &mut self,
        path: &str,
        old: &[Field],
        new: &[Field],
        defaults_known: bool,
        out: &mut Vec<String>,
    ) {
        for field in new {
            let here = at(path, &field.name);
            let was = old
                .iter()
                .find(|f| field.answers_to(&f.name) || f.answers_to(&field.name));
            match was {
                Some(was) => self.shape(&here, &was.shape, &field.shape, out),
                None if field.default
                    || (!defaults_known && matches!(field.shape, Shape::Option(_))) => {}
                None => out.push(format!(
                    "{here}: added ({}), without a value in the snapshot",
                    self.new.describe(&field.shape)
                )),
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
            declared::<Option<v1::Count>>(Evolution::default()),
        ] {
            assert!(d.schema.value.is_traced(), "{:?}", d.schema.value);
            assert_eq!(verdict(d), Ok((Compatibility::AsIs, 0)));
        }
        let renamed = declared::<renamed::Count>(Evolution::default());
        assert_eq!(verdict(renamed), Ok((Compatibility::AsIs, 0)));
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
        let evolution = Evolution::default().with_version(2).with_migration(
            1,
            |old: widened::Count| v1::Count {
                count: old.count.min(u64::from(u32::MAX)) as u32,
            },
            true,
        );
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

    #[allow(dead_code)]
    mod shapes {
        use serde::Deserialize;
        #[derive(Deserialize)]
        pub struct Newtype(pub u32);
        #[derive(Deserialize)]
        pub enum E1 {
            A,
            B(u8),
        }
        #[derive(Deserialize)]
        pub enum E2 {
            A,
            B(u8),
            C { x: u16 },
        }
        #[derive(Deserialize)]
        pub enum E3 {
            A,
        }
        #[derive(Deserialize)]
        pub struct Nested {
            pub inner: super::v1::Count,
            pub kind: E1,
        }
        #[derive(Deserialize)]
        pub struct NestedWider {
            pub inner: super::widened::Count,
            pub kind: E2,
            #[serde(default)]
            pub extra: Vec<String>,
        }
    }

    /// The structural verdict agrees with decoding: for every pair of a
    /// set of types, what it accepts decodes (every sample of the first as
    /// the second), and what decodes it accepts, except readings serde
    /// allows that change the meaning: a float narrowed, a sequence read
    /// as a struct by position, a struct read as a map, a unit variant
    /// read as a string.
    #[test]
    fn the_structural_verdict_agrees_with_decoding_samples() {
        use super::super::evolution::decodes;
        use super::super::probe::samples;
        type Check = fn(&[u8]) -> Result<(), String>;
        macro_rules! types {
            ($($t:ty),* $(,)?) => {
                vec![$((stringify!($t), TypeSchema::of::<$t>(), decodes::<$t> as Check)),*]
            };
        }
        let types = types![
            u8, u32, u64, i32, i64, f32, f64, char, String, bool,
            Option<u32>, Option<u64>, Vec<u32>, Vec<String>, (u32, String), (u64, String),
            std::collections::BTreeMap<String, u32>, std::collections::BTreeMap<String, u64>,
            v1::Count, v2::Count, required::Count, renamed::Count, widened::Count,
            shapes::Newtype, shapes::E1, shapes::E2, shapes::E3, shapes::Nested, shapes::NestedWider,
        ];
        let meaning_changes = |a: &str, b: &str| {
            (a, b) == ("f64", "f32")
                || (a.starts_with("Vec") && b.ends_with("Count"))
                || (a.ends_with("Count") && b.starts_with("std::collections::BTreeMap"))
                || (a == "shapes::E3" && (b == "char" || b == "String"))
        };
        let mut disagreements = Vec::new();
        for (a, old, _) in &types {
            for (b, new, decodes) in &types {
                let structural = problems(old, new).is_empty();
                let decoded = samples(old).iter().all(|s| decodes(s).is_ok());
                if structural != decoded && !(decoded && meaning_changes(a, b)) {
                    disagreements.push(format!(
                        "{a} -> {b}: structural {structural}, decoded {decoded}"
                    ));
                }
            }
        }
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }
}

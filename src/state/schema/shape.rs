//! The structural description of a serde type as weir records it in
//! snapshots: [`TypeSchema`] (a root [`Shape`] and the named containers it
//! refers to), derived from the Rust type by tracing its `Deserialize`
//! implementation with `serde-reflection`, never written by hand.
//!
//! ```
//! use weir::state::schema::TypeSchema;
//! #[derive(serde::Deserialize)]
//! struct Count { count: u32, #[serde(default)] last_seen_ms: i64 }
//! let schema = TypeSchema::of::<Count>();
//! assert_eq!(schema.to_string(), "Count { count: u32, last_seen_ms: i64 }");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_reflection::{ContainerFormat, Format, Named, Tracer, TracerConfig, VariantFormat};

/// The shape of a value: a primitive, a composite of shapes, or a named
/// container described in its schema's `containers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Shape {
    Unit,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Option(Box<Shape>),
    Seq(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    Tuple(Vec<Shape>),
    /// A fixed-size array.
    Array(Box<Shape>, usize),
    /// A struct or enum, by name (see [`TypeSchema::containers`]).
    Named(String),
    /// A type whose shape could not be traced (a hand-written
    /// `Deserialize` that validates its input or reads any value): it is
    /// compared by decoding, not by shape.
    Opaque,
}

/// A named struct or enum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Container {
    /// `struct S;`
    UnitStruct,
    /// `struct S(T);`
    Newtype(Shape),
    /// `struct S(T, U);`
    TupleStruct(Vec<Shape>),
    /// `struct S { a: T }`
    Struct(Vec<Field>),
    /// `enum E { .. }`, variants in declaration order.
    Enum(Vec<Variant>),
}

/// A named field of a struct or struct variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Shape,
    /// Whether data without it reads (`#[serde(default)]`, an `Option`):
    /// found by decoding samples without it, for a struct's fields.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// The other names it is read by (`#[serde(alias)]`), found by
    /// decoding samples with it under each name serde lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Field {
    /// Whether the field is read under `name`.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

/// An enum variant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// The name serde writes.
    pub name: String,
    /// What it carries.
    pub fields: VariantFields,
}

/// What an enum variant carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VariantFields {
    /// Nothing.
    Unit,
    /// One value.
    Newtype(Shape),
    /// A tuple.
    Tuple(Vec<Shape>),
    /// Named fields.
    Struct(Vec<Field>),
}

/// A type's structural description: what a snapshot records of each state's
/// value (and map key) type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeSchema {
    /// The Rust type, as `std::any::type_name` spells it (informative: a
    /// renamed type of the same shape is the same schema).
    pub type_name: String,
    /// The shape of the type itself.
    pub root: Shape,
    /// The structs and enums it contains, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, Container>,
}

impl TypeSchema {
    /// The schema of `T`, traced from its `Deserialize` implementation as
    /// rmp-serde (not human-readable) would drive it. A type that cannot
    /// be traced gets the shape [`Shape::Opaque`].
    pub fn of<T: DeserializeOwned>() -> TypeSchema {
        let type_name = std::any::type_name::<T>().to_string();
        match trace::<T>() {
            Some((root, containers, unread)) => {
                let mut schema = TypeSchema {
                    type_name,
                    root,
                    containers,
                };
                super::probe::annotate(&mut schema, &unread, super::evolution::decodes::<T>);
                schema
            }
            None => TypeSchema {
                type_name,
                root: Shape::Opaque,
                containers: BTreeMap::new(),
            },
        }
    }

    /// A fingerprint of the shape (not of the type name): equal shapes,
    /// equal fingerprints, across builds and platforms.
    pub fn fingerprint(&self) -> u64 {
        // FNV-1a over the encoded shape: fixed, independent of the hasher
        // weir uses for keys.
        let bytes =
            crate::runtime::codec::encode(&(&self.root, &self.containers)).unwrap_or_default();
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    /// Whether the shape is known (the type could be traced).
    pub fn is_traced(&self) -> bool {
        !matches!(self.root, Shape::Opaque)
    }
}

type Traced = (
    Shape,
    BTreeMap<String, Container>,
    BTreeMap<String, Vec<String>>,
);

/// Traces `T`. serde-reflection visits one variant of a nested enum per
/// pass and marks the enum incomplete; the passes repeat while an enum
/// known to be incomplete has variants left, and start over when the
/// registry names enums not known before.
///
/// Also returns, per struct, the names serde lists among its fields but
/// never reads a value for: its aliases.
fn trace<T: DeserializeOwned>() -> Option<Traced> {
    let samples = serde_reflection::Samples::new();
    let passes = |enums: &[String]| -> Option<(Tracer, Format)> {
        let mut tracer = Tracer::new(TracerConfig::default().is_human_readable(false));
        let mut root = None;
        for _ in 0..256 {
            root = Some(tracer.trace_type::<T>(&samples).ok()?.0);
            let mut again = false;
            for name in enums {
                again |= tracer.check_incomplete_enum(name).is_some();
            }
            if !again {
                break;
            }
        }
        Some((tracer, root?))
    };
    let mut enums: Vec<String> = Vec::new();
    for _ in 0..16 {
        let (tracer, root) = passes(&enums)?;
        let registry = match tracer.registry() {
            Ok(registry) => registry,
            // A field serde lists but never reads: an alias (serde lists
            // aliases with the fields). Traced again, without it.
            Err(serde_reflection::Error::UnknownFormatInContainer(_)) => {
                passes(&enums)?.0.registry_unchecked()
            }
            Err(serde_reflection::Error::MissingVariants(missing)) => {
                let before = enums.len();
                for name in missing {
                    if !enums.contains(&name) {
                        enums.push(name);
                    }
                }
                if enums.len() == before {
                    return None;
                }
                continue;
            }
            Err(_) => return None,
        };
        let mut unread = BTreeMap::new();
        let containers = registry
            .into_iter()
            .map(|(name, c)| {
                let mut names = Vec::new();
                let container = container(c, &mut names)?;
                if !names.is_empty() {
                    unread.insert(name.clone(), names);
                }
                Some((name, container))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        return Some((shape(root)?, containers, unread));
    }
    None
}

fn shape(format: Format) -> Option<Shape> {
    Some(match format {
        Format::Variable(_) => return None,
        Format::TypeName(name) => Shape::Named(name),
        Format::Unit => Shape::Unit,
        Format::Bool => Shape::Bool,
        Format::I8 => Shape::I8,
        Format::I16 => Shape::I16,
        Format::I32 => Shape::I32,
        Format::I64 => Shape::I64,
        Format::I128 => Shape::I128,
        Format::U8 => Shape::U8,
        Format::U16 => Shape::U16,
        Format::U32 => Shape::U32,
        Format::U64 => Shape::U64,
        Format::U128 => Shape::U128,
        Format::F32 => Shape::F32,
        Format::F64 => Shape::F64,
        Format::Char => Shape::Char,
        Format::Str => Shape::Str,
        Format::Bytes => Shape::Bytes,
        Format::Option(inner) => Shape::Option(Box::new(shape(*inner)?)),
        Format::Seq(inner) => Shape::Seq(Box::new(shape(*inner)?)),
        Format::Map { key, value } => Shape::Map(Box::new(shape(*key)?), Box::new(shape(*value)?)),
        Format::Tuple(parts) => Shape::Tuple(shapes(parts)?),
        Format::TupleArray { content, size } => Shape::Array(Box::new(shape(*content)?), size),
    })
}

fn shapes(formats: Vec<Format>) -> Option<Vec<Shape>> {
    formats.into_iter().map(shape).collect()
}

/// A struct's fields; one whose format stayed unknown is an alias of
/// another (serde lists aliases among the fields): left out, its name put
/// in `unread`.
fn fields(named: Vec<Named<Format>>, unread: &mut Vec<String>) -> Option<Vec<Field>> {
    Some(
        named
            .into_iter()
            .filter_map(|n| match shape(n.value) {
                Some(shape) => Some(Field {
                    name: n.name,
                    shape,
                    default: false,
                    aliases: Vec::new(),
                }),
                None => {
                    unread.push(n.name);
                    None
                }
            })
            .collect(),
    )
}

fn container(format: ContainerFormat, unread: &mut Vec<String>) -> Option<Container> {
    Some(match format {
        ContainerFormat::UnitStruct => Container::UnitStruct,
        ContainerFormat::NewTypeStruct(inner) => Container::Newtype(shape(*inner)?),
        ContainerFormat::TupleStruct(parts) => Container::TupleStruct(shapes(parts)?),
        ContainerFormat::Struct(named) => Container::Struct(fields(named, unread)?),
        ContainerFormat::Enum(variants) => Container::Enum(
            variants
                .into_values()
                .map(|v| {
                    Some(Variant {
                        name: v.name,
                        fields: match v.value {
                            VariantFormat::Variable(_) => return None,
                            VariantFormat::Unit => VariantFields::Unit,
                            VariantFormat::NewType(inner) => VariantFields::Newtype(shape(*inner)?),
                            VariantFormat::Tuple(parts) => VariantFields::Tuple(shapes(parts)?),
                            VariantFormat::Struct(named) => {
                                VariantFields::Struct(fields(named, &mut Vec::new())?)
                            }
                        },
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
    })
}

/// Shapes print as Rust-like types, containers expanded where they first
/// appear: `Count { count: u32, kind: Kind { A | B(u8) } }`.
impl fmt::Display for TypeSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut expanded = Vec::new();
        write_shape(f, &self.root, &self.containers, &mut expanded)
    }
}

impl TypeSchema {
    /// How `shape` prints within this schema (containers expanded once).
    pub fn describe(&self, shape: &Shape) -> String {
        struct Show<'a>(&'a Shape, &'a BTreeMap<String, Container>);
        impl fmt::Display for Show<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_shape(f, self.0, self.1, &mut Vec::new())
            }
        }
        Show(shape, &self.containers).to_string()
    }
}

fn write_shape(
    f: &mut fmt::Formatter<'_>,
    shape: &Shape,
    containers: &BTreeMap<String, Container>,
    expanded: &mut Vec<String>,
) -> fmt::Result {
    let list = |f: &mut fmt::Formatter<'_>, parts: &[Shape], expanded: &mut Vec<String>| {
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write_shape(f, part, containers, expanded)?;
        }
        Ok(())
    };
    let named = |f: &mut fmt::Formatter<'_>, fields: &[Field], expanded: &mut Vec<String>| {
        f.write_str("{ ")?;
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: ", field.name)?;
            write_shape(f, &field.shape, containers, expanded)?;
        }
        f.write_str(" }")
    };
    match shape {
        Shape::Unit => f.write_str("()"),
        Shape::Bool => f.write_str("bool"),
        Shape::I8 => f.write_str("i8"),
        Shape::I16 => f.write_str("i16"),
        Shape::I32 => f.write_str("i32"),
        Shape::I64 => f.write_str("i64"),
        Shape::I128 => f.write_str("i128"),
        Shape::U8 => f.write_str("u8"),
        Shape::U16 => f.write_str("u16"),
        Shape::U32 => f.write_str("u32"),
        Shape::U64 => f.write_str("u64"),
        Shape::U128 => f.write_str("u128"),
        Shape::F32 => f.write_str("f32"),
        Shape::F64 => f.write_str("f64"),
        Shape::Char => f.write_str("char"),
        Shape::Str => f.write_str("String"),
        Shape::Bytes => f.write_str("bytes"),
        Shape::Opaque => f.write_str("<opaque>"),
        Shape::Option(inner) => {
            f.write_str("Option<")?;
            write_shape(f, inner, containers, expanded)?;
            f.write_str(">")
        }
        Shape::Seq(inner) => {
            f.write_str("Vec<")?;
            write_shape(f, inner, containers, expanded)?;
            f.write_str(">")
        }
        Shape::Map(k, v) => {
            f.write_str("Map<")?;
            write_shape(f, k, containers, expanded)?;
            f.write_str(", ")?;
            write_shape(f, v, containers, expanded)?;
            f.write_str(">")
        }
        Shape::Tuple(parts) => {
            f.write_str("(")?;
            list(f, parts, expanded)?;
            f.write_str(")")
        }
        Shape::Array(inner, n) => {
            f.write_str("[")?;
            write_shape(f, inner, containers, expanded)?;
            write!(f, "; {n}]")
        }
        Shape::Named(name) => {
            f.write_str(name)?;
            if expanded.contains(name) {
                return Ok(());
            }
            expanded.push(name.clone());
            match containers.get(name) {
                None | Some(Container::UnitStruct) => Ok(()),
                Some(Container::Newtype(inner)) => {
                    f.write_str("(")?;
                    write_shape(f, inner, containers, expanded)?;
                    f.write_str(")")
                }
                Some(Container::TupleStruct(parts)) => {
                    f.write_str("(")?;
                    list(f, parts, expanded)?;
                    f.write_str(")")
                }
                Some(Container::Struct(fields)) => {
                    f.write_str(" ")?;
                    named(f, fields, expanded)
                }
                Some(Container::Enum(variants)) => {
                    f.write_str(" { ")?;
                    for (i, v) in variants.iter().enumerate() {
                        if i > 0 {
                            f.write_str(" | ")?;
                        }
                        f.write_str(&v.name)?;
                        match &v.fields {
                            VariantFields::Unit => {}
                            VariantFields::Newtype(inner) => {
                                f.write_str("(")?;
                                write_shape(f, inner, containers, expanded)?;
                                f.write_str(")")?;
                            }
                            VariantFields::Tuple(parts) => {
                                f.write_str("(")?;
                                list(f, parts, expanded)?;
                                f.write_str(")")?;
                            }
                            VariantFields::Struct(fields) => {
                                f.write_str(" ")?;
                                named(f, fields, expanded)?;
                            }
                        }
                    }
                    f.write_str(" }")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(u8),
        C { x: Option<String> },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        kind: Kind,
        tags: Vec<(u16, f64)>,
        inner: Inner,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        kinds: Vec<Kind>,
        by: std::collections::BTreeMap<String, bool>,
    }

    #[test]
    fn nested_structs_and_enums_are_traced_with_every_variant() {
        let schema = TypeSchema::of::<Outer>();
        assert_eq!(
            schema.to_string(),
            "Outer { kind: Kind { A | B(u8) | C { x: Option<String> } }, \
             tags: Vec<(u16, f64)>, inner: Inner { kinds: Vec<Kind>, by: Map<String, bool> } }"
        );
        assert_eq!(TypeSchema::of::<u64>().to_string(), "u64");
        assert_eq!(
            TypeSchema::of::<(u64, Vec<String>)>().to_string(),
            "(u64, Vec<String>)"
        );
    }

    #[test]
    fn the_fingerprint_follows_the_shape_not_the_name() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct A {
            count: u32,
        }
        mod other {
            #[derive(serde::Deserialize)]
            #[allow(dead_code)]
            pub struct A {
                pub count: u32,
            }
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct B {
            count: u64,
        }
        let a = TypeSchema::of::<A>();
        assert_eq!(a.fingerprint(), TypeSchema::of::<other::A>().fingerprint());
        assert_ne!(a.fingerprint(), TypeSchema::of::<B>().fingerprint());
        // Fixed across builds (the snapshot format depends on it).
        assert_eq!(TypeSchema::of::<u64>().fingerprint(), 0x3270_9b65_b3ef_e1b5);
    }

    #[test]
    fn a_type_that_reads_any_value_is_opaque() {
        let schema = TypeSchema::of::<serde_json::Value>();
        assert!(!schema.is_traced());
        assert_eq!(schema.to_string(), "<opaque>");
    }
}

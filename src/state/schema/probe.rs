//! Sample values of a recorded shape, written as rmp-serde (named) writes
//! them: decoding them with the current type tells whether data of the old
//! shape reads as is. The samples cover every enum variant, both extremes
//! of every integer, `None` and `Some`, and one element of every sequence
//! and map, so that a narrowed integer, a removed variant or a required
//! field that was added fails on at least one of them.

use std::collections::BTreeMap;

use super::shape::{Container, Field, Shape, TypeSchema, VariantFields};

/// Below this depth every choice is made; deeper, recursion stops at the
/// first variant without fields, `None` or an empty sequence.
const FULL_DEPTH: usize = 6;
/// Nothing is written below this depth (a recursive type with no way out).
const MAX_DEPTH: usize = 16;

/// A change to one field of one struct in the samples: left out
/// (`rename: None`) or written under another name.
#[derive(Clone, Copy)]
struct Edit<'a> {
    container: &'a str,
    field: &'a str,
    rename: Option<&'a str>,
}

/// Marks, in `schema`, the struct fields that data without them reads
/// (`default`) and the names each is also read under (`aliases`, among
/// `unread`: per struct, the names serde lists but the trace never read),
/// by decoding edited samples with `decodes`.
pub(crate) fn annotate(
    schema: &mut TypeSchema,
    unread: &BTreeMap<String, Vec<String>>,
    decodes: fn(&[u8]) -> Result<(), String>,
) {
    let mut found: Vec<(String, usize, bool, Vec<String>)> = Vec::new();
    for (name, container) in &schema.containers {
        let Container::Struct(fields) = container else {
            continue;
        };
        let candidates = unread.get(name).map(Vec::as_slice).unwrap_or_default();
        for (index, field) in fields.iter().enumerate() {
            let reads = |rename| {
                let edit = Edit {
                    container: name,
                    field: &field.name,
                    rename,
                };
                reads_edited(schema, edit, decodes)
            };
            let default = reads(None);
            let aliases = candidates
                .iter()
                .filter(|&alias| reads(Some(alias)))
                .cloned()
                .collect();
            found.push((name.clone(), index, default, aliases));
        }
    }
    for (name, index, default, aliases) in found {
        if let Some(Container::Struct(fields)) = schema.containers.get_mut(&name) {
            fields[index].default = default;
            fields[index].aliases = aliases;
        }
    }
}

/// Whether every sample of `schema` edited by `edit` decodes, and at least
/// one was edited.
fn reads_edited(
    schema: &TypeSchema,
    edit: Edit<'_>,
    decodes: fn(&[u8]) -> Result<(), String>,
) -> bool {
    let mut edited = false;
    for choice in 0..sample_count(schema) {
        let writer = Writer {
            containers: &schema.containers,
            choice,
            edit: Some(edit),
            edited: std::cell::Cell::new(false),
        };
        let mut out = Vec::new();
        writer.shape(&mut out, &schema.root, 0);
        edited |= writer.edited.get();
        if decodes(&out).is_err() {
            return false;
        }
    }
    edited
}

fn sample_count(schema: &TypeSchema) -> usize {
    let variants = schema
        .containers
        .values()
        .map(|c| match c {
            Container::Enum(v) => v.len(),
            _ => 1,
        })
        .max()
        .unwrap_or(1);
    variants.max(2)
}

/// The samples of `schema` (empty: the shape is opaque).
#[cfg(test)]
pub(crate) fn samples(schema: &TypeSchema) -> Vec<Vec<u8>> {
    if !schema.is_traced() {
        return Vec::new();
    }
    (0..sample_count(schema))
        .map(|choice| {
            let mut out = Vec::new();
            Writer {
                containers: &schema.containers,
                choice,
                edit: None,
                edited: std::cell::Cell::new(false),
            }
            .shape(&mut out, &schema.root, 0);
            out
        })
        .collect()
}

struct Writer<'a> {
    containers: &'a BTreeMap<String, Container>,
    /// Which sample: picks the variant (`choice % variants`), the integer
    /// extreme and `Some` or `None` (by parity).
    choice: usize,
    edit: Option<Edit<'a>>,
    /// Whether `edit` was applied.
    edited: std::cell::Cell<bool>,
}

impl Writer<'_> {
    fn high(&self) -> bool {
        self.choice.is_multiple_of(2)
    }

    fn shape(&self, out: &mut Vec<u8>, shape: &Shape, depth: usize) {
        use rmp::encode::*;
        // Writes into a Vec cannot fail.
        let high = self.high();
        let deep = depth >= FULL_DEPTH;
        if depth >= MAX_DEPTH {
            let _ = write_nil(out);
            return;
        }
        match shape {
            Shape::Unit | Shape::Opaque => drop(write_nil(out)),
            Shape::Bool => drop(write_bool(out, high)),
            Shape::I8 => {
                drop(write_sint(out, if high { i8::MAX.into() } else { i8::MIN.into() }).map(drop))
            }
            Shape::I16 => drop(
                write_sint(
                    out,
                    if high {
                        i16::MAX.into()
                    } else {
                        i16::MIN.into()
                    },
                )
                .map(drop),
            ),
            Shape::I32 => drop(
                write_sint(
                    out,
                    if high {
                        i32::MAX.into()
                    } else {
                        i32::MIN.into()
                    },
                )
                .map(drop),
            ),
            Shape::I64 | Shape::I128 => {
                drop(write_sint(out, if high { i64::MAX } else { i64::MIN }).map(drop))
            }
            Shape::U8 => drop(write_uint(out, if high { u8::MAX.into() } else { 0 }).map(drop)),
            Shape::U16 => drop(write_uint(out, if high { u16::MAX.into() } else { 0 }).map(drop)),
            Shape::U32 => drop(write_uint(out, if high { u32::MAX.into() } else { 0 }).map(drop)),
            Shape::U64 | Shape::U128 => {
                drop(write_uint(out, if high { u64::MAX } else { 0 }).map(drop))
            }
            // Not representable in an f32: a narrowed float fails.
            Shape::F32 => drop(write_f32(out, 1.5)),
            Shape::F64 => drop(write_f64(out, if high { f64::MAX } else { 0.1 })),
            Shape::Char => drop(write_str(out, "c")),
            Shape::Str => drop(write_str(out, "sample")),
            Shape::Bytes => drop(write_bin(out, &[1, 2])),
            Shape::Option(inner) => {
                if high && !deep {
                    self.shape(out, inner, depth + 1);
                } else {
                    let _ = write_nil(out);
                }
            }
            Shape::Seq(inner) => {
                let n = u32::from(!deep);
                let _ = write_array_len(out, n);
                if n == 1 {
                    self.shape(out, inner, depth + 1);
                }
            }
            Shape::Map(k, v) => {
                let n = u32::from(!deep);
                let _ = write_map_len(out, n);
                if n == 1 {
                    self.shape(out, k, depth + 1);
                    self.shape(out, v, depth + 1);
                }
            }
            Shape::Tuple(parts) => {
                self.tuple(out, parts, depth);
            }
            Shape::Array(inner, n) => {
                let _ = write_array_len(out, *n as u32);
                for _ in 0..*n {
                    self.shape(out, inner, depth + 1);
                }
            }
            Shape::Named(name) => {
                self.container(out, name, depth);
            }
        }
    }

    fn tuple(&self, out: &mut Vec<u8>, parts: &[Shape], depth: usize) {
        let _ = rmp::encode::write_array_len(out, parts.len() as u32);
        for part in parts {
            self.shape(out, part, depth + 1);
        }
    }

    /// The fields of struct `container` (`None`: of an enum variant).
    fn fields(&self, out: &mut Vec<u8>, fields: &[Field], depth: usize, container: Option<&str>) {
        let edit = self
            .edit
            .filter(|e| Some(e.container) == container && fields.iter().any(|f| f.name == e.field));
        let left_out = edit.is_some_and(|e| e.rename.is_none());
        let _ = rmp::encode::write_map_len(out, fields.len() as u32 - u32::from(left_out));
        for field in fields {
            let mut name = field.name.as_str();
            if let Some(e) = edit.filter(|e| e.field == field.name) {
                self.edited.set(true);
                match e.rename {
                    None => continue,
                    Some(rename) => name = rename,
                }
            }
            let _ = rmp::encode::write_str(out, name);
            self.shape(out, &field.shape, depth + 1);
        }
    }

    fn container(&self, out: &mut Vec<u8>, name: &str, depth: usize) {
        use rmp::encode::*;
        match self.containers.get(name) {
            None => {
                let _ = write_nil(out);
            }
            Some(Container::UnitStruct) => {
                let _ = write_array_len(out, 0);
            }
            Some(Container::Newtype(inner)) => self.shape(out, inner, depth + 1),
            Some(Container::TupleStruct(parts)) => self.tuple(out, parts, depth),
            Some(Container::Struct(fields)) => self.fields(out, fields, depth, Some(name)),
            Some(Container::Enum(variants)) if variants.is_empty() => {
                let _ = write_nil(out);
            }
            Some(Container::Enum(variants)) => {
                let index = if depth >= FULL_DEPTH {
                    variants
                        .iter()
                        .position(|v| v.fields == VariantFields::Unit)
                        .unwrap_or(0)
                } else {
                    self.choice % variants.len()
                };
                let variant = &variants[index];
                if variant.fields == VariantFields::Unit {
                    let _ = write_str(out, &variant.name);
                    return;
                }
                let _ = write_map_len(out, 1);
                let _ = write_str(out, &variant.name);
                match &variant.fields {
                    VariantFields::Unit => {}
                    VariantFields::Newtype(inner) => self.shape(out, inner, depth + 1),
                    VariantFields::Tuple(parts) => self.tuple(out, parts, depth),
                    VariantFields::Struct(fields) => self.fields(out, fields, depth, None),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::codec;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        A,
        B(u8),
        C { x: Option<String> },
        D(i32, bool),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Outer {
        kind: Kind,
        tags: Vec<(u16, f64)>,
        by: std::collections::BTreeMap<String, Kind>,
        unit: Unit,
        wrapped: Wrapped,
        chars: [char; 2],
        tree: Tree,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapped(u64);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Tree {
        Leaf,
        Node(Box<Tree>, Box<Tree>),
    }

    #[test]
    fn every_sample_decodes_as_its_own_type_and_every_variant_is_sampled() {
        let schema = TypeSchema::of::<Outer>();
        let samples = samples(&schema);
        assert_eq!(samples.len(), 4, "one per variant of the largest enum");
        let mut kinds = Vec::new();
        for sample in &samples {
            let value: Outer = codec::decode(sample).unwrap();
            kinds.push(std::mem::discriminant(&value.kind));
        }
        kinds.dedup();
        assert_eq!(kinds.len(), 4);
    }

    #[test]
    fn narrowing_fails_on_a_sample_and_widening_does_not() {
        let decodes_as = |schema: TypeSchema, check: &dyn Fn(&[u8]) -> bool| {
            samples(&schema).iter().all(|s| check(s))
        };
        let as_u64 = |b: &[u8]| codec::decode::<u64>(b).is_ok();
        let as_u32 = |b: &[u8]| codec::decode::<u32>(b).is_ok();
        let as_i64 = |b: &[u8]| codec::decode::<i64>(b).is_ok();
        assert!(decodes_as(TypeSchema::of::<u32>(), &as_u64));
        assert!(decodes_as(TypeSchema::of::<u32>(), &as_i64));
        assert!(!decodes_as(TypeSchema::of::<u64>(), &as_u32));
        assert!(!decodes_as(TypeSchema::of::<i32>(), &as_u64));
        let as_option = |b: &[u8]| codec::decode::<Option<u32>>(b).is_ok();
        assert!(decodes_as(TypeSchema::of::<u32>(), &as_option));
        let as_plain = |b: &[u8]| codec::decode::<u32>(b).is_ok();
        assert!(!decodes_as(TypeSchema::of::<Option<u32>>(), &as_plain));
        let as_strings = |b: &[u8]| codec::decode::<Vec<String>>(b).is_ok();
        assert!(!decodes_as(TypeSchema::of::<Vec<u32>>(), &as_strings));
    }
}

//! The one serialization of everything weir writes down: MessagePack
//! (rmp-serde) with struct fields by name, so that a field added later with
//! `#[serde(default)]` still reads older bytes.
//!
//! Every format encodes its payload here — checkpoint metadata, subtask
//! state, key groups, operator and broadcast state, lineage records, commit
//! ledgers, RocksDB entries, in-flight record batches — and nowhere else
//! names the serializer. The framing around a file's payload (magic,
//! version, checksum) is [`crate::checkpoint::format`]'s.
//!
//! ```
//! use weir_actors::codec;
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Position { offset: u64 }
//! let bytes = codec::encode(&Position { offset: 7 }).unwrap();
//! assert_eq!(codec::decode::<Position>(&bytes).unwrap(), Position { offset: 7 });
//! let error = codec::decode::<Position>(&bytes[..2]).unwrap_err();
//! assert!(error.to_string().contains("Position"), "{error}");
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A value that could not be encoded, or bytes that do not decode as the
/// type asked for.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// The value could not be encoded (a serializer error of its type).
    #[error("cannot encode a `{type_name}`: {message}")]
    Encode {
        /// The Rust type of the value.
        type_name: &'static str,
        /// The serializer's message.
        message: String,
    },
    /// The bytes are not a value of the type asked for.
    #[error("cannot decode a `{type_name}`: {message}")]
    Decode {
        /// The Rust type asked for.
        type_name: &'static str,
        /// The deserializer's message.
        message: String,
    },
}

impl CodecError {
    fn encode<T: ?Sized>(e: rmp_serde::encode::Error) -> Self {
        CodecError::Encode {
            type_name: std::any::type_name::<T>(),
            message: e.to_string(),
        }
    }

    fn decode<T>(e: rmp_serde::decode::Error) -> Self {
        CodecError::Decode {
            type_name: std::any::type_name::<T>(),
            message: e.to_string(),
        }
    }
}

/// The bytes of `value`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(CodecError::encode::<T>)
}

/// Appends the bytes of `value` to `out` (a reused buffer on a hot path).
#[inline]
pub fn encode_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), CodecError> {
    rmp_serde::encode::write_named(out, value).map_err(CodecError::encode::<T>)
}

/// The value that `bytes` hold, all of them.
#[inline]
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    rmp_serde::from_slice(bytes).map_err(CodecError::decode::<T>)
}

/// The value at the front of `bytes`, which then start after it: reads a
/// sequence of values written one after the other by [`encode_into`].
#[inline]
pub fn decode_next<T: DeserializeOwned>(bytes: &mut &[u8]) -> Result<T, CodecError> {
    rmp_serde::decode::from_read(bytes).map_err(CodecError::decode::<T>)
}

/// The number of elements of an encoded sequence (a `Vec`, a slice, a
/// tuple), read from its header without decoding the elements; `None` if
/// the bytes do not start with a sequence.
pub fn sequence_len(bytes: &[u8]) -> Option<u64> {
    rmp::decode::read_array_len(&mut &bytes[..])
        .ok()
        .map(u64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        key: String,
        count: u64,
    }

    #[test]
    fn struct_fields_are_written_by_name() {
        let bytes = encode(&Entry {
            key: "a".into(),
            count: 1,
        })
        .unwrap();
        // fixmap of 2, "key" -> "a", "count" -> 1
        assert_eq!(
            bytes,
            [0x82, 0xa3, b'k', b'e', b'y', 0xa1, b'a', 0xa5, b'c', b'o', b'u', b'n', b't', 1]
        );
    }

    #[test]
    fn values_written_one_after_another_read_back_in_order() {
        let mut buf = Vec::new();
        for n in 0..3u32 {
            encode_into(&mut buf, &n).unwrap();
        }
        encode_into(&mut buf, "end").unwrap();
        let mut rest: &[u8] = &buf;
        let numbers: Vec<u32> = (0..3).map(|_| decode_next(&mut rest).unwrap()).collect();
        assert_eq!(numbers, [0, 1, 2]);
        assert_eq!(decode_next::<String>(&mut rest).unwrap(), "end");
        assert!(rest.is_empty());
    }

    #[test]
    fn a_sequence_length_is_read_from_its_header() {
        assert_eq!(sequence_len(&encode(&vec![7u8; 20]).unwrap()), Some(20));
        assert_eq!(sequence_len(&encode(&(1u8, "a")).unwrap()), Some(2));
        assert_eq!(sequence_len(&encode(&5u8).unwrap()), None);
    }

    #[test]
    fn an_error_names_the_type_asked_for() {
        let error = decode::<Entry>(&[0xc1]).unwrap_err();
        assert!(matches!(error, CodecError::Decode { .. }));
        assert!(error.to_string().contains("Entry"), "{error}");
    }
}

//! The `_metadata` file: weir's header (see [`super::super::format`]) around
//! the rmp-serde of a [`CheckpointMetadata`], fields by name.

use super::StorageError;
use crate::checkpoint::format::{decode, encode, FileKind};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::codec;

/// The bytes of a `_metadata` file (header and rmp-serde payload).
pub fn encode_metadata(metadata: &CheckpointMetadata) -> Result<Vec<u8>, StorageError> {
    let payload = codec::encode(metadata).map_err(|e| StorageError::Decode {
        what: "metadata".into(),
        cause: e.to_string(),
    })?;
    Ok(encode(FileKind::Metadata, &payload))
}

/// Reads the bytes of a `_metadata` file named `what`.
pub fn decode_metadata(bytes: &[u8], what: &str) -> Result<CheckpointMetadata, StorageError> {
    let payload = decode(bytes, FileKind::Metadata, what)?;
    codec::decode(payload).map_err(|e| StorageError::Decode {
        what: what.to_string(),
        cause: e.to_string(),
    })
}

//! The file format of everything a checkpoint writes: a fixed header (magic,
//! format version, kind, payload length, CRC-32 of the payload), then the
//! payload. A reader checks all of it, so a torn, truncated, corrupted or
//! foreign file is reported, never read as state.
//!
//! ```
//! use weir_actors::checkpoint::format::{decode, encode, FileKind};
//! let bytes = encode(FileKind::State, b"payload");
//! assert_eq!(decode(&bytes, FileKind::State, "chk-1/a").unwrap(), b"payload");
//! let mut torn = bytes.clone();
//! torn.truncate(bytes.len() - 1);
//! assert!(decode(&torn, FileKind::State, "chk-1/a").unwrap_err().to_string().contains("chk-1/a"));
//! ```

use thiserror::Error;

/// The first bytes of every weir checkpoint file.
pub const MAGIC: [u8; 4] = *b"WEIR";
/// The current format version.
pub const VERSION: u16 = 1;
const HEADER: usize = 4 + 2 + 1 + 1 + 8 + 4;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileKind {
    /// One subtask's state.
    State = 1,
    /// A checkpoint's `_metadata`.
    Metadata = 2,
    /// A lineage's record, `<checkpoint dir>/<lineage>/_lineage`.
    Lineage = 3,
    /// A two-phase-commit sink's ledger of what it committed.
    CommitLedger = 4,
}

/// Why bytes are not a readable weir file.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    /// Too short for the header or the length it announces.
    #[error("{what}: truncated ({len} bytes, expected {expected})")]
    Truncated {
        /// The file.
        what: String,
        /// Its length.
        len: usize,
        /// The length the header announces (or the header's own).
        expected: usize,
    },
    /// Does not start with the weir magic.
    #[error("{what}: not a weir checkpoint file (bad magic)")]
    BadMagic {
        /// The file.
        what: String,
    },
    /// Written by a newer weir.
    #[error("{what}: format version {found} is not supported (this weir reads version {VERSION})")]
    UnsupportedVersion {
        /// The file.
        what: String,
        /// The version found.
        found: u16,
    },
    /// Another kind of file than expected.
    #[error("{what}: holds {found:?} data, expected {expected:?}")]
    WrongKind {
        /// The file.
        what: String,
        /// The kind byte found.
        found: u8,
        /// The kind expected.
        expected: FileKind,
    },
    /// The payload does not match its checksum.
    #[error("{what}: checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupted")]
    Checksum {
        /// The file.
        what: String,
        /// The stored CRC-32.
        stored: u32,
        /// The CRC-32 of the payload read.
        computed: u32,
    },
}

/// Wraps `payload` in the header.
pub fn encode(kind: FileKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks the header of `bytes` (a file called `what`) and returns the payload.
pub fn decode<'a>(bytes: &'a [u8], kind: FileKind, what: &str) -> Result<&'a [u8], FormatError> {
    let what = what.to_string();
    if bytes.len() < HEADER {
        return Err(FormatError::Truncated {
            what,
            len: bytes.len(),
            expected: HEADER,
        });
    }
    if bytes[0..4] != MAGIC {
        return Err(FormatError::BadMagic { what });
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion {
            what,
            found: version,
        });
    }
    if bytes[6] != kind as u8 {
        return Err(FormatError::WrongKind {
            what,
            found: bytes[6],
            expected: kind,
        });
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[8..16]);
    let len = u64::from_le_bytes(len) as usize;
    let expected = HEADER.saturating_add(len);
    if bytes.len() != expected {
        return Err(FormatError::Truncated {
            what,
            len: bytes.len(),
            expected,
        });
    }
    let stored = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let payload = &bytes[HEADER..];
    let computed = crc32fast::hash(payload);
    if stored != computed {
        return Err(FormatError::Checksum {
            what,
            stored,
            computed,
        });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_damage_is_reported() {
        let good = encode(FileKind::Metadata, b"hello world");
        assert_eq!(
            decode(&good, FileKind::Metadata, "m").unwrap(),
            b"hello world"
        );

        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            decode(&flipped, FileKind::Metadata, "m"),
            Err(FormatError::Checksum { .. })
        ));

        assert!(matches!(
            decode(&good[..10], FileKind::Metadata, "m"),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&good[..good.len() - 2], FileKind::Metadata, "m"),
            Err(FormatError::Truncated { .. })
        ));
        assert!(matches!(
            decode(b"PK\x03\x04 not ours at all......", FileKind::Metadata, "m"),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            decode(&good, FileKind::State, "m"),
            Err(FormatError::WrongKind { .. })
        ));

        let mut future = good;
        future[4] = 9;
        assert!(matches!(
            decode(&future, FileKind::Metadata, "m"),
            Err(FormatError::UnsupportedVersion { found: 9, .. })
        ));
    }
}

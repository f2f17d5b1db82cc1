//! Where checkpoint files live: a local path, or an object in an
//! S3-compatible store named by a URL (`s3://bucket/prefix/...`, feature
//! `s3`). Every read, write, listing and deletion of checkpoint, savepoint,
//! lineage and shared files goes through these functions, so the code that
//! lays the files out (see [`crate::checkpoint::layout`]) is the same for
//! both: a URL is carried in a [`Path`] like a local path, and
//! `Path::join` appends to it.
//!
//! | operation | local directory | object store |
//! |---|---|---|
//! | [`write()`] | create, write, fsync | one PUT (atomic: whole or absent) |
//! | [`write_atomically`] | temporary file, fsync, rename, fsync the directory | one PUT |
//! | [`list`] | `read_dir` (an error if missing) | delimited listing (empty if none) |
//! | [`create_dir_all`] | creates | nothing (an object store has no directories) |
//! | [`remove_dir_all`] | removes | deletes every object under the prefix |
//!
//! ```
//! use std::path::Path;
//! use weir_actors::location;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let file = dir.path().join("chk-1").join("_metadata");
//! location::create_dir_all(&dir.path().join("chk-1")).unwrap();
//! location::write(&file, b"bytes").unwrap();
//! assert_eq!(location::read(&file).unwrap(), b"bytes");
//! assert!(!location::is_object_url(&file));
//! assert!(location::is_object_url(Path::new("s3://bucket/checkpoints")));
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::checkpoint::durable::{self, DurableWriteError};

#[cfg(feature = "s3")]
pub mod object;
#[cfg(feature = "s3")]
pub use object::{configure_s3, configure_s3_bucket, S3Options};

/// One entry of a listed directory (or prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name (the last component).
    pub name: String,
    /// Whether it is a directory (a common prefix of an object store).
    pub is_dir: bool,
}

/// Whether `path` is an object-store URL (`scheme://...`) rather than a local path.
pub fn is_object_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
        })
    })
}

/// Checks that a URL names a store this build can reach (`s3://` with the
/// feature `s3`); a local path is always fine.
pub fn check_supported(path: &Path) -> Result<(), String> {
    if !is_object_url(path) {
        return Ok(());
    }
    let text = path.display().to_string();
    let scheme = text.split_once("://").map_or("", |(s, _)| s);
    match scheme {
        "file" => Err(format!("{text}: write file:// locations as plain paths")),
        #[cfg(feature = "s3")]
        "s3" => object::parse(path).map(|_| ()).map_err(|e| e.to_string()),
        #[cfg(not(feature = "s3"))]
        "s3" => Err(format!(
            "{text}: checkpoints on S3 need weir built with the cargo feature `s3`"
        )),
        other => Err(format!(
            "{text}: unsupported scheme `{other}://` (local paths and s3:// are supported)"
        )),
    }
}

fn unsupported(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        check_supported(path)
            .err()
            .unwrap_or_else(|| format!("{}: unsupported location", path.display())),
    )
}

macro_rules! remote {
    ($path:expr, $call:ident ( $($arg:expr),* )) => {{
        #[cfg(feature = "s3")]
        {
            if object::handles($path) {
                return object::$call($path $(, $arg)*);
            }
        }
        return Err(unsupported($path));
    }};
}

/// Reads a whole file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    if is_object_url(path) {
        remote!(path, read())
    }
    fs::read(path)
}

/// Reads a whole file as UTF-8 text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes a whole file durably (its directory must exist locally).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if is_object_url(path) {
        remote!(path, write(bytes))
    }
    let mut file = fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes a whole file so that a reader sees the old content or the new one,
/// whole, even after a crash (see [`durable::write_atomically`]).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DurableWriteError> {
    if is_object_url(path) {
        return write(path, bytes).map_err(|source| DurableWriteError {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        });
    }
    durable::write_atomically(path, bytes)
}

/// Whether a file, or a directory (for an object store: any object under
/// the prefix), exists at `path`. Locally, what cannot be looked at counts
/// as absent (as [`Path::exists`]); an object store's error is an error.
pub fn exists(path: &Path) -> io::Result<bool> {
    if is_object_url(path) {
        remote!(path, exists())
    }
    // As `Path::exists`: what cannot be looked at (permission denied)
    // counts as absent, as it did for every caller before object stores.
    Ok(path.exists())
}

/// The entries of directory `path`, in no particular order. A missing local
/// directory is an error of kind `NotFound`; a prefix without objects lists
/// as empty.
pub fn list(path: &Path) -> io::Result<Vec<Entry>> {
    if is_object_url(path) {
        remote!(path, list())
    }
    // Entries that cannot be read are skipped; symbolic links are followed.
    let mut out = Vec::new();
    for entry in fs::read_dir(path)?.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        out.push(Entry {
            name,
            is_dir: entry.path().is_dir(),
        });
    }
    Ok(out)
}

/// Creates a directory and its parents (nothing to do on an object store).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if is_object_url(path) {
        return check_supported(path).map_err(|_| unsupported(path));
    }
    fs::create_dir_all(path)
}

/// Removes a directory and everything in it.
pub fn remove_dir_all(path: &Path) -> io::Result<()> {
    if is_object_url(path) {
        remote!(path, remove_dir_all())
    }
    fs::remove_dir_all(path)
}

/// Removes one file.
pub fn remove_file(path: &Path) -> io::Result<()> {
    if is_object_url(path) {
        remote!(path, remove_file())
    }
    fs::remove_file(path)
}

/// The absolute form of a local path (unchanged when it cannot be resolved,
/// and for a URL).
pub fn absolute(path: &Path) -> std::path::PathBuf {
    if is_object_url(path) {
        return path.to_path_buf();
    }
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths_and_unsupported_ones_are_named() {
        assert!(is_object_url(Path::new("s3://b/p")));
        assert!(!is_object_url(Path::new("/tmp/a:b")));
        assert!(!is_object_url(Path::new("relative/dir")));
        let err = check_supported(Path::new("gs://bucket/x")).unwrap_err();
        assert!(
            err.contains("gs://bucket/x") && err.contains("unsupported scheme"),
            "{err}"
        );
        let err = read(Path::new("hdfs://nn/x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }

    #[test]
    fn local_files_are_listed_written_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("chk-1");
        create_dir_all(&sub).unwrap();
        write(&sub.join("a"), b"1").unwrap();
        write_atomically(&dir.path().join("record"), b"2").unwrap();
        let mut names: Vec<_> = list(dir.path()).unwrap();
        names.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            names,
            vec![
                Entry {
                    name: "chk-1".into(),
                    is_dir: true
                },
                Entry {
                    name: "record".into(),
                    is_dir: false
                }
            ]
        );
        assert!(exists(&sub).unwrap());
        remove_dir_all(&sub).unwrap();
        assert!(!exists(&sub).unwrap());
        assert_eq!(list(&sub).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn local_listing_follows_symbolic_links_and_unreadable_paths_count_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        create_dir_all(&target).unwrap();
        let root = dir.path().join("root");
        create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&target, root.join("lineage")).unwrap();
        assert_eq!(
            list(&root).unwrap(),
            vec![Entry {
                name: "lineage".into(),
                is_dir: true
            }]
        );
        // Below a file: cannot be looked at, so absent (as Path::exists).
        write(&dir.path().join("file"), b"x").unwrap();
        assert!(!exists(&dir.path().join("file").join("below")).unwrap());
    }
}

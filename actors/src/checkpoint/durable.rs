//! Writing small files so that a reader sees either the old content or the
//! new one, whole, even after a crash: write a temporary file beside the
//! target, sync it, rename it over the target, sync the directory.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("record");
//! weir_actors::checkpoint::durable::write_atomically(&path, b"one").unwrap();
//! weir_actors::checkpoint::durable::write_atomically(&path, b"two").unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"two");
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The suffix of the temporary file a write goes through.
pub const TEMP_SUFFIX: &str = ".inprogress";

/// The temporary file `path` is written through.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TEMP_SUFFIX);
    path.with_file_name(name)
}

/// Writes `bytes` to `path` durably and atomically. The error says which step
/// failed on which file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DurableWriteError> {
    let temp = temp_path(path);
    let fail = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| DurableWriteError {
            action,
            path,
            source,
        }
    };
    let mut file = File::create(&temp).map_err(fail("cannot create", &temp))?;
    file.write_all(bytes).map_err(fail("cannot write", &temp))?;
    file.sync_all().map_err(fail("cannot sync", &temp))?;
    drop(file);
    fs::rename(&temp, path).map_err(fail("cannot rename a file into", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
        .map_err(fail("cannot sync the directory of", path))
}

/// Makes the entries of `dir` (a rename, a new file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A step of [`write_atomically`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct DurableWriteError {
    /// What was being done.
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: io::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_names_the_file_and_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        write_atomically(&path, b"old").unwrap();
        let missing = dir.path().join("no-such-dir").join("r");
        let err = write_atomically(&missing, b"new").unwrap_err().to_string();
        assert!(err.contains("no-such-dir"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!temp_path(&path).exists());
    }
}

//! Exclusive locks on what a running job writes: its checkpoints and the
//! output of its exactly-once sinks. Two jobs writing into the same place
//! would each be exactly-once on their own and duplicate each other's output.
//!
//! A lock is an OS file lock (`flock`) on a lock file: the operating system
//! releases it when the process ends in any way, `kill -9` included, so a
//! stale lock never blocks a restart. The file names the holder (process id
//! and job), so a refused job can say who holds it.
//!
//! ```
//! use weir_actors::lock::DirLock;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join(".weir-lock");
//! let held = DirLock::acquire(&path, "job `a`").unwrap();
//! let refused = DirLock::acquire(&path, "job `b`").unwrap_err().to_string();
//! assert!(refused.contains("job `a`"), "{refused}");
//! drop(held);
//! assert!(DirLock::acquire(&path, "job `b`").is_ok());
//! ```

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// A lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another job (in this process or another) holds it.
    #[error("{} is locked by {holder}: one job at a time writes there", path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder wrote it.
        holder: String,
    },
    /// The lock file could not be created, opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// How a process describes itself in a lock file: its id and `what` it runs.
pub fn holder(what: &str) -> String {
    format!("process {} ({what})", std::process::id())
}

impl DirLock {
    /// Takes the lock file at `path` (created if missing) and writes `holder`
    /// into it.
    pub fn acquire(path: &Path, holder: &str) -> Result<DirLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "another job".to_string());
                return Err(LockError::Held {
                    path: path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{holder}").map_err(io)?;
        Ok(DirLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_in_a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = DirLock::acquire(&dir.path().join("missing/.lock"), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing/.lock"), "{err}");
    }

    #[test]
    fn the_holder_is_named_and_replaced_by_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let first = DirLock::acquire(&path, &holder("job `a`")).unwrap();
        let err = DirLock::acquire(&path, "b").unwrap_err().to_string();
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let _second = DirLock::acquire(&path, "job `b`").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "job `b`\n");
    }
}

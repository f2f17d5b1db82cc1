//! Local working directories: where each subtask's database lives, which of
//! several directories a subtask goes to, and removing it when the subtask ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rocksdb::{Cache, WriteBufferManager};

use super::RocksDbSettings;
use crate::state::StateError;

/// How subtasks are placed on several local directories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LocalDirStrategy {
    /// One directory after the other (Flink's behaviour).
    #[default]
    RoundRobin,
    /// The directory holding the fewest bytes at the time the subtask opens.
    LeastUsed,
    /// A directory picked at random.
    Random,
}

impl std::str::FromStr for LocalDirStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "round-robin" => Ok(LocalDirStrategy::RoundRobin),
            "least-used" => Ok(LocalDirStrategy::LeastUsed),
            "random" => Ok(LocalDirStrategy::Random),
            other => Err(format!(
                "{other:?} is not a local directory strategy; allowed: \"round-robin\", \"least-used\", \"random\""
            )),
        }
    }
}

/// What the subtasks of one job share: memory and the directory choice.
pub(crate) struct Resources {
    pub cache: Cache,
    pub write_buffers: WriteBufferManager,
    /// The job's entry-cache budget, shared evenly by its open databases.
    entry_cache_bytes: usize,
    open_databases: AtomicUsize,
    next: AtomicUsize,
    random: AtomicU64,
}

impl Resources {
    pub fn new(settings: &RocksDbSettings) -> Self {
        let cache = Cache::new_lru_cache(settings.block_cache_bytes);
        // One budget for the memtables of every subtask of the job: when it is
        // spent, the largest memtables are flushed.
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager(settings.write_buffer_bytes, false);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Resources {
            cache,
            write_buffers,
            entry_cache_bytes: settings.entry_cache_bytes,
            open_databases: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            random: AtomicU64::new(seed | 1),
        }
    }

    /// Counts a database as open (its share of the entry cache is taken from
    /// the budget) until the guard is dropped.
    pub fn open_database(self: &Arc<Self>) -> OpenDatabase {
        self.open_databases.fetch_add(1, Ordering::Relaxed);
        OpenDatabase(self.clone())
    }

    /// The index of the directory a new subtask goes to.
    pub fn choose(&self, dirs: &[PathBuf], strategy: LocalDirStrategy) -> usize {
        if dirs.len() <= 1 {
            return 0;
        }
        match strategy {
            LocalDirStrategy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % dirs.len(),
            LocalDirStrategy::Random => {
                // xorshift64: the choice needs spread, not quality.
                let mut x = self.random.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                self.random.store(x, Ordering::Relaxed);
                (x % dirs.len() as u64) as usize
            }
            LocalDirStrategy::LeastUsed => dirs
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| bytes_under(d))
                .map_or(0, |(i, _)| i),
        }
    }
}

/// One open database of a job: its share of the job's entry cache.
pub(crate) struct OpenDatabase(Arc<Resources>);

impl OpenDatabase {
    /// Whether the job's databases cache entries at all.
    pub fn caches_entries(&self) -> bool {
        self.0.entry_cache_bytes > 0
    }

    /// How many bytes this database's entry cache may hold: the job's budget
    /// shared evenly by the databases open now.
    #[inline]
    pub fn entry_cache_limit(&self) -> usize {
        let open = self.0.open_databases.load(Ordering::Relaxed).max(1);
        self.0.entry_cache_bytes / open
    }
}

impl Drop for OpenDatabase {
    fn drop(&mut self) {
        self.0.open_databases.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes of the files under `dir` (0 if it does not exist).
pub(crate) fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// A subtask's working directory, removed with everything in it when dropped.
#[derive(Debug)]
pub(crate) struct LocalDir {
    path: PathBuf,
}

impl LocalDir {
    /// Creates a fresh directory for subtask `subtask` of operator `uid` under `root`.
    pub fn create(root: &Path, uid: &str, subtask: usize) -> Result<LocalDir, StateError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let safe: String = uid
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let path = root.join(format!(
            "{safe}-{subtask}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(|e| local_error(&path, "cannot clear", e))?;
        }
        std::fs::create_dir_all(&path).map_err(|e| local_error(&path, "cannot create", e))?;
        Ok(LocalDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove a RocksDB working directory");
            }
        }
    }
}

pub(crate) fn local_error(path: &Path, action: &str, e: std::io::Error) -> StateError {
    StateError::Backend(format!(
        "RocksDB local directory {}: {action}: {e}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_spread_subtasks_over_the_directories() {
        let settings = RocksDbSettings {
            local_dirs: Vec::new(),
            strategy: LocalDirStrategy::RoundRobin,
            block_cache_bytes: 1 << 20,
            write_buffer_bytes: 4 << 20,
            entry_cache_bytes: 0,
            incremental: true,
        };
        let resources = Resources::new(&settings);
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(i.to_string())).collect();
        let picks: Vec<usize> = (0..6)
            .map(|_| resources.choose(&dirs, LocalDirStrategy::RoundRobin))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        for d in &dirs[..2] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("f"), vec![0u8; 1000]).unwrap();
        }
        assert_eq!(resources.choose(&dirs, LocalDirStrategy::LeastUsed), 2);
        let random: std::collections::HashSet<usize> = (0..64)
            .map(|_| resources.choose(&dirs, LocalDirStrategy::Random))
            .collect();
        assert_eq!(random.len(), 3);
        assert_eq!("least-used".parse(), Ok(LocalDirStrategy::LeastUsed));
        assert!("fastest".parse::<LocalDirStrategy>().is_err());
    }

    #[test]
    fn open_databases_share_the_entry_cache_budget() {
        let settings = RocksDbSettings {
            local_dirs: Vec::new(),
            strategy: LocalDirStrategy::RoundRobin,
            block_cache_bytes: 1 << 20,
            write_buffer_bytes: 4 << 20,
            entry_cache_bytes: 1200,
            incremental: true,
        };
        let resources = Arc::new(Resources::new(&settings));
        let first = resources.open_database();
        assert_eq!(first.entry_cache_limit(), 1200);
        let second = resources.open_database();
        let third = resources.open_database();
        assert_eq!(first.entry_cache_limit(), 400);
        drop((second, third));
        assert_eq!(first.entry_cache_limit(), 1200);
    }

    #[test]
    fn a_local_dir_is_removed_when_dropped() {
        let root = tempfile::tempdir().unwrap();
        let dir = LocalDir::create(root.path(), "op/1", 3).unwrap();
        let path = dir.path().to_path_buf();
        std::fs::write(path.join("x"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}

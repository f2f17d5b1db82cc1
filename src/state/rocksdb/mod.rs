//! The RocksDB state backend: keyed state on local disk, larger than memory,
//! checkpointed incrementally (as Flink's `EmbeddedRocksDBStateBackend`).
//!
//! Built only with the cargo feature `rocksdb` (it compiles the bundled
//! RocksDB, which needs `libclang`). Each keyed operator subtask keeps its
//! state in its own RocksDB instance in a local working directory; keys carry
//! their key group first, so a key-group range is a key range (see
//! [`format`]). Values are msgpack (rmp-serde); list state appends through a
//! merge operator; map state keeps one entry per user key and iterates by
//! prefix. Timers stay on the heap (Flink's `state.backend.rocksdb.timer-service.factory: HEAP`)
//! and are checkpointed with the keyed state.
//!
//! **Memory** is bounded per job: one block cache (default
//! [`DEFAULT_BLOCK_CACHE_BYTES`]) and one write-buffer budget (default
//! [`DEFAULT_WRITE_BUFFER_BYTES`]) shared by every subtask of the job; index
//! and filter blocks live in the block cache. State may be many times larger
//! than that: it is on disk.
//!
//! **The entry cache** (default [`DEFAULT_ENTRY_CACHE_BYTES`] per job, shared
//! evenly by the job's open databases; 0 turns it off) keeps the serialised
//! values of value, reducing and aggregating state that were used recently,
//! and the writes to them, in front of the database, as Kafka Streams' record
//! cache does: a key updated again soon costs a hash lookup instead of a
//! RocksDB read and write. Dirty entries reach the database in one
//! `WriteBatch` when they are evicted (generationally, see `cache.rs`) and
//! before every snapshot and every iteration over keys, so checkpoints,
//! savepoints and `apply_to_keyed_state` see every write. List and map state
//! always go to the database.
//!
//! **Batched access.** A keyed operator reads its batch's keys first: for
//! every state with one value per key that the previous batch read, the
//! values the entry cache does not hold are read with one batched
//! `multi_get` (sorted keys) into the cache, and the batch's records then
//! find them there. With the entry cache off (0 bytes), the cache lives for
//! one batch: the batch's writes reach the database in one `WriteBatch` when
//! it ends, and the next batch reads the database again, so every record
//! still costs its share of a RocksDB read and write, as in Flink, but
//! batched.
//!
//! **Checkpoints** are incremental by default: at a snapshot the subtask takes
//! a RocksDB checkpoint (a flush and hard links, on the processing thread);
//! off the processing path it copies the SST files the checkpoint storage's
//! `shared/` directory does not hold yet and refers to the others. The runtime
//! counts references to shared files across retained checkpoints and deletes
//! those no retained checkpoint needs. A full snapshot (in the canonical
//! format of the heap backend, so either backend can read it) is taken when
//! incremental checkpoints are off, when the storage has no shared directory
//! (in-memory storage), and for savepoints.
//!
//! **Restore** copies the shared files (checking their size and CRC-32) into a
//! fresh local directory and opens the database; when the subtask's key-group
//! range differs from the snapshot's (rescaling), the key groups outside it
//! are dropped with range deletes, and the parts of further old databases are
//! ingested as SST files.
//!
//! ```no_run
//! # #[cfg(feature = "rocksdb")] {
//! use weir::state::{LocalDirStrategy, RocksDbBackend};
//! use weir::StreamEnv;
//! let env = StreamEnv::with_parallelism(2);
//! env.set_state_backend(
//!     RocksDbBackend::new()
//!         .with_local_dirs(["/mnt/ssd1/weir", "/mnt/ssd2/weir"])
//!         .with_dir_strategy(LocalDirStrategy::LeastUsed)
//!         .with_block_cache_bytes(64 << 20),
//! );
//! # }
//! ```

mod cache;
mod checkpoint;
mod db;
mod dirs;
mod expiry;
pub(crate) mod format;
mod scan;
mod table;

use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use checkpoint::{
    open_database, read_handle, RocksSnapshot, WrittenSnapshot, HANDLE_BACKEND,
};
pub(crate) use db::RocksKeyedDb;
pub(crate) use db::SnapshotSite;
pub use dirs::LocalDirStrategy;
pub(crate) use expiry::FormChange;
pub(crate) use table::RocksTable;
#[doc(hidden)]
pub use table::RocksTableRef;

use super::StateBackend;

/// Default size of a job's block cache: 128 MiB.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 128 << 20;
/// Default budget of a job's write buffers (memtables): 64 MiB.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 64 << 20;
/// Default size of a job's entry cache: 32 MiB.
pub const DEFAULT_ENTRY_CACHE_BYTES: usize = 32 << 20;

/// The RocksDB state backend and its settings (`state.backend = "rocksdb"`).
///
/// Cloning shares the job's block cache and write-buffer budget.
#[derive(Clone)]
pub struct RocksDbBackend {
    pub(crate) settings: Arc<RocksDbSettings>,
    pub(crate) resources: Arc<dirs::Resources>,
}

/// What a [`RocksDbBackend`] is configured with.
#[derive(Clone, Debug)]
pub(crate) struct RocksDbSettings {
    pub local_dirs: Vec<PathBuf>,
    pub strategy: LocalDirStrategy,
    pub block_cache_bytes: usize,
    pub write_buffer_bytes: usize,
    pub entry_cache_bytes: usize,
    pub incremental: bool,
}

impl Default for RocksDbBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RocksDbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbBackend")
            .field("local_dirs", &self.settings.local_dirs)
            .field("strategy", &self.settings.strategy)
            .field("block_cache_bytes", &self.settings.block_cache_bytes)
            .field("write_buffer_bytes", &self.settings.write_buffer_bytes)
            .field("entry_cache_bytes", &self.settings.entry_cache_bytes)
            .field("incremental", &self.settings.incremental)
            .finish()
    }
}

impl RocksDbBackend {
    /// The backend with its defaults: one local directory (`weir-rocksdb` in
    /// the system's temporary directory), round-robin placement, a 128 MiB
    /// block cache, 64 MiB of write buffers, a 32 MiB entry cache,
    /// incremental checkpoints.
    pub fn new() -> Self {
        Self::with_settings(RocksDbSettings {
            local_dirs: vec![std::env::temp_dir().join("weir-rocksdb")],
            strategy: LocalDirStrategy::RoundRobin,
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            write_buffer_bytes: DEFAULT_WRITE_BUFFER_BYTES,
            entry_cache_bytes: DEFAULT_ENTRY_CACHE_BYTES,
            incremental: true,
        })
    }

    fn with_settings(settings: RocksDbSettings) -> Self {
        let resources = Arc::new(dirs::Resources::new(&settings));
        RocksDbBackend {
            settings: Arc::new(settings),
            resources,
        }
    }

    fn change(self, f: impl FnOnce(&mut RocksDbSettings)) -> Self {
        let mut settings = (*self.settings).clone();
        f(&mut settings);
        Self::with_settings(settings)
    }

    /// The local working directories (Flink's `state.backend.rocksdb.localdir`);
    /// each subtask's database goes into one of them.
    pub fn with_local_dirs<P: Into<PathBuf>>(self, dirs: impl IntoIterator<Item = P>) -> Self {
        let dirs: Vec<PathBuf> = dirs.into_iter().map(Into::into).collect();
        self.change(|s| {
            if !dirs.is_empty() {
                s.local_dirs = dirs;
            }
        })
    }

    /// How subtasks are placed on the local directories.
    pub fn with_dir_strategy(self, strategy: LocalDirStrategy) -> Self {
        self.change(|s| s.strategy = strategy)
    }

    /// The size of the job's block cache, shared by all its subtasks.
    pub fn with_block_cache_bytes(self, bytes: usize) -> Self {
        self.change(|s| s.block_cache_bytes = bytes.max(1 << 20))
    }

    /// The job's budget for write buffers (memtables), shared by all its subtasks.
    pub fn with_write_buffer_bytes(self, bytes: usize) -> Self {
        self.change(|s| s.write_buffer_bytes = bytes.max(4 << 20))
    }

    /// The job's entry cache, shared evenly by its keyed subtasks: a
    /// write-back cache of the serialised values of value, reducing and
    /// aggregating state (see the module documentation); 0 turns it off.
    pub fn with_entry_cache_bytes(self, bytes: usize) -> Self {
        self.change(|s| s.entry_cache_bytes = bytes)
    }

    /// Incremental checkpoints (the default) or full ones.
    pub fn with_incremental_checkpoints(self, incremental: bool) -> Self {
        self.change(|s| s.incremental = incremental)
    }

    /// The local working directories.
    pub fn local_dirs(&self) -> &[PathBuf] {
        &self.settings.local_dirs
    }

    /// Whether checkpoints are incremental.
    pub fn incremental_checkpoints(&self) -> bool {
        self.settings.incremental
    }
}

impl StateBackend for RocksDbBackend {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn keyed_backend(&self) -> super::KeyedBackend {
        super::KeyedBackend::RocksDb(self.clone())
    }
}

/// The RocksDB backend as the environment configures it (see
/// [`backend_from_config`](crate::state::backend_from_config)); an error
/// names the variable and the value.
pub(crate) fn from_environment() -> Result<RocksDbBackend, String> {
    from_settings(&|name| std::env::var(name).ok())
}

/// The RocksDB backend from settings looked up by their environment variable
/// names (`WEIR_ROCKSDB_*`): the process environment, or the resolved
/// configuration (`[rocksdb]` in `weir.toml`).
pub(crate) fn from_settings(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<RocksDbBackend, String> {
    let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    fn megabytes(name: &str, value: &str) -> Result<usize, String> {
        value
            .trim()
            .parse::<usize>()
            .map(|mb| mb << 20)
            .map_err(|e| format!("{name}={value:?}: {e} (a number of MiB)"))
    }
    let mut backend = RocksDbBackend::new();
    if let Some(dirs) = var("WEIR_ROCKSDB_LOCAL_DIRS") {
        backend = backend.with_local_dirs(
            dirs.split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        );
    }
    if let Some(strategy) = var("WEIR_ROCKSDB_DIR_STRATEGY") {
        let strategy = strategy
            .parse()
            .map_err(|e| format!("WEIR_ROCKSDB_DIR_STRATEGY: {e}"))?;
        backend = backend.with_dir_strategy(strategy);
    }
    if let Some(mb) = var("WEIR_ROCKSDB_BLOCK_CACHE_MB") {
        backend = backend.with_block_cache_bytes(megabytes("WEIR_ROCKSDB_BLOCK_CACHE_MB", &mb)?);
    }
    if let Some(mb) = var("WEIR_ROCKSDB_WRITE_BUFFER_MB") {
        backend = backend.with_write_buffer_bytes(megabytes("WEIR_ROCKSDB_WRITE_BUFFER_MB", &mb)?);
    }
    if let Some(mb) = var("WEIR_ROCKSDB_ENTRY_CACHE_MB") {
        backend = backend.with_entry_cache_bytes(megabytes("WEIR_ROCKSDB_ENTRY_CACHE_MB", &mb)?);
    }
    if let Some(incremental) = var("WEIR_ROCKSDB_INCREMENTAL") {
        let incremental = incremental.trim().parse::<bool>().map_err(|_| {
            format!("WEIR_ROCKSDB_INCREMENTAL={incremental:?}: expected \"true\" or \"false\"")
        })?;
        backend = backend.with_incremental_checkpoints(incremental);
    }
    Ok(backend)
}

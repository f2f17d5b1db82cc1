//! Snapshots of a subtask's database, full (canonical) or incremental (shared
//! SST files), and restoring a database from them.
//!
//! The synchronous part of a snapshot is a RocksDB checkpoint: the memtables
//! are flushed and the live files hard-linked into a directory beside the
//! database, which then no longer changes. Everything else runs off the
//! processing path, on that directory:
//! - **incremental**: every SST file not in the shared directory yet is copied
//!   there (under a name unique to this database instance) with its size and
//!   CRC-32; the handle lists every SST file the checkpoint needs and carries
//!   the small files (`MANIFEST`, `CURRENT`, `OPTIONS`) inline;
//! - **full**: the checkpoint is opened read-only and every state of every key
//!   group written in the canonical format of the heap backend.

use crate::runtime::codec;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rocksdb::checkpoint::Checkpoint;
use rocksdb::{Options, SstFileWriter, DB};
use serde::{Deserialize, Serialize};
use weir_actors::location;
use weir_actors::snapshot::{KeyedStateHandle, SharedFile};

use super::db::{db_options, relevant, RocksKeyedDb, SnapshotSite};
use super::dirs::{local_error, LocalDir};
use super::expiry;
use super::format::{self, CanonicalWriter, META_PREFIX};
use super::scan::{total_order_read, GroupScan};
use super::RocksDbBackend;
use crate::keys::KeyGroupRange;
use crate::state::ttl::{DowntimePolicy, TtlSettings, TtlTime};
use crate::state::{StateBytes, StateError, StateKind};

/// The `backend` of the handles this backend writes.
pub(crate) const HANDLE_BACKEND: &str = "rocksdb";

/// What an incremental handle carries besides its shared files.
#[derive(Serialize, Deserialize)]
struct HandleData {
    /// The checkpoint's files that are not SST files: (name, contents).
    private: Vec<(String, Vec<u8>)>,
    /// (local SST file name, shared file name).
    sst: Vec<(String, String)>,
}

/// The synchronous part of a snapshot: a RocksDB checkpoint on local disk.
/// A state as a snapshot found it registered: with its TTL settings and the
/// time its expiries are compared with, if it has a time to live.
struct RegisteredState {
    name: String,
    kind: StateKind,
    type_name: String,
    ttl: Option<(crate::state::ttl::TtlSettings, i64)>,
}

pub(crate) struct RocksSnapshot {
    dir: PathBuf,
    range: KeyGroupRange,
    site: Arc<SnapshotSite>,
    options: Options,
    registry: Vec<RegisteredState>,
    full: bool,
}

/// What the asynchronous part of a snapshot produced.
pub(crate) enum WrittenSnapshot {
    /// Canonical bytes per key group.
    Full(BTreeMap<usize, Vec<StateBytes>>),
    /// A handle over the subtask's key-group range.
    Incremental(KeyedStateHandle),
}

impl Drop for RocksSnapshot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl RocksKeyedDb {
    /// Takes the synchronous part of a snapshot (`full`: canonical, as for a savepoint).
    pub(crate) fn snapshot(
        &self,
        checkpoint_id: u64,
        full: bool,
    ) -> Result<RocksSnapshot, StateError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.flush_cache()?;
        let dir = self.local_dir().join(format!(
            "chk-{checkpoint_id}-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let checkpoint = Checkpoint::new(self.db())
            .and_then(|c| c.create_checkpoint(&dir))
            .map_err(|e| {
                self.error(
                    &format!("cannot take a local checkpoint in {}", dir.display()),
                    e,
                )
            });
        if let Err(e) = checkpoint {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        let mut registry = Vec::with_capacity(self.registry().len());
        for (name, registration) in self.registry() {
            // A state with a time to live: what expired by now stays out of
            // a full snapshot.
            let ttl = self.stored_ttl(name)?.map(|settings| {
                let now = match (settings.time, settings.downtime, settings.clock_ms) {
                    // The state's own clock, behind processing time. (As the
                    // store recorded it for this snapshot; a restored state
                    // not opened since keeps the clock of its snapshot, which
                    // leaves in what expired since: never too much.)
                    (TtlTime::ProcessingTime, DowntimePolicy::PauseDuringDowntime, Some(clock)) => {
                        clock
                    }
                    // Event time: never below the watermark recorded.
                    (TtlTime::EventTime, _, clock) => self
                        .ttl_now(TtlTime::EventTime)
                        .max(clock.unwrap_or(i64::MIN)),
                    // Else the clock of now, also for restored states that
                    // no descriptor opened since (their recorded clock is
                    // their snapshot's).
                    (time, _, _) => self.ttl_now(time),
                };
                (settings, now)
            });
            registry.push(RegisteredState {
                name: name.clone(),
                kind: registration.kind,
                type_name: registration.type_name.clone(),
                ttl,
            });
        }
        registry.sort_by(|a, b| a.name.cmp(&b.name));
        let site = self.site.clone();
        let full = full || !site.incremental || site.shared_dir.is_none();
        Ok(RocksSnapshot {
            dir,
            range: self.range(),
            site,
            options: self.options().clone(),
            registry,
            full,
        })
    }
}

impl RocksSnapshot {
    /// The asynchronous part: uploads (incremental) or serialises (full).
    pub(crate) fn write(self) -> Result<WrittenSnapshot, StateError> {
        if self.full {
            self.write_full().map(WrittenSnapshot::Full)
        } else {
            self.write_incremental().map(WrittenSnapshot::Incremental)
        }
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> StateError {
        StateError::Backend(format!(
            "RocksDB snapshot of {}: {what}: {e}",
            self.site.describe
        ))
    }

    fn write_full(&self) -> Result<BTreeMap<usize, Vec<StateBytes>>, StateError> {
        let db = DB::open_for_read_only(&self.options, &self.dir, false).map_err(|e| {
            self.error(
                &format!("cannot open the local checkpoint {}", self.dir.display()),
                e,
            )
        })?;
        let mut groups: BTreeMap<usize, Vec<StateBytes>> = BTreeMap::new();
        let mut scan = GroupScan::new(&db, false);
        for group in self.range.start..self.range.end {
            for RegisteredState {
                name,
                kind,
                type_name,
                ttl,
            } in &self.registry
            {
                scan.seek(group, name);
                let mut writer = CanonicalWriter::new(*kind);
                let corrupt = |cause| StateError::Corrupt {
                    name: name.clone(),
                    group,
                    cause,
                };
                while let Some((suffix, value)) = scan.entry() {
                    let value = match ttl {
                        Some((_, now)) => {
                            match expiry::unexpired(*kind, value, *now).map_err(corrupt)? {
                                Some(live) => live,
                                None => {
                                    scan.next();
                                    continue;
                                }
                            }
                        }
                        None => std::borrow::Cow::Borrowed(value),
                    };
                    writer.add(suffix, &value).map_err(corrupt)?;
                    scan.next();
                }
                scan.status()
                    .map_err(|e| self.error(&format!("cannot read state `{name}`"), e))?;
                if let Some(entries) = writer.finish() {
                    groups.entry(group).or_default().push(StateBytes {
                        name: name.clone(),
                        kind: *kind,
                        type_name: type_name.clone(),
                        entries,
                        ttl: ttl.map(|(settings, _)| settings),
                    });
                }
            }
        }
        Ok(groups)
    }

    fn write_incremental(&self) -> Result<KeyedStateHandle, StateError> {
        let Some(shared_dir) = self.site.shared_dir.clone() else {
            return Err(self.error(
                "incremental snapshot",
                "the checkpoint storage has no shared directory",
            ));
        };
        location::create_dir_all(&shared_dir)
            .map_err(|e| self.error(&format!("cannot create {}", shared_dir.display()), e))?;
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .map_err(|e| self.error(&format!("cannot list {}", self.dir.display()), e))?;
        names.sort();
        let mut uploaded = self.site.uploaded.lock().unwrap_or_else(|p| p.into_inner());
        let mut data = HandleData {
            private: Vec::new(),
            sst: Vec::new(),
        };
        let mut shared = Vec::new();
        for name in &names {
            let path = self.dir.join(name);
            if !name.ends_with(".sst") {
                let bytes = fs::read(&path)
                    .map_err(|e| self.error(&format!("cannot read {}", path.display()), e))?;
                data.private.push((name.clone(), bytes));
                continue;
            }
            let file = match uploaded.get(name) {
                // Uploaded before and still there (an error asking: upload again).
                Some(file) if location::exists(&shared_dir.join(&file.name)).unwrap_or(false) => {
                    file.clone()
                }
                _ => {
                    let shared_name = format!("{}-{name}", self.site.instance);
                    let file = upload(&path, &shared_dir, &shared_name).map_err(|e| {
                        self.error(
                            &format!(
                                "cannot upload {} to {}",
                                path.display(),
                                shared_dir.display()
                            ),
                            e,
                        )
                    })?;
                    uploaded.insert(name.clone(), file.clone());
                    file
                }
            };
            data.sst.push((name.clone(), file.name.clone()));
            shared.push(file);
        }
        // Files compacted away are never needed again by this instance.
        uploaded.retain(|local, _| names.contains(local));
        drop(uploaded);
        let data = codec::encode(&data).map_err(|e| StateError::Encode {
            name: "RocksDB handle".into(),
            cause: e.to_string(),
        })?;
        Ok(KeyedStateHandle {
            start: self.range.start,
            end: self.range.end,
            backend: HANDLE_BACKEND.to_string(),
            shared_dir,
            shared,
            data,
        })
    }
}

/// Copies the local file `path` into the shared directory `dir` as `name`
/// (locally through a temporary file and a rename; on an object store by one
/// PUT, whole or absent) and returns what the handle records of it.
fn upload(path: &Path, dir: &Path, name: &str) -> std::io::Result<SharedFile> {
    if location::is_object_url(dir) {
        let bytes = fs::read(path)?;
        location::write(&dir.join(name), &bytes)?;
        return Ok(SharedFile {
            name: name.to_string(),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
        });
    }
    let temp = dir.join(format!("{name}.inprogress"));
    let (size, crc32) = copy_with_crc(path, &temp)?;
    fs::rename(&temp, dir.join(name))?;
    Ok(SharedFile {
        name: name.to_string(),
        size,
        crc32,
    })
}

fn copy_with_crc(from: &Path, to: &Path) -> std::io::Result<(u64, u32)> {
    let mut input = fs::File::open(from)?;
    let mut output = fs::File::create(to)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    output.sync_all()?;
    Ok((size, hasher.finalize()))
}

/// Copies the files of `handle` into `dir` (created), checking each shared file.
fn download(handle: &KeyedStateHandle, dir: &Path) -> Result<(), StateError> {
    let data: HandleData = codec::decode(&handle.data).map_err(|e| {
        StateError::Backend(format!(
            "the RocksDB snapshot of key groups {}..{} is unreadable: {e}",
            handle.start, handle.end
        ))
    })?;
    fs::create_dir_all(dir).map_err(|e| local_error(dir, "cannot create", e))?;
    let files: HashMap<&str, &SharedFile> =
        handle.shared.iter().map(|f| (f.name.as_str(), f)).collect();
    for (local, shared_name) in &data.sst {
        let source = handle.shared_dir.join(shared_name);
        let Some(expected) = files.get(shared_name.as_str()) else {
            return Err(StateError::Backend(format!(
                "the RocksDB snapshot of key groups {}..{} refers to {} but does not list it",
                handle.start,
                handle.end,
                source.display()
            )));
        };
        let target = dir.join(local);
        let copied = if location::is_object_url(&source) {
            location::read(&source).and_then(|bytes| {
                fs::write(&target, &bytes)?;
                Ok((bytes.len() as u64, crc32fast::hash(&bytes)))
            })
        } else {
            copy_with_crc(&source, &target)
        };
        let (size, crc32) = copied.map_err(|e| {
            StateError::Backend(if e.kind() == std::io::ErrorKind::NotFound {
                format!("shared state file {} is missing (needed by the RocksDB snapshot of key groups {}..{})", source.display(), handle.start, handle.end)
            } else {
                format!("cannot copy shared state file {} to {}: {e}", source.display(), target.display())
            })
        })?;
        if size != expected.size || crc32 != expected.crc32 {
            return Err(StateError::Backend(format!(
                "shared state file {} is corrupt: expected {} bytes with CRC-32 {:08x}, found {size} bytes with CRC-32 {crc32:08x}",
                source.display(),
                expected.size,
                expected.crc32
            )));
        }
    }
    for (name, bytes) in &data.private {
        if name.contains('/') || name.contains("..") {
            return Err(StateError::Backend(format!(
                "the RocksDB snapshot names a file {name:?}"
            )));
        }
        let path = dir.join(name);
        fs::write(&path, bytes).map_err(|e| local_error(&path, "cannot write", e))?;
    }
    Ok(())
}

/// The keyed state an incremental snapshot's `handle` holds, in the
/// canonical format (per key group, as a full snapshot writes it): the
/// handle's files are copied into a temporary working directory under
/// `work_root`, opened, read, and removed (`weir query` on an incremental
/// checkpoint). Entries expired as of now are left out, as from a full
/// snapshot.
pub(crate) fn read_handle(
    handle: &KeyedStateHandle,
    uid: &str,
    work_root: &Path,
) -> Result<BTreeMap<usize, Vec<StateBytes>>, StateError> {
    let backend = RocksDbBackend::new().with_local_dirs([work_root.to_path_buf()]);
    // No shared directory: the snapshot below is a full one.
    let site = Arc::new(SnapshotSite::new(&backend, None, uid, 0));
    let range = KeyGroupRange {
        start: handle.start,
        end: handle.end,
    };
    let db = open_database(&backend, site, uid, 0, range, std::slice::from_ref(handle))?;
    match db.snapshot(0, true)?.write()? {
        WrittenSnapshot::Full(groups) => Ok(groups),
        WrittenSnapshot::Incremental(_) => Err(StateError::Backend(
            "a full snapshot of a restored database came out incremental".into(),
        )),
    }
}

/// Opens a subtask's database: from the handles that cover its key groups
/// (rescaled if need be), else empty.
pub(crate) fn open_database(
    backend: &RocksDbBackend,
    site: Arc<SnapshotSite>,
    uid: &str,
    subtask: usize,
    range: KeyGroupRange,
    handles: &[KeyedStateHandle],
) -> Result<RocksKeyedDb, StateError> {
    let settings = &backend.settings;
    let root = &settings.local_dirs[backend
        .resources
        .choose(&settings.local_dirs, settings.strategy)];
    let dir = LocalDir::create(root, uid, subtask)?;
    let mut relevant = relevant(handles, range);
    // The handle that holds most of the range becomes the database; the others are ingested.
    relevant.sort_by_key(|h| {
        std::cmp::Reverse(
            h.end
                .min(range.end)
                .saturating_sub(h.start.max(range.start)),
        )
    });
    let Some((base, others)) = relevant.split_first() else {
        return RocksKeyedDb::open_in(backend, dir, range, site);
    };
    download(base, &dir.path().join("db"))?;
    if Some(&base.shared_dir) == site.shared_dir.as_ref() {
        // The files are in this job's shared directory already: later
        // checkpoints refer to them instead of uploading them again.
        let data: HandleData =
            codec::decode(&base.data).map_err(|e| StateError::Backend(e.to_string()))?;
        let files: HashMap<&str, &SharedFile> =
            base.shared.iter().map(|f| (f.name.as_str(), f)).collect();
        let mut uploaded = site.uploaded.lock().unwrap_or_else(|p| p.into_inner());
        for (local, shared_name) in data.sst {
            if let Some(file) = files.get(shared_name.as_str()) {
                uploaded.insert(local, (*file).clone());
            }
        }
    }
    let mut db = RocksKeyedDb::open_in(backend, dir, range, site)?;
    db.delete_outside((base.start, base.end))?;
    for (i, other) in others.iter().enumerate() {
        ingest(&mut db, backend, other, i)?;
    }
    Ok(db)
}

/// Adds the key groups of `handle` that `db` owns, through an SST file.
fn ingest(
    db: &mut RocksKeyedDb,
    backend: &RocksDbBackend,
    handle: &KeyedStateHandle,
    i: usize,
) -> Result<(), StateError> {
    let range = db.range();
    let temp = db.local_dir().join(format!("import-{i}"));
    download(handle, &temp)?;
    let options = db_options(backend);
    let source = DB::open_for_read_only(&options, &temp, false).map_err(|e| {
        db.error(
            &format!("cannot open the restored snapshot in {}", temp.display()),
            e,
        )
    })?;
    let (lo, hi) = (handle.start.max(range.start), handle.end.min(range.end));
    // Across key groups: not a prefix seek (see `db_options`).
    let mut read = total_order_read(false);
    read.set_iterate_upper_bound(format::group_start(hi).to_vec());
    let mut iter = source.raw_iterator_opt(read);
    iter.seek(format::group_start(lo));
    let sst = db.local_dir().join(format!("import-{i}.sst"));
    let mut writer = SstFileWriter::create(&options);
    writer
        .open(&sst)
        .map_err(|e| db.error(&format!("cannot create {}", sst.display()), e))?;
    let mut entries = 0u64;
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        writer
            .put(key, value)
            .map_err(|e| db.error("cannot write an ingested entry", e))?;
        entries += 1;
        iter.next();
    }
    iter.status()
        .map_err(|e| db.error("cannot read a restored snapshot", e))?;
    drop(iter);
    // Registrations and TTL settings of states this database does not know yet.
    let mut registrations = Vec::new();
    let mut ttl_settings = Vec::new();
    let mut meta = source.raw_iterator_opt(total_order_read(false));
    meta.seek(META_PREFIX);
    while let (Some(key), Some(value)) = (meta.key(), meta.value()) {
        if let Some(name) = key.strip_prefix(&format::TTL_META_PREFIX[..]) {
            let settings: TtlSettings = codec::decode(value)
                .map_err(|e| db.error("unreadable TTL settings in a restored snapshot", e))?;
            ttl_settings.push((String::from_utf8_lossy(name).into_owned(), settings));
            meta.next();
            continue;
        }
        let Some(name) = key.strip_prefix(&META_PREFIX[..]) else {
            break;
        };
        let registration = super::db::Registration::decode(value)
            .map_err(|e| db.error("unreadable state registration in a restored snapshot", e))?;
        registrations.push((String::from_utf8_lossy(name).into_owned(), registration));
        meta.next();
    }
    drop(meta);
    drop(source);
    if entries > 0 {
        writer
            .finish()
            .map_err(|e| db.error(&format!("cannot finish {}", sst.display()), e))?;
        db.db()
            .ingest_external_file(vec![&sst])
            .map_err(|e| db.error(&format!("cannot ingest {}", sst.display()), e))?;
    }
    drop(writer);
    for (name, r) in registrations {
        db.record_registration(&name, r.kind, &r.type_name)?;
    }
    for (name, settings) in ttl_settings {
        if db.stored_ttl(&name)?.is_none() {
            db.restore_ttl_settings(&name, settings)?;
        }
    }
    let _ = fs::remove_file(&sst);
    fs::remove_dir_all(&temp).map_err(|e| local_error(&temp, "cannot remove", e))?;
    Ok(())
}

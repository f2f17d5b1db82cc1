//! Snapshot lineage: which checkpoints and savepoints make up one job's
//! history, and which of them `latest` means.
//!
//! A job that starts fresh begins a *lineage*, named by the id of that run;
//! every later run of the same job (by name) restored from one of its
//! snapshots continues it. A lineage
//! lives in one directory under the checkpoint directory, and checkpoint ids
//! go on counting across runs (as Flink's do), so within a lineage the
//! highest id is the newest snapshot, whatever the clocks say:
//!
//! ```text
//! <checkpoint dir>/<lineage>/_lineage     the record: job, generation, newest snapshot
//! <checkpoint dir>/<lineage>/chk-<n>/     its checkpoints (and shared/, taskowned/)
//! <checkpoint dir>/<job>.lock             held while a job of that name runs here
//! ```
//!
//! The record names the newest complete snapshot (a checkpoint here, or a
//! savepoint wherever it was written), updated after each `_metadata` is
//! written and before anyone is told the snapshot completed. `latest` is that
//! snapshot, or a newer checkpoint of the current run whose `_metadata` made
//! it to disk before the record did. If it cannot be read, resuming `latest`
//! fails naming it: an older snapshot is used only when named explicitly.
//!
//! Several lineages of one job name exist when the job was started fresh
//! again; each start makes its lineage the current one (the highest
//! *generation*), and `latest` follows the current one.

use crate::codec;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::checkpoint::format::{decode, encode, FileKind};
use crate::checkpoint::layout::CheckpointPaths;
use crate::location;

/// The record's file name in a lineage directory.
pub const LINEAGE_FILE: &str = "_lineage";
/// The version of [`LineageRecord`] written now.
pub const LINEAGE_VERSION: u32 = 1;

/// One complete snapshot of a lineage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// Its checkpoint id.
    pub id: u64,
    /// Whether it is a savepoint.
    pub savepoint: bool,
    /// Its directory; `None` for `chk-<id>` in the lineage's own directory
    /// (so a checkpoint directory can be moved as a whole).
    pub location: Option<PathBuf>,
}

impl SnapshotRef {
    /// A checkpoint in the lineage's own directory.
    pub fn checkpoint(id: u64) -> Self {
        SnapshotRef {
            id,
            savepoint: false,
            location: None,
        }
    }

    /// Its directory, given the lineage's (`None`: an in-memory checkpoint).
    pub fn dir(&self, lineage_dir: Option<&Path>) -> Option<PathBuf> {
        match &self.location {
            Some(path) => Some(path.clone()),
            None => lineage_dir.map(|d| CheckpointPaths::of_job_dir(d).checkpoint_dir(self.id)),
        }
    }

    /// "checkpoint 7" or "savepoint 7".
    pub fn describe(&self) -> String {
        let kind = if self.savepoint {
            "savepoint"
        } else {
            "checkpoint"
        };
        format!("{kind} {}", self.id)
    }
}

/// What a lineage directory records about its lineage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageRecord {
    /// [`LINEAGE_VERSION`] when written.
    pub version: u32,
    /// The lineage's id (its directory's name).
    pub lineage: String,
    /// The name of the job whose history it is.
    pub job_name: String,
    /// Raised by every run that starts it: among the lineages of one job name
    /// under a checkpoint directory, the highest generation is the current one.
    pub generation: u64,
    /// The first checkpoint id of the newest run: checkpoint directories from
    /// this id on belong to it (lower ones to earlier runs, or to a branch a
    /// restore from an older snapshot left behind).
    pub branch_start: u64,
    /// The newest complete snapshot.
    pub latest: Option<SnapshotRef>,
    /// The snapshot of another job (or lineage) it was started from, if any.
    #[serde(default)]
    pub parent: Option<SnapshotRef>,
}

impl LineageRecord {
    /// The record's file bytes.
    pub fn encode(&self) -> Result<Vec<u8>, LineageError> {
        let payload = codec::encode(self).map_err(|e| LineageError::Encode(e.to_string()))?;
        Ok(encode(FileKind::Lineage, &payload))
    }

    /// Reads a record file's bytes (`what` names the file in errors).
    pub fn decode(bytes: &[u8], what: &Path) -> Result<Self, LineageError> {
        let shown = what.display().to_string();
        let payload =
            decode(bytes, FileKind::Lineage, &shown).map_err(|e| LineageError::Unreadable {
                path: what.to_path_buf(),
                cause: e.to_string(),
            })?;
        codec::decode(payload).map_err(|e| LineageError::Unreadable {
            path: what.to_path_buf(),
            cause: format!("cannot decode: {e}"),
        })
    }

    /// Reads the record of the lineage directory `dir`.
    pub fn read(dir: &Path) -> Result<Self, LineageError> {
        let path = dir.join(LINEAGE_FILE);
        let bytes = location::read(&path).map_err(|e| LineageError::Unreadable {
            path: path.clone(),
            cause: e.to_string(),
        })?;
        Self::decode(&bytes, &path)
    }

    /// Writes the record into the lineage directory `dir` (atomically).
    pub fn write(&self, dir: &Path) -> Result<(), LineageError> {
        location::write_atomically(&dir.join(LINEAGE_FILE), &self.encode()?)
            .map_err(|e| LineageError::Write(e.to_string()))
    }
}

/// Why a lineage could not be read, resolved or recorded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum LineageError {
    /// A lineage record that does not read.
    #[error("lineage record {}: {cause}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        cause: String,
    },
    /// Two lineages of the job claim to be current.
    #[error("job `{job}` has {count} current lineages under {}: {lineages}; resume one by naming its snapshot", root.display())]
    Ambiguous {
        /// The job.
        job: String,
        /// The checkpoint directory.
        root: PathBuf,
        /// How many.
        count: usize,
        /// Their directories.
        lineages: String,
    },
    /// The record cannot be encoded.
    #[error("cannot encode a lineage record: {0}")]
    Encode(String),
    /// The record cannot be written.
    #[error("cannot write the lineage record: {0}")]
    Write(String),
    /// The checkpoint directory cannot be listed.
    #[error("cannot list {}: {cause}", path.display())]
    List {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        cause: String,
    },
}

/// What a lineage directory holds, as listed (no `_metadata` is read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineageDir {
    /// The directory.
    pub dir: PathBuf,
    /// Its record.
    pub record: LineageRecord,
    /// Ids of the `chk-<n>` directories holding a `_metadata` file.
    pub with_metadata: Vec<u64>,
    /// Ids of the `chk-<n>` directories without one (unfinished or damaged).
    pub without_metadata: Vec<u64>,
}

impl LineageDir {
    /// Lists the lineage directory `dir`.
    pub fn scan(dir: &Path) -> Result<Self, LineageError> {
        let record = LineageRecord::read(dir)?;
        let ids = CheckpointPaths::of_job_dir(dir)
            .checkpoint_ids()
            .map_err(|e| LineageError::List {
                path: dir.to_path_buf(),
                cause: e.to_string(),
            })?;
        let (with, without): (Vec<_>, Vec<_>) = ids.into_iter().partition(|&(_, m)| m);
        let with_metadata = with.into_iter().map(|(id, _)| id).collect();
        let without_metadata = without.into_iter().map(|(id, _)| id).collect();
        Ok(LineageDir {
            dir: dir.to_path_buf(),
            record,
            with_metadata,
            without_metadata,
        })
    }

    /// The newest complete snapshot: the record's, or a newer checkpoint of
    /// the current run whose `_metadata` was written before the record was.
    pub fn newest(&self) -> Option<SnapshotRef> {
        let recorded = self.record.latest.clone();
        let on_disk = self
            .with_metadata
            .iter()
            .copied()
            .filter(|&id| id >= self.record.branch_start)
            .max();
        match (recorded, on_disk) {
            (Some(r), Some(id)) if id > r.id => Some(SnapshotRef::checkpoint(id)),
            (None, Some(id)) => Some(SnapshotRef::checkpoint(id)),
            (recorded, _) => recorded,
        }
    }

    /// The highest checkpoint id used in this lineage so far (0: none).
    pub fn highest_id(&self) -> u64 {
        let dirs = self
            .with_metadata
            .iter()
            .chain(&self.without_metadata)
            .copied()
            .max()
            .unwrap_or(0);
        let recorded = self.record.latest.as_ref().map_or(0, |s| s.id);
        dirs.max(recorded)
            .max(self.record.branch_start.saturating_sub(1))
    }

    /// Complete checkpoints older than `id` in this directory, newest first
    /// (for an error message that says what could be named instead).
    pub fn older_than(&self, id: u64) -> Vec<PathBuf> {
        let paths = CheckpointPaths::of_job_dir(&self.dir);
        self.with_metadata
            .iter()
            .rev()
            .filter(|&&i| i < id)
            .map(|&i| paths.checkpoint_dir(i))
            .collect()
    }
}

/// Every lineage directory under the checkpoint directory `root` (a missing
/// root has none). Directories without a record are not lineages.
pub fn scan_root(root: &Path) -> Result<Vec<LineageDir>, LineageError> {
    let entries = match location::list(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LineageError::List {
                path: root.to_path_buf(),
                cause: e.to_string(),
            })
        }
    };
    let mut found = Vec::new();
    for entry in entries.iter().filter(|e| e.is_dir) {
        let dir = root.join(&entry.name);
        let record = dir.join(LINEAGE_FILE);
        let is_lineage = location::exists(&record).map_err(|e| LineageError::Unreadable {
            path: record,
            cause: e.to_string(),
        })?;
        if is_lineage {
            found.push(LineageDir::scan(&dir)?);
        }
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(found)
}

/// The current lineage of job `job` among `lineages` (the highest
/// generation), if it has any; two with the same highest generation are an
/// error.
pub fn current<'a>(
    job: &str,
    root: &Path,
    lineages: &'a [LineageDir],
) -> Result<Option<&'a LineageDir>, LineageError> {
    let mine: Vec<&LineageDir> = lineages
        .iter()
        .filter(|l| l.record.job_name == job)
        .collect();
    let Some(top) = mine.iter().map(|l| l.record.generation).max() else {
        return Ok(None);
    };
    let tops: Vec<&&LineageDir> = mine.iter().filter(|l| l.record.generation == top).collect();
    match tops.as_slice() {
        [one] => Ok(Some(one)),
        many => Err(LineageError::Ambiguous {
            job: job.to_string(),
            root: root.to_path_buf(),
            count: many.len(),
            lineages: many
                .iter()
                .map(|l| l.dir.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The generation a lineage of `job` gets when a run starts it, so that it
/// becomes the current one.
pub fn next_generation(job: &str, lineages: &[LineageDir], starting: &str) -> u64 {
    lineages
        .iter()
        .filter(|l| l.record.job_name == job && l.record.lineage != starting)
        .map(|l| l.record.generation)
        .max()
        .map_or(1, |g| g + 1)
}

/// The lineage of a running job: its id, its directory (none for in-memory
/// checkpoints) and its record, kept up to date as snapshots complete.
#[derive(Debug)]
pub struct Lineage {
    dir: Option<PathBuf>,
    record: Mutex<LineageRecord>,
}

impl Lineage {
    /// A lineage whose record lives in `dir` (written already), or only in
    /// memory with `dir` `None`.
    pub fn new(record: LineageRecord, dir: Option<PathBuf>) -> Self {
        Lineage {
            dir,
            record: Mutex::new(record),
        }
    }

    fn record(&self) -> std::sync::MutexGuard<'_, LineageRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lineage's id.
    pub fn id(&self) -> String {
        self.record().lineage.clone()
    }

    /// Its directory, for a lineage on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The newest complete snapshot.
    pub fn latest(&self) -> Option<SnapshotRef> {
        self.record().latest.clone()
    }

    /// The first checkpoint id of this run.
    pub fn branch_start(&self) -> u64 {
        self.record().branch_start
    }

    /// A copy of the record.
    pub fn snapshot_record(&self) -> LineageRecord {
        self.record().clone()
    }

    /// Snapshot `snapshot` completed: it becomes the newest if it is newer,
    /// and the record on disk says so before this returns. If the record
    /// cannot be written, this run still knows (a restart restores the
    /// snapshot, whose commits may already be made) and the error says the
    /// disk does not.
    pub fn completed(&self, snapshot: SnapshotRef) -> Result<(), LineageError> {
        let mut record = self.record();
        if record.latest.as_ref().is_some_and(|l| l.id >= snapshot.id) {
            return Ok(());
        }
        record.latest = Some(snapshot);
        match &self.dir {
            Some(dir) => record.write(dir),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::layout::METADATA_FILE;
    use std::fs;

    fn record(lineage: &str, job: &str, generation: u64) -> LineageRecord {
        LineageRecord {
            version: LINEAGE_VERSION,
            lineage: lineage.into(),
            job_name: job.into(),
            generation,
            branch_start: 1,
            latest: None,
            parent: None,
        }
    }

    fn listed(record: LineageRecord, with: &[u64], without: &[u64]) -> LineageDir {
        LineageDir {
            dir: PathBuf::from("/ck").join(&record.lineage),
            record,
            with_metadata: with.to_vec(),
            without_metadata: without.to_vec(),
        }
    }

    #[test]
    fn the_newest_is_ordered_by_id_and_a_later_metadata_of_this_run_counts() {
        let mut r = record("a", "job", 1);
        r.latest = Some(SnapshotRef::checkpoint(7));
        r.branch_start = 5;
        // chk-8 completed, the record was not updated yet: chk-8 is the newest.
        assert_eq!(
            listed(r.clone(), &[6, 7, 8], &[9]).newest(),
            Some(SnapshotRef::checkpoint(8))
        );
        // A savepoint newer than the checkpoints.
        let sp = SnapshotRef {
            id: 9,
            savepoint: true,
            location: Some("/sp/savepoint-a-9".into()),
        };
        r.latest = Some(sp.clone());
        assert_eq!(listed(r.clone(), &[6, 7, 8], &[]).newest(), Some(sp));
    }

    #[test]
    fn checkpoints_left_behind_by_a_rewind_are_not_the_newest() {
        // The run restored checkpoint 3 while 4..=10 existed: it numbers from 11.
        let mut r = record("a", "job", 1);
        r.latest = Some(SnapshotRef::checkpoint(3));
        r.branch_start = 11;
        let dir = listed(r, &[3, 9, 10], &[]);
        assert_eq!(dir.newest(), Some(SnapshotRef::checkpoint(3)));
        assert_eq!(dir.highest_id(), 10);
        assert_eq!(
            dir.older_than(10),
            vec![PathBuf::from("/ck/a/chk-9"), PathBuf::from("/ck/a/chk-3")]
        );
    }

    #[test]
    fn the_current_lineage_is_the_highest_generation_of_the_job_only() {
        let root = Path::new("/ck");
        let lineages = vec![
            listed(record("a", "job", 1), &[1], &[]),
            listed(record("b", "job", 2), &[], &[]),
            listed(record("c", "other", 9), &[40], &[]),
        ];
        let chosen = current("job", root, &lineages).unwrap().unwrap();
        assert_eq!(chosen.record.lineage, "b");
        assert!(current("nobody", root, &lineages).unwrap().is_none());
        assert_eq!(next_generation("job", &lineages, "a"), 3);
        assert_eq!(next_generation("job", &lineages, "b"), 2);
        assert_eq!(next_generation("new", &lineages, "x"), 1);
        let tied = vec![
            listed(record("a", "job", 2), &[], &[]),
            listed(record("b", "job", 2), &[], &[]),
        ];
        let err = current("job", root, &tied).unwrap_err().to_string();
        assert!(
            err.contains("2 current lineages") && err.contains("/ck/a"),
            "{err}"
        );
    }

    #[test]
    fn records_round_trip_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record("a", "job", 3);
        r.latest = Some(SnapshotRef::checkpoint(4));
        r.write(dir.path()).unwrap();
        assert_eq!(LineageRecord::read(dir.path()).unwrap(), r);
        fs::create_dir_all(dir.path().join("chk-4")).unwrap();
        fs::write(dir.path().join("chk-4").join(METADATA_FILE), b"x").unwrap();
        fs::create_dir_all(dir.path().join("chk-5")).unwrap();
        let scanned = LineageDir::scan(dir.path()).unwrap();
        assert_eq!(
            (scanned.with_metadata, scanned.without_metadata),
            (vec![4], vec![5])
        );
        fs::write(dir.path().join(LINEAGE_FILE), b"garbage").unwrap();
        let err = LineageRecord::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(LINEAGE_FILE), "{err}");
    }

    #[test]
    fn a_completed_snapshot_the_disk_cannot_record_is_still_the_newest_of_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("removed");
        let lineage = Lineage::new(record("a", "job", 1), Some(gone));
        assert!(lineage.completed(SnapshotRef::checkpoint(3)).is_err());
        assert_eq!(lineage.latest(), Some(SnapshotRef::checkpoint(3)));
    }

    #[test]
    fn a_completed_snapshot_is_recorded_only_when_newer() {
        let dir = tempfile::tempdir().unwrap();
        let lineage = Lineage::new(record("a", "job", 1), Some(dir.path().to_path_buf()));
        lineage.completed(SnapshotRef::checkpoint(5)).unwrap();
        lineage.completed(SnapshotRef::checkpoint(4)).unwrap();
        assert_eq!(lineage.latest(), Some(SnapshotRef::checkpoint(5)));
        assert_eq!(
            LineageRecord::read(dir.path()).unwrap().latest,
            Some(SnapshotRef::checkpoint(5))
        );
    }
}

//! The commit ledger of a two-phase-commit sink: a durable record, next to
//! the output, of the highest checkpoint whose transactions each subtask
//! committed, and of the lineage (the job's history, see
//! [`weir_actors::lineage`]) that committed them.
//!
//! Before a job starts, its exactly-once sinks compare the ledger with what
//! the job restores ([`check_rewind`]): a restore from a checkpoint older than
//! what was committed would commit the records in between a second time, and
//! a job of another lineage would mix its output with another run's. Either
//! is refused, naming both, unless the user opts in with `sink.allow_rewind`
//! (and then gets duplicates). The entry of a checkpoint is written before its
//! transactions are committed, so the ledger never says less than the output
//! holds.

use crate::runtime::codec;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weir_actors::checkpoint::durable::write_atomically;
use weir_actors::checkpoint::format::{decode, encode, FileKind};
use weir_actors::UserError;

/// What one subtask of a sink committed last.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The lineage of the job that committed.
    pub lineage: String,
    /// That job's name.
    pub job: String,
    /// The subtask.
    pub subtask: usize,
    /// The highest checkpoint whose transactions it committed (0: committed
    /// at the end of input, without checkpoints).
    pub checkpoint: u64,
}

/// Where a two-phase-commit sink keeps its [`LedgerEntry`]s: next to its
/// output, written durably.
pub trait CommitLedger: Send + 'static {
    /// Every entry (one per subtask that committed here).
    fn entries(&self) -> Result<Vec<LedgerEntry>, UserError>;
    /// Records `entry` (replacing the subtask's earlier one); durable when it returns.
    fn record(&self, entry: &LedgerEntry) -> Result<(), UserError>;
    /// Forgets every entry: a run that was allowed to rewind starts a new history.
    fn reset(&self) -> Result<(), UserError>;
    /// Where the ledger is, for messages.
    fn location(&self) -> String;
}

/// A restore a sink refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewindRefused {
    /// The job restores a checkpoint older than what was committed.
    #[error(
        "{location}: subtask {subtask} already committed the output of checkpoint {committed}, and the job {restoring}: \
         the records in between would be committed twice. Resume from checkpoint {committed} or later \
         (--resume-from latest), or set sink.allow_rewind = true (you will get duplicates)",
        restoring = describe_restore(*.restoring)
    )]
    Rewind {
        /// The sink's output.
        location: String,
        /// The subtask whose entry is ahead.
        subtask: usize,
        /// The checkpoint it committed.
        committed: u64,
        /// The checkpoint the job restores (`None`: it starts fresh).
        restoring: Option<u64>,
    },
    /// The output was committed by another lineage (another job, or the same
    /// job started afresh).
    #[error(
        "{location} holds output that job `{job}` (lineage {lineage}) committed up to checkpoint {committed}; \
         this job is lineage {ours} and {restoring}: its output would be mixed with (and may repeat) that one. \
         Resume that lineage (--resume-from latest with its checkpoint directory), write to an empty directory, \
         or set sink.allow_rewind = true (you will get duplicates)",
        restoring = describe_restore(*.restoring)
    )]
    OtherLineage {
        /// The sink's output.
        location: String,
        /// The job that committed there.
        job: String,
        /// Its lineage.
        lineage: String,
        /// The highest checkpoint it committed.
        committed: u64,
        /// This job's lineage.
        ours: String,
        /// The checkpoint this job restores (`None`: it starts fresh).
        restoring: Option<u64>,
    },
}

fn describe_restore(restoring: Option<u64>) -> String {
    match restoring {
        Some(id) => format!("restores checkpoint {id}"),
        None => "starts fresh".to_string(),
    }
}

/// Whether a job of lineage `lineage` restoring `restoring` (`None`: fresh)
/// may write where `entries` were committed; `location` names the output.
///
/// ```
/// use weir::sink::{check_rewind, LedgerEntry};
/// let entry = |lineage: &str, checkpoint| LedgerEntry { lineage: lineage.into(), job: "j".into(), subtask: 0, checkpoint };
/// assert!(check_rewind(&[entry("a", 7)], "a", Some(7), "out").is_ok());
/// assert!(check_rewind(&[entry("a", 7)], "a", Some(9), "out").is_ok());
/// assert!(check_rewind(&[entry("a", 7)], "a", Some(5), "out").unwrap_err().to_string().contains("checkpoint 7"));
/// assert!(check_rewind(&[entry("a", 7)], "b", None, "out").is_err());
/// assert!(check_rewind(&[], "b", None, "out").is_ok());
/// ```
pub fn check_rewind(
    entries: &[LedgerEntry],
    lineage: &str,
    restoring: Option<u64>,
    location: &str,
) -> Result<(), RewindRefused> {
    if let Some(other) = entries
        .iter()
        .filter(|e| e.lineage != lineage)
        .max_by_key(|e| e.checkpoint)
    {
        return Err(RewindRefused::OtherLineage {
            location: location.to_string(),
            job: other.job.clone(),
            lineage: other.lineage.clone(),
            committed: other.checkpoint,
            ours: lineage.to_string(),
            restoring,
        });
    }
    let restored = restoring.unwrap_or(0);
    match entries.iter().max_by_key(|e| e.checkpoint) {
        Some(ahead) if ahead.checkpoint > restored => Err(RewindRefused::Rewind {
            location: location.to_string(),
            subtask: ahead.subtask,
            committed: ahead.checkpoint,
            restoring,
        }),
        _ => Ok(()),
    }
}

/// A ledger file could not be listed, read, written or removed (the I/O error
/// is kept: a permission denied is not worth a restart).
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct LedgerIoError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LedgerIoError {
    let path = path.to_path_buf();
    move |source| LedgerIoError {
        action,
        path,
        source,
    }
}

/// The file prefix of a [`FileLedger`]'s entries.
pub const LEDGER_PREFIX: &str = ".weir-commit-";

/// A ledger in a directory: one hidden file per subtask,
/// `.weir-commit-<subtask>`, each in weir's checked file format.
#[derive(Clone, Debug)]
pub struct FileLedger {
    dir: PathBuf,
}

impl FileLedger {
    /// The ledger in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileLedger { dir: dir.into() }
    }

    fn files(&self) -> Result<Vec<PathBuf>, UserError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(failed("cannot list", &self.dir)(e).into()),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(failed("cannot list", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name
                .strip_prefix(LEDGER_PREFIX)
                .is_some_and(|n| n.parse::<usize>().is_ok())
            {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    fn read(path: &Path) -> Result<LedgerEntry, UserError> {
        let bytes = fs::read(path).map_err(failed("cannot read", path))?;
        let shown = path.display().to_string();
        let payload = decode(&bytes, FileKind::CommitLedger, &shown)?;
        Ok(codec::decode(payload)
            .map_err(|e| format!("{shown}: not a commit ledger entry: {e}"))?)
    }
}

impl CommitLedger for FileLedger {
    fn entries(&self) -> Result<Vec<LedgerEntry>, UserError> {
        self.files()?.iter().map(|p| Self::read(p)).collect()
    }

    /// An entry only goes up within its lineage: a late call from an earlier
    /// attempt's instance never lowers what a later one recorded.
    fn record(&self, entry: &LedgerEntry) -> Result<(), UserError> {
        let path = self.dir.join(format!("{LEDGER_PREFIX}{}", entry.subtask));
        if path.exists() {
            let old = Self::read(&path)?;
            if old.lineage == entry.lineage && old.checkpoint >= entry.checkpoint {
                return Ok(());
            }
        }
        let payload = codec::encode(entry)
            .map_err(|e| format!("cannot encode a commit ledger entry: {e}"))?;
        write_atomically(&path, &encode(FileKind::CommitLedger, &payload))?;
        Ok(())
    }

    fn reset(&self) -> Result<(), UserError> {
        for path in self.files()? {
            fs::remove_file(&path).map_err(failed("cannot remove", &path))?;
        }
        Ok(())
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(lineage: &str, subtask: usize, checkpoint: u64) -> LedgerEntry {
        LedgerEntry {
            lineage: lineage.into(),
            job: "orders".into(),
            subtask,
            checkpoint,
        }
    }

    #[test]
    fn a_rewind_names_the_subtask_and_both_checkpoints() {
        let entries = [entry("a", 0, 12), entry("a", 1, 17)];
        let err = check_rewind(&entries, "a", Some(15), "/out").unwrap_err();
        assert_eq!(
            err,
            RewindRefused::Rewind {
                location: "/out".into(),
                subtask: 1,
                committed: 17,
                restoring: Some(15),
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("checkpoint 17") && text.contains("restores checkpoint 15"),
            "{text}"
        );
        assert!(check_rewind(&entries, "a", Some(17), "/out").is_ok());
        let fresh = check_rewind(&entries, "a", None, "/out")
            .unwrap_err()
            .to_string();
        assert!(fresh.contains("starts fresh"), "{fresh}");
    }

    #[test]
    fn output_of_another_lineage_is_refused_whatever_the_checkpoint() {
        let err = check_rewind(&[entry("old", 0, 3)], "new", Some(40), "/out")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lineage old") && err.contains("lineage new"),
            "{err}"
        );
    }

    #[test]
    fn the_file_ledger_keeps_one_entry_per_subtask_and_reports_damage() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::new(dir.path());
        assert!(ledger.entries().unwrap().is_empty());
        ledger.record(&entry("a", 0, 1)).unwrap();
        ledger.record(&entry("a", 1, 2)).unwrap();
        ledger.record(&entry("a", 0, 3)).unwrap();
        assert_eq!(
            ledger.entries().unwrap(),
            vec![entry("a", 0, 3), entry("a", 1, 2)]
        );
        fs::write(dir.path().join(".weir-commit-1"), b"junk").unwrap();
        let err = ledger.entries().unwrap_err().to_string();
        assert!(err.contains(".weir-commit-1"), "{err}");
        ledger.reset().unwrap();
        assert!(ledger.entries().unwrap().is_empty());
    }
}

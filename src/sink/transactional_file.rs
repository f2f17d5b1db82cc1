//! An exactly-once file sink: each transaction is a hidden in-progress file,
//! made visible by its commit.
//!
//! Records go to `<dir>/.part-<subtask>-<id>.inprogress` (hidden: the name
//! starts with a dot); a pre-commit flushes and syncs it; the commit publishes
//! it as `<dir>/part-<subtask>-<id>` by a hard link and removes the hidden
//! name, so a visible file appears whole, is never rewritten, and a second
//! commit of the same transaction finds it done. An abort deletes the hidden
//! file. Readers take the visible files only.
//!
//! Before the job starts, the sink creates its directory, checks that it can
//! write there and locks it (`.weir-lock`: a second job writing there would
//! duplicate the output); it keeps a commit ledger there (`.weir-commit-<subtask>`,
//! see [`super::ledger`]); and after its first commit in a run, subtask `i`
//! removes the `.part-<i>-*.inprogress` files of earlier runs that no
//! transaction holds any more (subtask 0 also those of subtasks beyond the
//! current parallelism), so restarts and kills leave no hidden files behind.
//! A transaction's id starts with the time it began: only files older than
//! the instance are removed, so the instance of a failed attempt that is
//! still ending cannot remove what its successor writes.

use crate::lifecycle::Lifecycle;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use weir_actors::error::Permanent;
use weir_actors::lock::{holder, DirLock};
use weir_actors::preflight::probe_dir;
use weir_actors::UserError;

use super::ledger::{CommitLedger, FileLedger};
use super::two_phase::TwoPhaseCommitSink;
use super::{Hold, PreflightContext};
use crate::context::RuntimeContext;

/// The lock file a running job holds in the sink's directory.
pub const LOCK_FILE: &str = ".weir-lock";

/// A file operation of the sink failed (the I/O error is kept, so that a
/// restart is not tried for what it cannot fix, like a permission denied).
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct FileSinkError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn failed(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileSinkError {
    let path = path.to_path_buf();
    move |source| FileSinkError {
        action,
        path,
        source,
    }
}

/// One transaction of a [`TransactionalFileSink`]: its hidden and visible names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTransaction {
    /// The in-progress file's name (in the sink's directory).
    pub hidden: String,
    /// The name it gets when committed.
    pub visible: String,
    /// The directory it was written in: a job restored with another output
    /// directory still commits (or aborts) it where its file is.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

/// Writes each record's `Display` form as a line, exactly once through
/// failures (run it with [`TwoPhaseCommit`](super::TwoPhaseCommit), as
/// [`DataStream::write_text_files_exactly_once`](crate::DataStream::write_text_files_exactly_once) does).
#[derive(Debug)]
pub struct TransactionalFileSink {
    dir: PathBuf,
    subtask: usize,
    parallelism: usize,
    /// When this instance opened (ns): an earlier run's transaction began before.
    opened_at: u64,
    writer: Option<(String, BufWriter<File>)>,
}

impl Clone for TransactionalFileSink {
    /// A fresh sink to the same directory.
    fn clone(&self) -> Self {
        TransactionalFileSink::new(self.dir.clone())
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A transaction id: the time it began (ns, 16 hex digits) and a counter.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{:016x}{:04x}",
        now_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

impl TransactionalFileSink {
    /// A sink writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TransactionalFileSink {
            dir: dir.into(),
            subtask: 0,
            parallelism: 1,
            opened_at: 0,
            writer: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The visible (committed) files of `dir`, sorted by name.
    pub fn committed_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("part-"))
            })
            .map(|e| e.path())
            .collect();
        files.sort();
        Ok(files)
    }

    fn close_writer(&mut self, transaction: &FileTransaction) -> Result<(), UserError> {
        if let Some((name, mut writer)) = self.writer.take() {
            if name != transaction.hidden {
                self.writer = Some((name, writer));
                return Ok(());
            }
            let path = self.path(&name);
            writer.flush().map_err(failed("cannot write", &path))?;
            writer
                .get_ref()
                .sync_all()
                .map_err(failed("cannot sync", &path))?;
        }
        Ok(())
    }

    /// The subtask that wrote the in-progress file `name`
    /// (`.part-<subtask>-<id>.inprogress`) and when its transaction began.
    fn writer_of(name: &str) -> Option<(usize, u64)> {
        let rest = name.strip_prefix(".part-")?.strip_suffix(".inprogress")?;
        let (subtask, id) = rest.split_once('-')?;
        let began = u64::from_str_radix(id.get(..16)?, 16).ok()?;
        Some((subtask.parse().ok()?, began))
    }
}

impl Lifecycle for TransactionalFileSink {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        self.parallelism = ctx.parallelism();
        self.opened_at = now_nanos();
        fs::create_dir_all(&self.dir)
            .map_err(failed("cannot create output directory", &self.dir))?;
        Ok(())
    }
}

impl<T: std::fmt::Display> TwoPhaseCommitSink<T> for TransactionalFileSink {
    type Transaction = FileTransaction;

    fn preflight(&self, ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        probe_dir(&self.dir, "output directory").map_err(|e| Permanent(e.into()))?;
        let lock = DirLock::acquire(
            &self.dir.join(LOCK_FILE),
            &holder(&format!("job `{}`", ctx.job_name)),
        )?;
        Ok(vec![Box::new(lock)])
    }

    fn ledger(&self, _job_name: &str, _operator_uid: &str) -> Option<Box<dyn CommitLedger>> {
        Some(Box::new(FileLedger::new(self.dir.clone())))
    }

    fn remove_orphans(&mut self, keep: &[&FileTransaction]) -> Result<(), UserError> {
        let entries = fs::read_dir(&self.dir).map_err(failed("cannot list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(failed("cannot list", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((writer, began)) = Self::writer_of(name) else {
                continue;
            };
            // Only what began before this instance: the instance of an earlier
            // attempt may still be ending while this one writes.
            let earlier = began < self.opened_at;
            let mine = writer == self.subtask;
            let abandoned = self.subtask == 0 && writer >= self.parallelism;
            if earlier && (mine || abandoned) && !keep.iter().any(|t| t.hidden == name) {
                let path = entry.path();
                match fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::debug!(file = %path.display(), "removed a transaction file an earlier run left")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(failed("cannot remove", &path)(e).into()),
                }
            }
        }
        Ok(())
    }

    fn begin_transaction(&mut self) -> Result<FileTransaction, UserError> {
        let id = unique_id();
        let transaction = FileTransaction {
            hidden: format!(".part-{}-{id}.inprogress", self.subtask),
            visible: format!("part-{}-{id}", self.subtask),
            dir: Some(self.dir.clone()),
        };
        let path = self.path(&transaction.hidden);
        let file = File::create(&path).map_err(failed("cannot create", &path))?;
        self.writer = Some((transaction.hidden.clone(), BufWriter::new(file)));
        Ok(transaction)
    }

    fn write(&mut self, transaction: &mut FileTransaction, record: T) -> Result<(), UserError> {
        let path = self.path(&transaction.hidden);
        match &mut self.writer {
            Some((name, writer)) if *name == transaction.hidden => {
                writeln!(writer, "{record}").map_err(|e| failed("cannot write", &path)(e).into())
            }
            _ => Err(format!("{}: the transaction is not open", path.display()).into()),
        }
    }

    fn pre_commit(&mut self, transaction: &mut FileTransaction, _: u64) -> Result<(), UserError> {
        self.close_writer(transaction)
    }

    fn commit(&mut self, transaction: FileTransaction) -> Result<(), UserError> {
        self.close_writer(&transaction)?;
        let dir = transaction.dir.as_deref().unwrap_or(&self.dir);
        let (hidden, visible) = (
            dir.join(&transaction.hidden),
            dir.join(&transaction.visible),
        );
        match fs::hard_link(&hidden, &visible) {
            Ok(()) => {}
            // Committed before (a commit repeated after a failure): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && visible.exists() => return Ok(()),
            Err(e) => {
                return Err(
                    failed("cannot publish (hard link) the transaction file", &hidden)(e).into(),
                )
            }
        }
        match fs::remove_file(&hidden) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed("cannot remove", &hidden)(e).into()),
        }
    }

    fn abort(&mut self, transaction: FileTransaction) -> Result<(), UserError> {
        if self
            .writer
            .as_ref()
            .is_some_and(|(name, _)| *name == transaction.hidden)
        {
            self.writer = None;
        }
        let hidden = transaction
            .dir
            .as_deref()
            .unwrap_or(&self.dir)
            .join(&transaction.hidden);
        match fs::remove_file(&hidden) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed("cannot remove", &hidden)(e).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_publishes_once_and_abort_removes() {
        let dir = std::env::temp_dir().join(format!("weir-txfile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut sink = TransactionalFileSink::new(&dir);
        let mut t = TwoPhaseCommitSink::<u32>::begin_transaction(&mut sink).unwrap();
        TwoPhaseCommitSink::<u32>::write(&mut sink, &mut t, 7).unwrap();
        TwoPhaseCommitSink::<u32>::pre_commit(&mut sink, &mut t, 1).unwrap();
        assert!(
            TransactionalFileSink::committed_files(&dir)
                .unwrap()
                .is_empty(),
            "hidden until committed"
        );
        TwoPhaseCommitSink::<u32>::commit(&mut sink, t.clone()).unwrap();
        TwoPhaseCommitSink::<u32>::commit(&mut sink, t.clone()).unwrap();
        let files = TransactionalFileSink::committed_files(&dir).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(fs::read_to_string(&files[0]).unwrap(), "7\n");

        let mut u = TwoPhaseCommitSink::<u32>::begin_transaction(&mut sink).unwrap();
        TwoPhaseCommitSink::<u32>::write(&mut sink, &mut u, 8).unwrap();
        TwoPhaseCommitSink::<u32>::abort(&mut sink, u.clone()).unwrap();
        assert!(!dir.join(&u.hidden).exists());
        assert_eq!(
            TransactionalFileSink::committed_files(&dir).unwrap().len(),
            1
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

#[cfg(test)]
mod orphan_tests {
    use super::*;
    use weir_actors::OperatorInfo;

    fn opened(dir: &Path, subtask: usize, parallelism: usize) -> TransactionalFileSink {
        let mut sink = TransactionalFileSink::new(dir);
        let ctx = RuntimeContext::new(OperatorInfo {
            name: "sink".into(),
            uid: "sink".into(),
            subtask,
            parallelism,
            max_parallelism: 128,
            job: "j".into(),
            lineage: "l".into(),
            restored_from: None,
            checkpointing: true,
            shared_state_dir: None,
        });
        Lifecycle::open(&mut sink, &ctx).unwrap();
        sink
    }

    fn hidden(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".inprogress"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn orphans_are_what_earlier_instances_left_and_nothing_a_later_one_writes() {
        let dir = tempfile::tempdir().unwrap();
        // An earlier run's subtasks 1 and 3 left a transaction each.
        let mut killed = opened(dir.path(), 1, 4);
        let left = TwoPhaseCommitSink::<u32>::begin_transaction(&mut killed).unwrap();
        let mut gone = opened(dir.path(), 3, 4);
        let beyond = TwoPhaseCommitSink::<u32>::begin_transaction(&mut gone).unwrap();
        // This run: subtask 1 of 2 (the failed attempt's instance, still
        // ending) and its successor, which already writes.
        let mut ending = opened(dir.path(), 1, 2);
        let kept = TwoPhaseCommitSink::<u32>::begin_transaction(&mut ending).unwrap();
        let mut successor = opened(dir.path(), 1, 2);
        let new = TwoPhaseCommitSink::<u32>::begin_transaction(&mut successor).unwrap();
        TwoPhaseCommitSink::<u32>::remove_orphans(&mut ending, &[&kept]).unwrap();
        assert_eq!(hidden(dir.path()), {
            let mut v = vec![
                beyond.hidden.clone(),
                kept.hidden.clone(),
                new.hidden.clone(),
            ];
            v.sort();
            v
        });
        assert!(!dir.path().join(&left.hidden).exists());
        // Subtask 0 removes what subtasks beyond the parallelism left.
        let mut first = opened(dir.path(), 0, 2);
        TwoPhaseCommitSink::<u32>::remove_orphans(&mut first, &[]).unwrap();
        assert!(!dir.path().join(&beyond.hidden).exists());
        assert!(dir.path().join(&new.hidden).exists());
    }
}

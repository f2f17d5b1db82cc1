//! An exactly-once file sink: each transaction is a hidden in-progress file,
//! made visible by its commit.
//!
//! Records go to `<dir>/.part-<subtask>-<id>.inprogress` (hidden: the name
//! starts with a dot); a pre-commit flushes and syncs it; the commit publishes
//! it as `<dir>/part-<subtask>-<id>` by a hard link and removes the hidden
//! name, so a visible file appears whole, is never rewritten, and a second
//! commit of the same transaction finds it done. An abort deletes the hidden
//! file. Readers take the visible files only.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use weir_actors::UserError;

use super::two_phase::TwoPhaseCommitSink;
use crate::context::RuntimeContext;

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
    writer: Option<(String, BufWriter<File>)>,
}

impl Clone for TransactionalFileSink {
    /// A fresh sink to the same directory.
    fn clone(&self) -> Self {
        TransactionalFileSink::new(self.dir.clone())
    }
}

fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{nanos:016x}{:04x}",
        COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff
    )
}

impl TransactionalFileSink {
    /// A sink writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        TransactionalFileSink {
            dir: dir.into(),
            subtask: 0,
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
            writer
                .flush()
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            writer
                .get_ref()
                .sync_all()
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

impl<T: std::fmt::Display> TwoPhaseCommitSink<T> for TransactionalFileSink {
    type Transaction = FileTransaction;

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create output directory {}: {e}", self.dir.display()))?;
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
        let file =
            File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        self.writer = Some((transaction.hidden.clone(), BufWriter::new(file)));
        Ok(transaction)
    }

    fn write(&mut self, transaction: &mut FileTransaction, record: T) -> Result<(), UserError> {
        let path = self.path(&transaction.hidden);
        match &mut self.writer {
            Some((name, writer)) if *name == transaction.hidden => writeln!(writer, "{record}")
                .map_err(|e| format!("cannot write {}: {e}", path.display()).into()),
            _ => Err(format!("{}: the transaction is not open", path.display()).into()),
        }
    }

    fn pre_commit(&mut self, transaction: &mut FileTransaction) -> Result<(), UserError> {
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
                return Err(format!(
                    "cannot publish {} as {}: {e}",
                    hidden.display(),
                    visible.display()
                )
                .into())
            }
        }
        match fs::remove_file(&hidden) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", hidden.display()).into()),
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
            Err(e) => Err(format!("cannot remove {}: {e}", hidden.display()).into()),
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
        TwoPhaseCommitSink::<u32>::pre_commit(&mut sink, &mut t).unwrap();
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

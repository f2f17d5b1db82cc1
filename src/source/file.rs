//! A source of the lines of a text file (not parallel), replayable: its
//! position (byte offset and line number) is checkpointed. A UTF-8 byte-order
//! mark at the start of the file is skipped. The file is opened before the
//! job starts (its pre-flight check): a missing or unreadable file stops the
//! job at once, naming it.

use crate::lifecycle::Lifecycle;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use weir_actors::UserError;

use super::{Hold, PreflightContext, Source, SourceStatus};
use crate::context::RuntimeContext;
use crate::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};

/// (byte offset, lines read).
fn position_state() -> ListStateDescriptor<(u64, u64)> {
    ListStateDescriptor::new("text-file-position")
}

/// Emits each line of a UTF-8 text file, without its line ending.
#[derive(Debug)]
pub struct TextFileSource {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    offset: u64,
    line: u64,
    restored: Option<(u64, u64)>,
    buffer: String,
}

impl Clone for TextFileSource {
    /// A fresh, unopened reader of the same file.
    fn clone(&self) -> Self {
        TextFileSource::new(self.path.clone())
    }
}

impl TextFileSource {
    /// A source reading `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFileSource {
            path: path.into(),
            reader: None,
            offset: 0,
            line: 0,
            restored: None,
            buffer: String::new(),
        }
    }

    /// Lines emitted so far.
    pub fn lines_read(&self) -> u64 {
        self.line
    }

    fn error(&self, action: &str, source: std::io::Error) -> UserError {
        Box::new(TextFileError {
            action: action.to_string(),
            path: self.path.clone(),
            source,
        })
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reading the file failed; the I/O error is kept (a missing file is not
/// worth a restart).
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
struct TextFileError {
    action: String,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl Lifecycle for TextFileSource {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        if ctx.is_restored() {
            self.restored = ctx
                .operator_state()
                .list(&position_state())?
                .get()?
                .first()
                .copied();
        }
        Ok(())
    }

    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        let file = File::open(&self.path).map_err(|e| self.error("cannot open text file", e))?;
        let mut reader = BufReader::new(file);
        if let Some((offset, line)) = self.restored.take() {
            reader
                .seek(SeekFrom::Start(offset))
                .map_err(|e| self.error(&format!("cannot resume at byte {offset} of"), e))?;
            self.offset = offset;
            self.line = line;
        }
        if self.offset == 0 {
            let start = reader
                .fill_buf()
                .map_err(|e| self.error("cannot read", e))?;
            if start.starts_with(UTF8_BOM) {
                reader.consume(UTF8_BOM.len());
                self.offset = UTF8_BOM.len() as u64;
            }
        }
        self.reader = Some(reader);
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&position_state())?
            .update(&[(self.offset, self.line)])?;
        Ok(())
    }
}

impl Source<String> for TextFileSource {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn preflight(&self, _ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        File::open(&self.path).map_err(|e| self.error("cannot open text file", e))?;
        Ok(Vec::new())
    }

    fn poll_next(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourceStatus, UserError> {
        let reader = self
            .reader
            .as_mut()
            .ok_or("text file source polled before open")?;
        while out.len() < max {
            self.buffer.clear();
            let read = match reader.read_line(&mut self.buffer) {
                Ok(read) => read,
                Err(e) => {
                    let at = format!("cannot read line {} of", self.line + 1);
                    return Err(self.error(&at, e));
                }
            };
            if read == 0 {
                return Ok(SourceStatus::Finished);
            }
            self.offset += read as u64;
            self.line += 1;
            let line = self.buffer.trim_end_matches(['\n', '\r']);
            out.push(line.to_string());
        }
        Ok(SourceStatus::More)
    }
}

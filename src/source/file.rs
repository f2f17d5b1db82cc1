//! A source of the lines of a text file (not parallel), replayable: its
//! position (byte offset and line number) is checkpointed.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;

use weir_actors::UserError;

use super::{Source, SourceStatus};
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
}

impl Source<String> for TextFileSource {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

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

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&position_state())?
            .update(&[(self.offset, self.line)])?;
        Ok(())
    }

    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        let file = File::open(&self.path)
            .map_err(|e| format!("cannot open text file {}: {e}", self.path.display()))?;
        let mut reader = BufReader::new(file);
        if let Some((offset, line)) = self.restored.take() {
            reader.seek(SeekFrom::Start(offset)).map_err(|e| {
                format!(
                    "cannot resume {} at byte {offset}: {e}",
                    self.path.display()
                )
            })?;
            self.offset = offset;
            self.line = line;
        }
        self.reader = Some(reader);
        Ok(())
    }

    fn poll_next(&mut self, out: &mut Vec<String>, max: usize) -> Result<SourceStatus, UserError> {
        let reader = self
            .reader
            .as_mut()
            .ok_or("text file source polled before open")?;
        while out.len() < max {
            self.buffer.clear();
            let read = reader.read_line(&mut self.buffer).map_err(|e| {
                format!(
                    "cannot read {} at line {}: {e}",
                    self.path.display(),
                    self.line + 1
                )
            })?;
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

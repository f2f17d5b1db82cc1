//! A sink that writes records as lines of text files.

use crate::lifecycle::Lifecycle;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use weir_actors::UserError;

use weir_actors::preflight::probe_dir;

use super::{Hold, PreflightContext, Sink};
use crate::context::RuntimeContext;

/// Writes each record's `Display` form as a line.
///
/// With parallelism 1 the output is the file at `path`; with more, `path` is a
/// directory holding one file per subtask, `part-0`, `part-1`, ... (as Flink's
/// `writeAsText`). Existing files are replaced. Errors name the file.
#[derive(Debug)]
pub struct TextFileSink {
    path: PathBuf,
    file: Option<(PathBuf, BufWriter<File>)>,
}

impl Clone for TextFileSink {
    /// A fresh, unopened sink to the same path.
    fn clone(&self) -> Self {
        TextFileSink::new(self.path.clone())
    }
}

impl TextFileSink {
    /// A sink writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextFileSink {
            path: path.into(),
            file: None,
        }
    }
}

impl Lifecycle for TextFileSink {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let target = if ctx.parallelism() == 1 {
            self.path.clone()
        } else {
            fs::create_dir_all(&self.path).map_err(|e| {
                format!(
                    "cannot create output directory {}: {e}",
                    self.path.display()
                )
            })?;
            self.path.join(format!("part-{}", ctx.subtask_index()))
        };
        let file = File::create(&target)
            .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
        self.file = Some((target, BufWriter::new(file)));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if let Some((path, mut out)) = self.file.take() {
            out.flush()
                .map_err(|e| format!("cannot write to {}: {e}", path.display()))?;
            out.get_ref()
                .sync_all()
                .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

impl<T: std::fmt::Display> Sink<T> for TextFileSink {
    /// The output's directory (the file's, at parallelism 1) is created and
    /// must take files; at parallelism 1 the path must not be a directory.
    fn preflight(&self, ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        if ctx.parallelism > 1 {
            probe_dir(&self.path, "output directory")?;
            return Ok(Vec::new());
        }
        if self.path.is_dir() {
            return Err(format!("output file {} is a directory", self.path.display()).into());
        }
        let parent = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        probe_dir(parent, "output directory")?;
        Ok(Vec::new())
    }

    fn write(&mut self, record: T) -> Result<(), UserError> {
        let (path, out) = self
            .file
            .as_mut()
            .ok_or("text file sink written before open")?;
        writeln!(out, "{record}")
            .map_err(|e| format!("cannot write to {}: {e}", path.display()))?;
        Ok(())
    }
}

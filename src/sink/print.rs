//! A sink that prints records to stdout.

use crate::lifecycle::Lifecycle;
use std::io::Write;

use weir_actors::UserError;

use super::Sink;
use crate::context::RuntimeContext;

/// Prints each record's `Debug` form on its own line of stdout.
///
/// With parallelism above 1 each line starts with `N> `, the 1-based subtask
/// number (as Flink's `print()` does). When stdout's reader has gone away
/// (`| head`), the rest is dropped quietly; another write error fails the job.
#[derive(Clone, Debug, Default)]
pub struct PrintSink {
    prefix: String,
    closed: bool,
}

impl Lifecycle for PrintSink {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        if ctx.parallelism() > 1 {
            self.prefix = format!("{}> ", ctx.subtask_index() + 1);
        }
        Ok(())
    }
}

impl<T: std::fmt::Debug> Sink<T> for PrintSink {
    fn write(&mut self, record: T) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        if self.closed {
            return Ok(());
        }
        crate::progress::suspend(|| self.print(batch))
    }
}

impl PrintSink {
    /// Writes `batch` to stdout, a record a line.
    fn print<T: std::fmt::Debug>(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        let mut out = std::io::stdout().lock();
        for record in batch {
            match writeln!(out, "{}{record:?}", self.prefix) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    self.closed = true;
                    return Ok(());
                }
                Err(e) => return Err(format!("cannot write to stdout: {e}").into()),
            }
        }
        Ok(())
    }
}

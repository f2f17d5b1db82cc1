//! A sink that prints records to stdout.

use std::io::Write;

use weir_actors::UserError;

use super::Sink;
use crate::context::RuntimeContext;

/// Prints each record's `Debug` form on its own line of stdout.
///
/// With parallelism above 1 each line starts with `N> `, the 1-based subtask
/// number (as Flink's `print()` does).
#[derive(Clone, Debug, Default)]
pub struct PrintSink {
    prefix: String,
}

impl<T: std::fmt::Debug> Sink<T> for PrintSink {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        if ctx.parallelism() > 1 {
            self.prefix = format!("{}> ", ctx.subtask_index() + 1);
        }
        Ok(())
    }

    fn write(&mut self, record: T) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        let mut out = std::io::stdout().lock();
        for record in batch {
            writeln!(out, "{}{record:?}", self.prefix)
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
        }
        Ok(())
    }
}

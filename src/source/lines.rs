//! [`ParseLines`]: the lines of one text file, parsed into records, with the
//! file rules the examples share: blank lines and `#` comments skipped, a
//! malformed line (or one whose timestamp goes back) an error naming the file
//! and the line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::ops::process::{ProcessContext, ProcessFunction};
use crate::{Collector, Lifecycle, UserError};

type Parser<T> = Arc<dyn Fn(&str) -> Result<T, String> + Send + Sync>;
type Timestamp<T> = Arc<dyn Fn(&T) -> i64 + Send + Sync>;

/// Parses the lines of one file in order, after `read_text_file`: run it with
/// parallelism 1, right after the reader, so that it sees every line and
/// counts them.
///
/// ```
/// use weir::source::ParseLines;
/// use weir::StreamEnv;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("pairs.csv");
/// # std::fs::write(&path, "# id,ts\na,1\n\nb,2\n")?;
/// let env = StreamEnv::with_parallelism(1);
/// let pairs = env
///     .read_text_file(&path)
///     .process(
///         ParseLines::new(&path, |line| {
///             let (id, ts) = line.split_once(',').ok_or("expected `id,ts`")?;
///             Ok((id.to_string(), ts.parse::<i64>().map_err(|e| e.to_string())?))
///         })
///         .sorted_by(|pair: &(String, i64)| pair.1),
///     )
///     .set_parallelism(1)
///     .collect();
/// env.execute_blocking("pairs")?;
/// assert_eq!(pairs.take(), vec![("a".to_string(), 1), ("b".to_string(), 2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ParseLines<T> {
    path: PathBuf,
    parse: Parser<T>,
    timestamp: Option<Timestamp<T>>,
    line: u64,
    last_timestamp: Option<i64>,
}

impl<T> Clone for ParseLines<T> {
    /// A fresh parser of the same file (at its first line).
    fn clone(&self) -> Self {
        ParseLines {
            path: self.path.clone(),
            parse: self.parse.clone(),
            timestamp: self.timestamp.clone(),
            line: 0,
            last_timestamp: None,
        }
    }
}

impl<T> ParseLines<T> {
    /// A parser of the lines of `path` (named in errors), each trimmed line
    /// that is neither blank nor a `#` comment given to `parse`.
    pub fn new(
        path: &Path,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        ParseLines {
            path: path.to_path_buf(),
            parse: Arc::new(parse),
            timestamp: None,
            line: 0,
            last_timestamp: None,
        }
    }

    /// Requires the records in order of `timestamp`: one that goes back is an
    /// error naming the line.
    pub fn sorted_by(mut self, timestamp: impl Fn(&T) -> i64 + Send + Sync + 'static) -> Self {
        self.timestamp = Some(Arc::new(timestamp));
        self
    }
}

impl<T> Lifecycle for ParseLines<T> {}

impl<T: Send + 'static> ProcessFunction<String, T> for ParseLines<T> {
    fn process_element(
        &mut self,
        line: String,
        _ctx: &mut ProcessContext,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        self.line += 1;
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(());
        }
        let at = |why: String| format!("{}:{}: {why}", self.path.display(), self.line);
        let record = (self.parse)(text).map_err(&at)?;
        if let Some(timestamp) = &self.timestamp {
            let ts = timestamp(&record);
            if let Some(last) = self.last_timestamp.filter(|last| ts < *last) {
                return Err(at(format!(
                    "timestamp {ts} is before the previous one ({last}): the file must be sorted by timestamp"
                ))
                .into());
            }
            self.last_timestamp = Some(ts);
        }
        out.collect(record);
        Ok(())
    }
}

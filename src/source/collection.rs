//! A source over an in-memory collection (not parallel).

use std::sync::Arc;

use weir_actors::UserError;

use super::{Source, SourceStatus};

/// Emits the records of a vector in order, from one subtask.
#[derive(Clone, Debug)]
pub struct CollectionSource<T> {
    records: Arc<Vec<T>>,
    position: usize,
}

impl<T> CollectionSource<T> {
    /// A source over `records`.
    pub fn new(records: Vec<T>) -> Self {
        CollectionSource {
            records: Arc::new(records),
            position: 0,
        }
    }

    /// Index of the next record to emit.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl<T: Clone + Send + Sync + 'static> Source<T> for CollectionSource<T> {
    fn parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn poll_next(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourceStatus, UserError> {
        let end = (self.position + max).min(self.records.len());
        out.extend_from_slice(&self.records[self.position..end]);
        self.position = end;
        Ok(if end == self.records.len() {
            SourceStatus::Finished
        } else {
            SourceStatus::More
        })
    }
}

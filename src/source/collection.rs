//! A source over an in-memory collection (not parallel).

use crate::lifecycle::Lifecycle;
use std::sync::Arc;

use weir_actors::UserError;

use super::{Source, SourceStatus};
use crate::state::{ListStateDescriptor, StateInitContext, StateSnapshotContext};

fn position_state() -> ListStateDescriptor<u64> {
    ListStateDescriptor::new("collection-position")
}

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

impl<T: Clone + Send + Sync + 'static> Lifecycle for CollectionSource<T> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        if ctx.is_restored() {
            let positions = ctx.operator_state().list(&position_state())?.get()?;
            self.position = positions
                .first()
                .map_or(0, |&p| p as usize)
                .min(self.records.len());
        }
        Ok(())
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        ctx.operator_state()
            .list(&position_state())?
            .update(&[self.position as u64])?;
        Ok(())
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

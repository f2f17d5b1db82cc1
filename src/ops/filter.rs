//! `filter`: keeps the records a predicate accepts, in place.

use crate::lifecycle::Lifecycle;
use weir_actors::{RecordBatch, UserError};

use crate::operator::{Collector, OneInputOperator};

/// Keeps the records for which the predicate returns `true`.
#[derive(Clone)]
pub struct Filter<F>(pub F);

impl<F> Lifecycle for Filter<F> {}

impl<T, F> OneInputOperator<T, T> for Filter<F>
where
    T: Clone + Send + 'static,
    F: FnMut(&T) -> bool + Clone + Send + 'static,
{
    fn process_batch(
        &mut self,
        mut batch: RecordBatch<T>,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        if batch.timestamps.is_none() {
            batch.records.retain(&mut self.0);
            out.collect_batch(batch);
            return Ok(());
        }
        for (record, timestamp) in batch.into_iter_with_timestamps() {
            if (self.0)(&record) {
                out.set_timestamp(timestamp);
                out.collect(record);
            }
        }
        Ok(())
    }
}

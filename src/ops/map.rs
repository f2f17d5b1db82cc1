//! `map`: one output record per input record.

use crate::lifecycle::Lifecycle;
use weir_actors::{RecordBatch, UserError};

use crate::operator::{Collector, OneInputOperator};

/// Applies a function to every record.
#[derive(Clone)]
pub struct Map<F>(pub F);

impl<F> Lifecycle for Map<F> {}

impl<In, Out, F> OneInputOperator<In, Out> for Map<F>
where
    Out: Clone + Send + 'static,
    F: FnMut(In) -> Out + Clone + Send + 'static,
{
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let records = batch.records.into_iter().map(&mut self.0).collect();
        out.collect_batch(RecordBatch {
            records,
            timestamps: batch.timestamps,
        });
        Ok(())
    }
}

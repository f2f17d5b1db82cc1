//! `flat_map`: zero or more output records per input record.

use crate::lifecycle::Lifecycle;
use weir_actors::{RecordBatch, UserError};

use crate::operator::{Collector, OneInputOperator};

/// Emits every item of the iterator the function returns.
#[derive(Clone)]
pub struct FlatMap<F>(pub F);

impl<F> Lifecycle for FlatMap<F> {}

impl<In, Out, I, F> OneInputOperator<In, Out> for FlatMap<F>
where
    Out: Clone + Send + 'static,
    F: FnMut(In) -> I + Clone + Send + 'static,
    I: IntoIterator<Item = Out>,
{
    fn process_batch(
        &mut self,
        batch: RecordBatch<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        for (record, timestamp) in batch.into_iter_with_timestamps() {
            out.set_timestamp(timestamp);
            out.extend((self.0)(record));
        }
        Ok(())
    }
}

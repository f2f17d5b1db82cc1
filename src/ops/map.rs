//! `map`: one output record per input record.

use weir_actors::UserError;

use crate::operator::{Collector, OneInputOperator};

/// Applies a function to every record.
#[derive(Clone)]
pub struct Map<F>(pub F);

impl<In, Out, F> OneInputOperator<In, Out> for Map<F>
where
    F: FnMut(In) -> Out + Clone + Send + 'static,
{
    fn process_batch(&mut self, batch: Vec<In>, out: &mut Collector<Out>) -> Result<(), UserError> {
        out.collect_vec(batch.into_iter().map(&mut self.0).collect());
        Ok(())
    }
}

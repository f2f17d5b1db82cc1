//! `filter`: keeps the records a predicate accepts, in place.

use weir_actors::UserError;

use crate::operator::{Collector, OneInputOperator};

/// Keeps the records for which the predicate returns `true`.
#[derive(Clone)]
pub struct Filter<F>(pub F);

impl<T, F> OneInputOperator<T, T> for Filter<F>
where
    F: FnMut(&T) -> bool + Clone + Send + 'static,
{
    fn process_batch(
        &mut self,
        mut batch: Vec<T>,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        batch.retain(&mut self.0);
        out.collect_vec(batch);
        Ok(())
    }
}

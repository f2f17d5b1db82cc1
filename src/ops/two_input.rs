//! The generic two-input operator: the plumbing of connected streams in one place.

use std::marker::PhantomData;

use weir_actors::graph::OperatorFactory;
use weir_actors::{downcast_batch, Batch, RecordBatch, StreamOperator, UserError};

use crate::data::Data;
use crate::lifecycle::Lifecycle;
use crate::operator::{cloning_factory, typed_operator, Collector, TypedInputs};

/// An operator with two inputs of different types, driven batch by batch. Its
/// watermark is the minimum over both inputs (the runtime combines them); its
/// lifecycle hooks are [`Lifecycle`]'s.
pub trait TwoInputOperator<In1, In2, Out>: Lifecycle + Clone + Send + 'static {
    /// A batch from the first input.
    fn process_batch1(
        &mut self,
        batch: RecordBatch<In1>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// A batch from the second input.
    fn process_batch2(
        &mut self,
        batch: RecordBatch<In2>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// Event time (over both inputs) reached `watermark`.
    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        out.emit_watermark(watermark);
        Ok(())
    }

    /// The earliest processing time at which to call `on_processing_time`.
    fn next_processing_time(&self) -> Option<i64> {
        None
    }

    /// Processing time reached `now`.
    fn on_processing_time(
        &mut self,
        _now: i64,
        _out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        Ok(())
    }

    /// Input `input` (0 or 1) has ended ([`Lifecycle::finish`] follows the last).
    fn end_input(&mut self, _input: usize, _out: &mut Collector<Out>) -> Result<(), UserError> {
        Ok(())
    }

    /// The counters of its keyed states: keys held, entries expired (the
    /// keyed operators weir provides report theirs; the runtime adds them to
    /// the subtask's [`crate::SubtaskMetrics`] when it ends).
    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        Vec::new()
    }

    /// Answers a live query of its queryable state `name` (see
    /// [`crate::query`]): the keyed operators weir provides answer theirs;
    /// the default has none.
    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        _query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        Err(weir_actors::QueryError::no_queryable_state(uid, name))
    }
}

/// A [`TwoInputOperator`] as the runtime drives it.
pub(crate) struct TwoInput<In1, In2, Op>(Op, PhantomData<fn(In1, In2)>);

impl<In1: Data, In2: Data, Out: Data, Op: TwoInputOperator<In1, In2, Out>> TypedInputs<Out>
    for TwoInput<In1, In2, Op>
{
    const INPUTS: usize = 2;

    fn lifecycle(&mut self) -> &mut dyn Lifecycle {
        &mut self.0
    }

    fn process(
        &mut self,
        input: usize,
        batch: Batch,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        if input == 0 {
            self.0.process_batch1(downcast_batch::<In1>(batch)?, out)
        } else {
            self.0.process_batch2(downcast_batch::<In2>(batch)?, out)
        }
    }

    fn watermark(&mut self, watermark: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.process_watermark(watermark, out)
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.0.next_processing_time()
    }

    fn processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.on_processing_time(now, out)
    }

    fn end(&mut self, input: usize, out: &mut Collector<Out>) -> Result<(), UserError> {
        self.0.end_input(input, out)
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.0.state_metrics()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.0.query_state(uid, name, query)
    }
}

/// Wraps a typed two-input operator for the runtime.
pub(crate) fn two_input_operator<
    In1: Data,
    In2: Data,
    Out: Data,
    Op: TwoInputOperator<In1, In2, Out>,
>(
    op: Op,
) -> Box<dyn StreamOperator> {
    typed_operator::<Out, _>(TwoInput::<In1, In2, Op>(op, PhantomData))
}

/// A factory that clones `prototype` for every subtask.
pub(crate) fn two_input_factory<
    In1: Data,
    In2: Data,
    Out: Data,
    Op: TwoInputOperator<In1, In2, Out>,
>(
    prototype: Op,
) -> OperatorFactory {
    cloning_factory(prototype, two_input_operator::<In1, In2, Out, Op>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Records the checkpoint notifications it hears.
    #[derive(Clone, Default)]
    struct Listener {
        heard: Arc<Mutex<Vec<(&'static str, u64)>>>,
    }

    impl Lifecycle for Listener {
        fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), UserError> {
            self.heard.lock().unwrap().push(("complete", id));
            Ok(())
        }

        fn notify_checkpoint_aborted(&mut self, id: u64) -> Result<(), UserError> {
            self.heard.lock().unwrap().push(("aborted", id));
            Ok(())
        }
    }

    impl TwoInputOperator<u8, u8, u8> for Listener {
        fn process_batch1(
            &mut self,
            _batch: RecordBatch<u8>,
            _out: &mut Collector<u8>,
        ) -> Result<(), UserError> {
            Ok(())
        }

        fn process_batch2(
            &mut self,
            _batch: RecordBatch<u8>,
            _out: &mut Collector<u8>,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }

    #[test]
    fn a_two_input_operator_hears_of_completed_and_aborted_checkpoints() {
        let listener = Listener::default();
        let mut op = two_input_operator::<u8, u8, u8, _>(listener.clone());
        op.notify_checkpoint_complete(3).unwrap();
        op.notify_checkpoint_aborted(4).unwrap();
        assert_eq!(
            *listener.heard.lock().unwrap(),
            [("complete", 3), ("aborted", 4)]
        );
    }
}

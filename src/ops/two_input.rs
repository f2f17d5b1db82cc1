//! The generic two-input operator: the plumbing of connected streams in one place.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use weir_actors::graph::OperatorFactory;
use weir_actors::snapshot::OperatorSnapshot;
use weir_actors::{
    downcast_batch, Batch, Emitter, OperatorInfo, PendingSnapshot, RecordBatch, StreamOperator,
    UserError,
};

use crate::context::RuntimeContext;
use crate::data::Data;
use crate::operator::{initialize_with, snapshot_with, Collector};
use crate::state::{OperatorStateStore, StateInitContext, StateSnapshotContext};

/// An operator with two inputs of different types, driven batch by batch. Its
/// watermark is the minimum over both inputs (the runtime combines them).
pub trait TwoInputOperator<In1, In2, Out>: Clone + Send + 'static {
    /// Called once per instance, before `open`: restore state.
    fn initialize_state(&mut self, _ctx: &mut StateInitContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Called at every snapshot.
    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Called once per instance before the first batch.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
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
    /// Input `input` (0 or 1) has ended.
    fn end_input(&mut self, _input: usize, _out: &mut Collector<Out>) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` completed: what was snapshotted for it is durable.
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` will not complete.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Called once after the last output.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

struct TwoInputAdapter<In1, In2, Out, Op> {
    op: Op,
    out: Collector<Out>,
    operator_state: OperatorStateStore,
    _types: PhantomData<fn(In1, In2) -> Out>,
}

impl<In1: Data, In2: Data, Out: Data, Op: TwoInputOperator<In1, In2, Out>> StreamOperator
    for TwoInputAdapter<In1, In2, Out, Op>
{
    fn initialize_state(
        &mut self,
        info: &OperatorInfo,
        restored: Option<OperatorSnapshot>,
    ) -> Result<(), UserError> {
        let op = &mut self.op;
        initialize_with(&mut self.operator_state, info, restored, |ctx| {
            op.initialize_state(ctx)
        })
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        let op = &mut self.op;
        snapshot_with(&mut self.operator_state, checkpoint_id, false, |ctx| {
            op.snapshot_state(ctx)
        })
    }

    fn snapshot_savepoint(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        let op = &mut self.op;
        snapshot_with(&mut self.operator_state, checkpoint_id, true, |ctx| {
            op.snapshot_state(ctx)
        })
    }

    fn open(&mut self, info: &OperatorInfo) -> Result<(), UserError> {
        self.op.open(&RuntimeContext::new(info.clone()))
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: Batch,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        if input == 0 {
            self.op
                .process_batch1(downcast_batch::<In1>(batch)?, &mut self.out)?;
        } else {
            self.op
                .process_batch2(downcast_batch::<In2>(batch)?, &mut self.out)?;
        }
        self.out.flush_into(out);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut dyn Emitter,
    ) -> Result<(), UserError> {
        self.op.process_watermark(watermark, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.op.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut dyn Emitter) -> Result<(), UserError> {
        self.op.on_processing_time(now, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn end_input(&mut self, input: usize, out: &mut dyn Emitter) -> Result<(), UserError> {
        self.op.end_input(input, &mut self.out)?;
        self.out.flush_into(out);
        Ok(())
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.op.notify_checkpoint_complete(checkpoint_id)
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.op.notify_checkpoint_aborted(checkpoint_id)
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.op.close()
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
    Box::new(TwoInputAdapter {
        op,
        out: Collector::new(),
        operator_state: OperatorStateStore::default(),
        _types: PhantomData,
    })
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
    let prototype = Arc::new(Mutex::new(prototype));
    Arc::new(move |_info: &OperatorInfo| {
        let op = prototype
            .lock()
            .map_err(|_| "operator prototype lock poisoned by an earlier panic")?
            .clone();
        Ok(two_input_operator::<In1, In2, Out, Op>(op))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the checkpoint notifications it hears.
    #[derive(Clone, Default)]
    struct Listener {
        heard: Arc<Mutex<Vec<(&'static str, u64)>>>,
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
        fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), UserError> {
            self.heard.lock().unwrap().push(("complete", id));
            Ok(())
        }
        fn notify_checkpoint_aborted(&mut self, id: u64) -> Result<(), UserError> {
            self.heard.lock().unwrap().push(("aborted", id));
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

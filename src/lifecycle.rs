//! # One lifecycle for every operator and function
//!
//! Every user-facing function trait ([`ProcessFunction`](crate::ProcessFunction),
//! [`KeyedProcessFunction`](crate::KeyedProcessFunction), the broadcast
//! functions, [`OneInputOperator`](crate::OneInputOperator),
//! [`TwoInputOperator`](crate::TwoInputOperator),
//! [`Sink`](crate::sink::Sink), [`Source`](crate::source::Source),
//! [`TwoPhaseCommitSink`](crate::sink::TwoPhaseCommitSink)) builds on
//! [`Lifecycle`] and keeps only its own processing methods, so every kind of
//! operator hears every hook, in the same order (Flink's `RichFunction` and
//! `CheckpointListener` in one):
//!
//! 1. [`initialize_state`](Lifecycle::initialize_state): restore operator
//!    state (once, before `open`; `ctx.is_restored()` says whether the job
//!    restored a snapshot);
//! 2. [`open`](Lifecycle::open): before the first record;
//! 3. while records flow, [`snapshot_state`](Lifecycle::snapshot_state) at
//!    every checkpoint, then
//!    [`notify_checkpoint_complete`](Lifecycle::notify_checkpoint_complete) or
//!    [`notify_checkpoint_aborted`](Lifecycle::notify_checkpoint_aborted);
//! 4. [`finish`](Lifecycle::finish): the input ended (a source: it produced
//!    its last record) and what is held back was emitted; a sink flushes here
//!    (the final checkpoint, if any, comes after it);
//! 5. [`close`](Lifecycle::close): once, at the end, also after a failure of
//!    another hook is not guaranteed (a failed subtask is dropped).
//!
//! Every hook has a default that does nothing, so a function that needs none
//! says so in one line:
//!
//! ```
//! use weir::prelude::*;
//!
//! #[derive(Clone)]
//! struct Double;
//! impl Lifecycle for Double {}
//! impl ProcessFunction<u32, u32> for Double {
//!     fn process_element(&mut self, x: u32, _ctx: &mut ProcessContext, out: &mut Collector<u32>) -> Result<(), UserError> {
//!         out.collect(2 * x);
//!         Ok(())
//!     }
//! }
//! ```

use weir_actors::UserError;

use crate::context::RuntimeContext;
use crate::state::{StateInitContext, StateSnapshotContext};

/// The hooks every operator and function hears over its life (see the
/// module docs for their order). One instance per parallel subtask.
pub trait Lifecycle {
    /// When the job is built: the states the function uses, each descriptor
    /// given to `states.keyed(..)` (or `operator(..)`, `broadcast(..)`).
    /// Their schemas go into the job's plan (`--dump-plan`), and a restore
    /// checks them against the snapshot before the job starts
    /// (`check_restore`, `weir check-restore`; an incompatible state stops
    /// the start). A state not declared is checked at its first use.
    ///
    /// ```
    /// # use weir::state::ValueStateDescriptor;
    /// # use weir::state::schema::StateDeclarations;
    /// # struct Counter { count: ValueStateDescriptor<u64> }
    /// impl weir::Lifecycle for Counter {
    ///     fn declare_states(&self, states: &mut StateDeclarations) {
    ///         states.keyed(&self.count);
    ///     }
    /// }
    /// ```
    fn declare_states(&self, _states: &mut crate::state::schema::StateDeclarations) {}
    /// Once, before `open`: restore operator state (see [`crate::state`]).
    fn initialize_state(&mut self, _ctx: &mut StateInitContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Once, before the first record.
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        Ok(())
    }
    /// At every checkpoint, in order with the records: bring operator state up
    /// to date (keyed, broadcast and timer state are snapshotted by weir).
    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` completed: what was snapshotted for it is
    /// durable (a two-phase-commit sink commits here).
    fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// Checkpoint `checkpoint_id` will never complete.
    fn notify_checkpoint_aborted(&mut self, _checkpoint_id: u64) -> Result<(), UserError> {
        Ok(())
    }
    /// The input ended (a source: it gave its last record): flush what is
    /// held. Any final checkpoint comes after.
    fn finish(&mut self) -> Result<(), UserError> {
        Ok(())
    }
    /// Once, at the end, whether the subtask finished, failed or was
    /// canceled (as Flink's `close`; `finish` only runs when the input
    /// ended): release what the instance holds. A restart or the job's
    /// outcome waits until every subtask closed.
    fn close(&mut self) -> Result<(), UserError> {
        Ok(())
    }
}

/// Implements the listed [`Lifecycle`] hooks of an operator by calling the
/// same hook of its field `$field` (the user function it runs), for the
/// hooks the operator adds nothing to.
macro_rules! forward_lifecycle {
    ($field:tt: $($hook:ident),+ $(,)?) => {
        $(forward_lifecycle!(@hook $field $hook);)+
    };
    (@hook $field:tt initialize_state) => {
        fn initialize_state(&mut self, ctx: &mut crate::state::StateInitContext) -> Result<(), weir_actors::UserError> {
            self.$field.initialize_state(ctx)
        }
    };
    (@hook $field:tt open) => {
        fn open(&mut self, ctx: &crate::context::RuntimeContext) -> Result<(), weir_actors::UserError> {
            self.$field.open(ctx)
        }
    };
    (@hook $field:tt snapshot_state) => {
        fn snapshot_state(&mut self, ctx: &mut crate::state::StateSnapshotContext) -> Result<(), weir_actors::UserError> {
            self.$field.snapshot_state(ctx)
        }
    };
    (@hook $field:tt notify_checkpoint_complete) => {
        fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), weir_actors::UserError> {
            self.$field.notify_checkpoint_complete(checkpoint_id)
        }
    };
    (@hook $field:tt notify_checkpoint_aborted) => {
        fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), weir_actors::UserError> {
            self.$field.notify_checkpoint_aborted(checkpoint_id)
        }
    };
    (@hook $field:tt finish) => {
        fn finish(&mut self) -> Result<(), weir_actors::UserError> {
            self.$field.finish()
        }
    };
    (@hook $field:tt close) => {
        fn close(&mut self) -> Result<(), weir_actors::UserError> {
            self.$field.close()
        }
    };
}
pub(crate) use forward_lifecycle;

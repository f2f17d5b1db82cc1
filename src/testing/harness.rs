//! [`OperatorHarness`]: one operator instance, driven by hand.

use std::marker::PhantomData;
use std::sync::Arc;

use weir_actors::channel::ChannelEvent;
use weir_actors::snapshot::OperatorSnapshot;
use weir_actors::{
    downcast_batch, OperatorInfo, PendingSnapshot, RecordBatch, StreamOperator, UserError,
};

use crate::data::Data;
use crate::operator::{one_input_operator, OneInputOperator};
use crate::ops::keyed_process::{KeyedProcess, KeyedProcessFunction};
use crate::state::{Key, KeyedStateStore};

/// One instance of an operator, fed and inspected by a test.
///
/// ```
/// use weir::state::ValueStateDescriptor;
/// use weir::testing::OperatorHarness;
/// use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};
///
/// #[derive(Clone)]
/// struct Count(ValueStateDescriptor<u64>);
/// impl Lifecycle for Count {}
/// impl KeyedProcessFunction<u32, u32, u64> for Count {
///     fn process_element(&mut self, _v: u32, ctx: &mut KeyedContext<u32>, out: &mut Collector<u64>) -> Result<(), UserError> {
///         let mut count = ctx.state(&self.0)?;
///         let n = count.value().unwrap_or(0) + 1;
///         count.update(n);
///         out.collect(n);
///         Ok(())
///     }
/// }
///
/// let mut h = OperatorHarness::keyed(Count(ValueStateDescriptor::new("n")), |v: &u32| *v, 0, 1, 128);
/// h.open(None).unwrap();
/// h.process(vec![7, 7, 8]).unwrap();
/// assert_eq!(h.take_output(), vec![1, 2, 1]);
/// let snapshot = h.snapshot(1).unwrap();
///
/// let mut restored = OperatorHarness::keyed(Count(ValueStateDescriptor::new("n")), |v: &u32| *v, 0, 1, 128);
/// restored.open(Some(snapshot)).unwrap();
/// restored.process(vec![7]).unwrap();
/// assert_eq!(restored.take_output(), vec![3]);
/// ```
pub struct OperatorHarness<In, Out> {
    operator: Box<dyn StreamOperator>,
    info: OperatorInfo,
    events: Vec<ChannelEvent>,
    /// The processing time of a keyed harness's operator (starts at 0).
    clock: Option<crate::ops::keyed_core::ManualClock>,
    _types: PhantomData<fn(In) -> Out>,
}

impl<In: Data, Out: Data> OperatorHarness<In, Out> {
    fn with_operator(
        operator: Box<dyn StreamOperator>,
        subtask: usize,
        parallelism: usize,
        max_parallelism: usize,
    ) -> Self {
        OperatorHarness {
            operator,
            info: OperatorInfo {
                name: "harness".into(),
                uid: "harness".into(),
                subtask,
                parallelism,
                max_parallelism,
                job: "harness".into(),
                lineage: "harness".into(),
                restored_from: None,
                checkpointing: true,
                shared_state_dir: super::test_shared_dir(),
            },
            events: Vec::new(),
            clock: None,
            _types: PhantomData,
        }
    }

    /// Subtask `subtask` of `parallelism` of a [`OneInputOperator`].
    pub fn new<Op: OneInputOperator<In, Out>>(
        operator: Op,
        subtask: usize,
        parallelism: usize,
        max_parallelism: usize,
    ) -> Self {
        Self::with_operator(
            one_input_operator::<In, Out, Op>(operator),
            subtask,
            parallelism,
            max_parallelism,
        )
    }

    /// Subtask `subtask` of `parallelism` of a [`KeyedProcessFunction`] on records keyed by `key`.
    ///
    /// Feed it only records whose key group the subtask owns (see
    /// [`crate::keys::KeyGroupRange`]), as a job's key partitioning would.
    pub fn keyed<K: Key, F>(
        function: F,
        key: impl Fn(&In) -> K + Send + Sync + 'static,
        subtask: usize,
        parallelism: usize,
        max_parallelism: usize,
    ) -> Self
    where
        F: KeyedProcessFunction<K, In, Out>,
    {
        let backend = crate::state::BackendCell::default();
        if let Some(test_backend) = super::test_backend() {
            backend.set(test_backend);
        }
        let clock = crate::ops::keyed_core::ManualClock::default();
        let operator = KeyedProcess::new(function, Arc::new(key))
            .with_backend(backend)
            .with_clock(clock.clone());
        let mut harness = Self::new(operator, subtask, parallelism, max_parallelism);
        harness.clock = Some(clock);
        harness
    }

    /// Says that the snapshot given to [`open`](Self::open) is checkpoint
    /// `checkpoint_id`, as a restoring job does (a two-phase-commit sink
    /// compares it with what it committed).
    pub fn set_restored_checkpoint(&mut self, checkpoint_id: u64) -> &mut Self {
        self.info.restored_from = Some(checkpoint_id);
        self
    }

    /// Restores from `restored` (if any) and opens the operator.
    pub fn open(&mut self, restored: Option<OperatorSnapshot>) -> Result<(), UserError> {
        self.operator.initialize_state(&self.info, restored)?;
        self.operator.open(&self.info)
    }

    /// Processes records without timestamps.
    pub fn process(&mut self, records: Vec<In>) -> Result<(), UserError> {
        self.operator
            .process_batch(0, Box::new(RecordBatch::from(records)), &mut self.events)
    }

    /// Processes records with timestamps.
    pub fn process_with_timestamps(&mut self, records: Vec<(In, i64)>) -> Result<(), UserError> {
        let (records, timestamps) = records.into_iter().unzip();
        let batch = RecordBatch {
            records,
            timestamps: Some(timestamps),
        };
        self.operator
            .process_batch(0, Box::new(batch), &mut self.events)
    }

    /// Advances the operator's watermark.
    pub fn watermark(&mut self, watermark: i64) -> Result<(), UserError> {
        self.operator.process_watermark(watermark, &mut self.events)
    }

    /// The processing time the operator asked to be called at, if any.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.operator.next_processing_time()
    }

    /// Tells the operator that processing time is `now`. A keyed harness's
    /// operator reads its processing time from this clock (which starts at
    /// 0): state time-to-live and `next_processing_time` follow it.
    pub fn processing_time(&mut self, now: i64) -> Result<(), UserError> {
        if let Some(clock) = &self.clock {
            clock.set(now);
        }
        self.operator.on_processing_time(now, &mut self.events)
    }

    /// Sets a keyed harness's processing time to `now` without a callback
    /// (as time passing between records).
    pub fn set_processing_time(&mut self, now: i64) {
        if let Some(clock) = &self.clock {
            clock.set(now);
        }
    }

    /// The counters of the operator's keyed states (the keys stored, on the
    /// heap; expired entries removed on read, by sweeps, timers and
    /// compactions), as the subtask metrics report them.
    pub fn state_metrics(&self) -> Vec<weir_actors::StateMetrics> {
        self.operator.state_metrics()
    }

    /// Runs `look` on the keyed state store of a keyed harness's operator
    /// (opened, with keys of type `K`) and returns what it returns; `None` if
    /// the harness is not keyed, not open, or its keys are not `K`. Nothing
    /// else happens: no timer fires, no cleanup runs.
    ///
    /// ```
    /// # use weir::state::{KeyedStateStore, ValueStateDescriptor};
    /// # use weir::testing::OperatorHarness;
    /// # use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};
    /// # #[derive(Clone)]
    /// # struct Remember(ValueStateDescriptor<u32>);
    /// # impl Lifecycle for Remember {}
    /// # impl KeyedProcessFunction<u32, u32, ()> for Remember {
    /// #     fn process_element(&mut self, v: u32, ctx: &mut KeyedContext<u32>, _: &mut Collector<()>) -> Result<(), UserError> {
    /// #         ctx.state(&self.0)?.update(v);
    /// #         Ok(())
    /// #     }
    /// # }
    /// let mut h = OperatorHarness::keyed(Remember(ValueStateDescriptor::new("v")), |v: &u32| *v, 0, 1, 128);
    /// h.open(None).unwrap();
    /// h.process(vec![1, 2, 3]).unwrap();
    /// assert_eq!(h.keyed_state(|store: &KeyedStateStore<u32>| store.entries()), Some(3));
    /// ```
    pub fn keyed_state<K: Key, R: Send + 'static>(
        &self,
        look: impl FnOnce(&KeyedStateStore<K>) -> R + Send + 'static,
    ) -> Option<R> {
        let clock = self.clock.as_ref()?;
        let result = Arc::new(std::sync::Mutex::new(None));
        let slot = result.clone();
        clock.set_probe(Box::new(move |store: &dyn std::any::Any| {
            if let Some(store) = store.downcast_ref::<KeyedStateStore<K>>() {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(look(store));
            }
        }));
        // The operator runs the probe when asked for its next processing time.
        let _ = self.operator.next_processing_time();
        // Not run (the operator was not open): not left for a later call.
        drop(clock.take_probe());
        let taken = result.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken
    }

    /// Ends the input and closes the operator.
    pub fn end_input(&mut self) -> Result<(), UserError> {
        self.operator.end_input(0, &mut self.events)?;
        self.operator.close()
    }

    /// Takes the synchronous part of a snapshot; the returned value runs the rest.
    pub fn begin_snapshot(&mut self, checkpoint_id: u64) -> Result<PendingSnapshot, UserError> {
        self.operator.snapshot_state(checkpoint_id)
    }

    /// Takes a savepoint's snapshot (both parts, synchronously): self-contained
    /// and in the canonical format whatever the state backend.
    pub fn savepoint(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, UserError> {
        self.operator.snapshot_savepoint(checkpoint_id)?.finish()
    }

    /// Takes a snapshot (both parts, synchronously).
    pub fn snapshot(&mut self, checkpoint_id: u64) -> Result<OperatorSnapshot, UserError> {
        self.operator.snapshot_state(checkpoint_id)?.finish()
    }

    /// Tells the operator that checkpoint `checkpoint_id` completed (a
    /// two-phase-commit sink commits then).
    pub fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.operator.notify_checkpoint_complete(checkpoint_id)
    }

    /// Closes the operator without ending its input (as a canceled or
    /// failed subtask is).
    pub fn close(&mut self) -> Result<(), UserError> {
        self.operator.close()
    }

    /// The records emitted since the last take, with their timestamps.
    pub fn take_output_with_timestamps(&mut self) -> Vec<(Out, Option<i64>)> {
        let mut out = Vec::new();
        for event in std::mem::take(&mut self.events) {
            match event {
                ChannelEvent::Records(batch) => match downcast_batch::<Out>(batch) {
                    Ok(batch) => out.extend(batch.into_iter_with_timestamps()),
                    Err(msg) => panic!("harness output of the wrong type: {msg}"),
                },
                other => self.events.push(other),
            }
        }
        out
    }

    /// The records emitted since the last take.
    pub fn take_output(&mut self) -> Vec<Out> {
        self.take_output_with_timestamps()
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    /// The idleness changes emitted since the last take (`true`: went idle).
    pub fn take_idleness(&mut self) -> Vec<bool> {
        let mut changes = Vec::new();
        self.events.retain(|e| match e {
            ChannelEvent::Idle(idle) => {
                changes.push(*idle);
                false
            }
            _ => true,
        });
        changes
    }

    /// The watermarks emitted since the last take (records are kept).
    pub fn take_watermarks(&mut self) -> Vec<i64> {
        let mut watermarks = Vec::new();
        self.events.retain(|e| match e {
            ChannelEvent::Watermark(w) => {
                watermarks.push(*w);
                false
            }
            _ => true,
        });
        watermarks
    }
}

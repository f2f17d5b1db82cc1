//! `DataStream` and `KeyedStream`: the typed API over the job graph.
//!
//! Every transformation adds one operator (a vertex) to the environment's job
//! graph and returns the stream of its output. Partitioning methods
//! ([`rebalance`](DataStream::rebalance), [`shuffle`](DataStream::shuffle),
//! [`forward`](DataStream::forward), [`broadcast`](DataStream::broadcast),
//! [`key_by`](DataStream::key_by)) decide how records reach the *next* operator.
//! Settings ([`name`](DataStream::name), [`uid`](DataStream::uid),
//! [`set_parallelism`](DataStream::set_parallelism), ...) apply to the operator
//! that produced the stream.
//!
//! ```
//! use weir::StreamEnv;
//! let env = StreamEnv::with_parallelism(2);
//! let evens = env
//!     .generate(10, |i| i)
//!     .filter(|i| i % 2 == 0).name("evens")
//!     .rebalance()
//!     .map(|i| i * 10).set_parallelism(3)
//!     .collect();
//! env.execute_blocking("evens").unwrap();
//! let mut evens = evens.take();
//! evens.sort();
//! assert_eq!(evens, vec![0, 20, 40, 60, 80]);
//! ```

use std::fmt::{Debug, Display};
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;

use weir_actors::batch::{decode_batch, BatchDecoder};
use weir_actors::graph::{
    ChainingStrategy, OperatorFactory, PartitionerContext, PartitionerFactory, VertexId, VertexKind,
};
use weir_actors::partition::{
    Broadcast, Forward, Rebalance, SelectChannel, Shuffle, TypedPartitioner,
};
use weir_actors::Partitioning;

use crate::data::Data;
use crate::env::{EdgeDraft, StreamEnv, VertexDraft};
use crate::keys::{key_group, KeyGroupRange};
use crate::operator::{one_input_factory, OneInputOperator};
use crate::ops::broadcast_process::{
    BroadcastProcess, BroadcastProcessFunction, KeyedBroadcastProcess,
    KeyedBroadcastProcessFunction,
};
use crate::ops::filter::Filter;
use crate::ops::flat_map::FlatMap;
use crate::ops::keyed_process::{KeyedProcess, KeyedProcessFunction};
use crate::ops::map::Map;
use crate::ops::process::{Process, ProcessFunction};
use crate::ops::rolling::{Aggregate, Reduce, Rolling, RollingKind};
use crate::ops::two_input::two_input_factory;
use crate::side_output::OutputTag;
use crate::sink::{
    sink_preflight, CollectHandle, CollectSink, DiscardCounter, DiscardSink, PrintSink, Sink,
    SinkOperator, TextFileSink, TransactionalFileSink, TwoPhaseCommit,
};
use crate::state::{AggregateFunction, Key, MapStateDescriptor, StateData, StateDescriptor};
use crate::time::{TimestampsAndWatermarks, WatermarkStrategy};

#[derive(Clone)]
struct StreamInput {
    vertex: VertexId,
    partitioning: Option<Partitioning>,
    hash: Option<PartitionerFactory>,
    /// The key type of a keyed (hash) edge, as `std::any::type_name` spells it.
    key_type: Option<&'static str>,
    /// The side output of `vertex` this stream is (`None`: its main output).
    side_output: Option<Arc<str>>,
}

/// A stream of records of type `T`.
pub struct DataStream<T> {
    env: StreamEnv,
    inputs: Vec<StreamInput>,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: self.env.clone(),
            inputs: self.inputs.clone(),
            _records: PhantomData,
        }
    }
}

/// The partitioner of every non-key kind, for records of type `T`.
fn generic_partitioner<T: Data>(kind: Partitioning) -> PartitionerFactory {
    Arc::new(move |ctx: &PartitionerContext| match kind {
        Partitioning::Forward => Box::new(TypedPartitioner::<T, _>::new(
            Forward,
            ctx.channels,
            ctx.batch_size,
        )),
        Partitioning::Shuffle => Box::new(TypedPartitioner::<T, _>::new(
            Shuffle::seeded(ctx.sender_subtask as u64 + 1),
            ctx.channels,
            ctx.batch_size,
        )),
        Partitioning::Broadcast => Box::new(TypedPartitioner::<T, _>::new(
            Broadcast,
            ctx.channels,
            ctx.batch_size,
        )),
        // A hash edge always carries its own keyed partitioner; rebalance is the fallback.
        Partitioning::Rebalance | Partitioning::Hash => Box::new(TypedPartitioner::<T, _>::new(
            Rebalance::starting_at(ctx.sender_subtask),
            ctx.channels,
            ctx.batch_size,
        )),
    })
}

impl<T: Data> DataStream<T> {
    pub(crate) fn from_vertex(env: StreamEnv, vertex: VertexId) -> Self {
        DataStream {
            env,
            inputs: vec![StreamInput {
                vertex,
                partitioning: None,
                hash: None,
                key_type: None,
                side_output: None,
            }],
            _records: PhantomData,
        }
    }

    /// The environment the stream belongs to.
    pub fn env(&self) -> &StreamEnv {
        &self.env
    }

    /// Records `states` as declared by the operator producing this stream.
    pub(crate) fn with_declared_states(
        self,
        states: Vec<crate::state::schema::DeclaredState>,
    ) -> Self {
        if let [input] = self.inputs.as_slice() {
            self.env.builder().vertices[input.vertex].states = states;
        }
        self
    }

    /// Records that the operator producing this stream migrates the keys
    /// of its restored state from the key type `from` (shown in the plan).
    pub(crate) fn with_keys_migrated_from(self, from: Option<&str>) -> Self {
        if let (Some(from), [input]) = (from, self.inputs.as_slice()) {
            self.env.builder().vertices[input.vertex].migrates_keys_from = Some(from.to_string());
        }
        self
    }

    /// Adds an operator fed by this stream and returns its output stream.
    fn add_operator<U: Data>(self, name: &str, kind: VertexKind) -> DataStream<U> {
        let mut builder = self.env.builder();
        let key_type = self.inputs.iter().find_map(|i| i.key_type);
        let vertex = builder.add_vertex(VertexDraft {
            name: name.to_string(),
            uid: None,
            parallelism: None,
            fixed_parallelism: None,
            max_parallelism: None,
            chaining: ChainingStrategy::Always,
            kind,
            key_type,
            preflight: None,
            states: Vec::new(),
            migrates_keys_from: None,
        });
        for input in self.inputs {
            builder.edges.push(EdgeDraft {
                source: input.vertex,
                target: vertex,
                input: 0,
                partitioning: input.partitioning,
                hash: input.hash,
                generic: generic_partitioner::<T>,
                decoder: decode_batch::<T>,
                side_output: input.side_output,
            });
        }
        drop(builder);
        DataStream::from_vertex(self.env, vertex)
    }

    /// The records the operator producing this stream emitted to the side
    /// output `tag` (see [`crate::side_output`]), as Flink's
    /// `getSideOutput(tag)`. The producer's main output and each side output
    /// may be consumed any number of times.
    pub fn side_output<S: Data>(&self, tag: &OutputTag<S>) -> DataStream<S> {
        DataStream {
            env: self.env.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|input| StreamInput {
                    vertex: input.vertex,
                    partitioning: None,
                    hash: None,
                    key_type: None,
                    side_output: Some(tag.shared_id().clone()),
                })
                .collect(),
            _records: PhantomData,
        }
    }

    /// Applies a [`OneInputOperator`]: the general transformation every other one is built on.
    pub fn transform<U: Data, Op: OneInputOperator<T, U>>(
        self,
        name: &str,
        operator: Op,
    ) -> DataStream<U> {
        let factory = one_input_factory::<T, U, Op>(operator);
        self.add_operator(name, VertexKind::Operator { inputs: 1, factory })
    }

    /// One output record per input record.
    pub fn map<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.transform("Map", Map(f))
    }

    /// Keeps the records for which `predicate` returns `true`.
    pub fn filter<F>(self, predicate: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.transform("Filter", Filter(predicate))
    }

    /// Zero or more output records per input record.
    pub fn flat_map<U: Data, I, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> I + Clone + Send + 'static,
        I: IntoIterator<Item = U>,
    {
        self.transform("FlatMap", FlatMap(f))
    }

    /// Applies a [`ProcessFunction`] (a collector, a context, and errors).
    pub fn process<U: Data, P: ProcessFunction<T, U>>(self, function: P) -> DataStream<U> {
        self.transform("Process", Process::new(function))
    }

    /// Gives the records timestamps and the stream watermarks (see [`crate::time`]).
    pub fn assign_timestamps_and_watermarks(self, strategy: WatermarkStrategy<T>) -> DataStream<T> {
        self.transform(
            "Timestamps/Watermarks",
            TimestampsAndWatermarks::new(strategy),
        )
    }

    /// Partitions by key: records with equal keys go to the same subtask of the
    /// next operator (by key group, see [`crate::keys`]).
    pub fn key_by<K, F>(self, key: F) -> KeyedStream<T, K>
    where
        K: Key,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let key = Arc::new(key);
        let selector = key.clone();
        let hash: PartitionerFactory = Arc::new(move |ctx: &PartitionerContext| {
            let key = selector.clone();
            let max = ctx.receiver_max_parallelism;
            let ctx_channels = ctx.channels;
            let owners = KeyGroupRange::owners(max, ctx_channels);
            let select = SelectChannel::new(move |record: &T, channels: usize| {
                debug_assert_eq!(channels, ctx_channels);
                owners.owner(key_group(&key(record), max))
            });
            Box::new(TypedPartitioner::<T, _>::new(
                select,
                ctx.channels,
                ctx.batch_size,
            ))
        });
        let mut stream = self.partition(Partitioning::Hash, Some(hash));
        for input in &mut stream.inputs {
            input.key_type = Some(std::any::type_name::<K>());
        }
        KeyedStream {
            stream,
            key,
            key_migration: None,
            _key: PhantomData,
        }
    }

    fn partition(mut self, partitioning: Partitioning, hash: Option<PartitionerFactory>) -> Self {
        for input in &mut self.inputs {
            input.partitioning = Some(partitioning);
            input.hash = hash.clone();
            input.key_type = None;
        }
        self
    }

    /// Spreads records round-robin over the next operator's subtasks.
    pub fn rebalance(self) -> Self {
        self.partition(Partitioning::Rebalance, None)
    }

    /// Sends each record to a random subtask of the next operator.
    pub fn shuffle(self) -> Self {
        self.partition(Partitioning::Shuffle, None)
    }

    /// Sends subtask `i`'s records to subtask `i` of the next operator (equal parallelism).
    pub fn forward(self) -> Self {
        self.partition(Partitioning::Forward, None)
    }

    /// Sends every record to every subtask of the next operator.
    pub fn broadcast(self) -> Self {
        self.partition(Partitioning::Broadcast, None)
    }

    /// Merges this stream with another of the same type.
    pub fn union(mut self, other: DataStream<T>) -> Self {
        self.inputs.extend(other.inputs);
        self
    }

    fn configure(self, what: &str, apply: impl FnOnce(&mut VertexDraft)) -> Self {
        {
            let mut builder = self.env.builder();
            match self.inputs.as_slice() {
                [only] => apply(&mut builder.vertices[only.vertex]),
                _ => builder.errors.push(format!(
                    "{what} was called on a union of streams; call it on the operators before the union"
                )),
            }
        }
        self
    }

    /// Names the operator that produced this stream (shown in logs and errors).
    pub fn name(self, name: &str) -> Self {
        self.configure("name()", |v| v.name = name.to_string())
    }

    /// Gives the operator that produced this stream a stable id, unique in the job.
    pub fn uid(self, uid: &str) -> Self {
        self.configure("uid()", |v| v.uid = Some(uid.to_string()))
    }

    /// Sets the parallelism of the operator that produced this stream.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.configure("set_parallelism()", |v| v.parallelism = Some(parallelism))
    }

    /// Sets the max parallelism (number of key groups) of the operator that produced this stream.
    pub fn set_max_parallelism(self, max_parallelism: usize) -> Self {
        self.configure("set_max_parallelism()", |v| {
            v.max_parallelism = Some(max_parallelism)
        })
    }

    /// Runs the operator that produced this stream in an actor of its own.
    pub fn disable_chaining(self) -> Self {
        self.configure("disable_chaining()", |v| {
            v.chaining = ChainingStrategy::Never
        })
    }

    /// Starts a new chain at the operator that produced this stream.
    pub fn start_new_chain(self) -> Self {
        self.configure("start_new_chain()", |v| v.chaining = ChainingStrategy::Head)
    }

    /// Sends the stream into `sink`.
    pub fn add_sink<S: Sink<T>>(self, sink: S) -> DataStreamSink {
        let name = std::any::type_name::<S>()
            .rsplit("::")
            .next()
            .unwrap_or("Sink")
            .to_string();
        self.add_sink_named(&format!("Sink: {name}"), sink)
    }

    fn add_sink_named<S: Sink<T>>(self, name: &str, sink: S) -> DataStreamSink {
        let preflight = sink_preflight(&sink);
        let stream: DataStream<()> = self.transform(name, SinkOperator(sink));
        let stream = stream.configure("add_sink()", |v| v.preflight = Some(preflight));
        DataStreamSink { stream }
    }

    /// Gathers every record in memory; read them with the handle after the job.
    pub fn collect(self) -> CollectHandle<T> {
        let (sink, handle) = CollectSink::new();
        self.add_sink_named("Sink: Collect", sink);
        handle
    }

    /// Prints every record to stdout (its `Debug` form, one per line).
    pub fn print(self) -> DataStreamSink
    where
        T: Debug,
    {
        self.add_sink_named("Sink: Print", PrintSink::default())
    }

    /// Writes every record's `Display` form as a line of text: to the file at
    /// `path` with parallelism 1, else to `path/part-<subtask>`.
    pub fn write_text_lines(self, path: impl Into<PathBuf>) -> DataStreamSink
    where
        T: Display,
    {
        let path = path.into();
        let name = format!("Sink: {}", path.display());
        self.add_sink_named(&name, TextFileSink::new(path))
    }

    /// Writes every record's `Display` form as a line into files under `dir`,
    /// exactly once through failures: each checkpoint's records become visible
    /// (`part-*` files) when the checkpoint completes (see
    /// [`TransactionalFileSink`]).
    pub fn write_text_files_exactly_once(self, dir: impl Into<PathBuf>) -> DataStreamSink
    where
        T: Display,
    {
        let dir = dir.into();
        let name = format!("Sink: {} (exactly once)", dir.display());
        self.add_sink_named(&name, TwoPhaseCommit::new(TransactionalFileSink::new(dir)))
    }

    /// Drops every record; the counter tells how many arrived.
    pub fn discard(self) -> DiscardCounter {
        let (sink, counter) = DiscardSink::new();
        self.add_sink_named("Sink: Discard", sink);
        counter
    }
}

/// A sink in the job graph, for setting its name, uid and parallelism.
pub struct DataStreamSink {
    stream: DataStream<()>,
}

impl DataStreamSink {
    /// Names the sink.
    pub fn name(self, name: &str) -> Self {
        DataStreamSink {
            stream: self.stream.name(name),
        }
    }

    /// Gives the sink a stable id.
    pub fn uid(self, uid: &str) -> Self {
        DataStreamSink {
            stream: self.stream.uid(uid),
        }
    }

    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        DataStreamSink {
            stream: self.stream.set_parallelism(parallelism),
        }
    }

    /// Runs the sink in an actor of its own.
    pub fn disable_chaining(self) -> Self {
        DataStreamSink {
            stream: self.stream.disable_chaining(),
        }
    }
}

/// A stream partitioned by key: the next operator sees all records of a key in one subtask.
pub struct KeyedStream<T, K> {
    stream: DataStream<T>,
    key: Arc<dyn Fn(&T) -> K + Send + Sync>,
    key_migration: Option<crate::state::key_migration::KeyMigration<K>>,
    _key: PhantomData<fn() -> K>,
}

impl<T: Data, K: Key + Data> KeyedStream<T, K> {
    /// The key of `record`, as this stream computes it.
    pub fn key_of(&self, record: &T) -> K {
        (self.key)(record)
    }

    /// The key selector, shared.
    pub(crate) fn key_selector(&self) -> Arc<dyn Fn(&T) -> K + Send + Sync> {
        self.key.clone()
    }

    /// Takes the key migration [`migrate_keys_from`](Self::migrate_keys_from)
    /// set, for the keyed operator that follows.
    pub(crate) fn take_key_migration(
        &mut self,
    ) -> Option<crate::state::key_migration::KeyMigration<K>> {
        self.key_migration.take()
    }

    /// The environment of the stream.
    pub(crate) fn env_handle(&self) -> StreamEnv {
        self.stream.env().clone()
    }

    /// Applies a [`OneInputOperator`] to the keyed stream.
    pub fn transform<U: Data, Op: OneInputOperator<T, U>>(
        self,
        name: &str,
        operator: Op,
    ) -> DataStream<U> {
        self.without_keyed_state("transform")
            .transform(name, operator)
    }

    /// The stream, for an operator that keeps no keyed state (`what`): a
    /// key migration set on this stream would have nothing to migrate
    /// there, so the job is refused when it starts, naming the operator
    /// (instead of the migration going unused).
    fn without_keyed_state(self, what: &str) -> DataStream<T> {
        if let Some(migration) = &self.key_migration {
            self.stream.env().builder().errors.push(format!(
                "migrate_keys_from::<{}>() is followed by `{what}`, which keeps no keyed \
                 state to migrate: call it right before the keyed operator (process, \
                 reduce, aggregate, sum, min, max, a window, or connect(..).process)",
                migration.from
            ));
        }
        self.stream
    }

    /// One output record per input record.
    pub fn map<U: Data, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> U + Clone + Send + 'static,
    {
        self.without_keyed_state("map").map(f)
    }

    /// Keeps the records for which `predicate` returns `true`.
    pub fn filter<F>(self, predicate: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + 'static,
    {
        self.without_keyed_state("filter").filter(predicate)
    }

    /// Zero or more output records per input record.
    pub fn flat_map<U: Data, I, F>(self, f: F) -> DataStream<U>
    where
        F: FnMut(T) -> I + Clone + Send + 'static,
        I: IntoIterator<Item = U>,
    {
        self.without_keyed_state("flat_map").flat_map(f)
    }

    /// The keyed state of the next keyed operator ([`process`](Self::process),
    /// [`reduce`](Self::reduce), [`aggregate`](Self::aggregate), `sum`/`min`/`max`,
    /// a window, or the keyed side of [`connect`](Self::connect)), restored
    /// from a snapshot written under the key type `Old`, has its keys
    /// migrated with `migrate` (one-to-one: two old keys that become one are
    /// an error listing them) and re-hashed to their key groups. Without it,
    /// a restore under another key type is refused. The snapshot must hold
    /// the state in full (a savepoint, or a heap checkpoint), not
    /// incremental RocksDB files. Followed by an operator without keyed
    /// state (`map`, `filter`, `add_sink`, ...), the job is refused.
    ///
    /// ```
    /// # let env = weir::StreamEnv::new();
    /// // Keys were `u64` user ids; now they are strings.
    /// let by_user = env
    ///     .from_collection(vec![("7".to_string(), 1u64)])
    ///     .key_by(|r: &(String, u64)| r.0.clone())
    ///     .migrate_keys_from::<u64>(|id| id.to_string());
    /// # let _ = by_user;
    /// ```
    pub fn migrate_keys_from<Old: serde::de::DeserializeOwned + 'static>(
        mut self,
        migrate: impl Fn(Old) -> K + Send + Sync + 'static,
    ) -> Self {
        self.key_migration = Some(crate::state::key_migration::KeyMigration::new(migrate));
        self
    }

    /// Applies a [`KeyedProcessFunction`]: per-key state and timers.
    pub fn process<U: Data, P: KeyedProcessFunction<K, T, U>>(self, function: P) -> DataStream<U> {
        self.keyed_process("KeyedProcess", function)
    }

    /// Runs `function` in a [`KeyedProcess`] operator named `name`, with the
    /// states it declares and the key migration set on this stream: the one
    /// way every keyed function (`process`, `reduce`, `aggregate`, `sum`, ...)
    /// becomes an operator.
    fn keyed_process<U: Data, P: KeyedProcessFunction<K, T, U>>(
        self,
        name: &str,
        function: P,
    ) -> DataStream<U> {
        let key = self.key.clone();
        let backend = self.stream.env().backend_cell();
        let states = declared_states(&function);
        let migration = self.key_migration;
        let from = migration.as_ref().map(|m| m.from);
        let operator = KeyedProcess::new(function, key)
            .with_backend(backend)
            .with_key_migration(migration);
        self.stream
            .transform(name, operator)
            .with_declared_states(states)
            .with_keys_migrated_from(from)
    }

    /// Folds each key's records with `reduce(accumulated, next)`, emitting every new result.
    pub fn reduce<F>(self, reduce: F) -> DataStream<T>
    where
        T: StateData,
        F: Fn(T, T) -> T + Send + Sync + 'static,
    {
        self.keyed_process("Reduce", Reduce::new(reduce))
    }

    /// Feeds each key's records to `function`, emitting every new result.
    pub fn aggregate<A>(self, function: A) -> DataStream<A::Out>
    where
        A: AggregateFunction<In = T>,
        A::Out: Data,
    {
        self.keyed_process("Aggregate", Aggregate::new(function))
    }

    fn rolling<N, F>(self, name: &str, kind: RollingKind, value: F) -> DataStream<(K, N)>
    where
        N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.keyed_process(name, Rolling::new(kind, value))
    }

    /// Emits `(key, running sum of value(record))` for every record.
    pub fn sum<N, F>(self, value: F) -> DataStream<(K, N)>
    where
        N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.rolling("Sum", RollingKind::Sum, value)
    }

    /// Emits `(key, running minimum of value(record))` for every record.
    pub fn min<N, F>(self, value: F) -> DataStream<(K, N)>
    where
        N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.rolling("Min", RollingKind::Min, value)
    }

    /// Emits `(key, running maximum of value(record))` for every record.
    pub fn max<N, F>(self, value: F) -> DataStream<(K, N)>
    where
        N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.rolling("Max", RollingKind::Max, value)
    }

    /// Sends the keyed stream into `sink`.
    pub fn add_sink<S: Sink<T>>(self, sink: S) -> DataStreamSink {
        self.without_keyed_state("add_sink").add_sink(sink)
    }

    /// Gathers every record in memory.
    pub fn collect(self) -> CollectHandle<T> {
        self.without_keyed_state("collect").collect()
    }
}

/// A stream whose every record reaches every subtask of the operator it is
/// connected to, where it may write broadcast state (see [`crate::state`]).
pub struct BroadcastStream<B> {
    stream: DataStream<B>,
    states: Vec<String>,
}

impl<B> BroadcastStream<B> {
    /// The names of the broadcast states declared for this stream.
    pub fn state_names(&self) -> &[String] {
        &self.states
    }
}

impl<T: Data> DataStream<T> {
    /// Turns the stream into a broadcast stream for the broadcast states
    /// `descriptors` (Flink's `broadcast(descriptors)`; the argument-less
    /// [`broadcast`](DataStream::broadcast) stays the partitioning).
    pub fn broadcast_state<K: Key, V: StateData>(
        self,
        descriptors: &[MapStateDescriptor<K, V>],
    ) -> BroadcastStream<T> {
        let states = descriptors.iter().map(|d| d.name().to_string()).collect();
        BroadcastStream {
            stream: self.broadcast(),
            states,
        }
    }

    /// Adds a two-input operator fed by this stream (input 0) and `other` (input 1).
    fn add_two_input<B: Data, U: Data>(
        self,
        other: DataStream<B>,
        name: &str,
        factory: OperatorFactory,
    ) -> DataStream<U> {
        let mut builder = self.env.builder();
        let key_type = self
            .inputs
            .iter()
            .chain(&other.inputs)
            .find_map(|i| i.key_type);
        let vertex = builder.add_vertex(VertexDraft {
            name: name.to_string(),
            uid: None,
            parallelism: None,
            fixed_parallelism: None,
            max_parallelism: None,
            chaining: ChainingStrategy::Always,
            kind: VertexKind::Operator { inputs: 2, factory },
            key_type,
            preflight: None,
            states: Vec::new(),
            migrates_keys_from: None,
        });
        type Typed = (fn(Partitioning) -> PartitionerFactory, BatchDecoder);
        let first: Typed = (generic_partitioner::<T>, decode_batch::<T>);
        let second: Typed = (generic_partitioner::<B>, decode_batch::<B>);
        let first = self.inputs.into_iter().map(|i| (i, 0usize, first));
        let second = other.inputs.into_iter().map(|i| (i, 1usize, second));
        for (input, target_input, (generic, decoder)) in first.chain(second) {
            builder.edges.push(EdgeDraft {
                source: input.vertex,
                target: vertex,
                input: target_input,
                partitioning: input.partitioning,
                hash: input.hash,
                generic,
                decoder,
                side_output: input.side_output,
            });
        }
        drop(builder);
        DataStream::from_vertex(self.env, vertex)
    }

    /// Adds a [`TwoInputOperator`](crate::TwoInputOperator) fed by this
    /// stream (its first input) and `other` (its second), as Flink's
    /// `connect(other).transform(..)`.
    pub fn transform_two_inputs<B: Data, U: Data, Op: crate::TwoInputOperator<T, B, U>>(
        self,
        other: DataStream<B>,
        name: &str,
        operator: Op,
    ) -> DataStream<U> {
        let factory = two_input_factory::<T, B, U, _>(operator);
        self.add_two_input(other, name, factory)
    }

    /// Connects this stream with a broadcast stream.
    pub fn connect<B: Data>(self, broadcast: BroadcastStream<B>) -> BroadcastConnectedStream<T, B> {
        BroadcastConnectedStream {
            stream: self,
            broadcast,
        }
    }
}

/// A stream connected with a broadcast stream; `process` gives it a function.
pub struct BroadcastConnectedStream<T, B> {
    stream: DataStream<T>,
    broadcast: BroadcastStream<B>,
}

impl<T: Data, B: Data> BroadcastConnectedStream<T, B> {
    /// Applies a [`BroadcastProcessFunction`].
    pub fn process<U: Data, F: BroadcastProcessFunction<T, B, U>>(
        self,
        function: F,
    ) -> DataStream<U> {
        let factory = two_input_factory::<T, B, U, _>(BroadcastProcess::new(function));
        self.stream
            .add_two_input(self.broadcast.stream, "BroadcastProcess", factory)
    }
}

/// A keyed stream connected with a broadcast stream; `process` gives it a function.
pub struct KeyedBroadcastConnectedStream<T, K, B> {
    keyed: KeyedStream<T, K>,
    broadcast: BroadcastStream<B>,
}

impl<T: Data, K: Key + Data> KeyedStream<T, K> {
    /// Connects this keyed stream with a broadcast stream.
    pub fn connect<B: Data>(
        self,
        broadcast: BroadcastStream<B>,
    ) -> KeyedBroadcastConnectedStream<T, K, B> {
        KeyedBroadcastConnectedStream {
            keyed: self,
            broadcast,
        }
    }
}

impl<T: Data, K: Key + Data, B: Data> KeyedBroadcastConnectedStream<T, K, B> {
    /// Applies a [`KeyedBroadcastProcessFunction`].
    pub fn process<U: Data, F: KeyedBroadcastProcessFunction<K, T, B, U>>(
        self,
        function: F,
    ) -> DataStream<U> {
        let states = declared_states(&function);
        let migration = self.keyed.key_migration;
        let from = migration.as_ref().map(|m| m.from);
        let operator = KeyedBroadcastProcess::new(function, self.keyed.key.clone())
            .with_backend(self.keyed.stream.env().backend_cell())
            .with_key_migration(migration);
        let factory = two_input_factory::<T, B, U, _>(operator);
        self.keyed
            .stream
            .add_two_input(self.broadcast.stream, "KeyedBroadcastProcess", factory)
            .with_declared_states(states)
            .with_keys_migrated_from(from)
    }
}

/// The keyed states `function` declares.
pub(crate) fn declared_states(
    function: &impl crate::Lifecycle,
) -> Vec<crate::state::schema::DeclaredState> {
    let mut states = crate::state::schema::StateDeclarations::default();
    function.declare_states(&mut states);
    states.into_states()
}

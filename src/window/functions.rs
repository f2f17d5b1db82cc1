//! What runs when a window fires: the user's [`ProcessWindowFunction`] (with
//! the window, time, keyed state and side outputs in its [`WindowContext`]),
//! fed by an incremental aggregate or by the window's elements.
//!
//! Inside the operator a window's contents are either an incremental
//! accumulator (`Incremental`: reduce or aggregate, merged when sessions
//! merge) or the elements themselves (`Evicting`: needed by evictors and
//! by a process function alone).

use std::marker::PhantomData;
use std::sync::Arc;

use weir_actors::UserError;

use crate::data::Data;
use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::Collector;
use crate::ops::keyed_process::KeyedContext;
use crate::side_output::OutputTag;
use crate::state::{AggregateFunction, Key, StateData, StateDescriptor, StateError};

use super::evictors::{Evictor, EvictorContext, TimestampedValue};
use super::window_state::WindowStateDescriptor;

/// What a [`ProcessWindowFunction`] sees while its window fires.
pub struct WindowContext<'c, 'k, K, W> {
    pub(crate) window: &'c W,
    pub(crate) keyed: &'c mut KeyedContext<'k, K>,
    pub(crate) processing_time: i64,
}

impl<'k, K: Key, W> WindowContext<'_, 'k, K, W> {
    /// The window that fires.
    pub fn window(&self) -> &W {
        self.window
    }

    /// The key of the window.
    pub fn key(&self) -> &K {
        self.keyed.current_key()
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.keyed.current_watermark()
    }

    /// The current processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time
    }

    /// The key's state that outlives windows (Flink's `globalState()`):
    /// `descriptor` opened for the window's key.
    pub fn global_state<'s, D: StateDescriptor>(
        &'s mut self,
        descriptor: &'s D,
    ) -> Result<D::Ref<'s, K>, StateError> {
        self.keyed.state(descriptor)
    }

    /// The keyed context, for the descriptors' helpers (`count.value(ctx.keyed())`).
    pub fn keyed(&mut self) -> &mut KeyedContext<'k, K> {
        self.keyed
    }

    /// Emits `value` to the side output `tag`.
    pub fn output<S: Data>(&mut self, tag: &OutputTag<S>, value: S) {
        self.keyed.output(tag, value);
    }
}

impl<'k, K: Key, W: Key> WindowContext<'_, 'k, K, W> {
    /// The state `descriptor` describes for this key and this window (Flink's
    /// `windowState()`): see [`window_state`](super::window_state). Remove
    /// it in [`ProcessWindowFunction::clear`], which runs when the window is
    /// cleaned up.
    pub fn window_state<'s, D: WindowStateDescriptor<W>>(
        &'s mut self,
        descriptor: &'s D,
    ) -> Result<D::Ref<'s, K>, StateError> {
        let window = self.window.clone();
        let windows = self.keyed.state(descriptor.windows())?;
        Ok(D::scope(windows, window))
    }
}

/// The function a window runs when it fires, as Flink's
/// `ProcessWindowFunction`: the key, the window's elements (or its one
/// aggregate, when combined with `reduce` or `aggregate`), and a context with
/// the window and time. Results carry the timestamp `window.max_timestamp()`.
///
/// ```
/// use weir::window::{ProcessWindowFunction, TimeWindow, WindowContext};
/// use weir::{Collector, Lifecycle, UserError};
///
/// /// Counts a window's elements.
/// #[derive(Clone)]
/// struct CountPerWindow;
/// impl Lifecycle for CountPerWindow {}
/// impl ProcessWindowFunction<String, u32, (String, i64, usize), TimeWindow> for CountPerWindow {
///     fn process(&mut self, key: &String, ctx: &mut WindowContext<String, TimeWindow>, elements: Vec<u32>, out: &mut Collector<(String, i64, usize)>) -> Result<(), UserError> {
///         out.collect((key.clone(), ctx.window().start, elements.len()));
///         Ok(())
///     }
/// }
/// ```
pub trait ProcessWindowFunction<K, In, Out, W>: Lifecycle + Clone + Send + 'static {
    /// The window fired.
    fn process(
        &mut self,
        key: &K,
        ctx: &mut WindowContext<'_, '_, K, W>,
        elements: Vec<In>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;

    /// The window is removed (clean up what the function keeps for it).
    fn clear(&mut self, _ctx: &mut WindowContext<'_, '_, K, W>) -> Result<(), UserError> {
        Ok(())
    }
}

/// Emits the elements it is given (`reduce` and `aggregate` without a
/// process function).
pub struct PassThrough<T>(PhantomData<fn() -> T>);

impl<T> Clone for PassThrough<T> {
    fn clone(&self) -> Self {
        PassThrough(PhantomData)
    }
}

impl<T> Default for PassThrough<T> {
    fn default() -> Self {
        PassThrough(PhantomData)
    }
}

impl<T> Lifecycle for PassThrough<T> {}

impl<K, T: 'static, W> ProcessWindowFunction<K, T, T, W> for PassThrough<T> {
    fn process(
        &mut self,
        _: &K,
        _: &mut WindowContext<'_, '_, K, W>,
        elements: Vec<T>,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        out.extend(elements);
        Ok(())
    }
}

/// An incremental fold of a window's elements (reduce, or an aggregate function).
pub(crate) trait Fold<T>: Clone + Send + Sync + 'static {
    /// What a window keeps.
    type Acc: StateData;
    /// What the function is given.
    type Out;
    /// The accumulator of one element.
    fn first(&self, value: T) -> Self::Acc;
    /// Adds an element.
    fn add(&self, acc: &mut Self::Acc, value: T);
    /// Merges two windows' accumulators (sessions).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// `reduce(a, b)` as a fold.
pub(crate) struct ReduceFold<F>(pub Arc<F>);

impl<F> Clone for ReduceFold<F> {
    fn clone(&self) -> Self {
        ReduceFold(self.0.clone())
    }
}

impl<T: StateData, F: Fn(T, T) -> T + Send + Sync + 'static> Fold<T> for ReduceFold<F> {
    type Acc = T;
    type Out = T;

    fn first(&self, value: T) -> T {
        value
    }

    fn add(&self, acc: &mut T, value: T) {
        *acc = (self.0)(acc.clone(), value);
    }

    fn merge(&self, acc: &mut T, other: T) {
        self.add(acc, other);
    }

    fn result(&self, acc: &T) -> T {
        acc.clone()
    }
}

/// An [`AggregateFunction`] as a fold.
pub(crate) struct AggregateFold<A>(pub Arc<A>);

impl<A> Clone for AggregateFold<A> {
    fn clone(&self) -> Self {
        AggregateFold(self.0.clone())
    }
}

impl<T, A: AggregateFunction<In = T>> Fold<T> for AggregateFold<A> {
    type Acc = A::Acc;
    type Out = A::Out;

    fn first(&self, value: T) -> A::Acc {
        let mut acc = self.0.create_accumulator();
        self.0.add(value, &mut acc);
        acc
    }

    fn add(&self, acc: &mut A::Acc, value: T) {
        self.0.add(value, acc);
    }

    fn merge(&self, acc: &mut A::Acc, other: A::Acc) {
        self.0.merge(acc, other);
    }

    fn result(&self, acc: &A::Acc) -> A::Out {
        self.0.get_result(acc)
    }
}

/// How a window keeps its contents and what runs when it fires.
pub(crate) trait WindowLogic<K, T, W, Out>: Lifecycle + Clone + Send + 'static {
    /// A window's contents.
    type Acc: StateData;
    /// Adds an element to a window's contents (`None`: the window is empty).
    fn add(&self, contents: &mut Option<Self::Acc>, value: T, timestamp: Option<i64>);
    /// Merges another window's contents into these (sessions).
    fn merge(&self, contents: &mut Option<Self::Acc>, other: Option<Self::Acc>);
    /// Runs the window function; may change the contents (evictors).
    fn fire(
        &mut self,
        key: &K,
        contents: &mut Self::Acc,
        evicting: EvictorContext,
        ctx: &mut WindowContext<'_, '_, K, W>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
    /// The window is removed.
    fn clear(&mut self, ctx: &mut WindowContext<'_, '_, K, W>) -> Result<(), UserError>;
}

/// Fires `window` (its output stamped `max_timestamp`) with `contents`, at
/// processing time `now` and `watermark`: what every window operator does
/// when a window fires.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fire_window<K: Key, T, W, Out, L: WindowLogic<K, T, W, Out>>(
    logic: &mut L,
    window: &W,
    max_timestamp: i64,
    contents: &mut L::Acc,
    (now, watermark): (i64, i64),
    ctx: &mut KeyedContext<'_, K>,
    out: &mut Collector<Out>,
) -> Result<(), UserError> {
    let key = ctx.current_key().clone();
    out.set_timestamp(Some(max_timestamp));
    let mut wctx = WindowContext {
        window,
        keyed: ctx,
        processing_time: now,
    };
    let evicting = EvictorContext {
        watermark,
        processing_time: now,
    };
    logic.fire(&key, contents, evicting, &mut wctx, out)
}

/// Fires the window `[start, end)`, made by `window`, with the aggregate
/// `acc` (its output stamped `end - 1`), at the key's current processing
/// time and watermark: how the slice and session engines fire.
pub(crate) fn fire_aggregate<K, T, W, Out, F, P>(
    logic: &mut Incremental<F, P>,
    window: fn(i64, i64) -> W,
    (start, end): (i64, i64),
    acc: &mut F::Acc,
    ctx: &mut KeyedContext<'_, K>,
    out: &mut Collector<Out>,
) -> Result<(), UserError>
where
    K: Key,
    F: Fold<T>,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    T: 'static,
    W: 'static,
    Out: 'static,
{
    let now = ctx.current_processing_time();
    let watermark = ctx.current_watermark();
    fire_window::<K, T, W, Out, _>(
        logic,
        &window(start, end),
        end.saturating_sub(1),
        acc,
        (now, watermark),
        ctx,
        out,
    )
}

/// Runs `logic`'s `clear` for `window`, which is removed (cleaned up).
pub(crate) fn clear_window<K: Key, T, W, Out, L: WindowLogic<K, T, W, Out>>(
    logic: &mut L,
    window: &W,
    now: i64,
    ctx: &mut KeyedContext<'_, K>,
) -> Result<(), UserError> {
    let mut wctx = WindowContext {
        window,
        keyed: ctx,
        processing_time: now,
    };
    logic.clear(&mut wctx)
}

/// Contents folded as elements arrive; the function gets the one result.
pub(crate) struct Incremental<F, P> {
    pub fold: F,
    pub function: P,
}

impl<F: Clone, P: Clone> Clone for Incremental<F, P> {
    fn clone(&self) -> Self {
        Incremental {
            fold: self.fold.clone(),
            function: self.function.clone(),
        }
    }
}

impl<F, P: Lifecycle> Lifecycle for Incremental<F, P> {
    forward_lifecycle!(function: initialize_state, open, snapshot_state, notify_checkpoint_complete,
        notify_checkpoint_aborted, finish, close);
}

impl<K, T, W, Out, F, P> WindowLogic<K, T, W, Out> for Incremental<F, P>
where
    F: Fold<T>,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    K: 'static,
    T: 'static,
    W: 'static,
    Out: 'static,
{
    type Acc = F::Acc;

    #[inline]
    fn add(&self, contents: &mut Option<F::Acc>, value: T, _: Option<i64>) {
        match contents {
            Some(acc) => self.fold.add(acc, value),
            None => *contents = Some(self.fold.first(value)),
        }
    }

    fn merge(&self, contents: &mut Option<F::Acc>, other: Option<F::Acc>) {
        match (contents.as_mut(), other) {
            (Some(acc), Some(other)) => self.fold.merge(acc, other),
            (None, other) => *contents = other,
            (Some(_), None) => {}
        }
    }

    fn fire(
        &mut self,
        key: &K,
        contents: &mut F::Acc,
        _: EvictorContext,
        ctx: &mut WindowContext<'_, '_, K, W>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let result = self.fold.result(contents);
        self.function.process(key, ctx, vec![result], out)
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, '_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

/// What the function of a window that keeps its elements is given: the
/// elements, or their fold.
pub(crate) trait ElementsFn<T>: Clone + Send + Sync + 'static {
    type Out;
    fn apply(&self, elements: &[TimestampedValue<T>]) -> Vec<Self::Out>;
}

/// The elements themselves.
pub(crate) struct AllElements;

impl Clone for AllElements {
    fn clone(&self) -> Self {
        AllElements
    }
}

impl<T: Clone + 'static> ElementsFn<T> for AllElements {
    type Out = T;

    fn apply(&self, elements: &[TimestampedValue<T>]) -> Vec<T> {
        elements.iter().map(|e| e.value.clone()).collect()
    }
}

/// The fold of the elements (none if there are none).
pub(crate) struct Folded<F>(pub F);

impl<F: Clone> Clone for Folded<F> {
    fn clone(&self) -> Self {
        Folded(self.0.clone())
    }
}

impl<T: Clone + 'static, F: Fold<T>> ElementsFn<T> for Folded<F> {
    type Out = F::Out;

    fn apply(&self, elements: &[TimestampedValue<T>]) -> Vec<F::Out> {
        let mut values = elements.iter().map(|e| e.value.clone());
        let Some(first) = values.next() else {
            return Vec::new();
        };
        let mut acc = self.0.first(first);
        for value in values {
            self.0.add(&mut acc, value);
        }
        vec![self.0.result(&acc)]
    }
}

/// Contents kept as elements; an evictor trims them around the function.
pub(crate) struct Evicting<E, G, P> {
    pub evictor: E,
    pub elements: G,
    pub function: P,
}

impl<E: Clone, G: Clone, P: Clone> Clone for Evicting<E, G, P> {
    fn clone(&self) -> Self {
        Evicting {
            evictor: self.evictor.clone(),
            elements: self.elements.clone(),
            function: self.function.clone(),
        }
    }
}

impl<E, G, P: Lifecycle> Lifecycle for Evicting<E, G, P> {
    forward_lifecycle!(function: initialize_state, open, snapshot_state, notify_checkpoint_complete,
        notify_checkpoint_aborted, finish, close);
}

impl<K, T, W, Out, E, G, P> WindowLogic<K, T, W, Out> for Evicting<E, G, P>
where
    T: StateData,
    E: Evictor<T, W>,
    G: ElementsFn<T>,
    P: ProcessWindowFunction<K, G::Out, Out, W>,
    K: 'static,
    W: 'static,
    Out: 'static,
{
    type Acc = Vec<TimestampedValue<T>>;

    fn add(&self, contents: &mut Option<Self::Acc>, value: T, timestamp: Option<i64>) {
        contents
            .get_or_insert_with(Vec::new)
            .push(TimestampedValue { value, timestamp });
    }

    fn merge(&self, contents: &mut Option<Self::Acc>, other: Option<Self::Acc>) {
        if let Some(other) = other {
            contents.get_or_insert_with(Vec::new).extend(other);
        }
    }

    fn fire(
        &mut self,
        key: &K,
        contents: &mut Self::Acc,
        evicting: EvictorContext,
        ctx: &mut WindowContext<'_, '_, K, W>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let window = ctx.window;
        self.evictor.evict_before(contents, window, &evicting);
        let inputs = self.elements.apply(contents);
        self.function.process(key, ctx, inputs, out)?;
        self.evictor.evict_after(contents, window, &evicting);
        Ok(())
    }

    fn clear(&mut self, ctx: &mut WindowContext<'_, '_, K, W>) -> Result<(), UserError> {
        self.function.clear(ctx)
    }
}

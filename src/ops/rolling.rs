//! Rolling aggregations on a keyed stream: `reduce`, `aggregate`, `sum`, `min`,
//! `max`. Each keeps one value per key in keyed state and emits the updated
//! result for every record (as Flink's keyed `reduce` and `sum` do).

use crate::lifecycle::Lifecycle;
use std::sync::Arc;

use weir_actors::UserError;

use super::keyed_process::{KeyedContext, KeyedProcessFunction};
use crate::operator::Collector;
use crate::state::schema::StateDeclarations;
use crate::state::{
    AggregateFunction, AggregatingStateDescriptor, Key, StateData, ValueStateDescriptor,
};

/// Folds each key's records with a reduce function and emits every new result.
pub struct Reduce<T, F> {
    reduce: Arc<F>,
    state: ValueStateDescriptor<T>,
}

impl<T, F> Clone for Reduce<T, F> {
    fn clone(&self) -> Self {
        Reduce {
            reduce: self.reduce.clone(),
            state: ValueStateDescriptor::new("reduce"),
        }
    }
}

impl<T, F> Reduce<T, F> {
    /// Reduces with `reduce(accumulated, next)`.
    pub fn new(reduce: F) -> Self {
        Reduce {
            reduce: Arc::new(reduce),
            state: ValueStateDescriptor::new("reduce"),
        }
    }
}

impl<T: StateData, F: Fn(T, T) -> T + Send + Sync + 'static> Lifecycle for Reduce<T, F> {
    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.state);
    }
}

impl<K: Key, T: StateData, F: Fn(T, T) -> T + Send + Sync + 'static> KeyedProcessFunction<K, T, T>
    for Reduce<T, F>
{
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        let mut state = ctx.state(&self.state)?;
        let reduced = match state.value() {
            Some(current) => (self.reduce)(current, value),
            None => value,
        };
        state.update(reduced.clone());
        out.collect(reduced);
        Ok(())
    }
}

/// Feeds each key's records to an [`AggregateFunction`] and emits every new result.
pub struct Aggregate<A> {
    state: AggregatingStateDescriptor<A>,
}

impl<A> Clone for Aggregate<A> {
    fn clone(&self) -> Self {
        Aggregate {
            state: self.state.clone(),
        }
    }
}

impl<A: AggregateFunction> Aggregate<A> {
    /// Aggregates with `function`.
    pub fn new(function: A) -> Self {
        Aggregate {
            state: AggregatingStateDescriptor::new("aggregate", function),
        }
    }
}

impl<A> Lifecycle for Aggregate<A>
where
    A: AggregateFunction,
    A::In: Send + 'static,
    A::Out: Clone + Send + 'static,
{
    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.state);
    }
}

impl<K: Key, A> KeyedProcessFunction<K, A::In, A::Out> for Aggregate<A>
where
    A: AggregateFunction,
    A::In: Send + 'static,
    A::Out: Clone + Send + 'static,
{
    fn process_element(
        &mut self,
        value: A::In,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<A::Out>,
    ) -> Result<(), UserError> {
        let mut state = ctx.state(&self.state)?;
        state.add(value);
        if let Some(result) = state.get() {
            out.collect(result);
        }
        Ok(())
    }
}

/// How [`Rolling`] combines a key's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollingKind {
    /// The running sum.
    Sum,
    /// The running minimum.
    Min,
    /// The running maximum.
    Max,
}

/// Emits `(key, running sum/min/max)` of a value read from each record.
pub struct Rolling<F, N> {
    kind: RollingKind,
    value: Arc<F>,
    state: ValueStateDescriptor<N>,
}

impl<F, N> Clone for Rolling<F, N> {
    fn clone(&self) -> Self {
        Rolling {
            kind: self.kind,
            value: self.value.clone(),
            state: ValueStateDescriptor::new("rolling"),
        }
    }
}

impl<F, N> Rolling<F, N> {
    /// A rolling `kind` over `value(record)`.
    pub fn new(kind: RollingKind, value: F) -> Self {
        Rolling {
            kind,
            value: Arc::new(value),
            state: ValueStateDescriptor::new("rolling"),
        }
    }
}

impl<N, F> Lifecycle for Rolling<F, N>
where
    N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
{
    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.state);
    }
}

impl<K, T, N, F> KeyedProcessFunction<K, T, (K, N)> for Rolling<F, N>
where
    K: Key,
    T: Send + 'static,
    N: StateData + Copy + PartialOrd + std::ops::Add<Output = N>,
    F: Fn(&T) -> N + Send + Sync + 'static,
{
    fn process_element(
        &mut self,
        record: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<(K, N)>,
    ) -> Result<(), UserError> {
        let value = (self.value)(&record);
        let key = ctx.current_key().clone();
        let mut state = ctx.state(&self.state)?;
        let next = match (state.value(), self.kind) {
            (None, _) => value,
            (Some(current), RollingKind::Sum) => current + value,
            (Some(current), RollingKind::Min) => {
                if value < current {
                    value
                } else {
                    current
                }
            }
            (Some(current), RollingKind::Max) => {
                if value > current {
                    value
                } else {
                    current
                }
            }
        };
        state.update(next);
        out.collect((key, next));
        Ok(())
    }
}

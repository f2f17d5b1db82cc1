//! State handles: a descriptor, declared once in a function (a field, built
//! in its constructor or `open`), is used on the current key through the
//! context, as Flink's `ValueState` handles are:
//!
//! ```
//! use weir::prelude::*;
//!
//! /// Counts records per key and sums their values.
//! #[derive(Clone)]
//! struct CountAndSum {
//!     count: ValueStateWithDefault<u64>,
//!     sum: ValueStateWithDefault<u64>,
//!     seen: MapStateDescriptor<String, u64>,
//! }
//!
//! impl Lifecycle for CountAndSum {}
//!
//! impl KeyedProcessFunction<u64, (u64, String), u64> for CountAndSum {
//!     fn process_element(&mut self, (value, tag): (u64, String), ctx: &mut KeyedContext<u64>, out: &mut Collector<u64>) -> Result<(), UserError> {
//!         let count = self.count.modify(ctx, |c| { *c += 1; *c })?;
//!         let sum = self.sum.value(ctx)? + value;
//!         self.sum.update(ctx, sum)?;
//!         let times = self.seen.get(ctx, tag.as_str())?.unwrap_or(0); // a &str for a String key
//!         self.seen.put(ctx, tag, times + 1)?;
//!         // Several states in one expression:
//!         out.collect(self.sum.value(ctx)? / self.count.value(ctx)?);
//!         Ok(())
//!     }
//! }
//!
//! let function = CountAndSum {
//!     count: ValueStateDescriptor::new("count").with_default(0),
//!     sum: ValueStateDescriptor::new("sum").with_default(0),
//!     seen: MapStateDescriptor::new("seen"),
//! };
//! let env = StreamEnv::with_parallelism(1);
//! let out = env
//!     .from_collection(vec![(2u64, "a".to_string()), (4, "b".to_string())])
//!     .key_by(|_: &(u64, String)| 1u64)
//!     .process(function)
//!     .collect();
//! env.execute_blocking("handles").unwrap();
//! assert_eq!(out.take(), vec![2, 3]);
//! ```
//!
//! Each call opens the state for the context's current key and lets go of
//! the context when it returns, so several states can be used in one
//! expression. `ctx.state(&descriptor)?` gives the underlying accessor (one
//! state, borrowed for longer).

use std::borrow::Borrow;
use std::hash::Hash;

use serde::Serialize;

use super::descriptor::{
    AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
    ReducingStateDescriptor, ValueStateDescriptor, ValueStateWithDefault,
};
use super::{Key, StateData, StateDescriptor, StateError};
use crate::ops::keyed_process::KeyedContext;

impl<V: StateData> ValueStateDescriptor<V> {
    /// The current key's value, if it set one.
    #[inline]
    pub fn value<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Option<V>, StateError> {
        Ok(ctx.state(self)?.value())
    }

    /// Sets the current key's value.
    #[inline]
    pub fn update<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        value: V,
    ) -> Result<(), StateError> {
        ctx.state(self)?.update(value);
        Ok(())
    }

    /// Changes the current key's value in place (`None` if it has none).
    #[inline]
    pub fn modify<K: Key, R>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<Option<R>, StateError> {
        Ok(ctx.state(self)?.modify(f))
    }

    /// Removes the current key's value.
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

impl<V: StateData> ValueStateWithDefault<V> {
    /// A value with a default is always there; this says otherwise.
    fn no_default(&self) -> StateError {
        StateError::Unavailable(format!("state `{}` has no default", self.inner.name()))
    }

    /// The current key's value, or the default.
    #[inline]
    pub fn value<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<V, StateError> {
        ctx.state(self)?.value().ok_or_else(|| self.no_default())
    }

    /// Sets the current key's value.
    #[inline]
    pub fn update<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        value: V,
    ) -> Result<(), StateError> {
        ctx.state(self)?.update(value);
        Ok(())
    }

    /// Changes the current key's value (the default, for a key without one)
    /// in place, in one lookup.
    #[inline]
    pub fn modify<K: Key, R>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        f: impl FnOnce(&mut V) -> R,
    ) -> Result<R, StateError> {
        ctx.state(self)?.modify(f).ok_or_else(|| self.no_default())
    }

    /// Removes the current key's value (it reads as the default again).
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

impl<V: StateData> ListStateDescriptor<V> {
    /// A copy of the current key's list.
    pub fn get<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Vec<V>, StateError> {
        Ok(ctx.state(self)?.get())
    }

    /// Appends `value` to the current key's list.
    pub fn add<K: Key>(&self, ctx: &mut KeyedContext<'_, K>, value: V) -> Result<(), StateError> {
        ctx.state(self)?.add(value);
        Ok(())
    }

    /// Appends `values` to the current key's list.
    pub fn add_all<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        values: impl IntoIterator<Item = V>,
    ) -> Result<(), StateError> {
        ctx.state(self)?.add_all(values);
        Ok(())
    }

    /// Replaces the current key's list.
    pub fn update<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        values: Vec<V>,
    ) -> Result<(), StateError> {
        ctx.state(self)?.update(values);
        Ok(())
    }

    /// Empties the current key's list.
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

impl<UK: Key, UV: StateData> MapStateDescriptor<UK, UV> {
    /// The value under `user_key` (or a borrowed form of it, `&str` for
    /// `String`) in the current key's map.
    pub fn get<K: Key, Q>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        user_key: &Q,
    ) -> Result<Option<UV>, StateError>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        Ok(ctx.state(self)?.get(user_key))
    }

    /// Whether the current key's map has `user_key`.
    pub fn contains<K: Key, Q>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        user_key: &Q,
    ) -> Result<bool, StateError>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        Ok(ctx.state(self)?.contains(user_key))
    }

    /// Sets `user_key` to `value` in the current key's map.
    pub fn put<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        user_key: UK,
        value: UV,
    ) -> Result<(), StateError> {
        ctx.state(self)?.put(user_key, value);
        Ok(())
    }

    /// Removes `user_key` from the current key's map, returning its value.
    pub fn remove<K: Key, Q>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        user_key: &Q,
    ) -> Result<Option<UV>, StateError>
    where
        UK: Borrow<Q>,
        Q: Hash + Eq + Serialize + ?Sized,
    {
        Ok(ctx.state(self)?.remove(user_key))
    }

    /// A copy of the current key's entries (in no particular order).
    pub fn entries<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
    ) -> Result<Vec<(UK, UV)>, StateError> {
        Ok(ctx.state(self)?.entries())
    }

    /// A copy of the current key's user keys.
    pub fn keys<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Vec<UK>, StateError> {
        Ok(ctx.state(self)?.keys())
    }

    /// Whether the current key's map is empty.
    pub fn is_empty<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<bool, StateError> {
        Ok(ctx.state(self)?.is_empty())
    }

    /// Empties the current key's map.
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

impl<V: StateData> ReducingStateDescriptor<V> {
    /// The current key's reduced value, if it has one.
    pub fn get<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Option<V>, StateError> {
        Ok(ctx.state(self)?.get())
    }

    /// Reduces `value` into the current key's value.
    pub fn add<K: Key>(&self, ctx: &mut KeyedContext<'_, K>, value: V) -> Result<(), StateError> {
        ctx.state(self)?.add(value);
        Ok(())
    }

    /// Removes the current key's value.
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

impl<A: AggregateFunction> AggregatingStateDescriptor<A> {
    /// The current key's aggregate, if it has one.
    pub fn get<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<Option<A::Out>, StateError> {
        Ok(ctx.state(self)?.get())
    }

    /// Adds `value` to the current key's aggregate.
    pub fn add<K: Key>(
        &self,
        ctx: &mut KeyedContext<'_, K>,
        value: A::In,
    ) -> Result<(), StateError> {
        ctx.state(self)?.add(value);
        Ok(())
    }

    /// Removes the current key's aggregate.
    pub fn clear<K: Key>(&self, ctx: &mut KeyedContext<'_, K>) -> Result<(), StateError> {
        ctx.state(self)?.clear();
        Ok(())
    }
}

//! Per-window keyed state (Flink's `ProcessWindowFunction.Context.windowState()`):
//! state a [`ProcessWindowFunction`](super::ProcessWindowFunction) keeps for
//! one key *and one window*, opened with
//! [`WindowContext::window_state`](super::WindowContext::window_state).
//!
//! A per-window state is a keyed map state under the descriptor's name whose
//! user key is the window, so it is checkpointed, restored, rescaled and
//! shown by `weir inspect` like any keyed state, on either backend. As in
//! Flink, the function removes what it kept for a window in its
//! [`clear`](super::ProcessWindowFunction::clear), which runs when the window
//! is cleaned up (after its allowed lateness); what it leaves stays.
//!
//! ```
//! use weir::window::{ProcessWindowFunction, TimeWindow, WindowContext, WindowValueStateDescriptor};
//! use weir::{Collector, Lifecycle, UserError};
//!
//! /// Emits (key, window start, sum, firing number): late firings count up.
//! #[derive(Clone)]
//! struct NumberedFirings {
//!     firings: WindowValueStateDescriptor<TimeWindow, u32>,
//! }
//! impl Lifecycle for NumberedFirings {}
//! impl ProcessWindowFunction<String, i64, (String, i64, i64, u32), TimeWindow> for NumberedFirings {
//!     fn process(&mut self, key: &String, ctx: &mut WindowContext<String, TimeWindow>, sums: Vec<i64>, out: &mut Collector<(String, i64, i64, u32)>) -> Result<(), UserError> {
//!         let start = ctx.window().start;
//!         let mut firings = ctx.window_state(&self.firings)?;
//!         let n = firings.value().unwrap_or(0) + 1;
//!         firings.update(n);
//!         out.collect((key.clone(), start, sums.iter().sum(), n));
//!         Ok(())
//!     }
//!     fn clear(&mut self, ctx: &mut WindowContext<String, TimeWindow>) -> Result<(), UserError> {
//!         ctx.window_state(&self.firings)?.clear();
//!         Ok(())
//!     }
//! }
//! let _ = NumberedFirings { firings: WindowValueStateDescriptor::new("firings") };
//! ```

use crate::state::ttl::TtlConfig;
use crate::state::{Key, MapStateDescriptor, MapStateRef, StateData};

/// A kind of per-window state: the keyed map state (window to value) it is
/// stored in, and the handle that scopes it to one window.
pub trait WindowStateDescriptor<W: Key> {
    /// The value stored per window.
    type Value: StateData;
    /// The handle to the state of one key and window.
    type Ref<'a, K: Key>;

    /// The keyed map state that holds every window's value.
    fn windows(&self) -> &MapStateDescriptor<W, Self::Value>;

    /// Scopes the key's map to `window`.
    fn scope<'a, K: Key>(map: MapStateRef<'a, K, W, Self::Value>, window: W) -> Self::Ref<'a, K>;
}

/// One value per key and window (Flink's `ValueStateDescriptor` opened
/// through `windowState()`).
#[derive(Clone, Debug)]
pub struct WindowValueStateDescriptor<W, V> {
    windows: MapStateDescriptor<W, V>,
}

impl<W, V> WindowValueStateDescriptor<W, V> {
    /// A per-window value state called `name`.
    pub fn new(name: &str) -> Self {
        WindowValueStateDescriptor {
            windows: MapStateDescriptor::new(name),
        }
    }

    /// The same state with a time to live per window's value.
    pub fn with_ttl(self, ttl: TtlConfig) -> Self {
        WindowValueStateDescriptor {
            windows: self.windows.with_ttl(ttl),
        }
    }
}

impl<W: Key, V: StateData> WindowStateDescriptor<W> for WindowValueStateDescriptor<W, V> {
    type Value = V;
    type Ref<'a, K: Key> = WindowValueState<'a, K, W, V>;

    fn windows(&self) -> &MapStateDescriptor<W, V> {
        &self.windows
    }

    fn scope<'a, K: Key>(
        map: MapStateRef<'a, K, W, V>,
        window: W,
    ) -> WindowValueState<'a, K, W, V> {
        WindowValueState { map, window }
    }
}

/// The value of one key and window.
pub struct WindowValueState<'a, K, W, V> {
    map: MapStateRef<'a, K, W, V>,
    window: W,
}

impl<K: Key, W: Key, V: StateData> WindowValueState<'_, K, W, V> {
    /// The value, or `None`.
    pub fn value(&self) -> Option<V> {
        self.map.get(&self.window)
    }

    /// Replaces the value.
    pub fn update(&mut self, value: V) {
        self.map.put(self.window.clone(), value);
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.map.remove(&self.window);
    }
}

/// A list per key and window (Flink's `ListStateDescriptor` opened through
/// `windowState()`).
#[derive(Clone, Debug)]
pub struct WindowListStateDescriptor<W, V> {
    windows: MapStateDescriptor<W, Vec<V>>,
}

impl<W, V> WindowListStateDescriptor<W, V> {
    /// A per-window list state called `name`.
    pub fn new(name: &str) -> Self {
        WindowListStateDescriptor {
            windows: MapStateDescriptor::new(name),
        }
    }

    /// The same state with a time to live per window's list.
    pub fn with_ttl(self, ttl: TtlConfig) -> Self {
        WindowListStateDescriptor {
            windows: self.windows.with_ttl(ttl),
        }
    }
}

impl<W: Key, V: StateData> WindowStateDescriptor<W> for WindowListStateDescriptor<W, V> {
    type Value = Vec<V>;
    type Ref<'a, K: Key> = WindowListState<'a, K, W, V>;

    fn windows(&self) -> &MapStateDescriptor<W, Vec<V>> {
        &self.windows
    }

    fn scope<'a, K: Key>(
        map: MapStateRef<'a, K, W, Vec<V>>,
        window: W,
    ) -> WindowListState<'a, K, W, V> {
        WindowListState { map, window }
    }
}

/// The list of one key and window.
pub struct WindowListState<'a, K, W, V> {
    map: MapStateRef<'a, K, W, Vec<V>>,
    window: W,
}

impl<K: Key, W: Key, V: StateData> WindowListState<'_, K, W, V> {
    /// The elements, in the order added (empty if none).
    pub fn get(&self) -> Vec<V> {
        self.map.get(&self.window).unwrap_or_default()
    }

    /// Appends `value`.
    pub fn add(&mut self, value: V) {
        self.map
            .modify_or_insert(&self.window, Vec::new, |list| list.push(value));
    }

    /// Replaces the elements (an empty list removes them).
    pub fn update(&mut self, values: Vec<V>) {
        if values.is_empty() {
            self.clear();
        } else {
            self.map.put(self.window.clone(), values);
        }
    }

    /// Removes the elements.
    pub fn clear(&mut self) {
        self.map.remove(&self.window);
    }
}

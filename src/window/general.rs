//! The general window engine: for each element it puts the element into its
//! windows, asks the trigger, fires the window function, and removes a
//! window once the watermark passes its end plus the allowed lateness (as
//! Flink's `WindowOperator`, with the same lateness rules). Any assigner,
//! trigger, evictor and window function; the slice and session engines
//! take the common cases they can run faster.
//!
//! Per key, the windows live in one map state (`window-contents`: window ->
//! contents, the trigger's state and the window's timers), so they are
//! checkpointed, restored and rescaled like any keyed state, on either
//! backend. The operator's timers are the keyed timers of its key; a timer
//! that fires reaches the windows of that key that registered it. Sessions
//! merge physically: the merged window's contents are the merge of its
//! parts', and the parts are removed.

use serde::{Deserialize, Serialize};
use weir_actors::UserError;

use crate::lifecycle::Lifecycle;
use crate::operator::Collector;
use crate::ops::keyed_process::KeyedContext;
use crate::side_output::OutputTag;
use crate::state::schema::StateDeclarations;
use crate::state::timers::TimeDomain;
use crate::state::{Key, MapStateDescriptor, StateData};

use super::assigners::WindowAssigner;
use super::functions::{clear_window, fire_window, WindowLogic};
use super::late::LateData;
use super::operator::WindowEngine;
use super::triggers::{Trigger, TriggerContext, TriggerResult, WindowTimer};
use super::windows::Window;

/// The name of the general engine's keyed state.
pub const WINDOW_STATE: &str = "window-contents";

/// One window of one key: its contents (`None`: empty, or purged), its
/// trigger's state, and the timers registered for it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct WindowEntry<Acc, S> {
    contents: Option<Acc>,
    trigger: S,
    timers: Vec<WindowTimer>,
}

impl<Acc, S: Default> Default for WindowEntry<Acc, S> {
    fn default() -> Self {
        WindowEntry {
            contents: None,
            trigger: S::default(),
            timers: Vec::new(),
        }
    }
}

/// Windows of one key with their entries.
type WindowsOfKey<W, Acc, S> = Vec<(W, WindowEntry<Acc, S>)>;

/// The general window engine (see the module documentation), run by
/// [`super::operator::WindowOperator`].
pub(crate) struct GeneralEngine<K, T, Out, A, Tr, L>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    assigner: A,
    trigger: Tr,
    logic: L,
    late: LateData<T>,
    windows: MapStateDescriptor<A::W, WindowEntry<L::Acc, Tr::State>>,
    scratch: Vec<A::W>,
    _types: std::marker::PhantomData<fn(K) -> Out>,
}

impl<K, T, Out, A, Tr, L> Clone for GeneralEngine<K, T, Out, A, Tr, L>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    /// A fresh instance: same settings, no state.
    fn clone(&self) -> Self {
        GeneralEngine {
            assigner: self.assigner.clone(),
            trigger: self.trigger.clone(),
            logic: self.logic.clone(),
            late: self.late.clone(),
            windows: MapStateDescriptor::new(WINDOW_STATE),
            scratch: Vec::new(),
            _types: std::marker::PhantomData,
        }
    }
}

/// Everything a window operator is built from.
pub(crate) struct WindowSpec<T, A, Tr, L> {
    pub assigner: A,
    pub trigger: Tr,
    pub logic: L,
    pub allowed_lateness: i64,
    pub late_tag: Option<OutputTag<T>>,
}

impl<K, T, Out, A, Tr, L> GeneralEngine<K, T, Out, A, Tr, L>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
    L::Acc: StateData,
{
    pub(crate) fn new(spec: WindowSpec<T, A, Tr, L>) -> Self {
        GeneralEngine {
            assigner: spec.assigner,
            trigger: spec.trigger,
            logic: spec.logic,
            late: LateData::new(spec.allowed_lateness, spec.late_tag),
            windows: MapStateDescriptor::new(WINDOW_STATE),
            scratch: Vec::new(),
            _types: std::marker::PhantomData,
        }
    }

    /// When the window's state is removed: the watermark passed its end plus
    /// the allowed lateness (event time), or the clock passed its end.
    fn cleanup_time(&self, window: &A::W) -> i64 {
        if self.assigner.is_event_time() {
            window
                .max_timestamp()
                .checked_add(self.late.allowed_lateness)
                .unwrap_or(i64::MAX)
        } else {
            window.max_timestamp()
        }
    }

    /// The cleanup timer of `window`, if it has one (a global window has none).
    fn cleanup_timer(&self, window: &A::W) -> Option<WindowTimer> {
        let at = self.cleanup_time(window);
        (at != i64::MAX).then_some(WindowTimer {
            event_time: self.assigner.is_event_time(),
            at,
        })
    }

    /// Whether `window` was already cleaned up (event time only).
    fn is_window_late(&self, window: &A::W, watermark: i64) -> bool {
        self.assigner.is_event_time() && self.cleanup_time(window) <= watermark
    }

    /// Adds `element` to `window` and does what the trigger says.
    #[allow(clippy::too_many_arguments)]
    fn add_to_window(
        &mut self,
        window: &A::W,
        element: T,
        timestamp: Option<i64>,
        now: i64,
        watermark: i64,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let mut added = Vec::new();
        let cleanup = self.cleanup_timer(window);
        let (trigger, logic) = (&self.trigger, &self.logic);
        let result =
            ctx.state(&self.windows)?
                .modify_or_insert(window, WindowEntry::default, |entry| {
                    let mut tctx = TriggerContext {
                        state: &mut entry.trigger,
                        timers: &mut entry.timers,
                        added: &mut added,
                        watermark,
                        processing_time: now,
                    };
                    let result = trigger.on_element(&element, timestamp, window, &mut tctx);
                    if let Some(cleanup) = cleanup {
                        tctx.register(cleanup);
                    }
                    logic.add(&mut entry.contents, element, timestamp);
                    result
                });
        register_timers(ctx, &added);
        if result != TriggerResult::Continue {
            self.apply_result(window, result, now, watermark, ctx, out)?;
            out.set_timestamp(timestamp);
        }
        Ok(())
    }

    /// Fires and/or purges `window` as a trigger decided.
    fn apply_result(
        &mut self,
        window: &A::W,
        result: TriggerResult,
        now: i64,
        watermark: i64,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let Some(mut entry) = ctx.state(&self.windows)?.get(window) else {
            return Ok(());
        };
        if result.is_fire() {
            if let Some(mut contents) = entry.contents.take() {
                self.fire(window, &mut contents, now, watermark, ctx, out)?;
                entry.contents = Some(contents);
            }
        }
        if result.is_purge() {
            entry.contents = None;
        }
        ctx.state(&self.windows)?.put(window.clone(), entry);
        Ok(())
    }

    /// Runs the window function on `contents`.
    fn fire(
        &mut self,
        window: &A::W,
        contents: &mut L::Acc,
        now: i64,
        watermark: i64,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let max_timestamp = window.max_timestamp();
        fire_window(
            &mut self.logic,
            window,
            max_timestamp,
            contents,
            (now, watermark),
            ctx,
            out,
        )
    }

    /// Merges `new` with the key's windows it overlaps (sessions) and returns
    /// the window the element goes to; the merged windows' contents and
    /// trigger states are merged into it (Flink's `MergingWindowSet.addWindow`).
    fn merge_in(
        &mut self,
        new: &A::W,
        now: i64,
        watermark: i64,
        ctx: &mut KeyedContext<'_, K>,
    ) -> Result<A::W, UserError> {
        let mut all = ctx.state(&self.windows)?.keys();
        all.push(new.clone());
        let mut result = new.clone();
        // Windows made by earlier merges of this call.
        let mut created: Vec<A::W> = Vec::new();
        for (merged, mut parts) in self.assigner.merge_windows(&all) {
            if let Some(at) = parts.iter().position(|w| w == new) {
                parts.remove(at);
                result = merged.clone();
            }
            if parts.is_empty() || (parts.len() == 1 && parts[0] == merged) {
                continue;
            }
            if self.assigner.is_event_time() {
                if self.cleanup_time(&merged) <= watermark {
                    return Err(format!(
                        "merging windows into {merged:?} would make it end before the current watermark {watermark}"
                    )
                    .into());
                }
            } else if merged.max_timestamp() <= now {
                return Err(format!(
                    "merging windows into {merged:?} would make it end before the current processing time {now}"
                )
                .into());
            }
            let mut state = ctx.state(&self.windows)?;
            let mut contents = None;
            let mut trigger_states = Vec::with_capacity(parts.len());
            let mut released = Vec::new();
            for part in &parts {
                if let Some(entry) = state.remove(part) {
                    self.logic.merge(&mut contents, entry.contents);
                    trigger_states.push(entry.trigger);
                    released.extend(entry.timers);
                }
            }
            let mut entry = WindowEntry {
                contents,
                ..WindowEntry::default()
            };
            let mut added = Vec::new();
            let mut tctx = TriggerContext {
                state: &mut entry.trigger,
                timers: &mut entry.timers,
                added: &mut added,
                watermark,
                processing_time: now,
            };
            self.trigger.on_merge(&merged, trigger_states, &mut tctx);
            if let Some(cleanup) = self.cleanup_timer(&merged) {
                tctx.register(cleanup);
            }
            // The merged-away windows' timers that no window of the key
            // holds any more go (as Flink's trigger `clear` of merged
            // windows): else each would fire later and find nothing to do.
            let mut kept = entry.timers.clone();
            let others = all.iter().chain(&created);
            for other in others.filter(|w| **w != merged && !parts.contains(w)) {
                if let Some(other) = state.get(other) {
                    kept.extend(other.timers);
                }
            }
            released.retain(|t| !kept.contains(t));
            state.put(merged.clone(), entry);
            created.push(merged);
            for timer in released {
                if timer.event_time {
                    ctx.delete_event_time_timer(timer.at);
                } else {
                    ctx.delete_processing_time_timer(timer.at);
                }
            }
            register_timers(ctx, &added);
        }
        Ok(result)
    }
}

/// Registers the timers triggers added with the key's timer service (a
/// timer some other window of the key registered already is one timer).
fn register_timers<K: Key>(ctx: &mut KeyedContext<'_, K>, added: &[WindowTimer]) {
    for timer in added {
        timer.register_with(ctx);
    }
}

impl<K, T, Out, A, Tr, L> WindowEngine<K, T, Out> for GeneralEngine<K, T, Out, A, Tr, L>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
    L::Acc: StateData,
{
    const STATE: &'static str = WINDOW_STATE;

    fn settings(&self) -> Result<(), String> {
        self.assigner.validate()?;
        if self.assigner.is_merging() && !self.trigger.can_merge() {
            return Err(format!(
                "the trigger {} cannot merge, and {} merges windows",
                self.trigger.describe(),
                self.assigner.describe()
            ));
        }
        Ok(())
    }

    fn late(&self) -> &LateData<T> {
        &self.late
    }

    fn function(&mut self) -> &mut dyn Lifecycle {
        &mut self.logic
    }

    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.windows);
        self.logic.declare_states(states);
    }

    fn on_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let timestamp = ctx.timestamp();
        let now = ctx.current_processing_time();
        let watermark = ctx.current_watermark();
        let mut windows = std::mem::take(&mut self.scratch);
        windows.clear();
        self.assigner
            .assign_windows(&value, timestamp, now, &mut windows)?;
        let mut value = Some(value);
        let mut placed = false;
        let last = windows.len().saturating_sub(1);
        for (i, window) in windows.iter().enumerate() {
            let window = if self.assigner.is_merging() {
                self.merge_in(window, now, watermark, ctx)?
            } else {
                window.clone()
            };
            if self.is_window_late(&window, watermark) {
                continue;
            }
            let element = if i == last {
                value.take()
            } else {
                value.clone()
            };
            let Some(element) = element else { break };
            placed = true;
            self.add_to_window(&window, element, timestamp, now, watermark, ctx, out)?;
        }
        self.scratch = windows;
        if let (false, Some(value)) = (placed, value) {
            // In no window that is still open: late, if its time says so.
            let event_time = self.assigner.is_event_time();
            self.late
                .on_unplaced(value, timestamp, watermark, event_time, ctx);
        }
        Ok(())
    }

    /// A timer of the key in `ctx` fired at `time`: every window of the key
    /// that registered it is asked (trigger), fired, and removed at its
    /// cleanup time.
    fn on_timer(
        &mut self,
        time: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let event_time = domain == TimeDomain::EventTime;
        let now = ctx.current_processing_time();
        let watermark = ctx.current_watermark();
        let timer = WindowTimer {
            event_time,
            at: time,
        };
        let mut due: WindowsOfKey<A::W, L::Acc, Tr::State> = ctx
            .state(&self.windows)?
            .entries()
            .into_iter()
            .filter(|(_, entry)| entry.timers.contains(&timer))
            .collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        for (window, mut entry) in due {
            entry.timers.retain(|t| *t != timer);
            let mut added = Vec::new();
            let result = {
                let mut tctx = TriggerContext {
                    state: &mut entry.trigger,
                    timers: &mut entry.timers,
                    added: &mut added,
                    watermark,
                    processing_time: now,
                };
                if event_time {
                    self.trigger.on_event_time(time, &window, &mut tctx)
                } else {
                    self.trigger.on_processing_time(time, &window, &mut tctx)
                }
            };
            if result.is_fire() {
                if let Some(mut contents) = entry.contents.take() {
                    self.fire(&window, &mut contents, now, watermark, ctx, out)?;
                    entry.contents = Some(contents);
                }
            }
            if result.is_purge() {
                entry.contents = None;
            }
            let cleanup =
                self.assigner.is_event_time() == event_time && time == self.cleanup_time(&window);
            if cleanup {
                let mut tctx = TriggerContext {
                    state: &mut entry.trigger,
                    timers: &mut entry.timers,
                    added: &mut added,
                    watermark,
                    processing_time: now,
                };
                self.trigger.clear(&window, &mut tctx);
                clear_window(&mut self.logic, &window, now, ctx)?;
                ctx.state(&self.windows)?.remove(&window);
                continue;
            }
            ctx.state(&self.windows)?.put(window, entry);
            register_timers(ctx, &added);
        }
        Ok(())
    }
}

//! The window operator: a keyed operator that puts each element into its
//! windows, asks the trigger, fires the window function, and removes a
//! window once the watermark passes its end plus the allowed lateness (as
//! Flink's `WindowOperator`, with the same lateness rules).
//!
//! Per key, the windows live in one map state (`window-contents`: window ->
//! contents, the trigger's state and the window's timers), so they are
//! checkpointed, restored and rescaled like any keyed state, on either
//! backend. The operator's timers are the keyed timers of its key; a timer
//! that fires reaches the windows of that key that registered it. Sessions
//! merge physically: the merged window's contents are the merge of its
//! parts', and the parts are removed.

use serde::{Deserialize, Serialize};
use weir_actors::error::Permanent;
use weir_actors::{RecordBatch, UserError};

use crate::context::RuntimeContext;
use crate::lifecycle::{forward_lifecycle, Lifecycle};
use crate::operator::{Collector, OneInputOperator};
use crate::ops::keyed_core::KeyedCore;
use crate::ops::keyed_process::{KeySelector, KeyedContext};
use crate::side_output::OutputTag;
use crate::state::timers::TimeDomain;
use crate::state::{
    BackendCell, Key, MapStateDescriptor, StateData, StateInitContext, StateSnapshotContext,
};

use super::assigners::WindowAssigner;
use super::functions::{clear_window, fire_window, WindowLogic};
use super::late::LateData;
use super::triggers::{Trigger, TriggerContext, TriggerResult, WindowTimer};
use super::windows::Window;

/// The name of the window operator's keyed state.
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

/// The window operator (see the module documentation).
pub(crate) struct WindowOperator<K, T, Out, A, Tr, L>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    assigner: A,
    trigger: Tr,
    logic: L,
    late: LateData<T>,
    key: KeySelector<T, K>,
    core: KeyedCore<K>,
    windows: MapStateDescriptor<A::W, WindowEntry<L::Acc, Tr::State>>,
    scratch: Vec<A::W>,
    _out: std::marker::PhantomData<fn() -> Out>,
}

impl<K, T, Out, A, Tr, L> Clone for WindowOperator<K, T, Out, A, Tr, L>
where
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    /// A fresh instance: same settings, no state.
    fn clone(&self) -> Self {
        WindowOperator {
            assigner: self.assigner.clone(),
            trigger: self.trigger.clone(),
            logic: self.logic.clone(),
            late: self.late.clone(),
            key: self.key.clone(),
            core: self.core.fresh(),
            windows: MapStateDescriptor::new(WINDOW_STATE),
            scratch: Vec::new(),
            _out: std::marker::PhantomData,
        }
    }
}

/// Everything a window operator is built from.
pub(crate) struct WindowSpec<K, T, A, Tr, L> {
    pub assigner: A,
    pub trigger: Tr,
    pub logic: L,
    pub allowed_lateness: i64,
    pub late_tag: Option<OutputTag<T>>,
    pub key: KeySelector<T, K>,
    pub backend: BackendCell,
}

impl<K, T, Out, A, Tr, L> WindowOperator<K, T, Out, A, Tr, L>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
    L::Acc: StateData,
{
    pub(crate) fn new(spec: WindowSpec<K, T, A, Tr, L>) -> Self {
        WindowOperator {
            assigner: spec.assigner,
            trigger: spec.trigger,
            logic: spec.logic,
            late: LateData::new(spec.allowed_lateness, spec.late_tag),
            key: spec.key,
            core: KeyedCore::with_backend(spec.backend),
            windows: MapStateDescriptor::new(WINDOW_STATE),
            scratch: Vec::new(),
            _out: std::marker::PhantomData,
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

    /// A timer of the key in `ctx` fired at `time`: every window of the key
    /// that registered it is asked (trigger), fired, and removed at its
    /// cleanup time.
    fn on_timer(
        &mut self,
        time: i64,
        event_time: bool,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
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

/// Fails the job once (no restart can fix settings) if `settings` (the
/// assigner's and trigger's verdict) or the allowed lateness is wrong.
pub(crate) fn check_settings(
    ctx: &RuntimeContext,
    settings: Result<(), String>,
    allowed_lateness: i64,
) -> Result<(), UserError> {
    let name = ctx.operator_name();
    let refuse = |what: String| -> UserError {
        Permanent::from_message(format!("window operator `{name}`: {what}")).into()
    };
    settings.map_err(refuse)?;
    if allowed_lateness < 0 {
        return Err(refuse("the allowed lateness must not be negative".into()));
    }
    Ok(())
}

/// The keyed state of each way of keeping windows, and what keeps it.
const WINDOW_ENGINES: [(&str, &str); 3] = [
    (
        WINDOW_STATE,
        "the general window operator (a trigger or an evictor given, `process`, or windows that neither slice nor merge)",
    ),
    (
        crate::window::slicing::WINDOW_SLICES,
        "the slice engine (tumbling, sliding or cumulating windows with `reduce`/`aggregate` and the default trigger)",
    ),
    (
        crate::window::sessions::WINDOW_SESSIONS,
        "the session engine (session windows with `reduce`/`aggregate` and the default trigger)",
    ),
];

/// Fails the job once if the operator was restored from a snapshot whose
/// windows another engine kept (state `restored`, the operator now keeping
/// `own`): the open windows cannot move between them, and would be lost
/// without a word (the window definition changed: a trigger or evictor
/// added or removed, another function or assigner).
pub(crate) fn check_restored_engine(
    ctx: &RuntimeContext,
    restored: &[String],
    own: &str,
) -> Result<(), UserError> {
    let describe = |state: &str| {
        WINDOW_ENGINES
            .iter()
            .find(|(name, _)| *name == state)
            .map_or("", |(_, what)| what)
    };
    let Some(other) = restored
        .iter()
        .map(String::as_str)
        .find(|state| *state != own && !describe(state).is_empty())
    else {
        return Ok(());
    };
    Err(Permanent::from_message(format!(
        "window operator `{}` (uid `{}`): the snapshot it restores keeps its windows in `{other}`, \
         {}, but the job now keeps them in `{own}`, {}; the open windows cannot move between \
         the two. Restore with the window definition the snapshot was taken with, or give the \
         operator a new uid to start it without its windows (with --allow-non-restored-state)",
        ctx.operator_name(),
        ctx.uid(),
        describe(other),
        describe(own),
    ))
    .into())
}

/// Registers the timers triggers added with the key's timer service (a
/// timer some other window of the key registered already is one timer).
fn register_timers<K: Key>(ctx: &mut KeyedContext<'_, K>, added: &[WindowTimer]) {
    for timer in added {
        if timer.event_time {
            ctx.register_event_time_timer(timer.at);
        } else {
            ctx.register_processing_time_timer(timer.at);
        }
    }
}

impl<K, T, Out, A, Tr, L> Lifecycle for WindowOperator<K, T, Out, A, Tr, L>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.core.initialize(ctx);
        self.logic.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.core.snapshot(ctx)?;
        self.logic.snapshot_state(ctx)
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let mut settings = self.assigner.validate();
        if self.assigner.is_merging() && !self.trigger.can_merge() {
            settings = Err(format!(
                "the trigger {} cannot merge, and {} merges windows",
                self.trigger.describe(),
                self.assigner.describe()
            ));
        }
        check_settings(ctx, settings, self.late.allowed_lateness)?;
        self.core.open(ctx)?;
        check_restored_engine(ctx, &self.core.restored_state_names(), WINDOW_STATE)?;
        self.logic.open(ctx)
    }

    fn close(&mut self) -> Result<(), UserError> {
        let closed = self.logic.close();
        self.core.close();
        closed
    }

    forward_lifecycle!(logic: notify_checkpoint_complete, notify_checkpoint_aborted, finish);
}

impl<K, T, Out, A, Tr, L> OneInputOperator<T, Out> for WindowOperator<K, T, Out, A, Tr, L>
where
    K: Key,
    T: crate::Data,
    Out: Clone + Send + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::W>,
    L: WindowLogic<K, T, A::W, Out>,
{
    fn process_batch(
        &mut self,
        batch: RecordBatch<T>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let key = self.key.clone();
        let mut core = std::mem::take(&mut self.core);
        let result = core.for_each_record(batch, &key, None, out, |value, ctx, out| {
            self.on_element(value, ctx, out)
        });
        self.core = core;
        result
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let mut core = std::mem::take(&mut self.core);
        let result = core.advance_watermark(watermark, None, out, |t, ctx, out| {
            self.on_timer(t, true, ctx, out)
        });
        self.core = core;
        result
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.core.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        let mut core = std::mem::take(&mut self.core);
        let result = core.fire_timers(TimeDomain::ProcessingTime, now, None, out, |t, ctx, out| {
            self.on_timer(t, false, ctx, out)
        });
        self.core = core;
        result
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.core.state_metrics()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.core.query(uid, name, query)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.late.counters()
    }
}

//! The slice engine: how the window operator keeps tumbling, sliding and
//! cumulating windows with an incremental function (`reduce`, `aggregate`,
//! alone or with a process function), the default trigger and no evictor.
//!
//! Per key it keeps one partial aggregate per slice (`Slices`, keyed state
//! `window-slices`) instead of one per window: an element costs one slice
//! update whatever `size / slide`, and a window that fires merges its
//! slices. Timers: a slice's first window registers one timer at its end -
//! 1; a window that fires registers the next one if it holds a slice (so a
//! key has one pending timer per run of windows, not one per window), and,
//! with allowed lateness, its cleanup timer at `end - 1 + lateness`. A timer
//! at `t` fires the window ending at `t + 1` if it holds slices, calls the
//! function's `clear` for the window cleaned up at `t`, and removes the
//! slices whose last window is cleaned up. Output, lateness and late data
//! follow Flink's rules exactly as the general engine
//! ([`super::general`]) does; the differential tests run both.

use weir_actors::UserError;

use crate::lifecycle::Lifecycle;
use crate::operator::Collector;
use crate::ops::keyed_process::KeyedContext;
use crate::state::schema::StateDeclarations;
use crate::state::timers::TimeDomain;
use crate::state::{Key, StateData, ValueStateDescriptor, ValueStateWithDefault};

use super::assigners::TimeKind;
use super::engine::EngineSpec;
use super::functions::{clear_window, fire_aggregate, Fold, Incremental, ProcessWindowFunction};
use super::late::LateData;
use super::operator::WindowEngine;
use super::slices::{LastPlacement, Placement, SliceShape, Slices};
use super::triggers::WindowTimer;

/// The name of the slice engine's keyed state.
pub const WINDOW_SLICES: &str = "window-slices";

/// What the slice engine needs of an assigner whose windows are made of
/// slices ([`crate::window::WindowAssigner::slicing`]).
pub struct Slicing<W> {
    /// How the windows are made of slices.
    pub shape: SliceShape,
    /// Event time (else processing time).
    pub event_time: bool,
    /// The window `[start, end)`, as the function sees it.
    pub window: fn(i64, i64) -> W,
}

impl<W> Clone for Slicing<W> {
    fn clone(&self) -> Self {
        Slicing {
            shape: self.shape,
            event_time: self.event_time,
            window: self.window,
        }
    }
}

/// The slice engine (see the module documentation), run by
/// [`super::operator::WindowOperator`].
pub(crate) struct SliceEngine<K, T, Out, F: Fold<T>, P, W> {
    slicing: Slicing<W>,
    settings: Result<(), String>,
    logic: Incremental<F, P>,
    late: LateData<T>,
    slices: ValueStateWithDefault<Slices<F::Acc>>,
    /// Where the last record fell.
    placed: LastPlacement,
    _types: std::marker::PhantomData<fn(K) -> Out>,
}

fn slices_descriptor<Acc: StateData>() -> ValueStateWithDefault<Slices<Acc>> {
    ValueStateDescriptor::new(WINDOW_SLICES).with_default(Slices::default())
}

impl<K, T, Out, F, P, W> Clone for SliceEngine<K, T, Out, F, P, W>
where
    T: crate::Data,
    F: Fold<T>,
    F::Acc: StateData,
    P: Clone,
{
    /// A fresh instance: same settings, no state.
    fn clone(&self) -> Self {
        SliceEngine {
            slicing: self.slicing.clone(),
            settings: self.settings.clone(),
            logic: self.logic.clone(),
            late: self.late.clone(),
            slices: slices_descriptor(),
            placed: LastPlacement::default(),
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, T, Out, F, P, W> SliceEngine<K, T, Out, F, P, W>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    F: Fold<T>,
    F::Acc: StateData,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    W: 'static,
{
    pub(crate) fn new(spec: EngineSpec<T, F, P, Slicing<W>>) -> Self {
        SliceEngine {
            slicing: spec.shape,
            settings: spec.settings,
            logic: Incremental {
                fold: spec.fold,
                function: spec.function,
            },
            late: LateData::new(spec.allowed_lateness, spec.late_tag),
            slices: slices_descriptor(),
            placed: LastPlacement::default(),
            _types: std::marker::PhantomData,
        }
    }

    /// The allowed lateness that applies (processing-time windows have none).
    fn lateness(&self) -> i64 {
        if self.slicing.event_time {
            self.late.allowed_lateness
        } else {
            0
        }
    }

    /// When the window ending at `end` is cleaned up.
    fn cleanup_time(&self, end: i64) -> i64 {
        (end - 1).saturating_add(self.lateness())
    }

    fn register(&self, ctx: &mut KeyedContext<'_, K>, at: i64) {
        let event_time = self.slicing.event_time;
        WindowTimer { event_time, at }.register_with(ctx);
    }

    /// Fires the window ending at `end` now with its slices (late firings).
    fn fire_now(
        &mut self,
        end: i64,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let start = self.slicing.shape.window_start(end);
        let fold = &self.logic.fold;
        let merged = ctx.state(&self.slices)?.modify(|slices| {
            slices.merged_then_removed(Some((start, end)), |_| true, |a, b| fold.merge(a, b))
        });
        match merged.flatten() {
            Some(mut acc) => fire_aggregate(
                &mut self.logic,
                self.slicing.window,
                (start, end),
                &mut acc,
                ctx,
                out,
            ),
            None => Ok(()),
        }
    }
}

impl<K, T, Out, F, P, W> WindowEngine<K, T, Out> for SliceEngine<K, T, Out, F, P, W>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    F: Fold<T>,
    F::Acc: StateData,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    W: Send + 'static,
{
    const STATE: &'static str = WINDOW_SLICES;

    fn settings(&self) -> Result<(), String> {
        self.settings.clone()
    }

    fn late(&self) -> &LateData<T> {
        &self.late
    }

    fn function(&mut self) -> &mut dyn Lifecycle {
        &mut self.logic
    }

    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.slices);
        self.logic.declare_states(states);
    }

    #[inline]
    fn on_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let timestamp = ctx.timestamp();
        let shape = self.slicing.shape;
        let event_time = self.slicing.event_time;
        let time = match (event_time, timestamp) {
            (true, Some(t)) => t,
            (true, None) => TimeKind::EventTime.time_of(None, 0, "an event-time window")?,
            (false, _) => ctx.current_processing_time(),
        };
        // Processing time: windows ahead of the clock, none fired yet.
        let watermark = if event_time {
            ctx.current_watermark()
        } else {
            i64::MIN
        };
        let Placement {
            slice_end,
            first_window_end: first,
            last_window_end: last,
            ..
        } = self.placed.of(&shape, time);
        if first > last || self.cleanup_time(last) <= watermark {
            // In no window, or in none still open.
            self.late
                .on_unplaced(value, timestamp, watermark, event_time, ctx);
            return Ok(());
        }
        let fold = &self.logic.fold;
        let created = ctx
            .state(&self.slices)?
            .modify(|slices| {
                slices.add(
                    slice_end,
                    value,
                    |acc, v| fold.add(acc, v),
                    |v| fold.first(v),
                )
            })
            .unwrap_or(false);
        if first - 1 > watermark {
            if created {
                self.register(ctx, first - 1);
            }
            return Ok(());
        }
        // Late, but some of its windows are still open: those not due yet
        // fire by timer (the first of them registered here), those due
        // fire again now, in the assigner's order (Flink's event-time
        // trigger fires a window whose end passed on every element).
        let mut due = Vec::new();
        let mut end = first;
        while end <= last {
            if end - 1 > watermark {
                if created {
                    self.register(ctx, end - 1);
                }
                break;
            }
            if self.cleanup_time(end) > watermark {
                due.push(end);
            }
            end = shape.next_window_end(end);
        }
        if shape.latest_first() {
            due.reverse();
        }
        for end in due {
            self.fire_now(end, ctx, out)?;
            self.register(ctx, self.cleanup_time(end));
        }
        out.set_timestamp(timestamp);
        Ok(())
    }

    /// A timer of the key in `ctx` at `time` (see the module documentation).
    fn on_timer(
        &mut self,
        time: i64,
        _domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let shape = self.slicing.shape;
        let end = time.saturating_add(1);
        let start = shape.window_start(end);
        let fires = shape.is_window_end(end);
        // The window cleaned up now (with allowed lateness, an earlier one).
        let cleaned_end = time.saturating_sub(self.lateness()).saturating_add(1);
        let cleaned = shape.is_window_end(cleaned_end).then(|| {
            let start = shape.window_start(cleaned_end);
            (start, cleaned_end)
        });
        let fold = &self.logic.fold;
        let lateness = self.lateness();
        let mut state = ctx.state(&self.slices)?;
        let Some((mut acc, cleaned, next, empty)) = state.modify(|slices| {
            let cleaned = cleaned.filter(|(s, e)| slices.any_in(*s, *e));
            // A slice stays while a window it is in is not cleaned up.
            let keep = |slice_end: i64| {
                (shape.last_window_end(slice_end) - 1).saturating_add(lateness) > time
            };
            let acc = slices
                .merged_then_removed(fires.then_some((start, end)), keep, |a, b| fold.merge(a, b));
            // The next window's timer, if it holds slices and its timer is
            // not known to be pending: a slice ending at a window's end was
            // created in order (a late one would have come after this
            // timer fired), so it registered that window's timer
            // (`on_element`). Skipping it saves a timer lookup per firing
            // that would find the timer there.
            let next = shape.next_window_end(end);
            let next = (acc.is_some()
                && !slices.has_slice_ending(next)
                && slices.any_in(shape.window_start(next), next))
            .then_some(next);
            (acc, cleaned, next, slices.is_empty())
        }) else {
            return Ok(());
        };
        if empty {
            state.clear();
        }
        if let Some(acc) = acc.as_mut() {
            fire_aggregate(
                &mut self.logic,
                self.slicing.window,
                (start, end),
                acc,
                ctx,
                out,
            )?;
            if let Some(next) = next {
                self.register(ctx, next - 1);
            }
            if lateness > 0 {
                self.register(ctx, self.cleanup_time(end));
            }
        }
        if let Some((start, end)) = cleaned {
            let now = ctx.current_processing_time();
            let window = (self.slicing.window)(start, end);
            clear_window::<K, T, W, Out, _>(&mut self.logic, &window, now, ctx)?;
        }
        Ok(())
    }
}

//! Triggers: when a window's function runs (fires) and when its contents
//! are dropped (purged), as Flink's `Trigger`s.
//!
//! A trigger is asked on every element added to a window and on every timer
//! it registered for that window; it answers with a [`TriggerResult`]. Its
//! per-window state ([`Trigger::State`]) and its timers are keyed state of
//! the window operator: checkpointed, restored, rescaled with the window.

use serde::{Deserialize, Serialize};

use crate::state::StateData;

use super::windows::Window;

/// What a trigger decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window function runs on the window's contents; they are kept.
    Fire,
    /// The window's contents are dropped (the window and its timers stay).
    Purge,
    /// The function runs, then the contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window function runs.
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the contents are dropped.
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// A timer a trigger (or the window's cleanup) registered for one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowTimer {
    /// Event time (`true`) or processing time.
    pub event_time: bool,
    /// When it fires.
    pub at: i64,
}

impl WindowTimer {
    /// Registers the timer with the timer service of the key in `ctx`.
    pub(crate) fn register_with<K: crate::state::Key>(
        self,
        ctx: &mut crate::ops::keyed_process::KeyedContext<'_, K>,
    ) {
        if self.event_time {
            ctx.register_event_time_timer(self.at);
        } else {
            ctx.register_processing_time_timer(self.at);
        }
    }
}

/// What a trigger sees of one window: its own state for the window, the
/// window's timers, and the time.
pub struct TriggerContext<'a, S> {
    pub(crate) state: &'a mut S,
    pub(crate) timers: &'a mut Vec<WindowTimer>,
    pub(crate) added: &'a mut Vec<WindowTimer>,
    pub(crate) watermark: i64,
    pub(crate) processing_time: i64,
}

impl<S> TriggerContext<'_, S> {
    /// The trigger's state for this window (starts as `S::default()`).
    pub fn state(&mut self) -> &mut S {
        self.state
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// The current processing time (ms since the epoch).
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time
    }

    /// Calls `on_event_time` for this window when the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: i64) {
        self.register(WindowTimer {
            event_time: true,
            at: time,
        });
    }

    /// Calls `on_processing_time` for this window when the wall clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.register(WindowTimer {
            event_time: false,
            at: time,
        });
    }

    /// Deletes this window's event-time timer at `time`.
    pub fn delete_event_time_timer(&mut self, time: i64) {
        self.timers.retain(|t| !(t.event_time && t.at == time));
    }

    /// Deletes this window's processing-time timer at `time`.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.timers.retain(|t| t.event_time || t.at != time);
    }

    pub(crate) fn register(&mut self, timer: WindowTimer) {
        if !self.timers.contains(&timer) {
            self.timers.push(timer);
            self.added.push(timer);
        }
    }
}

/// Decides when a window fires, as Flink's `Trigger`. `T` is the element
/// type, `W` the window type.
pub trait Trigger<T, W>: Clone + Send + Sync + 'static {
    /// The trigger's state per window (a count, the next firing time, ...).
    type State: StateData + Default;

    /// An element was added to `window`.
    fn on_element(
        &self,
        element: &T,
        timestamp: Option<i64>,
        window: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// An event-time timer this trigger registered for `window` fired.
    fn on_event_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// A processing-time timer this trigger registered for `window` fired.
    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult;

    /// Whether the trigger works with merging (session) windows.
    fn can_merge(&self) -> bool {
        false
    }

    /// `window` is the merge of windows whose trigger states were `merged`;
    /// the context starts with a default state and no timers.
    fn on_merge(
        &self,
        _window: &W,
        _merged: Vec<Self::State>,
        _ctx: &mut TriggerContext<'_, Self::State>,
    ) {
    }

    /// The window is removed (its state and timers go with it).
    fn clear(&self, _window: &W, _ctx: &mut TriggerContext<'_, Self::State>) {}

    /// A short name, for the operator's name.
    fn describe(&self) -> String;
}

/// Fires when time passes the window's end: the default trigger of time
/// windows, in event time (the watermark; an element added to a window the
/// watermark already passed fires it at once: a late firing) or processing
/// time (the wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeTrigger {
    /// Fired by the watermark (Flink's `EventTimeTrigger`).
    EventTime,
    /// Fired by the wall clock (Flink's `ProcessingTimeTrigger`).
    ProcessingTime,
}

/// Flink's name for [`TimeTrigger::EventTime`].
pub struct EventTimeTrigger;

impl EventTimeTrigger {
    /// The event-time trigger.
    pub fn create() -> TimeTrigger {
        TimeTrigger::EventTime
    }
}

/// Flink's name for [`TimeTrigger::ProcessingTime`].
pub struct ProcessingTimeTrigger;

impl ProcessingTimeTrigger {
    /// The processing-time trigger.
    pub fn create() -> TimeTrigger {
        TimeTrigger::ProcessingTime
    }
}

impl TimeTrigger {
    /// The window's timer, in this trigger's time.
    fn timer(self, window_max: i64) -> WindowTimer {
        WindowTimer {
            event_time: self == TimeTrigger::EventTime,
            at: window_max,
        }
    }

    /// The time this trigger follows now.
    fn now<S>(self, ctx: &TriggerContext<'_, S>) -> i64 {
        match self {
            TimeTrigger::EventTime => ctx.current_watermark(),
            TimeTrigger::ProcessingTime => ctx.current_processing_time(),
        }
    }
}

impl<T, W: Window> Trigger<T, W> for TimeTrigger {
    type State = ();

    fn on_element(
        &self,
        _: &T,
        _: Option<i64>,
        window: &W,
        ctx: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        if *self == TimeTrigger::EventTime && window.max_timestamp() <= ctx.current_watermark() {
            return TriggerResult::Fire;
        }
        ctx.register(self.timer(window.max_timestamp()));
        TriggerResult::Continue
    }

    fn on_event_time(
        &self,
        time: i64,
        window: &W,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        if *self == TimeTrigger::EventTime && time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_, ()>) -> TriggerResult {
        if *self == TimeTrigger::ProcessingTime {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, window: &W, _: Vec<()>, ctx: &mut TriggerContext<'_, ()>) {
        if window.max_timestamp() > self.now(ctx) {
            ctx.register(self.timer(window.max_timestamp()));
        }
    }

    fn clear(&self, window: &W, ctx: &mut TriggerContext<'_, ()>) {
        let timer = self.timer(window.max_timestamp());
        ctx.timers.retain(|t| *t != timer);
    }

    fn describe(&self) -> String {
        match self {
            TimeTrigger::EventTime => "EventTimeTrigger".into(),
            TimeTrigger::ProcessingTime => "ProcessingTimeTrigger".into(),
        }
    }
}

/// Never fires (the default of [`GlobalWindows`](super::GlobalWindows):
/// give a trigger of your own).
#[derive(Clone, Copy, Debug, Default)]
pub struct NeverTrigger;

impl<T, W: Window> Trigger<T, W> for NeverTrigger {
    type State = ();

    fn on_element(
        &self,
        _: &T,
        _: Option<i64>,
        _: &W,
        _: &mut TriggerContext<'_, ()>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_, ()>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_, ()>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        "NeverTrigger".into()
    }
}

/// Fires when a window holds `count` elements (counted since its last firing).
#[derive(Clone, Copy, Debug)]
pub struct CountTrigger {
    count: u64,
}

impl CountTrigger {
    /// Fires every `count` elements.
    pub fn of(count: u64) -> Self {
        CountTrigger { count }
    }
}

impl<T, W: Window> Trigger<T, W> for CountTrigger {
    type State = u64;

    fn on_element(
        &self,
        _: &T,
        _: Option<i64>,
        _: &W,
        ctx: &mut TriggerContext<'_, u64>,
    ) -> TriggerResult {
        *ctx.state() += 1;
        if *ctx.state() >= self.count {
            *ctx.state() = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_event_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_, u64>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(&self, _: i64, _: &W, _: &mut TriggerContext<'_, u64>) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, _: &W, merged: Vec<u64>, ctx: &mut TriggerContext<'_, u64>) {
        *ctx.state() = merged.into_iter().sum();
    }

    fn describe(&self) -> String {
        format!("CountTrigger({})", self.count)
    }
}

/// Turns every firing of another trigger into fire-and-purge.
#[derive(Clone, Copy, Debug)]
pub struct PurgingTrigger<Tr> {
    inner: Tr,
}

impl<Tr> PurgingTrigger<Tr> {
    /// `inner`, purging when it fires.
    pub fn of(inner: Tr) -> Self {
        PurgingTrigger { inner }
    }
}

fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        result
    }
}

impl<T, W: Window, Tr: Trigger<T, W>> Trigger<T, W> for PurgingTrigger<Tr> {
    type State = Tr::State;

    fn on_element(
        &self,
        e: &T,
        ts: Option<i64>,
        w: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult {
        purging(self.inner.on_element(e, ts, w, ctx))
    }

    fn on_event_time(
        &self,
        t: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult {
        purging(self.inner.on_event_time(t, w, ctx))
    }

    fn on_processing_time(
        &self,
        t: i64,
        w: &W,
        ctx: &mut TriggerContext<'_, Self::State>,
    ) -> TriggerResult {
        purging(self.inner.on_processing_time(t, w, ctx))
    }

    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }

    fn on_merge(&self, w: &W, merged: Vec<Self::State>, ctx: &mut TriggerContext<'_, Self::State>) {
        self.inner.on_merge(w, merged, ctx)
    }

    fn clear(&self, w: &W, ctx: &mut TriggerContext<'_, Self::State>) {
        self.inner.clear(w, ctx)
    }

    fn describe(&self) -> String {
        format!("PurgingTrigger({})", self.inner.describe())
    }
}

/// Fires every `interval` of event time while the window is open (and at its
/// end), as Flink's `ContinuousEventTimeTrigger`.
#[derive(Clone, Copy, Debug)]
pub struct ContinuousEventTimeTrigger {
    interval: i64,
}

impl ContinuousEventTimeTrigger {
    /// Fires every `interval`.
    pub fn of(interval: std::time::Duration) -> Self {
        ContinuousEventTimeTrigger {
            interval: super::assigners::millis(interval),
        }
    }
}

/// The next firing after `time` of a trigger firing every `interval`, never
/// after the window's last timestamp; registered and kept in `ctx`'s state.
fn next_fire(
    time: i64,
    interval: i64,
    window_max: i64,
    event_time: bool,
    ctx: &mut TriggerContext<'_, Option<i64>>,
) {
    let next = time.saturating_add(interval).min(window_max);
    let state = ctx.state();
    *state = Some(state.map_or(next, |s| s.min(next)));
    if event_time {
        ctx.register_event_time_timer(next);
    } else {
        ctx.register_processing_time_timer(next);
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousEventTimeTrigger {
    type State = Option<i64>;

    fn on_element(
        &self,
        _: &T,
        timestamp: Option<i64>,
        window: &W,
        ctx: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            return TriggerResult::Fire;
        }
        ctx.register_event_time_timer(window.max_timestamp());
        if ctx.state().is_none() {
            if let Some(ts) = timestamp {
                let start = ts - ts.rem_euclid(self.interval.max(1));
                next_fire(start, self.interval, window.max_timestamp(), true, ctx);
            }
        }
        TriggerResult::Continue
    }

    fn on_event_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            return TriggerResult::Fire;
        }
        if *ctx.state() == Some(time) {
            *ctx.state() = None;
            next_fire(time, self.interval, window.max_timestamp(), true, ctx);
            return TriggerResult::Fire;
        }
        TriggerResult::Continue
    }

    fn on_processing_time(
        &self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, _: &W, merged: Vec<Option<i64>>, ctx: &mut TriggerContext<'_, Option<i64>>) {
        let next = merged.into_iter().flatten().min();
        *ctx.state() = next;
        if let Some(next) = next {
            ctx.register_event_time_timer(next);
        }
    }

    fn clear(&self, _: &W, ctx: &mut TriggerContext<'_, Option<i64>>) {
        if let Some(next) = ctx.state().take() {
            ctx.delete_event_time_timer(next);
        }
    }

    fn describe(&self) -> String {
        format!("ContinuousEventTimeTrigger({})", self.interval)
    }
}

/// Fires every `interval` of processing time while the window is open, as
/// Flink's `ContinuousProcessingTimeTrigger`.
#[derive(Clone, Copy, Debug)]
pub struct ContinuousProcessingTimeTrigger {
    interval: i64,
}

impl ContinuousProcessingTimeTrigger {
    /// Fires every `interval`.
    pub fn of(interval: std::time::Duration) -> Self {
        ContinuousProcessingTimeTrigger {
            interval: super::assigners::millis(interval),
        }
    }
}

impl<T, W: Window> Trigger<T, W> for ContinuousProcessingTimeTrigger {
    type State = Option<i64>;

    fn on_element(
        &self,
        _: &T,
        _: Option<i64>,
        window: &W,
        ctx: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        if ctx.state().is_none() {
            let now = ctx.current_processing_time();
            let start = now - now.rem_euclid(self.interval.max(1));
            next_fire(start, self.interval, window.max_timestamp(), false, ctx);
        }
        TriggerResult::Continue
    }

    fn on_event_time(
        &self,
        _: i64,
        _: &W,
        _: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        ctx: &mut TriggerContext<'_, Option<i64>>,
    ) -> TriggerResult {
        if *ctx.state() == Some(time) {
            *ctx.state() = None;
            next_fire(time, self.interval, window.max_timestamp(), false, ctx);
            return TriggerResult::Fire;
        }
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, _: &W, merged: Vec<Option<i64>>, ctx: &mut TriggerContext<'_, Option<i64>>) {
        let next = merged.into_iter().flatten().min();
        *ctx.state() = next;
        if let Some(next) = next {
            ctx.register_processing_time_timer(next);
        }
    }

    fn clear(&self, _: &W, ctx: &mut TriggerContext<'_, Option<i64>>) {
        if let Some(next) = ctx.state().take() {
            ctx.delete_processing_time_timer(next);
        }
    }

    fn describe(&self) -> String {
        format!("ContinuousProcessingTimeTrigger({})", self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::TimeWindow;

    fn run<S: Default>(
        f: impl FnOnce(&mut TriggerContext<'_, S>) -> TriggerResult,
        watermark: i64,
    ) -> (TriggerResult, S, Vec<WindowTimer>) {
        let mut state = S::default();
        let mut timers = Vec::new();
        let mut added = Vec::new();
        let mut ctx = TriggerContext {
            state: &mut state,
            timers: &mut timers,
            added: &mut added,
            watermark,
            processing_time: 0,
        };
        let result = f(&mut ctx);
        (result, state, timers)
    }

    #[test]
    fn event_time_trigger_registers_the_window_end_or_fires_late() {
        let w = TimeWindow::new(0, 10);
        let (r, _, timers) = run(
            |c| Trigger::<u8, _>::on_element(&TimeTrigger::EventTime, &1, Some(3), &w, c),
            5,
        );
        assert_eq!(r, TriggerResult::Continue);
        assert_eq!(
            timers,
            vec![WindowTimer {
                event_time: true,
                at: 9
            }]
        );
        let (r, _, _) = run(
            |c| Trigger::<u8, _>::on_element(&TimeTrigger::EventTime, &1, Some(3), &w, c),
            9,
        );
        assert_eq!(r, TriggerResult::Fire);
    }

    #[test]
    fn count_trigger_fires_every_n_and_purging_purges() {
        let w = TimeWindow::new(0, 10);
        let trigger = PurgingTrigger::of(CountTrigger::of(2));
        let mut state = 0u64;
        let mut results = Vec::new();
        for _ in 0..4 {
            let mut timers = Vec::new();
            let mut added = Vec::new();
            let mut ctx = TriggerContext {
                state: &mut state,
                timers: &mut timers,
                added: &mut added,
                watermark: 0,
                processing_time: 0,
            };
            results.push(Trigger::<u8, _>::on_element(
                &trigger, &1, None, &w, &mut ctx,
            ));
        }
        use TriggerResult::*;
        assert_eq!(
            results,
            vec![Continue, FireAndPurge, Continue, FireAndPurge]
        );
    }

    #[test]
    fn continuous_event_time_trigger_fires_each_interval() {
        let w = TimeWindow::new(0, 100);
        let trigger = ContinuousEventTimeTrigger::of(std::time::Duration::from_millis(30));
        let (_, state, timers) = run(
            |c| Trigger::<u8, _>::on_element(&trigger, &1, Some(42), &w, c),
            0,
        );
        assert_eq!(state, Some(60));
        assert!(timers.contains(&WindowTimer {
            event_time: true,
            at: 60
        }));
        assert!(timers.contains(&WindowTimer {
            event_time: true,
            at: 99
        }));
    }
}

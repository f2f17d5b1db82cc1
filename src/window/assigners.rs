//! Window assigners: which windows an element belongs to (Flink's
//! `WindowAssigner`s): tumbling, sliding, session (static or dynamic gap),
//! cumulating, global; event time or processing time.
//!
//! The Flink names are the constructors:
//! `TumblingEventTimeWindows::of(size)` returns a [`TumblingWindows`], and so on.

use std::sync::Arc;
use std::time::Duration;

use weir_actors::error::Permanent;
use weir_actors::UserError;

use super::slices::SliceShape;
use super::slicing::Slicing;
use super::triggers::{NeverTrigger, TimeTrigger, Trigger};
use super::windows::{merge_overlapping, window_start, GlobalWindow, TimeWindow, Window};

/// A duration in milliseconds (saturating).
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Assigns each element to zero or more windows.
pub trait WindowAssigner<T>: Clone + Send + Sync + 'static {
    /// The kind of window.
    type W: Window;
    /// The trigger used unless one is given.
    type DefaultTrigger: Trigger<T, Self::W>;

    /// Pushes the windows of `element` (with its `timestamp`, at processing
    /// time `now`) onto `windows`.
    fn assign_windows(
        &self,
        element: &T,
        timestamp: Option<i64>,
        now: i64,
        windows: &mut Vec<Self::W>,
    ) -> Result<(), UserError>;

    /// The trigger used unless one is given.
    fn default_trigger(&self) -> Self::DefaultTrigger;

    /// Whether the windows are in event time (lateness and cleanup follow the
    /// watermark) rather than processing time.
    fn is_event_time(&self) -> bool;

    /// Whether windows merge (sessions).
    fn is_merging(&self) -> bool {
        false
    }

    /// The merges among `windows`: each merged window with the windows it
    /// covers (sets of two or more only).
    fn merge_windows(&self, _windows: &[Self::W]) -> Vec<(Self::W, Vec<Self::W>)> {
        Vec::new()
    }

    /// Whether the settings make sense (a positive size, ...): an error
    /// naming what is wrong, reported when the job starts.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// How the operator's name shows it.
    fn describe(&self) -> String;

    /// How the windows are made of equal slices, if they are (tumbling,
    /// sliding, cumulating): with the default trigger, no evictor and an
    /// incremental function, such windows run on the slice engine, which
    /// keeps one partial aggregate per key and slice (see
    /// [`crate::window::slicing`]). `None` (the default): the general
    /// window operator.
    fn slicing(&self) -> Option<Slicing<Self::W>> {
        None
    }

    /// How elements open sessions, if the windows are sessions: with the
    /// default trigger, no evictor and an incremental function, sessions
    /// run on the session engine, which keeps each key's sessions as one
    /// value (see [`crate::window::sessions`]). `None` (the default): the
    /// general window engine.
    fn sessions(&self) -> Option<SessionSpec<T, Self::W>> {
        None
    }
}

/// What the session engine needs of a session assigner
/// ([`WindowAssigner::sessions`]).
pub struct SessionSpec<T, W> {
    /// Event time (else processing time).
    pub event_time: bool,
    /// The window `[start, end)` an element opens (with its timestamp, at
    /// processing time `now`).
    #[allow(clippy::type_complexity)]
    pub bounds: Arc<dyn Fn(&T, Option<i64>, i64) -> Result<(i64, i64), UserError> + Send + Sync>,
    /// The window `[start, end)`, as the function sees it.
    pub window: fn(i64, i64) -> W,
}

impl<T, W> Clone for SessionSpec<T, W> {
    fn clone(&self) -> Self {
        SessionSpec {
            event_time: self.event_time,
            bounds: self.bounds.clone(),
            window: self.window,
        }
    }
}

/// Event time or processing time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// Windows by the records' timestamps, fired by watermarks.
    EventTime,
    /// Windows by the wall clock when a record arrives.
    ProcessingTime,
}

impl TimeKind {
    /// The time an element is windowed by.
    pub(crate) fn time_of(
        self,
        timestamp: Option<i64>,
        now: i64,
        assigner: &str,
    ) -> Result<i64, UserError> {
        match self {
            TimeKind::ProcessingTime => Ok(now),
            // Permanent: the record has no timestamp in any replay either.
            TimeKind::EventTime => timestamp.ok_or_else(|| {
                Permanent::from_message(format!(
                    "{assigner} got a record without a timestamp: give the stream event time \
                     (assign_timestamps_and_watermarks, or a source with timestamps) or use a \
                     processing-time window"
                ))
                .into()
            }),
        }
    }

    fn trigger(self) -> TimeTrigger {
        match self {
            TimeKind::EventTime => TimeTrigger::EventTime,
            TimeKind::ProcessingTime => TimeTrigger::ProcessingTime,
        }
    }

    fn slicing(self, shape: SliceShape) -> Slicing<TimeWindow> {
        Slicing {
            shape,
            event_time: self == TimeKind::EventTime,
            window: TimeWindow::new,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TimeKind::EventTime => "EventTime",
            TimeKind::ProcessingTime => "ProcessingTime",
        }
    }
}

fn check_offset(what: &str, offset: i64, period: i64) -> Result<(), String> {
    if offset.unsigned_abs() >= period.unsigned_abs() {
        return Err(format!(
            "{what}: the offset ({offset} ms) must be smaller than the slide or size ({period} ms)"
        ));
    }
    Ok(())
}

/// Fixed-size, non-overlapping windows `[start, start + size)`.
#[derive(Clone, Copy, Debug)]
pub struct TumblingWindows {
    size: i64,
    offset: i64,
    time: TimeKind,
}

/// Tumbling windows in event time (Flink's name).
///
/// ```
/// use std::time::Duration;
/// use weir::window::{TumblingEventTimeWindows, WindowAssigner, TimeWindow};
/// let assigner = TumblingEventTimeWindows::of(Duration::from_secs(1));
/// let mut windows = Vec::new();
/// assigner.assign_windows(&(), Some(1_500), 0, &mut windows).unwrap();
/// assert_eq!(windows, vec![TimeWindow::new(1_000, 2_000)]);
/// ```
pub struct TumblingEventTimeWindows;

impl TumblingEventTimeWindows {
    /// Windows of `size`.
    pub fn of(size: Duration) -> TumblingWindows {
        TumblingWindows {
            size: millis(size),
            offset: 0,
            time: TimeKind::EventTime,
        }
    }
}

/// Tumbling windows in processing time (Flink's name).
pub struct TumblingProcessingTimeWindows;

impl TumblingProcessingTimeWindows {
    /// Windows of `size`.
    pub fn of(size: Duration) -> TumblingWindows {
        TumblingWindows {
            time: TimeKind::ProcessingTime,
            ..TumblingEventTimeWindows::of(size)
        }
    }
}

impl TumblingWindows {
    /// Windows start at `offset` (ms, may be negative: time zones) past a
    /// multiple of the size.
    pub fn with_offset_ms(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T: 'static> WindowAssigner<T> for TumblingWindows {
    type W = TimeWindow;
    type DefaultTrigger = TimeTrigger;

    #[inline]
    fn assign_windows(
        &self,
        _: &T,
        timestamp: Option<i64>,
        now: i64,
        windows: &mut Vec<TimeWindow>,
    ) -> Result<(), UserError> {
        let time = self.time.time_of(timestamp, now, "a tumbling window")?;
        let start = window_start(time, self.offset, self.size);
        windows.push(TimeWindow::new(start, start.saturating_add(self.size)));
        Ok(())
    }

    fn default_trigger(&self) -> TimeTrigger {
        self.time.trigger()
    }

    fn is_event_time(&self) -> bool {
        self.time == TimeKind::EventTime
    }

    fn validate(&self) -> Result<(), String> {
        if self.size <= 0 {
            return Err("a tumbling window's size must be positive".into());
        }
        check_offset("a tumbling window", self.offset, self.size)
    }

    fn describe(&self) -> String {
        format!("Tumbling{}Windows({})", self.time.prefix(), self.size)
    }

    fn slicing(&self) -> Option<Slicing<TimeWindow>> {
        Some(self.time.slicing(SliceShape::Hopping {
            size: self.size,
            slide: self.size,
            offset: self.offset,
        }))
    }
}

/// Windows of `size` starting every `slide`: each element is in
/// `size / slide` of them.
#[derive(Clone, Copy, Debug)]
pub struct SlidingWindows {
    size: i64,
    slide: i64,
    offset: i64,
    time: TimeKind,
}

/// Sliding windows in event time (Flink's name).
///
/// ```
/// use std::time::Duration;
/// use weir::window::{SlidingEventTimeWindows, WindowAssigner, TimeWindow};
/// let assigner = SlidingEventTimeWindows::of(Duration::from_secs(3), Duration::from_secs(1));
/// let mut windows = Vec::new();
/// assigner.assign_windows(&(), Some(2_500), 0, &mut windows).unwrap();
/// assert_eq!(windows, vec![TimeWindow::new(2_000, 5_000), TimeWindow::new(1_000, 4_000), TimeWindow::new(0, 3_000)]);
/// ```
pub struct SlidingEventTimeWindows;

impl SlidingEventTimeWindows {
    /// Windows of `size`, one starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> SlidingWindows {
        SlidingWindows {
            size: millis(size),
            slide: millis(slide),
            offset: 0,
            time: TimeKind::EventTime,
        }
    }
}

/// Sliding windows in processing time (Flink's name).
pub struct SlidingProcessingTimeWindows;

impl SlidingProcessingTimeWindows {
    /// Windows of `size`, one starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> SlidingWindows {
        SlidingWindows {
            time: TimeKind::ProcessingTime,
            ..SlidingEventTimeWindows::of(size, slide)
        }
    }
}

impl SlidingWindows {
    /// Windows start at `offset` (ms) past a multiple of the slide.
    pub fn with_offset_ms(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T: 'static> WindowAssigner<T> for SlidingWindows {
    type W = TimeWindow;
    type DefaultTrigger = TimeTrigger;

    #[inline]
    fn assign_windows(
        &self,
        _: &T,
        timestamp: Option<i64>,
        now: i64,
        windows: &mut Vec<TimeWindow>,
    ) -> Result<(), UserError> {
        let time = self.time.time_of(timestamp, now, "a sliding window")?;
        let last_start = window_start(time, self.offset, self.slide);
        let mut start = last_start;
        while start > time.saturating_sub(self.size) {
            windows.push(TimeWindow::new(start, start.saturating_add(self.size)));
            start -= self.slide;
        }
        Ok(())
    }

    fn default_trigger(&self) -> TimeTrigger {
        self.time.trigger()
    }

    fn is_event_time(&self) -> bool {
        self.time == TimeKind::EventTime
    }

    fn validate(&self) -> Result<(), String> {
        if self.size <= 0 || self.slide <= 0 {
            return Err(format!(
                "a sliding window's size ({} ms) and slide ({} ms) must be positive",
                self.size, self.slide
            ));
        }
        check_offset("a sliding window", self.offset, self.slide)
    }

    fn describe(&self) -> String {
        format!(
            "Sliding{}Windows({}, {})",
            self.time.prefix(),
            self.size,
            self.slide
        )
    }

    fn slicing(&self) -> Option<Slicing<TimeWindow>> {
        Some(self.time.slicing(SliceShape::Hopping {
            size: self.size,
            slide: self.slide,
            offset: self.offset,
        }))
    }
}

/// Windows that grow by `step` from a common start up to `max_size` (Flink
/// SQL's `CUMULATE`): for a day with a one-hour step, `[00:00, 01:00)`,
/// `[00:00, 02:00)`, ..., `[00:00, 24:00)`.
#[derive(Clone, Copy, Debug)]
pub struct CumulatingWindows {
    max_size: i64,
    step: i64,
    offset: i64,
    time: TimeKind,
}

/// Cumulating windows in event time.
///
/// ```
/// use std::time::Duration;
/// use weir::window::{CumulatingEventTimeWindows, WindowAssigner, TimeWindow};
/// let assigner = CumulatingEventTimeWindows::of(Duration::from_secs(3), Duration::from_secs(1));
/// let mut windows = Vec::new();
/// assigner.assign_windows(&(), Some(1_500), 0, &mut windows).unwrap();
/// assert_eq!(windows, vec![TimeWindow::new(0, 2_000), TimeWindow::new(0, 3_000)]);
/// ```
pub struct CumulatingEventTimeWindows;

impl CumulatingEventTimeWindows {
    /// Windows growing by `step` up to `max_size` (a multiple of `step`).
    pub fn of(max_size: Duration, step: Duration) -> CumulatingWindows {
        CumulatingWindows {
            max_size: millis(max_size),
            step: millis(step),
            offset: 0,
            time: TimeKind::EventTime,
        }
    }
}

/// Cumulating windows in processing time.
pub struct CumulatingProcessingTimeWindows;

impl CumulatingProcessingTimeWindows {
    /// Windows growing by `step` up to `max_size` (a multiple of `step`).
    pub fn of(max_size: Duration, step: Duration) -> CumulatingWindows {
        CumulatingWindows {
            time: TimeKind::ProcessingTime,
            ..CumulatingEventTimeWindows::of(max_size, step)
        }
    }
}

impl CumulatingWindows {
    /// Windows start at `offset` (ms) past a multiple of the maximum size.
    pub fn with_offset_ms(mut self, offset: i64) -> Self {
        self.offset = offset;
        self
    }
}

impl<T: 'static> WindowAssigner<T> for CumulatingWindows {
    type W = TimeWindow;
    type DefaultTrigger = TimeTrigger;

    fn assign_windows(
        &self,
        _: &T,
        timestamp: Option<i64>,
        now: i64,
        windows: &mut Vec<TimeWindow>,
    ) -> Result<(), UserError> {
        let time = self.time.time_of(timestamp, now, "a cumulating window")?;
        let start = window_start(time, self.offset, self.max_size);
        let last_end = start.saturating_add(self.max_size);
        let mut end = window_start(time, self.offset, self.step).saturating_add(self.step);
        while end <= last_end {
            windows.push(TimeWindow::new(start, end));
            end += self.step;
        }
        Ok(())
    }

    fn default_trigger(&self) -> TimeTrigger {
        self.time.trigger()
    }

    fn is_event_time(&self) -> bool {
        self.time == TimeKind::EventTime
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_size <= 0 || self.step <= 0 || self.max_size % self.step != 0 {
            return Err(format!(
                "a cumulating window's maximum size ({} ms) must be a positive multiple of its step ({} ms)",
                self.max_size, self.step
            ));
        }
        check_offset("a cumulating window", self.offset, self.max_size)
    }

    fn describe(&self) -> String {
        format!(
            "Cumulating{}Windows({}, {})",
            self.time.prefix(),
            self.max_size,
            self.step
        )
    }

    fn slicing(&self) -> Option<Slicing<TimeWindow>> {
        Some(self.time.slicing(SliceShape::Cumulating {
            max_size: self.max_size,
            step: self.step,
            offset: self.offset,
        }))
    }
}

/// The gap of a session: fixed, or computed from each element.
enum Gap<T> {
    Static(i64),
    Dynamic(Arc<dyn Fn(&T) -> i64 + Send + Sync>),
}

impl<T> Clone for Gap<T> {
    fn clone(&self) -> Self {
        match self {
            Gap::Static(g) => Gap::Static(*g),
            Gap::Dynamic(f) => Gap::Dynamic(f.clone()),
        }
    }
}

/// Sessions: an element opens `[t, t + gap)`, and windows that overlap or
/// touch merge, so a session ends after `gap` without elements.
pub struct SessionWindows<T> {
    gap: Gap<T>,
    time: TimeKind,
}

impl<T> Clone for SessionWindows<T> {
    fn clone(&self) -> Self {
        SessionWindows {
            gap: self.gap.clone(),
            time: self.time,
        }
    }
}

/// Session windows in event time (Flink's name).
pub struct EventTimeSessionWindows;

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` without elements.
    pub fn with_gap<T>(gap: Duration) -> SessionWindows<T> {
        SessionWindows {
            gap: Gap::Static(millis(gap)),
            time: TimeKind::EventTime,
        }
    }

    /// Sessions whose gap each element gives (in ms; it must be positive).
    pub fn with_dynamic_gap<T>(
        gap: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> SessionWindows<T> {
        SessionWindows {
            gap: Gap::Dynamic(Arc::new(gap)),
            time: TimeKind::EventTime,
        }
    }
}

/// Session windows in processing time (Flink's name).
pub struct ProcessingTimeSessionWindows;

impl ProcessingTimeSessionWindows {
    /// Sessions that end after `gap` without elements.
    pub fn with_gap<T>(gap: Duration) -> SessionWindows<T> {
        SessionWindows {
            gap: Gap::Static(millis(gap)),
            time: TimeKind::ProcessingTime,
        }
    }

    /// Sessions whose gap each element gives (in ms; it must be positive).
    pub fn with_dynamic_gap<T>(
        gap: impl Fn(&T) -> i64 + Send + Sync + 'static,
    ) -> SessionWindows<T> {
        SessionWindows {
            gap: Gap::Dynamic(Arc::new(gap)),
            time: TimeKind::ProcessingTime,
        }
    }
}

impl<T: 'static> WindowAssigner<T> for SessionWindows<T> {
    type W = TimeWindow;
    type DefaultTrigger = TimeTrigger;

    fn assign_windows(
        &self,
        element: &T,
        timestamp: Option<i64>,
        now: i64,
        windows: &mut Vec<TimeWindow>,
    ) -> Result<(), UserError> {
        let (start, end) = self.bounds(element, timestamp, now)?;
        windows.push(TimeWindow::new(start, end));
        Ok(())
    }

    fn default_trigger(&self) -> TimeTrigger {
        self.time.trigger()
    }

    fn is_event_time(&self) -> bool {
        self.time == TimeKind::EventTime
    }

    fn is_merging(&self) -> bool {
        true
    }

    fn merge_windows(&self, windows: &[TimeWindow]) -> Vec<(TimeWindow, Vec<TimeWindow>)> {
        merge_overlapping(windows)
    }

    fn sessions(&self) -> Option<SessionSpec<T, TimeWindow>> {
        let assigner = self.clone();
        Some(SessionSpec {
            event_time: self.time == TimeKind::EventTime,
            bounds: Arc::new(move |element, timestamp, now| {
                assigner.bounds(element, timestamp, now)
            }),
            window: TimeWindow::new,
        })
    }

    fn validate(&self) -> Result<(), String> {
        match self.gap {
            Gap::Static(gap) if gap <= 0 => Err(format!(
                "a session window's gap must be positive (it is {gap} ms)"
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match &self.gap {
            Gap::Static(gap) => format!("{}SessionWindows({gap})", self.time.prefix()),
            Gap::Dynamic(_) => format!("Dynamic{}SessionWindows", self.time.prefix()),
        }
    }
}

impl<T> SessionWindows<T> {
    /// The window `[start, end)` `element` opens.
    fn bounds(
        &self,
        element: &T,
        timestamp: Option<i64>,
        now: i64,
    ) -> Result<(i64, i64), UserError> {
        let time = self.time.time_of(timestamp, now, "a session window")?;
        let gap = match &self.gap {
            Gap::Static(gap) => *gap,
            Gap::Dynamic(f) => {
                let gap = f(element);
                if gap <= 0 {
                    return Err(Permanent::from_message(format!(
                        "a dynamic session gap must be positive; the gap function gave {gap} for the record at {time}"
                    ))
                    .into());
                }
                gap
            }
        };
        Ok((time, time.saturating_add(gap)))
    }
}

/// One window for all elements of a key; it never fires unless a trigger
/// says so (count windows are global windows with a count trigger).
#[derive(Clone, Copy, Debug, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The assigner (Flink's `GlobalWindows.create()`).
    pub fn create() -> Self {
        GlobalWindows
    }
}

impl<T: 'static> WindowAssigner<T> for GlobalWindows {
    type W = GlobalWindow;
    type DefaultTrigger = NeverTrigger;

    fn assign_windows(
        &self,
        _: &T,
        _: Option<i64>,
        _: i64,
        windows: &mut Vec<GlobalWindow>,
    ) -> Result<(), UserError> {
        windows.push(GlobalWindow);
        Ok(())
    }

    fn default_trigger(&self) -> NeverTrigger {
        NeverTrigger
    }

    fn is_event_time(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        "GlobalWindows".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows<A: WindowAssigner<u8>>(a: &A, ts: i64) -> Vec<A::W> {
        let mut out = Vec::new();
        a.assign_windows(&0, Some(ts), 0, &mut out).unwrap();
        out
    }

    #[test]
    fn sliding_windows_cover_each_timestamp_size_over_slide_times() {
        let a = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(3));
        for ts in -20..40 {
            let ws = windows(&a, ts);
            assert!(
                ws.iter().all(|w| w.start <= ts && ts < w.end),
                "{ts}: {ws:?}"
            );
            assert!(ws.len() == 3 || ws.len() == 4, "{ts}: {ws:?}");
        }
    }

    #[test]
    fn cumulating_windows_grow_from_one_start() {
        let a = CumulatingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(
            windows(&a, 3),
            vec![TimeWindow::new(0, 5), TimeWindow::new(0, 10)]
        );
        assert_eq!(windows(&a, 7), vec![TimeWindow::new(0, 10)]);
        assert_eq!(windows(&a, -1), vec![TimeWindow::new(-10, 0)]);
    }

    #[test]
    fn bad_settings_and_missing_timestamps_are_errors() {
        let a = TumblingEventTimeWindows::of(Duration::ZERO);
        assert!(WindowAssigner::<u8>::validate(&a).is_err());
        let a = TumblingEventTimeWindows::of(Duration::from_millis(5)).with_offset_ms(5);
        assert!(WindowAssigner::<u8>::validate(&a).is_err());
        let a = TumblingEventTimeWindows::of(Duration::from_millis(5));
        let err = a
            .assign_windows(&0u8, None, 0, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("without a timestamp"), "{err}");
        let a = EventTimeSessionWindows::with_dynamic_gap(|x: &u8| *x as i64 - 1);
        assert!(a.assign_windows(&0u8, Some(1), 0, &mut Vec::new()).is_err());
    }
}

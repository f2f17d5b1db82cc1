//! The windows themselves: [`TimeWindow`] (`[start, end)` in ms) and
//! [`GlobalWindow`] (the one window of count windows), behind the [`Window`]
//! trait the window operator keys its state by.

use std::fmt::Debug;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A window: a key of window state, with the last timestamp it covers.
pub trait Window:
    Clone + Debug + Eq + Hash + Ord + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The largest timestamp that belongs to the window (`end - 1` for a
    /// [`TimeWindow`]); an event-time window fires when the watermark reaches it.
    fn max_timestamp(&self) -> i64;
}

/// The time interval `[start, end)`, in milliseconds.
///
/// ```
/// use weir::window::TimeWindow;
/// let w = TimeWindow::new(0, 1_000);
/// assert_eq!(w.max_timestamp(), 999);
/// assert!(w.intersects(&TimeWindow::new(1_000, 2_000)));
/// assert_eq!(w.cover(&TimeWindow::new(500, 1_500)), TimeWindow::new(0, 1_500));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimeWindow {
    /// The first timestamp in the window.
    pub start: i64,
    /// The first timestamp after the window.
    pub end: i64,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        TimeWindow { start, end }
    }

    /// `end - 1`.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// Whether the two windows overlap or touch (sessions that touch merge, as in Flink).
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl Window for TimeWindow {
    fn max_timestamp(&self) -> i64 {
        TimeWindow::max_timestamp(self)
    }
}

/// The start of the window of `size` (shifted by `offset`) that holds
/// `timestamp` (Flink's `TimeWindow.getWindowStartWithOffset`, also for
/// negative timestamps).
///
/// ```
/// use weir::window::window_start;
/// assert_eq!(window_start(1_999, 0, 1_000), 1_000);
/// assert_eq!(window_start(-1, 0, 1_000), -1_000);
/// assert_eq!(window_start(1_999, 200, 1_000), 1_200);
/// ```
#[inline]
pub fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
    let remainder = (timestamp - offset).rem_euclid(size);
    timestamp - remainder
}

/// The one window of all elements (count windows, custom triggers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    fn max_timestamp(&self) -> i64 {
        i64::MAX
    }
}

/// Groups `windows` into sets that overlap or touch, each with the window
/// covering it, keeping only sets of two or more (Flink's
/// `TimeWindow.mergeWindows`).
pub fn merge_overlapping(windows: &[TimeWindow]) -> Vec<(TimeWindow, Vec<TimeWindow>)> {
    let mut sorted: Vec<TimeWindow> = windows.to_vec();
    sorted.sort();
    let mut groups: Vec<(TimeWindow, Vec<TimeWindow>)> = Vec::new();
    for window in sorted {
        match groups.last_mut() {
            Some((cover, members)) if cover.intersects(&window) => {
                *cover = cover.cover(&window);
                members.push(window);
            }
            _ => groups.push((window, vec![window])),
        }
    }
    groups.retain(|(_, members)| members.len() > 1);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_start_handles_offsets_and_negative_time() {
        assert_eq!(window_start(0, 0, 5), 0);
        assert_eq!(window_start(4, 0, 5), 0);
        assert_eq!(window_start(5, 0, 5), 5);
        assert_eq!(window_start(-5, 0, 5), -5);
        assert_eq!(window_start(-6, 0, 5), -10);
        assert_eq!(window_start(7, 3, 5), 3);
        assert_eq!(window_start(2, 3, 5), -2);
    }

    #[test]
    fn merging_groups_touching_windows_only() {
        let w = |s, e| TimeWindow::new(s, e);
        let groups = merge_overlapping(&[w(10, 20), w(0, 5), w(5, 8), w(30, 40), w(19, 25)]);
        assert_eq!(
            groups,
            vec![
                (w(0, 8), vec![w(0, 5), w(5, 8)]),
                (w(10, 25), vec![w(10, 20), w(19, 25)]),
            ]
        );
    }
}

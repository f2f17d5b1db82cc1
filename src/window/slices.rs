//! Slices: the time arithmetic of windows that are unions of equal, aligned
//! slices (tumbling, sliding and cumulating windows), and the per-key set
//! of partial aggregates, one per slice, that the slice engine
//! ([`super::slicing`]) keeps instead of one accumulator per window.
//!
//! A sliding window of 60 s every 1 s is 60 slices of 1 s: an element is
//! added to its one slice, and a window that fires merges its slices. The
//! cost of an element does not grow with `size / slide`, and the state holds
//! keys x slices accumulators, not keys x windows (Flink SQL's slicing
//! windows; Flink's DataStream copies each element into every window).
//!
//! Windows are named by their end (exclusive): a window fires at `end - 1`.
//!
//! ```
//! use weir::window::SliceShape;
//! // 10 ms windows every 4 ms: slices of gcd(10, 4) = 2 ms.
//! let shape = SliceShape::Hopping { size: 10, slide: 4, offset: 0 };
//! assert_eq!(shape.slice_end(5), 6);
//! // Slice [4, 6) is in the windows [-4, 6), [0, 10) and [4, 14).
//! assert_eq!(shape.first_window_end(6), 6);
//! assert_eq!(shape.last_window_end(6), 14);
//! assert_eq!(shape.window_start(14), 4);
//! ```

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::windows::window_start;

/// How windows are made of slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceShape {
    /// Windows of `size` starting at `offset + k * slide` (tumbling: `size
    /// == slide`); slices of `gcd(size, slide)`.
    Hopping {
        /// The windows' length (ms).
        size: i64,
        /// The distance between window starts (ms).
        slide: i64,
        /// Where the windows are aligned (ms).
        offset: i64,
    },
    /// Windows `[p, p + k * step)` for `k` in `1..=max_size / step`, periods
    /// `p` at `offset + n * max_size`; slices of `step`.
    Cumulating {
        /// The largest window of a period (a multiple of `step`).
        max_size: i64,
        /// How much each window of a period is longer than the previous.
        step: i64,
        /// Where the periods are aligned (ms).
        offset: i64,
    },
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

impl SliceShape {
    /// The length of a slice.
    #[inline]
    pub fn width(&self) -> i64 {
        match *self {
            SliceShape::Hopping { size, slide, .. } if size == slide => size.max(1),
            SliceShape::Hopping { size, slide, .. } => gcd(size, slide).max(1),
            SliceShape::Cumulating { step, .. } => step,
        }
    }

    fn offset(&self) -> i64 {
        match *self {
            SliceShape::Hopping { offset, .. } | SliceShape::Cumulating { offset, .. } => offset,
        }
    }

    /// The end of the slice that `time` falls in.
    #[inline]
    pub fn slice_end(&self, time: i64) -> i64 {
        let width = self.width();
        window_start(time, self.offset(), width).saturating_add(width)
    }

    /// The start of the window that ends at `end`.
    #[inline]
    pub fn window_start(&self, end: i64) -> i64 {
        match *self {
            SliceShape::Hopping { size, .. } => end.saturating_sub(size),
            SliceShape::Cumulating {
                max_size, offset, ..
            } => window_start(end.saturating_sub(1), offset, max_size),
        }
    }

    /// The end of the first (earliest-ending) window the slice ending at
    /// `slice_end` is in. Greater than [`Self::last_window_end`] when the
    /// slice is in no window (sliding windows shorter than their slide).
    #[inline]
    pub fn first_window_end(&self, slice_end: i64) -> i64 {
        match *self {
            SliceShape::Hopping {
                size,
                slide,
                offset,
            } => {
                // The earliest window start at or after `slice_end - size`.
                let earliest = slice_end.saturating_sub(size);
                window_start(earliest.saturating_add(slide - 1), offset, slide).saturating_add(size)
            }
            SliceShape::Cumulating { .. } => slice_end,
        }
    }

    /// The end of the last (latest-ending) window the slice ending at
    /// `slice_end` is in.
    #[inline]
    pub fn last_window_end(&self, slice_end: i64) -> i64 {
        match *self {
            SliceShape::Hopping {
                size,
                slide,
                offset,
            } => {
                let slice_start = slice_end.saturating_sub(self.width());
                window_start(slice_start, offset, slide).saturating_add(size)
            }
            SliceShape::Cumulating {
                max_size, offset, ..
            } => {
                window_start(slice_end.saturating_sub(1), offset, max_size).saturating_add(max_size)
            }
        }
    }

    /// The end of the window that ends next after the one ending at `end`.
    #[inline]
    pub fn next_window_end(&self, end: i64) -> i64 {
        match *self {
            SliceShape::Hopping { slide, .. } => end.saturating_add(slide),
            SliceShape::Cumulating { step, .. } => end.saturating_add(step),
        }
    }

    /// Whether a window ends at `end`.
    #[inline]
    pub fn is_window_end(&self, end: i64) -> bool {
        match *self {
            SliceShape::Hopping {
                size,
                slide,
                offset,
            } => (end.wrapping_sub(size).wrapping_sub(offset)).rem_euclid(slide) == 0,
            SliceShape::Cumulating { step, offset, .. } => {
                end.wrapping_sub(offset).rem_euclid(step) == 0
            }
        }
    }

    /// Whether, among the windows of one slice, the ones ending later come
    /// first in the assigner's order (sliding: yes; cumulating: no), the
    /// order late firings follow.
    pub(crate) fn latest_first(&self) -> bool {
        matches!(self, SliceShape::Hopping { .. })
    }
}

/// Where a time falls: its slice and the windows that slice is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The slice: `[slice_start, slice_end)`.
    pub slice_start: i64,
    pub slice_end: i64,
    /// See [`SliceShape::first_window_end`].
    pub first_window_end: i64,
    /// See [`SliceShape::last_window_end`].
    pub last_window_end: i64,
}

impl SliceShape {
    /// Where `time` falls.
    pub(crate) fn placement(&self, time: i64) -> Placement {
        let slice_end = self.slice_end(time);
        Placement {
            slice_start: slice_end.saturating_sub(self.width()),
            slice_end,
            first_window_end: self.first_window_end(slice_end),
            last_window_end: self.last_window_end(slice_end),
        }
    }
}

/// The last [`Placement`] computed, reused while times fall in its slice:
/// in-order input divides once per slice, not three times per record.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LastPlacement(Option<Placement>);

impl LastPlacement {
    /// Where `time` falls in `shape`.
    #[inline]
    pub(crate) fn of(&mut self, shape: &SliceShape, time: i64) -> Placement {
        match self.0 {
            Some(last) if time >= last.slice_start && time < last.slice_end => last,
            _ => {
                let placement = shape.placement(time);
                self.0 = Some(placement);
                placement
            }
        }
    }
}

/// One key's partial aggregates, one per slice, ordered by slice end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Slices<Acc>(pub SmallVec<[(i64, Acc); 1]>);

impl<Acc> Default for Slices<Acc> {
    fn default() -> Self {
        Slices(SmallVec::new())
    }
}

impl<Acc> Slices<Acc> {
    /// Adds to the slice ending at `end` through `add`, or creates it with
    /// `first`; returns whether it was created. In-order input finds its
    /// slice at the back.
    #[inline]
    pub fn add<V>(
        &mut self,
        end: i64,
        value: V,
        add: impl FnOnce(&mut Acc, V),
        first: impl FnOnce(V) -> Acc,
    ) -> bool {
        let at = self.0.iter().rposition(|(e, _)| *e <= end);
        match at {
            Some(i) if self.0[i].0 == end => {
                add(&mut self.0[i].1, value);
                false
            }
            Some(i) => {
                self.0.insert(i + 1, (end, first(value)));
                true
            }
            None => {
                self.0.insert(0, (end, first(value)));
                true
            }
        }
    }

    /// Whether some slice ends in `(start, end]`.
    pub fn any_in(&self, start: i64, end: i64) -> bool {
        let from = self.0.partition_point(|(e, _)| *e <= start);
        self.0.get(from).is_some_and(|(e, _)| *e <= end)
    }

    /// Removes the slices before the first one `keep` holds for (`keep` is
    /// false for a prefix: slices are ordered by end), and returns the
    /// merge of those removed that end in `(start, end]` (moved, not
    /// cloned) and then of the remaining ones in it (cloned).
    pub fn merged_then_removed(
        &mut self,
        window: Option<(i64, i64)>,
        keep: impl Fn(i64) -> bool,
        merge: impl Fn(&mut Acc, Acc),
    ) -> Option<Acc>
    where
        Acc: Clone,
    {
        // A scan from the front, not a binary search: usually one slice or
        // none goes, and `keep` may divide.
        let removed = self.0.iter().take_while(|(e, _)| !keep(*e)).count();
        let mut result: Option<Acc> = None;
        let mut take = |acc: Acc| match result.as_mut() {
            None => result = Some(acc),
            Some(into) => merge(into, acc),
        };
        let inside = |e: i64| window.is_some_and(|(start, end)| e > start && e <= end);
        for (e, acc) in self.0.drain(..removed) {
            if inside(e) {
                take(acc);
            }
        }
        if let Some((start, end)) = window {
            let from = self.0.partition_point(|(e, _)| *e <= start);
            for (_, acc) in self.0[from..].iter().take_while(|(e, _)| *e <= end) {
                take(acc.clone());
            }
        }
        result
    }

    /// Whether there are no slices.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_placement_is_the_placement_of_every_time_in_its_slice() {
        let shapes = [
            SliceShape::Hopping {
                size: 10,
                slide: 10,
                offset: 3,
            },
            SliceShape::Hopping {
                size: 10,
                slide: 4,
                offset: -1,
            },
            SliceShape::Cumulating {
                max_size: 12,
                step: 4,
                offset: 0,
            },
        ];
        for shape in shapes {
            let mut last = LastPlacement::default();
            for time in (-40..40).chain((-40..40).rev()).chain([5, -17, 33, 0, 0]) {
                assert_eq!(
                    last.of(&shape, time),
                    shape.placement(time),
                    "{shape:?} {time}"
                );
            }
        }
    }

    /// Every window end of `shape` from `from` to `to`, by brute force.
    fn window_ends(shape: &SliceShape, from: i64, to: i64) -> Vec<i64> {
        (from..=to).filter(|e| shape.is_window_end(*e)).collect()
    }

    /// Checks the slice arithmetic against windows enumerated by brute force.
    fn check(shape: SliceShape) {
        for time in -60..60 {
            let slice_end = shape.slice_end(time);
            let slice_start = slice_end - shape.width();
            assert!(slice_start <= time && time < slice_end, "{shape:?} {time}");
            // The windows containing the whole slice are those containing
            // `time`: no window boundary falls inside a slice.
            let containing: Vec<i64> = window_ends(&shape, -200, 200)
                .into_iter()
                .filter(|e| shape.window_start(*e) <= time && time < *e)
                .collect();
            for e in &containing {
                assert!(shape.window_start(*e) <= slice_start && slice_end <= *e);
            }
            match (containing.first(), containing.last()) {
                (Some(first), Some(last)) => {
                    assert_eq!(
                        shape.first_window_end(slice_end),
                        *first,
                        "{shape:?} {time}"
                    );
                    assert_eq!(shape.last_window_end(slice_end), *last, "{shape:?} {time}");
                    let mut e = *first;
                    let mut walked = vec![e];
                    while e < *last {
                        e = shape.next_window_end(e);
                        walked.push(e);
                    }
                    assert_eq!(walked, containing, "{shape:?} {time}");
                }
                _ => assert!(
                    shape.first_window_end(slice_end) > shape.last_window_end(slice_end),
                    "{shape:?} {time}"
                ),
            }
        }
    }

    #[test]
    fn slices_tile_every_window_of_every_shape() {
        for (size, slide) in [(5, 5), (10, 2), (10, 4), (6, 4), (3, 5), (7, 7), (1, 1)] {
            for offset in [0_i64, 1, -2] {
                if offset.abs() < slide {
                    check(SliceShape::Hopping {
                        size,
                        slide,
                        offset,
                    });
                }
            }
        }
        for (max_size, step) in [(12, 3), (4, 4), (10, 1)] {
            for offset in [0, 2, -1] {
                check(SliceShape::Cumulating {
                    max_size,
                    step,
                    offset,
                });
            }
        }
    }

    #[test]
    fn slices_add_in_order_merge_and_remove_a_prefix() {
        let mut slices = Slices::<u64>::default();
        let add = |acc: &mut u64, v: u64| *acc += v;
        assert!(slices.add(10, 1, add, |v| v));
        assert!(!slices.add(10, 2, add, |v| v));
        assert!(slices.add(30, 5, add, |v| v));
        assert!(slices.add(20, 7, add, |v| v));
        assert!(slices.add(0, 100, add, |v| v));
        assert_eq!(slices.0.to_vec(), vec![(0, 100), (10, 3), (20, 7), (30, 5)]);
        assert!(slices.any_in(10, 20) && !slices.any_in(30, 40));
        let merge = |a: &mut u64, b: u64| *a += b;
        assert_eq!(
            slices.merged_then_removed(Some((0, 20)), |_| true, merge),
            Some(10)
        );
        assert_eq!(
            slices.merged_then_removed(Some((30, 39)), |_| true, merge),
            None
        );
        let got = slices.merged_then_removed(Some((0, 30)), |end| end > 10, merge);
        assert_eq!(got, Some(15));
        assert_eq!(slices.0.to_vec(), vec![(20, 7), (30, 5)]);
        assert_eq!(slices.merged_then_removed(None, |_| false, merge), None);
        assert!(slices.is_empty());
    }
}

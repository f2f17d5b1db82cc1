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

use std::collections::VecDeque;
use std::marker::PhantomData;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
///
/// The last slice (the one in-order input adds to) is kept inline, in the
/// state's map entry; the earlier ones (a sliding window's other slices)
/// in a deque behind one pointer. An element of in-order input then touches
/// the entry only, which the keyed loop has brought into the cache ahead of
/// the record ([`crate::state::KeyedStateStore::warm`]); a firing drops slices
/// from the front without moving the others. Serialised as the sequence of
/// `(slice end, aggregate)` pairs.
#[derive(Clone, Debug)]
pub(crate) struct Slices<Acc> {
    /// Every slice but the last, ordered by end; `None` when there have
    /// been none. Boxed: one pointer in the map entry instead of a deque's
    /// four words (a tumbling window's entry of in-order input without a
    /// watermark lag never needs them). A firing that empties it keeps it,
    /// and its buffer: a tumbling window's key that already holds the next
    /// window's slice when a window fires (the watermark lags the input)
    /// needs it again at the next window, and would otherwise allocate and
    /// free it once per window.
    #[allow(clippy::box_collection)]
    earlier: Option<Box<VecDeque<(i64, Acc)>>>,
    /// The slice with the latest end; `None` only when there are no slices.
    last: Option<(i64, Acc)>,
}

/// Equal when they hold the same slices (an emptied deque kept for reuse
/// is no difference).
impl<Acc: PartialEq> PartialEq for Slices<Acc> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<Acc> Default for Slices<Acc> {
    fn default() -> Self {
        Slices {
            earlier: None,
            last: None,
        }
    }
}

impl<Acc> Slices<Acc> {
    /// The slices from a sequence ordered by slice end.
    fn from_ordered(mut slices: VecDeque<(i64, Acc)>) -> Self {
        let last = slices.pop_back();
        let earlier = (!slices.is_empty()).then(|| Box::new(slices));
        Slices { earlier, last }
    }

    /// Every slice, ordered by end.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, Acc)> {
        self.earlier
            .iter()
            .flat_map(|earlier| earlier.iter())
            .chain(self.last.as_ref())
    }

    /// Adds to the slice ending at `end` through `add`, or creates it with
    /// `first`; returns whether it was created. In-order input finds its
    /// slice inline, at the back.
    #[inline]
    pub fn add<V>(
        &mut self,
        end: i64,
        value: V,
        add: impl FnOnce(&mut Acc, V),
        first: impl FnOnce(V) -> Acc,
    ) -> bool {
        match &mut self.last {
            Some((last_end, acc)) if *last_end == end => {
                add(acc, value);
                false
            }
            Some((last_end, _)) if *last_end < end => {
                let previous = self.last.replace((end, first(value)));
                self.earlier
                    .get_or_insert_with(Box::default)
                    .extend(previous);
                true
            }
            None => {
                self.last = Some((end, first(value)));
                true
            }
            Some(_) => {
                let earlier = self.earlier.get_or_insert_with(Box::default);
                match earlier.iter().rposition(|(e, _)| *e <= end) {
                    Some(i) if earlier[i].0 == end => {
                        add(&mut earlier[i].1, value);
                        false
                    }
                    Some(i) => {
                        earlier.insert(i + 1, (end, first(value)));
                        true
                    }
                    None => {
                        earlier.push_front((end, first(value)));
                        true
                    }
                }
            }
        }
    }

    /// Whether a slice ends at `end`: the newest, usually, or one just
    /// before it.
    pub fn has_slice_ending(&self, end: i64) -> bool {
        match &self.last {
            Some((last, _)) if *last <= end => *last == end,
            Some(_) => self.earlier.as_ref().is_some_and(|earlier| {
                let mut from_back = earlier.iter().rev().skip_while(|(e, _)| *e > end);
                from_back.next().is_some_and(|(e, _)| *e == end)
            }),
            None => false,
        }
    }

    /// Whether some slice ends in `(start, end]`.
    pub fn any_in(&self, start: i64, end: i64) -> bool {
        let inside = |e: i64| e > start && e <= end;
        if let Some(earlier) = &self.earlier {
            if first_after(earlier, start).is_some_and(|(e, _)| *e <= end) {
                return true;
            }
        }
        self.last.as_ref().is_some_and(|(e, _)| inside(*e))
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
        let mut result: Option<Acc> = None;
        let mut take = |acc: Acc| match result.as_mut() {
            None => result = Some(acc),
            Some(into) => merge(into, acc),
        };
        let inside = |e: i64| window.is_some_and(|(start, end)| e > start && e <= end);
        // From the front: usually one slice or none goes, and `keep` may
        // divide.
        let mut all_earlier_removed = true;
        if let Some(earlier) = self.earlier.as_mut() {
            while let Some((e, _)) = earlier.front() {
                if keep(*e) {
                    all_earlier_removed = false;
                    break;
                }
                if let Some((e, acc)) = earlier.pop_front() {
                    if inside(e) {
                        take(acc);
                    }
                }
            }
        }
        if all_earlier_removed && self.last.as_ref().is_some_and(|(e, _)| !keep(*e)) {
            if let Some((e, acc)) = self.last.take() {
                if inside(e) {
                    take(acc);
                }
            }
        }
        if let Some((start, end)) = window {
            if let Some(earlier) = &self.earlier {
                let from = earlier.iter().take_while(|(e, _)| *e <= start).count();
                for (_, acc) in earlier.range(from..).take_while(|(e, _)| *e <= end) {
                    take(acc.clone());
                }
            }
            if let Some((_, acc)) = self.last.as_ref().filter(|(e, _)| inside(*e)) {
                take(acc.clone());
            }
        }
        result
    }

    /// Whether there are no slices.
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }
}

/// The first slice ending after `start`, found by a scan from the front: a
/// window that fires starts at or near the front (the slices before it have
/// gone), and a scan reads memory in order where a binary search misses the
/// cache at every probe.
fn first_after<Acc>(slices: &VecDeque<(i64, Acc)>, start: i64) -> Option<&(i64, Acc)> {
    slices.iter().find(|(e, _)| *e > start)
}

impl<Acc: Serialize> Serialize for Slices<Acc> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Ordered<'a, Acc>(&'a Slices<Acc>);
        impl<Acc: Serialize> Serialize for Ordered<'_, Acc> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter())
            }
        }
        serializer.serialize_newtype_struct("Slices", &Ordered(self))
    }
}

impl<'de, Acc: Deserialize<'de>> Deserialize<'de> for Slices<Acc> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<Acc>(PhantomData<fn() -> Acc>);
        impl<'de, Acc: Deserialize<'de>> Visitor<'de> for Visit<Acc> {
            type Value = Slices<Acc>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the slices of a key: (slice end, aggregate) pairs")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Self::Value, D::Error> {
                let slices = VecDeque::<(i64, Acc)>::deserialize(deserializer)?;
                Ok(Slices::from_ordered(slices))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let slices: VecDeque<(i64, Acc)> = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                Ok(Slices::from_ordered(slices))
            }
        }
        deserializer.deserialize_newtype_struct("Slices", Visit(PhantomData))
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
        assert_eq!(
            slices.iter().copied().collect::<Vec<_>>(),
            vec![(0, 100), (10, 3), (20, 7), (30, 5)]
        );
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
        assert_eq!(
            slices.iter().copied().collect::<Vec<_>>(),
            vec![(20, 7), (30, 5)]
        );
        assert_eq!(slices.merged_then_removed(None, |_| false, merge), None);
        assert!(slices.is_empty());
    }

    #[test]
    fn a_firing_that_empties_the_earlier_slices_keeps_their_deque() {
        // Tumbling windows whose watermark lags: the next window's slice is
        // there when a window fires, and the one after moves in next.
        let add = |acc: &mut u64, v: u64| *acc += v;
        let merge = |a: &mut u64, b: u64| *a += b;
        let mut slices = Slices::<u64>::default();
        slices.add(10, 1, add, |v| v);
        slices.add(20, 2, add, |v| v);
        let deque = |s: &Slices<u64>| s.earlier.as_deref().map(std::ptr::from_ref);
        let first = deque(&slices).expect("the earlier slice is in the deque");
        for end in [30, 40, 50] {
            let fired =
                slices.merged_then_removed(Some((end - 30, end - 20)), |e| e > end - 20, merge);
            assert!(fired.is_some());
            assert_eq!(deque(&slices), Some(first), "kept, emptied");
            slices.add(end, 3, add, |v| v);
            assert_eq!(deque(&slices), Some(first), "reused");
        }
        assert_eq!(
            slices.iter().copied().collect::<Vec<_>>(),
            vec![(40, 3), (50, 3)]
        );
        let mut fresh = Slices::default();
        fresh.add(40, 3, add, |v| v);
        fresh.add(50, 3, add, |v| v);
        assert_eq!(slices, fresh, "equal with the same slices");
        slices.merged_then_removed(None, |e| e > 40, merge);
        let mut only = Slices::default();
        only.add(50, 3, add, |v| v);
        assert_eq!(slices, only, "an emptied deque is no difference");
    }

    /// A small deterministic generator (xorshift), for the model test.
    fn xorshift(seed: &mut u64, below: u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed % below
    }

    #[test]
    fn slices_behave_as_an_ordered_list_of_slices() {
        // The reference: a list ordered by end. Aggregates are lists of the
        // values added, so that the order of adds and merges shows.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..300 {
            let mut slices = Slices::<Vec<u64>>::default();
            let mut model: Vec<(i64, Vec<u64>)> = Vec::new();
            let mut frontier = 0_i64;
            for value in 0..120_u64 {
                match xorshift(&mut seed, 10) {
                    // Mostly in order, sometimes behind the last slice.
                    0..=6 => {
                        frontier += xorshift(&mut seed, 3) as i64;
                        let end = frontier - xorshift(&mut seed, 4).saturating_sub(1) as i64;
                        let created = slices.add(end, value, |acc, v| acc.push(v), |v| vec![v]);
                        let at = model.partition_point(|(e, _)| *e < end);
                        let expected_created = model.get(at).is_none_or(|(e, _)| *e != end);
                        if expected_created {
                            model.insert(at, (end, vec![value]));
                        } else {
                            model[at].1.push(value);
                        }
                        assert_eq!(created, expected_created);
                    }
                    7 => {
                        let start = frontier - xorshift(&mut seed, 6) as i64;
                        let end = start + xorshift(&mut seed, 5) as i64;
                        let expected = model.iter().any(|(e, _)| *e > start && *e <= end);
                        assert_eq!(slices.any_in(start, end), expected);
                        let ends_at = model.iter().any(|(e, _)| *e == end);
                        assert_eq!(slices.has_slice_ending(end), ends_at);
                    }
                    _ => {
                        let cut = frontier - xorshift(&mut seed, 6) as i64;
                        let window = (xorshift(&mut seed, 4) != 0).then(|| {
                            let start = frontier - xorshift(&mut seed, 8) as i64;
                            (start, start + xorshift(&mut seed, 6) as i64)
                        });
                        let merge = |a: &mut Vec<u64>, b: Vec<u64>| a.extend(b);
                        let got = slices.merged_then_removed(window, |e| e > cut, merge);
                        let inside = |e: i64| window.is_some_and(|(s, t)| e > s && e <= t);
                        let removed = model.partition_point(|(e, _)| *e <= cut);
                        let mut expected: Option<Vec<u64>> = None;
                        let removed_then_kept = model.drain(..removed).collect::<Vec<_>>();
                        for (e, acc) in removed_then_kept.into_iter().chain(model.iter().cloned()) {
                            if inside(e) {
                                match expected.as_mut() {
                                    None => expected = Some(acc),
                                    Some(into) => into.extend(acc),
                                }
                            }
                        }
                        assert_eq!(got, expected);
                    }
                }
                assert_eq!(slices.iter().cloned().collect::<Vec<_>>(), model);
                assert_eq!(slices.is_empty(), model.is_empty());
            }
        }
    }

    /// The format of `window-slices` before the last slice moved inline.
    mod before {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub struct Slices(pub Vec<(i64, u64)>);
    }

    #[test]
    fn slices_keep_their_snapshot_format_and_schema() {
        use crate::runtime::codec;
        use crate::state::schema::TypeSchema;
        let list = [(10, 3_u64), (20, 7), (30, 5)];
        for n in 0..=list.len() {
            let mut slices = Slices::<u64>::default();
            for (end, count) in &list[..n] {
                slices.add(*end, *count, |acc, v| *acc += v, |v| v);
            }
            let bytes = codec::encode(&slices).expect("encodes");
            let old = codec::encode(&before::Slices(list[..n].to_vec())).expect("encodes");
            assert_eq!(bytes, old, "{n} slices");
            let back: Slices<u64> = codec::decode(&old).expect("decodes");
            assert_eq!(back, slices);
        }
        let now = TypeSchema::of::<Slices<u64>>();
        let then = TypeSchema::of::<before::Slices>();
        assert_eq!((now.root, now.containers), (then.root, then.containers));
    }
}

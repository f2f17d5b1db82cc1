//! Key groups: the unit in which keyed state is placed, snapshotted and
//! moved when a job changes its parallelism.
//!
//! A keyed operator has `max_parallelism` key groups (fixed by the job's first
//! run); every key belongs to one (the API layer hashes it: `weir::keys`),
//! and subtask `i` of `parallelism` owns one contiguous range of them, as in
//! Flink's `KeyGroupRangeAssignment`. This is the one place that formula lives:
//! the subtasks that hold state, the partitioner that routes records and the
//! restore that redistributes snapshots all ask [`KeyGroupRange`].
//!
//! ```
//! use weir_actors::key_groups::KeyGroupRange;
//! let range = KeyGroupRange::of_subtask(1, 128, 3);
//! assert_eq!((range.start, range.end), (43, 86));
//! assert_eq!(KeyGroupRange::owner_of(42, 128, 3), 0);
//! assert_eq!(KeyGroupRange::owner_of(43, 128, 3), 1);
//! ```

/// A contiguous, inclusive-exclusive range of key groups `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    /// First key group in the range.
    pub start: usize,
    /// One past the last key group.
    pub end: usize,
}

impl KeyGroupRange {
    /// The key groups subtask `subtask` of `parallelism` owns.
    pub fn of_subtask(subtask: usize, max_parallelism: usize, parallelism: usize) -> Self {
        KeyGroupRange {
            start: (subtask * max_parallelism).div_ceil(parallelism),
            end: ((subtask + 1) * max_parallelism).div_ceil(parallelism),
        }
    }

    /// The subtask of `parallelism` that owns key group `group`.
    #[inline]
    pub fn owner_of(group: usize, max_parallelism: usize, parallelism: usize) -> usize {
        group * parallelism / max_parallelism
    }

    /// The owner of every key group, looked up instead of computed (see
    /// [`KeyGroupOwners`]).
    pub fn owners(max_parallelism: usize, parallelism: usize) -> KeyGroupOwners {
        KeyGroupOwners {
            owners: (0..max_parallelism)
                .map(|group| Self::owner_of(group, max_parallelism, parallelism) as u32)
                .collect(),
        }
    }

    /// Whether `group` lies in the range.
    #[inline]
    pub fn contains(&self, group: usize) -> bool {
        (self.start..self.end).contains(&group)
    }

    /// Whether the range shares a key group with `[start, end)`.
    #[inline]
    pub fn overlaps(&self, start: usize, end: usize) -> bool {
        self.start < end && start < self.end
    }

    /// Number of key groups in the range.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the range holds no key group.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// [`KeyGroupRange::owner_of`] of every key group for one parallelism, in a
/// table: a partitioner routes every record by its key group, and a load
/// from a table of `max_parallelism` entries (512 bytes for the default 128)
/// costs less than the division the formula takes.
///
/// ```
/// use weir_actors::key_groups::KeyGroupRange;
/// let owners = KeyGroupRange::owners(128, 3);
/// assert_eq!(owners.owner(42), KeyGroupRange::owner_of(42, 128, 3));
/// assert_eq!(owners.owner(43), 1);
/// ```
#[derive(Clone, Debug)]
pub struct KeyGroupOwners {
    owners: Box<[u32]>,
}

impl KeyGroupOwners {
    /// The subtask that owns key group `group` (below `max_parallelism`).
    #[inline]
    pub fn owner(&self, group: usize) -> usize {
        self.owners[group] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_group_is_in_exactly_one_range_and_ranges_are_balanced() {
        for max in [1usize, 7, 128, 1000] {
            for p in 1..=max.min(17) {
                let ranges: Vec<_> = (0..p)
                    .map(|i| KeyGroupRange::of_subtask(i, max, p))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[p - 1].end, max);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "contiguous");
                }
                let (min_len, max_len) = (
                    ranges.iter().map(|r| r.len()).min().unwrap(),
                    ranges.iter().map(|r| r.len()).max().unwrap(),
                );
                assert!(max_len - min_len <= 1, "balanced: {ranges:?}");
                let owners = KeyGroupRange::owners(max, p);
                for g in 0..max {
                    let owner = KeyGroupRange::owner_of(g, max, p);
                    assert_eq!(owners.owner(g), owner);
                    assert!(ranges[owner].contains(g), "group {g} max {max} p {p}");
                    assert_eq!(ranges.iter().filter(|r| r.contains(g)).count(), 1);
                }
            }
        }
    }
}

//! The pace of background TTL cleanup on the heap: the rolling cursor of the
//! incremental cleanup and the schedule of the guaranteed-erasure sweep.
//!
//! Both are decisions only (which key group to clean next, and when); the
//! store applies them to its tables.

/// A rolling cursor over key groups that is given credit (entries it may
/// check) step by step and cleans a whole key group once it has earned the
/// group's size: the same number of entries checked per step as an
/// entry-by-entry cursor, without a position inside a hash map.
#[derive(Debug, Default)]
pub(crate) struct IncrementalCursor {
    /// The next key group to clean, as an index into the table's groups.
    next: usize,
    credit: usize,
}

impl IncrementalCursor {
    /// Adds `entries` of credit; returns the group indices (of `groups`
    /// groups, sized by `size_of`) now paid for, to be cleaned.
    pub(crate) fn step<C: ?Sized>(
        &mut self,
        entries: usize,
        groups: usize,
        table: &mut C,
        size_of: impl Fn(&C, usize) -> usize,
        mut clean: impl FnMut(&mut C, usize),
    ) {
        if groups == 0 {
            return;
        }
        self.credit = self.credit.saturating_add(entries);
        // At most one lap per step: an empty table earns no unbounded loop.
        for _ in 0..groups {
            let group = self.next % groups;
            let size = size_of(table, group).max(1);
            if self.credit < size {
                return;
            }
            self.credit -= size;
            clean(table, group);
            self.next = (group + 1) % groups;
        }
        // A lap over empty groups: keep no credit beyond it.
        self.credit = 0;
    }
}

/// When each key group of a table is due for the erasure sweep: every group
/// is swept at least once per half bound, so an entry is gone within the
/// bound of its expiry (the other half is slack for a busy subtask).
#[derive(Debug)]
pub(crate) struct ErasureSchedule {
    period_ms: i64,
    /// Last sweep of each group (processing time, ms).
    last: Vec<i64>,
}

impl ErasureSchedule {
    pub(crate) fn new(bound_ms: i64, groups: usize, now: i64) -> Self {
        ErasureSchedule {
            period_ms: (bound_ms / 2).max(1),
            last: vec![now; groups],
        }
    }

    /// The groups due at `now` (marked swept).
    pub(crate) fn due(&mut self, now: i64) -> Vec<usize> {
        let mut due = Vec::new();
        for (group, last) in self.last.iter_mut().enumerate() {
            if now.saturating_sub(*last) >= self.period_ms {
                *last = now;
                due.push(group);
            }
        }
        due
    }

    /// When the next group is due.
    pub(crate) fn next_due(&self) -> Option<i64> {
        self.last
            .iter()
            .min()
            .map(|t| t.saturating_add(self.period_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_cleans_a_group_once_it_has_checked_as_many_entries() {
        let sizes = [10, 0, 3];
        let mut cursor = IncrementalCursor::default();
        let mut cleaned: Vec<usize> = Vec::new();
        for _ in 0..4 {
            cursor.step(5, 3, &mut cleaned, |_, g| sizes[g], |c, g| c.push(g));
        }
        // 20 credits: group 0 (10), group 1 (counts as 1), group 2 (3), group 0 ...
        assert_eq!(cleaned, vec![0, 1, 2]);
        let mut empty = IncrementalCursor::default();
        let mut n = 0;
        empty.step(1_000_000, 4, &mut n, |_, _| 0, |n, _| *n += 1);
        assert_eq!(n, 4, "one lap at most");
    }

    #[test]
    fn every_group_is_swept_once_per_half_bound() {
        let mut schedule = ErasureSchedule::new(1_000, 3, 0);
        assert!(schedule.due(499).is_empty());
        assert_eq!(schedule.due(500), vec![0, 1, 2]);
        assert_eq!(schedule.next_due(), Some(1_000));
    }
}

//! The pace of background TTL cleanup on the heap: the rolling cursor of the
//! incremental cleanup and the schedule of the guaranteed-erasure sweep.
//!
//! Both are decisions only (which key group to clean next, and when); the
//! store applies them to its tables.

/// A rolling cursor over key groups that is given credit (entries it may
/// check) step by step and cleans a whole key group once it has earned the
/// group's size: the same number of entries checked per step as an
/// entry-by-entry cursor, without a position inside a hash map.
///
/// A cleaned group reports the earliest time one of its entries can expire
/// (its earliest remaining expiry, and no earlier than what new entries can
/// get); until then the cursor passes over it without checking an entry (the
/// credit is spent all the same: what it would have found is known).
#[derive(Debug, Default)]
pub(crate) struct IncrementalCursor {
    /// The next key group to clean, as an index into the table's groups.
    next: usize,
    credit: usize,
    /// The size of the next group when last looked at: below it, a step
    /// only adds credit (no look at the table).
    next_size: usize,
    /// Per group, the earliest time an entry of it can be expired (empty:
    /// unknown for every group).
    not_before: Vec<i64>,
}

impl IncrementalCursor {
    /// Adds `entries` of credit at time `now`; cleans the groups (of
    /// `groups(table)`, sized by `size_of`) now paid for that may hold an
    /// expired entry. `clean` returns the earliest time the group can next
    /// hold one.
    #[inline]
    pub(crate) fn step<C: ?Sized>(
        &mut self,
        entries: usize,
        now: i64,
        table: &mut C,
        groups: impl FnOnce(&C) -> usize,
        size_of: impl Fn(&C, usize) -> usize,
        clean: impl FnMut(&mut C, usize) -> i64,
    ) {
        self.credit = self.credit.saturating_add(entries);
        if self.credit < self.next_size {
            return;
        }
        self.pay(now, table, groups(table), size_of, clean);
    }

    fn pay<C: ?Sized>(
        &mut self,
        now: i64,
        table: &mut C,
        groups: usize,
        size_of: impl Fn(&C, usize) -> usize,
        mut clean: impl FnMut(&mut C, usize) -> i64,
    ) {
        if groups == 0 {
            return;
        }
        if self.not_before.len() != groups {
            self.not_before = vec![i64::MIN; groups];
        }
        // At most one lap per step: an empty table earns no unbounded loop.
        for _ in 0..groups {
            let group = self.next % groups;
            let size = size_of(table, group).max(1);
            if self.credit < size {
                self.next_size = size;
                return;
            }
            self.credit -= size;
            if now >= self.not_before[group] {
                self.not_before[group] = clean(table, group);
            }
            self.next = (group + 1) % groups;
        }
        // A lap over empty groups: keep no credit beyond it.
        self.credit = 0;
        self.next_size = 0;
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
    /// A schedule for `groups` groups, first due one period from `now`, or
    /// if `staggered` spread over the first period so that the groups are
    /// not all swept at once.
    pub(crate) fn new(bound_ms: i64, groups: usize, now: i64, staggered: bool) -> Self {
        let period_ms = (bound_ms / 2).max(1);
        let step = period_ms / groups.max(1) as i64;
        ErasureSchedule {
            period_ms,
            last: (0..groups)
                .map(|g| match staggered {
                    true => now - period_ms + step * (g as i64 + 1),
                    false => now,
                })
                .collect(),
        }
    }

    /// Group `group`, due but not swept (a snapshot shares it), is due again
    /// an eighth of a period from its due time.
    pub(crate) fn retry_soon(&mut self, group: usize) {
        if let Some(last) = self.last.get_mut(group) {
            *last -= self.period_ms - (self.period_ms / 8).max(1);
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
        let clean = |c: &mut Vec<usize>, g| {
            c.push(g);
            i64::MIN
        };
        for _ in 0..4 {
            cursor.step(5, 0, &mut cleaned, |_| 3, |_, g| sizes[g], clean);
        }
        // 20 credits: group 0 (10), group 1 (counts as 1), group 2 (3), group 0 ...
        assert_eq!(cleaned, vec![0, 1, 2]);
        let mut empty = IncrementalCursor::default();
        let mut n = 0;
        let count = |n: &mut i32, _| {
            *n += 1;
            i64::MIN
        };
        empty.step(1_000_000, 0, &mut n, |_| 4, |_, _| 0, count);
        assert_eq!(n, 4, "one lap at most");
    }

    #[test]
    fn a_group_that_cannot_hold_an_expired_entry_is_passed_over() {
        let mut cursor = IncrementalCursor::default();
        let mut cleaned: Vec<(i64, usize)> = Vec::new();
        // Group 0 can next expire at 100, group 1 at 50.
        let mut step = |now| {
            cursor.step(
                2,
                now,
                &mut cleaned,
                |_| 2,
                |_, _| 1,
                |c, g| {
                    c.push((now, g));
                    [100, 50][g]
                },
            )
        };
        step(0);
        step(60);
        step(100);
        assert_eq!(cleaned, vec![(0, 0), (0, 1), (60, 1), (100, 0), (100, 1)]);
    }

    #[test]
    fn every_group_is_swept_once_per_half_bound_staggered() {
        let mut schedule = ErasureSchedule::new(1_200, 3, 0, true);
        // Period 600: the groups are first due at 200, 400 and 600.
        assert!(schedule.due(199).is_empty());
        assert_eq!(schedule.due(200), vec![0]);
        assert_eq!(schedule.due(600), vec![1, 2]);
        assert_eq!(schedule.next_due(), Some(800));
        assert_eq!(schedule.due(800), vec![0]);
        // Not swept (shared with a snapshot): due again 75 ms later.
        schedule.retry_soon(0);
        assert_eq!(schedule.next_due(), Some(875));
        assert_eq!(schedule.due(875), vec![0]);

        let mut together = ErasureSchedule::new(1_200, 3, 0, false);
        assert!(together.due(599).is_empty());
        assert_eq!(together.due(600), vec![0, 1, 2]);
    }
}

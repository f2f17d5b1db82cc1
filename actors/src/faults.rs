//! Fault injection: failures placed on purpose, to test recovery.
//!
//! A [`FaultPlan`] is shared by a job's subtasks and supervisor (put it in
//! [`RuntimeConfig::faults`](crate::RuntimeConfig::faults); the `weir` crate
//! offers it as `weir::testing::Faults`). Each fault fires once per process:
//! - a failure when the named operator reaches its n-th record (optionally in
//!   one subtask only),
//! - a failure while a subtask snapshots checkpoint `n` (the checkpoint is declined),
//! - a failure between pre-commit and commit: when checkpoint `n` completes,
//!   before the operators are told (so a two-phase-commit sink has
//!   pre-committed but not committed),
//! - a failure while the job restores from a checkpoint.
//!
//! Plans can be drawn from a seed ([`FaultPlan::from_seed`]) and replayed from it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

#[derive(Clone, Debug, PartialEq, Eq)]
struct RecordFault {
    operator: String,
    subtask: Option<usize>,
    at: u64,
    fired: bool,
}

#[derive(Debug, Default)]
struct Plan {
    records: Vec<RecordFault>,
    /// Records seen so far per (operator, subtask).
    seen: HashMap<(String, usize), u64>,
    snapshots: BTreeSet<u64>,
    commits: BTreeSet<u64>,
    /// Checkpoints whose completion notification no subtask receives.
    lost_notifications: BTreeSet<u64>,
    restores: u32,
    log: Vec<String>,
}

/// Failures to inject into a job (each fires once).
#[derive(Debug, Default)]
pub struct FaultPlan {
    plan: Mutex<Plan>,
}

impl PartialEq for FaultPlan {
    /// Plans are equal only to themselves.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(plan) = self.plan.lock() else {
            return f.write_str("(fault plan unavailable)");
        };
        for r in &plan.records {
            let subtask = r.subtask.map_or(String::new(), |s| format!(" subtask {s}"));
            writeln!(f, "fail `{}`{subtask} at record {}", r.operator, r.at)?;
        }
        for n in &plan.snapshots {
            writeln!(f, "fail the snapshot of checkpoint {n}")?;
        }
        for n in &plan.commits {
            writeln!(f, "fail between pre-commit and commit of checkpoint {n}")?;
        }
        for n in &plan.lost_notifications {
            writeln!(f, "lose the notification of checkpoint {n}")?;
        }
        if plan.restores > 0 {
            writeln!(f, "fail {} restore(s)", plan.restores)?;
        }
        Ok(())
    }
}

impl FaultPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(&self, f: impl FnOnce(&mut Plan)) -> &Self {
        if let Ok(mut plan) = self.plan.lock() {
            f(&mut plan);
        }
        self
    }

    /// Fails operator `operator` (by name) when it reaches its `n`-th record
    /// (counting from 1), in subtask `subtask` or in whichever gets there first.
    pub fn fail_at_record(&self, operator: &str, n: u64, subtask: Option<usize>) -> &Self {
        self.with(|p| {
            p.records.push(RecordFault {
                operator: operator.into(),
                subtask,
                at: n.max(1),
                fired: false,
            })
        })
    }

    /// Fails the snapshot of checkpoint `checkpoint` (in the first subtask that takes it).
    pub fn fail_snapshot(&self, checkpoint: u64) -> &Self {
        self.with(|p| {
            p.snapshots.insert(checkpoint);
        })
    }

    /// Fails a subtask when checkpoint `checkpoint` (or, if that one never
    /// completes, the first later one) completes, before its operators hear
    /// of it (between pre-commit and commit).
    pub fn fail_before_commit(&self, checkpoint: u64) -> &Self {
        self.with(|p| {
            p.commits.insert(checkpoint);
        })
    }

    /// Loses the notification that checkpoint `checkpoint` completed, in
    /// every subtask (as when it comes after the next barrier and the
    /// barrier has told of it): operators hear of the completion only from
    /// the next barrier.
    pub fn lose_notification(&self, checkpoint: u64) -> &Self {
        self.with(|p| {
            p.lost_notifications.insert(checkpoint);
        })
    }

    /// Fails the next `count` restores.
    pub fn fail_restores(&self, count: u32) -> &Self {
        self.with(|p| p.restores += count)
    }

    /// A plan drawn from `seed`: `record_faults` failures of `operator` at
    /// records in `1..=records`, and, with `checkpoint_faults`, a snapshot
    /// failure at a checkpoint in `2..=6` and a failure before commit at one of
    /// the three checkpoints after it.
    pub fn from_seed(
        seed: u64,
        operator: &str,
        records: u64,
        record_faults: usize,
        checkpoint_faults: bool,
    ) -> Self {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let plan = FaultPlan::new();
        for _ in 0..record_faults {
            plan.fail_at_record(operator, 1 + next() % records.max(1), None);
        }
        if checkpoint_faults {
            // Different checkpoints: a checkpoint whose snapshot fails never completes.
            let snapshot = 2 + next() % 5;
            plan.fail_snapshot(snapshot);
            plan.fail_before_commit(snapshot + 1 + next() % 3);
        }
        plan
    }

    /// What fired so far, one line each, in order.
    pub fn fired(&self) -> Vec<String> {
        self.plan.lock().map(|p| p.log.clone()).unwrap_or_default()
    }

    /// Counts `records` more records of `operator` in `subtask`; `Err` with a
    /// message if a planned failure falls among them.
    pub fn on_records(&self, operator: &str, subtask: usize, records: usize) -> Result<(), String> {
        let Ok(mut plan) = self.plan.lock() else {
            return Ok(());
        };
        if plan
            .records
            .iter()
            .all(|r| r.fired || r.operator != operator)
        {
            return Ok(());
        }
        let seen = plan
            .seen
            .entry((operator.to_string(), subtask))
            .or_default();
        let (from, to) = (*seen, *seen + records as u64);
        *seen = to;
        let hit = plan.records.iter_mut().find(|r| {
            !r.fired
                && r.operator == operator
                && r.subtask.is_none_or(|s| s == subtask)
                && r.at > from
                && r.at <= to
        });
        let Some(fault) = hit else { return Ok(()) };
        fault.fired = true;
        let message = format!(
            "injected failure: `{operator}` subtask {subtask} at record {}",
            fault.at
        );
        plan.log.push(message.clone());
        Err(message)
    }

    /// Whether the snapshot of `checkpoint` must fail now.
    pub fn on_snapshot(&self, checkpoint: u64) -> Option<String> {
        let mut plan = self.plan.lock().ok()?;
        plan.snapshots.remove(&checkpoint).then(|| {
            let message =
                format!("injected failure during the snapshot of checkpoint {checkpoint}");
            plan.log.push(message.clone());
            message
        })
    }

    /// Whether the completion of `checkpoint` must fail before the commit.
    pub fn on_commit(&self, checkpoint: u64) -> Option<String> {
        let mut plan = self.plan.lock().ok()?;
        // The first completed checkpoint at or after the planned one: a planned
        // checkpoint may be aborted (a failure elsewhere), and the fault must
        // still happen for the plan to be tested.
        let due = plan.commits.range(..=checkpoint).next().copied()?;
        plan.commits.remove(&due).then(|| {
            let message = format!(
                "injected failure between pre-commit and commit of checkpoint {checkpoint}"
            );
            plan.log.push(message.clone());
            message
        })
    }

    /// Whether the completion notification of `checkpoint` is lost.
    pub fn on_notification(&self, checkpoint: u64) -> bool {
        let Ok(mut plan) = self.plan.lock() else {
            return false;
        };
        if !plan.lost_notifications.contains(&checkpoint) {
            return false;
        }
        let message = format!("lose the notification of checkpoint {checkpoint}");
        if !plan.log.contains(&message) {
            plan.log.push(message);
        }
        true
    }

    /// Whether a restore must fail now.
    pub fn on_restore(&self) -> Option<String> {
        let mut plan = self.plan.lock().ok()?;
        (plan.restores > 0).then(|| {
            plan.restores -= 1;
            let message = "injected failure during restore".to_string();
            plan.log.push(message.clone());
            message
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fault_fires_once_in_the_batch_that_reaches_it() {
        let plan = FaultPlan::new();
        plan.fail_at_record("count", 10, None);
        assert!(plan.on_records("count", 0, 9).is_ok());
        assert!(plan.on_records("other", 0, 100).is_ok());
        let err = plan.on_records("count", 0, 5).unwrap_err();
        assert!(err.contains("`count` subtask 0 at record 10"), "{err}");
        assert!(plan.on_records("count", 0, 100).is_ok(), "fires once");
        assert_eq!(plan.fired().len(), 1);
    }

    #[test]
    fn seeded_plans_replay_and_checkpoint_faults_fire_once() {
        let a = FaultPlan::from_seed(42, "op", 1000, 3, true).to_string();
        let b = FaultPlan::from_seed(42, "op", 1000, 3, true).to_string();
        assert_eq!(a, b);
        assert_ne!(a, FaultPlan::from_seed(43, "op", 1000, 3, true).to_string());
        let plan = FaultPlan::new();
        plan.fail_snapshot(3).fail_before_commit(4).fail_restores(1);
        assert!(plan.on_snapshot(2).is_none());
        assert!(plan.on_snapshot(3).is_some() && plan.on_snapshot(3).is_none());
        assert!(plan.on_commit(4).is_some() && plan.on_commit(4).is_none());
        assert!(plan.on_restore().is_some() && plan.on_restore().is_none());
    }
}

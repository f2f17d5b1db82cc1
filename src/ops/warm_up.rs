//! Whether a keyed operator looks its batches' keys up ahead
//! ([`crate::state::KeyedStateStore::warm`]), decided by measuring.
//!
//! Looking a batch's keys up once before its records lets the processor
//! overlap their cache misses: on state larger than the cache records can
//! go faster (windows over 100 000 keys went a third faster when this was
//! written). On state that fits in the cache there is no miss to overlap
//! and the extra lookup costs about 5% (keyed-count); and on another day the
//! same window job ran 10-20% slower warmed (2026-12-07: window-count p1
//! 8-9.5 M records/s warmed, 10-11.6 not). Which case a job is in depends on
//! its keys, its values and the machine, so the operator tries both: a few batches each way,
//! alternating, then the faster way for the next few thousand batches, and
//! then it tries again (state grows, the cache is shared).
//!
//! Timer rounds decide apart from batches (a window firing visits every
//! key in registration order, a miss each, where batches may hit the
//! cache), the same way, per timer.
//!
//! The decision is pure: the caller times the batches and reports them.
//!
//! ```text
//! trial: on off on off ... (16 batches)  ->  settled on the faster (2048 batches)  ->  trial ...
//! ```

/// Batches per trial (half of them warmed).
const TRIAL_BATCHES: u32 = 16;

/// Batches between trials.
const SETTLED_BATCHES: u32 = 2048;

/// How much faster (per record) warmed batches must be for warming to be
/// chosen: within noise, the cheaper way (no extra lookups) wins.
const REQUIRED_GAIN: f64 = 0.97;

/// The warm-up decision of one keyed operator subtask (see the module
/// documentation).
#[derive(Clone, Debug)]
pub(crate) struct WarmUp {
    phase: Phase,
}

#[derive(Clone, Debug)]
enum Phase {
    /// Alternating, `done` batches measured so far.
    Trial {
        done: u32,
        warmed: Tally,
        cold: Tally,
    },
    /// Decided: `warm` for `left` more batches.
    Settled { warm: bool, left: u32 },
}

/// Time and records of the batches measured one way.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    nanos: u64,
    records: u64,
}

impl Tally {
    fn per_record(&self) -> f64 {
        self.nanos as f64 / self.records.max(1) as f64
    }
}

impl Default for WarmUp {
    fn default() -> Self {
        WarmUp::trial()
    }
}

impl WarmUp {
    fn trial() -> Self {
        WarmUp {
            phase: Phase::Trial {
                done: 0,
                warmed: Tally::default(),
                cold: Tally::default(),
            },
        }
    }

    /// Whether the next batch is warmed, and whether it is to be timed and
    /// reported through [`Self::measured`] (during trials) or only counted
    /// through [`Self::unmeasured`].
    #[inline]
    pub fn next(&self) -> (bool, bool) {
        match self.phase {
            Phase::Trial { done, .. } => (done % 2 == 0, true),
            Phase::Settled { warm, .. } => (warm, false),
        }
    }

    /// A settled batch (or timer round) went by.
    #[inline]
    pub fn unmeasured(&mut self) {
        if let Phase::Settled { left, .. } = &mut self.phase {
            *left = left.saturating_sub(1);
            if *left == 0 {
                *self = WarmUp::trial();
            }
        }
    }

    /// A trial batch of `records` records (or a timer round of as many
    /// timers), `warmed` or not, took `nanos`.
    pub fn measured(&mut self, warmed: bool, records: usize, nanos: u64) {
        let Phase::Trial {
            done,
            warmed: on,
            cold: off,
        } = &mut self.phase
        else {
            return;
        };
        let tally = if warmed { &mut *on } else { &mut *off };
        tally.nanos += nanos;
        tally.records += records as u64;
        *done += 1;
        if *done >= TRIAL_BATCHES {
            let warm = on.per_record() < off.per_record() * REQUIRED_GAIN;
            self.phase = Phase::Settled {
                warm,
                left: SETTLED_BATCHES,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one trial where a warmed batch of 1 000 records takes `warmed`
    /// ns and a cold one `cold` ns; returns the decision.
    fn decide(policy: &mut WarmUp, warmed: u64, cold: u64) -> bool {
        for _ in 0..TRIAL_BATCHES {
            let (warm, measure) = policy.next();
            assert!(measure);
            policy.measured(warm, 1_000, if warm { warmed } else { cold });
        }
        let (warm, measure) = policy.next();
        assert!(!measure);
        warm
    }

    #[test]
    fn the_faster_way_is_chosen_and_tried_again_later() {
        let mut policy = WarmUp::default();
        assert!(decide(&mut policy, 60_000, 100_000), "warming pays");
        for _ in 0..SETTLED_BATCHES - 1 {
            policy.unmeasured();
            assert_eq!(policy.next(), (true, false));
        }
        policy.unmeasured();
        assert!(policy.next().1, "a new trial");
        assert!(!decide(&mut policy, 105_000, 100_000), "warming costs");
        let mut policy = WarmUp::default();
        assert!(!decide(&mut policy, 99_000, 100_000), "within noise: cold");
    }

    #[test]
    fn a_trial_alternates_and_weighs_records_not_batches() {
        let mut policy = WarmUp::default();
        let mut ways = Vec::new();
        for i in 0..TRIAL_BATCHES {
            let (warm, _) = policy.next();
            ways.push(warm);
            // Warmed batches are small and slow per record.
            let records = if warm { 10 } else { 1_000 };
            let nanos = if warm { 2_000 } else { 100_000 + u64::from(i) };
            policy.measured(warm, records, nanos);
        }
        assert_eq!(
            ways.iter().filter(|w| **w).count() as u32,
            TRIAL_BATCHES / 2
        );
        assert!(ways.windows(2).all(|w| w[0] != w[1]));
        assert_eq!(policy.next(), (false, false));
    }
}

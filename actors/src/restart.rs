//! Restart strategies: whether and when a failed job restarts.
//!
//! The decision is a pure function of the failure history and the clock
//! (milliseconds), so it is tested with a fake clock; the supervisor only
//! feeds it failures and carries out what it decides.
//!
//! ```
//! use std::time::Duration;
//! use weir_actors::restart::{RestartDecision, RestartStrategy, RestartTracker};
//!
//! let mut tracker = RestartTracker::new(RestartStrategy::FixedDelay { attempts: 2, delay: Duration::from_millis(100) });
//! assert_eq!(tracker.on_failure(0), RestartDecision::RestartAfter(Duration::from_millis(100)));
//! assert_eq!(tracker.on_failure(500), RestartDecision::RestartAfter(Duration::from_millis(100)));
//! assert!(matches!(tracker.on_failure(900), RestartDecision::GiveUp(_)));
//! ```

use std::collections::VecDeque;
use std::time::Duration;

/// How a job restarts after a failure (as Flink's restart strategies).
#[derive(Clone, Debug, PartialEq)]
pub enum RestartStrategy {
    /// Never restart: the first failure fails the job.
    NoRestart,
    /// Restart up to `attempts` times (`u32::MAX`: without limit), waiting `delay` each time.
    FixedDelay {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart unless more than `max_failures` failures happened within `interval`.
    FailureRate {
        /// Failures tolerated per interval.
        max_failures: u32,
        /// The sliding window.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart with a delay that grows by `multiplier` from `initial` up to
    /// `max`, back to `initial` after `reset_after` without failure; `jitter`
    /// (0 to 1) spreads each delay by up to that fraction.
    ExponentialDelay {
        /// The first delay.
        initial: Duration,
        /// The largest delay.
        max: Duration,
        /// Growth per failure.
        multiplier: f64,
        /// Quiet time after which the delay starts again from `initial`.
        reset_after: Duration,
        /// Fraction of random spread, 0 to 1.
        jitter: f64,
    },
}

impl RestartStrategy {
    /// Flink's default with checkpointing on: fixed delay, unlimited attempts, 1 s.
    pub fn default_with_checkpointing() -> Self {
        RestartStrategy::FixedDelay {
            attempts: u32::MAX,
            delay: Duration::from_secs(1),
        }
    }

    /// Parses `none`, `fixed-delay:ATTEMPTS:DELAY_MS`,
    /// `failure-rate:MAX:INTERVAL_MS:DELAY_MS` or `exponential:INITIAL_MS:MAX_MS`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let parts: Vec<&str> = spec.trim().split(':').collect();
        let number = |i: usize, what: &str| -> Result<u64, String> {
            parts
                .get(i)
                .ok_or_else(|| format!("restart strategy {spec:?}: missing {what}"))?
                .parse::<u64>()
                .map_err(|e| {
                    format!(
                        "restart strategy {spec:?}: {what} {:?} is not a number: {e}",
                        parts[i]
                    )
                })
        };
        let arity = |n: usize| {
            if parts.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "restart strategy {spec:?}: expected {} fields separated by ':'",
                    n
                ))
            }
        };
        match parts[0] {
            "none" => arity(1).map(|_| RestartStrategy::NoRestart),
            "fixed-delay" => {
                arity(3)?;
                Ok(RestartStrategy::FixedDelay {
                    attempts: number(1, "ATTEMPTS")?.min(u64::from(u32::MAX)) as u32,
                    delay: Duration::from_millis(number(2, "DELAY_MS")?),
                })
            }
            "failure-rate" => {
                arity(4)?;
                Ok(RestartStrategy::FailureRate {
                    max_failures: number(1, "MAX")?.min(u64::from(u32::MAX)) as u32,
                    interval: Duration::from_millis(number(2, "INTERVAL_MS")?),
                    delay: Duration::from_millis(number(3, "DELAY_MS")?),
                })
            }
            "exponential" => {
                arity(3)?;
                let (initial, max) = (number(1, "INITIAL_MS")?, number(2, "MAX_MS")?);
                if initial > max {
                    return Err(format!("restart strategy {spec:?}: INITIAL_MS {initial} is above MAX_MS {max}"));
                }
                Ok(RestartStrategy::ExponentialDelay {
                    initial: Duration::from_millis(initial),
                    max: Duration::from_millis(max),
                    multiplier: 2.0,
                    reset_after: Duration::from_millis(max.saturating_mul(2).max(1)),
                    jitter: 0.1,
                })
            }
            other => Err(format!(
                "restart strategy {other:?} is unknown; allowed: none, fixed-delay:ATTEMPTS:DELAY_MS, \
                 failure-rate:MAX:INTERVAL_MS:DELAY_MS, exponential:INITIAL_MS:MAX_MS"
            )),
        }
    }
}

/// What to do about a failure.
#[derive(Clone, Debug, PartialEq)]
pub enum RestartDecision {
    /// Restart the job after this delay.
    RestartAfter(Duration),
    /// Fail the job (the reason says which limit was reached).
    GiveUp(String),
}

/// Where a job's restart strategy stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Supervision {
    /// The strategy (`fixed-delay (1000 ms)`, ...).
    pub strategy: String,
    /// Restarts so far.
    pub restarts: u32,
    /// How much of its limit is used (`2 of 3 attempts used`, ...).
    pub limit: String,
}

/// A strategy plus the failure history it decides on.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    restarts: u32,
    failures: VecDeque<u64>,
    current_delay: Option<Duration>,
    last_failure: Option<u64>,
    seed: u64,
}

impl RestartTracker {
    /// A tracker deciding by `strategy`.
    pub fn new(strategy: RestartStrategy) -> Self {
        RestartTracker {
            strategy,
            restarts: 0,
            failures: VecDeque::new(),
            current_delay: None,
            last_failure: None,
            seed: 0x2545_F491_4F6C_DD1D,
        }
    }

    /// Restarts decided so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Where the strategy stands, for people watching the job.
    pub fn supervision(&self) -> Supervision {
        let (strategy, limit) = match &self.strategy {
            RestartStrategy::NoRestart => ("no-restart".to_string(), "no restarts".to_string()),
            RestartStrategy::FixedDelay { attempts, delay } => (
                format!("fixed-delay ({} ms)", delay.as_millis()),
                if *attempts == u32::MAX {
                    "unlimited attempts".to_string()
                } else {
                    format!("{} of {attempts} attempts used", self.restarts)
                },
            ),
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => (
                format!("failure-rate ({} ms)", delay.as_millis()),
                format!(
                    "{} of at most {max_failures} failures within {} ms",
                    self.failures.len(),
                    interval.as_millis()
                ),
            ),
            RestartStrategy::ExponentialDelay { initial, max, .. } => (
                format!(
                    "exponential-delay ({} ms up to {} ms)",
                    initial.as_millis(),
                    max.as_millis()
                ),
                match self.current_delay {
                    Some(delay) => format!("current delay {} ms", delay.as_millis()),
                    None => "no failure yet".to_string(),
                },
            ),
        };
        Supervision {
            strategy,
            restarts: self.restarts,
            limit,
        }
    }

    fn jitter(&mut self, delay: Duration, fraction: f64) -> Duration {
        if fraction <= 0.0 {
            return delay;
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed % 10_000) as f64 / 10_000.0; // 0..1
        let spread = delay.as_secs_f64() * fraction.min(1.0) * (2.0 * unit - 1.0);
        Duration::from_secs_f64((delay.as_secs_f64() + spread).max(0.0))
    }

    /// A failure happened at `now` (ms): restart, or give up.
    pub fn on_failure(&mut self, now: u64) -> RestartDecision {
        let decision = match self.strategy.clone() {
            RestartStrategy::NoRestart => {
                RestartDecision::GiveUp("the restart strategy is none".into())
            }
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts < attempts {
                    RestartDecision::RestartAfter(delay)
                } else {
                    RestartDecision::GiveUp(format!(
                        "fixed-delay restart strategy: all {attempts} attempts used"
                    ))
                }
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push_back(now);
                let window = interval.as_millis() as u64;
                while self
                    .failures
                    .front()
                    .is_some_and(|&t| now.saturating_sub(t) >= window)
                {
                    self.failures.pop_front();
                }
                if self.failures.len() as u64 > u64::from(max_failures) {
                    RestartDecision::GiveUp(format!(
                        "failure-rate restart strategy: {} failures within {} ms (at most {max_failures})",
                        self.failures.len(),
                        window
                    ))
                } else {
                    RestartDecision::RestartAfter(delay)
                }
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                reset_after,
                jitter,
            } => {
                let quiet = self
                    .last_failure
                    .is_some_and(|t| now.saturating_sub(t) >= reset_after.as_millis() as u64);
                let delay = match self.current_delay {
                    Some(previous) if !quiet => previous.mul_f64(multiplier.max(1.0)).min(max),
                    _ => initial,
                };
                self.current_delay = Some(delay);
                RestartDecision::RestartAfter(self.jitter(delay, jitter).min(max))
            }
        };
        self.last_failure = Some(now);
        if matches!(decision, RestartDecision::RestartAfter(_)) {
            self.restarts += 1;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervision_says_how_much_of_the_limit_is_used() {
        let mut t = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 3,
            delay: Duration::from_millis(10),
        });
        t.on_failure(0);
        t.on_failure(1);
        let s = t.supervision();
        assert_eq!(s.strategy, "fixed-delay (10 ms)");
        assert_eq!(s.limit, "2 of 3 attempts used");
        assert_eq!(s.restarts, 2);
    }

    #[test]
    fn no_restart_gives_up_at_once() {
        let mut t = RestartTracker::new(RestartStrategy::NoRestart);
        assert!(matches!(t.on_failure(0), RestartDecision::GiveUp(_)));
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn failure_rate_counts_within_a_sliding_window() {
        let ms = Duration::from_millis;
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: ms(1000),
            delay: ms(10),
        });
        assert_eq!(t.on_failure(0), RestartDecision::RestartAfter(ms(10)));
        assert_eq!(t.on_failure(400), RestartDecision::RestartAfter(ms(10)));
        assert!(
            matches!(t.on_failure(900), RestartDecision::GiveUp(_)),
            "three within a second"
        );
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: ms(1000),
            delay: ms(10),
        });
        for now in [0, 400, 1000, 1400, 2000] {
            assert_eq!(
                t.on_failure(now),
                RestartDecision::RestartAfter(ms(10)),
                "at {now}"
            );
        }
    }

    #[test]
    fn exponential_delay_grows_caps_and_resets_after_a_quiet_period() {
        let ms = Duration::from_millis;
        let mut t = RestartTracker::new(RestartStrategy::ExponentialDelay {
            initial: ms(100),
            max: ms(1000),
            multiplier: 2.0,
            reset_after: ms(5000),
            jitter: 0.0,
        });
        let delays: Vec<_> = [0, 10, 20, 30, 40, 50]
            .iter()
            .map(|&now| t.on_failure(now))
            .collect();
        let expected: Vec<_> = [100, 200, 400, 800, 1000, 1000]
            .iter()
            .map(|&d| RestartDecision::RestartAfter(ms(d)))
            .collect();
        assert_eq!(delays, expected);
        assert_eq!(
            t.on_failure(6000),
            RestartDecision::RestartAfter(ms(100)),
            "reset after 5 s of quiet"
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let ms = Duration::from_millis;
        let mut t = RestartTracker::new(RestartStrategy::ExponentialDelay {
            initial: ms(1000),
            max: ms(1000),
            multiplier: 1.0,
            reset_after: ms(1_000_000),
            jitter: 0.1,
        });
        for now in 0..50 {
            let RestartDecision::RestartAfter(d) = t.on_failure(now) else {
                panic!()
            };
            assert!(d >= ms(900) && d <= ms(1000), "{d:?}");
        }
    }

    #[test]
    fn specs_parse_and_bad_ones_say_what_is_allowed() {
        assert_eq!(
            RestartStrategy::parse("none").unwrap(),
            RestartStrategy::NoRestart
        );
        assert_eq!(
            RestartStrategy::parse("fixed-delay:3:250").unwrap(),
            RestartStrategy::FixedDelay {
                attempts: 3,
                delay: Duration::from_millis(250)
            }
        );
        assert!(matches!(
            RestartStrategy::parse("failure-rate:2:1000:0").unwrap(),
            RestartStrategy::FailureRate { .. }
        ));
        assert!(matches!(
            RestartStrategy::parse("exponential:10:1000").unwrap(),
            RestartStrategy::ExponentialDelay { .. }
        ));
        let err = RestartStrategy::parse("sometimes").unwrap_err();
        assert!(
            err.contains("sometimes") && err.contains("fixed-delay:ATTEMPTS:DELAY_MS"),
            "{err}"
        );
        assert!(RestartStrategy::parse("fixed-delay:x:1")
            .unwrap_err()
            .contains("ATTEMPTS"));
        assert!(RestartStrategy::parse("exponential:100:10")
            .unwrap_err()
            .contains("above"));
    }
}

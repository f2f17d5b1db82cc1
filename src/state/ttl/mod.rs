//! State time-to-live: keyed state that expires.
//!
//! A [`TtlConfig`] on a keyed state descriptor (`with_ttl`) gives every entry
//! an expiry: the time it was written (or read, with
//! [`TtlUpdate::OnReadAndWrite`]) plus the time to live. Expired entries are
//! never returned (unless [`TtlVisibility::ReturnExpiredIfNotCleanedUp`]) and
//! are removed when read, when a full snapshot or savepoint is written, and by
//! the background cleanups the configuration enables (see [`TtlConfig`]). An
//! entry's expiry is stored as an absolute time, so a change of the time to
//! live across a restore never brings back an entry that had expired.
//!
//! ```
//! use std::time::Duration;
//! use weir::state::ttl::{TtlConfig, TtlTime, TtlUpdate};
//! use weir::state::ValueStateDescriptor;
//!
//! // Seen ids, forgotten one minute (of event time) after they were last seen.
//! let seen = ValueStateDescriptor::<()>::new("seen").with_ttl(
//!     TtlConfig::new(Duration::from_secs(60))
//!         .time(TtlTime::EventTime)
//!         .update_type(TtlUpdate::OnCreateAndWrite),
//! );
//! # let _ = seen;
//! ```
//!
//! Operator state and broadcast state have no time to live: opening one with
//! a descriptor that has a [`TtlConfig`] is an error.

mod canonical;
mod expiring;
pub(crate) mod sweep;

pub(crate) use canonical::count_by_expiry;
pub(crate) use canonical::skip_value;
pub(crate) use canonical::unexpired_entries;
pub use expiring::Expiring;
pub(crate) use expiring::{is_expired, ExpiredCounters};
#[doc(hidden)]
pub use expiring::{Expirable, TtlAccess};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StateError;

/// When an entry's clock restarts (Flink's `UpdateType`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TtlUpdate {
    /// When it is created and on every write (the default).
    #[default]
    OnCreateAndWrite,
    /// Also on every read.
    OnReadAndWrite,
}

/// Whether an expired entry that is still stored may be read (Flink's
/// `StateVisibility`). Either way, an expired entry that is read is removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TtlVisibility {
    /// Expired entries are never returned (the default).
    #[default]
    NeverReturnExpired,
    /// An expired entry not yet removed is returned (once: reading removes it).
    ReturnExpiredIfNotCleanedUp,
}

/// Which clock an entry's time to live runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TtlTime {
    /// The wall clock: an entry expires once `written + ttl <= now` (the default).
    #[default]
    ProcessingTime,
    /// The operator's watermark: an entry's time is the timestamp of the
    /// record being processed when it was written (or read) — in `on_timer`,
    /// the timer's time; without a timestamp, the current watermark — and it
    /// expires once `time + ttl <= watermark`.
    EventTime,
}

/// What happens to processing-time expiries while the job is down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DowntimePolicy {
    /// The clock runs on through an outage (Flink's behaviour): after a long
    /// one, everything may have expired on restore (the default).
    #[default]
    ClockContinues,
    /// The time the job was down does not count: entries restored from a
    /// checkpoint expire as if the job had not stopped (from the checkpoint's
    /// time to the restore). Event time needs no such policy.
    PauseDuringDowntime,
}

/// The incremental cleanup of the heap backend: each state access (and, if
/// asked, each record) checks the next `entries` entries of a rolling cursor
/// over all key groups and removes the expired ones. The checks of a batch's
/// (or timer round's) accesses run together at its end, off the record path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncrementalCleanup {
    /// Entries checked per step.
    pub entries: usize,
    /// Whether every record processed also takes a step (not only accesses).
    pub every_record: bool,
}

/// The time to live of a keyed state and how expired entries are cleaned up
/// (Flink's `StateTtlConfig`).
///
/// Cleanup strategies combine; reading an expired entry always removes it.
/// - **Full snapshot** (always on in weir): a full snapshot or savepoint never
///   contains an expired entry.
/// - **Incremental** (heap; on by default, 5 entries per access): see
///   [`IncrementalCleanup`].
/// - **Compaction filter** (RocksDB; on by default): RocksDB compactions drop
///   expired values (a list only once all its elements expired), and files
///   untouched for the periodic compaction interval (default 30 days) are
///   compacted too.
/// - **Timers** ([`cleanup_with_timers`](Self::cleanup_with_timers)): an
///   entry is removed as soon as it expires, at the cost of a timer per key.
/// - **Guaranteed erasure** ([`cleanup_within`](Self::cleanup_within), beyond
///   Flink): every expired entry is physically gone within the bound of its
///   expiry, even if its key is never seen again.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TtlConfig {
    ttl: Duration,
    update: TtlUpdate,
    visibility: TtlVisibility,
    time: TtlTime,
    downtime: DowntimePolicy,
    incremental: Option<IncrementalCleanup>,
    compaction_filter: Option<Duration>,
    timers: bool,
    cleanup_within: Option<Duration>,
}

/// Flink's default periodic compaction for the compaction-filter cleanup.
const DEFAULT_PERIODIC_COMPACTION: Duration = Duration::from_secs(30 * 24 * 3600);

impl TtlConfig {
    /// A time to live of `ttl`, with Flink's defaults: processing time,
    /// [`TtlUpdate::OnCreateAndWrite`], [`TtlVisibility::NeverReturnExpired`],
    /// incremental cleanup of 5 entries per access on the heap and the
    /// compaction filter on RocksDB. A zero `ttl` is refused when the state is
    /// opened.
    pub fn new(ttl: Duration) -> Self {
        TtlConfig {
            ttl,
            update: TtlUpdate::default(),
            visibility: TtlVisibility::default(),
            time: TtlTime::default(),
            downtime: DowntimePolicy::default(),
            incremental: Some(IncrementalCleanup {
                entries: 5,
                every_record: false,
            }),
            compaction_filter: Some(DEFAULT_PERIODIC_COMPACTION),
            timers: false,
            cleanup_within: None,
        }
    }

    /// A time to live of `ms` milliseconds; zero or negative is an error.
    ///
    /// ```
    /// use weir::state::ttl::TtlConfig;
    /// assert!(TtlConfig::from_millis(60_000).is_ok());
    /// assert!(TtlConfig::from_millis(0).unwrap_err().to_string().contains("positive"));
    /// ```
    pub fn from_millis(ms: i64) -> Result<Self, StateError> {
        if ms <= 0 {
            return Err(StateError::invalid_ttl(format!(
                "a time to live must be positive, not {ms} ms"
            )));
        }
        Ok(Self::new(Duration::from_millis(ms as u64)))
    }

    /// When the entry's clock restarts.
    pub fn update_type(mut self, update: TtlUpdate) -> Self {
        self.update = update;
        self
    }

    /// Whether expired entries not yet removed may be read.
    pub fn visibility(mut self, visibility: TtlVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Processing time or event time.
    pub fn time(mut self, time: TtlTime) -> Self {
        self.time = time;
        self
    }

    /// What an outage does to processing-time expiries.
    pub fn downtime(mut self, policy: DowntimePolicy) -> Self {
        self.downtime = policy;
        self
    }

    /// The heap's incremental cleanup: `entries` checked per state access,
    /// and per record too if `every_record`.
    pub fn cleanup_incrementally(mut self, entries: usize, every_record: bool) -> Self {
        self.incremental = Some(IncrementalCleanup {
            entries,
            every_record,
        });
        self
    }

    /// Full snapshots and savepoints never hold expired entries. Always the
    /// case in weir; kept for Flink's API.
    pub fn cleanup_full_snapshot(self) -> Self {
        self
    }

    /// RocksDB's compaction filter, with files older than `periodic`
    /// compacted even if nothing else triggers it (`Duration::ZERO`: no
    /// periodic compaction, as Flink's 0). The periodic compaction is the
    /// database's setting: the last state with a time to live opened sets it.
    pub fn cleanup_in_compaction_filter(mut self, periodic: Duration) -> Self {
        self.compaction_filter = Some(periodic);
        self
    }

    /// A cleanup timer per key at its entries' expiry: exact removal.
    pub fn cleanup_with_timers(mut self) -> Self {
        self.timers = true;
        self
    }

    /// Guaranteed erasure: every expired entry is physically removed within
    /// `bound` of its expiry (a background sweep paced by the engine).
    pub fn cleanup_within(mut self, bound: Duration) -> Self {
        self.cleanup_within = Some(bound);
        self
    }

    /// No background cleanup (incremental, compaction filter): entries are
    /// removed when read or when a full snapshot is written.
    pub fn disable_cleanup_in_background(mut self) -> Self {
        self.incremental = None;
        self.compaction_filter = None;
        self
    }

    /// The time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The time to live in ms.
    pub(crate) fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// Which clock.
    pub fn time_characteristic(&self) -> TtlTime {
        self.time
    }

    /// The update type.
    pub fn update(&self) -> TtlUpdate {
        self.update
    }

    /// The visibility.
    pub fn visibility_of_expired(&self) -> TtlVisibility {
        self.visibility
    }

    /// The downtime policy.
    pub fn downtime_policy(&self) -> DowntimePolicy {
        self.downtime
    }

    /// The incremental cleanup, if on.
    pub fn incremental_cleanup(&self) -> Option<IncrementalCleanup> {
        self.incremental
    }

    /// The compaction filter's periodic compaction, if the filter is on.
    pub fn compaction_filter(&self) -> Option<Duration> {
        self.compaction_filter
    }

    /// Whether cleanup timers are on.
    pub fn timers(&self) -> bool {
        self.timers
    }

    /// The erasure bound, if any.
    pub fn erasure_bound(&self) -> Option<Duration> {
        self.cleanup_within
    }

    /// Checks the configuration of state `name`: a clear error for a zero
    /// time to live or cleanup bound, or an incremental cleanup of 0 entries.
    pub(crate) fn check(&self, name: &str) -> Result<(), StateError> {
        let bad = |what: String| Err(StateError::invalid_ttl(format!("state `{name}`: {what}")));
        if self.ttl_ms() <= 0 {
            return bad(format!(
                "the time to live must be at least 1 ms, not {:?}",
                self.ttl
            ));
        }
        if let Some(bound) = self.cleanup_within {
            if bound.as_millis() == 0 {
                return bad("the cleanup bound (`cleanup_within`) must be at least 1 ms".into());
            }
        }
        if self.incremental.is_some_and(|i| i.entries == 0) {
            return bad("an incremental cleanup must check at least 1 entry per step".into());
        }
        Ok(())
    }

    /// What a snapshot records of this configuration.
    pub(crate) fn settings(&self) -> TtlSettings {
        TtlSettings {
            ttl_ms: self.ttl_ms(),
            update: self.update,
            visibility: self.visibility,
            time: self.time,
            downtime: self.downtime,
            clock_ms: None,
        }
    }
}

/// The TTL settings of a state as a snapshot records them (shown by
/// `weir inspect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TtlSettings {
    /// The time to live, ms.
    pub ttl_ms: i64,
    /// When the clock restarts.
    pub update: TtlUpdate,
    /// Whether expired entries may be read.
    pub visibility: TtlVisibility,
    /// Which clock.
    pub time: TtlTime,
    /// The downtime policy.
    pub downtime: DowntimePolicy,
    /// A processing-time state's clock when the snapshot was taken (what a
    /// restore with [`DowntimePolicy::PauseDuringDowntime`] resumes from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ms: Option<i64>,
}

impl std::fmt::Display for TtlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = match self.time {
            TtlTime::ProcessingTime => "processing time",
            TtlTime::EventTime => "event time",
        };
        write!(
            f,
            "ttl {} ms, {time}, {:?}, {:?}",
            self.ttl_ms, self.update, self.visibility
        )?;
        if self.downtime == DowntimePolicy::PauseDuringDowntime {
            write!(f, ", paused during downtime")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configurations_are_clear_errors() {
        let zero = TtlConfig::new(Duration::ZERO).check("seen").unwrap_err();
        assert!(zero.to_string().contains("state `seen`"), "{zero}");
        assert!(zero.to_string().contains("at least 1 ms"), "{zero}");
        let sub_ms = TtlConfig::new(Duration::from_micros(10)).check("seen");
        assert!(sub_ms.is_err());
        let bound = TtlConfig::new(Duration::from_secs(1))
            .cleanup_within(Duration::ZERO)
            .check("x")
            .unwrap_err();
        assert!(bound.to_string().contains("cleanup_within"), "{bound}");
        let incremental = TtlConfig::new(Duration::from_secs(1))
            .cleanup_incrementally(0, true)
            .check("x");
        assert!(incremental.is_err());
        assert!(TtlConfig::from_millis(-5).is_err());
        assert!(TtlConfig::new(Duration::from_millis(1)).check("x").is_ok());
    }
}

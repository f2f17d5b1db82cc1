//! Checkpoint settings (Flink's `CheckpointConfig`).

use std::time::Duration;

use crate::error::JobError;

/// The guarantee checkpoints give.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CheckpointMode {
    /// Each record affects the state of a checkpoint exactly once (barriers are
    /// aligned, or in-flight data is captured when unaligned).
    #[default]
    ExactlyOnce,
    /// No record is lost, but after a restore some may be processed again
    /// (no alignment: a subtask snapshots when the last barrier arrived).
    AtLeastOnce,
}

/// What happens to retained checkpoints when the job is canceled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExternalizedRetention {
    /// Keep them (to restore the job later).
    #[default]
    RetainOnCancellation,
    /// Delete them when the job is canceled (kept if it fails).
    DeleteOnCancellation,
}

/// How and when a job takes checkpoints.
///
/// ```
/// use std::time::Duration;
/// use weir_actors::checkpoint::{CheckpointConfig, CheckpointMode};
/// let config = CheckpointConfig {
///     interval: Some(Duration::from_secs(1)),
///     mode: CheckpointMode::ExactlyOnce,
///     unaligned: true,
///     ..CheckpointConfig::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Time between checkpoint triggers; `None`: periodic checkpoints off
    /// (manual triggers and the final checkpoint of a bounded job still work).
    pub interval: Option<Duration>,
    /// Exactly-once (default) or at-least-once.
    pub mode: CheckpointMode,
    /// Unaligned checkpoints (exactly-once only): barriers overtake in-flight
    /// data, which is stored as channel state.
    pub unaligned: bool,
    /// An aligned checkpoint whose alignment takes longer than this becomes
    /// unaligned (needs `unaligned`); `None`: never.
    pub aligned_timeout: Option<Duration>,
    /// Least time between the end of one checkpoint and the start of the next.
    pub min_pause: Duration,
    /// A checkpoint not complete after this long is aborted.
    pub timeout: Duration,
    /// Checkpoints that may be in flight at once.
    pub max_concurrent: usize,
    /// Failed checkpoints in a row that the job tolerates; one more fails it.
    pub tolerable_failures: u32,
    /// What happens to retained checkpoints when the job is canceled.
    pub retention: ExternalizedRetention,
    /// Completed checkpoints kept; older ones are deleted (subsumed).
    pub retained: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            interval: None,
            mode: CheckpointMode::ExactlyOnce,
            unaligned: false,
            aligned_timeout: None,
            min_pause: Duration::ZERO,
            timeout: Duration::from_secs(600),
            max_concurrent: 1,
            tolerable_failures: 0,
            retention: ExternalizedRetention::RetainOnCancellation,
            retained: 1,
        }
    }
}

impl CheckpointConfig {
    /// Periodic checkpoints every `interval`, other settings default.
    pub fn every(interval: Duration) -> Self {
        CheckpointConfig {
            interval: Some(interval),
            ..Self::default()
        }
    }

    /// Rejects settings that cannot work, naming the setting and the value.
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |msg: String| Err(JobError::InvalidJob(format!("checkpoint config: {msg}")));
        if self.interval == Some(Duration::ZERO) {
            return bad(
                "interval must be positive (use None to turn periodic checkpoints off)".into(),
            );
        }
        if self.max_concurrent == 0 {
            return bad("max_concurrent must be at least 1".into());
        }
        if self.retained == 0 {
            return bad("retained must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        if self.unaligned && self.mode == CheckpointMode::AtLeastOnce {
            return bad("unaligned checkpoints need mode ExactlyOnce".into());
        }
        if self.aligned_timeout.is_some() && !self.unaligned {
            return bad(format!(
                "aligned_timeout {:?} needs unaligned = true",
                self.aligned_timeout.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

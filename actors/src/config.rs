//! Runtime settings: batching, flow control, threads and chaining.

use std::time::Duration;

use crate::checkpoint::{CheckpointConfig, StorageSpec};
use crate::error::JobError;
use crate::faults::FaultPlan;
use crate::restart::RestartStrategy;
use std::sync::Arc;

/// Where a job's first deployment restores from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreSource {
    /// A checkpoint (or savepoint) directory, `.../chk-<n>`.
    Path(std::path::PathBuf),
    /// The newest complete snapshot (checkpoint or savepoint) of the job's
    /// own lineage under this checkpoint directory (see [`crate::lineage`]);
    /// with none, the job starts fresh.
    LatestIn(std::path::PathBuf),
}

/// How the runtime moves records. Every field has a sensible default.
///
/// ```
/// use weir_actors::RuntimeConfig;
/// let config = RuntimeConfig { batch_size: 512, ..RuntimeConfig::default() };
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConfig {
    /// Records per batch: a channel buffer is sent once it holds this many.
    pub batch_size: usize,
    /// The longest a partly filled batch waits before it is sent anyway.
    pub linger: Duration,
    /// Batches a sender may have in flight per channel (credits). Bounds memory:
    /// no batch holds more than `batch_size` records, so at most
    /// `credits * batch_size` records wait in any input queue.
    pub channel_credits: u32,
    /// Batches a subtask processes before it yields to its Arbiter, so that
    /// control messages, timers and other actors get their turn.
    pub batches_per_step: usize,
    /// Number of Arbiters (threads) the subtasks are placed on; `None` means one per core.
    pub arbiters: Option<usize>,
    /// Whether forward-connected operators of equal parallelism share an actor.
    pub chaining: bool,
    /// Checkpointing, if enabled: when and how, and where to.
    pub checkpointing: Option<CheckpointSettings>,
    /// How the job restarts after a failure; `None`: as Flink, fixed delay
    /// (unlimited attempts, 1 s) with checkpointing, else no restart.
    pub restart: Option<RestartStrategy>,
    /// Failures to inject (tests).
    pub faults: Option<Arc<FaultPlan>>,
    /// Where the first deployment restores from (a savepoint or a retained checkpoint).
    pub restore_from: Option<RestoreSource>,
    /// Whether a restore may skip state whose operator (uid) the job no
    /// longer has; otherwise that is an error listing the uids.
    pub allow_non_restored_state: bool,
    /// Where savepoints go when the call does not say.
    pub savepoint_dir: Option<std::path::PathBuf>,
    /// Whether two-phase-commit sinks accept a restore from a checkpoint older
    /// than what they already committed, or output of another lineage (the
    /// output then holds duplicates); otherwise the job does not start.
    pub allow_sink_rewind: bool,
}

/// Checkpointing of a job: the settings and the storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointSettings {
    /// When and how checkpoints are taken.
    pub config: CheckpointConfig,
    /// Where they are written.
    pub storage: StorageSpec,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            batch_size: 1024,
            linger: Duration::from_millis(5),
            channel_credits: 4,
            batches_per_step: 16,
            arbiters: None,
            chaining: true,
            checkpointing: None,
            restart: None,
            faults: None,
            restore_from: None,
            allow_non_restored_state: false,
            savepoint_dir: None,
            allow_sink_rewind: false,
        }
    }
}

impl RuntimeConfig {
    /// Rejects settings the runtime cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), JobError> {
        let bad = |what: &str| Err(JobError::InvalidJob(what.to_string()));
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if self.channel_credits == 0 {
            return bad(
                "channel_credits must be at least 1 (no credit means no record ever moves)",
            );
        }
        if self.batches_per_step == 0 {
            return bad("batches_per_step must be at least 1");
        }
        if self.arbiters == Some(0) {
            return bad("arbiters must be at least 1");
        }
        if let Some(settings) = &self.checkpointing {
            settings.config.validate()?;
        }
        Ok(())
    }

    /// The restart strategy in effect.
    pub fn restart_strategy(&self) -> RestartStrategy {
        match (&self.restart, &self.checkpointing) {
            (Some(strategy), _) => strategy.clone(),
            (None, Some(_)) => RestartStrategy::default_with_checkpointing(),
            (None, None) => RestartStrategy::NoRestart,
        }
    }

    /// The number of Arbiters to start.
    pub fn arbiter_count(&self) -> usize {
        self.arbiters
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

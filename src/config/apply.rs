//! Applying a [`Configuration`] to the settings a job runs with: every key
//! not set in code overrides what the `StreamEnv` holds.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use weir_actors::checkpoint::layout::parse_dir;
use weir_actors::checkpoint::{CheckpointMode, ExternalizedRetention, StorageSpec};
use weir_actors::config::CheckpointSettings;
use weir_actors::restart::RestartStrategy;
use weir_actors::RuntimeConfig;

use super::{invalid, ConfigError, ConfigValue, Configuration};
use crate::state::{backend_named, StateBackend};

/// What a job runs with, before and after configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Effective {
    pub parallelism: usize,
    pub max_parallelism: usize,
    pub runtime: RuntimeConfig,
    pub state_backend: Option<Arc<dyn StateBackend>>,
    /// A snapshot directory or `latest`, resolved once the checkpoint directory is known.
    pub resume_from: Option<String>,
    /// `[rocksdb]` settings by their environment variable name, for a RocksDB backend.
    pub rocksdb: Vec<(String, String)>,
    /// `[web]`: where the job is shown, if anywhere.
    pub web: WebSettings,
    /// `progress`: whether a progress line is shown on a terminal (`None`:
    /// the caller's default).
    pub progress: Option<bool>,
}

/// Where a job binary serves its web page and REST API (`[web]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// The port (`None`: no server).
    pub port: Option<u16>,
    /// The address it binds.
    pub address: std::net::IpAddr,
    /// Whether savepoint, stop and cancel requests are answered.
    pub writes: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            port: None,
            address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            writes: false,
        }
    }
}

/// Applies every key of `config` that is not in `code` to `effective`.
pub(crate) fn apply(
    config: &Configuration,
    code: &BTreeSet<&'static str>,
    effective: &mut Effective,
) -> Result<(), ConfigError> {
    for (key, (value, origin)) in config.resolved() {
        if code.contains(key) {
            continue;
        }
        apply_one(key, value, effective).map_err(|e| invalid(origin, format!("{key}: {e}")))?;
    }
    Ok(())
}

pub(super) fn number(value: &ConfigValue) -> Result<u64, String> {
    match value {
        ConfigValue::Number(n) => Ok(*n),
        other => Err(format!("expected a number, got {other:?}")),
    }
}

pub(super) fn flag(value: &ConfigValue) -> Result<bool, String> {
    match value {
        ConfigValue::Bool(b) => Ok(*b),
        other => Err(format!("expected true or false, got {other:?}")),
    }
}

pub(super) fn text(value: &ConfigValue) -> Result<&str, String> {
    match value {
        ConfigValue::Text(t) => Ok(t),
        other => Err(format!("expected text, got {other:?}")),
    }
}

/// The backend `name`; a RocksDB backend takes the `[rocksdb]` settings
/// (keys sort before `state.backend`, so they are collected by then).
fn backend(name: &str, rocksdb: &[(String, String)]) -> Result<Arc<dyn StateBackend>, String> {
    #[cfg(feature = "rocksdb")]
    if name.trim() == "rocksdb" {
        let lookup = |var: &str| {
            rocksdb
                .iter()
                .find(|(name, _)| name == var)
                .map(|(_, value)| value.clone())
        };
        return crate::state::rocksdb::from_settings(&lookup).map(|b| Arc::new(b) as _);
    }
    let _ = rocksdb;
    backend_named(name)
}

fn checkpointing(e: &mut Effective) -> &mut CheckpointSettings {
    e.runtime
        .checkpointing
        .get_or_insert_with(CheckpointSettings::default)
}

fn apply_one(key: &str, value: &ConfigValue, e: &mut Effective) -> Result<(), String> {
    let millis = |v: &ConfigValue| number(v).map(Duration::from_millis);
    match key {
        "parallelism" => e.parallelism = number(value)? as usize,
        "max_parallelism" => e.max_parallelism = number(value)? as usize,
        "progress" => e.progress = Some(flag(value)?),
        "state.backend" => e.state_backend = Some(backend(text(value)?, &e.rocksdb)?),
        key if key.starts_with("rocksdb.") => {
            let shown = match value {
                ConfigValue::Number(n) => n.to_string(),
                ConfigValue::Bool(b) => b.to_string(),
                ConfigValue::Text(t) => t.clone(),
            };
            e.rocksdb.push((super::env_variable(key), shown));
        }
        "state.checkpoints_dir" => {
            checkpointing(e).storage = StorageSpec::Filesystem(parse_dir(text(value)?)?)
        }
        "state.savepoints_dir" => e.runtime.savepoint_dir = Some(parse_dir(text(value)?)?),
        "checkpoint.interval_ms" => checkpointing(e).config.interval = Some(millis(value)?),
        "checkpoint.mode" => {
            checkpointing(e).config.mode = match text(value)? {
                "at-least-once" => CheckpointMode::AtLeastOnce,
                _ => CheckpointMode::ExactlyOnce,
            }
        }
        "checkpoint.unaligned" => checkpointing(e).config.unaligned = flag(value)?,
        "checkpoint.aligned_timeout_ms" => {
            let timeout = millis(value)?;
            checkpointing(e).config.aligned_timeout = (!timeout.is_zero()).then_some(timeout)
        }
        "checkpoint.min_pause_ms" => checkpointing(e).config.min_pause = millis(value)?,
        "checkpoint.timeout_ms" => checkpointing(e).config.timeout = millis(value)?,
        "checkpoint.max_concurrent" => {
            checkpointing(e).config.max_concurrent = number(value)? as usize
        }
        "checkpoint.tolerable_failures" => {
            checkpointing(e).config.tolerable_failures =
                number(value)?.min(u64::from(u32::MAX)) as u32
        }
        "checkpoint.retention" => {
            checkpointing(e).config.retention = match text(value)? {
                "delete-on-cancellation" => ExternalizedRetention::DeleteOnCancellation,
                _ => ExternalizedRetention::RetainOnCancellation,
            }
        }
        "checkpoint.retained" => checkpointing(e).config.retained = number(value)? as usize,
        "web.port" => {
            let port = number(value)?;
            e.web.port = Some(
                u16::try_from(port)
                    .map_err(|_| format!("web.port {port} is not a port (0 to 65535)"))?,
            )
        }
        "web.address" => {
            let address = text(value)?;
            e.web.address = address.parse().map_err(|_| {
                format!("web.address `{address}` is not an IP address (e.g. 127.0.0.1 or ::1)")
            })?
        }
        "web.writes" => e.web.writes = flag(value)?,
        // Process-wide, not per job: see Configuration::install_s3_settings.
        key if key.starts_with("s3.") => {}
        "restart.strategy" => e.runtime.restart = Some(RestartStrategy::parse(text(value)?)?),
        "restore.from" => e.resume_from = Some(text(value)?.to_string()),
        "restore.allow_non_restored_state" => e.runtime.allow_non_restored_state = flag(value)?,
        "sink.allow_rewind" => e.runtime.allow_sink_rewind = flag(value)?,
        other => {
            return Err(format!(
                "`{other}` is not applied (a bug: every key in KEYS must be)"
            ))
        }
    }
    Ok(())
}

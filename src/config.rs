//! Configuration files: job settings without recompiling.
//!
//! A `weir.toml` file holds sections named as in Flink, in Rust style. For
//! now it carries the `[checkpoint]` section; unknown keys and bad values are
//! errors that name the key, the value and what is allowed.
//!
//! ```
//! let config = weir::config::checkpoint_config_from_toml(
//!     r#"
//!     [checkpoint]
//!     interval_ms = 1000
//!     mode = "exactly-once"
//!     unaligned = true
//!     tolerable_failures = 2
//!     "#,
//! )
//! .unwrap()
//! .unwrap();
//! assert_eq!(config.interval, Some(std::time::Duration::from_secs(1)));
//! assert!(config.unaligned);
//!
//! let err = weir::config::checkpoint_config_from_toml("[checkpoint]\nintervall_ms = 5").unwrap_err();
//! assert!(err.to_string().contains("intervall_ms"));
//! ```

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use weir_actors::checkpoint::{CheckpointConfig, CheckpointMode, ExternalizedRetention};

/// A configuration file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid, or a key or value is not allowed.
    #[error("configuration {origin}: {message}")]
    Invalid {
        /// Where the text came from.
        origin: String,
        /// What is wrong: the key, the value and what is allowed.
        message: String,
    },
}

/// The `[checkpoint]` section of `weir.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointSection {
    interval_ms: Option<u64>,
    mode: Option<Mode>,
    unaligned: Option<bool>,
    aligned_timeout_ms: Option<u64>,
    min_pause_ms: Option<u64>,
    timeout_ms: Option<u64>,
    max_concurrent: Option<usize>,
    tolerable_failures: Option<u32>,
    retention: Option<Retention>,
    retained: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    ExactlyOnce,
    AtLeastOnce,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Retention {
    RetainOnCancellation,
    DeleteOnCancellation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    checkpoint: Option<CheckpointSection>,
}

fn parse(text: &str, origin: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        message: e.to_string(),
    })
}

fn to_config(section: CheckpointSection, origin: &str) -> Result<CheckpointConfig, ConfigError> {
    let defaults = CheckpointConfig::default();
    let config = CheckpointConfig {
        interval: section.interval_ms.map(Duration::from_millis),
        mode: match section.mode {
            Some(Mode::AtLeastOnce) => CheckpointMode::AtLeastOnce,
            Some(Mode::ExactlyOnce) | None => CheckpointMode::ExactlyOnce,
        },
        unaligned: section.unaligned.unwrap_or(defaults.unaligned),
        aligned_timeout: section.aligned_timeout_ms.map(Duration::from_millis),
        min_pause: section
            .min_pause_ms
            .map_or(defaults.min_pause, Duration::from_millis),
        timeout: section
            .timeout_ms
            .map_or(defaults.timeout, Duration::from_millis),
        max_concurrent: section.max_concurrent.unwrap_or(defaults.max_concurrent),
        tolerable_failures: section
            .tolerable_failures
            .unwrap_or(defaults.tolerable_failures),
        retention: match section.retention {
            Some(Retention::DeleteOnCancellation) => ExternalizedRetention::DeleteOnCancellation,
            Some(Retention::RetainOnCancellation) | None => {
                ExternalizedRetention::RetainOnCancellation
            }
        },
        retained: section.retained.unwrap_or(defaults.retained),
    };
    config.validate().map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        message: format!("[checkpoint] {e}"),
    })?;
    Ok(config)
}

/// The checkpoint settings of a `weir.toml` text (`None` without a `[checkpoint]` section).
pub fn checkpoint_config_from_toml(text: &str) -> Result<Option<CheckpointConfig>, ConfigError> {
    let file = parse(text, "text")?;
    file.checkpoint.map(|s| to_config(s, "text")).transpose()
}

/// The checkpoint settings of the `weir.toml` file at `path`.
pub fn checkpoint_config_from_file(path: &Path) -> Result<Option<CheckpointConfig>, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: origin.clone(),
        source,
    })?;
    let file = parse(&text, &origin)?;
    file.checkpoint.map(|s| to_config(s, &origin)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_read() {
        let config = checkpoint_config_from_toml(
            "[checkpoint]\ninterval_ms = 500\nmode = \"at-least-once\"\nmin_pause_ms = 10\ntimeout_ms = 2000\n\
             max_concurrent = 2\ntolerable_failures = 3\nretention = \"delete-on-cancellation\"\nretained = 4\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(config.interval, Some(Duration::from_millis(500)));
        assert_eq!(config.mode, CheckpointMode::AtLeastOnce);
        assert_eq!(
            (config.min_pause, config.timeout),
            (Duration::from_millis(10), Duration::from_secs(2))
        );
        assert_eq!(
            (
                config.max_concurrent,
                config.tolerable_failures,
                config.retained
            ),
            (2, 3, 4)
        );
        assert_eq!(
            config.retention,
            ExternalizedRetention::DeleteOnCancellation
        );
        assert!(checkpoint_config_from_toml("").unwrap().is_none());
    }

    #[test]
    fn errors_name_the_key_the_value_and_what_is_allowed() {
        let unknown = checkpoint_config_from_toml("[checkpoint]\nintervall = 1")
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("intervall") && unknown.contains("interval_ms"),
            "{unknown}"
        );
        let mode = checkpoint_config_from_toml("[checkpoint]\nmode = \"twice\"")
            .unwrap_err()
            .to_string();
        assert!(
            mode.contains("twice")
                && mode.contains("exactly-once")
                && mode.contains("at-least-once"),
            "{mode}"
        );
        let bad = checkpoint_config_from_toml("[checkpoint]\nmax_concurrent = 0")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("max_concurrent must be at least 1"), "{bad}");
        let conflict =
            checkpoint_config_from_toml("[checkpoint]\nunaligned = true\nmode = \"at-least-once\"")
                .unwrap_err()
                .to_string();
        assert!(conflict.contains("unaligned"), "{conflict}");
        let missing = checkpoint_config_from_file(Path::new("/nonexistent/weir.toml"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("/nonexistent/weir.toml"), "{missing}");
    }
}

//! Configuration: job settings without recompiling.
//!
//! Settings come from four places; for each key the first that has it wins:
//! 1. **code** (`StreamEnv` setters),
//! 2. the **command line** ([`crate::cli::JobArgs`] flags),
//! 3. the **environment** (`WEIR_<SECTION>_<NAME>` variables),
//! 4. the **file** (`weir.toml`, from `--config` or `WEIR_CONFIG`),
//!
//! and then a job's own defaults ([`Configuration::set_default`]) and weir's.
//! Unknown keys and bad values are errors that name the key (or variable),
//! the value and what is allowed. [`KEYS`] lists every key.
//!
//! ```toml
//! parallelism = 4
//! max_parallelism = 128
//! progress = true             # the live line on a terminal (weir::progress)
//!
//! [state]
//! backend = "heap"
//! checkpoints_dir = "/var/lib/job/checkpoints"
//! savepoints_dir = "/var/lib/job/savepoints"
//!
//! [checkpoint]
//! interval_ms = 1000
//! mode = "exactly-once"        # or "at-least-once"
//! unaligned = false
//! aligned_timeout_ms = 0
//! min_pause_ms = 0
//! timeout_ms = 600000
//! max_concurrent = 1
//! tolerable_failures = 0
//! retention = "retain-on-cancellation"   # or "delete-on-cancellation"
//! retained = 1
//!
//! [rocksdb]                   # with state.backend = "rocksdb"
//! local_dirs = "/var/tmp/weir-a,/var/tmp/weir-b"
//! dir_strategy = "round-robin"           # or "least-used", "random"
//! block_cache_mb = 128
//! write_buffer_mb = 64
//! entry_cache_mb = 32                    # 0 turns the entry cache off
//! incremental = true
//!
//! [s3]                      # for s3:// checkpoint and savepoint directories (feature `s3`)
//! endpoint = "http://127.0.0.1:9000"     # default: AWS_ENDPOINT, else AWS
//! region = "us-east-1"
//! access_key = "weir"                    # default: AWS_ACCESS_KEY_ID
//! secret_key = "weir-secret"             # default: AWS_SECRET_ACCESS_KEY
//! path_style_access = true
//! max_concurrent_requests = 16
//! max_retries = 5
//!
//! [web]
//! port = 8081                 # REST API, metrics and web page (weir::web)
//! address = "127.0.0.1"
//! writes = false
//!
//! [restart]
//! strategy = "fixed-delay:3:1000"
//!
//! [restore]
//! from = "/var/lib/job/savepoints/savepoint-3fa2c1-7"   # or "latest"
//! allow_non_restored_state = false
//!
//! [sink]
//! allow_rewind = false    # true: exactly-once sinks accept a restore behind their commits (duplicates)
//! ```
//!
//! ```
//! use weir::config::{ConfigValue, Configuration};
//! let mut config = Configuration::new();
//! config.load_toml("parallelism = 4\n[checkpoint]\ninterval_ms = 500", "weir.toml").unwrap();
//! config.load_env_vars([("WEIR_PARALLELISM".to_string(), "6".to_string())]).unwrap();
//! config.set("checkpoint.interval_ms", "250", "--checkpoint-interval-ms").unwrap();
//! assert_eq!(config.get("parallelism"), Some(&ConfigValue::Number(6)));
//! assert_eq!(config.get("checkpoint.interval_ms"), Some(&ConfigValue::Number(250)));
//!
//! let err = config.load_toml("[checkpoint]\nmode = \"twice\"", "weir.toml").unwrap_err();
//! assert!(err.to_string().contains("checkpoint.mode = \"twice\": allowed: one of exactly-once, at-least-once"));
//! ```

mod apply;
mod keys;
mod s3;

use std::collections::BTreeMap;
use std::path::Path;

use thiserror::Error;
use weir_actors::checkpoint::CheckpointConfig;

pub use apply::WebSettings;
pub(crate) use apply::{apply, Effective};
pub use keys::{env_variable, ConfigValue, KeySpec, KEYS};
pub(crate) use s3::S3Settings;

/// The environment variable naming the configuration file.
pub const CONFIG_FILE_VARIABLE: &str = "WEIR_CONFIG";

/// Variables that start with `WEIR_` but are not settings: the test
/// suite's switch that turns a skipped server test into a failure (CI sets it).
const NOT_SETTINGS: &[&str] = &["WEIR_REQUIRE_SERVERS"];

/// A configuration could not be used.
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
        /// Where it came from: a file, a variable or a flag.
        origin: String,
        /// What is wrong: the key, the value and what is allowed.
        message: String,
    },
}

/// Where a value came from, lowest precedence first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Default,
    File,
    Environment,
    CommandLine,
}

/// Settings by key from the job's defaults, the file, the environment and
/// the command line (code settings live on the `StreamEnv` and win over all).
#[derive(Clone, Debug, Default)]
pub struct Configuration {
    values: BTreeMap<(&'static str, Layer), (ConfigValue, String)>,
    /// Whether a file was loaded (then `WEIR_CONFIG` is not read).
    has_file: bool,
}

fn invalid(origin: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message,
    }
}

impl Configuration {
    /// An empty configuration.
    pub fn new() -> Self {
        Configuration::default()
    }

    fn put(&mut self, layer: Layer, spec: &'static KeySpec, value: ConfigValue, origin: &str) {
        self.values
            .insert((spec.key, layer), (value, origin.to_string()));
    }

    /// Loads the `weir.toml` text `text` (`origin` names it in errors) into the file layer.
    pub fn load_toml(&mut self, text: &str, origin: &str) -> Result<&mut Self, ConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(origin, e.to_string()))?;
        let mut found = Vec::new();
        for (name, value) in &table {
            match value {
                toml::Value::Table(section) if is_section(name) => {
                    for (field, value) in section {
                        found.push((format!("{name}.{field}"), value));
                    }
                }
                toml::Value::Table(_) => {
                    let mut sections: Vec<&str> = KEYS
                        .iter()
                        .filter_map(|s| s.key.split_once('.').map(|(section, _)| section))
                        .collect();
                    sections.dedup();
                    return Err(invalid(
                        origin,
                        format!(
                            "unknown section [{name}]; allowed: [{}]",
                            sections.join("], [")
                        ),
                    ));
                }
                _ => found.push((name.clone(), value)),
            }
        }
        for (key, value) in found {
            let spec = keys::spec(&key).ok_or_else(|| invalid(origin, unknown_key(&key)))?;
            let value = keys::from_toml(spec, value).map_err(|e| invalid(origin, e))?;
            self.put(Layer::File, spec, value, origin);
        }
        self.has_file = true;
        Ok(self)
    }

    /// Loads the `weir.toml` file at `path` into the file layer.
    pub fn load_file(&mut self, path: &Path) -> Result<&mut Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: origin.clone(),
            source,
        })?;
        self.load_toml(&text, &origin)
    }

    /// Loads `WEIR_*` variables (other than `WEIR_CONFIG`) into the
    /// environment layer; an unknown `WEIR_` variable is an error.
    pub fn load_env_vars(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<&mut Self, ConfigError> {
        for (name, text) in vars {
            if !name.starts_with("WEIR_")
                || name == CONFIG_FILE_VARIABLE
                || NOT_SETTINGS.contains(&name.as_str())
            {
                continue;
            }
            let spec = KEYS
                .iter()
                .find(|s| env_variable(s.key) == name)
                .ok_or_else(|| {
                    invalid(
                        &name,
                        format!(
                            "not a weir setting; allowed: {CONFIG_FILE_VARIABLE}, {}",
                            KEYS.iter()
                                .map(|s| env_variable(s.key))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let value = keys::parse_text(spec, &text).map_err(|e| invalid(&name, e))?;
            self.put(Layer::Environment, spec, value, &name);
        }
        Ok(self)
    }

    /// Loads the process environment (see [`Self::load_env_vars`]).
    pub fn load_env(&mut self) -> Result<&mut Self, ConfigError> {
        self.load_env_vars(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Loads the file `WEIR_CONFIG` names, unless a file was loaded already.
    pub fn load_file_from_env(&mut self) -> Result<&mut Self, ConfigError> {
        if self.has_file {
            return Ok(self);
        }
        match std::env::var(CONFIG_FILE_VARIABLE) {
            Ok(path) if !path.is_empty() => self.load_file(Path::new(&path)),
            _ => Ok(self),
        }
    }

    /// Sets `key` on the command-line layer (`origin` names the flag in errors).
    pub fn set(&mut self, key: &str, text: &str, origin: &str) -> Result<&mut Self, ConfigError> {
        let spec = keys::spec(key).ok_or_else(|| invalid(origin, unknown_key(key)))?;
        let value = keys::parse_text(spec, text).map_err(|e| invalid(origin, e))?;
        self.put(Layer::CommandLine, spec, value, origin);
        Ok(self)
    }

    /// Sets a job's own default for `key`: below the file, above weir's defaults.
    pub fn set_default(&mut self, key: &str, text: &str) -> Result<&mut Self, ConfigError> {
        let spec = keys::spec(key).ok_or_else(|| invalid("default", unknown_key(key)))?;
        let value = keys::parse_text(spec, text).map_err(|e| invalid("default", e))?;
        self.put(Layer::Default, spec, value, "default");
        Ok(self)
    }

    /// Adds every value of `other`, which wins where both have a key on the same layer.
    pub fn merge(&mut self, other: &Configuration) {
        self.values
            .extend(other.values.iter().map(|(k, v)| (*k, v.clone())));
        self.has_file |= other.has_file;
    }

    /// Makes the `[s3]` keys in effect the settings of every bucket of
    /// `s3://` locations (see [`weir_actors::location::configure_s3`]); jobs
    /// do this when they start, the `weir` command before it reads a bucket.
    /// Without the cargo feature `s3`, setting any of them is an error.
    pub fn install_s3_settings(&self) -> Result<(), ConfigError> {
        let mut settings = S3Settings::default();
        for (key, (value, origin)) in self.resolved() {
            if key.starts_with("s3.") {
                settings.set(key, value).map_err(|e| invalid(origin, e))?;
            }
        }
        settings.install().map_err(|e| invalid("[s3]", e))
    }

    /// The value of `key` in effect (command line, else environment, else file, else default).
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.resolved().remove(key).map(|(value, _)| value)
    }

    /// Every key with a value, with the value in effect and where it came from.
    pub fn resolved(&self) -> BTreeMap<&'static str, (&ConfigValue, &str)> {
        let mut out = BTreeMap::new();
        // Ordered by (key, layer): a later layer of the same key overwrites.
        for ((key, _), (value, origin)) in &self.values {
            out.insert(*key, (value, origin.as_str()));
        }
        out
    }
}

fn is_section(name: &str) -> bool {
    KEYS.iter().any(|s| {
        s.key
            .split_once('.')
            .is_some_and(|(section, _)| section == name)
    })
}

fn unknown_key(key: &str) -> String {
    let (section, _) = key.split_once('.').unwrap_or(("", key));
    let near: Vec<&str> = KEYS
        .iter()
        .map(|s| s.key)
        .filter(|k| k.split_once('.').map_or("", |(s, _)| s) == section)
        .collect();
    let listed = if near.is_empty() {
        KEYS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
    } else {
        near.join(", ")
    };
    format!("unknown key `{key}`; allowed: {listed}")
}

/// The checkpoint settings of a `weir.toml` text (`None` without a `[checkpoint]` section).
///
/// ```
/// let config = weir::config::checkpoint_config_from_toml(
///     "[checkpoint]\ninterval_ms = 1000\nmode = \"exactly-once\"\nunaligned = true\ntolerable_failures = 2",
/// )
/// .unwrap()
/// .unwrap();
/// assert_eq!(config.interval, Some(std::time::Duration::from_secs(1)));
/// assert!(config.unaligned);
///
/// let err = weir::config::checkpoint_config_from_toml("[checkpoint]\nintervall_ms = 5").unwrap_err();
/// assert!(err.to_string().contains("intervall_ms"));
/// ```
pub fn checkpoint_config_from_toml(text: &str) -> Result<Option<CheckpointConfig>, ConfigError> {
    let mut config = Configuration::new();
    config.load_toml(text, "text")?;
    checkpoint_config_of(&config, "text")
}

/// The checkpoint settings of the `weir.toml` file at `path`.
pub fn checkpoint_config_from_file(path: &Path) -> Result<Option<CheckpointConfig>, ConfigError> {
    let mut config = Configuration::new();
    config.load_file(path)?;
    checkpoint_config_of(&config, &path.display().to_string())
}

fn checkpoint_config_of(
    config: &Configuration,
    origin: &str,
) -> Result<Option<CheckpointConfig>, ConfigError> {
    if !config
        .resolved()
        .keys()
        .any(|k| k.starts_with("checkpoint."))
    {
        return Ok(None);
    }
    let mut effective = Effective::default();
    apply(config, &Default::default(), &mut effective)?;
    match effective.runtime.checkpointing {
        Some(settings) => {
            settings
                .config
                .validate()
                .map_err(|e| invalid(origin, format!("[checkpoint] {e}")))?;
            Ok(Some(settings.config))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests;

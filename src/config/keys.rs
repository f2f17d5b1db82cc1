//! The configuration keys: their names, types, what they allow, and how a
//! value is read from TOML or from text (environment variables, flags).
//!
//! A key is written `section.name` (`checkpoint.interval_ms`); in `weir.toml`
//! that is `interval_ms` under `[checkpoint]`, in the environment
//! `WEIR_CHECKPOINT_INTERVAL_MS`.

use weir_actors::checkpoint::layout::parse_dir;
use weir_actors::restart::RestartStrategy;

/// A configuration value, checked against its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigValue {
    /// A count or a duration in milliseconds.
    Number(u64),
    /// A switch.
    Bool(bool),
    /// A name, path or spec.
    Text(String),
}

/// What a key holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A whole number of at least `min`.
    Number { min: u64 },
    /// `true` or `false`.
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A directory (plain path or `file://` URI).
    Dir,
    /// A restart strategy spec ([`RestartStrategy::parse`]).
    Restart,
    /// A state backend name.
    Backend,
    /// A snapshot directory or `latest`.
    ResumeFrom,
    /// Free text.
    Text,
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    /// `section.name`, or `name` at the top level.
    pub key: &'static str,
    pub(crate) kind: Kind,
    /// What it sets.
    pub help: &'static str,
}

const fn key(key: &'static str, kind: Kind, help: &'static str) -> KeySpec {
    KeySpec { key, kind, help }
}

const POSITIVE: Kind = Kind::Number { min: 1 };
const ANY_NUMBER: Kind = Kind::Number { min: 0 };

/// Every key weir reads, in the order the documentation lists them.
pub const KEYS: &[KeySpec] = &[
    key("parallelism", POSITIVE, "default parallelism of operators"),
    key("max_parallelism", POSITIVE, "default max parallelism (number of key groups)"),
    key("progress", Kind::Bool, "a live progress line on stderr while the job runs, when stderr is a terminal (default: true for job binaries, false for StreamEnv::execute_blocking)"),
    key("state.backend", Kind::Backend, "state backend: heap (alias hashmap) or rocksdb"),
    key("state.checkpoints_dir", Kind::Dir, "where checkpoints are written (turns checkpointing on)"),
    key("state.savepoints_dir", Kind::Dir, "where savepoints go when a call gives no directory"),
    key("checkpoint.interval_ms", POSITIVE, "periodic checkpoint interval"),
    key("checkpoint.mode", Kind::Choice(&["exactly-once", "at-least-once"]), "checkpointing mode"),
    key("checkpoint.unaligned", Kind::Bool, "unaligned checkpoints"),
    key("checkpoint.aligned_timeout_ms", ANY_NUMBER, "alignment time before switching to unaligned"),
    key("checkpoint.min_pause_ms", ANY_NUMBER, "least time between the end of one checkpoint and the next"),
    key("checkpoint.timeout_ms", POSITIVE, "time after which a checkpoint is aborted"),
    key("checkpoint.max_concurrent", POSITIVE, "checkpoints in progress at once"),
    key("checkpoint.tolerable_failures", ANY_NUMBER, "consecutive checkpoint failures before the job fails"),
    key(
        "checkpoint.retention",
        Kind::Choice(&["retain-on-cancellation", "delete-on-cancellation"]),
        "what happens to retained checkpoints when the job is canceled",
    ),
    key("checkpoint.retained", POSITIVE, "complete checkpoints kept"),
    key("rocksdb.local_dirs", Kind::Text, "RocksDB working directories, separated by `,`"),
    key(
        "rocksdb.dir_strategy",
        Kind::Choice(&["round-robin", "least-used", "random"]),
        "which working directory a subtask gets",
    ),
    key("rocksdb.block_cache_mb", POSITIVE, "RocksDB block cache per job, MiB (default 128)"),
    key("rocksdb.write_buffer_mb", POSITIVE, "RocksDB write buffers per job, MiB (default 64)"),
    key("rocksdb.entry_cache_mb", ANY_NUMBER, "RocksDB write-back entry cache per job, MiB (default 32, 0: off)"),
    key("rocksdb.incremental", Kind::Bool, "incremental checkpoints with RocksDB (default true)"),
    key("web.port", Kind::Number { min: 0 }, "serve the REST API, metrics and web page on this port (0: any free port)"),
    key("web.address", Kind::Text, "the address the web server binds (default 127.0.0.1)"),
    key("web.writes", Kind::Bool, "allow savepoint, stop and cancel over HTTP (default false)"),
    key("s3.endpoint", Kind::Text, "S3 endpoint URL for s3:// checkpoint directories (e.g. http://127.0.0.1:9000; default: AWS_ENDPOINT, else AWS)"),
    key("s3.region", Kind::Text, "S3 region (default: AWS_REGION, else us-east-1)"),
    key("s3.access_key", Kind::Text, "S3 access key id (default: AWS_ACCESS_KEY_ID)"),
    key("s3.secret_key", Kind::Text, "S3 secret access key (default: AWS_SECRET_ACCESS_KEY)"),
    key("s3.path_style_access", Kind::Bool, "path-style S3 requests (endpoint/bucket/key), as MinIO and most local servers need (default: path-style)"),
    key("s3.max_concurrent_requests", POSITIVE, "S3 requests in flight at once per bucket (default 16)"),
    key("s3.max_retries", ANY_NUMBER, "retries of an S3 request that failed with a transient error (default 5)"),
    key("restart.strategy", Kind::Restart, "none, fixed-delay:ATTEMPTS:DELAY_MS, failure-rate:MAX:INTERVAL_MS:DELAY_MS or exponential:INITIAL_MS:MAX_MS"),
    key("restore.from", Kind::ResumeFrom, "savepoint or checkpoint directory to start from, or latest"),
    key("restore.allow_non_restored_state", Kind::Bool, "drop state whose operator the job no longer has"),
    key(
        "sink.allow_rewind",
        Kind::Bool,
        "let exactly-once sinks accept a restore behind their commits, or another lineage's output (you will get duplicates)",
    ),
];

/// The spec of `key`.
pub(crate) fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|s| s.key == key)
}

/// The environment variable of `key`: `WEIR_` and the key in capitals, `.` as `_`.
///
/// ```
/// assert_eq!(weir::config::env_variable("checkpoint.interval_ms"), "WEIR_CHECKPOINT_INTERVAL_MS");
/// ```
pub fn env_variable(key: &str) -> String {
    format!("WEIR_{}", key.to_ascii_uppercase().replace('.', "_"))
}

/// What `kind` allows, for error messages.
fn allowed(kind: Kind) -> String {
    match kind {
        Kind::Number { min: 0 } => "a whole number".into(),
        Kind::Number { min } => format!("a whole number of at least {min}"),
        Kind::Bool => "true or false".into(),
        Kind::Choice(words) => format!("one of {}", words.join(", ")),
        Kind::Dir => "a directory (a path or file:// URI)".into(),
        Kind::Restart => "none, fixed-delay:ATTEMPTS:DELAY_MS, failure-rate:MAX:INTERVAL_MS:DELAY_MS or exponential:INITIAL_MS:MAX_MS".into(),
        Kind::Backend => crate::state::BACKEND_NAMES.into(),
        Kind::ResumeFrom => "a savepoint or checkpoint directory, or latest".into(),
        Kind::Text => "text".into(),
    }
}

/// Reads `text` (from the environment or a flag) as a value of `spec`.
pub(crate) fn parse_text(spec: &KeySpec, text: &str) -> Result<ConfigValue, String> {
    let text = text.trim();
    let value = match spec.kind {
        Kind::Number { .. } => text
            .parse::<u64>()
            .map(ConfigValue::Number)
            .map_err(|_| bad(spec, &format!("{text:?}"), None))?,
        Kind::Bool => match text {
            "true" => ConfigValue::Bool(true),
            "false" => ConfigValue::Bool(false),
            _ => return Err(bad(spec, &format!("{text:?}"), None)),
        },
        _ => ConfigValue::Text(text.to_string()),
    };
    check(spec, value, &format!("{text:?}"))
}

/// Reads a TOML value as a value of `spec`.
pub(crate) fn from_toml(spec: &KeySpec, value: &toml::Value) -> Result<ConfigValue, String> {
    let shown = value.to_string();
    let value = match (spec.kind, value) {
        (Kind::Number { .. }, toml::Value::Integer(n)) if *n >= 0 => ConfigValue::Number(*n as u64),
        (Kind::Bool, toml::Value::Boolean(b)) => ConfigValue::Bool(*b),
        (Kind::Number { .. } | Kind::Bool, _) => return Err(bad(spec, &shown, None)),
        (_, toml::Value::String(s)) => ConfigValue::Text(s.clone()),
        _ => return Err(bad(spec, &shown, None)),
    };
    check(spec, value, &shown)
}

fn bad(spec: &KeySpec, shown: &str, why: Option<&str>) -> String {
    match why {
        Some(why) => format!(
            "{} = {shown}: {why}; allowed: {}",
            spec.key,
            allowed(spec.kind)
        ),
        None => format!("{} = {shown}: allowed: {}", spec.key, allowed(spec.kind)),
    }
}

/// Checks a value against what its key allows.
fn check(spec: &KeySpec, value: ConfigValue, shown: &str) -> Result<ConfigValue, String> {
    let fail = |why: Option<&str>| Err(bad(spec, shown, why));
    match (&spec.kind, &value) {
        (Kind::Number { min }, ConfigValue::Number(n)) if n < min => fail(None),
        (Kind::Choice(words), ConfigValue::Text(t)) if !words.contains(&t.as_str()) => fail(None),
        (Kind::Dir, ConfigValue::Text(t)) => match parse_dir(t) {
            Ok(_) => Ok(value),
            Err(e) => fail(Some(&e)),
        },
        (Kind::Restart, ConfigValue::Text(t)) => match RestartStrategy::parse(t) {
            Ok(_) => Ok(value),
            Err(e) => fail(Some(&e)),
        },
        (Kind::Backend, ConfigValue::Text(t)) => match crate::state::check_backend_name(t) {
            Ok(()) => Ok(value),
            Err(e) => fail(Some(&e)),
        },
        (Kind::ResumeFrom, ConfigValue::Text(t)) if t.is_empty() => fail(Some("empty")),
        _ => Ok(value),
    }
}

use std::path::Path;
use std::time::Duration;

use weir_actors::checkpoint::{CheckpointMode, ExternalizedRetention};

use super::*;

#[test]
fn every_checkpoint_key_is_read() {
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
    let error = |text: &str| checkpoint_config_from_toml(text).unwrap_err().to_string();
    let unknown = error("[checkpoint]\nintervall = 1");
    assert!(
        unknown.contains("intervall") && unknown.contains("checkpoint.interval_ms"),
        "{unknown}"
    );
    let mode = error("[checkpoint]\nmode = \"twice\"");
    assert!(
        mode.contains("twice") && mode.contains("exactly-once") && mode.contains("at-least-once"),
        "{mode}"
    );
    let zero = error("[checkpoint]\nmax_concurrent = 0");
    assert!(
        zero.contains("checkpoint.max_concurrent = 0") && zero.contains("at least 1"),
        "{zero}"
    );
    let typed = error("[checkpoint]\nunaligned = \"yes\"");
    assert!(
        typed.contains("checkpoint.unaligned = \"yes\": allowed: true or false"),
        "{typed}"
    );
    let conflict = error("[checkpoint]\nunaligned = true\nmode = \"at-least-once\"");
    assert!(conflict.contains("unaligned"), "{conflict}");
    let missing = checkpoint_config_from_file(Path::new("/nonexistent/weir.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("/nonexistent/weir.toml"), "{missing}");
}

#[test]
fn every_key_of_the_documented_file_is_known_and_applied() {
    // The example in the module documentation, every key set.
    let text = include_str!("mod.rs")
        .split("//! ```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("//! ```\n").next())
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("//!").trim_start())
        .collect::<Vec<_>>()
        .join("\n");
    let mut config = Configuration::new();
    config.load_toml(&text, "doc").unwrap();
    assert_eq!(
        config.resolved().len(),
        KEYS.len(),
        "every key is in the documented file"
    );
    let mut effective = Effective::default();
    apply(&config, &Default::default(), &mut effective).unwrap();
    assert_eq!((effective.parallelism, effective.max_parallelism), (4, 128));
    assert_eq!(effective.state_backend.unwrap().name(), "heap");
    let checkpointing = effective.runtime.checkpointing.unwrap();
    assert_eq!(checkpointing.config.interval, Some(Duration::from_secs(1)));
    assert_eq!(
        effective.runtime.savepoint_dir.as_deref(),
        Some(Path::new("/var/lib/job/savepoints"))
    );
    assert!(effective.runtime.restart.is_some());
    assert!(effective
        .resume_from
        .unwrap()
        .contains("savepoint-3fa2c1-7"));
}

#[test]
fn command_line_beats_environment_beats_file_beats_job_defaults() {
    let mut config = Configuration::new();
    config.set_default("parallelism", "1").unwrap();
    config.set_default("max_parallelism", "64").unwrap();
    assert_eq!(config.get("parallelism"), Some(&ConfigValue::Number(1)));
    config
        .load_toml(
            "parallelism = 2\n[checkpoint]\ninterval_ms = 100\nretained = 5",
            "weir.toml",
        )
        .unwrap();
    assert_eq!(config.get("parallelism"), Some(&ConfigValue::Number(2)));
    config
        .load_env_vars([
            ("WEIR_PARALLELISM".to_string(), "3".to_string()),
            ("WEIR_CHECKPOINT_INTERVAL_MS".to_string(), "200".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ])
        .unwrap();
    config.set("parallelism", "4", "--parallelism").unwrap();
    let resolved = config.resolved();
    assert_eq!(
        resolved["parallelism"],
        (&ConfigValue::Number(4), "--parallelism")
    );
    assert_eq!(
        resolved["checkpoint.interval_ms"],
        (&ConfigValue::Number(200), "WEIR_CHECKPOINT_INTERVAL_MS")
    );
    assert_eq!(
        resolved["checkpoint.retained"],
        (&ConfigValue::Number(5), "weir.toml")
    );
    assert_eq!(
        resolved["max_parallelism"],
        (&ConfigValue::Number(64), "default")
    );

    // Code wins over all of them.
    let mut effective = Effective {
        parallelism: 9,
        ..Effective::default()
    };
    apply(
        &config,
        &["parallelism"].into_iter().collect(),
        &mut effective,
    )
    .unwrap();
    assert_eq!(effective.parallelism, 9);
    assert_eq!(effective.max_parallelism, 64);
}

#[test]
fn environment_and_flag_errors_name_the_variable_or_flag_the_value_and_what_is_allowed() {
    let env_error = |name: &str, value: &str| {
        Configuration::new()
            .load_env_vars([(name.to_string(), value.to_string())])
            .unwrap_err()
            .to_string()
    };
    let unknown = env_error("WEIR_PARALELLISM", "2");
    assert!(
        unknown.contains("WEIR_PARALELLISM") && unknown.contains("WEIR_PARALLELISM"),
        "{unknown}"
    );
    let bad = env_error("WEIR_PARALLELISM", "two");
    assert!(
        bad.contains("WEIR_PARALLELISM") && bad.contains("\"two\"") && bad.contains("whole number"),
        "{bad}"
    );
    let backend = env_error("WEIR_STATE_BACKEND", "redis");
    assert!(
        backend.contains("redis") && backend.contains("heap"),
        "{backend}"
    );
    let restart = Configuration::new()
        .set("restart.strategy", "sometimes", "--restart")
        .unwrap_err()
        .to_string();
    assert!(
        restart.contains("--restart")
            && restart.contains("sometimes")
            && restart.contains("fixed-delay"),
        "{restart}"
    );
    let dir = Configuration::new()
        .set("state.checkpoints_dir", "gs://bucket/x", "--checkpoint-dir")
        .unwrap_err()
        .to_string();
    assert!(
        dir.contains("--checkpoint-dir") && dir.contains("gs://bucket/x"),
        "{dir}"
    );
    let section = Configuration::new()
        .load_toml("[checkpoints]\ninterval_ms = 1", "weir.toml")
        .unwrap_err()
        .to_string();
    assert!(
        section.contains("weir.toml")
            && section.contains("[checkpoints]")
            && section.contains("[checkpoint]"),
        "{section}"
    );
}

#[test]
fn s3_keys_are_read_and_need_the_feature() {
    let mut config = Configuration::new();
    config
        .set("s3.endpoint", "http://127.0.0.1:9", "--s3-endpoint")
        .unwrap();
    config.set("s3.path_style_access", "true", "test").unwrap();
    let bad = Configuration::new()
        .set("s3.max_retries", "many", "WEIR_S3_MAX_RETRIES")
        .unwrap_err()
        .to_string();
    assert!(bad.contains("WEIR_S3_MAX_RETRIES"), "{bad}");
    let installed = config.install_s3_settings();
    #[cfg(feature = "s3")]
    {
        installed.unwrap();
        weir_actors::location::configure_s3(weir_actors::location::S3Options::default());
    }
    #[cfg(not(feature = "s3"))]
    {
        let err = installed.unwrap_err().to_string();
        assert!(err.contains("feature `s3`"), "{err}");
    }
    // Without [s3] keys there is nothing to install, with or without the feature.
    Configuration::new().install_s3_settings().unwrap();
}

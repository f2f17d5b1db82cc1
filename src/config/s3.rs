//! The `[s3]` keys: how checkpoints reach an S3-compatible store when the
//! checkpoint or savepoint directory is an `s3://bucket/prefix` URL
//! (feature `s3`). Unset keys leave the standard `AWS_*` environment
//! variables in force; set ones become the process's defaults for every
//! bucket (see [`weir_actors::location::configure_s3`]; a bucket configured
//! in code with `configure_s3_bucket` keeps its own).

use super::apply::{flag, number, text};
use super::ConfigValue;

/// The `[s3]` section as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub path_style_access: Option<bool>,
    pub max_concurrent_requests: Option<u64>,
    pub max_retries: Option<u64>,
}

impl S3Settings {
    /// Sets the `s3.*` key `key`.
    pub(crate) fn set(&mut self, key: &str, value: &ConfigValue) -> Result<(), String> {
        match key {
            "s3.endpoint" => self.endpoint = Some(text(value)?.to_string()),
            "s3.region" => self.region = Some(text(value)?.to_string()),
            "s3.access_key" => self.access_key = Some(text(value)?.to_string()),
            "s3.secret_key" => self.secret_key = Some(text(value)?.to_string()),
            "s3.path_style_access" => self.path_style_access = Some(flag(value)?),
            "s3.max_concurrent_requests" => self.max_concurrent_requests = Some(number(value)?),
            "s3.max_retries" => self.max_retries = Some(number(value)?),
            other => return Err(format!("{other}: not an [s3] key")),
        }
        Ok(())
    }

    /// Makes these the defaults of every bucket, if any key was set.
    pub(crate) fn install(&self) -> Result<(), String> {
        if *self == S3Settings::default() {
            return Ok(());
        }
        #[cfg(feature = "s3")]
        {
            let defaults = weir_actors::location::S3Options::default();
            weir_actors::location::configure_s3(weir_actors::location::S3Options {
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
                access_key_id: self.access_key.clone(),
                secret_access_key: self.secret_key.clone(),
                path_style: self.path_style_access,
                max_concurrent_requests: self
                    .max_concurrent_requests
                    .map_or(defaults.max_concurrent_requests, |n| n as usize),
                max_retries: self
                    .max_retries
                    .map_or(defaults.max_retries, |n| n as usize),
                ..defaults
            });
            Ok(())
        }
        #[cfg(not(feature = "s3"))]
        Err("the [s3] keys need weir built with the cargo feature `s3`".into())
    }
}

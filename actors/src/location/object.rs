//! Checkpoint files in an S3-compatible object store (feature `s3`), through
//! the `object_store` crate on weir's I/O runtime
//! ([`crate::io_runtime`]): the calling thread (a subtask's background
//! writer, the coordinator, the command line) blocks until the request is
//! done, as it would on a local file.
//!
//! **Which store.** `s3://bucket/key` is served by one client per bucket,
//! built on first use from [`S3Options`]: those of [`configure_s3_bucket`]
//! for that bucket, else those of [`configure_s3`], on top of the standard
//! `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...), which an option left unset does
//! not override.
//!
//! **Concurrency and retries.** Each client sends at most
//! [`S3Options::max_concurrent_requests`] requests at a time (subtasks
//! upload their state in parallel, off their processing path); a request
//! that fails with a transient error (a timeout, a 5xx, a dropped
//! connection) is retried with exponential backoff up to
//! [`S3Options::max_retries`] times within [`S3Options::retry_timeout`].
//! Only then does the checkpoint fail, and the next one tries again.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::limit::LimitStore;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, RetryConfig};

use super::Entry;

/// How to reach an S3-compatible store. Every option left `None` keeps what
/// the `AWS_*` environment variables say (and the client's default without
/// one).
///
/// ```
/// use weir_actors::location::{configure_s3_bucket, S3Options};
///
/// // A local MinIO or moto server, path-style, plain HTTP.
/// configure_s3_bucket(
///     "checkpoints",
///     S3Options {
///         endpoint: Some("http://127.0.0.1:9000".into()),
///         region: Some("us-east-1".into()),
///         access_key_id: Some("minio".into()),
///         secret_access_key: Some("minio123".into()),
///         path_style: Some(true),
///         ..S3Options::default()
///     },
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint URL (`http://127.0.0.1:9000`); AWS's for the region when unset.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` when unset anywhere).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// A session token, with temporary credentials.
    pub session_token: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`, what MinIO and most local
    /// servers need) rather than virtual-hosted ones (`bucket.endpoint/key`).
    pub path_style: Option<bool>,
    /// Allows plain `http://` endpoints (implied by an `http://` endpoint).
    pub allow_http: Option<bool>,
    /// Requests in flight at once per bucket.
    pub max_concurrent_requests: usize,
    /// Retries of a request that failed with a transient error.
    pub max_retries: usize,
    /// The time after which a failing request is not retried any more.
    pub retry_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            path_style: None,
            allow_http: None,
            max_concurrent_requests: 16,
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Default)]
struct Registry {
    defaults: S3Options,
    buckets: HashMap<String, S3Options>,
    clients: HashMap<String, Arc<dyn ObjectStore>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// Sets the options of every bucket without options of its own (the
/// configuration keys `s3.*`). Clients built earlier are rebuilt on next use.
pub fn configure_s3(options: S3Options) {
    if let Ok(mut registry) = registry().lock() {
        registry.defaults = options;
        registry.clients.clear();
    }
}

/// Sets the options of one bucket. Its client is rebuilt on next use.
pub fn configure_s3_bucket(bucket: &str, options: S3Options) {
    if let Ok(mut registry) = registry().lock() {
        registry.buckets.insert(bucket.to_string(), options);
        registry.clients.remove(bucket);
    }
}

fn build(bucket: &str, options: &S3Options) -> io::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &options.endpoint {
        builder = builder.with_endpoint(endpoint);
        if endpoint.starts_with("http://") {
            builder = builder.with_allow_http(true);
        }
    }
    if let Some(allow) = options.allow_http {
        builder = builder.with_allow_http(allow);
    }
    if let Some(region) = &options.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &options.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &options.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &options.session_token {
        builder = builder.with_token(token);
    }
    if let Some(path_style) = options.path_style {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    let store = builder
        .with_retry(RetryConfig {
            max_retries: options.max_retries,
            retry_timeout: options.retry_timeout,
            ..RetryConfig::default()
        })
        .build()
        .map_err(|e| {
            io::Error::other(format!("s3://{bucket}: cannot configure the client: {e}"))
        })?;
    Ok(Arc::new(LimitStore::new(
        store,
        options.max_concurrent_requests.max(1),
    )))
}

fn client(bucket: &str) -> io::Result<Arc<dyn ObjectStore>> {
    let mut registry = registry()
        .lock()
        .map_err(|_| io::Error::other("the object store registry is poisoned"))?;
    if let Some(client) = registry.clients.get(bucket) {
        return Ok(client.clone());
    }
    let options = registry
        .buckets
        .get(bucket)
        .unwrap_or(&registry.defaults)
        .clone();
    let client = build(bucket, &options)?;
    registry.clients.insert(bucket.to_string(), client.clone());
    Ok(client)
}

/// Whether this module serves `path` (an `s3://` URL).
pub(super) fn handles(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The bucket and key of an `s3://bucket/key` URL (empty segments dropped).
pub(super) fn parse(path: &Path) -> io::Result<(String, Key)> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {why}", path.display()),
        )
    };
    let text = path.to_str().ok_or_else(|| invalid("not UTF-8"))?;
    let rest = text
        .strip_prefix("s3://")
        .ok_or_else(|| invalid("not an s3:// URL"))?;
    let mut parts = rest.split('/').filter(|p| !p.is_empty() && *p != ".");
    let bucket = parts
        .next()
        .ok_or_else(|| invalid("no bucket (write s3://bucket/prefix)"))?;
    let mut segments = Vec::new();
    for part in parts {
        if part == ".." {
            return Err(invalid("`..` is not allowed in an object key"));
        }
        segments.push(
            object_store::path::PathPart::parse(part)
                .map_err(|e| invalid(&format!("bad key segment {part:?}: {e}")))?,
        );
    }
    Ok((bucket.to_string(), Key::from_iter(segments)))
}

fn run<F, T>(path: &Path, request: impl FnOnce(Arc<dyn ObjectStore>, Key) -> F) -> io::Result<T>
where
    F: std::future::Future<Output = Result<T, object_store::Error>> + Send + 'static,
    T: Send + 'static,
{
    let (bucket, key) = parse(path)?;
    let future = request(client(&bucket)?, key);
    crate::io_runtime::run(future)
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?
        .map_err(to_io)
}

fn to_io(error: object_store::Error) -> io::Error {
    let kind = match &error {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, error.to_string())
}

pub(super) fn read(path: &Path) -> io::Result<Vec<u8>> {
    run(path, |store, key| async move {
        let bytes = store.get(&key).await?.bytes().await?;
        Ok(bytes.to_vec())
    })
}

pub(super) fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let payload = PutPayload::from(bytes.to_vec());
    run(path, |store, key| async move {
        store.put(&key, payload).await.map(|_| ())
    })
}

pub(super) fn exists(path: &Path) -> io::Result<bool> {
    run(path, |store, key| async move {
        if !key.as_ref().is_empty() {
            match store.head(&key).await {
                Ok(_) => return Ok(true),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // A "directory": any object under the prefix.
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let mut under = store.list(prefix);
        match under.next().await {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(e),
            None => Ok(false),
        }
    })
}

pub(super) fn list(path: &Path) -> io::Result<Vec<Entry>> {
    run(path, |store, key| async move {
        let prefix = (!key.as_ref().is_empty()).then_some(&key);
        let listed = store.list_with_delimiter(prefix).await?;
        let name = |p: &Key| p.filename().map(str::to_string);
        let dirs = listed
            .common_prefixes
            .iter()
            .filter_map(name)
            .map(|name| Entry { name, is_dir: true });
        let files = listed
            .objects
            .iter()
            .filter_map(|o| name(&o.location))
            .map(|name| Entry {
                name,
                is_dir: false,
            });
        Ok(dirs.chain(files).collect())
    })
}

pub(super) fn remove_dir_all(path: &Path) -> io::Result<()> {
    run(path, |store, key| async move {
        if key.as_ref().is_empty() {
            return Err(object_store::Error::NotSupported {
                source: "refusing to delete a whole bucket".into(),
            });
        }
        let locations = store
            .list(Some(&key))
            .map(|meta| meta.map(|m| m.location))
            .boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

pub(super) fn remove_file(path: &Path) -> io::Result<()> {
    run(path, |store, key| async move { store.delete(&key).await })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_key() {
        let (bucket, key) = parse(Path::new("s3://ck/jobs//a/chk-1/_metadata")).unwrap();
        assert_eq!(
            (bucket.as_str(), key.as_ref()),
            ("ck", "jobs/a/chk-1/_metadata")
        );
        let (bucket, key) = parse(&Path::new("s3://ck").join("x")).unwrap();
        assert_eq!((bucket.as_str(), key.as_ref()), ("ck", "x"));
        assert!(parse(Path::new("s3://")).is_err());
        assert!(parse(Path::new("s3://b/a/../c")).is_err());
    }
}

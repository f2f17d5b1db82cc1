//! The registry of jobs a web server shows, and the savepoint requests
//! made through it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::JobControl;

/// The jobs a server shows (cheap to clone; clones share the jobs).
///
/// ```
/// use weir::web::Jobs;
///
/// let jobs = Jobs::new();
/// assert!(jobs.list().is_empty());
/// assert!(!jobs.writes_allowed());
/// ```
#[derive(Clone, Default)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    jobs: RwLock<Vec<JobControl>>,
    writes: AtomicBool,
    requests: Mutex<HashMap<String, Request>>,
    next_request: AtomicU64,
}

/// A savepoint or stop asked for over HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request {
    /// The job it is for.
    pub job_id: String,
    /// Where it stands.
    pub state: RequestState,
}

/// Where a savepoint request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RequestState {
    InProgress,
    Completed(String),
    Failed(String),
}

impl Jobs {
    /// An empty registry; writes are not allowed.
    pub fn new() -> Self {
        Jobs::default()
    }

    /// Allows (or forbids) savepoint, stop and cancel requests.
    pub fn allow_writes(self, allowed: bool) -> Self {
        self.inner.writes.store(allowed, Ordering::Relaxed);
        self
    }

    /// Whether savepoint, stop and cancel requests are answered.
    pub fn writes_allowed(&self) -> bool {
        self.inner.writes.load(Ordering::Relaxed)
    }

    /// Shows `job` (a [`crate::JobClient`] or a [`JobControl`]); it stays
    /// listed after it ends, as Flink lists completed jobs.
    pub fn add(&self, job: &JobControl) {
        if let Ok(mut jobs) = self.inner.jobs.write() {
            if !jobs.iter().any(|j| j.job_id() == job.job_id()) {
                jobs.push(job.clone());
            }
        }
    }

    /// Every job shown, in the order they were added.
    pub fn list(&self) -> Vec<JobControl> {
        self.inner
            .jobs
            .read()
            .map(|jobs| jobs.clone())
            .unwrap_or_default()
    }

    /// The job with this id.
    pub fn get(&self, job_id: &str) -> Option<JobControl> {
        self.inner
            .jobs
            .read()
            .ok()?
            .iter()
            .find(|j| j.job_id() == job_id)
            .cloned()
    }

    /// Registers a request for `job_id` and returns its id.
    pub(crate) fn new_request(&self, job_id: &str) -> String {
        let n = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        let id = format!("{job_id}-{n:04}");
        if let Ok(mut requests) = self.inner.requests.lock() {
            requests.insert(
                id.clone(),
                Request {
                    job_id: job_id.to_string(),
                    state: RequestState::InProgress,
                },
            );
        }
        id
    }

    /// Records how a request ended.
    pub(crate) fn finish_request(&self, id: &str, state: RequestState) {
        if let Ok(mut requests) = self.inner.requests.lock() {
            if let Some(request) = requests.get_mut(id) {
                request.state = state;
            }
        }
    }

    /// A request, if there is one of that id.
    pub(crate) fn request(&self, id: &str) -> Option<Request> {
        self.inner.requests.lock().ok()?.get(id).cloned()
    }
}

//! weir's I/O runtime: one tokio runtime with one worker thread, beside the
//! actix threads, that drives the connectors' connections (the PostgreSQL
//! sink, the NATS JetStream source and sink) and the object store client of
//! checkpoints on S3 (feature `s3`). Their clients need tokio's reactor, and
//! an actix thread must not nest a runtime.
//!
//! A subtask waits for an operation with [`run`]: the future runs on the
//! runtime's thread and the actor's thread blocks on a channel until it is
//! done, as it does on file I/O (it may itself be inside an executor, so it
//! does not run one). [`spawn`] starts one without waiting.

use std::future::Future;
use std::sync::OnceLock;

use crate::UserError;

/// The name of the runtime's worker thread.
const THREAD_NAME: &str = "weir-io";

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, UserError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(THREAD_NAME)
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start weir's I/O runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| e.clone().into())
}

/// A future started on the runtime, whose output a subtask collects
/// later (the thread that waits is not an executor: it blocks on a channel).
pub struct Task<O> {
    output: std::sync::mpsc::Receiver<O>,
}

impl<O> Task<O> {
    /// The task whose output comes through `output`.
    pub fn from_receiver(output: std::sync::mpsc::Receiver<O>) -> Self {
        Task { output }
    }

    /// The output if the task has ended; `Err` if it ended without one.
    pub fn poll(&self) -> Result<Option<O>, UserError> {
        match self.output.try_recv() {
            Ok(output) => Ok(Some(output)),
            Err(std::sync::mpsc::TryRecvError::Empty) => Ok(None),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(ended_abnormally()),
        }
    }

    /// Waits for the output.
    pub fn wait(self) -> Result<O, UserError> {
        self.output.recv().map_err(|_| ended_abnormally())
    }
}

fn ended_abnormally() -> UserError {
    "a connector task ended abnormally (it panicked)".into()
}

/// Starts `future` on the runtime without waiting for it.
pub fn spawn<F>(future: F) -> Result<Task<F::Output>, UserError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, output) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = sender.send(future.await);
    });
    Ok(Task { output })
}

/// Runs `future` on the runtime and waits for its output.
pub fn run<F>(future: F) -> Result<F::Output, UserError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if std::thread::current().name() == Some(THREAD_NAME) {
        // Waiting here would wait for this very thread: never.
        return Err(
            "weir's I/O runtime cannot wait for itself (run was called from a future on it)".into(),
        );
    }
    spawn(future)?.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_on_the_runtime_that_waits_for_the_runtime_gets_an_error_not_a_hang() {
        assert_eq!(run(async { 7 }).unwrap(), 7);
        let nested = run(async { run(async { 1 }).map_err(|e| e.to_string()) }).unwrap();
        let err = nested.unwrap_err();
        assert!(err.contains("cannot wait for itself"), "{err}");
    }
}

//! The runtime of the connectors (the PostgreSQL sink, the NATS JetStream
//! source and sink): one tokio runtime with one worker thread, beside the
//! actix threads, that drives the clients' connections. Their drivers need
//! tokio's reactor, and an actix thread must not nest a runtime.
//!
//! A subtask waits for an operation with [`run`]: the future runs on the
//! runtime's thread and the actor's thread blocks on a channel until it is
//! done, as it does on file I/O (it may itself be inside an executor, so it
//! does not run one). [`spawn`] starts one without waiting.

use std::future::Future;
use std::sync::OnceLock;

use weir_actors::UserError;

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static tokio::runtime::Runtime, UserError> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("weir-io")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start weir's I/O runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| e.clone().into())
}

/// A future started on the runtime, whose output a subtask collects
/// later (the thread that waits is not an executor: it blocks on a channel).
pub(crate) struct Task<O> {
    output: std::sync::mpsc::Receiver<O>,
}

impl<O> Task<O> {
    /// The task whose output comes through `output`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn from_receiver(output: std::sync::mpsc::Receiver<O>) -> Self {
        Task { output }
    }

    /// The output if the task has ended; `Err` if it ended without one.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn poll(&self) -> Result<Option<O>, UserError> {
        match self.output.try_recv() {
            Ok(output) => Ok(Some(output)),
            Err(std::sync::mpsc::TryRecvError::Empty) => Ok(None),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Err(ended_abnormally()),
        }
    }

    /// Waits for the output.
    pub(crate) fn wait(self) -> Result<O, UserError> {
        self.output.recv().map_err(|_| ended_abnormally())
    }
}

fn ended_abnormally() -> UserError {
    "a connector task ended abnormally (it panicked)".into()
}

/// Starts `future` on the runtime without waiting for it.
pub(crate) fn spawn<F>(future: F) -> Result<Task<F::Output>, UserError>
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
pub(crate) fn run<F>(future: F) -> Result<F::Output, UserError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn(future)?.wait()
}

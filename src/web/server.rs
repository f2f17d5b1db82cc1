//! weir's own web server, for job binaries: an actix-web server on a thread
//! (and actix System) of its own, serving [`super::scope`] at the root.
//! Several jobs of one process share one server per address
//! ([`shared_server`]).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};

use super::Jobs;
use crate::JobError;

/// The port a job binary's server listens on when none is given (Flink's
/// REST port).
pub const DEFAULT_PORT: u16 = 8081;

/// A running web server (stopped when dropped).
pub struct WebServer {
    address: SocketAddr,
    jobs: Jobs,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebServer {
    /// Where it listens (the port the system chose when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The jobs it shows.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Stops it and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let stopped = self.handle.stop(true);
        if let Some(thread) = self.thread.take() {
            futures::executor::block_on(stopped);
            let _ = thread.join();
        }
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `jobs` on `address` (port 0: any free port) until the returned
/// server is stopped or dropped.
pub fn serve(address: SocketAddr, jobs: Jobs) -> Result<WebServer, JobError> {
    let listener = TcpListener::bind(address).map_err(|e| {
        JobError::InvalidJob(format!(
            "the web server cannot listen on {address}: {e} (choose another port with --web-port)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| JobError::Runtime(format!("the web server's address: {e}")))?;
    let shown = jobs.clone();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("weir-web-{}", bound.port()))
        .spawn(move || {
            let system = actix_rt::System::new();
            let sender = handle_tx.clone();
            let started = system.block_on(async move {
                let server =
                    HttpServer::new(move || App::new().service(super::scope("", shown.clone())))
                        .workers(1)
                        .disable_signals()
                        .listen(listener)?
                        .run();
                let _ = sender.send(Ok(server.handle()));
                server.await
            });
            if let Err(e) = started {
                let _ = handle_tx.send(Err(e.to_string()));
            }
        })
        .map_err(|e| JobError::Runtime(format!("cannot start the web server's thread: {e}")))?;
    let handle = match handle_rx.recv() {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(JobError::Runtime(format!(
                "the web server on {bound} did not start: {e}"
            )));
        }
        Err(_) => {
            let _ = thread.join();
            return Err(JobError::Runtime(format!(
                "the web server on {bound} did not start"
            )));
        }
    };
    Ok(WebServer {
        address: bound,
        jobs,
        handle,
        thread: Some(thread),
    })
}

/// The server of this process on `address`, started on first use and kept
/// for the process's life: job binaries that run several jobs show them all
/// on one server. `allow_writes` applies to its registry from then on.
pub fn shared_server(address: SocketAddr, allow_writes: bool) -> Result<Jobs, JobError> {
    static SERVERS: OnceLock<Mutex<HashMap<SocketAddr, WebServer>>> = OnceLock::new();
    let servers = SERVERS.get_or_init(Mutex::default);
    let mut servers = servers
        .lock()
        .map_err(|_| JobError::Runtime("the web servers' registry is poisoned".into()))?;
    if let Some(server) = servers.get(&address) {
        return Ok(server.jobs().clone().allow_writes(allow_writes));
    }
    let server = serve(address, Jobs::new().allow_writes(allow_writes))?;
    let jobs = server.jobs().clone();
    tracing::info!(address = %server.address(), "web server listening");
    servers.insert(address, server);
    Ok(jobs)
}

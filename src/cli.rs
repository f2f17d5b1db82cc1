//! The standard flags of a job binary, in one line: `#[command(flatten)]`
//! a [`JobArgs`] into the binary's own clap parser (or parse it alone), then
//! [`JobArgs::configure`] the environment and run with
//! [`JobArgs::execute_blocking`], which also answers `--dump-plan`.
//!
//! | flag | configuration key |
//! |---|---|
//! | `--config FILE` | the file (else `WEIR_CONFIG`) |
//! | `--parallelism N` | `parallelism` |
//! | `--checkpoint-dir DIR` | `state.checkpoints_dir` |
//! | `--checkpoint-interval-ms MS` | `checkpoint.interval_ms` |
//! | `--resume-from PATH\|latest` | `restore.from` |
//! | `--allow-non-restored-state` | `restore.allow_non_restored_state` |
//! | `--allow-sink-rewind` | `sink.allow_rewind` |
//! | `--savepoint-dir DIR` | `state.savepoints_dir` |
//! | `--restart SPEC` | `restart.strategy` |
//! | `--state-backend NAME` (alias `--backend`) | `state.backend` |
//! | `--web-port PORT` | `web.port` (REST API, metrics and web page; see [`crate::web`]) |
//! | `--web-address IP` | `web.address` (default 127.0.0.1) |
//! | `--web-writes` | `web.writes` (savepoint, stop, cancel over HTTP) |
//! | `--dump-plan` | print the job's plan as JSON instead of running it |
//!
//! Flags beat the environment and the file; settings made in code beat flags.
//!
//! **Stopping.** A job run by [`JobArgs::execute_blocking`] (or
//! [`execute_until_signal`]) stops gracefully on SIGINT or SIGTERM: the first
//! signal stops it with a savepoint when a savepoint directory is configured,
//! else with a final checkpoint of its lineage (sinks commit what it covers),
//! and says on stderr where to resume; a second signal cancels it at once.
//! Without checkpointing the first signal cancels (there is nothing to resume
//! from). [`JobControl::stop`](crate::JobControl::stop) does the same from code.
//!
//! [`init_logging`] and [`write_lines`] are the rest of what a job binary
//! needs: logs on stderr (`RUST_LOG`, colours only on a terminal), and output
//! on stdout that ends quietly when its reader goes away (`| head`).
//!
//! ```
//! use clap::Parser;
//! use weir::cli::JobArgs;
//! use weir::StreamEnv;
//!
//! let args = JobArgs::parse_from(["job", "--parallelism", "3", "--restart", "none"]);
//! let env = StreamEnv::new();
//! args.configure(&env).unwrap();
//! assert_eq!(env.parallelism(), 3);
//! env.from_collection(vec![1, 2, 3]).uid("numbers").map(|x: i32| x * 2).uid("double").discard();
//! let result = args.execute_blocking(&env, "doubling").unwrap();
//! assert!(result.is_some());
//! ```

use std::io::{ErrorKind, IsTerminal, Write};
use std::path::PathBuf;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{ConfigError, Configuration};
use crate::{JobControl, JobError, JobResult, JobStatus, StreamEnv};

/// The standard flags of a job binary.
#[derive(Clone, Debug, Default, clap::Parser)]
#[command(about = None, long_about = None)]
pub struct JobArgs {
    /// Configuration file (weir.toml); default: the file WEIR_CONFIG names.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Default parallelism of operators.
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// Where checkpoints are written (turns checkpointing on).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<String>,
    /// Periodic checkpoint interval.
    #[arg(long, value_name = "MS")]
    pub checkpoint_interval_ms: Option<u64>,
    /// Start from a savepoint or retained checkpoint, or `latest`: the newest
    /// complete snapshot of this job's lineage in the checkpoint directory
    /// (checkpoint or savepoint); with none, the job starts fresh.
    #[arg(long, value_name = "PATH|latest")]
    pub resume_from: Option<String>,
    /// Drop state whose operator the job no longer has instead of failing.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// Let exactly-once sinks accept a restore behind what they committed
    /// (or output of another lineage): the output will hold duplicates.
    #[arg(long)]
    pub allow_sink_rewind: bool,
    /// Where savepoints go.
    #[arg(long, value_name = "DIR")]
    pub savepoint_dir: Option<String>,
    /// none, fixed-delay:ATTEMPTS:DELAY_MS, failure-rate:MAX:INTERVAL_MS:DELAY_MS or exponential:INITIAL_MS:MAX_MS.
    #[arg(long, value_name = "SPEC")]
    pub restart: Option<String>,
    /// State backend: heap (or rocksdb, in builds with the `rocksdb` feature).
    #[arg(long, visible_alias = "backend", value_name = "NAME")]
    pub state_backend: Option<String>,
    /// Print the job's plan (operators, uids, parallelism) as JSON and exit,
    /// for `weir check-restore --plan`.
    #[arg(long)]
    pub dump_plan: bool,
    /// Serve the REST API, Prometheus metrics and web page on this port
    /// while the job runs (0: any free port; see `weir::web`).
    #[arg(long, value_name = "PORT")]
    pub web_port: Option<u16>,
    /// The address the web server binds (default 127.0.0.1).
    #[arg(long, value_name = "IP")]
    pub web_address: Option<String>,
    /// Allow savepoint, stop and cancel over HTTP.
    #[arg(long)]
    pub web_writes: bool,
    /// No live progress line on the terminal (see `weir::progress`).
    #[arg(long)]
    pub no_progress: bool,
}

impl JobArgs {
    /// The configuration these flags give: the file (`--config`, else
    /// `WEIR_CONFIG` when the job is built) and the flags themselves.
    pub fn configuration(&self) -> Result<Configuration, ConfigError> {
        let mut config = Configuration::new();
        if let Some(path) = &self.config {
            config.load_file(path)?;
        }
        let mut set = |key: &str, value: Option<String>, flag: &str| -> Result<(), ConfigError> {
            match value {
                Some(value) => config.set(key, &value, flag).map(|_| ()),
                None => Ok(()),
            }
        };
        set(
            "parallelism",
            self.parallelism.map(|n| n.to_string()),
            "--parallelism",
        )?;
        set(
            "state.checkpoints_dir",
            self.checkpoint_dir.clone(),
            "--checkpoint-dir",
        )?;
        set(
            "checkpoint.interval_ms",
            self.checkpoint_interval_ms.map(|n| n.to_string()),
            "--checkpoint-interval-ms",
        )?;
        set("restore.from", self.resume_from.clone(), "--resume-from")?;
        set(
            "restore.allow_non_restored_state",
            self.allow_non_restored_state.then(|| "true".to_string()),
            "--allow-non-restored-state",
        )?;
        set(
            "sink.allow_rewind",
            self.allow_sink_rewind.then(|| "true".to_string()),
            "--allow-sink-rewind",
        )?;
        set(
            "state.savepoints_dir",
            self.savepoint_dir.clone(),
            "--savepoint-dir",
        )?;
        set("restart.strategy", self.restart.clone(), "--restart")?;
        set(
            "state.backend",
            self.state_backend.clone(),
            "--state-backend",
        )?;
        set(
            "web.port",
            self.web_port.map(|p| p.to_string()),
            "--web-port",
        )?;
        set("web.address", self.web_address.clone(), "--web-address")?;
        set(
            "web.writes",
            self.web_writes.then(|| "true".to_string()),
            "--web-writes",
        )?;
        set(
            "progress",
            self.no_progress.then(|| "false".to_string()),
            "--no-progress",
        )?;
        Ok(config)
    }

    /// A new environment configured by these flags (and the file), with the
    /// job's own `defaults` (key, value) below the file and the environment.
    ///
    /// ```
    /// use clap::Parser;
    /// let args = weir::cli::JobArgs::parse_from(["job"]);
    /// let env = args.environment(&[("parallelism", "2")]).unwrap();
    /// assert_eq!(env.parallelism(), 2);
    /// ```
    pub fn environment(&self, defaults: &[(&str, &str)]) -> Result<StreamEnv, ConfigError> {
        let mut config = Configuration::new();
        for (key, value) in defaults {
            config.set_default(key, value)?;
        }
        config.merge(&self.configuration()?);
        let env = StreamEnv::new();
        env.configure(&config);
        Ok(env)
    }

    /// Applies the flags (and the file) to `env`.
    pub fn configure(&self, env: &StreamEnv) -> Result<(), ConfigError> {
        env.configure(&self.configuration()?);
        Ok(())
    }

    /// Runs the job to its end; with `--dump-plan`, prints its plan as JSON
    /// on stdout instead and returns `None` (also when stdout's reader has
    /// gone; another failure to write is an error).
    pub fn execute_blocking(
        &self,
        env: &StreamEnv,
        job_name: &str,
    ) -> Result<Option<JobResult>, JobError> {
        if self.dump_plan {
            let plan = env.plan(job_name)?;
            let json = serde_json::to_string_pretty(&plan)
                .map_err(|e| JobError::Runtime(format!("cannot write the plan as JSON: {e}")))?;
            write_plan(&mut std::io::stdout().lock(), &json)?;
            return Ok(None);
        }
        execute_until_signal(env, job_name).map(Some)
    }

    /// [`execute_blocking`](Self::execute_blocking), or with `stop_after`,
    /// runs the job that long and stops it with a savepoint (into the
    /// configured savepoint directory), returning its path (`None` if the
    /// job had ended by then). `Ok(None)` for `--dump-plan`.
    pub fn execute_or_stop_with_savepoint(
        &self,
        env: &StreamEnv,
        job_name: &str,
        stop_after: Option<std::time::Duration>,
    ) -> Result<Option<(JobResult, Option<PathBuf>)>, JobError> {
        let Some(after) = stop_after else {
            return self
                .execute_blocking(env, job_name)
                .map(|r| r.map(|r| (r, None)));
        };
        if self.dump_plan {
            return Err(JobError::InvalidJob(
                "--dump-plan and stopping with a savepoint do not go together".into(),
            ));
        }
        futures::executor::block_on(async {
            let (mut client, progress) = env.start_shown(job_name, false, true).await?;
            std::thread::sleep(after);
            let savepoint = if client.status().is_terminal() {
                None
            } else {
                Some(client.stop_with_savepoint(None).await?)
            };
            let result = client.wait().await;
            if let Some(progress) = progress {
                progress.finish();
            }
            Ok(Some((result?, savepoint)))
        })
    }
}

/// Runs the job to its end, stopping it gracefully on SIGINT or SIGTERM (see
/// the module docs): the first signal stops it with a savepoint or a final
/// checkpoint and the job ends as finished; a second one cancels it. Call it
/// from a plain thread (not one that runs an actix System).
pub fn execute_until_signal(env: &StreamEnv, job_name: &str) -> Result<JobResult, JobError> {
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|e| JobError::Runtime(format!("cannot handle SIGINT and SIGTERM: {e}")))?;
    let handle = signals.handle();
    let outcome = futures::executor::block_on(async {
        let (mut client, progress) = env.start_shown(job_name, false, true).await?;
        let control = client.control();
        let watcher = std::thread::Builder::new()
            .name("weir-signals".into())
            .spawn(move || {
                let mut stopping = false;
                for signal in signals.forever() {
                    let name = if signal == SIGINT {
                        "SIGINT"
                    } else {
                        "SIGTERM"
                    };
                    if stopping {
                        crate::progress::suspend(|| {
                            eprintln!("{name} again: canceling job `{}`", control.name())
                        });
                        control.cancel();
                        continue;
                    }
                    stopping = true;
                    crate::progress::suspend(|| {
                        eprintln!(
                            "{name}: stopping job `{}` (a second signal cancels it)",
                            control.name()
                        )
                    });
                    let control = control.clone();
                    std::thread::spawn(move || stop(&control));
                }
            });
        let outcome = client.wait().await;
        if let Some(progress) = progress {
            progress.finish();
        }
        handle.close();
        if let Ok(watcher) = watcher {
            let _ = watcher.join();
        }
        outcome
    });
    outcome
}

/// Stops the job gracefully and says where it resumes. A job that is
/// restarting is asked again when it runs; a job whose savepoint fails stops
/// with a checkpoint instead; a stop that fails altogether leaves the job
/// running (a second signal cancels it).
fn stop(control: &JobControl) {
    let name = control.name();
    let mut attempts = 0;
    let outcome = loop {
        match futures::executor::block_on(control.stop()) {
            Err(_) if control.status() == JobStatus::Restarting && attempts < 600 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) if !control.status().is_terminal() => {
                eprintln!("job `{name}`: {e}; stopping with a checkpoint instead");
                break futures::executor::block_on(control.stop_with_checkpoint()).map(Some);
            }
            outcome => break outcome,
        }
    };
    match outcome {
        Ok(Some(at)) if at.starts_with("memory:") => eprintln!(
            "job `{name}` stopped with checkpoint {at}: its checkpoints are in memory, so nothing \
             outlives the process to resume from (set a checkpoint directory)"
        ),
        Ok(Some(at)) => eprintln!(
            "job `{name}` stopped at {at}; resume it with --resume-from latest (or --resume-from {at})"
        ),
        Ok(None) => eprintln!(
            "job `{name}` canceled: it has no checkpointing, so there is nothing to resume from"
        ),
        Err(e) => eprintln!(
            "job `{name}`: the stop failed ({e}); the job goes on, a second signal cancels it"
        ),
    }
}

/// The `main` of a job binary, in one line: logs to stderr
/// ([`init_logging`]), parses the flags `A`, runs `run` with them and says
/// an error once (`error: ...`, exit status 1).
///
/// ```no_run
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Args {
///     #[command(flatten)]
///     job: weir::cli::JobArgs,
/// }
///
/// fn run(args: Args) -> Result<(), String> {
///     let env = args.job.environment(&[]).map_err(|e| e.to_string())?;
///     env.from_collection(vec![1, 2, 3]).uid("numbers").print();
///     args.job.execute_blocking(&env, "numbers").map_err(|e| e.to_string())?;
///     Ok(())
/// }
///
/// fn main() -> std::process::ExitCode {
///     weir::cli::main(run)
/// }
/// ```
pub fn main<A: clap::Parser, E: std::fmt::Display>(
    run: impl FnOnce(A) -> Result<(), E>,
) -> std::process::ExitCode {
    init_logging();
    match run(A::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`), in colour only
/// when stderr is a terminal. For job binaries; call it once.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::progress::SuspendingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Writes `lines` to stdout, one per line. A reader that went away (`| head`)
/// ends the output quietly; another failure is an error.
pub fn write_lines<D: std::fmt::Display>(lines: impl IntoIterator<Item = D>) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    let written = lines
        .into_iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(format!("cannot write to stdout: {e}")),
        _ => Ok(()),
    }
}

/// Writes `items` to stdout as JSON lines, one per item (see
/// [`write_lines`]); an item that does not encode is an error naming it.
pub fn write_json_lines<T: serde::Serialize + std::fmt::Debug>(items: &[T]) -> Result<(), String> {
    let lines = items
        .iter()
        .map(|item| serde_json::to_string(item).map_err(|e| format!("cannot encode {item:?}: {e}")))
        .collect::<Result<Vec<String>, String>>()?;
    write_lines(lines)
}

/// Writes the plan's `json` and a newline to `out`; a closed pipe
/// (`--dump-plan | head`) is not an error.
fn write_plan(out: &mut impl Write, json: &str) -> Result<(), JobError> {
    match writeln!(out, "{json}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(JobError::Runtime(format!(
            "cannot write the plan to standard output: {e}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose every write fails with `0`.
    struct Failing(ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _bytes: &[u8]) -> std::io::Result<usize> {
            Err(self.0.into())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_plan_written_into_a_closed_pipe_is_not_an_error_but_other_failures_are() {
        write_plan(&mut Failing(ErrorKind::BrokenPipe), "{}").unwrap();
        let err = write_plan(&mut Failing(ErrorKind::PermissionDenied), "{}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot write the plan to standard output"),
            "{err}"
        );
        let mut written = Vec::new();
        write_plan(&mut written, "{\"job\":\"j\"}").unwrap();
        assert_eq!(written, b"{\"job\":\"j\"}\n");
    }
}

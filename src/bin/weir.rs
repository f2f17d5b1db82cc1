//! The `weir` command: looks at retained checkpoints and savepoints.
//!
//! ```text
//! weir checkpoints DIR [--format text|json]   list the snapshots under DIR
//! weir inspect PATH [--format text|json]      one snapshot's operators and states
//! weir check-restore PATH --plan FILE         whether a snapshot restores onto a job
//! weir query PATH --uid U (--state S | --timers) (--key JSON | --all) [--format text|json]
//!                                             one keyed state's entries, as JSON
//! weir list [--address HOST:PORT]             the jobs a running server shows
//! weir savepoint JOB [DIR]                    trigger a savepoint of a running job
//! weir stop JOB [--savepoint-dir DIR]         stop a running job with a savepoint
//! weir cancel JOB                             cancel a running job
//! ```
//!
//! DIR and PATH may be `s3://bucket/prefix` URLs (built with the cargo feature
//! `s3`): the bucket is reached with the `[s3]` settings of `WEIR_S3_*` and
//! of the file `WEIR_CONFIG` names, and the `AWS_*` variables.
//!
//! `list`, `savepoint`, `stop` and `cancel` are clients of the REST API a job
//! serves with `--web-port` (default address 127.0.0.1:8081; writes need
//! `--web-writes` on the job's side).
//!
//! The work is done by [`weir::inspect`]; this file parses flags, prints, and
//! turns errors into `error: ...` on stderr with exit status 1. Output whose
//! reader has gone (`weir checkpoints DIR | head -1`) is not an error: the
//! exit status is what it would have been.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Looks at weir's retained checkpoints and savepoints, and talks to running jobs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the checkpoints and savepoints under a directory.
    ///
    /// DIR may be a checkpoint directory (holding job directories), a job's
    /// directory (holding chk-<n>), a savepoint directory or one snapshot.
    /// Each is listed with its id, completion time, size and operators, from
    /// its _metadata alone. Exits with 1 if a snapshot cannot be read (the
    /// others are still listed) or none is found.
    Checkpoints {
        /// The directory to look in (two levels deep).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Shows a checkpoint's or savepoint's operators and their states.
    ///
    /// For each operator: uid, name, parallelism, max parallelism, and per
    /// state its kind, number of keys (or entries) and bytes; and the bytes
    /// of in-flight records. Keyed states with a time to live also show
    /// their TTL settings and live and expired entries (processing time:
    /// expired as of now; event time: as of the watermark the snapshot
    /// records, if any). Every state file is read and its checksum
    /// verified: a damaged snapshot exits with 1.
    Inspect {
        /// The snapshot directory (`.../chk-<n>` or `.../savepoint-<job>-<n>`).
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Checks, without starting anything, whether a savepoint or retained
    /// checkpoint restores onto a job.
    ///
    /// The job's plan is the JSON its binary prints with `--dump-plan`. Per
    /// uid: matched, rescaled, new (starts empty), missing (state without an
    /// operator), max parallelism changed, or state type mismatch. Exits with
    /// 1 if the restore is not possible.
    CheckRestore {
        /// The snapshot directory (`.../chk-<n>` or `.../savepoint-<job>-<n>`).
        path: PathBuf,
        /// The job's plan, as `--dump-plan` writes it.
        #[arg(long)]
        plan: PathBuf,
        /// Drop state whose uid the job does not have, instead of failing.
        #[arg(long)]
        allow_non_restored_state: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Prints the entries of one keyed state of a checkpoint or savepoint.
    ///
    /// Keys, map keys and values print as JSON, as serde writes the job's
    /// types, without the job's code: `key -> value` per key (map state:
    /// `key / user_key -> value` per entry; list state: the value is an
    /// array), or with `--format json` one object per line,
    /// `{"key":K,"value":V}` (map state: `{"key":K,"user_key":UK,"value":V}`).
    /// With `--timers`, the operator's timers instead. Values of a state with
    /// a time to live print without their expiries. Reads savepoints and
    /// heap checkpoints; an incremental RocksDB checkpoint's keyed state is
    /// the database's own files and is an error.
    Query {
        /// The snapshot directory (`.../chk-<n>` or `.../savepoint-<job>-<n>`).
        path: PathBuf,
        /// The operator's uid.
        #[arg(long)]
        uid: String,
        /// The keyed state's name.
        #[arg(long, required_unless_present = "timers", conflicts_with = "timers")]
        state: Option<String>,
        /// The operator's timers instead of a state.
        #[arg(long)]
        timers: bool,
        /// Only this key, as JSON (`42`, `"ann"`, `[1,"a"]`); text that is not
        /// JSON is taken as a string.
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        key: Option<String>,
        /// Every key.
        #[arg(long)]
        all: bool,
        /// Output format: `text` (`key -> value`) or `json` (one object per line).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Lists the jobs a running weir web server shows (id, name, status).
    List {
        /// The server (a job run with `--web-port`).
        #[arg(long, default_value = DEFAULT_ADDRESS)]
        address: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Triggers a savepoint of a running job and waits for it; prints its path.
    Savepoint {
        /// The job's id (`weir list`).
        job: String,
        /// Where the savepoint goes (default: the job's savepoint directory).
        dir: Option<String>,
        /// The server.
        #[arg(long, default_value = DEFAULT_ADDRESS)]
        address: String,
    },
    /// Stops a running job with a savepoint and waits for it; prints its path.
    Stop {
        /// The job's id (`weir list`).
        job: String,
        /// Where the savepoint goes (default: the job's savepoint directory).
        #[arg(long, value_name = "DIR")]
        savepoint_dir: Option<String>,
        /// The server.
        #[arg(long, default_value = DEFAULT_ADDRESS)]
        address: String,
    },
    /// Cancels a running job.
    Cancel {
        /// The job's id (`weir list`).
        job: String,
        /// The server.
        #[arg(long, default_value = DEFAULT_ADDRESS)]
        address: String,
    },
}

/// Where `list`, `savepoint`, `stop` and `cancel` look by default.
const DEFAULT_ADDRESS: &str = "127.0.0.1:8081";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned tables for people.
    Text,
    /// JSON for machines.
    Json,
}

/// The `[s3]` settings of the environment (`WEIR_S3_*`) and of the file
/// `WEIR_CONFIG` names, for snapshots in a bucket (`AWS_*` variables fill
/// what they leave unset).
fn install_s3_settings() -> Result<(), String> {
    let mut config = weir::config::Configuration::new();
    config.load_file_from_env().map_err(|e| e.to_string())?;
    config.load_env().map_err(|e| e.to_string())?;
    config.install_s3_settings().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = install_s3_settings() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Checkpoints { dir, format } => checkpoints(&dir, format),
        Command::Inspect { path, format } => inspect(&path, format),
        Command::CheckRestore {
            path,
            plan,
            allow_non_restored_state,
            format,
        } => check_restore(&path, &plan, allow_non_restored_state, format),
        Command::Query {
            path,
            uid,
            state,
            timers: _,
            key,
            all: _,
            format,
        } => query(&path, &uid, state.as_deref(), key.as_deref(), format),
        Command::List { address, format } => list(&address, format),
        Command::Savepoint { job, dir, address } => {
            savepoint(&address, &job, "savepoints", "target-directory", dir)
        }
        Command::Stop {
            job,
            savepoint_dir,
            address,
        } => savepoint(&address, &job, "stop", "targetDirectory", savepoint_dir),
        Command::Cancel { job, address } => cancel(&address, &job),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn list(address: &str, format: Format) -> Result<ExitCode, String> {
    let overview = call(address, "GET", "/jobs/overview", None)?;
    let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&overview).map_err(|e| e.to_string())? + "\n",
        Format::Text if jobs.is_empty() => "no jobs\n".to_string(),
        Format::Text => {
            let mut text = format!(
                "{:<18} {:<11} {:>10}  {}\n",
                "ID", "STATUS", "SECONDS", "NAME"
            );
            for job in &jobs {
                text += &format!(
                    "{:<18} {:<11} {:>10}  {}\n",
                    job["jid"].as_str().unwrap_or("?"),
                    job["state"].as_str().unwrap_or("?"),
                    job["duration"].as_i64().unwrap_or(0) / 1000,
                    job["name"].as_str().unwrap_or("?"),
                );
            }
            text
        }
    };
    write_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn call(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, String> {
    weir::web::client::call(address, method, path, body).map_err(|e| e.to_string())
}

/// Triggers a savepoint (`endpoint` `savepoints`) or a stop with one
/// (`stop`) and waits until it completes; prints where it is.
fn savepoint(
    address: &str,
    job: &str,
    endpoint: &str,
    dir_key: &str,
    dir: Option<String>,
) -> Result<ExitCode, String> {
    let mut body = serde_json::Map::new();
    if let Some(dir) = dir {
        body.insert(dir_key.to_string(), serde_json::Value::String(dir));
    }
    let started = call(
        address,
        "POST",
        &format!("/jobs/{job}/{endpoint}"),
        Some(&serde_json::Value::Object(body)),
    )?;
    let request = started["request-id"]
        .as_str()
        .ok_or_else(|| format!("{address} did not give a request id: {started}"))?
        .to_string();
    // A savepoint of a large state takes a while; a stuck one gives up
    // after ten minutes (the job's own checkpoint timeout ends it sooner).
    for _ in 0..3000 {
        let status = call(
            address,
            "GET",
            &format!("/jobs/{job}/savepoints/{request}"),
            None,
        )?;
        if status["status"]["id"] == "COMPLETED" {
            let operation = &status["operation"];
            return match operation["location"].as_str() {
                Some(location) => {
                    write_out(&format!("{location}\n"))?;
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(format!(
                    "the savepoint of job {job} failed: {}",
                    operation["failure-cause"]["stack-trace"]
                        .as_str()
                        .unwrap_or("no reason given")
                )),
            };
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Err(format!(
        "the savepoint of job {job} did not complete within ten minutes (request {request})"
    ))
}

fn cancel(address: &str, job: &str) -> Result<ExitCode, String> {
    call(address, "PATCH", &format!("/jobs/{job}?mode=cancel"), None)?;
    write_out(&format!("cancel of job {job} requested\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn checkpoints(dir: &std::path::Path, format: Format) -> Result<ExitCode, String> {
    let listing = weir::inspect::list_checkpoints(dir).map_err(|e| e.to_string())?;
    print(&listing, format)?;
    for problem in &listing.problems {
        eprintln!("error: {problem}");
    }
    Ok(if listing.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn inspect(path: &std::path::Path, format: Format) -> Result<ExitCode, String> {
    let report = weir::inspect::inspect(path).map_err(|e| e.to_string())?;
    print(&report, format)?;
    Ok(ExitCode::SUCCESS)
}

fn check_restore(
    path: &std::path::Path,
    plan: &std::path::Path,
    allow_non_restored_state: bool,
    format: Format,
) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(plan)
        .map_err(|e| format!("cannot read the plan {}: {e}", plan.display()))?;
    let plan: weir::plan::Plan = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a job plan (as `--dump-plan` writes it): {e}",
            plan.display()
        )
    })?;
    let check = weir::plan::check_restore_dir(path, &plan, allow_non_restored_state)?;
    let text = match format {
        Format::Text => format!("{check}\n"),
        Format::Json => serde_json::to_string_pretty(&check).map_err(|e| e.to_string())? + "\n",
    };
    write_out(&text)?;
    Ok(if check.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn query(
    path: &std::path::Path,
    uid: &str,
    state: Option<&str>,
    key: Option<&str>,
    format: Format,
) -> Result<ExitCode, String> {
    use weir::inspect::KeySelection;
    let keys = match key {
        None => KeySelection::All,
        Some(text) => KeySelection::Key(
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text)),
        ),
    };
    let text = match state {
        Some(state) => {
            let rows = weir::inspect::query_keyed_state(path, uid, state, &keys)
                .map_err(|e| e.to_string())?;
            lines(&rows, format)?
        }
        None => {
            let rows = weir::inspect::query_timers(path, uid, &keys).map_err(|e| e.to_string())?;
            lines(&rows, format)?
        }
    };
    write_out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// One line per row: its text, or its JSON.
fn lines<R: Serialize + std::fmt::Display>(rows: &[R], format: Format) -> Result<String, String> {
    let mut text = String::new();
    for row in rows {
        match format {
            Format::Text => text.push_str(&row.to_string()),
            Format::Json => text.push_str(&serde_json::to_string(row).map_err(|e| e.to_string())?),
        }
        text.push('\n');
    }
    Ok(text)
}

fn print(value: &(impl Serialize + std::fmt::Display), format: Format) -> Result<(), String> {
    let text = match format {
        Format::Text => value.to_string(),
        Format::Json => serde_json::to_string_pretty(value).map_err(|e| e.to_string())? + "\n",
    };
    write_out(&text)
}

/// Writes `text` to standard output (`print!` would panic when it cannot).
fn write_out(text: &str) -> Result<(), String> {
    write_to(&mut std::io::stdout().lock(), text)
}

/// Writes `text` to `out`. A closed pipe (the reader has all it wants) is
/// not an error; any other failure is.
fn write_to(out: &mut impl Write, text: &str) -> Result<(), String> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => {
            Err(format!("cannot write to standard output: {e}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that fails with `kind` once it has taken `room` bytes.
    struct Failing {
        kind: ErrorKind,
        room: usize,
    }

    impl Write for Failing {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(self.kind.into());
            }
            let n = bytes.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_not_an_error_but_other_write_failures_are() {
        let text = "KIND  ID\ncheckpoint  1\n";
        for room in [0, 4] {
            let mut closed = Failing {
                kind: ErrorKind::BrokenPipe,
                room,
            };
            assert_eq!(write_to(&mut closed, text), Ok(()));
        }
        let mut full = Failing {
            kind: ErrorKind::StorageFull,
            room: 4,
        };
        let err = write_to(&mut full, text).unwrap_err();
        assert!(
            err.starts_with("cannot write to standard output: "),
            "{err}"
        );
        let mut fine = Vec::new();
        write_to(&mut fine, text).unwrap();
        assert_eq!(fine, text.as_bytes());
    }
}

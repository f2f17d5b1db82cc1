//! The `weir` command: looks at retained checkpoints and savepoints.
//!
//! ```text
//! weir checkpoints DIR [--format text|json]   list the snapshots under DIR
//! weir inspect PATH [--format text|json]      one snapshot's operators and states
//! ```
//!
//! The work is done by [`weir::inspect`]; this file parses flags, prints, and
//! turns errors into `error: ...` on stderr with exit status 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Looks at weir's retained checkpoints and savepoints"
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
    /// of in-flight records. Every state file is read and its checksum
    /// verified: a damaged snapshot exits with 1.
    Inspect {
        /// The snapshot directory (`.../chk-<n>` or `.../savepoint-<job>-<n>`).
        path: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned tables for people.
    Text,
    /// JSON for machines.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Checkpoints { dir, format } => checkpoints(&dir, format),
        Command::Inspect { path, format } => inspect(&path, format),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
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

fn print(value: &(impl Serialize + std::fmt::Display), format: Format) -> Result<(), String> {
    match format {
        Format::Text => print!("{value}"),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
        ),
    }
    Ok(())
}

//! # Word count with keyed state
//!
//! Counts the words of a text file and prints each word with its final count,
//! as `word<TAB>count`, one per line, sorted by word.
//!
//! What it shows:
//! - a non-parallel source (`read_text_file`: one reader) feeding a tokenizer
//!   that runs with the job's parallelism (2): the lines are dealt round robin;
//! - `key_by(word)`: every occurrence of a word reaches the same subtask of the
//!   next operator, which keeps the word's count in keyed state;
//! - `sum`: a rolling aggregation that emits the word's running count for every
//!   occurrence (`("weir", 1)`, `("weir", 2)`, ...), as Flink's keyed `sum`;
//! - `collect()`: the rolling counts are gathered in memory; after the job, the
//!   largest count per word is its final count.
//!
//! Words are the maximal runs of alphanumeric characters of a line, lower-cased
//! (`"Weir's"` is `weir` and `s`).
//!
//! ```text
//! cargo run --example word_count
//! cargo run --example word_count -- --input some/other.txt
//! RUST_LOG=info cargo run --example word_count
//! ```
//!
//! Logs go to stderr (`RUST_LOG`, default `warn`); an error is printed as
//! `error: ...` and the exit code is 1. `tests/examples_output.rs` runs the same
//! [`word_counts`] pipeline on the bundled sample and snapshots its output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use weir::{DataStream, StreamEnv};

/// The bundled sample text.
pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample.txt");

/// Counts the words of a text file.
#[derive(Parser)]
struct Args {
    /// The text file to read (default: the bundled sample).
    #[arg(long, value_name = "FILE", default_value = SAMPLE)]
    input: PathBuf,
    /// The standard job flags (parallelism, checkpoints, configuration, ...).
    #[command(flatten)]
    job: weir::cli::JobArgs,
}

/// The lower-cased words of `line`: its maximal runs of alphanumeric characters.
pub fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Declares the job on `env`: the running count of every word of `input`,
/// one `(word, count so far)` per occurrence.
pub fn word_counts(env: &StreamEnv, input: &Path) -> DataStream<(String, u64)> {
    env.read_text_file(input)
        .flat_map(|line: String| words(&line))
        .name("Tokenize")
        .key_by(|word: &String| word.clone())
        .sum(|_word: &String| 1u64)
        .name("Count")
}

/// The final count of every word: the largest of its running counts.
pub fn final_counts(running: Vec<(String, u64)>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (word, count) in running {
        let entry = counts.entry(word).or_insert(0);
        *entry = count.max(*entry);
    }
    counts
}

/// The output lines, `word<TAB>count`, sorted by word.
pub fn lines(counts: &BTreeMap<String, u64>) -> Vec<String> {
    counts
        .iter()
        .map(|(word, count)| format!("{word}\t{count}"))
        .collect()
}

fn run(args: Args) -> Result<(), String> {
    let args = &args;
    let env = args
        .job
        .environment(&[("parallelism", "2")])
        .map_err(|e| e.to_string())?;
    let running = word_counts(&env, &args.input).collect();
    let Some(result) = args
        .job
        .execute_blocking(&env, "word-count")
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // --dump-plan
    };
    tracing::info!(duration = ?result.duration, "job finished");

    let counts = final_counts(running.take());
    weir::cli::write_lines(lines(&counts))
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

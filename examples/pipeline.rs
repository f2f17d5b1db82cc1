//! # A stateless pipeline: the words of a text file
//!
//! Reads a text file line by line, splits every line into lower-cased words,
//! drops a few common stop words and prints each remaining word with its length,
//! as `"weir (4)"`.
//!
//! What it shows:
//! - a non-parallel source (`read_text_file`: one reader) chained with the
//!   tokenizer, both in one subtask (`set_parallelism(1)` on the tokenizer);
//! - `rebalance()` spreading the words round-robin over the job's parallelism
//!   (2), where the filter, the map and the print sink run chained, two subtasks
//!   side by side;
//! - `print()`: every line starts with the 1-based subtask that printed it
//!   (`1> ` or `2> `), so the two subtasks' lines interleave in no fixed order;
//! - tracing: the engine logs through `tracing`; `RUST_LOG=info` shows the job's
//!   events on stderr, `RUST_LOG=weir_actors=debug` every subtask's as well.
//!
//! ```text
//! cargo run --example pipeline
//! cargo run --example pipeline -- --input some/other.txt
//! RUST_LOG=info cargo run --example pipeline
//! ```
//!
//! `tests/pipeline_output.rs` runs the same [`word_lengths`] pipeline into a
//! collecting sink and snapshots its (sorted) output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use weir::{DataStream, StreamEnv};

/// The bundled sample text.
pub const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/sample.txt");

/// Words too common to be worth printing.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "as", "at", "by", "for", "in", "is", "it", "of", "on", "or", "the", "to",
];

/// Prints the words of a text file with their lengths.
#[derive(Parser)]
struct Args {
    /// The text file to read (default: the bundled sample).
    #[arg(long, value_name = "FILE", default_value = SAMPLE)]
    input: PathBuf,
}

/// The lower-cased words of `line`: its maximal runs of alphanumeric characters.
pub fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Declares the pipeline on `env`: every word of `input` that is not a stop
/// word, as `"{word} ({length})"`.
pub fn word_lengths(env: &StreamEnv, input: &Path) -> DataStream<String> {
    env.read_text_file(input)
        .flat_map(|line: String| words(&line))
        .name("Tokenize")
        .set_parallelism(1)
        .rebalance()
        .filter(|word: &String| !STOP_WORDS.contains(&word.as_str()))
        .name("Drop stop words")
        .map(|word: String| format!("{word} ({})", word.chars().count()))
        .name("Describe")
}

fn main() -> ExitCode {
    weir::cli::main(|args: Args| {
        let env = StreamEnv::with_parallelism(2);
        word_lengths(&env, &args.input).print();
        let result = env.execute_blocking("pipeline")?;
        eprintln!(
            "job `{}` finished in {:.1?}",
            result.job_name, result.duration
        );
        Ok::<_, weir::JobError>(())
    })
}

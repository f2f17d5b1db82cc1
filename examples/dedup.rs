//! # De-duplication with event-time state TTL
//!
//! Reads events and prints each one whose id was not seen in the last
//! `--ttl-ms` (default 60 000) of event time: the classic use of state
//! time-to-live. Per id, the job keeps one `ValueState<()>` ("seen") with an
//! event-time [`TtlConfig`]: the state of an id expires `ttl` after the last
//! event of that id, by the watermark, and is then gone for good (read, swept
//! or dropped from the next full snapshot), so the state holds only the ids of
//! the last `ttl` and does not grow with the ids ever seen.
//!
//! The input is CSV, one event per line, `id,timestamp_ms`, sorted by
//! timestamp (milliseconds since the epoch); blank lines and lines starting
//! with `#` are skipped. A malformed line, or one whose timestamp goes back, is
//! an error naming the file and the line. Each event emitted is printed to
//! stdout as one JSON line, `{"id":"...","timestamp_ms":N}` (events of
//! different ids in no fixed order); logs go to stderr.
//!
//! What it shows:
//! - a non-parallel text source chained with a parser ([`ParseLines`]) and the timestamp
//!   assigner, with punctuated watermarks equal to each event's timestamp
//!   (emitted after the event), so the result does not depend on batching;
//! - `key_by(id)` into a [`KeyedProcessFunction`] (parallelism from
//!   `--parallelism`, default 2) whose state has an event-time TTL,
//!   [`TtlUpdate::OnCreateAndWrite`] and [`TtlVisibility::NeverReturnExpired`]:
//!   for each event, if the id's state is absent or expired the event is
//!   emitted; then the state is written, so every event of an id restarts
//!   its time to live.
//!
//! An event is a duplicate when an event of its id came less than `ttl`
//! earlier *as the watermark sees it*: the state written at `t` expires once
//! `t + ttl <= watermark`, and the watermark when an event is processed is the
//! timestamp of the event before it in the file.
//!
//! ```text
//! cargo run --example dedup
//! cargo run --example dedup -- --input some/events.csv --ttl-ms 5000
//! ```
//!
//! `tests/examples_output.rs` runs the same [`unique_events`] pipeline on the
//! bundled events and snapshots the output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::source::ParseLines;
use weir::state::ttl::{TtlConfig, TtlTime, TtlUpdate, TtlVisibility};
use weir::state::ValueStateDescriptor;
use weir::time::WatermarkStrategy;
use weir::{
    Collector, DataStream, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError,
};

/// The bundled events.
pub const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/events.csv");

/// How long an id is remembered by default (ms of event time).
pub const DEFAULT_TTL_MS: u64 = 60_000;

/// Prints each event whose id was not seen within the time to live.
#[derive(Parser)]
struct Args {
    /// CSV of events, `id,timestamp_ms`, sorted by timestamp (default: the
    /// bundled sample).
    #[arg(long, value_name = "FILE", default_value = EVENTS)]
    input: PathBuf,
    /// How long an id is remembered after its last event, in ms of event time.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_TTL_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    ttl_ms: u64,
    /// The standard job flags (parallelism, checkpoints, configuration, ...).
    #[command(flatten)]
    job: weir::cli::JobArgs,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What identifies duplicates.
    pub id: String,
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
}

/// Parses one CSV line, `id,timestamp_ms`.
pub fn parse_event(line: &str) -> Result<Event, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [id, timestamp_ms] = fields[..] else {
        return Err(format!(
            "expected 2 fields `id,timestamp_ms`, found {}",
            fields.len()
        ));
    };
    if id.is_empty() {
        return Err("the id is empty".into());
    }
    let timestamp_ms = timestamp_ms
        .parse::<i64>()
        .map_err(|e| format!("bad timestamp `{timestamp_ms}`: {e}"))?;
    Ok(Event {
        id: id.to_string(),
        timestamp_ms,
    })
}

/// Emits the first event of an id, and the first after its state expired.
#[derive(Clone)]
pub struct Deduplicate {
    seen: ValueStateDescriptor<()>,
}

impl Deduplicate {
    /// Remembers an id for `ttl` of event time after its last event.
    pub fn new(ttl: Duration) -> Self {
        let ttl = TtlConfig::new(ttl)
            .time(TtlTime::EventTime)
            .update_type(TtlUpdate::OnCreateAndWrite)
            .visibility(TtlVisibility::NeverReturnExpired);
        Deduplicate {
            seen: ValueStateDescriptor::new("seen").with_ttl(ttl),
        }
    }
}

impl Lifecycle for Deduplicate {}

impl KeyedProcessFunction<String, Event, Event> for Deduplicate {
    fn process_element(
        &mut self,
        event: Event,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Event>,
    ) -> Result<(), UserError> {
        if self.seen.value(ctx)?.is_none() {
            out.collect(event);
        }
        self.seen.update(ctx, ())?;
        Ok(())
    }
}

/// Declares the job on `env`: the events of `input` whose id was not seen
/// within `ttl`. The de-duplicator runs at the environment's parallelism.
pub fn unique_events(env: &StreamEnv, input: &Path, ttl: Duration) -> DataStream<Event> {
    env.read_text_file(input)
        .process(ParseLines::new(input, parse_event).sorted_by(|event: &Event| event.timestamp_ms))
        .name("Parse")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &Event, ts| Some(ts))
                .with_timestamp_assigner(|event: &Event| event.timestamp_ms),
        )
        .name("Event time")
        .set_parallelism(1)
        .key_by(|event: &Event| event.id.clone())
        .process(Deduplicate::new(ttl))
        .name("Deduplicate")
}

fn run(args: Args) -> Result<(), String> {
    let args = &args;
    let env = args
        .job
        .environment(&[("parallelism", "2")])
        .map_err(|e| e.to_string())?;
    let ttl = Duration::from_millis(args.ttl_ms);
    let unique = unique_events(&env, &args.input, ttl).collect();
    let Some(_) = args
        .job
        .execute_blocking(&env, "dedup")
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // --dump-plan
    };
    let unique = unique.take();
    tracing::info!(emitted = unique.len(), "job finished");

    weir::cli::write_json_lines(&unique)
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

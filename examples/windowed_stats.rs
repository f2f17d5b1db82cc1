//! # Windowed statistics with late data
//!
//! Reads sensor readings `key,timestamp_ms,value` (value an integer) in
//! arrival order, which may be out of order, and prints per key and window
//! the count, sum, minimum and maximum of the values, as Flink's window
//! operator computes them; records too late for every window they belong to
//! go to `--late-output`.
//!
//! - A non-parallel source and parser ([`ParseLines`]: blank lines and `#`
//!   comments skipped, a malformed line an error naming file and line), with
//!   punctuated watermarks: after each record, the largest timestamp seen so
//!   far minus `--out-of-orderness-ms` (default 0).
//! - `key_by(key)` into the window operator (parallelism from
//!   `--parallelism`, default 2): `--window tumbling:SIZE_MS |
//!   sliding:SIZE_MS:SLIDE_MS | session:GAP_MS` (default `tumbling:1000`),
//!   `--allowed-lateness-ms` (default 0), an incremental aggregate of count,
//!   sum, min and max combined with a process-window function that adds the
//!   key and the window.
//! - Every firing is one JSON line on stdout,
//!   `{"key":"...","start":S,"end":E,"count":N,"sum":X,"min":A,"max":B}`
//!   (sorted by window end, start, key, then count: a window that fires again
//!   for a late record comes after its first firing); logs go to stderr.
//! - Late records that were dropped go through the late-data side output to
//!   `--late-output FILE`, one line each in the input's CSV form, sorted by
//!   timestamp, key and value.
//!
//! The end of the input is the largest watermark: every window still open
//! fires.
//!
//! ```text
//! cargo run --example windowed_stats
//! cargo run --example windowed_stats -- --window sliding:3000:1000 --allowed-lateness-ms 250 \
//!     --out-of-orderness-ms 100 --late-output late.csv
//! ```
//!
//! `tests/windowed_stats_output.rs` snapshots the output on the bundled
//! readings for each kind of window, and checks it against what Apache Flink
//! 2.3's window operator printed for the same input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::source::ParseLines;
use weir::state::AggregateFunction;
use weir::time::WatermarkStrategy;
use weir::window::{
    EventTimeSessionWindows, ProcessWindowFunction, SlidingEventTimeWindows, TimeWindow,
    TumblingEventTimeWindows, WindowAssigner, WindowContext,
};
use weir::{Collector, DataStream, Lifecycle, OutputTag, StreamEnv, UserError};

/// The bundled readings.
pub const READINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/readings.csv");

/// Prints per key and window the count, sum, min and max of the values.
#[derive(Parser)]
struct Args {
    /// CSV of readings, `key,timestamp_ms,value`, in arrival order (default:
    /// the bundled sample).
    #[arg(long, value_name = "FILE", default_value = READINGS)]
    input: PathBuf,
    /// The windows: `tumbling:SIZE_MS`, `sliding:SIZE_MS:SLIDE_MS` or `session:GAP_MS`.
    #[arg(long, value_name = "SPEC", default_value = "tumbling:1000", value_parser = WindowSpec::parse)]
    window: WindowSpec,
    /// How long a window stays open after its end for late records, in ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    allowed_lateness_ms: u64,
    /// How far behind the largest timestamp seen the watermark stays, in ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    out_of_orderness_ms: u64,
    /// Where the late records that were dropped go (CSV); default: nowhere.
    #[arg(long, value_name = "FILE")]
    late_output: Option<PathBuf>,
    /// The standard job flags (parallelism, checkpoints, configuration, ...).
    #[command(flatten)]
    job: weir::cli::JobArgs,
}

/// One reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The sensor.
    pub key: String,
    /// When it was read, ms.
    pub timestamp_ms: i64,
    /// What it read.
    pub value: i64,
}

impl Reading {
    /// The reading in the input's CSV form.
    pub fn to_csv(&self) -> String {
        format!("{},{},{}", self.key, self.timestamp_ms, self.value)
    }
}

/// Parses one CSV line, `key,timestamp_ms,value`.
pub fn parse_reading(line: &str) -> Result<Reading, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [key, timestamp_ms, value] = fields[..] else {
        return Err(format!(
            "expected 3 fields `key,timestamp_ms,value`, found {}",
            fields.len()
        ));
    };
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    let timestamp_ms = timestamp_ms
        .parse::<i64>()
        .map_err(|e| format!("bad timestamp `{timestamp_ms}`: {e}"))?;
    let value = value
        .parse::<i64>()
        .map_err(|e| format!("bad value `{value}`: {e}"))?;
    Ok(Reading {
        key: key.to_string(),
        timestamp_ms,
        value,
    })
}

/// The kind of window, from `--window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowSpec {
    /// `tumbling:SIZE_MS`.
    Tumbling(u64),
    /// `sliding:SIZE_MS:SLIDE_MS`.
    Sliding(u64, u64),
    /// `session:GAP_MS`.
    Session(u64),
}

impl WindowSpec {
    /// Parses `tumbling:SIZE_MS`, `sliding:SIZE_MS:SLIDE_MS` or `session:GAP_MS`
    /// (sizes positive).
    pub fn parse(spec: &str) -> Result<WindowSpec, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let number = |s: &str| -> Result<u64, String> {
            match s.parse::<u64>() {
                Ok(0) => Err(format!("`{spec}`: sizes must be positive")),
                Ok(n) => Ok(n),
                Err(e) => Err(format!("`{spec}`: bad number `{s}`: {e}")),
            }
        };
        match parts[..] {
            ["tumbling", size] => Ok(WindowSpec::Tumbling(number(size)?)),
            ["sliding", size, slide] => Ok(WindowSpec::Sliding(number(size)?, number(slide)?)),
            ["session", gap] => Ok(WindowSpec::Session(number(gap)?)),
            _ => Err(format!(
                "`{spec}`: expected tumbling:SIZE_MS, sliding:SIZE_MS:SLIDE_MS or session:GAP_MS"
            )),
        }
    }
}

/// What is printed per firing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowStats {
    /// The key.
    pub key: String,
    /// The window's start.
    pub start: i64,
    /// The window's end.
    pub end: i64,
    /// Readings in the window.
    pub count: u64,
    /// Their sum.
    pub sum: i64,
    /// The smallest.
    pub min: i64,
    /// The largest.
    pub max: i64,
}

/// Count, sum, min and max, incrementally.
pub struct Stats;

impl AggregateFunction for Stats {
    type In = Reading;
    type Acc = (u64, i64, i64, i64);
    type Out = (u64, i64, i64, i64);

    fn create_accumulator(&self) -> Self::Acc {
        (0, 0, i64::MAX, i64::MIN)
    }

    fn add(&self, r: Reading, acc: &mut Self::Acc) {
        *acc = (
            acc.0 + 1,
            acc.1 + r.value,
            acc.2.min(r.value),
            acc.3.max(r.value),
        );
    }

    fn get_result(&self, acc: &Self::Acc) -> Self::Out {
        *acc
    }

    fn merge(&self, acc: &mut Self::Acc, o: Self::Acc) {
        *acc = (acc.0 + o.0, acc.1 + o.1, acc.2.min(o.2), acc.3.max(o.3));
    }
}

/// Adds the key and the window to the aggregate.
#[derive(Clone)]
pub struct WithWindow;

impl Lifecycle for WithWindow {}

impl ProcessWindowFunction<String, (u64, i64, i64, i64), WindowStats, TimeWindow> for WithWindow {
    fn process(
        &mut self,
        key: &String,
        ctx: &mut WindowContext<String, TimeWindow>,
        elements: Vec<(u64, i64, i64, i64)>,
        out: &mut Collector<WindowStats>,
    ) -> Result<(), UserError> {
        for (count, sum, min, max) in elements {
            out.collect(WindowStats {
                key: key.clone(),
                start: ctx.window().start,
                end: ctx.window().end,
                count,
                sum,
                min,
                max,
            });
        }
        Ok(())
    }
}

/// The job's settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The windows.
    pub window: WindowSpec,
    /// Allowed lateness, ms.
    pub allowed_lateness_ms: u64,
    /// Watermark delay behind the largest timestamp, ms.
    pub out_of_orderness_ms: u64,
}

/// Declares the job on `env`: the statistics of `input` per key and window,
/// and the late records dropped (the late side output).
pub fn window_stats(
    env: &StreamEnv,
    input: &Path,
    settings: Settings,
) -> (DataStream<WindowStats>, DataStream<Reading>) {
    let ooo = i64::try_from(settings.out_of_orderness_ms).unwrap_or(i64::MAX);
    let readings = env
        .read_text_file(input)
        .process(ParseLines::new(input, parse_reading))
        .name("Parse")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(move |_: &Reading, ts| Some(ts.saturating_sub(ooo)))
                .with_timestamp_assigner(|r: &Reading| r.timestamp_ms),
        )
        .name("Event time")
        .set_parallelism(1);
    let lateness = Duration::from_millis(settings.allowed_lateness_ms);
    let late = OutputTag::<Reading>::new("late-readings");
    let stats = match settings.window {
        WindowSpec::Tumbling(size) => windowed(
            readings,
            TumblingEventTimeWindows::of(Duration::from_millis(size)),
            lateness,
            &late,
        ),
        WindowSpec::Sliding(size, slide) => windowed(
            readings,
            SlidingEventTimeWindows::of(Duration::from_millis(size), Duration::from_millis(slide)),
            lateness,
            &late,
        ),
        WindowSpec::Session(gap) => windowed(
            readings,
            EventTimeSessionWindows::with_gap(Duration::from_millis(gap)),
            lateness,
            &late,
        ),
    };
    let late = stats.side_output(&late);
    (stats, late)
}

fn windowed<A: WindowAssigner<Reading, W = TimeWindow>>(
    readings: DataStream<Reading>,
    assigner: A,
    lateness: Duration,
    late: &OutputTag<Reading>,
) -> DataStream<WindowStats> {
    readings
        .key_by(|r: &Reading| r.key.clone())
        .window(assigner)
        .allowed_lateness(lateness)
        .side_output_late_data(late)
        .aggregate_with(Stats, WithWindow)
        .name("Window stats")
}

fn run(args: Args) -> Result<(), String> {
    let env = args
        .job
        .environment(&[("parallelism", "2")])
        .map_err(|e| e.to_string())?;
    let settings = Settings {
        window: args.window,
        allowed_lateness_ms: args.allowed_lateness_ms,
        out_of_orderness_ms: args.out_of_orderness_ms,
    };
    let (stats, late) = window_stats(&env, &args.input, settings);
    let stats = stats.collect();
    let late = late.collect();
    let Some(result) = args
        .job
        .execute_blocking(&env, "windowed-stats")
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // --dump-plan
    };
    let mut stats = stats.take();
    stats.sort_by(|a, b| (a.end, a.start, &a.key, a.count).cmp(&(b.end, b.start, &b.key, b.count)));
    let mut late = late.take();
    late.sort_by(|a, b| (a.timestamp_ms, &a.key, a.value).cmp(&(b.timestamp_ms, &b.key, b.value)));
    tracing::info!(
        firings = stats.len(),
        late = result.counter("Window stats", "late_records"),
        "job finished"
    );
    if let Some(path) = &args.late_output {
        let text: String = late.iter().map(|r| r.to_csv() + "\n").collect();
        std::fs::write(path, text)
            .map_err(|e| format!("cannot write the late records to {}: {e}", path.display()))?;
    }
    weir::cli::write_json_lines(&stats)
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

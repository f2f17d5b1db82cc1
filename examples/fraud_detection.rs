//! # Fraud detection with keyed state and event-time timers
//!
//! Reads card transactions and raises an alert when an account makes a small
//! transaction (under 1.00) immediately followed by a large one (over 500.00)
//! within 60 seconds of event time: fraudsters often test a stolen card with a
//! small purchase before a large one. This is the pattern of Flink's fraud
//! detection walkthrough, on event time.
//!
//! The input is CSV, one transaction per line, `account_id,timestamp_ms,amount`,
//! sorted by timestamp (milliseconds since the epoch); blank lines and lines
//! starting with `#` are skipped. A malformed line, or one whose timestamp goes
//! back, is an error naming the file and the line. Each alert is printed to
//! stdout as one JSON line, `{"account_id":"...","timestamp_ms":N,"amount":X}`
//! (alerts of different accounts in no fixed order); logs go to stderr.
//!
//! What it shows:
//! - a non-parallel text source chained with a parser ([`ParseLines`]) and the timestamp
//!   assigner (all with parallelism 1), so that event time starts in file order;
//! - punctuated watermarks, `WatermarkStrategy::punctuated(|_, ts| Some(ts))`:
//!   a watermark after every transaction, so the result does not depend on
//!   batching or timing;
//! - `key_by(account)` into a [`KeyedProcessFunction`] with parallelism 2 that
//!   keeps two `ValueState`s per account (whether the last transaction was small,
//!   and when its 60-second window ends) and an event-time timer that clears
//!   them when the window has passed;
//! - `RUST_LOG` (default `warn`) for the engine's logs.
//!
//! Per account, the detector works as follows: a transaction under 1.00 sets
//! the flag and registers a timer at its timestamp + 60 000 ms; the timer
//! clears the flag when the watermark reaches it. The next transaction of the
//! account clears flag and timer, and if the flag was set, its amount is over
//! 500.00 and it lies within the window, raises an alert. (The window check
//! matters for a transaction at or after the window's end that arrives before
//! any watermark reached the end: records come before their own watermarks.)
//!
//! ```text
//! cargo run --example fraud_detection
//! cargo run --example fraud_detection -- --input some/transactions.csv
//! ```
//!
//! `tests/examples_output.rs` runs the same [`alerts`] pipeline on the bundled
//! transactions and snapshots the alerts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::source::ParseLines;
use weir::state::{ValueStateDescriptor, ValueStateWithDefault};
use weir::time::WatermarkStrategy;
use weir::{
    Collector, DataStream, KeyedContext, KeyedProcessFunction, Lifecycle, StreamEnv, UserError,
};

/// The bundled transactions.
pub const TRANSACTIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/data/transactions.csv"
);

/// Below this amount a transaction is small.
pub const SMALL: f64 = 1.00;
/// Above this amount a transaction is large.
pub const LARGE: f64 = 500.00;
/// How long after a small transaction a large one raises an alert (ms).
pub const WINDOW_MS: i64 = 60_000;

/// Detects small-then-large transaction patterns.
#[derive(Parser)]
struct Args {
    /// CSV of transactions, `account_id,timestamp_ms,amount`, sorted by
    /// timestamp (default: the bundled sample).
    #[arg(long, value_name = "FILE", default_value = TRANSACTIONS)]
    input: PathBuf,
    /// The standard job flags (parallelism, checkpoints, configuration, ...).
    #[command(flatten)]
    job: weir::cli::JobArgs,
}

/// One card transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// The account charged.
    pub account_id: String,
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
    /// How much.
    pub amount: f64,
}

/// A large transaction that followed a small one within the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The account.
    pub account_id: String,
    /// When the large transaction happened.
    pub timestamp_ms: i64,
    /// Its amount.
    pub amount: f64,
}

/// Parses one CSV line, `account_id,timestamp_ms,amount`.
pub fn parse_transaction(line: &str) -> Result<Transaction, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [account_id, timestamp_ms, amount] = fields[..] else {
        return Err(format!(
            "expected 3 fields `account_id,timestamp_ms,amount`, found {}",
            fields.len()
        ));
    };
    if account_id.is_empty() {
        return Err("the account id is empty".into());
    }
    let timestamp_ms = timestamp_ms
        .parse::<i64>()
        .map_err(|e| format!("bad timestamp `{timestamp_ms}`: {e}"))?;
    let amount = amount
        .parse::<f64>()
        .ok()
        .filter(|a| a.is_finite() && *a >= 0.0)
        .ok_or_else(|| format!("bad amount `{amount}`: expected a non-negative number"))?;
    Ok(Transaction {
        account_id: account_id.to_string(),
        timestamp_ms,
        amount,
    })
}

/// The detector: per account, whether the last transaction was small, and
/// when its window ends.
#[derive(Clone)]
pub struct FraudDetector {
    flag: ValueStateWithDefault<bool>,
    timer: ValueStateDescriptor<i64>,
}

impl Default for FraudDetector {
    fn default() -> Self {
        FraudDetector {
            flag: ValueStateDescriptor::new("small-seen").with_default(false),
            timer: ValueStateDescriptor::new("window-end"),
        }
    }
}

impl FraudDetector {
    /// Deletes the account's timer and clears its state.
    fn clean_up(&self, ctx: &mut KeyedContext<String>) -> Result<(), UserError> {
        if let Some(timer) = self.timer.value(ctx)? {
            ctx.delete_event_time_timer(timer);
        }
        self.timer.clear(ctx)?;
        self.flag.clear(ctx)?;
        Ok(())
    }
}

impl Lifecycle for FraudDetector {}

impl KeyedProcessFunction<String, Transaction, Alert> for FraudDetector {
    fn process_element(
        &mut self,
        tx: Transaction,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Alert>,
    ) -> Result<(), UserError> {
        if self.flag.value(ctx)? {
            let window_end = self.timer.value(ctx)?;
            let in_window = window_end.is_some_and(|end| tx.timestamp_ms < end);
            if tx.amount > LARGE && in_window {
                tracing::info!(account = %tx.account_id, amount = tx.amount, "alert");
                out.collect(Alert {
                    account_id: tx.account_id.clone(),
                    timestamp_ms: tx.timestamp_ms,
                    amount: tx.amount,
                });
            }
            self.clean_up(ctx)?;
        }
        if tx.amount < SMALL {
            let window_end = tx.timestamp_ms + WINDOW_MS;
            self.flag.update(ctx, true)?;
            self.timer.update(ctx, window_end)?;
            ctx.register_event_time_timer(window_end);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _timestamp: i64,
        ctx: &mut KeyedContext<String>,
        _out: &mut Collector<Alert>,
    ) -> Result<(), UserError> {
        self.timer.clear(ctx)?;
        self.flag.clear(ctx)?;
        Ok(())
    }
}

/// Declares the job on `env`: the alerts for the transactions in `input`.
pub fn alerts(env: &StreamEnv, input: &Path) -> DataStream<Alert> {
    env.read_text_file(input)
        .process(
            ParseLines::new(input, parse_transaction).sorted_by(|tx: &Transaction| tx.timestamp_ms),
        )
        .name("Parse")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::punctuated(|_: &Transaction, ts| Some(ts))
                .with_timestamp_assigner(|tx: &Transaction| tx.timestamp_ms),
        )
        .name("Event time")
        .set_parallelism(1)
        .key_by(|tx: &Transaction| tx.account_id.clone())
        .process(FraudDetector::default())
        .name("Fraud detector")
        .set_parallelism(2)
}

fn run(args: Args) -> Result<(), String> {
    let args = &args;
    let env = args
        .job
        .environment(&[("parallelism", "2")])
        .map_err(|e| e.to_string())?;
    let found = alerts(&env, &args.input).collect();
    let Some(_) = args
        .job
        .execute_blocking(&env, "fraud-detection")
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // --dump-plan
    };
    let found = found.take();
    tracing::info!(alerts = found.len(), "job finished");

    weir::cli::write_json_lines(&found)
}

fn main() -> ExitCode {
    weir::cli::main(run)
}

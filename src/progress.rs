//! The live progress line a job binary shows on the terminal while its job
//! runs: records per second, checkpoints completed, restarts and the worst
//! backpressure, refreshed twice a second on stderr (with `indicatif`), and
//! only when stderr is a terminal: a job whose output goes to a file or a
//! pipe shows nothing. Job binaries (jobs run by [`crate::cli::JobArgs`])
//! show it unless `progress = false` (`--no-progress`);
//! [`StreamEnv::execute_blocking`](crate::StreamEnv::execute_blocking) in a
//! program of its own shows it when `progress = true`. Several jobs of one
//! process get a line each. What the job's logs, the `print()` sink and
//! weir's own messages write meanwhile goes above the lines, never into
//! them ([`suspend`], [`SuspendingStderr`]).
//!
//! What the line says is decided by [`ProgressFacts::line`], from facts
//! read off the running job ([`ProgressFacts::of`]); the drawing is
//! [`ProgressLine`]'s.
//!
//! ```
//! use weir::progress::ProgressFacts;
//! let facts = ProgressFacts {
//!     name: "word-count".into(),
//!     status: "RUNNING".into(),
//!     elapsed_s: 75,
//!     records: Some(1_200_000),
//!     records_per_second: Some(48_250.0),
//!     checkpoints: 12,
//!     failed_checkpoints: 0,
//!     last_checkpoint_ms: Some(35),
//!     restarts: 1,
//!     backpressure: Some("ok".into()),
//! };
//! assert_eq!(
//!     facts.line(),
//!     "word-count RUNNING 1:15 · 48.2 k records/s (1.20 M) · checkpoints 12 (last 35 ms) · restarts 1 · backpressure ok"
//! );
//! ```

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use weir_actors::live::LiveVertex;
use weir_actors::JobControl;

/// How often the line is redrawn.
const REFRESH: Duration = Duration::from_millis(500);

/// What the progress line shows, read off a running job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProgressFacts {
    /// The job's name.
    pub name: String,
    /// Its status, as the REST API names it (`RUNNING`, `RESTARTING`, ...).
    pub status: String,
    /// Seconds since it started.
    pub elapsed_s: u64,
    /// Records its sources sent on so far, this deployment (`None`: the job
    /// is one chain, whose records never cross a channel to be counted).
    pub records: Option<u64>,
    /// Records its sources send on per second, over the last seconds.
    pub records_per_second: Option<f64>,
    /// Checkpoints completed.
    pub checkpoints: usize,
    /// Checkpoints that failed.
    pub failed_checkpoints: usize,
    /// The last completed checkpoint's duration, in milliseconds.
    pub last_checkpoint_ms: Option<u64>,
    /// Restarts so far.
    pub restarts: u32,
    /// The worst backpressure level of its vertices (`ok`, `low`, `high`).
    pub backpressure: Option<String>,
}

impl ProgressFacts {
    /// The facts of `job` now.
    pub fn of(job: &JobControl) -> Self {
        let vertices = job.live_metrics();
        let checkpoints = job.checkpoint_counts();
        let elapsed_ms = weir_actors::clock::processing_time_now().saturating_sub(job.started_ms());
        let (records, records_per_second) = source_throughput(job, &vertices);
        ProgressFacts {
            name: job.name().to_string(),
            status: crate::web::views::status_name(job.status()).to_string(),
            elapsed_s: (elapsed_ms.max(0) / 1000) as u64,
            records,
            records_per_second,
            checkpoints: checkpoints.completed,
            failed_checkpoints: checkpoints.failed,
            last_checkpoint_ms: checkpoints
                .last_completed_duration
                .map(|d| d.as_millis() as u64),
            restarts: job.restarts(),
            backpressure: vertices
                .iter()
                .map(|v| v.backpressure_level)
                .max()
                .map(|level| level.as_str().to_string()),
        }
    }

    /// The line, without the spinner.
    pub fn line(&self) -> String {
        let mut parts = vec![format!(
            "{} {} {}",
            self.name,
            self.status,
            clock(self.elapsed_s)
        )];
        match (self.records_per_second, self.records) {
            (Some(rate), Some(records)) => parts.push(format!(
                "{} records/s ({})",
                short(rate),
                short(records as f64)
            )),
            _ => parts.push("records/s n/a (one chain)".to_string()),
        }
        let mut checkpoints = format!("checkpoints {}", self.checkpoints);
        if let Some(ms) = self.last_checkpoint_ms {
            checkpoints.push_str(&format!(" (last {ms} ms)"));
        }
        if self.failed_checkpoints > 0 {
            checkpoints.push_str(&format!(", {} failed", self.failed_checkpoints));
        }
        parts.push(checkpoints);
        parts.push(format!("restarts {}", self.restarts));
        if let Some(level) = &self.backpressure {
            parts.push(format!("backpressure {level}"));
        }
        parts.join(" · ")
    }
}

/// Records sent on by the vertices without inputs, in total and per second
/// (`None` when every vertex is a source: a single chain).
fn source_throughput(job: &JobControl, vertices: &[LiveVertex]) -> (Option<u64>, Option<f64>) {
    let infos = job.vertices();
    if infos.iter().all(|v| v.inputs.is_empty()) {
        return (None, None);
    }
    let sources = vertices
        .iter()
        .filter(|v| infos.get(v.id).is_some_and(|info| info.inputs.is_empty()));
    let (records, rate) = sources.fold((0, 0.0), |(records, rate), v| {
        (records + v.records_out, rate + v.records_out_per_second)
    });
    (Some(records), Some(rate))
}

/// `1:15`, `1:02:03`.
fn clock(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// `950`, `48.2 k`, `1.20 M`.
fn short(n: f64) -> String {
    let n = n.round();
    // From 999 950 on, one decimal of thousands would read 1000.0 k.
    if n >= 999_950.0 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// The progress lines of the process, drawn together on stderr.
static LINES: OnceLock<indicatif::MultiProgress> = OnceLock::new();

fn lines() -> &'static indicatif::MultiProgress {
    LINES.get_or_init(|| {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr())
    })
}

/// Runs `f` with the progress lines taken off the terminal and drawn again
/// after it, so that what `f` writes (to stdout or stderr) is not mixed
/// into them. Without progress lines, just runs `f`.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match LINES.get() {
        Some(lines) => lines.suspend(f),
        None => f(),
    }
}

/// A `tracing` writer to stderr that writes above the progress lines (see
/// [`suspend`]); [`crate::cli::init_logging`] logs through it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SuspendingStderr;

impl std::io::Write for SuspendingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SuspendingStderr {
    type Writer = SuspendingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        SuspendingStderr
    }
}

/// The progress line of one running job, redrawn by a thread of its own
/// until [`ProgressLine::finish`] (or drop) clears it.
pub struct ProgressLine {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressLine {
    /// Shows `job`'s progress on stderr if stderr is a terminal (`None`
    /// otherwise: nothing is drawn).
    pub fn show(job: JobControl) -> Option<ProgressLine> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let (stop, stopped) = std::sync::mpsc::channel();
        let bar = lines().add(indicatif::ProgressBar::new_spinner());
        let thread = std::thread::Builder::new()
            .name("weir-progress".into())
            .spawn(move || loop {
                bar.set_message(ProgressFacts::of(&job).line());
                bar.tick();
                match stopped.recv_timeout(REFRESH) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => {
                        bar.finish_and_clear();
                        lines().remove(&bar);
                        return;
                    }
                }
            })
            .ok()?;
        Some(ProgressLine {
            stop,
            thread: Some(thread),
        })
    }

    /// Clears the line and ends its thread.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ProgressFacts {
        ProgressFacts {
            name: "exactly-once".into(),
            status: "RUNNING".into(),
            elapsed_s: 3725,
            records: Some(987),
            records_per_second: Some(999.6),
            checkpoints: 3,
            failed_checkpoints: 2,
            last_checkpoint_ms: Some(12),
            restarts: 0,
            backpressure: Some("high".into()),
        }
    }

    #[test]
    fn the_line_says_rate_checkpoints_restarts_and_backpressure() {
        insta::assert_snapshot!(facts().line(), @"exactly-once RUNNING 1:02:05 · 1.0 k records/s (987) · checkpoints 3 (last 12 ms), 2 failed · restarts 0 · backpressure high");
    }

    #[test]
    fn a_single_chain_has_no_rate_and_a_new_job_no_checkpoint() {
        let facts = ProgressFacts {
            records: None,
            records_per_second: None,
            checkpoints: 0,
            failed_checkpoints: 0,
            last_checkpoint_ms: None,
            backpressure: None,
            elapsed_s: 5,
            ..facts()
        };
        insta::assert_snapshot!(facts.line(), @"exactly-once RUNNING 0:05 · records/s n/a (one chain) · checkpoints 0 · restarts 0");
    }

    #[test]
    fn figures_are_shortened_by_their_size() {
        assert_eq!(short(950.4), "950");
        assert_eq!(short(48_250.0), "48.2 k");
        assert_eq!(short(1_204_000.0), "1.20 M");
        assert_eq!(short(999_960.0), "1.00 M");
        assert_eq!(short(999.6), "1.0 k");
        assert_eq!(clock(59), "0:59");
        assert_eq!(clock(3600), "1:00:00");
    }
}

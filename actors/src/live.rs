//! Live metrics: what every subtask of a running job counts as it goes, read
//! by clients at any time (the REST API, Prometheus, the progress line).
//!
//! Each subtask owns one [`SubtaskGauges`]: plain atomics it writes with
//! relaxed stores once per processing step (never per record), and that
//! readers load without stopping it. [`LiveMetrics`] is the job's registry:
//! the gauges of the current deployment (replaced on a restart, as Flink's
//! task metrics start again with the new task), and a short history of
//! samples from which it derives Flink's time ratios over the last seconds:
//! - **busy**: processing records, timers or barriers;
//! - **backpressured**: holding a full batch with no credit to send it
//!   (Flink's "back pressured": waiting for output buffers);
//! - **idle**: the rest (waiting for input).
//!
//! Backpressure levels follow Flink's REST API: `ok` up to 0.10 of the time
//! backpressured, `low` up to 0.5, `high` above.
//!
//! ```
//! use weir_actors::live::BackpressureLevel;
//!
//! assert_eq!(BackpressureLevel::of_ratio(0.05), BackpressureLevel::Ok);
//! assert_eq!(BackpressureLevel::of_ratio(0.3), BackpressureLevel::Low);
//! assert_eq!(BackpressureLevel::of_ratio(0.9), BackpressureLevel::High);
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{OperatorCounter, StateMetrics};

/// What one subtask publishes while it runs.
#[derive(Debug)]
pub struct SubtaskGauges {
    epoch: Instant,
    records_in: AtomicU64,
    records_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    batches_in: AtomicU64,
    batches_out: AtomicU64,
    busy_ns: AtomicU64,
    backpressured_ns: AtomicU64,
    /// Since `epoch`, when the subtask became blocked on credit (0: it is not).
    blocked_since_ns: AtomicU64,
    queued_batches: AtomicU64,
    credits: AtomicU64,
    watermark: AtomicI64,
    running: AtomicBool,
    /// Per keyed state and operator counters, refreshed about once a second
    /// while the subtask works (they are not free to compute).
    states: Mutex<(Vec<StateMetrics>, Vec<OperatorCounter>)>,
}

impl Default for SubtaskGauges {
    fn default() -> Self {
        SubtaskGauges {
            epoch: Instant::now(),
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            batches_out: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            backpressured_ns: AtomicU64::new(0),
            blocked_since_ns: AtomicU64::new(0),
            queued_batches: AtomicU64::new(0),
            credits: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            running: AtomicBool::new(false),
            states: Mutex::new((Vec::new(), Vec::new())),
        }
    }
}

/// The counters a subtask publishes after a step (all cumulative but the
/// queue, credit and watermark levels).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepFigures {
    /// Records taken from the input channels.
    pub records_in: u64,
    /// Records sent downstream.
    pub records_out: u64,
    /// Bytes taken from the input channels, estimated
    /// ([`crate::batch::BatchData::estimated_bytes`]).
    pub bytes_in: u64,
    /// Bytes sent downstream, estimated.
    pub bytes_out: u64,
    /// Batches taken from the input channels.
    pub batches_in: u64,
    /// Batches sent downstream.
    pub batches_out: u64,
    /// Batches waiting in the input channels now.
    pub queued_batches: u64,
    /// Credits the output channels hold now.
    pub credits: u64,
    /// The subtask's current watermark (`i64::MIN`: none yet).
    pub watermark: i64,
}

impl SubtaskGauges {
    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Publishes the figures after a step.
    pub fn publish(&self, figures: StepFigures) {
        self.records_in.store(figures.records_in, Ordering::Relaxed);
        self.records_out
            .store(figures.records_out, Ordering::Relaxed);
        self.bytes_in.store(figures.bytes_in, Ordering::Relaxed);
        self.bytes_out.store(figures.bytes_out, Ordering::Relaxed);
        self.batches_in.store(figures.batches_in, Ordering::Relaxed);
        self.batches_out
            .store(figures.batches_out, Ordering::Relaxed);
        self.queued_batches
            .store(figures.queued_batches, Ordering::Relaxed);
        self.credits.store(figures.credits, Ordering::Relaxed);
        self.watermark.store(figures.watermark, Ordering::Relaxed);
    }

    /// Adds time spent processing.
    pub fn add_busy(&self, spent: Duration) {
        self.busy_ns
            .fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The subtask holds output it cannot send for lack of credit, from `at`.
    pub fn blocked(&self, at: Instant) {
        let since = self.nanos_since_epoch(at).max(1);
        let _ =
            self.blocked_since_ns
                .compare_exchange(0, since, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The subtask got the credit it waited for, at `at`.
    pub fn unblocked(&self, at: Instant) {
        let since = self.blocked_since_ns.swap(0, Ordering::Relaxed);
        if since != 0 {
            let waited = self.nanos_since_epoch(at).saturating_sub(since);
            self.backpressured_ns.fetch_add(waited, Ordering::Relaxed);
        }
    }

    /// Whether the subtask runs (opened and not ended).
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Relaxed);
    }

    /// Replaces the published state metrics and operator counters.
    pub fn publish_states(&self, states: Vec<StateMetrics>, counters: Vec<OperatorCounter>) {
        if let Ok(mut slot) = self.states.lock() {
            *slot = (states, counters);
        }
    }

    /// Reads every figure at `now`.
    fn read(&self, now: Instant) -> GaugeReading {
        let blocked_since = self.blocked_since_ns.load(Ordering::Relaxed);
        let blocked_for = if blocked_since == 0 {
            0
        } else {
            self.nanos_since_epoch(now).saturating_sub(blocked_since)
        };
        let (states, counters) = self.states.lock().map(|s| s.clone()).unwrap_or_default();
        GaugeReading {
            at: now,
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            batches_in: self.batches_in.load(Ordering::Relaxed),
            batches_out: self.batches_out.load(Ordering::Relaxed),
            busy_ns: self.busy_ns.load(Ordering::Relaxed),
            backpressured_ns: self.backpressured_ns.load(Ordering::Relaxed) + blocked_for,
            queued_batches: self.queued_batches.load(Ordering::Relaxed),
            credits: self.credits.load(Ordering::Relaxed),
            watermark: self.watermark.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
            states,
            counters,
        }
    }
}

/// One reading of a subtask's gauges.
#[derive(Clone, Debug)]
struct GaugeReading {
    at: Instant,
    records_in: u64,
    records_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    batches_in: u64,
    batches_out: u64,
    busy_ns: u64,
    backpressured_ns: u64,
    queued_batches: u64,
    credits: u64,
    watermark: i64,
    running: bool,
    states: Vec<StateMetrics>,
    counters: Vec<OperatorCounter>,
}

/// How backpressured a subtask or vertex is (Flink's REST levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackpressureLevel {
    /// Backpressured at most 10% of the time.
    Ok,
    /// More than 10%, at most 50%.
    Low,
    /// More than 50%.
    High,
}

impl BackpressureLevel {
    /// The level of a backpressured-time ratio (0..=1).
    pub fn of_ratio(ratio: f64) -> Self {
        if ratio <= 0.10 {
            BackpressureLevel::Ok
        } else if ratio <= 0.5 {
            BackpressureLevel::Low
        } else {
            BackpressureLevel::High
        }
    }

    /// Its name in the REST API (`ok`, `low`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            BackpressureLevel::Ok => "ok",
            BackpressureLevel::Low => "low",
            BackpressureLevel::High => "high",
        }
    }
}

/// One subtask's live figures, as a client reads them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveSubtask {
    /// The subtask's index.
    pub subtask: usize,
    /// Whether it runs now (opened, not ended).
    pub running: bool,
    /// Records taken from the network so far (this deployment).
    pub records_in: u64,
    /// Records sent to the network so far.
    pub records_out: u64,
    /// Bytes taken from the network so far: estimated, as records cross
    /// channels unserialised (each batch: its first record's encoded size
    /// times its records).
    pub bytes_in: u64,
    /// Bytes sent to the network so far, estimated in the same way.
    pub bytes_out: u64,
    /// Bytes in per second over the last seconds.
    pub bytes_in_per_second: f64,
    /// Bytes out per second over the last seconds.
    pub bytes_out_per_second: f64,
    /// Batches taken from the network so far.
    pub batches_in: u64,
    /// Batches sent to the network so far.
    pub batches_out: u64,
    /// Records in per second over the last seconds.
    pub records_in_per_second: f64,
    /// Records out per second over the last seconds.
    pub records_out_per_second: f64,
    /// Share of the last seconds spent processing (0..=1).
    pub busy_ratio: f64,
    /// Share spent waiting for credit with output to send (0..=1).
    pub backpressured_ratio: f64,
    /// Share spent waiting for input (0..=1).
    pub idle_ratio: f64,
    /// Backpressure level of `backpressured_ratio`.
    pub backpressure_level: BackpressureLevel,
    /// Time spent processing so far, in milliseconds.
    pub busy_ms_total: u64,
    /// Time spent backpressured so far, in milliseconds.
    pub backpressured_ms_total: u64,
    /// Batches waiting in its input channels now.
    pub input_queue_batches: u64,
    /// Credits its output channels hold now.
    pub output_credits: u64,
    /// Its current watermark, in milliseconds (`None`: no watermark yet).
    pub watermark: Option<i64>,
    /// How far the watermark is behind the wall clock, in milliseconds.
    pub watermark_lag_ms: Option<i64>,
    /// Per keyed state of its operators (keys stored, expired entries).
    pub states: Vec<StateMetrics>,
    /// Its operators' own counters.
    pub counters: Vec<OperatorCounter>,
}

/// One vertex (a chain of operators run as one task, as Flink's job vertex)
/// with its subtasks and their sums.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveVertex {
    /// The vertex id: its index in the execution plan.
    pub id: usize,
    /// Its name (the chained operators' names).
    pub name: String,
    /// The uids of its operators, head first.
    pub operators: Vec<String>,
    /// Its parallelism.
    pub parallelism: usize,
    /// Sums over its subtasks (ratios: the largest, as Flink shows a vertex).
    pub records_in: u64,
    /// Records out, summed.
    pub records_out: u64,
    /// Bytes in (estimated), summed.
    pub bytes_in: u64,
    /// Bytes out (estimated), summed.
    pub bytes_out: u64,
    /// Bytes in per second, summed.
    pub bytes_in_per_second: f64,
    /// Bytes out per second, summed.
    pub bytes_out_per_second: f64,
    /// Records in per second, summed.
    pub records_in_per_second: f64,
    /// Records out per second, summed.
    pub records_out_per_second: f64,
    /// The busiest subtask's busy ratio.
    pub busy_ratio: f64,
    /// The most backpressured subtask's ratio.
    pub backpressured_ratio: f64,
    /// Its level.
    pub backpressure_level: BackpressureLevel,
    /// The lowest watermark of its subtasks (`None` until all have one).
    pub watermark: Option<i64>,
    /// Every subtask.
    pub subtasks: Vec<LiveSubtask>,
}

/// How the registry describes one vertex (fixed for the job's life).
#[derive(Clone, Debug, serde::Serialize)]
pub struct VertexInfo {
    /// Its name.
    pub name: String,
    /// Its operators' uids, head first.
    pub operators: Vec<String>,
    /// Its parallelism.
    pub parallelism: usize,
    /// The vertices it reads from, and how records are distributed to it.
    pub inputs: Vec<VertexInput>,
}

/// One network edge into a vertex.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VertexInput {
    /// The upstream vertex's id.
    pub id: usize,
    /// How records are distributed (`HASH`, `FORWARD`, `REBALANCE`, ...;
    /// Flink's ship strategies).
    pub ship_strategy: String,
    /// The side output the edge carries, if not the main output.
    pub side_output: Option<String>,
}

/// The window over which rates and ratios are computed.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Samples older than this are not kept.
const SAMPLE_SPACING: Duration = Duration::from_millis(500);

/// A job's live metrics: the gauges of its current deployment.
#[derive(Debug, Default)]
pub struct LiveMetrics {
    vertices: Vec<VertexInfo>,
    deployment: Mutex<Deployment>,
}

#[derive(Debug, Default)]
struct Deployment {
    /// Per vertex, per subtask.
    gauges: Vec<Vec<Arc<SubtaskGauges>>>,
    /// Earlier readings, oldest first, for rates over [`RATE_WINDOW`].
    history: VecDeque<Vec<Vec<GaugeReading>>>,
}

impl LiveMetrics {
    /// A registry for a job of these vertices.
    pub fn new(vertices: Vec<VertexInfo>) -> Self {
        LiveMetrics {
            vertices,
            deployment: Mutex::default(),
        }
    }

    /// The vertices, as the plan has them.
    pub fn vertices(&self) -> &[VertexInfo] {
        &self.vertices
    }

    /// Fresh gauges for a new deployment, one per subtask of every vertex;
    /// earlier readings are dropped.
    pub fn new_deployment(&self) -> Vec<Vec<Arc<SubtaskGauges>>> {
        let gauges: Vec<Vec<Arc<SubtaskGauges>>> = self
            .vertices
            .iter()
            .map(|v| (0..v.parallelism).map(|_| Arc::default()).collect())
            .collect();
        if let Ok(mut deployment) = self.deployment.lock() {
            deployment.gauges = gauges.clone();
            deployment.history.clear();
        }
        gauges
    }

    /// Every vertex's figures now, with rates and ratios over the last
    /// seconds (since the deployment started when that is shorter).
    pub fn sample(&self, wall_clock_ms: i64) -> Vec<LiveVertex> {
        let now = Instant::now();
        let Ok(mut deployment) = self.deployment.lock() else {
            return Vec::new();
        };
        let readings: Vec<Vec<GaugeReading>> = deployment
            .gauges
            .iter()
            .map(|subtasks| subtasks.iter().map(|g| g.read(now)).collect())
            .collect();
        // The oldest reading within the window is the base of the rates.
        while deployment
            .history
            .front()
            .and_then(|r| first_reading_time(r))
            .is_some_and(|at| now.duration_since(at) > RATE_WINDOW)
            && deployment.history.len() > 1
        {
            deployment.history.pop_front();
        }
        let base = deployment.history.front().cloned();
        let newest = deployment
            .history
            .back()
            .and_then(|r| first_reading_time(r));
        if newest.is_none_or(|at| now.duration_since(at) >= SAMPLE_SPACING) {
            deployment.history.push_back(readings.clone());
        }
        drop(deployment);
        readings
            .iter()
            .enumerate()
            .map(|(v, subtasks)| {
                let info = self.vertices.get(v);
                let subtasks: Vec<LiveSubtask> = subtasks
                    .iter()
                    .enumerate()
                    .map(|(i, reading)| {
                        let earlier = base.as_ref().and_then(|b| b.get(v)).and_then(|b| b.get(i));
                        live_subtask(i, reading, earlier, wall_clock_ms)
                    })
                    .collect();
                vertex_of(v, info, subtasks)
            })
            .collect()
    }
}

fn first_reading_time(readings: &[Vec<GaugeReading>]) -> Option<Instant> {
    readings.iter().flatten().next().map(|r| r.at)
}

/// A subtask's figures from its reading now and one from a few seconds ago
/// (`None`: rates since the gauges were made).
fn live_subtask(
    index: usize,
    now: &GaugeReading,
    earlier: Option<&GaugeReading>,
    wall_clock_ms: i64,
) -> LiveSubtask {
    let (elapsed_ns, busy_ns, backpressured_ns) = match earlier {
        Some(e) if now.at > e.at => (
            now.at.duration_since(e.at).as_nanos() as u64,
            now.busy_ns.saturating_sub(e.busy_ns),
            now.backpressured_ns.saturating_sub(e.backpressured_ns),
        ),
        _ => (0, 0, 0),
    };
    // What a counter grew by over the window (0 without an earlier reading).
    let grown = |count: fn(&GaugeReading) -> u64| {
        earlier
            .filter(|e| now.at > e.at)
            .map_or(0, |e| count(now).saturating_sub(count(e)))
    };
    let ratio = |part: u64| {
        if elapsed_ns == 0 {
            0.0
        } else {
            (part as f64 / elapsed_ns as f64).clamp(0.0, 1.0)
        }
    };
    let per_second = |count: u64| {
        if elapsed_ns == 0 {
            0.0
        } else {
            count as f64 * 1e9 / elapsed_ns as f64
        }
    };
    let busy_ratio = ratio(busy_ns);
    let backpressured_ratio = ratio(backpressured_ns).min(1.0 - busy_ratio);
    let idle_ratio = if elapsed_ns == 0 || !now.running {
        if now.running {
            0.0
        } else {
            1.0
        }
    } else {
        (1.0 - busy_ratio - backpressured_ratio).max(0.0)
    };
    let watermark = (now.watermark != i64::MIN).then_some(now.watermark);
    LiveSubtask {
        subtask: index,
        running: now.running,
        records_in: now.records_in,
        records_out: now.records_out,
        batches_in: now.batches_in,
        batches_out: now.batches_out,
        bytes_in: now.bytes_in,
        bytes_out: now.bytes_out,
        records_in_per_second: per_second(grown(|r| r.records_in)),
        records_out_per_second: per_second(grown(|r| r.records_out)),
        bytes_in_per_second: per_second(grown(|r| r.bytes_in)),
        bytes_out_per_second: per_second(grown(|r| r.bytes_out)),
        busy_ratio,
        backpressured_ratio,
        idle_ratio,
        backpressure_level: BackpressureLevel::of_ratio(backpressured_ratio),
        busy_ms_total: now.busy_ns / 1_000_000,
        backpressured_ms_total: now.backpressured_ns / 1_000_000,
        input_queue_batches: now.queued_batches,
        output_credits: now.credits,
        watermark,
        watermark_lag_ms: watermark.map(|w| wall_clock_ms.saturating_sub(w)),
        states: now.states.clone(),
        counters: now.counters.clone(),
    }
}

fn vertex_of(id: usize, info: Option<&VertexInfo>, subtasks: Vec<LiveSubtask>) -> LiveVertex {
    let max = |f: fn(&LiveSubtask) -> f64| subtasks.iter().map(f).fold(0.0, f64::max);
    let backpressured_ratio = max(|s| s.backpressured_ratio);
    let watermark = if subtasks.iter().all(|s| s.watermark.is_some()) {
        subtasks.iter().filter_map(|s| s.watermark).min()
    } else {
        None
    };
    LiveVertex {
        id,
        name: info.map_or_else(String::new, |i| i.name.clone()),
        operators: info.map_or_else(Vec::new, |i| i.operators.clone()),
        parallelism: info.map_or(subtasks.len(), |i| i.parallelism),
        records_in: subtasks.iter().map(|s| s.records_in).sum(),
        records_out: subtasks.iter().map(|s| s.records_out).sum(),
        bytes_in: subtasks.iter().map(|s| s.bytes_in).sum(),
        bytes_out: subtasks.iter().map(|s| s.bytes_out).sum(),
        bytes_in_per_second: subtasks.iter().map(|s| s.bytes_in_per_second).sum(),
        bytes_out_per_second: subtasks.iter().map(|s| s.bytes_out_per_second).sum(),
        records_in_per_second: subtasks.iter().map(|s| s.records_in_per_second).sum(),
        records_out_per_second: subtasks.iter().map(|s| s.records_out_per_second).sum(),
        busy_ratio: max(|s| s.busy_ratio),
        backpressured_ratio,
        backpressure_level: BackpressureLevel::of_ratio(backpressured_ratio),
        watermark,
        subtasks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(at: Instant, busy_ms: u64, bp_ms: u64, records: u64) -> GaugeReading {
        GaugeReading {
            at,
            records_in: records,
            records_out: records,
            bytes_in: records * 3,
            bytes_out: records * 3,
            batches_in: 0,
            batches_out: 0,
            busy_ns: busy_ms * 1_000_000,
            backpressured_ns: bp_ms * 1_000_000,
            queued_batches: 0,
            credits: 0,
            watermark: i64::MIN,
            running: true,
            states: Vec::new(),
            counters: Vec::new(),
        }
    }

    #[test]
    fn ratios_and_rates_come_from_the_difference_of_two_readings() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let live = live_subtask(
            0,
            &reading(t1, 1_500, 400, 10_000),
            Some(&reading(t0, 500, 0, 2_000)),
            0,
        );
        assert!((live.busy_ratio - 0.5).abs() < 1e-9);
        assert!((live.backpressured_ratio - 0.2).abs() < 1e-9);
        assert!((live.idle_ratio - 0.3).abs() < 1e-9);
        assert!((live.records_in_per_second - 4_000.0).abs() < 1e-6);
        assert!((live.bytes_out_per_second - 12_000.0).abs() < 1e-6);
        assert_eq!(live.backpressure_level, BackpressureLevel::Low);
    }

    #[test]
    fn a_subtask_blocked_now_counts_the_time_it_has_been_blocked() {
        let gauges = SubtaskGauges::default();
        let start = gauges.epoch + Duration::from_millis(10);
        gauges.blocked(start);
        let later = start + Duration::from_millis(300);
        assert_eq!(gauges.read(later).backpressured_ns, 300_000_000);
        gauges.unblocked(later);
        assert_eq!(
            gauges.read(later + Duration::from_secs(1)).backpressured_ns,
            300_000_000
        );
    }

    #[test]
    fn levels_follow_flinks_thresholds() {
        assert_eq!(BackpressureLevel::of_ratio(0.0), BackpressureLevel::Ok);
        assert_eq!(BackpressureLevel::of_ratio(0.10), BackpressureLevel::Ok);
        assert_eq!(BackpressureLevel::of_ratio(0.11), BackpressureLevel::Low);
        assert_eq!(BackpressureLevel::of_ratio(0.5), BackpressureLevel::Low);
        assert_eq!(BackpressureLevel::of_ratio(0.51), BackpressureLevel::High);
    }

    #[test]
    fn a_vertex_shows_its_slowest_subtask_and_the_lowest_watermark() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut a = reading(t1, 900, 0, 100);
        a.watermark = 50;
        let mut b = reading(t1, 100, 800, 100);
        b.watermark = 20;
        let subtasks = vec![
            live_subtask(0, &a, Some(&reading(t0, 0, 0, 0)), 1_000),
            live_subtask(1, &b, Some(&reading(t0, 0, 0, 0)), 1_000),
        ];
        let vertex = vertex_of(0, None, subtasks);
        assert!((vertex.busy_ratio - 0.9).abs() < 1e-9);
        assert_eq!(vertex.backpressure_level, BackpressureLevel::High);
        assert_eq!(vertex.watermark, Some(20));
        assert_eq!(vertex.subtasks[0].watermark_lag_ms, Some(950));
        assert!((vertex.records_in_per_second - 200.0).abs() < 1e-6);
    }
}

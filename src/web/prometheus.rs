//! Prometheus text exposition (format 0.0.4) of the jobs a server shows,
//! from their own readings: weir installs no process-global recorder (the
//! host may have one, and one process may run several jobs).
//!
//! Names follow Prometheus conventions: a `weir_` prefix, base units
//! (seconds, bytes), `_total` on counters; every series carries `job` (the
//! job's name) and `job_id`, and per-subtask series `vertex`, `operator`
//! (the vertex's name: its chained operators) and `subtask`.
//!
//! ```
//! use weir::web::prometheus::escape_label;
//!
//! assert_eq!(escape_label("a \"b\"\n"), "a \\\"b\\\"\\n");
//! ```

use std::fmt::Write;

use super::views::{status_name, JobFacts};

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its samples are written under one HELP and TYPE.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let labels = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.samples.push((labels, value));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{{{labels}}} {}", self.name, number(*value));
        }
    }
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// The exposition of `jobs`, every family once.
pub fn render(jobs: &[JobFacts]) -> String {
    let mut job_up = Family::new(
        "weir_job_running",
        "gauge",
        "1 while the job runs (not ended), else 0.",
    );
    let mut job_status = Family::new(
        "weir_job_status",
        "gauge",
        "1 for the job's current status.",
    );
    let mut uptime = Family::new(
        "weir_job_uptime_seconds",
        "gauge",
        "Time since the job was launched (to its end once ended).",
    );
    let mut restarts = Family::new("weir_job_restarts_total", "counter", "Restarts of the job.");
    let mut failures = Family::new(
        "weir_job_failures_total",
        "counter",
        "Failures of the job, restarted from or not.",
    );
    let mut checkpoints = Family::new(
        "weir_checkpoints_total",
        "counter",
        "Finished checkpoints and savepoints, by outcome.",
    );
    let mut in_progress = Family::new(
        "weir_checkpoints_in_progress",
        "gauge",
        "Checkpoints triggered and not ended yet.",
    );
    let mut restores = Family::new(
        "weir_job_restores_total",
        "counter",
        "Deployments of the job that restored a snapshot.",
    );
    let mut last_duration = Family::new(
        "weir_last_checkpoint_duration_seconds",
        "gauge",
        "End-to-end duration of the latest completed checkpoint.",
    );
    let mut last_size = Family::new(
        "weir_last_checkpoint_size_bytes",
        "gauge",
        "State size of the latest completed checkpoint.",
    );
    let mut last_alignment = Family::new(
        "weir_last_checkpoint_alignment_seconds",
        "gauge",
        "Longest barrier alignment of the latest completed checkpoint.",
    );
    let mut records_in = Family::new(
        "weir_records_in_total",
        "counter",
        "Records a subtask took from its input channels (this deployment).",
    );
    let mut bytes_in = Family::new(
        "weir_bytes_in_total",
        "counter",
        "Bytes a subtask took from its input channels (estimated: records move unserialised; each batch counts its first record's encoded size per record).",
    );
    let mut bytes_out = Family::new(
        "weir_bytes_out_total",
        "counter",
        "Bytes a subtask sent on its main output (estimated as weir_bytes_in_total).",
    );
    let mut records_out = Family::new(
        "weir_records_out_total",
        "counter",
        "Records a subtask sent downstream (this deployment).",
    );
    let mut batches_in = Family::new(
        "weir_batches_in_total",
        "counter",
        "Batches a subtask took from its input channels.",
    );
    let mut batches_out = Family::new(
        "weir_batches_out_total",
        "counter",
        "Batches a subtask sent downstream.",
    );
    let mut busy = Family::new(
        "weir_busy_seconds_total",
        "counter",
        "Time a subtask spent processing.",
    );
    let mut backpressured = Family::new(
        "weir_backpressured_seconds_total",
        "counter",
        "Time a subtask held output and waited for credit.",
    );
    let mut busy_ratio = Family::new(
        "weir_busy_ratio",
        "gauge",
        "Share of the last seconds a subtask spent processing.",
    );
    let mut backpressured_ratio = Family::new(
        "weir_backpressured_ratio",
        "gauge",
        "Share of the last seconds a subtask waited for credit.",
    );
    let mut idle_ratio = Family::new(
        "weir_idle_ratio",
        "gauge",
        "Share of the last seconds a subtask waited for input.",
    );
    let mut queue = Family::new(
        "weir_input_queue_batches",
        "gauge",
        "Batches waiting in a subtask's input channels.",
    );
    let mut credits = Family::new(
        "weir_output_credits",
        "gauge",
        "Credits a subtask's output channels hold.",
    );
    let mut watermark = Family::new(
        "weir_watermark_seconds",
        "gauge",
        "A subtask's current watermark (event time, seconds since the epoch).",
    );
    let mut watermark_lag = Family::new(
        "weir_watermark_lag_seconds",
        "gauge",
        "How far a subtask's watermark is behind the wall clock.",
    );
    let mut state_keys = Family::new(
        "weir_state_keys",
        "gauge",
        "Keys with an entry in a keyed state (backends that know it cheaply).",
    );
    let mut state_expired = Family::new(
        "weir_state_expired_total",
        "counter",
        "Expired state entries removed, by how.",
    );

    for job in jobs {
        let base = [("job", job.name.as_str()), ("job_id", job.id.as_str())];
        job_up.add(&base, f64::from(u8::from(!job.status.is_terminal())));
        let status = status_name(job.status);
        job_status.add(&[base[0], base[1], ("status", status)], 1.0);
        uptime.add(
            &base,
            (job.ended_ms.unwrap_or(job.now_ms) - job.started_ms).max(0) as f64 / 1e3,
        );
        restarts.add(&base, f64::from(job.supervision.restarts));
        failures.add(&base, job.failures_total as f64);
        let mut completed = job.checkpoints.iter().filter(|c| c.failure.is_none());
        let (mut checkpoints_ok, mut savepoints_ok, mut failed) = (0u64, 0u64, 0u64);
        for c in &job.checkpoints {
            match (&c.failure, c.savepoint) {
                (None, false) => checkpoints_ok += 1,
                (None, true) => savepoints_ok += 1,
                (Some(_), _) => failed += 1,
            }
        }
        for (kind, outcome, n) in [
            ("checkpoint", "completed", checkpoints_ok),
            ("savepoint", "completed", savepoints_ok),
            ("any", "failed", failed),
        ] {
            checkpoints.add(
                &[base[0], base[1], ("kind", kind), ("outcome", outcome)],
                n as f64,
            );
        }
        in_progress.add(&base, job.checkpoints_in_progress as f64);
        restores.add(&base, job.restores.count as f64);
        if let Some(last) = completed.next_back() {
            last_duration.add(&base, last.end_to_end.as_secs_f64());
            last_size.add(&base, last.state_bytes as f64);
            let alignment = last
                .subtasks
                .iter()
                .map(|(_, _, s)| s.alignment_duration.as_secs_f64())
                .fold(0.0, f64::max);
            last_alignment.add(&base, alignment);
        }
        for vertex in &job.live {
            let vertex_id = vertex.id.to_string();
            for s in &vertex.subtasks {
                let subtask = s.subtask.to_string();
                let labels = [
                    base[0],
                    base[1],
                    ("vertex", vertex_id.as_str()),
                    ("operator", vertex.name.as_str()),
                    ("subtask", subtask.as_str()),
                ];
                records_in.add(&labels, s.records_in as f64);
                records_out.add(&labels, s.records_out as f64);
                bytes_in.add(&labels, s.bytes_in as f64);
                bytes_out.add(&labels, s.bytes_out as f64);
                batches_in.add(&labels, s.batches_in as f64);
                batches_out.add(&labels, s.batches_out as f64);
                busy.add(&labels, s.busy_ms_total as f64 / 1e3);
                backpressured.add(&labels, s.backpressured_ms_total as f64 / 1e3);
                busy_ratio.add(&labels, s.busy_ratio);
                backpressured_ratio.add(&labels, s.backpressured_ratio);
                idle_ratio.add(&labels, s.idle_ratio);
                queue.add(&labels, s.input_queue_batches as f64);
                credits.add(&labels, s.output_credits as f64);
                if let (Some(w), Some(lag)) = (s.watermark, s.watermark_lag_ms) {
                    watermark.add(&labels, w as f64 / 1e3);
                    watermark_lag.add(&labels, lag as f64 / 1e3);
                }
                for state in &s.states {
                    let state_labels = [
                        labels[0],
                        labels[1],
                        labels[2],
                        labels[3],
                        labels[4],
                        ("state_operator", state.operator.as_str()),
                        ("state", state.state.as_str()),
                    ];
                    if let Some(keys) = state.stored_keys {
                        state_keys.add(&state_labels, keys as f64);
                    }
                    if state.ttl.is_some() {
                        for (how, n) in [
                            ("read", state.expired_on_read),
                            ("sweep", state.expired_by_sweep),
                            ("timer", state.expired_by_timer),
                            ("compaction", state.expired_by_compaction),
                        ] {
                            let mut with_how = state_labels.to_vec();
                            with_how.push(("how", how));
                            state_expired.add(&with_how, n as f64);
                        }
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for family in [
        &job_up,
        &job_status,
        &uptime,
        &restarts,
        &failures,
        &checkpoints,
        &in_progress,
        &restores,
        &last_duration,
        &last_size,
        &last_alignment,
        &records_in,
        &records_out,
        &bytes_in,
        &bytes_out,
        &batches_in,
        &batches_out,
        &busy,
        &backpressured,
        &busy_ratio,
        &backpressured_ratio,
        &idle_ratio,
        &queue,
        &credits,
        &watermark,
        &watermark_lag,
        &state_keys,
        &state_expired,
    ] {
        family.write(&mut out);
    }
    out
}

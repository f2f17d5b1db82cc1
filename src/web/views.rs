//! The JSON documents of the REST API, built from one [`JobFacts`] reading
//! of a job: pure functions (no I/O, no clock), so that their shapes are
//! tested with snapshots. Paths and field names follow Flink's REST API where
//! Flink has them (`jid`, `start-time`, `vertices`, `exceptionHistory`,
//! `counts`/`summary`/`history`, `backpressure-level`, ...), so scripts
//! written against Flink read weir's answers; what Flink does not have
//! (supervision, live watermarks, state sizes) is added beside.

use serde_json::{json, Value};

use weir_actors::checkpoint::{CheckpointConfig, CheckpointMode, CheckpointStats};
use weir_actors::job::FailureRecord;
use weir_actors::live::{BackpressureLevel, LiveVertex, VertexInfo};
use weir_actors::restart::Supervision;

use crate::{JobControl, JobStatus};

/// Everything the views read of one job, read at one moment.
#[derive(Clone, Debug)]
pub struct JobFacts {
    /// The job's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its status.
    pub status: JobStatus,
    /// When it was launched (ms since the epoch).
    pub started_ms: i64,
    /// When it ended, once it has.
    pub ended_ms: Option<i64>,
    /// When this reading was taken.
    pub now_ms: i64,
    /// The vertices and their edges.
    pub vertices: Vec<VertexInfo>,
    /// The vertices' live metrics.
    pub live: Vec<LiveVertex>,
    /// Every finished checkpoint, oldest first.
    pub checkpoints: Vec<CheckpointStats>,
    /// The latest failures, oldest first.
    pub failures: Vec<FailureRecord>,
    /// Failures so far.
    pub failures_total: u64,
    /// Where the restart strategy stands.
    pub supervision: Supervision,
    /// Its checkpoint settings, if it checkpoints.
    pub checkpoint_config: Option<CheckpointConfig>,
    /// Checkpoints in progress.
    pub checkpoints_in_progress: usize,
    /// Its restores (count, latest).
    pub restores: weir_actors::job::Restores,
}

impl JobFacts {
    /// Reads `job` now.
    pub fn of(job: &JobControl) -> Self {
        JobFacts {
            id: job.job_id().to_string(),
            name: job.name().to_string(),
            status: job.status(),
            started_ms: job.started_ms(),
            ended_ms: job.ended_ms(),
            now_ms: weir_actors::clock::processing_time_now(),
            vertices: job.vertices().to_vec(),
            live: job.live_metrics(),
            checkpoints: job.checkpoint_stats(),
            failures: job.failures(),
            failures_total: job.failures_total(),
            supervision: job.supervision(),
            checkpoint_config: job.checkpoint_config().cloned(),
            checkpoints_in_progress: job.checkpoints_in_progress(),
            restores: job.restores(),
        }
    }

    fn duration_ms(&self) -> i64 {
        self.ended_ms.unwrap_or(self.now_ms) - self.started_ms
    }

    /// Whether the job is running (its vertices' subtasks are).
    fn running(&self) -> bool {
        !self.status.is_terminal()
    }
}

/// Flink's name of a job status.
pub fn status_name(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Created => "CREATED",
        JobStatus::Running => "RUNNING",
        JobStatus::Restarting => "RESTARTING",
        JobStatus::Failing => "FAILING",
        JobStatus::Failed => "FAILED",
        JobStatus::Canceling => "CANCELLING",
        JobStatus::Canceled => "CANCELED",
        JobStatus::Finished => "FINISHED",
    }
}

fn vertex_status(job: &JobFacts, live: Option<&LiveVertex>) -> &'static str {
    let running = live.map_or(0, |v| v.subtasks.iter().filter(|s| s.running).count());
    if running > 0 {
        "RUNNING"
    } else if job.running() {
        match job.status {
            JobStatus::Created => "CREATED",
            JobStatus::Restarting => "RESTARTING",
            _ => "FINISHED",
        }
    } else {
        status_name(job.status)
    }
}

fn task_counts(job: &JobFacts) -> Value {
    let total: usize = job.vertices.iter().map(|v| v.parallelism).sum();
    let running: usize = job
        .live
        .iter()
        .flat_map(|v| &v.subtasks)
        .filter(|s| s.running)
        .count();
    let ended = total - running.min(total);
    let (finished, failed, canceled) = match job.status {
        JobStatus::Failed => (0, ended, 0),
        JobStatus::Canceled => (0, 0, ended),
        _ => (ended, 0, 0),
    };
    json!({
        "total": total,
        "running": running,
        "finished": if job.running() && job.status != JobStatus::Running { 0 } else { finished },
        "failed": failed,
        "canceled": canceled,
    })
}

/// One entry of `GET /jobs/overview`.
pub fn overview_entry(job: &JobFacts) -> Value {
    json!({
        "jid": job.id,
        "name": job.name,
        "state": status_name(job.status),
        "start-time": job.started_ms,
        "end-time": job.ended_ms.unwrap_or(-1),
        "duration": job.duration_ms(),
        "last-modification": job.ended_ms.unwrap_or(job.now_ms),
        "tasks": task_counts(job),
    })
}

/// `GET /jobs/overview`.
pub fn overview(jobs: &[JobFacts]) -> Value {
    json!({ "jobs": jobs.iter().map(overview_entry).collect::<Vec<_>>() })
}

/// `GET /jobs` (Flink's short listing).
pub fn job_ids(jobs: &[JobFacts]) -> Value {
    json!({
        "jobs": jobs
            .iter()
            .map(|j| json!({ "id": j.id, "status": status_name(j.status) }))
            .collect::<Vec<_>>()
    })
}

fn vertex_metrics(live: Option<&LiveVertex>) -> Value {
    let Some(v) = live else {
        return json!({});
    };
    let busy: u64 = v.subtasks.iter().map(|s| s.busy_ms_total).sum();
    let backpressured: u64 = v.subtasks.iter().map(|s| s.backpressured_ms_total).sum();
    json!({
        "read-records": v.records_in,
        "read-records-complete": true,
        "write-records": v.records_out,
        "write-records-complete": true,
        "read-bytes": v.bytes_in,
        "read-bytes-complete": true,
        "write-bytes": v.bytes_out,
        "write-bytes-complete": true,
        "accumulated-busy-time": busy,
        "accumulated-backpressured-time": backpressured,
        "records-in-per-second": v.records_in_per_second,
        "records-out-per-second": v.records_out_per_second,
        "busy-ratio": v.busy_ratio,
        "backpressured-ratio": v.backpressured_ratio,
        "backpressure-level": v.backpressure_level.as_str(),
        "watermark": v.watermark,
    })
}

/// `GET /jobs/{id}`: the job with its vertices and their metrics.
pub fn job_detail(job: &JobFacts) -> Value {
    let vertices: Vec<Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(id, info)| {
            let live = job.live.get(id);
            json!({
                "id": id.to_string(),
                "name": info.name,
                "parallelism": info.parallelism,
                "maxParallelism": info.parallelism,
                "operators": info.operators,
                "status": vertex_status(job, live),
                "start-time": job.started_ms,
                "end-time": job.ended_ms.unwrap_or(-1),
                "duration": job.duration_ms(),
                "metrics": vertex_metrics(live),
            })
        })
        .collect();
    json!({
        "jid": job.id,
        "name": job.name,
        "isStoppable": job.running() && job.checkpoint_config.is_some(),
        "state": status_name(job.status),
        "job-type": "STREAMING",
        "start-time": job.started_ms,
        "end-time": job.ended_ms.unwrap_or(-1),
        "duration": job.duration_ms(),
        "now": job.now_ms,
        "vertices": vertices,
        "plan": plan(job)["plan"].clone(),
        "supervision": supervision(job),
    })
}

fn supervision(job: &JobFacts) -> Value {
    json!({
        "strategy": job.supervision.strategy,
        "restarts": job.supervision.restarts,
        "limit": job.supervision.limit,
        "failures": job.failures_total,
        "last-failure": job.failures.last().map(|f| f.message.clone()),
    })
}

/// `GET /jobs/{id}/plan`: the vertices and the edges between them.
pub fn plan(job: &JobFacts) -> Value {
    let nodes: Vec<Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(id, info)| {
            let inputs: Vec<Value> = info
                .inputs
                .iter()
                .enumerate()
                .map(|(num, input)| {
                    json!({
                        "num": num,
                        "id": input.id.to_string(),
                        "ship_strategy": input.ship_strategy,
                        "exchange": "pipelined_bounded",
                        "side_output": input.side_output,
                    })
                })
                .collect();
            json!({
                "id": id.to_string(),
                "parallelism": info.parallelism,
                "operator": "",
                "operator_strategy": "",
                "description": info.name,
                "operators": info.operators,
                "inputs": inputs,
            })
        })
        .collect();
    json!({
        "plan": {
            "jid": job.id,
            "name": job.name,
            "type": "STREAMING",
            "nodes": nodes,
        }
    })
}

/// `GET /jobs/{id}/exceptions`: the failure history, newest first (as Flink).
pub fn exceptions(job: &JobFacts) -> Value {
    let entries: Vec<Value> = job
        .failures
        .iter()
        .rev()
        .map(|f| {
            json!({
                "exceptionName": "JobError",
                "stacktrace": f.message,
                "timestamp": f.timestamp_ms,
                "taskName": f.operator,
                "subtask": f.subtask,
                "restarted": f.restarted,
                "failureLabels": {},
                "concurrentExceptions": [],
            })
        })
        .collect();
    let truncated = job.failures_total > job.failures.len() as u64;
    let root = job.failures.last();
    json!({
        "root-exception": root.map(|f| f.message.clone()),
        "timestamp": root.map(|f| f.timestamp_ms),
        "truncated": truncated,
        "exceptionHistory": { "entries": entries, "truncated": truncated },
    })
}

fn checkpoint_status(stats: &CheckpointStats) -> &'static str {
    if stats.failure.is_none() {
        "COMPLETED"
    } else {
        "FAILED"
    }
}

fn checkpoint_type(stats: &CheckpointStats) -> &'static str {
    if stats.savepoint {
        "SAVEPOINT"
    } else if stats.unaligned {
        "UNALIGNED_CHECKPOINT"
    } else {
        "CHECKPOINT"
    }
}

/// One checkpoint as `history` and `details` list it.
fn checkpoint_entry(stats: &CheckpointStats) -> Value {
    let acknowledged = stats.subtasks.len();
    let alignment = stats
        .subtasks
        .iter()
        .map(|(_, _, s)| s.alignment_duration.as_millis() as u64)
        .max()
        .unwrap_or(0);
    json!({
        "id": stats.id,
        "status": checkpoint_status(stats),
        "is_savepoint": stats.savepoint,
        "checkpoint_type": checkpoint_type(stats),
        "trigger_timestamp": stats.trigger_time_ms,
        "latest_ack_timestamp": stats.trigger_time_ms + stats.end_to_end.as_millis() as i64,
        "end_to_end_duration": stats.end_to_end.as_millis() as u64,
        "state_size": stats.state_bytes,
        "checkpointed_size": stats.state_bytes,
        "persisted_data": stats.in_flight_bytes,
        "alignment_duration": alignment,
        "num_acknowledged_subtasks": acknowledged,
        "external_path": stats.location,
        "failure_message": stats.failure.as_ref().map(|f| f.to_string()),
    })
}

fn min_max_avg(values: impl Iterator<Item = u64>) -> Value {
    let values: Vec<u64> = values.collect();
    if values.is_empty() {
        return json!({ "min": 0, "max": 0, "avg": 0, "count": 0 });
    }
    let sum: u64 = values.iter().sum();
    json!({
        "min": values.iter().min(),
        "max": values.iter().max(),
        "avg": sum / values.len() as u64,
        "count": values.len(),
    })
}

/// `GET /jobs/{id}/checkpoints`: counts, a summary of the completed ones,
/// the latest of each kind, and the history (newest first).
pub fn checkpoints(job: &JobFacts) -> Value {
    let completed: Vec<&CheckpointStats> = job
        .checkpoints
        .iter()
        .filter(|c| c.failure.is_none())
        .collect();
    let failed = job
        .checkpoints
        .iter()
        .filter(|c| c.failure.as_ref().is_some_and(|f| f.counts_as_failure()))
        .count();
    let latest_completed = completed.iter().rev().find(|c| !c.savepoint);
    let latest_savepoint = completed.iter().rev().find(|c| c.savepoint);
    let latest_failed = job.checkpoints.iter().rev().find(|c| c.failure.is_some());
    json!({
        "counts": {
            "total": completed.len() + failed + job.checkpoints_in_progress,
            "completed": completed.len(),
            "failed": failed,
            "in_progress": job.checkpoints_in_progress,
            "restored": job.restores.count,
        },
        "summary": {
            "state_size": min_max_avg(completed.iter().map(|c| c.state_bytes)),
            "checkpointed_size": min_max_avg(completed.iter().map(|c| c.state_bytes)),
            "end_to_end_duration": min_max_avg(completed.iter().map(|c| c.end_to_end.as_millis() as u64)),
            "persisted_data": min_max_avg(completed.iter().map(|c| c.in_flight_bytes)),
        },
        "latest": {
            "completed": latest_completed.map(|c| checkpoint_entry(c)),
            "savepoint": latest_savepoint.map(|c| checkpoint_entry(c)),
            "failed": latest_failed.map(checkpoint_entry),
            "restored": job.restores.latest.as_ref().map(|r| json!({
                "id": r.id,
                "restore_timestamp": r.restore_timestamp_ms,
                "is_savepoint": r.savepoint,
                "external_path": r.location,
            })),
        },
        "history": job.checkpoints.iter().rev().map(checkpoint_entry).collect::<Vec<_>>(),
    })
}

/// `GET /jobs/{id}/checkpoints/config` (`None`: the job does not checkpoint).
pub fn checkpoint_config(job: &JobFacts) -> Option<Value> {
    let config = job.checkpoint_config.as_ref()?;
    Some(json!({
        "mode": match config.mode {
            CheckpointMode::ExactlyOnce => "exactly_once",
            CheckpointMode::AtLeastOnce => "at_least_once",
        },
        "interval": config.interval.map_or(i64::MAX, |i| i.as_millis() as i64),
        "timeout": config.timeout.as_millis() as u64,
        "min_pause": config.min_pause.as_millis() as u64,
        "max_concurrent": config.max_concurrent,
        "externalization": {
            "enabled": true,
            "delete_on_cancellation": matches!(
                config.retention,
                weir_actors::checkpoint::ExternalizedRetention::DeleteOnCancellation
            ),
        },
        "unaligned_checkpoints": config.unaligned,
        "aligned_checkpoint_timeout": config.aligned_timeout.map_or(0, |t| t.as_millis() as u64),
        "tolerable_failed_checkpoints": config.tolerable_failures,
        "retained_checkpoints": config.retained,
    }))
}

/// `GET /jobs/{id}/checkpoints/details/{cid}`: one checkpoint with its
/// figures per vertex and subtask (`None`: no such finished checkpoint).
pub fn checkpoint_details(job: &JobFacts, id: u64) -> Option<Value> {
    let stats = job.checkpoints.iter().rev().find(|c| c.id == id)?;
    let mut entry = checkpoint_entry(stats);
    let tasks: serde_json::Map<String, Value> = job
        .vertices
        .iter()
        .enumerate()
        .map(|(vertex, info)| {
            let subtasks: Vec<Value> = stats
                .subtasks
                .iter()
                .filter(|(task, _, _)| *task == info.name)
                .map(|(_, index, s)| {
                    json!({
                        "index": index,
                        "status": "completed",
                        "sync_duration": s.sync_duration.as_millis() as u64,
                        "async_duration": s.async_duration.as_millis() as u64,
                        "alignment_duration": s.alignment_duration.as_millis() as u64,
                        "state_size": s.state_bytes,
                        "persisted_data": s.in_flight_bytes,
                        "unaligned_checkpoint": s.unaligned,
                    })
                })
                .collect();
            let value = json!({
                "id": vertex.to_string(),
                "name": info.name,
                "num_subtasks": info.parallelism,
                "num_acknowledged_subtasks": subtasks.len(),
                "state_size": stats.subtasks.iter().filter(|(t, _, _)| *t == info.name).map(|(_, _, s)| s.state_bytes).sum::<u64>(),
                "subtasks": subtasks,
            });
            (vertex.to_string(), value)
        })
        .collect();
    entry["tasks"] = Value::Object(tasks);
    Some(entry)
}

/// `GET /jobs/{id}/vertices/{vid}/backpressure` (`None`: no such vertex).
pub fn backpressure(job: &JobFacts, vertex: usize) -> Option<Value> {
    let live = job.live.get(vertex)?;
    let subtasks: Vec<Value> = live
        .subtasks
        .iter()
        .map(|s| {
            json!({
                "subtask": s.subtask,
                "backpressure-level": s.backpressure_level.as_str(),
                "ratio": s.backpressured_ratio,
                "backPressuredRatio": s.backpressured_ratio,
                "busyRatio": s.busy_ratio,
                "idleRatio": s.idle_ratio,
            })
        })
        .collect();
    let level = live
        .subtasks
        .iter()
        .map(|s| s.backpressure_level)
        .max()
        .unwrap_or(BackpressureLevel::Ok);
    Some(json!({
        "status": "ok",
        "backpressure-level": level.as_str(),
        "end-timestamp": job.now_ms,
        "subtasks": subtasks,
    }))
}

/// The job-level metrics `GET /jobs/{id}/metrics` knows, with their values
/// (Flink's names where Flink has them).
pub fn job_metrics(job: &JobFacts) -> Vec<(&'static str, String)> {
    let completed: Vec<&CheckpointStats> = job
        .checkpoints
        .iter()
        .filter(|c| c.failure.is_none())
        .collect();
    let failed = job.checkpoints.len() - completed.len();
    let last = completed.last();
    let sum = |f: fn(&LiveVertex) -> f64| job.live.iter().map(f).sum::<f64>();
    vec![
        (
            "uptime",
            if job.running() { job.duration_ms() } else { 0 }.to_string(),
        ),
        ("numRestarts", job.supervision.restarts.to_string()),
        ("numFailures", job.failures_total.to_string()),
        ("numberOfCompletedCheckpoints", completed.len().to_string()),
        ("numberOfFailedCheckpoints", failed.to_string()),
        (
            "numberOfInProgressCheckpoints",
            job.checkpoints_in_progress.to_string(),
        ),
        (
            "lastCheckpointDuration",
            last.map_or(-1, |c| c.end_to_end.as_millis() as i64)
                .to_string(),
        ),
        (
            "lastCheckpointSize",
            last.map_or(-1, |c| c.state_bytes as i64).to_string(),
        ),
        (
            "lastCompletedCheckpointId",
            last.map_or(-1, |c| c.id as i64).to_string(),
        ),
        (
            "numRecordsInPerSecond",
            sum(|v| v.records_in_per_second).to_string(),
        ),
        (
            "numRecordsOutPerSecond",
            sum(|v| v.records_out_per_second).to_string(),
        ),
    ]
}

/// `GET /jobs/{id}/metrics[?get=a,b]`: without `get`, the metrics there are;
/// with it, their values (unknown names are left out, as Flink does).
pub fn metrics(job: &JobFacts, get: Option<&str>) -> Value {
    let all = job_metrics(job);
    match get {
        None => Value::Array(all.iter().map(|(id, _)| json!({ "id": id })).collect()),
        Some(wanted) => {
            let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
            Value::Array(
                all.iter()
                    .filter(|(id, _)| wanted.contains(id))
                    .map(|(id, value)| json!({ "id": id, "value": value }))
                    .collect(),
            )
        }
    }
}

/// The live metrics of every vertex and subtask, as weir has them
/// (`GET /jobs/{id}/live`: what the web page draws).
pub fn live(job: &JobFacts) -> Value {
    json!({
        "jid": job.id,
        "now": job.now_ms,
        "vertices": job.live,
    })
}

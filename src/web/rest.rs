//! The HTTP handlers of the REST API: they find the job, read it once
//! ([`JobFacts`]), and answer with what [`super::views`] builds. Writes
//! (savepoint, stop, cancel) check that the registry allows them.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Scope};
use serde_json::{json, Value};

use super::jobs::{Jobs, RequestState};
use super::views::{self, JobFacts};
use crate::JobControl;

/// The REST API, the Prometheus metrics and the web page of `jobs`, mounted
/// at `path` (`""` or `"/"`: at the root).
pub fn scope(path: &str, jobs: Jobs) -> Scope {
    let path = path.trim_end_matches('/');
    web::scope(path)
        .app_data(web::Data::new(jobs))
        .app_data(web::JsonConfig::default())
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            let answer = error(StatusCode::BAD_REQUEST, e.to_string()).response();
            actix_web::error::InternalError::from_response(e, answer).into()
        }))
        .route("", web::get().to(super::page::page))
        .route("/", web::get().to(super::page::page))
        .route("/metrics", web::get().to(prometheus))
        .route("/jobs", web::get().to(job_ids))
        .route("/jobs/overview", web::get().to(overview))
        .route("/jobs/{id}", web::get().to(job_detail))
        .route("/jobs/{id}", web::patch().to(cancel))
        .route("/jobs/{id}/plan", web::get().to(plan))
        .route("/jobs/{id}/exceptions", web::get().to(exceptions))
        .route("/jobs/{id}/checkpoints", web::get().to(checkpoints))
        .route(
            "/jobs/{id}/checkpoints/config",
            web::get().to(checkpoint_config),
        )
        .route(
            "/jobs/{id}/checkpoints/details/{cid}",
            web::get().to(checkpoint_details),
        )
        .route(
            "/jobs/{id}/vertices/{vid}/backpressure",
            web::get().to(backpressure),
        )
        .route("/jobs/{id}/metrics", web::get().to(metrics))
        .route("/jobs/{id}/live", web::get().to(live))
        .route("/jobs/{id}/state/{name}/{key}", web::get().to(state))
        .route("/jobs/{id}/savepoints", web::post().to(trigger_savepoint))
        .route(
            "/jobs/{id}/savepoints/{request}",
            web::get().to(savepoint_status),
        )
        .route("/jobs/{id}/stop", web::post().to(stop))
        .default_service(web::to(not_found))
}

/// An error answer: its status and message.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// As Flink answers: `{"errors": [message]}`.
    fn response(self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({ "errors": [self.message] }))
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

fn ok(value: Value) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    error(
        StatusCode::NOT_FOUND,
        format!("no such resource: {} {}", request.method(), request.path()),
    )
    .response()
}

/// The job of the path's `{id}`, or the 404 answer naming it.
fn job(jobs: &Jobs, id: &str) -> Result<JobControl, ApiError> {
    jobs.get(id).ok_or_else(|| {
        let known: Vec<String> = jobs.list().iter().map(|j| j.job_id().to_string()).collect();
        error(
            StatusCode::NOT_FOUND,
            format!(
                "job `{id}` is not known here (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
    })
}

fn facts(jobs: &Jobs, id: &str) -> Result<JobFacts, ApiError> {
    job(jobs, id).map(|j| JobFacts::of(&j))
}

fn all_facts(jobs: &Jobs) -> Vec<JobFacts> {
    jobs.list().iter().map(JobFacts::of).collect()
}

fn answer(result: Result<Value, ApiError>) -> HttpResponse {
    result.map_or_else(ApiError::response, ok)
}

async fn prometheus(jobs: web::Data<Jobs>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(super::prometheus::render(&all_facts(&jobs)))
}

async fn job_ids(jobs: web::Data<Jobs>) -> HttpResponse {
    ok(views::job_ids(&all_facts(&jobs)))
}

async fn overview(jobs: web::Data<Jobs>) -> HttpResponse {
    ok(views::overview(&all_facts(&jobs)))
}

async fn job_detail(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::job_detail(&f)))
}

async fn plan(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::plan(&f)))
}

async fn exceptions(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::exceptions(&f)))
}

async fn checkpoints(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::checkpoints(&f)))
}

async fn checkpoint_config(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).and_then(|f| {
        views::checkpoint_config(&f).ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("job `{}` does not take checkpoints", f.id),
            )
        })
    }))
}

async fn checkpoint_details(
    jobs: web::Data<Jobs>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, checkpoint) = path.into_inner();
    answer(facts(&jobs, &id).and_then(|f| {
        let cid: u64 = checkpoint.parse().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                format!("`{checkpoint}` is not a checkpoint id (a number)"),
            )
        })?;
        views::checkpoint_details(&f, cid).ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                format!("job `{id}` has no finished checkpoint {cid} in its history"),
            )
        })
    }))
}

async fn backpressure(jobs: web::Data<Jobs>, path: web::Path<(String, String)>) -> HttpResponse {
    let (id, vertex) = path.into_inner();
    answer(facts(&jobs, &id).and_then(|f| {
        let unknown = || {
            error(
                StatusCode::NOT_FOUND,
                format!(
                    "job `{id}` has no vertex `{vertex}` (its vertices: 0 to {})",
                    f.vertices.len().saturating_sub(1)
                ),
            )
        };
        let index: usize = vertex.parse().map_err(|_| unknown())?;
        views::backpressure(&f, index).ok_or_else(unknown)
    }))
}

#[derive(serde::Deserialize)]
struct MetricsQuery {
    get: Option<String>,
}

async fn metrics(
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
    query: web::Query<MetricsQuery>,
) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::metrics(&f, query.get.as_deref())))
}

async fn live(jobs: web::Data<Jobs>, id: web::Path<String>) -> HttpResponse {
    answer(facts(&jobs, &id).map(|f| views::live(&f)))
}

#[derive(serde::Deserialize)]
struct StateQueryParams {
    /// The operator (default: whichever has the queryable name).
    uid: Option<String>,
    /// `live` (default) or `committed`.
    consistency: Option<String>,
    /// With `committed`: at least this checkpoint.
    checkpoint: Option<u64>,
}

/// A queryable state's value for one key (`GET /jobs/{id}/state/{name}/{key}`):
/// the key as JSON text or plain text, the answer as JSON.
async fn state(
    jobs: web::Data<Jobs>,
    path: web::Path<(String, String, String)>,
    params: web::Query<StateQueryParams>,
) -> HttpResponse {
    use crate::query::{Consistency, QueryError, QueryTarget};
    let (id, name, key) = path.into_inner();
    let job = match job(&jobs, &id) {
        Ok(job) => job,
        Err(e) => return e.response(),
    };
    let consistency = match (params.consistency.as_deref(), params.checkpoint) {
        (None | Some("live"), None) => Consistency::Live,
        (Some("committed"), None) => Consistency::Committed,
        (Some("committed"), Some(n)) => Consistency::AtLeast(n),
        (None | Some("live"), Some(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "checkpoint=N asks for committed state: add consistency=committed",
            )
            .response()
        }
        (Some(other), _) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("consistency `{other}` is not live or committed"),
            )
            .response()
        }
    };
    let target = match &params.uid {
        Some(uid) => QueryTarget::in_operator(uid, &name),
        None => QueryTarget::named(&name),
    };
    match crate::query::query_json(&job, target, &key, consistency).await {
        Ok(value) => ok(json!({
            "name": name,
            "key": key,
            "value": value,
            "consistency": params.consistency.as_deref().unwrap_or("live"),
        })),
        Err(QueryError::NotYet { .. }) if job.checkpoint_config().is_none() => error(
            StatusCode::CONFLICT,
            format!(
                "job `{}` does not checkpoint: it has no committed state (ask for live state)",
                job.name()
            ),
        )
        .response(),
        Err(e) => {
            let status = match &e {
                QueryError::UnknownOperator { .. }
                | QueryError::UnknownState { .. }
                | QueryError::UnknownName { .. } => StatusCode::NOT_FOUND,
                QueryError::Codec(_) => StatusCode::BAD_REQUEST,
                // Restarting, or no checkpoint yet: ask again later.
                QueryError::Unavailable { retry: true, .. } | QueryError::NotYet { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                // Ended: it will not answer a live query again.
                QueryError::Unavailable { retry: false, .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string()).response()
        }
    }
}

fn writes_allowed(jobs: &Jobs) -> Result<(), ApiError> {
    if jobs.writes_allowed() {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "writes (savepoint, stop, cancel) are disabled on this server; \
             enable them with Jobs::allow_writes(true) (--web-writes for a job binary)",
        ))
    }
}

/// The body of a savepoint or stop request: empty, or a JSON object.
fn body(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the request body is not JSON: {e}"),
        )
    })?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object",
        ))
    }
}

/// A directory named in a request body under one of `keys`.
fn directory(body: &Value, keys: &[&str]) -> Result<Option<PathBuf>, ApiError> {
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(Value::String(dir)) => return Ok(Some(PathBuf::from(dir))),
            Some(other) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("`{key}` must be a string (a directory), not {other}"),
                ))
            }
        }
    }
    Ok(None)
}

fn running(job: &JobControl) -> Result<(), ApiError> {
    if job.status().is_terminal() {
        Err(error(
            StatusCode::CONFLICT,
            format!(
                "job `{}` has ended ({})",
                job.job_id(),
                views::status_name(job.status())
            ),
        ))
    } else {
        Ok(())
    }
}

/// Starts a savepoint (stopping the job after it when `stop`), answered by
/// `GET .../savepoints/{request}`.
fn start_savepoint(jobs: &Jobs, job: JobControl, dir: Option<PathBuf>, stop: bool) -> HttpResponse {
    let request = jobs.new_request(job.job_id());
    let registry = jobs.clone();
    let id = request.clone();
    actix_web::rt::spawn(async move {
        let outcome = if stop {
            job.stop_with_savepoint(dir.as_deref()).await
        } else {
            job.trigger_savepoint(dir.as_deref()).await
        };
        let state = match outcome {
            Ok(path) => RequestState::Completed(path.display().to_string()),
            Err(e) => RequestState::Failed(e.to_string()),
        };
        registry.finish_request(&id, state);
    });
    HttpResponse::Accepted().json(json!({ "request-id": request }))
}

async fn trigger_savepoint(
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> HttpResponse {
    let started = (|| {
        writes_allowed(&jobs)?;
        let job = job(&jobs, &id)?;
        let body = body(&bytes)?;
        let dir = directory(&body, &["target-directory", "targetDirectory"])?;
        let cancel = body
            .get("cancel-job")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        running(&job)?;
        Ok::<_, ApiError>((job, dir, cancel))
    })();
    match started {
        Ok((job, dir, cancel)) => start_savepoint(&jobs, job, dir, cancel),
        Err(e) => e.response(),
    }
}

async fn stop(jobs: web::Data<Jobs>, id: web::Path<String>, bytes: web::Bytes) -> HttpResponse {
    let started = (|| {
        writes_allowed(&jobs)?;
        let job = job(&jobs, &id)?;
        let body = body(&bytes)?;
        let dir = directory(&body, &["targetDirectory", "target-directory"])?;
        running(&job)?;
        Ok::<_, ApiError>((job, dir))
    })();
    match started {
        Ok((job, dir)) => start_savepoint(&jobs, job, dir, true),
        Err(e) => e.response(),
    }
}

async fn savepoint_status(
    jobs: web::Data<Jobs>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, request) = path.into_inner();
    if let Err(e) = job(&jobs, &id) {
        return e.response();
    }
    match jobs.request(&request).filter(|r| r.job_id == id) {
        None => error(
            StatusCode::NOT_FOUND,
            format!("job `{id}` has no savepoint request `{request}`"),
        )
        .response(),
        Some(r) => ok(match r.state {
            RequestState::InProgress => json!({ "status": { "id": "IN_PROGRESS" } }),
            RequestState::Completed(location) => json!({
                "status": { "id": "COMPLETED" },
                "operation": { "location": location },
            }),
            RequestState::Failed(message) => json!({
                "status": { "id": "COMPLETED" },
                "operation": { "failure-cause": { "class": "JobError", "stack-trace": message } },
            }),
        }),
    }
}

#[derive(serde::Deserialize)]
struct CancelQuery {
    mode: Option<String>,
}

async fn cancel(
    jobs: web::Data<Jobs>,
    id: web::Path<String>,
    query: web::Query<CancelQuery>,
) -> HttpResponse {
    let outcome = (|| {
        writes_allowed(&jobs)?;
        let job = job(&jobs, &id)?;
        match query.mode.as_deref() {
            None | Some("cancel") => {}
            Some(other) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("mode `{other}` is not known (only `cancel`)"),
                ))
            }
        }
        running(&job)?;
        job.cancel();
        Ok(())
    })();
    match outcome {
        Ok(()) => HttpResponse::Accepted().json(json!({})),
        Err(e) => e.response(),
    }
}

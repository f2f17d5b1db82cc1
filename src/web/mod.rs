//! See a running job: a REST API (Flink's paths and field names), Prometheus
//! metrics and one web page, as an actix-web [`Scope`](actix_web::Scope) the
//! host mounts in its own `App`, or served by weir itself.
//!
//! A [`Jobs`] registry holds the jobs a server shows; several jobs share it
//! (and one server). Writes (savepoint, stop, cancel) answer only when the
//! registry allows them ([`Jobs::allow_writes`]); they are off by default.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /` | the web page |
//! | `GET /metrics` | Prometheus text exposition |
//! | `GET /jobs`, `/jobs/overview` | the jobs |
//! | `GET /jobs/{id}` | a job, its vertices with metrics, its supervision |
//! | `GET /jobs/{id}/plan` | vertices and edges |
//! | `GET /jobs/{id}/exceptions` | the failure history |
//! | `GET /jobs/{id}/checkpoints` | counts, summary, latest, history |
//! | `GET /jobs/{id}/checkpoints/config` | checkpoint settings |
//! | `GET /jobs/{id}/checkpoints/details/{cid}` | one checkpoint, per vertex and subtask |
//! | `GET /jobs/{id}/vertices/{vid}/backpressure` | ratios and levels per subtask |
//! | `GET /jobs/{id}/metrics[?get=a,b]` | job metrics |
//! | `GET /jobs/{id}/live` | every subtask's live metrics |
//! | `GET /jobs/{id}/state/{name}/{key}[?consistency=committed&checkpoint=N&uid=U]` | a queryable state's value for a key (JSON or plain text), as JSON ([`crate::query::query_json`]) |
//! | `POST /jobs/{id}/savepoints` | trigger a savepoint: `202 {"request-id"}` |
//! | `GET /jobs/{id}/savepoints/{request}` | its status and location |
//! | `POST /jobs/{id}/stop` | stop with a savepoint: `202 {"request-id"}` |
//! | `PATCH /jobs/{id}?mode=cancel` | cancel: `202 {}` |
//!
//! Errors are JSON, `{"errors": ["..."]}`, with the status code that fits
//! (404 unknown job, vertex, checkpoint or queryable state; 403 writes
//! disabled; 400 a bad request body or a key of the wrong type; 409 a job
//! that cannot take it now; 503 a query the job cannot answer yet).
//!
//! ```no_run
//! use actix_web::{App, HttpServer};
//! use weir::web::{self, Jobs};
//! use weir::StreamEnv;
//!
//! # async fn run() -> std::io::Result<()> {
//! let jobs = Jobs::new().allow_writes(true);
//! let env = StreamEnv::new();
//! env.from_collection(vec![1, 2, 3]).discard();
//! let client = env.start("numbers").await.expect("starts");
//! jobs.add(&client);
//! let shown = jobs.clone();
//! HttpServer::new(move || App::new().service(web::scope("/weir", shown.clone())))
//!     .bind(("127.0.0.1", 8081))?
//!     .run()
//!     .await
//! # }
//! ```

pub mod client;
mod jobs;
mod page;
pub mod prometheus;
mod rest;
mod server;
pub mod views;

pub use jobs::Jobs;
pub use rest::scope;
pub use server::{serve, shared_server, WebServer, DEFAULT_PORT};

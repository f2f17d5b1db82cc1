//! The web server against running jobs: REST endpoints (shapes, status
//! codes, errors), Prometheus output read by a real parser, the `weir`
//! command as a client, and stop-with-savepoint over HTTP resumed under the
//! exactly-once audit.

#[allow(dead_code)] // the example's `main` is not used here
#[path = "../examples/exactly_once.rs"]
mod example;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use weir::web::{self, client, Jobs};
use weir::StreamEnv;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-web-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn args(dir: &Path, records: u64, fail_at: Vec<u64>) -> example::Args {
    example::Args {
        records,
        keys: 31,
        mode: "exactly-once".into(),
        unaligned: false,
        rate: Some(20_000),
        fail_at,
        output: dir.join("out"),
        stop_with_savepoint_after_ms: None,
        audit: false,
        job: weir::cli::JobArgs {
            parallelism: Some(2),
            checkpoint_interval_ms: Some(50),
            state_backend: Some("heap".into()),
            restart: Some("fixed-delay:10:0".into()),
            checkpoint_dir: Some(dir.join("checkpoints").display().to_string()),
            savepoint_dir: Some(dir.join("savepoints").display().to_string()),
            ..Default::default()
        },
    }
}

fn get(address: &str, path: &str) -> Result<Value, client::ClientError> {
    client::call(address, "GET", path, None)
}

fn status_of(error: client::ClientError) -> u16 {
    match error {
        client::ClientError::Refused { status, .. } => status,
        other => panic!("expected an HTTP error status, got {other}"),
    }
}

/// Waits (for a fact, not a time) until `ready` holds, at most a minute.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "not ready after 60 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rest_api_prometheus_and_stop_over_http_resume_exactly_once() {
    let dir = temp_dir("flow");
    let records = 200_000;
    let first = args(&dir, records, vec![7_000]);
    let env = StreamEnv::new();
    example::build(&env, &first).unwrap();
    let jobs = Jobs::new().allow_writes(true);
    let server = web::serve("127.0.0.1:0".parse().unwrap(), jobs.clone()).unwrap();
    let address = server.address().to_string();

    futures::executor::block_on(async {
        let mut job = env.start("exactly-once").await.unwrap();
        jobs.add(&job);
        let id = job.job_id().to_string();
        // A restart (the injected failure) and two checkpoints after it.
        wait_until("a restart and checkpoints", || {
            job.restarts() >= 1
                && job.status() == weir::JobStatus::Running
                && job
                    .checkpoint_stats()
                    .iter()
                    .filter(|c| c.failure.is_none())
                    .count()
                    >= 3
        });

        let overview = get(&address, "/jobs/overview").unwrap();
        assert_eq!(overview["jobs"][0]["jid"], json!(id));
        assert_eq!(overview["jobs"][0]["state"], json!("RUNNING"));
        assert!(overview["jobs"][0]["tasks"]["total"].as_u64().unwrap() >= 2);

        // The restarted deployment's subtasks count from zero (as a new
        // attempt does in Flink): wait until one of them has read records.
        let read_records = |detail: &Value| {
            detail["vertices"].as_array().is_some_and(|vertices| {
                vertices
                    .iter()
                    .any(|v| v["metrics"]["read-records"].as_u64().unwrap_or(0) > 0)
            })
        };
        wait_until("records read after the restart", || {
            get(&address, &format!("/jobs/{id}")).is_ok_and(|d| read_records(&d))
        });
        let detail = get(&address, &format!("/jobs/{id}")).unwrap();
        let vertices = detail["vertices"].as_array().unwrap();
        assert!(vertices.len() >= 2, "{detail}");
        assert!(read_records(&detail), "{detail}");
        // Bytes as records (u64 values: 1 to 9 encoded bytes each).
        for v in vertices {
            let (records, bytes) = (
                v["metrics"]["read-records"].as_u64().unwrap(),
                v["metrics"]["read-bytes"].as_u64().unwrap(),
            );
            assert!(records <= bytes && bytes <= 9 * records, "{v}");
        }
        assert_eq!(detail["supervision"]["restarts"], json!(1));
        assert_eq!(
            detail["supervision"]["limit"],
            json!("1 of 10 attempts used")
        );

        let plan = get(&address, &format!("/jobs/{id}/plan")).unwrap();
        let nodes = plan["plan"]["nodes"].as_array().unwrap();
        assert!(nodes.iter().any(|n| n["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["ship_strategy"] == "HASH")));

        let exceptions = get(&address, &format!("/jobs/{id}/exceptions")).unwrap();
        let entries = exceptions["exceptionHistory"]["entries"]
            .as_array()
            .unwrap();
        assert_eq!(entries.len(), 1, "{exceptions}");
        assert_eq!(entries[0]["restarted"], json!(true));
        assert!(!entries[0]["stacktrace"].as_str().unwrap().is_empty());

        // A checkpoint in progress is counted (one is, a few ms of every 50).
        wait_until("a checkpoint in progress", || {
            get(&address, &format!("/jobs/{id}/checkpoints"))
                .is_ok_and(|c| c["counts"]["in_progress"].as_u64() == Some(1))
        });
        let checkpoints = get(&address, &format!("/jobs/{id}/checkpoints")).unwrap();
        assert!(checkpoints["counts"]["completed"].as_u64().unwrap() >= 3);
        let latest = checkpoints["history"][0]["id"].as_u64().unwrap();
        let details = get(
            &address,
            &format!("/jobs/{id}/checkpoints/details/{latest}"),
        )
        .unwrap();
        let subtasks: usize = details["tasks"]
            .as_object()
            .unwrap()
            .values()
            .map(|t| t["subtasks"].as_array().unwrap().len())
            .sum();
        assert!(subtasks >= 4, "{details}");
        let config = get(&address, &format!("/jobs/{id}/checkpoints/config")).unwrap();
        assert_eq!(config["mode"], json!("exactly_once"));
        assert_eq!(config["interval"], json!(50));

        let backpressure = get(&address, &format!("/jobs/{id}/vertices/0/backpressure")).unwrap();
        assert_eq!(backpressure["subtasks"].as_array().unwrap().len(), 2);
        assert!(
            ["ok", "low", "high"].contains(&backpressure["backpressure-level"].as_str().unwrap())
        );

        let metrics = get(
            &address,
            &format!("/jobs/{id}/metrics?get=numRestarts,numberOfCompletedCheckpoints"),
        )
        .unwrap();
        assert_eq!(metrics[0], json!({ "id": "numRestarts", "value": "1" }));

        // Queryable state over HTTP: the live value is at least what a typed
        // query read just before (counts only grow), a committed one is
        // there, and the key may be plain text or JSON.
        use weir::query::{Consistency, QueryableState};
        let typed: (u64, u64) = job
            .query("count-and-sum", &3_u64, Consistency::Live)
            .await
            .unwrap()
            .expect("key 3 has a count");
        let state = get(&address, &format!("/jobs/{id}/state/count-and-sum/3")).unwrap();
        assert_eq!(state["key"], json!("3"));
        assert!(state["value"][0].as_u64().unwrap() >= typed.0, "{state}");
        let committed = get(
            &address,
            &format!("/jobs/{id}/state/count-and-sum/3?consistency=committed&uid=count-and-sum"),
        )
        .unwrap();
        assert!(committed["value"][0].as_u64().unwrap() > 0, "{committed}");
        let absent = get(&address, &format!("/jobs/{id}/state/count-and-sum/999")).unwrap();
        assert_eq!(absent["value"], Value::Null);
        let state_error =
            |path: &str| status_of(get(&address, &format!("/jobs/{id}/state/{path}")).unwrap_err());
        assert_eq!(state_error("nope/3"), 404);
        assert_eq!(state_error("count-and-sum/alice"), 400);
        assert_eq!(state_error("count-and-sum/3?uid=nope"), 404);
        assert_eq!(state_error("count-and-sum/3?consistency=eventual"), 400);
        // The operator reads the key for committed queries too.
        assert_eq!(
            state_error("count-and-sum/alice?consistency=committed"),
            400
        );
        // A malformed parameter is a JSON error like any other.
        assert_eq!(state_error("count-and-sum/3?checkpoint=abc"), 400);

        // The JSON shapes scripts rely on, values redacted: no field renamed,
        // moved or retyped without this test saying so.
        let live = get(&address, &format!("/jobs/{id}/live")).unwrap();
        let shapes = [
            ("overview", &overview),
            ("job", &detail),
            ("plan", &plan),
            ("exceptions", &exceptions),
            ("checkpoints", &checkpoints),
            ("checkpoint_details", &details),
            ("checkpoint_config", &config),
            ("backpressure", &backpressure),
            ("metrics", &metrics),
            ("live", &live),
            ("state", &state),
        ];
        // Fields that are null or not by timing (a checkpoint that failed
        // around the injected failure, a savepoint not taken yet).
        let either = [
            "/latest/failed",
            "/latest/restored",
            "/latest/savepoint",
            "/latest/completed/failure_message",
            "/history/0/failure_message",
        ];
        for (name, value) in shapes {
            let mut value = value.clone();
            for pointer in either {
                if let Some(field) = value.pointer_mut(pointer) {
                    *field = json!("<null or not>");
                }
            }
            insta::assert_snapshot!(
                format!("shape_{name}"),
                serde_json::to_string_pretty(&shape(&value)).unwrap()
            );
        }

        // Errors: unknown job, vertex, checkpoint; a bad body.
        assert_eq!(status_of(get(&address, "/jobs/nope").unwrap_err()), 404);
        assert_eq!(
            status_of(get(&address, &format!("/jobs/{id}/vertices/99/backpressure")).unwrap_err()),
            404
        );
        assert_eq!(
            status_of(
                get(&address, &format!("/jobs/{id}/checkpoints/details/999999")).unwrap_err()
            ),
            404
        );
        assert_eq!(
            status_of(
                client::call(
                    &address,
                    "POST",
                    &format!("/jobs/{id}/stop"),
                    Some(&json!({ "targetDirectory": 5 }))
                )
                .unwrap_err()
            ),
            400
        );

        // Prometheus, read by a real parser.
        let text = raw_get(&address, "/metrics");
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let records_in: f64 = scrape
            .samples
            .iter()
            .filter(|s| s.metric == "weir_records_in_total")
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => panic!("weir_records_in_total is not a counter"),
            })
            .sum();
        assert!(records_in > 0.0, "{text}");
        assert!(scrape
            .samples
            .iter()
            .any(|s| s.metric == "weir_bytes_in_total"
                && matches!(s.value, prometheus_parse::Value::Counter(v) if v > 0.0)));
        assert!(scrape
            .samples
            .iter()
            .any(|s| s.metric == "weir_job_restarts_total"
                && s.labels.get("job_id") == Some(id.as_str())));

        // Stop with a savepoint over HTTP.
        let savepoints = dir.join("http-savepoints");
        let started = client::call(
            &address,
            "POST",
            &format!("/jobs/{id}/stop"),
            Some(&json!({ "targetDirectory": savepoints.display().to_string() })),
        )
        .unwrap();
        let request = started["request-id"].as_str().unwrap().to_string();
        let mut location = None;
        wait_until("the stop's savepoint", || {
            let status = get(&address, &format!("/jobs/{id}/savepoints/{request}")).unwrap();
            if status["status"]["id"] == "COMPLETED" {
                location = Some(
                    status["operation"]["location"]
                        .as_str()
                        .unwrap_or_else(|| panic!("the savepoint failed: {status}"))
                        .to_string(),
                );
            }
            location.is_some()
        });
        job.wait().await.unwrap();
        let location = location.unwrap();
        assert!(location.starts_with(&savepoints.display().to_string()));
        let ended = get(&address, &format!("/jobs/{id}")).unwrap();
        assert_eq!(ended["state"], json!("FINISHED"));
        // An ended job answers no live query again: 409, not "retry".
        assert_eq!(
            status_of(get(&address, &format!("/jobs/{id}/state/count-and-sum/3")).unwrap_err()),
            409
        );
        // A job that has ended takes no more writes.
        assert_eq!(
            status_of(
                client::call(&address, "PATCH", &format!("/jobs/{id}?mode=cancel"), None)
                    .unwrap_err()
            ),
            409
        );
    });

    // Resume to the end: every record counted exactly once.
    let mut second = args(&dir, records, Vec::new());
    second.job.resume_from = Some(
        std::fs::read_dir(dir.join("http-savepoints"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .display()
            .to_string(),
    );
    second.rate = None;
    let env = StreamEnv::new();
    example::build(&env, &second).unwrap();
    futures::executor::block_on(async {
        let mut job = env.start("exactly-once").await.unwrap();
        jobs.add(&job);
        job.wait().await.unwrap();
        // The restore is the job's history: counted, and where from.
        let id = job.job_id().to_string();
        let checkpoints = get(&address, &format!("/jobs/{id}/checkpoints")).unwrap();
        assert_eq!(checkpoints["counts"]["restored"], json!(1), "{checkpoints}");
        let restored = &checkpoints["latest"]["restored"];
        assert_eq!(restored["is_savepoint"], json!(true), "{restored}");
        assert_eq!(
            restored["external_path"].as_str(),
            second.job.resume_from.as_deref()
        );
        assert_eq!(checkpoints["counts"]["in_progress"], json!(0));
    });
    example::audit(&second.output, records, second.keys).unwrap();
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `value` with every value redacted to its type (`"<number>"`,
/// `"<string>"`, `"<bool>"`, `"<null>"`), arrays to their first element
/// and maps whose keys are ids (vertex ids, subtask indexes) to one entry
/// under `"<id>"`: what stays is the shape.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("<null>"),
        Value::Bool(_) => json!("<bool>"),
        Value::Number(_) => json!("<number>"),
        Value::String(s) if s.starts_with("<null or") => value.clone(),
        Value::String(_) => json!("<string>"),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::Object(fields) if !fields.is_empty() && fields.keys().all(|k| is_id(k)) => {
            json!({ "<id>": shape(fields.values().next().unwrap()) })
        }
        Value::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// A map key that is an id: digits, or a 32-digit hex job or vertex id.
fn is_id(key: &str) -> bool {
    key.chars().all(|c| c.is_ascii_digit())
        || (key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The body of a GET, as text (for the Prometheus exposition).
fn raw_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("text/plain; version=0.0.4"));
    body.to_string()
}

#[test]
fn writes_are_refused_unless_allowed_and_the_command_lists_jobs() {
    let env = StreamEnv::with_parallelism(1);
    env.generate(u64::MAX, |i| i)
        .map(|x: u64| x + 1)
        .uid("plus-one")
        .discard();
    let jobs = Jobs::new();
    let server = web::serve("127.0.0.1:0".parse().unwrap(), jobs.clone()).unwrap();
    let address = server.address().to_string();
    futures::executor::block_on(async {
        let mut job = env.start("endless").await.unwrap();
        jobs.add(&job);
        let id = job.job_id().to_string();
        for (method, path) in [
            ("POST", format!("/jobs/{id}/savepoints")),
            ("POST", format!("/jobs/{id}/stop")),
            ("PATCH", format!("/jobs/{id}?mode=cancel")),
        ] {
            let error = client::call(&address, method, &path, None).unwrap_err();
            assert!(error.to_string().contains("disabled"), "{error}");
            assert_eq!(status_of(error), 403);
        }
        // No checkpointing: no checkpoint settings, no committed state.
        assert_eq!(
            status_of(get(&address, &format!("/jobs/{id}/checkpoints/config")).unwrap_err()),
            404
        );
        let committed = get(
            &address,
            &format!("/jobs/{id}/state/anything/1?consistency=committed"),
        )
        .unwrap_err();
        assert!(
            committed.to_string().contains("does not checkpoint"),
            "{committed}"
        );
        assert_eq!(status_of(committed), 409);

        let weir = env!("CARGO_BIN_EXE_weir");
        let output = std::process::Command::new(weir)
            .args(["list", "--address", &address])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let listed = String::from_utf8_lossy(&output.stdout);
        assert!(
            listed.contains(&id) && listed.contains("RUNNING"),
            "{listed}"
        );
        let refused = std::process::Command::new(weir)
            .args(["cancel", &id, "--address", &address])
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("403"));

        // The page is served and names the API it reads.
        let page = get_text(&address, "/");
        assert!(page.contains("<base href=\"/\">") && page.contains("jobs/overview"));

        job.cancel();
        let _ = job.wait().await;
    });
    server.stop();
    // Nothing answers there any more: the command says so, once, and fails.
    let unanswered = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["list", "--address", &address])
        .output()
        .unwrap();
    assert_eq!(unanswered.status.code(), Some(1), "{unanswered:?}");
    let said = String::from_utf8_lossy(&unanswered.stderr);
    assert!(
        said.contains(&format!("nothing answers at {address}")) && said.contains("--web-port"),
        "{said}"
    );
}

fn get_text(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The page in a real browser: headless Chromium loads it against a running
/// job and the job graph and the checkpoint table render with its data.
#[test]
fn the_page_renders_the_graph_and_checkpoints_in_chromium() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("WEIR_REQUIRE_SERVERS").is_none(),
            "WEIR_REQUIRE_SERVERS is set and chromium is not installed"
        );
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = temp_dir("page");
    let mut first = args(&dir, 400_000, Vec::new());
    // Few enough checkpoints that the page's table (the latest 50) still
    // holds the one checked below when the browser reads it.
    first.job.checkpoint_interval_ms = Some(250);
    let env = StreamEnv::new();
    example::build(&env, &first).unwrap();
    let jobs = Jobs::new().allow_writes(true);
    let server = web::serve("127.0.0.1:0".parse().unwrap(), jobs.clone()).unwrap();
    let address = server.address().to_string();
    futures::executor::block_on(async {
        let mut job = env.start("exactly-once").await.unwrap();
        jobs.add(&job);
        wait_until("two checkpoints", || job.checkpoint_stats().len() >= 2);
        // One the page must show (it reads the history after this).
        let id = job
            .checkpoint_stats()
            .iter()
            .find(|c| c.failure.is_none())
            .expect("a completed checkpoint")
            .id;
        let profile = dir.join("chromium-profile");
        let output = std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=4000",
                &format!("--user-data-dir={}", profile.display()),
                "--dump-dom",
                &format!("http://{address}/"),
            ])
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&output.stdout);
        assert!(
            dom.contains("data-loaded=\"true\""),
            "the page did not load its data: {dom}"
        );
        // The graph: one vertex group per vertex, coloured by its level.
        let vertices = dom.matches("class=\"vertex\"").count();
        assert!(vertices >= 2, "{dom}");
        assert!(
            dom.contains("data-level=\"ok\"")
                || dom.contains("data-level=\"low\"")
                || dom.contains("data-level=\"high\"")
        );
        // Writes are allowed and the job runs: its buttons are shown.
        assert!(dom.contains("<div id=\"actions\">"), "{dom}");
        assert!(dom.contains("id=\"stop\""));
        // The checkpoint table holds the job's completed checkpoints.
        assert!(
            dom.contains(&format!("data-id=\"{id}\" data-status=\"COMPLETED\"")),
            "{dom}"
        );
        job.cancel();
        let _ = job.wait().await;
    });
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

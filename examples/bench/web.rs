//! `web`: the REST API's latency while `--web-jobs` (default 10) keyed-count
//! jobs run in the process, each checkpointing every second, all shown on
//! one [`weir::web`] server. One client thread sends `--requests` (default
//! 3 000) requests in turn to the endpoints a dashboard and a scraper poll
//! (`/jobs/overview`, `/jobs/{id}`, `/jobs/{id}/checkpoints`,
//! `/jobs/{id}/vertices/0/backpressure`, `/jobs/{id}/metrics`,
//! `/jobs/{id}/live`, and the Prometheus `/metrics` of every job), each on a
//! new connection, and reports p50, p99 and max per endpoint and overall.
//! `page_load_ms` is the page's first load as the browser makes it: the
//! page, then the overview, then the job's detail, live figures,
//! checkpoints and exceptions at once (the median of 20 loads). The jobs
//! are cancelled at the end; `records` counts what they processed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use weir::web::{self, client, Jobs};

use crate::keyed_count::CountPerKey;
use crate::{Args, BenchResult, Report};

/// The endpoints asked in turn (`{id}`: one of the jobs, in turn).
const ENDPOINTS: [&str; 7] = [
    "/jobs/overview",
    "/jobs/{id}",
    "/jobs/{id}/checkpoints",
    "/jobs/{id}/vertices/0/backpressure",
    "/jobs/{id}/metrics",
    "/jobs/{id}/live",
    "/metrics",
];

/// Starts the jobs and the server, measures, cancels the jobs.
pub(crate) fn run(args: &Args) -> BenchResult<Report> {
    let keys = args.keys;
    let records = args.records();
    let jobs = Jobs::new();
    let server = web::serve("127.0.0.1:0".parse()?, jobs.clone())?;
    let address = server.address().to_string();
    let mut clients = Vec::new();
    let mut counters = Vec::new();
    let start = Instant::now();
    for n in 0..args.web_jobs {
        let env = args.env();
        env.set_checkpoint_config(weir::CheckpointConfig {
            interval: Some(Duration::from_secs(1)),
            ..weir::CheckpointConfig::default()
        });
        env.set_checkpoint_storage(weir::StorageSpec::Memory {
            max_state_size: 1 << 30,
        });
        let counter = env
            .generate(records, move |i| i % keys)
            .key_by(|key: &u64| *key)
            .process(CountPerKey::new())
            .uid("counter")
            .discard();
        let client = futures::executor::block_on(env.start(&format!("keyed-count-{n}")))?;
        jobs.add(&client);
        clients.push(client);
        counters.push(counter);
    }
    let ids: Vec<String> = clients.iter().map(|c| c.job_id().to_string()).collect();
    // Every job has completed a checkpoint: the answers have their full size.
    let deadline = Instant::now() + Duration::from_secs(60);
    while clients.iter().any(|c| c.checkpoint_stats().is_empty()) {
        if Instant::now() > deadline {
            return Err("no checkpoint completed within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut latencies: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in 0..args.requests {
        let endpoint = ENDPOINTS[i as usize % ENDPOINTS.len()];
        let path = endpoint.replace("{id}", &ids[(i as usize / ENDPOINTS.len()) % ids.len()]);
        let asked = Instant::now();
        fetch(&address, &path)?;
        latencies
            .entry(endpoint)
            .or_default()
            .push(asked.elapsed().as_secs_f64() * 1e3);
    }
    let mut loads: Vec<f64> = (0..20)
        .map(|n| page_load(&address, &ids[n % ids.len()]))
        .collect::<BenchResult<_>>()?;
    loads.sort_by(f64::total_cmp);

    for client in &clients {
        client.cancel();
    }
    for mut client in clients {
        let _ = futures::executor::block_on(client.wait());
    }
    let elapsed = start.elapsed();
    server.stop();

    let mut all: Vec<f64> = latencies.values().flatten().copied().collect();
    let per_endpoint: serde_json::Map<String, serde_json::Value> = latencies
        .iter_mut()
        .map(|(endpoint, l)| (endpoint.to_string(), json!(percentiles(l))))
        .collect();
    let processed: u64 = counters.iter().map(|c| c.records()).sum();
    Ok(Report::new(args, processed, elapsed)
        .with("web_jobs", json!(args.web_jobs))
        .with("requests", json!(args.requests))
        .with("rest_ms", json!(percentiles(&mut all)))
        .with("rest_ms_per_endpoint", json!(per_endpoint))
        .with("page_load_ms", json!(loads[loads.len() / 2])))
}

/// p50, p99 and max of `latencies` (ms).
fn percentiles(latencies: &mut [f64]) -> serde_json::Value {
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    json!({ "p50": at(0.5), "p99": at(0.99), "max": at(1.0) })
}

/// One GET: JSON through the crate's client, the exposition as text.
fn fetch(address: &str, path: &str) -> BenchResult<()> {
    if path == "/metrics" || path == "/" {
        let body = raw_get(address, path)?;
        if body.is_empty() {
            return Err(format!("GET {path}: an empty answer").into());
        }
        return Ok(());
    }
    client::call(address, "GET", path, None)?;
    Ok(())
}

/// The body of a GET that does not answer JSON.
fn raw_get(address: &str, path: &str) -> BenchResult<String> {
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!("GET {path}: {answer:.200}").into()),
    }
}

/// The page's first load (ms): the page, the overview, then the job's four
/// views at once, as the page's script asks for them.
fn page_load(address: &str, id: &str) -> BenchResult<f64> {
    let began = Instant::now();
    fetch(address, "/")?;
    fetch(address, "/jobs/overview")?;
    let views = ["", "/live", "/checkpoints", "/exceptions"].map(|view| {
        let address = address.to_string();
        let path = format!("/jobs/{id}{view}");
        std::thread::spawn(move || fetch(&address, &path).map_err(|e| e.to_string()))
    });
    for view in views {
        view.join().map_err(|_| "a page request panicked")??;
    }
    Ok(began.elapsed().as_secs_f64() * 1e3)
}

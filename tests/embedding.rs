//! Embedding: running jobs from the places programs run them.
//!
//! - inside an existing actix System (`System::new().block_on(..)`, and under
//!   `#[actix_rt::test]`): `execute(..).await`, with the job's supervisor on the
//!   caller's Arbiter; the System outlives the job and runs the next one;
//! - from a plain `#[test]` (a plain `main`): `execute_blocking`;
//! - from a tokio runtime (`#[tokio::test]`), where no actix System runs:
//!   `execute(..).await`, the job bringing its own System on its own thread;
//! - two jobs at once in one System: both started, then both awaited; a
//!   rendezvous between their sinks proves they really run at the same time;
//! - any job name: the name becomes the job thread's name, which may not hold a
//!   NUL byte.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use weir::sink::{CollectHandle, Sink};
use weir::{Lifecycle, StreamEnv, UserError};

/// A small job: the squares of 0..100, rebalanced over two subtasks.
fn squares() -> (StreamEnv, CollectHandle<u64>) {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(100, |i| i)
        .rebalance()
        .map(|i| i * i)
        .collect();
    (env, out)
}

fn assert_squares(out: &CollectHandle<u64>) {
    let mut values = out.take();
    values.sort();
    assert_eq!(values, (0..100).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn execute_inside_an_existing_system() {
    let (env, out) = squares();
    let result = actix_rt::System::new()
        .block_on(async move { env.execute("in-system").await })
        .unwrap();
    assert_eq!(result.job_name, "in-system");
    assert_squares(&out);
}

#[test]
fn a_system_runs_one_job_after_another() {
    let (first, first_out) = squares();
    let (second, second_out) = squares();
    actix_rt::System::new().block_on(async move {
        first.execute("first").await.unwrap();
        // The first job ended without stopping the System it ran in.
        second.execute("second").await.unwrap();
    });
    assert_squares(&first_out);
    assert_squares(&second_out);
}

#[actix_rt::test]
async fn execute_under_actix_rt_test() {
    let (env, out) = squares();
    env.execute("actix-rt-test").await.unwrap();
    assert_squares(&out);
}

#[test]
fn execute_blocking_from_a_plain_thread() {
    let (env, out) = squares();
    let result = env.execute_blocking("blocking").unwrap();
    assert_eq!(result.job_name, "blocking");
    assert_squares(&out);
}

#[tokio::test]
async fn execute_from_a_tokio_runtime() {
    let (env, out) = squares();
    env.execute("tokio").await.unwrap();
    assert_squares(&out);
}

#[tokio::test]
async fn start_and_wait_from_a_tokio_runtime() {
    let (env, out) = squares();
    let mut client = env.start("tokio-client").await.unwrap();
    assert_eq!(client.name(), "tokio-client");
    let result = client.wait().await.unwrap();
    assert_eq!(result.job_name, "tokio-client");
    assert_squares(&out);
}

/// On its first batch, tells the other job's sink and waits to hear from it.
#[derive(Clone)]
struct Rendezvous {
    tell: mpsc::Sender<()>,
    hear: Arc<Mutex<mpsc::Receiver<()>>>,
    met: bool,
}

/// A pair of sinks that can only both get past their first batch if their
/// jobs run at the same time.
fn rendezvous() -> (Rendezvous, Rendezvous) {
    let (to_a, a_hears) = mpsc::channel();
    let (to_b, b_hears) = mpsc::channel();
    let sink = |tell, hear| Rendezvous {
        tell,
        hear: Arc::new(Mutex::new(hear)),
        met: false,
    };
    (sink(to_b, a_hears), sink(to_a, b_hears))
}

impl Lifecycle for Rendezvous {}

impl Sink<u64> for Rendezvous {
    fn write(&mut self, record: u64) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, _batch: Vec<u64>) -> Result<(), UserError> {
        if !self.met {
            let _ = self.tell.send(());
            // Not a synchronisation by time: the timeout only turns a hang into
            // a failure, should the other job never run.
            self.hear
                .lock()
                .map_err(|_| "poisoned")?
                .recv_timeout(Duration::from_secs(60))
                .map_err(|e| format!("the other job's sink never got a record: {e}"))?;
            self.met = true;
        }
        Ok(())
    }
}

#[test]
fn two_jobs_run_concurrently_in_one_system() {
    let (sink_a, sink_b) = rendezvous();
    let (a, b) = (
        StreamEnv::with_parallelism(2),
        StreamEnv::with_parallelism(2),
    );
    a.generate(1_000, |i| i).add_sink(sink_a).set_parallelism(1);
    b.generate(1_000, |i| i).add_sink(sink_b).set_parallelism(1);
    let count_a = a.generate(500, |i| i).discard();
    let count_b = b.generate(700, |i| i).discard();

    actix_rt::System::new().block_on(async move {
        let mut job_a = a.start("job-a").await.unwrap();
        let mut job_b = b.start("job-b").await.unwrap();
        assert_ne!(job_a.job_id(), job_b.job_id());
        let result_a = job_a.wait().await.unwrap();
        let result_b = job_b.wait().await.unwrap();
        assert_eq!(
            (result_a.job_name.as_str(), result_b.job_name.as_str()),
            ("job-a", "job-b")
        );
    });
    assert_eq!((count_a.records(), count_b.records()), (500, 700));
}

/// `launch` names the job's thread `weir-job-{name}` with
/// `std::thread::Builder::name`, and `Builder::spawn` panics on a name holding
/// a NUL byte: the panic escapes `execute_blocking` instead of an error.
#[test]
fn a_job_name_with_a_nul_byte_does_not_panic() {
    let env = StreamEnv::with_parallelism(1);
    env.generate(10, |i| i).discard();
    let outcome = std::panic::catch_unwind(|| env.execute_blocking("nul\0name"));
    assert!(outcome.is_ok(), "execute_blocking panicked");
}

//! Scheduling: a subtask whose every step is long (each of its batches takes
//! longer than a step's time budget) keeps its thread busy and still lets
//! control through: a checkpoint it is asked for, and a cancel, are answered
//! within a few of its steps; and a subtask on the same thread that only a
//! message from another thread wakes (an idle source asked for a checkpoint)
//! gets its turn within a few of the busy one's steps too.
//!
//! The bounds are counted in the slow subtask's batches (one batch is one
//! step here), never in time: the test only waits for events.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::sink::Sink;
use weir::source::{Source, SourceStatus};
use weir::state::StateSnapshotContext;
use weir::{CheckpointConfig, JobError, Lifecycle, StreamEnv, UserError};

/// How long the sink spends on every batch: longer than a step's budget
/// (1 ms), so each batch is a step of its own that ends on the budget.
const SPIN: Duration = Duration::from_millis(2);

/// Spins `SPIN` on every batch and counts them; remembers the count at each
/// snapshot and at `close`.
#[derive(Clone, Default)]
struct SpinningSink {
    batches: Arc<AtomicU64>,
    at_snapshots: Arc<Mutex<Vec<u64>>>,
    at_close: Arc<Mutex<Option<u64>>>,
}

impl SpinningSink {
    fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }
}

impl Lifecycle for SpinningSink {
    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.at_snapshots.lock().unwrap().push(self.batches());
        Ok(())
    }

    fn close(&mut self) -> Result<(), UserError> {
        *self.at_close.lock().unwrap() = Some(self.batches());
        Ok(())
    }
}

impl Sink<u64> for SpinningSink {
    fn write(&mut self, record: u64) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), UserError> {
        let started = Instant::now();
        let mut sum = 0u64;
        while started.elapsed() < SPIN {
            sum = sum.wrapping_add(batch.iter().sum::<u64>());
        }
        std::hint::black_box(sum);
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A source that never has a record; at each snapshot it remembers how many
/// batches the spinning sink had taken by then.
#[derive(Clone)]
struct QuietSource {
    sink_batches: Arc<AtomicU64>,
    at_snapshots: Arc<Mutex<Vec<u64>>>,
}

impl Lifecycle for QuietSource {
    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let batches = self.sink_batches.load(Ordering::SeqCst);
        self.at_snapshots.lock().unwrap().push(batches);
        Ok(())
    }
}

impl Source<u64> for QuietSource {
    fn poll_next(&mut self, _out: &mut Vec<u64>, _max: usize) -> Result<SourceStatus, UserError> {
        Ok(SourceStatus::More)
    }
}

fn in_system<F: Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// Lets the System run until `done()` holds (the deadline only turns a hang
/// into a failure).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        actix_rt::time::sleep(Duration::from_millis(1)).await;
    }
}

/// An endless source, rebalanced into the spinning sink, and beside it a
/// quiet source; unaligned manual checkpoints (the barrier overtakes the
/// queued batches, so the sink snapshots at the next step it takes), on
/// `arbiters` threads.
fn spinning_job(arbiters: usize) -> (StreamEnv, SpinningSink, QuietSource) {
    let env = StreamEnv::with_parallelism(1);
    env.set_arbiters(arbiters);
    env.set_checkpoint_config(CheckpointConfig {
        interval: None,
        unaligned: true,
        timeout: Duration::from_secs(20),
        ..CheckpointConfig::default()
    });
    let sink = SpinningSink::default();
    env.generate(u64::MAX, |i| i)
        .rebalance()
        .add_sink(sink.clone());
    let quiet = QuietSource {
        sink_batches: sink.batches.clone(),
        at_snapshots: Arc::default(),
    };
    env.add_source(quiet.clone()).discard();
    (env, sink, quiet)
}

/// Steps the sink may take between a request and its answer: the step under
/// way, the one that reads the message, and one for the thread's other tasks.
const STEPS: u64 = 3;

/// Checkpoints asked for in a row.
const CHECKPOINTS: usize = 3;

fn answers_within_a_few_steps(arbiters: usize) {
    let (env, sink, quiet) = spinning_job(arbiters);
    let (asked_checkpoints, asked_cancel, outcome) = in_system(async {
        let mut client = env.start("spinning").await.unwrap();
        until("the sink is busy", || sink.batches() >= 5).await;
        let mut asked_checkpoints = Vec::new();
        for _ in 0..CHECKPOINTS {
            asked_checkpoints.push(sink.batches());
            client.trigger_checkpoint().await.unwrap();
        }
        let last = sink.batches();
        until("a few more batches", || sink.batches() >= last + 5).await;
        let asked_cancel = sink.batches();
        client.cancel();
        (asked_checkpoints, asked_cancel, client.wait().await)
    });
    assert!(matches!(outcome, Err(JobError::Canceled(_))), "{outcome:?}");
    for (what, snapshots) in [
        ("the sink", &sink.at_snapshots),
        ("the quiet source", &quiet.at_snapshots),
    ] {
        let snapshots = snapshots.lock().unwrap().clone();
        assert_eq!(snapshots.len(), CHECKPOINTS, "{what}: {snapshots:?}");
        for (asked, snapshot) in asked_checkpoints.iter().zip(&snapshots) {
            assert!(
                *snapshot <= asked + STEPS,
                "{what}: asked for a checkpoint after the sink's batch {asked}, snapshotted after batch {snapshot} \
                 (asked after {asked_checkpoints:?}, snapshots after {snapshots:?})",
            );
        }
    }
    // The job's outcome comes once every subtask ended: the sink was closed.
    let closed = sink.at_close.lock().unwrap().expect("the sink was closed");
    assert!(
        closed <= asked_cancel + STEPS,
        "canceled after batch {asked_cancel}, the sink stopped after batch {closed}"
    );
}

#[test]
fn a_long_stepping_subtask_answers_a_checkpoint_and_a_cancel_within_a_few_steps() {
    answers_within_a_few_steps(2);
}

#[test]
fn a_long_stepping_subtask_lets_the_tasks_of_its_thread_answer_within_a_few_steps() {
    // The quiet source shares the sink's only thread, and only the
    // checkpoint trigger from another thread wakes it: it gets its turn
    // between two of the sink's steps.
    answers_within_a_few_steps(1);
}

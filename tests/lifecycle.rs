//! A job's life: how it ends, fails, and is canceled.
//!
//! - End of input: the job finishes with a [`weir::JobResult`] that lists every
//!   subtask of every chain, whose record counters agree hop by hop; a sink's
//!   `finish()` runs exactly once per subtask, after its last record; records an
//!   operator emits from `end_input` (or a process function from
//!   `on_end_of_input`) reach the operators after it, and through the network.
//! - Failure: a panic or an error returned by user code fails the job with
//!   [`JobError::OperatorFailed`] naming the operator, the subtask and the
//!   cause; a source that cannot open names its path; an unrunnable job is
//!   refused with [`JobError::InvalidJob`] naming the operator.
//! - Cancel: [`weir::JobClient::cancel`] ends a running (endless) job with
//!   [`JobError::Canceled`], and the client's status follows the job:
//!   Created/Running, then Finished, Failed or Canceled.
//!
//! Synchronisation is by messages, never by sleeping: a sink signals the first
//! record it sees over a channel, and status checks yield to the actix System
//! that runs the job's supervisor until the status is terminal.

use std::future::Future;
use std::sync::{mpsc, Arc, Mutex};

use weir::sink::Sink;
use weir::{
    Collector, JobClient, JobError, JobStatus, Lifecycle, OneInputOperator, ProcessContext,
    ProcessFunction, RecordBatch, RuntimeContext, StreamEnv, UserError,
};

/// Runs `f` in a fresh actix System on this thread (the job's supervisor runs
/// on this thread too).
fn in_system<F: Future>(f: F) -> F::Output {
    actix_rt::System::new().block_on(f)
}

/// Lets the System run (the supervisor lives on it) until the job has ended.
async fn terminal_status(client: &JobClient) -> JobStatus {
    loop {
        let status = client.status();
        if status.is_terminal() {
            return status;
        }
        actix_rt::task::yield_now().await;
    }
}

fn operator_failure(error: JobError) -> (String, usize, usize, String) {
    match error {
        JobError::OperatorFailed {
            operator,
            subtask,
            parallelism,
            cause,
            ..
        } => (operator, subtask, parallelism, cause),
        other => panic!("expected an operator failure, got {other:?}"),
    }
}

fn invalid_job(error: JobError) -> String {
    match error {
        JobError::InvalidJob(message) => message,
        other => panic!("expected an invalid job, got {other:?}"),
    }
}

// ---------------------------------------------------------------- end of input

#[test]
fn a_finished_job_reports_every_subtask_with_consistent_counters() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(1_000, |i| i)
        .map(|i| i + 1)
        .disable_chaining()
        .rebalance()
        .filter(|i| i % 2 == 0)
        .set_parallelism(3)
        .collect(); // the sink takes the default parallelism, 2: a rebalance edge
    let result = env.execute_blocking("counters").unwrap();
    assert_eq!(out.len(), 500);

    assert_eq!(result.job_name, "counters");
    assert!(!result.job_id.is_empty());
    let subtasks: Vec<(&str, usize)> = result
        .subtasks
        .iter()
        .map(|s| (s.task.as_str(), s.subtask))
        .collect();
    assert_eq!(
        subtasks,
        [
            ("Filter", 0),
            ("Filter", 1),
            ("Filter", 2),
            ("Map", 0),
            ("Map", 1),
            ("Sink: Collect", 0),
            ("Sink: Collect", 1),
            ("Source: Generator", 0),
            ("Source: Generator", 1),
        ]
    );
    let task = |name: &'static str| result.subtasks.iter().filter(move |s| s.task == name);
    let sum_in = |name| task(name).map(|s| s.records_in).sum::<u64>();
    let sum_out = |name| task(name).map(|s| s.records_out).sum::<u64>();
    // A source chain receives nothing; each generator subtask sends its half.
    assert!(task("Source: Generator").all(|s| s.records_in == 0 && s.records_out == 500));
    // Forward channels: map subtask i receives exactly what generator subtask i sent.
    assert!(task("Map").all(|s| s.records_in == 500 && s.records_out == 500));
    // Rebalance from 2 senders over 3 receivers, one record at a time: 333 or 334 each.
    assert!(task("Filter").all(|s| (333..=334).contains(&s.records_in)));
    assert_eq!(sum_in("Filter"), 1_000);
    // The filters keep the even half; the sinks receive it and send nothing.
    assert_eq!(sum_out("Filter"), 500);
    assert_eq!(sum_in("Sink: Collect"), 500);
    assert_eq!(sum_out("Sink: Collect"), 0);
}

/// A sink that records, at `finish()`, its subtask and how many records it wrote.
#[derive(Clone, Default)]
struct FinishLog {
    log: Arc<Mutex<Vec<(usize, usize)>>>,
    subtask: usize,
    written: usize,
}

impl Lifecycle for FinishLog {
    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.subtask = ctx.subtask_index();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.log.lock().unwrap().push((self.subtask, self.written));
        Ok(())
    }
}

impl Sink<u64> for FinishLog {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        self.written += 1;
        Ok(())
    }
}

#[test]
fn a_sink_is_finished_exactly_once_per_subtask_after_its_last_record() {
    let env = StreamEnv::with_parallelism(3);
    let sink = FinishLog::default();
    env.from_collection(0..999u64)
        .rebalance()
        .add_sink(sink.clone());
    env.execute_blocking("finish-once").unwrap();

    let mut log = sink.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, [(0, 333), (1, 333), (2, 333)]);
}

#[test]
fn a_sink_is_finished_even_when_no_record_arrives() {
    let env = StreamEnv::with_parallelism(2);
    let sink = FinishLog::default();
    env.from_collection(Vec::<u64>::new())
        .rebalance()
        .add_sink(sink.clone());
    env.execute_blocking("empty").unwrap();

    let mut log = sink.log.lock().unwrap().clone();
    log.sort();
    assert_eq!(log, [(0, 0), (1, 0)]);
}

/// Counts its input and emits the count only when the input ends.
#[derive(Clone, Default)]
struct CountAtEnd {
    count: u64,
}

impl Lifecycle for CountAtEnd {}

impl OneInputOperator<u64, u64> for CountAtEnd {
    fn process_batch(
        &mut self,
        batch: RecordBatch<u64>,
        _out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        self.count += batch.len() as u64;
        Ok(())
    }

    fn end_input(&mut self, out: &mut Collector<u64>) -> Result<(), UserError> {
        out.collect(self.count);
        Ok(())
    }
}

#[test]
fn records_emitted_at_end_of_input_reach_the_next_chained_operators() {
    let env = StreamEnv::with_parallelism(2);
    // Both counters are chained with the source: the second one sees the
    // first one's single trailing record before its own input ends.
    let out = env
        .generate(1_000, |i| i)
        .transform("count", CountAtEnd::default())
        .map(|count| count * 10)
        .transform("count the counts", CountAtEnd::default())
        .collect();
    let result = env.execute_blocking("end-input-chained").unwrap();

    assert_eq!(result.subtasks.len(), 2, "one chain of parallelism 2");
    assert_eq!(out.take(), [1, 1]);
}

#[test]
fn records_emitted_at_end_of_input_cross_the_network() {
    let env = StreamEnv::with_parallelism(2);
    let counts = env
        .generate(1_000, |i| i)
        .transform("count", CountAtEnd::default())
        .rebalance()
        .map(|count| count + 1)
        .set_parallelism(3)
        .disable_chaining()
        .collect();
    env.execute_blocking("end-input-network").unwrap();

    let mut counts = counts.take();
    counts.sort();
    assert_eq!(counts, [501, 501]);
}

/// Sums its input per subtask and emits the sum from `on_end_of_input`.
#[derive(Clone, Default)]
struct SumAtEnd {
    sum: u64,
}

impl Lifecycle for SumAtEnd {}

impl ProcessFunction<u64, u64> for SumAtEnd {
    fn process_element(
        &mut self,
        value: u64,
        _ctx: &mut ProcessContext,
        _out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        self.sum += value;
        Ok(())
    }

    fn on_end_of_input(&mut self, out: &mut Collector<u64>) -> Result<(), UserError> {
        out.collect(self.sum);
        Ok(())
    }
}

#[test]
fn a_process_function_can_emit_when_its_input_ends() {
    let env = StreamEnv::with_parallelism(3);
    let sums = env
        .from_collection(1..=100u64)
        .rebalance()
        .process(SumAtEnd::default())
        .collect();
    env.execute_blocking("sum-at-end").unwrap();

    let sums = sums.take();
    assert_eq!(sums.len(), 3, "one sum per subtask: {sums:?}");
    assert_eq!(sums.iter().sum::<u64>(), 5_050);
}

// ---------------------------------------------------------------- failures

#[test]
fn a_panic_fails_the_job_naming_the_operator_subtask_and_message() {
    let env = StreamEnv::with_parallelism(2);
    env.generate(1_000, |i| i)
        .map(|i| {
            if i == 500 {
                panic!("value {i} is cursed");
            }
            i
        })
        .name("boom")
        .discard();
    let error = env.execute_blocking("panic").unwrap_err();

    let (operator, subtask, parallelism, cause) = operator_failure(error);
    assert_eq!(operator, "boom");
    // Generator subtask 0 produces the even values; the map is chained with it.
    assert_eq!((subtask, parallelism), (0, 2));
    assert!(cause.contains("value 500 is cursed"), "{cause}");
}

#[test]
fn a_panic_after_a_rebalance_names_the_receiving_subtask() {
    let env = StreamEnv::with_parallelism(3);
    env.from_collection(0..1_000u64)
        .rebalance()
        .map(|i| {
            assert_ne!(i, 500, "value 500 reached the map");
            i
        })
        .name("boom")
        .discard();
    let error = env.execute_blocking("panic-rebalanced").unwrap_err();

    let (operator, subtask, parallelism, cause) = operator_failure(error.clone());
    assert_eq!(operator, "boom");
    // Round robin from one sender: record i goes to subtask i % 3.
    assert_eq!((subtask, parallelism), (500 % 3, 3));
    assert!(cause.contains("value 500 reached the map"), "{cause}");
    let message = error.to_string();
    assert!(
        message.starts_with("operator `boom` (subtask 2 of 3) failed: "),
        "{message}"
    );
}

/// Rejects the value 7.
#[derive(Clone)]
struct RejectSeven;

impl Lifecycle for RejectSeven {}

impl ProcessFunction<u64, u64> for RejectSeven {
    fn process_element(
        &mut self,
        value: u64,
        _ctx: &mut ProcessContext,
        out: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        if value == 7 {
            return Err(format!("cannot handle {value}").into());
        }
        out.collect(value);
        Ok(())
    }
}

#[test]
fn an_error_returned_by_a_process_function_fails_the_job() {
    let env = StreamEnv::with_parallelism(1);
    env.from_collection(0..100u64)
        .process(RejectSeven)
        .name("validate")
        .discard();
    let error = env.execute_blocking("process-error").unwrap_err();

    let (operator, subtask, parallelism, cause) = operator_failure(error);
    assert_eq!(
        (operator.as_str(), subtask, parallelism),
        ("validate", 0, 1)
    );
    assert_eq!(cause, "cannot handle 7");
}

/// A sink whose `finish` fails.
#[derive(Clone)]
struct FailingFinish;

impl Lifecycle for FailingFinish {
    fn finish(&mut self) -> Result<(), UserError> {
        Err("flush failed".into())
    }
}

impl Sink<u64> for FailingFinish {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        Ok(())
    }
}

#[test]
fn an_error_from_a_sinks_finish_fails_the_job() {
    let env = StreamEnv::with_parallelism(1);
    env.from_collection(0..10u64)
        .add_sink(FailingFinish)
        .name("flaky sink");
    let error = env.execute_blocking("finish-error").unwrap_err();

    let (operator, _, _, cause) = operator_failure(error);
    assert_eq!(
        (operator.as_str(), cause.as_str()),
        ("flaky sink", "flush failed")
    );
}

#[test]
fn a_source_that_cannot_open_its_file_stops_the_job_before_it_starts_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let env = StreamEnv::with_parallelism(2);
    // With checkpointing the default restart strategy restarts without end:
    // a missing file must not be restarted from.
    env.enable_checkpointing(std::time::Duration::from_millis(10));
    env.read_text_file(&missing).discard();
    let error = env.execute_blocking("missing-file").unwrap_err();

    let path = missing.display().to_string();
    let message = invalid_job(error);
    assert!(
        message.starts_with(&format!("operator `Source: {path}` (auto-0): ")),
        "{message}"
    );
    assert!(
        message.contains(&format!("cannot open text file {path}: ")),
        "{message}"
    );
}

/// A sink whose every write fails with the error `make` returns.
#[derive(Clone)]
struct FailingSink(fn() -> UserError);

impl Lifecycle for FailingSink {}

impl Sink<u64> for FailingSink {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        Err((self.0)())
    }
}

/// Runs a checkpointed job whose sink fails with `make`'s error under a
/// restart strategy of two immediate restarts; returns the error and the restarts.
fn fail_with(make: fn() -> UserError) -> (JobError, u32) {
    let env = StreamEnv::with_parallelism(1);
    env.enable_checkpointing(std::time::Duration::from_secs(3600));
    env.set_restart_strategy(weir::RestartStrategy::FixedDelay {
        attempts: 2,
        delay: std::time::Duration::ZERO,
    });
    env.from_collection(vec![1u64, 2, 3])
        .add_sink(FailingSink(make));
    futures::executor::block_on(async {
        let mut client = env.start("failing").await.unwrap();
        let error = client.wait().await.unwrap_err();
        (error, client.restarts())
    })
}

#[test]
fn a_failure_no_restart_can_fix_fails_the_job_at_once_whatever_the_strategy() {
    let (error, restarts) = fail_with(|| {
        Box::new(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "cannot open /etc/shadow",
        ))
    });
    assert_eq!(restarts, 0, "{error}");
    assert!(!error.is_retryable(), "{error:?}");
    let (error, restarts) =
        fail_with(|| weir::runtime::error::Permanent("the schema was rejected".into()).into());
    assert_eq!(restarts, 0, "{error}");
    assert!(
        error.to_string().contains("the schema was rejected"),
        "{error}"
    );
    // A failure a restart may fix is restarted from, as the strategy allows.
    let (error, restarts) = fail_with(|| "connection reset".into());
    assert_eq!(restarts, 2, "{error}");
    assert!(error.is_retryable(), "{error:?}");
}

#[test]
fn a_parallelism_above_the_max_parallelism_is_an_invalid_job() {
    let env = StreamEnv::with_parallelism(2);
    env.generate(10, |i| i)
        .map(|i| i + 1)
        .name("too wide")
        .set_parallelism(4)
        .set_max_parallelism(2)
        .discard();
    let message = invalid_job(env.execute_blocking("too-wide").unwrap_err());
    assert!(
        message
            .contains("operator `too wide`: parallelism 4 is greater than its max parallelism 2"),
        "{message}"
    );
}

#[test]
fn a_non_parallel_source_with_parallelism_two_is_an_invalid_job() {
    let env = StreamEnv::with_parallelism(2);
    env.from_collection(0..10u64).set_parallelism(2).discard();
    let message = invalid_job(env.execute_blocking("parallel-collection").unwrap_err());
    assert!(
        message.contains("`Source: Collection` is not a parallel source"),
        "{message}"
    );
}

#[test]
fn a_forward_edge_between_different_parallelisms_is_an_invalid_job() {
    let env = StreamEnv::with_parallelism(2);
    env.generate(10, |i| i)
        .forward()
        .map(|i| i)
        .set_parallelism(3)
        .discard();
    let message = invalid_job(env.execute_blocking("bad-forward").unwrap_err());
    assert!(
        message.contains(
            "forward edge from `Source: Generator` (parallelism 2) to `Map` (parallelism 3)"
        ),
        "{message}"
    );
}

/// A job whose key selector panics at the value 500.
fn panicking_key_selector() -> StreamEnv {
    let env = StreamEnv::with_parallelism(2);
    env.generate(1_000, |i| i)
        .key_by(|v: &u64| {
            assert_ne!(*v, 500, "no key for 500");
            *v
        })
        .map(|v| v)
        .name("keyed map")
        .discard();
    env
}

#[test]
fn a_panicking_key_selector_fails_the_job() {
    let error = panicking_key_selector()
        .execute_blocking("key-panic")
        .unwrap_err();
    // Generator subtask 0 produces the even values and runs the key selector.
    let (_, subtask, parallelism, _) = operator_failure(error);
    assert_eq!((subtask, parallelism), (0, 2));
}

/// The key selector is user code like a map function, but it runs in the
/// sender's partitioner (`Subtask::run_chain` -> `OutputPartitioner::partition`),
/// outside the `catch_unwind` that guards operators. The panic unwinds out of
/// the actor, whose `Drop` reports `subtask actor stopped unexpectedly` for the
/// whole chain (`Source: Generator`): the panic message is lost.
#[test]
fn a_panicking_key_selector_fails_the_job_with_its_message() {
    let error = panicking_key_selector()
        .execute_blocking("key-panic")
        .unwrap_err();
    let (operator, _, _, cause) = operator_failure(error);
    assert!(
        cause.contains("no key for 500"),
        "operator `{operator}`: {cause}"
    );
}

// ---------------------------------------------------------------- cancel and status

/// Sends one message on its channel when its first batch arrives.
#[derive(Clone)]
struct SignalFirstRecord {
    first: Option<mpsc::Sender<()>>,
}

impl Lifecycle for SignalFirstRecord {}

impl Sink<u64> for SignalFirstRecord {
    fn write(&mut self, _record: u64) -> Result<(), UserError> {
        if let Some(tx) = self.first.take() {
            let _ = tx.send(());
        }
        Ok(())
    }
}

#[test]
fn cancel_ends_a_running_job_with_canceled() {
    let env = StreamEnv::with_parallelism(2);
    let (tx, rx) = mpsc::channel();
    env.generate(u64::MAX, |i| i)
        .rebalance()
        .add_sink(SignalFirstRecord { first: Some(tx) });

    in_system(async move {
        let mut client = env.start("endless").await.unwrap();
        assert!(!client.status().is_terminal(), "{:?}", client.status());
        // Wait off the System's thread, so that the supervisor keeps running.
        actix_rt::task::spawn_blocking(move || rx.recv())
            .await
            .unwrap()
            .expect("a record reached the sink");
        assert_eq!(client.status(), JobStatus::Running);

        client.cancel();
        assert_eq!(terminal_status(&client).await, JobStatus::Canceled);
        assert_eq!(
            client.wait().await.unwrap_err(),
            JobError::Canceled("endless".into())
        );
    });
}

#[tokio::test]
async fn cancel_ends_a_job_running_on_its_own_system() {
    // Outside an actix System the job gets a System (and thread) of its own.
    let env = StreamEnv::with_parallelism(2);
    env.generate(u64::MAX, |i| i).rebalance().discard();
    let mut client = env.start("endless-own-system").await.unwrap();
    client.cancel();
    let error = client.wait().await.unwrap_err();
    assert_eq!(error, JobError::Canceled("endless-own-system".into()));
    assert_eq!(error.to_string(), "job `endless-own-system` was canceled");
}

#[test]
fn status_goes_from_created_to_finished() {
    let env = StreamEnv::with_parallelism(2);
    let out = env.generate(1_000, |i| i).rebalance().collect();
    in_system(async move {
        let mut client = env.start("status").await.unwrap();
        assert!(!client.job_id().is_empty());
        assert_eq!(client.name(), "status");
        // Nothing ran yet: the supervisor starts on this thread's System.
        assert_eq!(client.status(), JobStatus::Created);
        assert_eq!(terminal_status(&client).await, JobStatus::Finished);
        let result = client.wait().await.unwrap();
        assert_eq!(result.job_name, "status");
    });
    assert_eq!(out.len(), 1_000);
}

#[test]
fn status_goes_to_failed_when_an_operator_fails() {
    let env = StreamEnv::with_parallelism(2);
    env.generate(100, |i| i)
        .process(RejectSeven)
        .name("validate")
        .discard();
    in_system(async move {
        let mut client = env.start("status-failed").await.unwrap();
        assert_eq!(terminal_status(&client).await, JobStatus::Failed);
        let (operator, subtask, _, _) = operator_failure(client.wait().await.unwrap_err());
        // Generator subtask 1 produces the odd values.
        assert_eq!((operator.as_str(), subtask), ("validate", 1));
    });
}

#[test]
fn cancel_after_the_job_finished_changes_nothing() {
    let env = StreamEnv::with_parallelism(2);
    let out = env.generate(100, |i| i).collect();
    in_system(async move {
        let mut client = env.start("late-cancel").await.unwrap();
        assert_eq!(terminal_status(&client).await, JobStatus::Finished);
        client.cancel();
        assert!(client.wait().await.is_ok());
    });
    assert_eq!(out.len(), 100);
}

#[test]
fn the_text_file_source_skips_a_byte_order_mark() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.txt");
    std::fs::write(&path, "\u{feff}first\nsecond\n").unwrap();
    let env = StreamEnv::with_parallelism(1);
    let lines = env.read_text_file(&path).collect();
    env.execute_blocking("bom").unwrap();
    assert_eq!(
        lines.take(),
        vec!["first".to_string(), "second".to_string()]
    );
}

/// Every kind of operator hears every lifecycle hook: one recorder type
/// plays a source, a process function, a keyed process function, both
/// broadcast functions, a one- and a two-input operator, a sink and a
/// two-phase-commit sink, in a checkpointed job with one aborted checkpoint.
mod every_hook {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use weir::ops::broadcast_process::{
        BroadcastContext, BroadcastProcessFunction, KeyedBroadcastContext,
        KeyedBroadcastProcessFunction, ReadOnlyBroadcastContext,
    };
    use weir::sink::{Sink, TwoPhaseCommit, TwoPhaseCommitSink};
    use weir::source::{Source, SourceStatus};
    use weir::state::{MapStateDescriptor, StateInitContext, StateSnapshotContext};
    use weir::testing::Faults;
    use weir::{
        CheckpointConfig, Collector, KeyedContext, KeyedProcessFunction, Lifecycle,
        OneInputOperator, ProcessContext, ProcessFunction, RecordBatch, RestartStrategy,
        RuntimeContext, StreamEnv, TwoInputOperator, UserError,
    };

    type Heard = Arc<Mutex<BTreeMap<&'static str, BTreeSet<&'static str>>>>;

    /// Records which hooks reached it, as the kind of operator it plays.
    #[derive(Clone)]
    struct Hooks {
        kind: &'static str,
        heard: Heard,
        next: u64,
    }

    impl Hooks {
        fn new(kind: &'static str, heard: &Heard) -> Self {
            Hooks {
                kind,
                heard: heard.clone(),
                next: 0,
            }
        }

        fn hear(&self, hook: &'static str) -> Result<(), UserError> {
            self.heard
                .lock()
                .unwrap()
                .entry(self.kind)
                .or_default()
                .insert(hook);
            Ok(())
        }
    }

    impl Lifecycle for Hooks {
        fn initialize_state(&mut self, _ctx: &mut StateInitContext) -> Result<(), UserError> {
            self.hear("initialize_state")
        }

        fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
            self.hear("open")
        }

        fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
            self.hear("snapshot_state")
        }

        fn notify_checkpoint_complete(&mut self, _id: u64) -> Result<(), UserError> {
            self.hear("notify_checkpoint_complete")
        }

        fn notify_checkpoint_aborted(&mut self, _id: u64) -> Result<(), UserError> {
            self.hear("notify_checkpoint_aborted")
        }

        fn finish(&mut self) -> Result<(), UserError> {
            self.hear("finish")
        }

        fn close(&mut self) -> Result<(), UserError> {
            self.hear("close")
        }
    }

    impl Source<u64> for Hooks {
        fn parallelism(&self) -> Option<usize> {
            Some(1)
        }

        fn poll_next(
            &mut self,
            out: &mut Vec<u64>,
            _max: usize,
        ) -> Result<SourceStatus, UserError> {
            // A few records per poll and a pause: the job lives through checkpoints.
            std::thread::sleep(Duration::from_millis(1));
            out.extend(self.next..self.next + 4);
            self.next += 4;
            Ok(if self.next >= 400 {
                SourceStatus::Finished
            } else {
                SourceStatus::More
            })
        }
    }

    impl ProcessFunction<u64, u64> for Hooks {
        fn process_element(
            &mut self,
            v: u64,
            _: &mut ProcessContext,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect(v);
            Ok(())
        }
    }

    impl KeyedProcessFunction<u64, u64, u64> for Hooks {
        fn process_element(
            &mut self,
            v: u64,
            _: &mut KeyedContext<u64>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect(v);
            Ok(())
        }
    }

    impl BroadcastProcessFunction<u64, u64, u64> for Hooks {
        fn process_element(
            &mut self,
            v: u64,
            _: &mut ReadOnlyBroadcastContext,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect(v);
            Ok(())
        }

        fn process_broadcast_element(
            &mut self,
            _: u64,
            _: &mut BroadcastContext,
            _: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }

    impl KeyedBroadcastProcessFunction<u64, u64, u64, u64> for Hooks {
        fn process_element(
            &mut self,
            v: u64,
            _: &mut KeyedContext<u64>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect(v);
            Ok(())
        }

        fn process_broadcast_element(
            &mut self,
            _: u64,
            _: &mut KeyedBroadcastContext<u64>,
            _: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            Ok(())
        }
    }

    impl OneInputOperator<u64, u64> for Hooks {
        fn process_batch(
            &mut self,
            batch: RecordBatch<u64>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect_batch(batch);
            Ok(())
        }
    }

    impl TwoInputOperator<u64, u64, u64> for Hooks {
        fn process_batch1(
            &mut self,
            batch: RecordBatch<u64>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect_batch(batch);
            Ok(())
        }

        fn process_batch2(
            &mut self,
            batch: RecordBatch<u64>,
            out: &mut Collector<u64>,
        ) -> Result<(), UserError> {
            out.collect_batch(batch);
            Ok(())
        }
    }

    impl Sink<u64> for Hooks {
        fn write(&mut self, _: u64) -> Result<(), UserError> {
            Ok(())
        }
    }

    impl TwoPhaseCommitSink<u64> for Hooks {
        type Transaction = u64;

        fn begin_transaction(&mut self) -> Result<u64, UserError> {
            Ok(0)
        }

        fn write(&mut self, _: &mut u64, _: u64) -> Result<(), UserError> {
            Ok(())
        }

        fn pre_commit(&mut self, _: &mut u64, _: u64) -> Result<(), UserError> {
            Ok(())
        }

        fn commit(&mut self, _: u64) -> Result<(), UserError> {
            Ok(())
        }

        fn abort(&mut self, _: u64) -> Result<(), UserError> {
            Ok(())
        }
    }

    #[test]
    fn every_hook_reaches_every_kind_of_operator() {
        let heard = Heard::default();
        let env = StreamEnv::with_parallelism(2);
        env.set_checkpoint_config(CheckpointConfig {
            interval: Some(Duration::from_millis(10)),
            tolerable_failures: 100,
            ..CheckpointConfig::default()
        });
        env.set_restart_strategy(RestartStrategy::NoRestart);
        let faults = Arc::new(Faults::new());
        faults.fail_snapshot(2);
        env.set_faults(faults);
        let hooks = |kind| Hooks::new(kind, &heard);
        let rules = MapStateDescriptor::<u64, u64>::new("rules");
        let broadcast = || {
            env.from_collection(vec![1u64])
                .uid("rules")
                .broadcast_state(std::slice::from_ref(&rules))
        };
        let numbers = env
            .add_source(hooks("source"))
            .uid("source")
            .process(hooks("process"))
            .uid("process")
            .key_by(|v: &u64| v % 7)
            .process(hooks("keyed process"))
            .uid("keyed-process")
            .transform("one input", hooks("one input"))
            .uid("one-input");
        let through_broadcast = numbers
            .clone()
            .connect(broadcast())
            .process(hooks("broadcast process"))
            .uid("broadcast-process");
        let through_keyed_broadcast = numbers
            .clone()
            .key_by(|v: &u64| v % 5)
            .connect(
                env.from_collection(vec![2u64])
                    .uid("more-rules")
                    .broadcast_state(std::slice::from_ref(&rules)),
            )
            .process(hooks("keyed broadcast process"))
            .uid("keyed-broadcast-process");
        through_broadcast
            .transform_two_inputs(through_keyed_broadcast, "two input", hooks("two input"))
            .uid("two-input")
            .add_sink(hooks("sink"))
            .uid("sink");
        numbers
            .add_sink(TwoPhaseCommit::new(hooks("two-phase-commit sink")))
            .uid("two-phase-commit-sink");
        let result = env.execute_blocking("every hook").unwrap();
        assert!(
            result.checkpoints.iter().any(|c| c.failure.is_some()),
            "one checkpoint aborted"
        );
        let every: BTreeSet<&str> = [
            "initialize_state",
            "open",
            "snapshot_state",
            "notify_checkpoint_complete",
            "notify_checkpoint_aborted",
            "finish",
            "close",
        ]
        .into();
        let heard = heard.lock().unwrap();
        let kinds: Vec<&str> = heard.keys().copied().collect();
        assert_eq!(kinds.len(), 9, "{kinds:?}");
        for (kind, hooks) in heard.iter() {
            let missing: Vec<&&str> = every.difference(hooks).collect();
            assert!(missing.is_empty(), "{kind} did not hear {missing:?}");
        }
    }
}

/// A checkpoint barrier tells the subtask which checkpoint completed before
/// it was triggered: a two-phase-commit sink commits that checkpoint's
/// transaction before it pre-commits the next, even when the completion's
/// own notification comes after the barrier (it travels apart from the
/// records). A sink whose rows wait for the previous transaction's locks
/// (PostgreSQL) relies on it. The notifications of two checkpoints are lost
/// on purpose: their sinks hear of them from the next barrier only.
mod completion_before_the_next_barrier {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use weir::sink::{TwoPhaseCommit, TwoPhaseCommitSink};
    use weir::{CheckpointConfig, Lifecycle, RuntimeContext, StreamEnv, UserError};

    type Events = Arc<Mutex<Vec<(usize, &'static str, u64)>>>;

    /// Records (subtask, "pre-commit" | "commit", checkpoint); slow now and
    /// then, as a sink writing to a database is, so that the notification
    /// and the next barrier both arrive while it is busy.
    #[derive(Clone, Default)]
    struct Ordered {
        subtask: usize,
        written: u64,
        events: Events,
    }

    impl Lifecycle for Ordered {
        fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
            self.subtask = ctx.subtask_index();
            Ok(())
        }
    }

    impl Ordered {
        fn log(&self, what: &'static str, checkpoint: u64) {
            self.events
                .lock()
                .unwrap()
                .push((self.subtask, what, checkpoint));
        }
    }

    impl TwoPhaseCommitSink<u64> for Ordered {
        type Transaction = u64;

        fn begin_transaction(&mut self) -> Result<u64, UserError> {
            Ok(0)
        }

        fn write(&mut self, _: &mut u64, _: u64) -> Result<(), UserError> {
            self.written += 1;
            if self.written.is_multiple_of(1_000) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }

        fn pre_commit(&mut self, transaction: &mut u64, checkpoint: u64) -> Result<(), UserError> {
            *transaction = checkpoint;
            self.log("pre-commit", checkpoint);
            Ok(())
        }

        fn commit(&mut self, transaction: u64) -> Result<(), UserError> {
            self.log("commit", transaction);
            Ok(())
        }

        fn abort(&mut self, _: u64) -> Result<(), UserError> {
            Ok(())
        }
    }

    #[test]
    fn the_previous_checkpoint_commits_before_the_next_pre_commits() {
        let sink = Ordered::default();
        let faults = std::sync::Arc::new(weir::testing::Faults::new());
        faults.lose_notification(2).lose_notification(3);
        let env = StreamEnv::with_parallelism(2);
        env.set_faults(faults.clone());
        env.set_checkpoint_config(CheckpointConfig {
            interval: Some(Duration::from_millis(2)),
            ..CheckpointConfig::default()
        });
        env.generate(200_000, |i| i)
            .rebalance()
            .add_sink(TwoPhaseCommit::new(sink.clone()))
            .uid("ordered");
        let result = env.execute_blocking("ordered").unwrap();
        let completed: Vec<u64> = result
            .checkpoints
            .iter()
            .filter(|c| c.failure.is_none())
            .map(|c| c.id)
            .collect();
        let last = completed.iter().copied().max().unwrap_or(0);
        let events = sink.events.lock().unwrap().clone();
        let mut checked = 0;
        for subtask in 0..2 {
            let mine: Vec<(&str, u64)> = events
                .iter()
                .filter(|(s, _, _)| *s == subtask)
                .map(|(_, what, id)| (*what, *id))
                .collect();
            for (at, &(what, id)) in mine.iter().enumerate() {
                // Periodic checkpoints one at a time: the one before `id`
                // completed before `id` was triggered. (The final
                // checkpoint may overlap the one before it.)
                if what != "pre-commit" || id == last || !completed.contains(&(id - 1)) {
                    continue;
                }
                checked += 1;
                assert!(
                    mine[..at].contains(&("commit", id - 1)),
                    "subtask {subtask} pre-committed {id} before committing {}: {mine:?}",
                    id - 1
                );
            }
        }
        assert!(
            checked >= 4,
            "only {checked} checkpoints checked: {completed:?}"
        );
        let fired = faults.fired();
        assert!(
            fired.contains(&"lose the notification of checkpoint 3".to_string()),
            "{fired:?}"
        );
    }
}

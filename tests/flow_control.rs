//! Flow control: a slow sink slows its producers, and memory stays bounded.
//!
//! Asserted by counts, never by timing (the sinks below are slow on purpose, by
//! sleeping per batch, but no assertion depends on how long anything took):
//! - no input queue ever holds more batches than the channel's credits
//!   (`JobResult::max_queued_batches`), whatever the credits;
//! - no batch holds more than `batch_size` records, also when one step of the
//!   sender (one source poll or one input batch, pushed through its chain) adds
//!   more than that to a channel buffer: the buffer leaves a batch at a time;
//! - the records produced but not yet consumed stay below a bound fixed by the
//!   credits and the batch size, while the source could produce far more;
//! - so at most `credits * batch_size` records wait in any input queue, as the
//!   configuration documents.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weir::sink::Sink;
use weir::{Lifecycle, StreamEnv, UserError};

/// Sleeps per batch; records the largest batch it received.
#[derive(Clone, Default)]
struct SlowSink {
    largest_batch: Arc<AtomicUsize>,
    records: Arc<AtomicU64>,
}

impl SlowSink {
    fn largest_batch(&self) -> usize {
        self.largest_batch.load(Ordering::SeqCst)
    }
}

impl Lifecycle for SlowSink {}

impl Sink<u64> for SlowSink {
    fn write(&mut self, record: u64) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), UserError> {
        self.largest_batch.fetch_max(batch.len(), Ordering::SeqCst);
        self.records.fetch_add(batch.len() as u64, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        Ok(())
    }
}

fn queues_stay_within_the_credits(credits: u32) {
    let env = StreamEnv::with_parallelism(2);
    env.set_channel_credits(credits);
    let sink = SlowSink::default();
    env.generate(200_000, |i| i)
        .rebalance()
        .add_sink(sink.clone());
    let result = env.execute_blocking("slow-sink").unwrap();

    assert_eq!(sink.records.load(Ordering::SeqCst), 200_000);
    let queued = result.max_queued_batches();
    assert!(
        (1..=credits as usize).contains(&queued),
        "credits {credits}, deepest queue {queued} batches: {:?}",
        result.subtasks
    );
}

#[test]
fn input_queues_never_exceed_two_credits() {
    queues_stay_within_the_credits(2);
}

#[test]
fn input_queues_never_exceed_four_credits() {
    queues_stay_within_the_credits(4);
}

#[test]
fn every_hop_of_a_pipeline_stays_within_one_credit() {
    let env = StreamEnv::with_parallelism(1);
    env.set_channel_credits(1).set_batch_size(64);
    let sink = SlowSink::default();
    env.generate(10_000, |i| i)
        .map(|i| i * 2)
        .disable_chaining()
        .filter(|i| i % 3 != 0)
        .disable_chaining()
        .add_sink(sink.clone());
    let result = env.execute_blocking("one-credit").unwrap();

    assert_eq!(result.subtasks.len(), 4, "four actors, three network hops");
    assert_eq!(sink.records.load(Ordering::SeqCst), 6_666);
    for subtask in &result.subtasks {
        assert!(subtask.max_queued_batches <= 1, "{subtask:?}");
    }
}

#[test]
fn a_step_that_outgrows_a_batch_still_sends_batches_of_at_most_batch_size() {
    const BATCH_SIZE: usize = 100;
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(BATCH_SIZE).set_channel_credits(2);
    let sink = SlowSink::default();
    // One source subtask; its poll of BATCH_SIZE records becomes 3 * BATCH_SIZE
    // in the chained flat_map, which the rebalance deals over 2 channels: one
    // step adds 150 records to each channel buffer.
    env.generate(20_000, |i| i)
        .set_parallelism(1)
        .flat_map(|i| [i, i, i])
        .set_parallelism(1)
        .rebalance()
        .add_sink(sink.clone());
    env.execute_blocking("batch-bound").unwrap();

    assert_eq!(sink.records.load(Ordering::SeqCst), 60_000);
    // A buffer goes from 0 to 150 records in one step; it leaves as a full
    // batch of BATCH_SIZE and a remainder.
    assert_eq!(sink.largest_batch(), BATCH_SIZE);
}

/// The configuration's doc (`RuntimeConfig::channel_credits`) says "at most
/// `credits * batch_size` records wait in any input queue". Queues hold up to
/// `credits` batches, so that needs batches of at most `batch_size` records.
/// A filter before a rebalance adds about 43 records per step to each of two
/// channel buffers, so a buffer crosses 100 at about 129: 100 leave.
#[test]
fn no_batch_exceeds_batch_size_as_the_config_documents() {
    const BATCH_SIZE: usize = 100;
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(BATCH_SIZE);
    let sink = SlowSink::default();
    env.generate(30_000, |i| i)
        .set_parallelism(1)
        .filter(|i| i % 7 != 0)
        .set_parallelism(1)
        .rebalance()
        .add_sink(sink.clone());
    env.execute_blocking("batch-cap").unwrap();

    assert_eq!(sink.records.load(Ordering::SeqCst), 25_714);
    let largest = sink.largest_batch();
    assert!(largest <= BATCH_SIZE, "largest batch {largest}");
}

/// Counts records as the source makes them and as the sink finishes them, and
/// keeps the largest difference the sink saw on a batch's arrival.
#[derive(Clone)]
struct Outstanding {
    produced: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    largest: Arc<AtomicU64>,
}

impl Lifecycle for Outstanding {}

impl Sink<u64> for Outstanding {
    fn write(&mut self, record: u64) -> Result<(), UserError> {
        self.write_batch(vec![record])
    }

    fn write_batch(&mut self, batch: Vec<u64>) -> Result<(), UserError> {
        // `consumed` first: every record it counts was produced before.
        let consumed = self.consumed.load(Ordering::SeqCst);
        let produced = self.produced.load(Ordering::SeqCst);
        self.largest
            .fetch_max(produced - consumed, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        self.consumed
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_slow_sink_holds_back_the_source() {
    const BATCH_SIZE: u64 = 100;
    const CREDITS: u64 = 2;
    const CHANNELS: u64 = 2;
    let env = StreamEnv::with_parallelism(CHANNELS as usize);
    env.set_batch_size(BATCH_SIZE as usize)
        .set_channel_credits(CREDITS as u32);
    let produced = Arc::new(AtomicU64::new(0));
    let sink = Outstanding {
        produced: produced.clone(),
        consumed: Arc::default(),
        largest: Arc::default(),
    };
    env.generate(20_000, move |i| {
        produced.fetch_add(1, Ordering::SeqCst);
        i
    })
    .set_parallelism(1)
    .rebalance()
    .add_sink(sink.clone());
    env.execute_blocking("held-back").unwrap();
    assert_eq!(sink.consumed.load(Ordering::SeqCst), 20_000);

    // Produced but not consumed: the source's current poll (< one batch), and
    // per channel the sender's buffer, `CREDITS` batches sent but not taken,
    // and the batch being written: each batch at most `BATCH_SIZE - 1` plus
    // the 50 records one poll adds to the channel.
    let max_batch = BATCH_SIZE - 1 + BATCH_SIZE / CHANNELS;
    let bound = BATCH_SIZE + CHANNELS * (1 + CREDITS + 1) * max_batch;
    let largest = sink.largest.load(Ordering::SeqCst);
    assert!(
        largest <= bound,
        "{largest} records in flight, bound {bound}"
    );
}

/// One record that a `flat_map` turns into a burst of records: they all
/// arrive, once, in batches no larger than the batch size.
#[test]
fn a_record_that_becomes_a_burst_arrives_whole() {
    let env = StreamEnv::with_parallelism(2);
    env.set_batch_size(64);
    let out = env
        .from_collection(vec![200_000u64])
        .flat_map(|n: u64| (0..n).collect::<Vec<u64>>())
        .rebalance()
        .collect();
    let result = env.execute_blocking("burst").unwrap();
    let mut got = out.take();
    got.sort_unstable();
    assert_eq!(got, (0..200_000).collect::<Vec<u64>>());
    for subtask in result.subtasks.iter().filter(|s| s.records_out > 0) {
        assert!(
            subtask.batches_out * 64 >= subtask.records_out,
            "{subtask:?}"
        );
    }
}

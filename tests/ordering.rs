//! Ordering: records keep their order on every channel.
//!
//! A channel connects one sending subtask to one receiving subtask; its batches
//! arrive in order and a batch keeps the order of its records, so:
//! - through a pipeline of parallelism 1 (separate actors, network channels),
//!   the sink sees the source's records in order;
//! - after a rebalance, every receiver sees each sender's records as an
//!   increasing subsequence, chained or not, with one sender or several.
//!
//! The collecting sink keeps the order of each of its subtasks, and the
//! [`ProcessFunction`] below tags records with the subtask that received them.

use weir::{Collector, Lifecycle, ProcessContext, ProcessFunction, StreamEnv, UserError};

const N: u64 = 100_000;

/// Emits `(index of the receiving subtask, record)`.
#[derive(Clone)]
struct Tag;

impl Lifecycle for Tag {}

impl ProcessFunction<u64, (usize, u64)> for Tag {
    fn process_element(
        &mut self,
        value: u64,
        ctx: &mut ProcessContext,
        out: &mut Collector<(usize, u64)>,
    ) -> Result<(), UserError> {
        out.collect((ctx.runtime().subtask_index(), value));
        Ok(())
    }
}

/// The values tagged with `subtask` whose generator index is `value % senders == sender`, in arrival order.
fn received(tagged: &[(usize, u64)], subtask: usize, senders: u64, sender: u64) -> Vec<u64> {
    tagged
        .iter()
        .filter(|(s, v)| *s == subtask && v % senders == sender)
        .map(|(_, v)| *v)
        .collect()
}

fn assert_increasing(values: &[u64], what: &str) {
    if let Some(w) = values.windows(2).find(|w| w[0] >= w[1]) {
        panic!("{what}: {} arrived before {}", w[0], w[1]);
    }
}

#[test]
fn a_pipeline_of_parallelism_one_keeps_the_source_order() {
    let env = StreamEnv::with_parallelism(1);
    let out = env
        .generate(N, |i| i)
        .map(|i| i)
        .disable_chaining()
        .collect();
    let result = env.execute_blocking("in-order").unwrap();

    let tasks: Vec<&str> = result.subtasks.iter().map(|s| s.task.as_str()).collect();
    assert_eq!(tasks, ["Map", "Sink: Collect", "Source: Generator"]);
    let values = out.take();
    assert_eq!(values.len() as u64, N);
    assert!(values.iter().copied().eq(0..N), "records out of order");
}

fn rebalanced_receivers_see_increasing_subsequences(senders: usize, chaining: bool) {
    let env = StreamEnv::with_parallelism(3);
    if !chaining {
        env.disable_chaining();
    }
    let out = env
        .generate(N, |i| i)
        .set_parallelism(senders)
        .rebalance()
        .process(Tag)
        .collect();
    env.execute_blocking("rebalanced-order").unwrap();

    let tagged = out.take();
    assert_eq!(tagged.len() as u64, N);
    let mut total = 0;
    for subtask in 0..3 {
        for sender in 0..senders as u64 {
            let values = received(&tagged, subtask, senders as u64, sender);
            assert!(!values.is_empty());
            total += values.len();
            assert_increasing(
                &values,
                &format!("receiver {subtask}, sender {sender}, chaining {chaining}"),
            );
        }
    }
    assert_eq!(total as u64, N);
}

#[test]
fn after_a_rebalance_each_receiver_sees_an_increasing_subsequence() {
    rebalanced_receivers_see_increasing_subsequences(1, true);
}

#[test]
fn after_a_rebalance_each_receiver_sees_an_increasing_subsequence_without_chaining() {
    rebalanced_receivers_see_increasing_subsequences(1, false);
}

#[test]
fn after_a_rebalance_from_two_senders_each_channel_keeps_its_order() {
    rebalanced_receivers_see_increasing_subsequences(2, true);
    rebalanced_receivers_see_increasing_subsequences(2, false);
}

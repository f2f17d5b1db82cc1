//! Partitioning: which subtask of the next operator each record reaches.
//!
//! Every test routes records into a [`ProcessFunction`] that tags each record
//! with the index of the subtask that received it, so the collected output
//! `(subtask, record)` shows the routing. Checked:
//! - `key_by`: all records of a key reach one subtask, the owner of the key's key
//!   group (by the receiver's max parallelism);
//! - `rebalance`: round robin, one record at a time, so per-receiver counts are
//!   exact;
//! - `broadcast`: every receiver sees every record once;
//! - `forward`: subtask `i` feeds subtask `i`, chained or over the network;
//! - `shuffle`: every record arrives exactly once;
//! - `union`: every record of every input arrives exactly once (twice for a
//!   stream unioned with itself).

use std::collections::{BTreeMap, BTreeSet};

use weir::keys::{key_group, KeyGroupRange};
use weir::{
    Collector, KeyedContext, KeyedProcessFunction, Lifecycle, ProcessContext, ProcessFunction,
    StreamEnv, UserError,
};

/// Emits `(index of the receiving subtask, record)`.
#[derive(Clone)]
struct Tag;

impl Lifecycle for Tag {}

impl<T> ProcessFunction<T, (usize, T)> for Tag
where
    T: Send + 'static,
{
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut ProcessContext,
        out: &mut Collector<(usize, T)>,
    ) -> Result<(), UserError> {
        out.collect((ctx.runtime().subtask_index(), value));
        Ok(())
    }
}

impl<K, T> KeyedProcessFunction<K, T, (usize, T)> for Tag
where
    K: weir::state::Key,
    T: Send + 'static,
{
    fn process_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<K>,
        out: &mut Collector<(usize, T)>,
    ) -> Result<(), UserError> {
        out.collect((ctx.runtime().subtask_index(), value));
        Ok(())
    }
}

fn sorted<T: Ord>(mut records: Vec<T>) -> Vec<T> {
    records.sort();
    records
}

/// Records per receiving subtask, for `parallelism` receivers.
fn counts<T>(tagged: &[(usize, T)], parallelism: usize) -> Vec<usize> {
    let mut counts = vec![0; parallelism];
    for (subtask, _) in tagged {
        counts[*subtask] += 1;
    }
    counts
}

#[test]
fn key_by_sends_every_record_of_a_key_to_the_owner_of_its_key_group() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(2_000, |i| i)
        .key_by(|v: &u64| v % 23)
        .process(Tag)
        .set_parallelism(3)
        .collect();
    env.execute_blocking("key-by").unwrap();
    let tagged = out.take();

    let mut subtasks_of_key: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
    for &(subtask, value) in &tagged {
        subtasks_of_key
            .entry(value % 23)
            .or_default()
            .insert(subtask);
    }
    assert_eq!(subtasks_of_key.len(), 23);
    for (key, subtasks) in &subtasks_of_key {
        let owner = KeyGroupRange::owner_of(key_group(key, 128), 128, 3);
        assert_eq!(
            subtasks,
            &BTreeSet::from([owner]),
            "key {key} must only reach subtask {owner}"
        );
    }
    // 23 keys over 3 subtasks: every subtask owns some (with weir's fixed hash).
    assert!(counts(&tagged, 3).iter().all(|&c| c > 0), "{tagged:?}");
    let values: Vec<u64> = tagged.into_iter().map(|(_, v)| v).collect();
    assert_eq!(sorted(values), (0..2_000).collect::<Vec<_>>());
}

#[test]
fn key_by_uses_the_receivers_max_parallelism_for_key_groups() {
    let env = StreamEnv::with_parallelism(1);
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let out = env
        .from_collection(keys.clone())
        .key_by(|k: &String| k.clone())
        .process(Tag)
        .set_parallelism(4)
        .set_max_parallelism(8)
        .collect();
    env.execute_blocking("key-by-max-parallelism").unwrap();

    let tagged = sorted(out.take());
    assert_eq!(tagged.len(), keys.len());
    for (subtask, key) in &tagged {
        let owner = KeyGroupRange::owner_of(key_group(key, 8), 8, 4);
        assert_eq!(*subtask, owner, "key {key}");
    }
}

#[test]
fn rebalance_deals_records_round_robin_one_at_a_time() {
    // One sender (a collection source has parallelism 1), three receivers.
    let env = StreamEnv::with_parallelism(3);
    let out = env
        .from_collection(0..3_001u64)
        .rebalance()
        .process(Tag)
        .collect();
    env.execute_blocking("rebalance").unwrap();
    let tagged = out.take();

    assert_eq!(counts(&tagged, 3), vec![1_001, 1_000, 1_000]);
    // The sender's first record goes to its own index (0), then to the next
    // receiver for every next record, across batches.
    for &(subtask, value) in &tagged {
        assert_eq!(subtask as u64, value % 3, "record {value}");
    }
    let values: Vec<u64> = tagged.into_iter().map(|(_, v)| v).collect();
    assert_eq!(sorted(values), (0..3_001).collect::<Vec<_>>());
}

#[test]
fn rebalance_from_several_senders_balances_each_sender_over_the_receivers() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(1_001, |i| i)
        .rebalance()
        .process(Tag)
        .set_parallelism(3)
        .collect();
    env.execute_blocking("rebalance-2-to-3").unwrap();
    let tagged = out.take();
    assert_eq!(tagged.len(), 1_001);

    // Generator subtask s produces the values v with v % 2 == s.
    for sender in 0..2u64 {
        let from_sender: Vec<(usize, u64)> = tagged
            .iter()
            .copied()
            .filter(|(_, v)| v % 2 == sender)
            .collect();
        let per_receiver = counts(&from_sender, 3);
        let (min, max) = (
            per_receiver.iter().min().unwrap(),
            per_receiver.iter().max().unwrap(),
        );
        assert!(max - min <= 1, "sender {sender}: {per_receiver:?}");
    }
}

#[test]
fn broadcast_gives_every_receiver_every_record() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(100, |i| i)
        .broadcast()
        .process(Tag)
        .set_parallelism(3)
        .collect();
    let result = env.execute_blocking("broadcast").unwrap();

    let expected: Vec<(usize, u64)> = (0..3)
        .flat_map(|subtask| (0..100).map(move |v| (subtask, v)))
        .collect();
    assert_eq!(sorted(out.take()), expected);

    // Counters: senders count each record once, receivers count their copies.
    let sent: u64 = result
        .subtasks
        .iter()
        .filter(|s| s.task == "Source: Generator")
        .map(|s| s.records_out)
        .sum();
    let received: u64 = result
        .subtasks
        .iter()
        .filter(|s| s.task.starts_with("Process"))
        .map(|s| s.records_in)
        .sum();
    assert_eq!((sent, received), (100, 300));
}

fn forward_keeps_each_record_in_its_subtask(chaining: bool) {
    let env = StreamEnv::with_parallelism(2);
    if !chaining {
        env.disable_chaining();
    }
    let out = env.generate(1_000, |i| i).forward().process(Tag).collect();
    let result = env.execute_blocking("forward").unwrap();

    let tagged = out.take();
    assert_eq!(tagged.len(), 1_000);
    for &(subtask, value) in &tagged {
        // Generator subtask s produces the values v with v % 2 == s.
        assert_eq!(value % 2, subtask as u64, "record {value}");
    }
    let mut tasks: Vec<&str> = result.subtasks.iter().map(|s| s.task.as_str()).collect();
    tasks.dedup();
    if chaining {
        assert_eq!(tasks, ["Source: Generator -> Process -> Sink: Collect"]);
    } else {
        // Three chains joined by forward network channels.
        assert_eq!(tasks, ["Process", "Sink: Collect", "Source: Generator"]);
    }
}

#[test]
fn forward_keeps_each_record_in_its_subtask_when_chained() {
    forward_keeps_each_record_in_its_subtask(true);
}

#[test]
fn forward_keeps_each_record_in_its_subtask_over_network_channels() {
    forward_keeps_each_record_in_its_subtask(false);
}

#[test]
fn shuffle_delivers_every_record_exactly_once() {
    let env = StreamEnv::with_parallelism(2);
    let out = env
        .generate(3_000, |i| i)
        .shuffle()
        .process(Tag)
        .set_parallelism(3)
        .collect();
    env.execute_blocking("shuffle").unwrap();
    let tagged = out.take();

    // The shuffle is seeded per sender, so this holds on every run.
    assert!(counts(&tagged, 3).iter().all(|&c| c > 0), "{tagged:?}");
    let values: Vec<u64> = tagged.into_iter().map(|(_, v)| v).collect();
    assert_eq!(sorted(values), (0..3_000).collect::<Vec<_>>());
}

#[test]
fn union_delivers_every_record_of_both_inputs_once() {
    let env = StreamEnv::with_parallelism(2);
    let first = env.from_collection(0..500u64); // parallelism 1
    let second = env.generate(500, |i| 500 + i); // parallelism 2
    let out = first.union(second).map(|v| v * 10).collect();
    let result = env.execute_blocking("union").unwrap();

    assert_eq!(
        sorted(out.take()),
        (0..1_000).map(|v| v * 10).collect::<Vec<u64>>()
    );
    let into_map: u64 = result
        .subtasks
        .iter()
        .filter(|s| s.task.starts_with("Map"))
        .map(|s| s.records_in)
        .sum();
    assert_eq!(into_map, 1_000);
}

#[test]
fn a_stream_unioned_with_itself_delivers_every_record_twice() {
    let env = StreamEnv::with_parallelism(2);
    let numbers = env.generate(300, |i| i);
    let out = numbers.clone().union(numbers).collect();
    env.execute_blocking("self-union").unwrap();

    let expected: Vec<u64> = (0..300).flat_map(|v| [v, v]).collect();
    assert_eq!(sorted(out.take()), expected);
}

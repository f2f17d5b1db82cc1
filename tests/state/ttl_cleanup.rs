//! How expired state is cleaned up besides reads, each strategy alone (the
//! others disabled where the API allows): cleanup timers (exact, without an
//! access), the heap's incremental cleanup, guaranteed erasure
//! (`cleanup_within`, with the engine's processing-time callbacks only, for a
//! million keys never seen again), and the TTL metrics that count the
//! expired entries removed per state and way. (Full snapshots: in
//! [`ttl_restore`](crate::ttl_restore).)
//!
//! What is physically stored is looked at with
//! `OperatorHarness::keyed_state`, or by reading with
//! [`TtlVisibility::ReturnExpiredIfNotCleanedUp`] (an expired entry that is
//! still stored is returned once: `None` proves a cleanup removed it).
//!
//! The tests listed in `main.rs`'s `every_backend!` run on the heap and on
//! every RocksDB configuration; the `#[test]`s here are for one backend.

use std::time::Duration;

use weir::state::ttl::{TtlConfig, TtlTime, TtlUpdate, TtlVisibility};
use weir::state::{KeyedStateStore, ValueStateDescriptor};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::kit::MAX_P;
use crate::ttl::{
    at, harness, metrics, on_rocksdb, read_all, stamped, stored, ttl, All, Cmd, Reply, STATES,
};

/// An expired entry still stored would be returned once with this visibility:
/// reading `None` proves a cleanup removed it.
fn only(config: TtlConfig) -> TtlConfig {
    config
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp)
        .disable_cleanup_in_background()
}

pub(crate) fn cleanup_timers_remove_each_entry_at_its_expiry_without_an_access() {
    let mut h = harness(only(ttl(100)).cleanup_with_timers());
    at(&mut h, 0, "k", vec![Cmd::WriteAll(1)]);
    at(&mut h, 30, "k", vec![Cmd::ListAdd(2)]);
    assert_eq!(h.next_processing_time(), Some(100));
    h.processing_time(99).unwrap();
    assert_eq!(stored(&h), 5);
    h.processing_time(100).unwrap();
    assert_eq!(stored(&h), 1, "the list's second element is left");
    for state in STATES {
        assert_eq!(metrics(&h, state).expired_by_timer, 1, "{state}");
    }
    assert_eq!(h.next_processing_time(), Some(130));
    h.processing_time(130).unwrap();
    assert_eq!(stored(&h), 0);
    assert_eq!(metrics(&h, "list").expired_by_timer, 2);
    assert_eq!(read_all(&mut h, 130, "k"), All::none(), "physically gone");
    for state in STATES {
        assert_eq!(metrics(&h, state).expired_on_read, 0, "{state}");
    }

    // A read that restarts the clock moves the removal with it.
    let mut h = harness(
        only(ttl(100))
            .cleanup_with_timers()
            .update_type(TtlUpdate::OnReadAndWrite),
    );
    at(&mut h, 0, "k", vec![Cmd::Put(1)]);
    at(&mut h, 60, "k", vec![Cmd::Get]);
    h.processing_time(100).unwrap();
    assert_eq!(stored(&h), 1, "read at 60: lives to 160");
    h.processing_time(160).unwrap();
    assert_eq!(stored(&h), 0);

    // In event time, the watermark fires them.
    let mut h = harness(
        only(ttl(100))
            .cleanup_with_timers()
            .time(TtlTime::EventTime),
    );
    stamped(&mut h, 1_000, "k", vec![Cmd::WriteAll(1)]);
    h.watermark(1_099).unwrap();
    assert_eq!(stored(&h), 5);
    h.watermark(1_100).unwrap();
    assert_eq!(stored(&h), 0);
    assert_eq!(metrics(&h, "map").expired_by_timer, 1);
}

/// The heap's incremental cleanup: accesses (and records, if asked) walk a
/// cursor over the key groups that removes what expired, so entries of keys
/// never read again go. (RocksDB has the compaction filter instead.)
#[test]
fn incremental_cleanup_removes_entries_of_keys_never_read_again_on_the_heap() {
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    for every_record in [false, true] {
        let mut h = harness(only(ttl(100)).cleanup_incrementally(10, every_record));
        for key in &keys {
            at(&mut h, 0, key, vec![Cmd::Put(1)]);
        }
        assert!(!on_rocksdb(&h));
        // Records that touch no state take a step only if asked: 20 records
        // of 10 entries each, more than a lap over 128 key groups and 20 keys.
        h.set_processing_time(200);
        h.process((0..20).map(|_| ("other".into(), Cmd::Nothing)).collect())
            .unwrap();
        let left = if every_record { 0 } else { 20 };
        assert_eq!(stored(&h), left, "every_record: {every_record}");
        // Accesses always step: 20 reads of a key without a value.
        at(&mut h, 200, "other", vec![Cmd::Get; 20]);
        assert_eq!(stored(&h), 0);
        assert_eq!(metrics(&h, "value").expired_by_sweep, 20);
        assert_eq!(metrics(&h, "value").expired_on_read, 0);
        assert_eq!(
            at(&mut h, 200, "k3", vec![Cmd::Get]),
            vec![Reply::Value(None)],
            "physically gone"
        );
    }
}

pub(crate) fn cleanup_within_alone_removes_entries_of_keys_never_seen_again() {
    let mut h = harness(only(ttl(100)).cleanup_within(Duration::from_millis(50)));
    for i in 0..50 {
        at(&mut h, i, &format!("k{i}"), vec![Cmd::WriteAll(i as u64)]);
    }
    // Within the bound of each expiry (100..150), with no record at all.
    let mut now = 50;
    while now < 149 + 50 {
        now += 10;
        h.processing_time(now).unwrap();
        let asks = h.next_processing_time().expect("the sweep asks to run");
        assert!(asks <= now + 50, "next sweep at {asks}, now {now}");
    }
    assert_eq!(stored(&h), 0);
    let removed: u64 = STATES
        .iter()
        .map(|s| {
            let m = metrics(&h, s);
            m.expired_by_sweep + m.expired_by_compaction
        })
        .sum();
    assert_eq!(removed, 5 * 50);
    assert_eq!(read_all(&mut h, now, "k7"), All::none(), "physically gone");
}

// --------------------------------------------------------------- metrics

pub(crate) fn ttl_metrics_count_expired_entries_per_state_and_way_of_removal() {
    // On read.
    let mut h = harness(ttl(100).disable_cleanup_in_background());
    at(
        &mut h,
        0,
        "a",
        vec![Cmd::Put(1), Cmd::ListAdd(1), Cmd::ListAdd(2)],
    );
    at(&mut h, 0, "b", vec![Cmd::Put(2)]);
    at(&mut h, 100, "a", vec![Cmd::Get, Cmd::ListGet]);
    let value = metrics(&h, "value");
    let settings = value.ttl.clone().expect("a time to live");
    assert!(settings.contains("ttl 100 ms"), "{settings}");
    assert_eq!(
        (
            value.expired_on_read,
            value.expired_by_sweep,
            value.expired_by_timer,
            value.expired_by_compaction
        ),
        (1, 0, 0, 0)
    );
    assert_eq!(metrics(&h, "list").expired_on_read, 2, "per element");

    // By timer.
    let mut h = harness(
        ttl(100)
            .disable_cleanup_in_background()
            .cleanup_with_timers(),
    );
    at(&mut h, 0, "a", vec![Cmd::Put(1)]);
    at(&mut h, 0, "b", vec![Cmd::Put(2)]);
    h.processing_time(100).unwrap();
    let value = metrics(&h, "value");
    assert_eq!(
        (value.expired_on_read, value.expired_by_timer),
        (0, 2),
        "{value:?}"
    );

    // By sweep (heap) or compaction (RocksDB).
    let mut h = harness(ttl(100).cleanup_within(Duration::from_millis(100)));
    at(&mut h, 0, "a", vec![Cmd::Put(1)]);
    at(&mut h, 0, "b", vec![Cmd::Put(2)]);
    for now in [50, 100, 150, 200] {
        h.processing_time(now).unwrap();
    }
    let value = metrics(&h, "value");
    let swept = match on_rocksdb(&h) {
        true => value.expired_by_compaction,
        false => value.expired_by_sweep,
    };
    assert_eq!((value.expired_on_read, swept), (0, 2), "{value:?}");
}

// --------------------------------------------------- guaranteed erasure

/// Writes its key once to a value state.
#[derive(Clone)]
struct WriteOnce(ValueStateDescriptor<u64>);

impl Lifecycle for WriteOnce {}

impl KeyedProcessFunction<u64, u64, ()> for WriteOnce {
    fn process_element(
        &mut self,
        key: u64,
        ctx: &mut KeyedContext<u64>,
        _: &mut Collector<()>,
    ) -> Result<(), UserError> {
        ctx.state(&self.0)?.update(key);
        Ok(())
    }
}

fn write_once(
    restored: Option<weir::runtime::snapshot::OperatorSnapshot>,
) -> OperatorHarness<u64, ()> {
    let descriptor = ValueStateDescriptor::new("seen")
        .with_ttl(ttl(1_000).cleanup_within(Duration::from_millis(1_000)));
    let mut h = OperatorHarness::keyed(WriteOnce(descriptor), |k: &u64| *k, 0, 1, MAX_P);
    h.open(restored).unwrap();
    h
}

fn look<R: Send + 'static>(
    h: &OperatorHarness<u64, ()>,
    f: impl FnOnce(&KeyedStateStore<u64>) -> R + Send + 'static,
) -> R {
    h.keyed_state(f).expect("an open keyed harness")
}

/// `keys` keys written once in the first 500 ms, never seen again: within
/// the bound (1 s) of their expiry (1 s after the write), with the engine's
/// processing-time callbacks only, none is stored and a checkpoint holds none.
pub(crate) fn keys_written_once_are_erased_within_the_bound(keys: u64) {
    let mut h = write_once(None);
    let batch = 10_000;
    let batches = keys.div_ceil(batch);
    for b in 0..batches {
        h.set_processing_time((b * 500 / batches) as i64);
        let records: Vec<u64> = (b * batch..((b + 1) * batch).min(keys)).collect();
        h.process(records).unwrap();
    }
    assert_eq!(
        look(&h, |s: &KeyedStateStore<u64>| s.entries()),
        keys as usize
    );
    // The last key expires at 1_500; the bound ends at 2_500.
    for now in (100..=2_500).step_by(100) {
        h.processing_time(now).unwrap();
        assert!(h.next_processing_time().is_some_and(|t| t <= now + 1_000));
    }
    let entries = look(&h, |s: &KeyedStateStore<u64>| s.entries());
    let metrics = h.state_metrics().remove(0);
    assert_eq!(entries, 0, "{metrics:?}");
    assert_eq!(
        metrics.expired_by_sweep + metrics.expired_by_compaction,
        keys,
        "{metrics:?}"
    );
    assert_eq!(metrics.expired_on_read, 0);

    // A checkpoint holds none: restored where nothing has expired yet (at
    // processing time 0), the state is empty.
    let snapshot = h.snapshot(1).unwrap();
    let mut restored = write_once(Some(snapshot));
    restored.process(vec![u64::MAX]).unwrap();
    assert_eq!(
        look(&restored, |s: &KeyedStateStore<u64>| s.entries()),
        1,
        "only the key written after the restore"
    );
}

/// A million keys, as the issue asks.
#[test]
fn a_million_keys_written_once_are_erased_within_the_bound_on_the_heap() {
    keys_written_once_are_erased_within_the_bound(1_000_000);
}

#[cfg(feature = "rocksdb")]
#[test]
fn a_million_keys_written_once_are_erased_within_the_bound_in_rocksdb() {
    crate::with_rocksdb(true, || {
        keys_written_once_are_erased_within_the_bound(1_000_000)
    });
}

pub(crate) fn an_event_time_entry_stamped_earlier_than_the_last_moves_its_key_cleanup_timer_earlier(
) {
    let mut h = harness(
        only(ttl(100))
            .cleanup_with_timers()
            .time(TtlTime::EventTime),
    );
    stamped(&mut h, 1_000, "k", vec![Cmd::ListAdd(1)]);
    // A late record: its element expires at 600, before the first's 1 100.
    stamped(&mut h, 500, "k", vec![Cmd::ListAdd(2)]);
    h.watermark(600).unwrap();
    assert_eq!(metrics(&h, "list").expired_by_timer, 1, "removed at 600");
    h.watermark(1_100).unwrap();
    assert_eq!(metrics(&h, "list").expired_by_timer, 2);
    assert_eq!(stored(&h), 0);
}

pub(crate) fn cleanup_within_removes_expired_list_elements_next_to_live_ones() {
    let mut h = harness(only(ttl(100)).cleanup_within(Duration::from_millis(50)));
    at(&mut h, 0, "k", vec![Cmd::ListAdd(1)]);
    at(&mut h, 80, "k", vec![Cmd::ListAdd(2)]);
    // The first element expires at 100, the second at 180: by 150 the
    // first is physically gone though the list lives on.
    let mut now = 80;
    while now < 150 {
        now += 10;
        h.processing_time(now).unwrap();
    }
    let list = metrics(&h, "list");
    assert_eq!(
        list.expired_by_sweep + list.expired_by_compaction,
        1,
        "{list:?}"
    );
    assert_eq!(list.expired_on_read, 0);
    assert_eq!(
        at(&mut h, 150, "k", vec![Cmd::ListGet]),
        vec![Reply::List(vec![2])]
    );
    assert_eq!(
        metrics(&h, "list").expired_on_read,
        0,
        "nothing left to remove on read"
    );
}

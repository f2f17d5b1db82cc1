//! State time-to-live across snapshots and restores, with the states of
//! [`TtlStates`](crate::ttl::TtlStates): full snapshots (savepoints) hold no
//! expired entry; expiries are absolute times that a checkpoint or savepoint
//! keeps, also across a change of parallelism (1 -> 3 -> 2); the time to live
//! switched on, off or changed at a restore; and the two downtime policies.
//!
//! Each restore is checked from both a checkpoint (`snapshot`: incremental
//! handles with the incremental RocksDB configurations) and a savepoint
//! (canonical bytes). Restored harnesses open at a processing time set before
//! `open`, as a job restarted at that time would.

use std::collections::BTreeMap;

use weir::keys::{key_group, KeyGroupRange};
use weir::runtime::snapshot::{redistribute, OperatorSnapshot};
use weir::state::ttl::{DowntimePolicy, TtlConfig};

use crate::kit::MAX_P;
use crate::ttl::{at, read_all, subtask, ttl, All, Cmd, Reply, TtlHarness};

/// A checkpoint and a savepoint of `h`, taken now.
fn checkpoint_and_savepoint(h: &mut TtlHarness, id: u64) -> Vec<(&'static str, OperatorSnapshot)> {
    vec![
        ("checkpoint", h.snapshot(id).unwrap()),
        ("savepoint", h.savepoint(id + 1).unwrap()),
    ]
}

/// The only subtask, restored from `snapshot` at processing time `now`.
fn restored(ttl: Option<TtlConfig>, snapshot: OperatorSnapshot, now: i64) -> TtlHarness {
    subtask(0, 1, ttl, Some(snapshot), now)
}

pub(crate) fn a_savepoint_after_expiry_holds_no_expired_entry() {
    let config = ttl(100).disable_cleanup_in_background();
    let mut h = subtask(0, 1, Some(config), None, 0);
    at(&mut h, 0, "a", vec![Cmd::WriteAll(1)]);
    at(
        &mut h,
        0,
        "c",
        vec![Cmd::ListAdd(10), Cmd::MapPut("x".into(), 10)],
    );
    at(&mut h, 60, "b", vec![Cmd::WriteAll(2)]);
    at(
        &mut h,
        60,
        "c",
        vec![Cmd::ListAdd(11), Cmd::MapPut("y".into(), 11)],
    );
    h.set_processing_time(120);
    let savepoint = h.savepoint(1).unwrap();
    // Restored without a time to live at processing time 0, where nothing
    // would have expired: what the savepoint holds is what is read.
    let mut plain = restored(None, savepoint, 0);
    assert_eq!(read_all(&mut plain, 0, "a"), All::none());
    assert_eq!(read_all(&mut plain, 0, "b"), All::one(2));
    assert_eq!(
        read_all(&mut plain, 0, "c"),
        All {
            list: vec![11],
            map: vec![("y".into(), 11)],
            ..All::none()
        }
    );
}

pub(crate) fn a_restored_entry_keeps_its_absolute_expiry() {
    let mut h = subtask(0, 1, Some(ttl(100)), None, 0);
    at(&mut h, 0, "k", vec![Cmd::WriteAll(1)]);
    h.set_processing_time(30);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        // ClockContinues: restored at 50, it expires at 100, not 150.
        let mut r = restored(Some(ttl(100)), snapshot, 50);
        assert_eq!(read_all(&mut r, 99, "k"), All::one(1), "{kind}");
        assert_eq!(read_all(&mut r, 100, "k"), All::none(), "{kind}");
    }
}

/// What [`Cmd::WriteAll`]s leave in the five states of one key, with the
/// processing time of each write (ttl [`TTL`]).
#[derive(Clone, Debug, Default)]
struct Model {
    value: Option<(u64, i64)>,
    list: Vec<(u64, i64)>,
    map: BTreeMap<String, (u64, i64)>,
    sum: Option<(u64, i64)>,
    average: Option<((u64, u64), i64)>,
}

const TTL: i64 = 100;

fn live(written: i64, now: i64) -> bool {
    written + TTL > now
}

impl Model {
    fn write(&mut self, n: u64, now: i64) {
        self.value = Some((n, now));
        self.list.push((n, now));
        self.map.insert(n.to_string(), (n, now));
        self.sum = Some(match self.sum {
            Some((s, t)) if live(t, now) => (s + n, now),
            _ => (n, now),
        });
        self.average = Some(match self.average {
            Some(((s, c), t)) if live(t, now) => ((s + n, c + 1), now),
            _ => ((n, 1), now),
        });
    }

    fn at(&self, now: i64) -> All {
        All {
            value: self.value.filter(|v| live(v.1, now)).map(|v| v.0),
            list: self
                .list
                .iter()
                .filter(|v| live(v.1, now))
                .map(|v| v.0)
                .collect(),
            map: self
                .map
                .iter()
                .filter(|(_, v)| live(v.1, now))
                .map(|(k, v)| (k.clone(), v.0))
                .collect(),
            sum: self.sum.filter(|v| live(v.1, now)).map(|v| v.0),
            average: self
                .average
                .filter(|v| live(v.1, now))
                .map(|((s, c), _)| s as f64 / c as f64),
        }
    }
}

fn owner(key: &str, parallelism: usize) -> usize {
    KeyGroupRange::owner_of(key_group(&key.to_string(), MAX_P), MAX_P, parallelism)
}

/// `parallelism` subtasks with a time to live of [`TTL`], restored from
/// `snapshots` at processing time `now`.
fn subtasks(
    parallelism: usize,
    snapshots: Option<Vec<OperatorSnapshot>>,
    now: i64,
) -> Vec<TtlHarness> {
    let mut snapshots = snapshots.map(|s| s.into_iter());
    (0..parallelism)
        .map(|i| {
            let snapshot = snapshots.as_mut().and_then(Iterator::next);
            subtask(i, parallelism, Some(ttl(TTL)), snapshot, now)
        })
        .collect()
}

/// Snapshots every subtask at `now` and restores at `parallelism`, at `now`.
fn rescale(subtasks_: &mut [TtlHarness], id: u64, parallelism: usize, now: i64) -> Vec<TtlHarness> {
    let old: Vec<OperatorSnapshot> = subtasks_
        .iter_mut()
        .map(|h| {
            h.set_processing_time(now);
            h.snapshot(id).unwrap()
        })
        .collect();
    subtasks(
        parallelism,
        Some(redistribute(&old, parallelism, MAX_P)),
        now,
    )
}

fn write(hs: &mut [TtlHarness], model: &mut BTreeMap<String, Model>, key: &str, n: u64, now: i64) {
    let p = hs.len();
    at(&mut hs[owner(key, p)], now, key, vec![Cmd::WriteAll(n)]);
    model.entry(key.to_string()).or_default().write(n, now);
}

fn check(hs: &mut [TtlHarness], model: &BTreeMap<String, Model>, now: i64) {
    let p = hs.len();
    for (key, m) in model {
        assert_eq!(
            read_all(&mut hs[owner(key, p)], now, key),
            m.at(now),
            "key {key} at {now}, parallelism {p}"
        );
    }
}

pub(crate) fn ttl_state_keeps_its_expiries_across_parallelism_1_3_2() {
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let mut model = BTreeMap::new();
    let mut p1 = subtasks(1, None, 0);
    for (i, key) in keys.iter().enumerate() {
        write(&mut p1, &mut model, key, i as u64, 2 * i as i64);
    }
    // Parallelism 3 at 60; every third key written again at 80.
    let mut p3 = rescale(&mut p1, 1, 3, 60);
    assert!(keys.iter().any(|k| owner(k, 3) == 2));
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        write(&mut p3, &mut model, key, 100 + i as u64, 80);
    }
    // Parallelism 2 at 90; at 130 the keys written before 30 have expired
    // but for their writes at 80; at 180 everything has.
    let mut p2 = rescale(&mut p3, 2, 2, 90);
    check(&mut p2, &model, 130);
    check(&mut p2, &model, 180);
}

pub(crate) fn switching_ttl_on_at_a_restore_stamps_restored_entries_with_the_restore_time() {
    let mut plain = subtask(0, 1, None, None, 0);
    at(&mut plain, 0, "k", vec![Cmd::WriteAll(5)]);
    plain.set_processing_time(10);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut plain, 1) {
        let mut r = restored(Some(ttl(100)), snapshot, 1_000);
        // First used at 1 050: the entries still live from the restore.
        assert_eq!(read_all(&mut r, 1_050, "k"), All::one(5), "{kind}");
        assert_eq!(read_all(&mut r, 1_099, "k"), All::one(5), "{kind}");
        assert_eq!(read_all(&mut r, 1_100, "k"), All::none(), "{kind}");
    }
}

pub(crate) fn switching_ttl_off_at_a_restore_keeps_live_values_and_drops_expired_ones() {
    let config = ttl(100).disable_cleanup_in_background();
    let mut h = subtask(0, 1, Some(config), None, 0);
    at(&mut h, 0, "a", vec![Cmd::WriteAll(1)]);
    at(
        &mut h,
        0,
        "c",
        vec![Cmd::ListAdd(10), Cmd::MapPut("x".into(), 10)],
    );
    at(&mut h, 60, "b", vec![Cmd::WriteAll(2)]);
    at(
        &mut h,
        60,
        "c",
        vec![Cmd::ListAdd(11), Cmd::MapPut("y".into(), 11)],
    );
    // Taken before anything expired; restored at 120, when "a" and the first
    // element and entry of "c" have.
    h.set_processing_time(80);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        let mut r = restored(None, snapshot, 120);
        assert_eq!(read_all(&mut r, 120, "a"), All::none(), "{kind}");
        assert_eq!(read_all(&mut r, 120, "b"), All::one(2), "{kind}");
        let c = All {
            list: vec![11],
            map: vec![("y".into(), 11)],
            ..All::none()
        };
        assert_eq!(read_all(&mut r, 120, "c"), c, "{kind}");
        // Plain now: nothing expires any more.
        assert_eq!(read_all(&mut r, 1_000_000, "b"), All::one(2), "{kind}");
        assert_eq!(read_all(&mut r, 1_000_000, "c"), c, "{kind}");
    }
}

pub(crate) fn changing_the_ttl_at_a_restore_keeps_the_stored_expiries() {
    let mut h = subtask(0, 1, Some(ttl(100)), None, 0);
    at(&mut h, 0, "old", vec![Cmd::WriteAll(1)]);
    h.set_processing_time(10);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        let mut r = restored(Some(ttl(1_000)), snapshot, 50);
        at(&mut r, 50, "new", vec![Cmd::WriteAll(2)]);
        assert_eq!(read_all(&mut r, 99, "old"), All::one(1), "{kind}");
        assert_eq!(
            read_all(&mut r, 100, "old"),
            All::none(),
            "{kind}: as stored"
        );
        assert_eq!(read_all(&mut r, 1_049, "new"), All::one(2), "{kind}");
        assert_eq!(
            read_all(&mut r, 1_050, "new"),
            All::none(),
            "{kind}: new ttl"
        );
    }
    // And shorter: 1 000 -> 100.
    let mut h = subtask(0, 1, Some(ttl(1_000)), None, 0);
    at(&mut h, 0, "old", vec![Cmd::WriteAll(1)]);
    h.set_processing_time(10);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        let mut r = restored(Some(ttl(100)), snapshot, 50);
        assert_eq!(read_all(&mut r, 999, "old"), All::one(1), "{kind}");
        assert_eq!(read_all(&mut r, 1_000, "old"), All::none(), "{kind}");
    }
}

const DOWN_UNTIL: i64 = 1_000_000;

pub(crate) fn with_the_clock_continuing_a_long_downtime_expires_everything() {
    let config = ttl(100).downtime(DowntimePolicy::ClockContinues);
    let mut h = subtask(0, 1, Some(config.clone()), None, 0);
    at(&mut h, 950, "k", vec![Cmd::WriteAll(1)]);
    h.set_processing_time(1_000);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        let mut r = restored(Some(config.clone()), snapshot, DOWN_UNTIL);
        assert_eq!(read_all(&mut r, DOWN_UNTIL, "k"), All::none(), "{kind}");
    }
}

pub(crate) fn paused_during_downtime_entries_are_shifted_by_the_downtime() {
    let config = ttl(100).downtime(DowntimePolicy::PauseDuringDowntime);
    let mut h = subtask(0, 1, Some(config.clone()), None, 0);
    at(&mut h, 950, "k", vec![Cmd::WriteAll(1)]);
    h.set_processing_time(1_000);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        // Down from 1 000 to DOWN_UNTIL: "k" had 50 ms left, and has them.
        let mut r = restored(Some(config.clone()), snapshot, DOWN_UNTIL);
        at(&mut r, DOWN_UNTIL + 10, "new", vec![Cmd::Put(2)]);
        assert_eq!(
            read_all(&mut r, DOWN_UNTIL + 49, "k"),
            All::one(1),
            "{kind}"
        );
        assert_eq!(
            read_all(&mut r, DOWN_UNTIL + 50, "k"),
            All::none(),
            "{kind}"
        );
        // Written after the restore: a whole ttl.
        assert_eq!(
            at(&mut r, DOWN_UNTIL + 109, "new", vec![Cmd::Get]),
            vec![Reply::Value(Some(2))],
            "{kind}"
        );
        assert_eq!(
            at(&mut r, DOWN_UNTIL + 110, "new", vec![Cmd::Get]),
            vec![Reply::Value(None)],
            "{kind}"
        );
        // A second outage: the clock resumes where this run's stopped.
        at(&mut r, DOWN_UNTIL + 120, "later", vec![Cmd::Put(3)]);
        r.set_processing_time(DOWN_UNTIL + 150);
        let again = r.snapshot(5).unwrap();
        // "later" had 70 ms left at the snapshot.
        let mut r2 = restored(Some(config.clone()), again, 2 * DOWN_UNTIL);
        assert_eq!(
            at(&mut r2, 2 * DOWN_UNTIL + 69, "later", vec![Cmd::Get]),
            vec![Reply::Value(Some(3))],
            "{kind}"
        );
        assert_eq!(
            at(&mut r2, 2 * DOWN_UNTIL + 70, "later", vec![Cmd::Get]),
            vec![Reply::Value(None)],
            "{kind}"
        );
    }
}

pub(crate) fn a_savepoint_of_restored_state_no_record_touched_holds_no_expired_entry() {
    let mut h = subtask(0, 1, Some(ttl(100)), None, 0);
    at(&mut h, 0, "a", vec![Cmd::WriteAll(1)]);
    at(
        &mut h,
        0,
        "c",
        vec![Cmd::ListAdd(10), Cmd::MapPut("x".into(), 10)],
    );
    at(&mut h, 60, "b", vec![Cmd::WriteAll(2)]);
    at(
        &mut h,
        60,
        "c",
        vec![Cmd::ListAdd(11), Cmd::MapPut("y".into(), 11)],
    );
    h.set_processing_time(80);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        // Restored before anything expired, and no record comes: the states
        // are never opened again before the savepoint at 120.
        let mut r = restored(Some(ttl(100)), snapshot, 90);
        r.set_processing_time(120);
        let savepoint = r.savepoint(3).unwrap();
        let mut plain = restored(None, savepoint, 0);
        assert_eq!(read_all(&mut plain, 0, "a"), All::none(), "{kind}");
        assert_eq!(read_all(&mut plain, 0, "b"), All::one(2), "{kind}");
        assert_eq!(
            read_all(&mut plain, 0, "c"),
            All {
                list: vec![11],
                map: vec![("y".into(), 11)],
                ..All::none()
            },
            "{kind}"
        );
    }
}

pub(crate) fn paused_cleanup_timers_wake_the_operator_at_their_expiry_in_processing_time() {
    let config = ttl(100)
        .downtime(DowntimePolicy::PauseDuringDowntime)
        .cleanup_with_timers();
    let mut h = subtask(0, 1, Some(config.clone()), None, 0);
    at(&mut h, 950, "k", vec![Cmd::Put(1)]);
    h.set_processing_time(1_000);
    let snapshot = h.snapshot(1).unwrap();
    // Down from 1 000 to DOWN_UNTIL: "k" expires 50 ms after the restore,
    // on the paused clock at 1 050; the wake-up is in processing time.
    let mut r = restored(Some(config), snapshot, DOWN_UNTIL);
    at(&mut r, DOWN_UNTIL, "other", vec![Cmd::Put(2)]);
    assert_eq!(r.next_processing_time(), Some(DOWN_UNTIL + 50));
    r.processing_time(DOWN_UNTIL + 50).unwrap();
    assert_eq!(r.next_processing_time(), Some(DOWN_UNTIL + 100));
}

pub(crate) fn event_time_ttl_switched_on_at_a_restore_stamps_entries_with_the_first_event_time() {
    let mut plain = subtask(0, 1, None, None, 0);
    at(&mut plain, 0, "k", vec![Cmd::Put(1)]);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut plain, 1) {
        let config = ttl(1_000).time(weir::state::ttl::TtlTime::EventTime);
        let mut r = restored(Some(config), snapshot, 0);
        // First used by a record of event time 5 000, before any watermark:
        // "k" lives until 6 000 of event time.
        assert_eq!(
            crate::ttl::stamped(&mut r, 5_000, "k", vec![Cmd::Get]),
            vec![Reply::Value(Some(1))],
            "{kind}"
        );
        r.watermark(5_999).unwrap();
        assert_eq!(
            crate::ttl::stamped(&mut r, 6_000, "k", vec![Cmd::Get]),
            vec![Reply::Value(Some(1))],
            "{kind}"
        );
        r.watermark(6_000).unwrap();
        assert_eq!(
            crate::ttl::stamped(&mut r, 6_000, "k", vec![Cmd::Get]),
            vec![Reply::Value(None)],
            "{kind}"
        );
    }
}

pub(crate) fn event_time_entries_expired_at_the_snapshot_stay_expired_after_the_restore() {
    let config = ttl(100)
        .time(weir::state::ttl::TtlTime::EventTime)
        .update_type(weir::state::ttl::TtlUpdate::OnReadAndWrite)
        .disable_cleanup_in_background();
    let mut h = subtask(0, 1, Some(config.clone()), None, 0);
    crate::ttl::stamped(&mut h, 1_000, "old", vec![Cmd::WriteAll(1)]);
    crate::ttl::stamped(&mut h, 1_090, "new", vec![Cmd::WriteAll(2)]);
    h.watermark(1_100).unwrap();
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        let mut r = restored(Some(config.clone()), snapshot, 0);
        // Before any watermark, a late record reads: "old" expired at the
        // snapshot's watermark and is not revived; "new" lives to 1 190.
        assert_eq!(
            crate::ttl::stamped(&mut r, 1_050, "old", vec![Cmd::ReadAll]),
            vec![Reply::All(All::none())],
            "{kind}"
        );
        assert_eq!(
            crate::ttl::stamped(&mut r, 1_050, "new", vec![Cmd::Get]),
            vec![Reply::Value(Some(2))],
            "{kind}"
        );
    }
}

pub(crate) fn switching_off_the_ttl_of_a_paused_state_keeps_what_was_live_on_its_clock() {
    let config = ttl(100).downtime(DowntimePolicy::PauseDuringDowntime);
    let mut h = subtask(0, 1, Some(config), None, 0);
    at(&mut h, 900, "gone", vec![Cmd::Put(1)]);
    at(&mut h, 950, "live", vec![Cmd::Put(2)]);
    h.set_processing_time(1_000);
    for (kind, snapshot) in checkpoint_and_savepoint(&mut h, 1) {
        // Down from 1 000 to DOWN_UNTIL: on the paused clock, "live" had 50
        // ms left and "gone" had expired at 1 000.
        let mut r = restored(None, snapshot, DOWN_UNTIL);
        assert_eq!(
            at(&mut r, DOWN_UNTIL, "live", vec![Cmd::Get]),
            vec![Reply::Value(Some(2))],
            "{kind}"
        );
        assert_eq!(
            at(&mut r, DOWN_UNTIL, "gone", vec![Cmd::Get]),
            vec![Reply::Value(None)],
            "{kind}"
        );
    }
}

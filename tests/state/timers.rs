//! Timers: firing order (timestamp, then registration), de-duplication per
//! (key, timestamp), deletion, event time only at the watermark, processing
//! time through the harness clock, what the context says in `on_timer`, and
//! timers through a snapshot and restore.
//!
//! The tests are plain functions: `main.rs` runs each of them once per
//! backend (`every_backend!`).

use serde::{Deserialize, Serialize};
use weir::state::{MapStateDescriptor, ValueStateDescriptor, ValueStateWithDefault};
use weir::testing::OperatorHarness;
use weir::{Collector, KeyedContext, KeyedProcessFunction, Lifecycle, UserError};

use crate::kit::MAX_P;

/// What [`TimerProbe`] is told to do for a key.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum TimerCmd {
    Event(i64),
    DeleteEvent(i64),
    Processing(i64),
    DeleteProcessing(i64),
    /// Registers an event-time timer whose `on_timer` registers the next one,
    /// 10 ms later, up to `until`.
    Chain {
        at: i64,
        until: i64,
    },
}

/// What [`TimerProbe`] saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    key: String,
    /// `on_timer`'s timestamp argument; `None` for a record.
    timer: Option<i64>,
    domain: Option<String>,
    timestamp: Option<i64>,
    watermark: i64,
    /// The key's number of records so far.
    records: u64,
}

/// Registers and deletes timers as it is told, and reports every call.
#[derive(Clone)]
struct TimerProbe {
    records: ValueStateWithDefault<u64>,
    chain_until: MapStateDescriptor<i64, i64>,
}

impl TimerProbe {
    fn new() -> Self {
        TimerProbe {
            records: ValueStateDescriptor::new("records").with_default(0),
            chain_until: MapStateDescriptor::new("chain-until"),
        }
    }

    fn seen(&self, ctx: &mut KeyedContext<String>, timer: Option<i64>) -> Result<Seen, UserError> {
        Ok(Seen {
            key: ctx.current_key().clone(),
            timer,
            domain: ctx.time_domain().map(|d| format!("{d:?}")),
            timestamp: ctx.timestamp(),
            watermark: ctx.current_watermark(),
            records: ctx.state(&self.records)?.value().unwrap_or_default(),
        })
    }
}

impl Lifecycle for TimerProbe {}

impl KeyedProcessFunction<String, (String, TimerCmd), Seen> for TimerProbe {
    fn process_element(
        &mut self,
        (_, cmd): (String, TimerCmd),
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Seen>,
    ) -> Result<(), UserError> {
        ctx.state(&self.records)?.modify(|n| *n += 1);
        match cmd {
            TimerCmd::Event(t) => ctx.register_event_time_timer(t),
            TimerCmd::DeleteEvent(t) => ctx.delete_event_time_timer(t),
            TimerCmd::Processing(t) => ctx.register_processing_time_timer(t),
            TimerCmd::DeleteProcessing(t) => ctx.delete_processing_time_timer(t),
            TimerCmd::Chain { at, until } => {
                ctx.state(&self.chain_until)?.put(at, until);
                ctx.register_event_time_timer(at);
            }
        }
        let seen = self.seen(ctx, None)?;
        out.collect(seen);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedContext<String>,
        out: &mut Collector<Seen>,
    ) -> Result<(), UserError> {
        let until = ctx.state(&self.chain_until)?.remove(&timestamp);
        if let Some(until) = until {
            if timestamp + 10 <= until {
                ctx.state(&self.chain_until)?.put(timestamp + 10, until);
                ctx.register_event_time_timer(timestamp + 10);
            }
        }
        let seen = self.seen(ctx, Some(timestamp))?;
        out.collect(seen);
        Ok(())
    }
}

type TimerHarness = OperatorHarness<(String, TimerCmd), Seen>;

fn timer_harness() -> TimerHarness {
    let mut h = OperatorHarness::keyed(
        TimerProbe::new(),
        |r: &(String, TimerCmd)| r.0.clone(),
        0,
        1,
        MAX_P,
    );
    h.open(None).unwrap();
    h
}

fn commands(h: &mut TimerHarness, cmds: &[(&str, TimerCmd)]) {
    h.process(
        cmds.iter()
            .map(|(k, c)| (k.to_string(), c.clone()))
            .collect(),
    )
    .unwrap();
    for seen in h.take_output() {
        assert_eq!(seen.timer, None);
        assert_eq!(seen.domain, None, "no time domain while handling a record");
    }
}

/// The (key, timer) pairs that fired, in order.
fn fired(h: &mut TimerHarness) -> Vec<(String, i64)> {
    h.take_output()
        .into_iter()
        .map(|s| (s.key, s.timer.expect("only timers fire here")))
        .collect()
}

fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(k, t)| (k.to_string(), *t)).collect()
}

pub(crate) fn timers_fire_by_timestamp_then_registration_order_once_per_key_and_time() {
    let mut h = timer_harness();
    use TimerCmd::Event;
    commands(
        &mut h,
        &[
            ("a", Event(30)),
            ("b", Event(10)),
            ("c", Event(10)),
            ("a", Event(10)),
            ("b", Event(20)),
            ("b", Event(10)), // again: de-duplicated
            ("a", Event(30)), // again
        ],
    );
    h.watermark(100).unwrap();
    assert_eq!(
        fired(&mut h),
        pairs(&[("b", 10), ("c", 10), ("a", 10), ("b", 20), ("a", 30)])
    );
    assert_eq!(h.take_watermarks(), vec![100]);
    h.watermark(200).unwrap();
    assert!(fired(&mut h).is_empty(), "each timer fires once");

    // A timer that fired can be registered again.
    commands(&mut h, &[("a", Event(150)), ("a", Event(250))]);
    h.watermark(300).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 150), ("a", 250)]));
}

pub(crate) fn event_time_timers_fire_only_when_the_watermark_reaches_them() {
    let mut h = timer_harness();
    use TimerCmd::Event;
    commands(
        &mut h,
        &[("a", Event(10)), ("b", Event(20)), ("a", Event(21))],
    );
    h.watermark(9).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(10).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 10)]));
    h.watermark(19).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(20).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 20)]));
    // Processing time does not fire event-time timers.
    h.processing_time(1_000_000).unwrap();
    assert!(fired(&mut h).is_empty());
    h.watermark(i64::MAX).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 21)]));
    assert_eq!(h.take_watermarks(), vec![9, 10, 19, 20, i64::MAX]);
}

pub(crate) fn deleted_timers_do_not_fire() {
    let mut h = timer_harness();
    use TimerCmd::{DeleteEvent, DeleteProcessing, Event, Processing};
    commands(
        &mut h,
        &[
            ("a", Event(10)),
            ("a", Event(20)),
            ("b", Event(10)),
            ("a", DeleteEvent(10)),
            ("a", DeleteEvent(15)), // never registered: nothing happens
            ("c", DeleteEvent(20)), // another key's timer: a's stays
            ("a", Processing(50)),
            ("b", Processing(60)),
            ("a", DeleteProcessing(50)),
            ("b", DeleteEvent(10)),
            ("b", Event(10)), // registered again after its deletion
        ],
    );
    h.watermark(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 10), ("a", 20)]));
    h.processing_time(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 60)]));
}

pub(crate) fn processing_time_timers_fire_by_the_harness_clock() {
    let mut h = timer_harness();
    use TimerCmd::{Event, Processing};
    assert_eq!(h.next_processing_time(), None);
    commands(
        &mut h,
        &[
            ("a", Processing(1_000)),
            ("b", Processing(500)),
            ("a", Processing(500)),
            ("b", Event(400)),
        ],
    );
    assert_eq!(h.next_processing_time(), Some(500));
    h.processing_time(499).unwrap();
    assert!(fired(&mut h).is_empty());
    h.processing_time(500).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 500), ("a", 500)]));
    assert_eq!(h.next_processing_time(), Some(1_000));
    h.processing_time(5_000).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 1_000)]));
    assert_eq!(h.next_processing_time(), None);
    // The event-time timer is still waiting for its watermark.
    h.watermark(400).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("b", 400)]));
}

pub(crate) fn on_timer_sees_its_key_domain_timestamp_watermark_and_state() {
    let mut h = timer_harness();
    use TimerCmd::{Event, Processing};
    commands(
        &mut h,
        &[("a", Event(10)), ("a", Processing(77)), ("b", Event(12))],
    );
    h.watermark(15).unwrap();
    let event = h.take_output_with_timestamps();
    assert_eq!(
        event,
        vec![
            (
                Seen {
                    key: "a".into(),
                    timer: Some(10),
                    domain: Some("EventTime".into()),
                    timestamp: Some(10),
                    watermark: 15,
                    records: 2,
                },
                Some(10) // what on_timer emits carries the timer's time
            ),
            (
                Seen {
                    key: "b".into(),
                    timer: Some(12),
                    domain: Some("EventTime".into()),
                    timestamp: Some(12),
                    watermark: 15,
                    records: 1,
                },
                Some(12)
            ),
        ]
    );
    h.processing_time(80).unwrap();
    assert_eq!(
        h.take_output(),
        vec![Seen {
            key: "a".into(),
            timer: Some(77),
            domain: Some("ProcessingTime".into()),
            timestamp: Some(77),
            watermark: 15,
            records: 2,
        }]
    );
}

pub(crate) fn records_see_their_timestamp_and_the_watermark_and_keep_the_timestamp_on_output() {
    let mut h = timer_harness();
    h.watermark(5).unwrap();
    h.process_with_timestamps(vec![(("a".into(), TimerCmd::Event(100)), 42)])
        .unwrap();
    let out = h.take_output_with_timestamps();
    assert_eq!(out.len(), 1);
    let (seen, timestamp) = &out[0];
    assert_eq!(
        (
            seen.timestamp,
            seen.watermark,
            seen.domain.clone(),
            *timestamp
        ),
        (Some(42), 5, None, Some(42))
    );
}

pub(crate) fn a_timer_registered_in_on_timer_at_or_before_the_watermark_fires_in_the_same_advance()
{
    let mut h = timer_harness();
    commands(
        &mut h,
        &[
            ("a", TimerCmd::Chain { at: 10, until: 40 }),
            ("b", TimerCmd::Event(25)),
        ],
    );
    h.watermark(30).unwrap();
    assert_eq!(
        fired(&mut h),
        pairs(&[("a", 10), ("a", 20), ("b", 25), ("a", 30)])
    );
    h.watermark(100).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 40)]));
}

pub(crate) fn timers_survive_a_snapshot_and_restore() {
    let mut h = timer_harness();
    use TimerCmd::{DeleteEvent, Event, Processing};
    commands(
        &mut h,
        &[
            ("a", Event(10)),
            ("b", Event(20)),
            ("a", Event(30)),
            ("a", DeleteEvent(30)),
            ("a", Processing(700)),
        ],
    );
    h.watermark(10).unwrap();
    assert_eq!(fired(&mut h), pairs(&[("a", 10)]));
    let snapshot = h.snapshot(1).unwrap();

    let mut restored = OperatorHarness::keyed(
        TimerProbe::new(),
        |r: &(String, TimerCmd)| r.0.clone(),
        0,
        1,
        MAX_P,
    );
    restored.open(Some(snapshot)).unwrap();
    assert_eq!(restored.next_processing_time(), Some(700));
    restored.watermark(100).unwrap();
    assert_eq!(fired(&mut restored), pairs(&[("b", 20)]));
    restored.processing_time(700).unwrap();
    assert_eq!(fired(&mut restored), pairs(&[("a", 700)]));
}

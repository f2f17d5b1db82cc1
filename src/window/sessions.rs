//! The session engine: how the window operator keeps session windows (event or
//! processing time, static or dynamic gap) with an incremental function
//! (`reduce`, `aggregate`, alone or with a process function), the default
//! trigger and no evictor.
//!
//! Per key it keeps the open sessions as one value (`Session`s ordered
//! by start, keyed state `window-sessions`): an element that extends a
//! session changes it in place, one state access, where the general
//! engine ([`super::general`]) reads the key's windows, removes the
//! merged ones, writes the merged window and moves its timers on every
//! element.
//!
//! Timers are lazy. A session registers a timer when it opens, at its
//! last timestamp (`end - 1`), and remembers it (`Session::timer`). An
//! element that extends the session does not move it: when the timer fires
//! and the session now ends later, the session registers one at its new
//! last timestamp then. So a session that elements keep extending costs a
//! timer per gap, not two timer operations per element. A session fires
//! when a timer at its last timestamp fires, and is removed at its cleanup
//! time (the last timestamp plus the allowed lateness); merged sessions
//! keep the earliest of their timers and delete the others. Output,
//! lateness, late data and merging (also by a late element that bridges
//! two sessions) follow Flink's rules as the general engine does; the
//! differential window tests run both. A pending timer may therefore be
//! earlier than its session's end (`weir inspect` shows the timers as they
//! are).

use serde::{Deserialize, Serialize};
use weir_actors::UserError;

use crate::lifecycle::Lifecycle;
use crate::operator::Collector;
use crate::ops::keyed_process::KeyedContext;
use crate::state::schema::StateDeclarations;
use crate::state::timers::TimeDomain;
use crate::state::{Key, StateData, ValueStateDescriptor, ValueStateWithDefault};

use super::assigners::SessionSpec;
use super::engine::EngineSpec;
use super::functions::{clear_window, fire_aggregate, Fold, Incremental, ProcessWindowFunction};
use super::late::LateData;
use super::operator::WindowEngine;
use super::triggers::WindowTimer;

/// The name of the session engine's keyed state.
pub const WINDOW_SESSIONS: &str = "window-sessions";

/// One open session of one key: the window `[start, end)`, its aggregate,
/// and the time of the timer it waits for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session<Acc> {
    pub start: i64,
    pub end: i64,
    /// A timer registered for the session, at or before the time it next
    /// has to act (its end - 1 until it fired, then its cleanup time).
    pub timer: i64,
    pub acc: Acc,
}

impl<Acc> Session<Acc> {
    /// Whether `[start, end)` overlaps or touches the session (Flink's
    /// `TimeWindow.intersects`: such windows merge).
    fn meets(&self, start: i64, end: i64) -> bool {
        self.start <= end && self.end >= start
    }

    fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
}

/// The session engine (see the module documentation).
pub(crate) struct SessionEngine<K, T, Out, F: Fold<T>, P, W> {
    spec: SessionSpec<T, W>,
    settings: Result<(), String>,
    logic: Incremental<F, P>,
    late: LateData<T>,
    sessions: ValueStateWithDefault<Vec<Session<F::Acc>>>,
    _types: std::marker::PhantomData<fn(K) -> Out>,
}

fn sessions_descriptor<Acc: StateData>() -> ValueStateWithDefault<Vec<Session<Acc>>> {
    ValueStateDescriptor::new(WINDOW_SESSIONS).with_default(Vec::new())
}

/// What placing an element did, for the operator to finish outside the
/// state access.
enum Placed<T, Acc> {
    /// In no open session (the element, given back).
    Late(T),
    /// In the session `[start, end)`: register a timer at `register`,
    /// delete the timers in `released` (of sessions merged away), and fire
    /// the session now with `fire` (a late firing).
    In {
        register: Option<i64>,
        released: Vec<i64>,
        fire: Option<(i64, i64, Acc)>,
    },
    /// Merging would make a session end before the watermark or clock.
    Refused(String),
}

/// What a timer did to one session.
struct Due<Acc> {
    start: i64,
    end: i64,
    /// Fire with this aggregate.
    fire: Option<Acc>,
    /// Removed (cleaned up).
    cleared: bool,
}

impl<K, T, Out, F, P, W> Clone for SessionEngine<K, T, Out, F, P, W>
where
    T: crate::Data,
    F: Fold<T>,
    F::Acc: StateData,
    P: Clone,
{
    /// A fresh instance: same settings, no state.
    fn clone(&self) -> Self {
        SessionEngine {
            spec: self.spec.clone(),
            settings: self.settings.clone(),
            logic: self.logic.clone(),
            late: self.late.clone(),
            sessions: sessions_descriptor(),
            _types: std::marker::PhantomData,
        }
    }
}

impl<K, T, Out, F, P, W> SessionEngine<K, T, Out, F, P, W>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    F: Fold<T>,
    F::Acc: StateData,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    W: 'static,
{
    pub(crate) fn new(spec: EngineSpec<T, F, P, SessionSpec<T, W>>) -> Self {
        SessionEngine {
            spec: spec.shape,
            settings: spec.settings,
            logic: Incremental {
                fold: spec.fold,
                function: spec.function,
            },
            late: LateData::new(spec.allowed_lateness, spec.late_tag),
            sessions: sessions_descriptor(),
            _types: std::marker::PhantomData,
        }
    }

    /// The allowed lateness that applies (processing-time windows have none).
    fn lateness(&self) -> i64 {
        if self.spec.event_time {
            self.late.allowed_lateness
        } else {
            0
        }
    }

    fn register(&self, ctx: &mut KeyedContext<'_, K>, at: i64) {
        let event_time = self.spec.event_time;
        WindowTimer { event_time, at }.register_with(ctx);
    }
}

/// The times an element is placed by.
#[derive(Clone, Copy)]
struct Clock {
    event_time: bool,
    /// `i64::MIN` in processing time.
    watermark: i64,
    now: i64,
    lateness: i64,
}

/// Places an element that opens `[start, end)` among a key's `sessions`
/// (ordered by start, none meeting another): merges the sessions it meets
/// into one (their aggregates in order, then the element's), or opens a
/// session, or finds it late (Flink's `MergingWindowSet.addWindow` and the
/// default trigger's `onElement`/`onMerge`).
fn place<T, F: Fold<T>>(
    sessions: &mut Vec<Session<F::Acc>>,
    (start, end): (i64, i64),
    value: T,
    clock: Clock,
    fold: &F,
) -> Placed<T, F::Acc> {
    // The sessions the window meets are a run; an element usually meets the
    // newest session, so the run is found from the back.
    let after = sessions
        .iter()
        .rposition(|s| s.start <= end)
        .map_or(0, |i| i + 1);
    let first = sessions[..after]
        .iter()
        .rposition(|s| !s.meets(start, end))
        .map_or(0, |i| i + 1);
    let cleanup = |end: i64| end.saturating_sub(1).saturating_add(clock.lateness);
    if first == after {
        // A new session: late if its window already went.
        if clock.event_time && cleanup(end) <= clock.watermark {
            return Placed::Late(value);
        }
        let max_timestamp = end.saturating_sub(1);
        let late_firing = clock.event_time && max_timestamp <= clock.watermark;
        let timer = if late_firing {
            cleanup(end)
        } else {
            max_timestamp
        };
        let session = Session {
            start,
            end,
            timer,
            acc: fold.first(value),
        };
        let fire = late_firing.then(|| (start, end, session.acc.clone()));
        sessions.insert(first, session);
        return Placed::In {
            register: Some(timer),
            released: Vec::new(),
            fire,
        };
    }
    let merged_start = start.min(sessions[first].start);
    let merged_end = end.max(sessions[after - 1].end);
    let merges = after - first > 1
        || merged_start != sessions[first].start
        || merged_end != sessions[first].end;
    if merges {
        let max_timestamp = merged_end.saturating_sub(1);
        if clock.event_time && cleanup(merged_end) <= clock.watermark {
            return Placed::Refused(format!(
                "merging windows into TimeWindow {{ start: {merged_start}, end: {merged_end} }} would make it end before the current watermark {}",
                clock.watermark
            ));
        }
        if !clock.event_time && max_timestamp <= clock.now {
            return Placed::Refused(format!(
                "merging windows into TimeWindow {{ start: {merged_start}, end: {merged_end} }} would make it end before the current processing time {}",
                clock.now
            ));
        }
    }
    // `first < after`: the run is not empty.
    let mut session = sessions.remove(first);
    let rest = sessions.drain(first..after - 1);
    // The merged session waits for the earliest of its parts' timers; the
    // others are deleted (as the general engine and Flink do on a merge).
    let mut released = Vec::new();
    for part in rest {
        fold.merge(&mut session.acc, part.acc);
        released.push(session.timer.max(part.timer));
        session.timer = session.timer.min(part.timer);
    }
    session.start = merged_start;
    session.end = merged_end;
    fold.add(&mut session.acc, value);
    let max_timestamp = session.max_timestamp();
    let mut register = None;
    let mut fire = None;
    if clock.event_time && max_timestamp <= clock.watermark {
        // Fired already, within the allowed lateness: fires again now.
        fire = Some((session.start, session.end, session.acc.clone()));
    } else if session.timer > max_timestamp {
        // Extended after it fired (allowed lateness): fires at its new end.
        session.timer = max_timestamp;
        register = Some(max_timestamp);
    }
    sessions.insert(first, session);
    // A timer another session of the key waits for stays.
    released.retain(|at| Some(*at) != register && sessions.iter().all(|s| s.timer != *at));
    released.sort_unstable();
    released.dedup();
    Placed::In {
        register,
        released,
        fire,
    }
}

impl<K, T, Out, F, P, W> WindowEngine<K, T, Out> for SessionEngine<K, T, Out, F, P, W>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    F: Fold<T>,
    F::Acc: StateData,
    P: ProcessWindowFunction<K, F::Out, Out, W>,
    W: Send + 'static,
{
    const STATE: &'static str = WINDOW_SESSIONS;

    fn settings(&self) -> Result<(), String> {
        self.settings.clone()
    }

    fn late(&self) -> &LateData<T> {
        &self.late
    }

    fn function(&mut self) -> &mut dyn Lifecycle {
        &mut self.logic
    }

    fn declare_states(&self, states: &mut StateDeclarations) {
        states.keyed(&self.sessions);
        self.logic.declare_states(states);
    }

    #[inline]
    fn on_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let timestamp = ctx.timestamp();
        let now = ctx.current_processing_time();
        let (start, end) = (self.spec.bounds)(&value, timestamp, now)?;
        let event_time = self.spec.event_time;
        // Processing time: no session is late, none fires on an element.
        let watermark = if event_time {
            ctx.current_watermark()
        } else {
            i64::MIN
        };
        let lateness = self.lateness();
        let fold = &self.logic.fold;
        let mut state = ctx.state(&self.sessions)?;
        let placed = state.modify(|sessions| {
            let placed = place(
                sessions,
                (start, end),
                value,
                Clock {
                    event_time,
                    watermark,
                    now,
                    lateness,
                },
                fold,
            );
            (placed, sessions.is_empty())
        });
        let Some((placed, empty)) = placed else {
            return Ok(());
        };
        if empty {
            // A key whose elements were all late keeps no state.
            state.clear();
        }
        match placed {
            Placed::Late(value) => {
                self.late
                    .on_unplaced(value, timestamp, watermark, event_time, ctx);
            }
            Placed::Refused(message) => return Err(message.into()),
            Placed::In {
                register,
                released,
                fire,
            } => {
                if let Some(at) = register {
                    self.register(ctx, at);
                }
                for at in released {
                    if event_time {
                        ctx.delete_event_time_timer(at);
                    } else {
                        ctx.delete_processing_time_timer(at);
                    }
                }
                if let Some((start, end, mut acc)) = fire {
                    fire_aggregate(
                        &mut self.logic,
                        self.spec.window,
                        (start, end),
                        &mut acc,
                        ctx,
                        out,
                    )?;
                    out.set_timestamp(timestamp);
                }
            }
        }
        Ok(())
    }

    /// A timer of the key in `ctx` at `time`: each session waiting for it
    /// fires (at its end - 1), is removed (at its cleanup time), or waits
    /// for a later timer (it was extended since it registered this one).
    fn on_timer(
        &mut self,
        time: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let own = if self.spec.event_time {
            TimeDomain::EventTime
        } else {
            TimeDomain::ProcessingTime
        };
        if domain != own {
            // Not one of this engine's timers (it registers them in its
            // own domain only).
            return Ok(());
        }
        let lateness = self.lateness();
        let mut later = Vec::new();
        let mut state = ctx.state(&self.sessions)?;
        let Some((due, empty)) = state.modify(|sessions| {
            let mut due = Vec::new();
            let mut i = 0;
            while i < sessions.len() {
                let session = &mut sessions[i];
                if session.timer != time {
                    i += 1;
                    continue;
                }
                let max_timestamp = session.max_timestamp();
                let cleanup = max_timestamp.saturating_add(lateness);
                if time < max_timestamp {
                    session.timer = max_timestamp;
                    later.push(max_timestamp);
                    i += 1;
                    continue;
                }
                let fires = time == max_timestamp;
                if time < cleanup {
                    // Kept for late elements until its cleanup time.
                    due.push(Due {
                        start: session.start,
                        end: session.end,
                        fire: fires.then(|| session.acc.clone()),
                        cleared: false,
                    });
                    session.timer = cleanup;
                    later.push(cleanup);
                    i += 1;
                } else {
                    let session = sessions.remove(i);
                    due.push(Due {
                        start: session.start,
                        end: session.end,
                        fire: fires.then_some(session.acc),
                        cleared: true,
                    });
                }
            }
            (due, sessions.is_empty())
        }) else {
            return Ok(());
        };
        if empty {
            state.clear();
        }
        for at in later {
            self.register(ctx, at);
        }
        for session in due {
            if let Some(mut acc) = session.fire {
                fire_aggregate(
                    &mut self.logic,
                    self.spec.window,
                    (session.start, session.end),
                    &mut acc,
                    ctx,
                    out,
                )?;
            }
            if session.cleared {
                let now = ctx.current_processing_time();
                let window = (self.spec.window)(session.start, session.end);
                clear_window::<K, T, W, Out, _>(&mut self.logic, &window, now, ctx)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps the elements in the order they were added and merged.
    #[derive(Clone)]
    struct Elements;

    impl Fold<u64> for Elements {
        type Acc = Vec<u64>;
        type Out = Vec<u64>;
        fn first(&self, value: u64) -> Vec<u64> {
            vec![value]
        }
        fn add(&self, acc: &mut Vec<u64>, value: u64) {
            acc.push(value);
        }
        fn merge(&self, acc: &mut Vec<u64>, other: Vec<u64>) {
            acc.extend(other);
        }
        fn result(&self, acc: &Vec<u64>) -> Vec<u64> {
            acc.clone()
        }
    }

    fn at(watermark: i64, lateness: i64) -> Clock {
        Clock {
            event_time: true,
            watermark,
            now: 0,
            lateness,
        }
    }

    /// The sessions as `(start, end, timer, elements)`.
    fn shown(sessions: &[Session<Vec<u64>>]) -> Vec<(i64, i64, i64, Vec<u64>)> {
        sessions
            .iter()
            .map(|s| (s.start, s.end, s.timer, s.acc.clone()))
            .collect()
    }

    fn registered<T>(placed: &Placed<T, Vec<u64>>) -> Option<i64> {
        match placed {
            Placed::In { register, .. } => *register,
            _ => None,
        }
    }

    fn released<T>(placed: &Placed<T, Vec<u64>>) -> Vec<i64> {
        match placed {
            Placed::In { released, .. } => released.clone(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn an_element_opens_extends_or_bridges_sessions_and_timers_stay_put() {
        let mut sessions = Vec::new();
        let placed = place(&mut sessions, (100, 200), 1, at(0, 0), &Elements);
        assert_eq!(registered(&placed), Some(199));
        let placed = place(&mut sessions, (400, 500), 2, at(0, 0), &Elements);
        assert_eq!(registered(&placed), Some(499));
        // Extending a session registers nothing: its timer at 199 fires
        // first and then moves to the new end.
        let placed = place(&mut sessions, (150, 250), 3, at(0, 0), &Elements);
        assert_eq!(registered(&placed), None);
        assert_eq!(
            shown(&sessions),
            vec![(100, 250, 199, vec![1, 3]), (400, 500, 499, vec![2])]
        );
        // Touching windows merge (Flink's `intersects`); a window that
        // meets both sessions merges them, aggregates in start order, and
        // keeps the earliest timer.
        let placed = place(&mut sessions, (250, 400), 4, at(0, 0), &Elements);
        assert_eq!(shown(&sessions), vec![(100, 500, 199, vec![1, 3, 2, 4])]);
        assert_eq!(released(&placed), vec![499], "the merged-away timer goes");
        // Inside a session: nothing changes but the aggregate.
        place(&mut sessions, (300, 350), 5, at(0, 0), &Elements);
        assert_eq!(shown(&sessions), vec![(100, 500, 199, vec![1, 3, 2, 4, 5])]);
        // Before every session: a new first one.
        place(&mut sessions, (0, 50), 6, at(0, 0), &Elements);
        assert_eq!(sessions[0].start, 0);
        assert_eq!(sessions.len(), 2);
    }

    #[test]
    fn late_elements_are_given_back_or_fire_a_session_again() {
        let mut sessions = Vec::new();
        // Its window ended (and cleaned up) before the watermark: late.
        let placed = place(&mut sessions, (0, 100), 1, at(500, 0), &Elements);
        assert!(matches!(placed, Placed::Late(1)));
        assert!(sessions.is_empty());
        // Within the allowed lateness: fires at once, cleaned up later.
        let placed = place(&mut sessions, (0, 100), 2, at(150, 100), &Elements);
        match placed {
            Placed::In {
                register: Some(199),
                fire: Some((0, 100, acc)),
                ..
            } => assert_eq!(acc, vec![2]),
            _ => panic!("not fired at once"),
        }
        assert_eq!(shown(&sessions), vec![(0, 100, 199, vec![2])]);
        // Extended past the watermark after it fired: fires at its new end.
        let placed = place(&mut sessions, (90, 190), 3, at(150, 100), &Elements);
        assert_eq!(registered(&placed), Some(189));
        assert_eq!(shown(&sessions), vec![(0, 190, 189, vec![2, 3])]);
    }
}

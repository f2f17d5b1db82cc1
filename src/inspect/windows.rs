//! The window view of a snapshot: per window operator, what is open when the
//! snapshot was taken, in the windows' own terms rather than as keyed state.
//!
//! A window operator keeps its windows as keyed state under a name of its
//! own, and that name says how to read them:
//! - `window-slices` ([`crate::window::slicing::WINDOW_SLICES`], the slice
//!   engine of tumbling, sliding and cumulating windows with an incremental
//!   function): per key, `(slice end, partial aggregate)` pairs;
//! - `window-sessions` ([`crate::window::sessions::WINDOW_SESSIONS`], the
//!   session engine of session windows with an incremental function): per
//!   key, its sessions (`{"start":S,"end":E,"timer":T,"acc":...}`), ordered
//!   by start;
//! - `window-contents` ([`crate::window::general::WINDOW_STATE`], every
//!   other window): per key, a map from the window (`{"start":S,"end":E}` for
//!   time windows, `null` for the global window of count windows) to its
//!   contents, trigger state and timers.
//!
//! [`WindowReport`] sums one of them up: keys, open windows or slices (and the
//! key holding most of them), the span of their ends (and starts, for time
//! windows), and the operator's pending timers by domain with the next to
//! fire. The tally of rows and timers is pure; [`window_reports`] reads the
//! entries and timers (as [`super::query_keyed_state`] and
//! [`super::query_timers`] do, one at a time, from one reading of the
//! operator's state) of every window state whose bytes are decoded. An
//! incremental RocksDB checkpoint's window state is not summed up here:
//! `weir query` reads it.

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use super::query::OperatorKeyedState;
use super::report::{OperatorReport, StateReportKind};
use super::table::{Align, Table};
use super::{KeySelection, QueryRow, TimerRow};
use crate::window::general::WINDOW_STATE;
use crate::window::sessions::WINDOW_SESSIONS;
use crate::window::slicing::WINDOW_SLICES;

/// How a window operator keeps its windows (which of its states holds them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowEngine {
    /// Partial aggregates per slice (`window-slices`): a window is made of
    /// its slices when it fires.
    Slices,
    /// One entry per window (`window-contents`).
    Windows,
    /// A key's sessions in one value (`window-sessions`).
    Sessions,
}

impl WindowEngine {
    /// The engine whose state is named `state`, if any.
    pub fn of_state(state: &str) -> Option<Self> {
        match state {
            WINDOW_SLICES => Some(WindowEngine::Slices),
            WINDOW_STATE => Some(WindowEngine::Windows),
            WINDOW_SESSIONS => Some(WindowEngine::Sessions),
            _ => None,
        }
    }

    /// What one open unit of this engine is called.
    fn unit(self) -> &'static str {
        match self {
            WindowEngine::Slices => "slices",
            WindowEngine::Windows => "windows",
            WindowEngine::Sessions => "sessions",
        }
    }
}

/// The windows a window operator held in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowReport {
    /// The operator's uid.
    pub uid: String,
    /// The state holding the windows (`window-slices`, `window-contents` or
    /// `window-sessions`).
    pub state: String,
    /// How the operator keeps them.
    pub engine: WindowEngine,
    /// Keys with at least one open window or slice.
    pub keys: u64,
    /// Open windows (`windows`, `sessions`) or slices (`slices`), over all
    /// keys.
    pub open: u64,
    /// The most open windows or slices one key has.
    pub most_of_one_key: u64,
    /// That key (its JSON; the first in key-group order on a tie).
    pub busiest_key: Option<String>,
    /// The earliest window start (time windows only).
    pub earliest_start: Option<i64>,
    /// The earliest window or slice end (exclusive, ms).
    pub earliest_end: Option<i64>,
    /// The latest window or slice end (exclusive, ms).
    pub latest_end: Option<i64>,
    /// Pending event-time timers of the operator.
    pub event_timers: u64,
    /// The earliest of them.
    pub next_event_timer: Option<i64>,
    /// Pending processing-time timers of the operator.
    pub processing_timers: u64,
    /// The earliest of them.
    pub next_processing_timer: Option<i64>,
    /// Why the entries could not be read (then every count above is 0):
    /// the rest of the inspection stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A [`WindowReport`] in the making, fed one row and one timer at a time
/// (a window state may be larger than memory would hold as JSON rows).
struct Tally {
    report: WindowReport,
    /// The key of the latest rows and how many windows or slices they held.
    current: Option<(Json, u64)>,
}

impl Tally {
    fn new(uid: &str, state: &str, engine: WindowEngine) -> Self {
        Tally {
            report: WindowReport {
                uid: uid.to_string(),
                state: state.to_string(),
                engine,
                keys: 0,
                open: 0,
                most_of_one_key: 0,
                busiest_key: None,
                earliest_start: None,
                earliest_end: None,
                latest_end: None,
                event_timers: 0,
                next_event_timer: None,
                processing_timers: 0,
                next_processing_timer: None,
                unreadable: None,
            },
            current: None,
        }
    }

    fn row(&mut self, row: &QueryRow) {
        let end_of = |slice: &Json| slice.get(0).and_then(Json::as_i64);
        let (open, start, first_end, last_end) = match self.report.engine {
            // The value: `[[slice end, aggregate], ...]`, ordered by end.
            WindowEngine::Slices => {
                let slices = row.value.as_array().map_or(&[][..], Vec::as_slice);
                let (first, last) = (slices.first(), slices.last());
                (
                    slices.len() as u64,
                    None,
                    first.and_then(end_of),
                    last.and_then(end_of),
                )
            }
            // The value: `[{"start":S,"end":E,...}, ...]`, ordered by start
            // (and so by end: sessions do not overlap).
            WindowEngine::Sessions => {
                let sessions = row.value.as_array().map_or(&[][..], Vec::as_slice);
                let field = |session: Option<&Json>, name| session?.get(name)?.as_i64();
                let (first, last) = (sessions.first(), sessions.last());
                (
                    sessions.len() as u64,
                    field(first, "start"),
                    field(first, "end"),
                    field(last, "end"),
                )
            }
            // The map entry's key is the window.
            WindowEngine::Windows => {
                let field = |name| row.user_key.as_ref()?.get(name)?.as_i64();
                (1, field("start"), field("end"), field("end"))
            }
        };
        if open == 0 {
            return;
        }
        let report = &mut self.report;
        report.open += open;
        let min = |at: Option<i64>, t: Option<i64>| at.into_iter().chain(t).min();
        report.earliest_start = min(report.earliest_start, start);
        report.earliest_end = min(report.earliest_end, first_end);
        report.latest_end = report.latest_end.into_iter().chain(last_end).max();
        match &mut self.current {
            Some((key, n)) if *key == row.key => *n += open,
            _ => {
                self.end_key();
                self.current = Some((row.key.clone(), open));
            }
        }
    }

    /// The rows of the current key are over.
    fn end_key(&mut self) {
        if let Some((key, n)) = self.current.take() {
            let report = &mut self.report;
            report.keys += 1;
            // The first key in key-group order wins a tie.
            if n > report.most_of_one_key {
                report.most_of_one_key = n;
                report.busiest_key = Some(key.to_string());
            }
        }
    }

    fn timer(&mut self, timer: &TimerRow) {
        let report = &mut self.report;
        let (count, next) = match timer.domain {
            "event_time" => (&mut report.event_timers, &mut report.next_event_timer),
            _ => (
                &mut report.processing_timers,
                &mut report.next_processing_timer,
            ),
        };
        *count += 1;
        *next = Some(next.map_or(timer.timestamp, |t| t.min(timer.timestamp)));
    }

    fn finish(mut self) -> WindowReport {
        self.end_key();
        self.report
    }
}

/// The window view of every window state of `operators` (as
/// [`super::inspect`] found them in the snapshot at `path`) whose bytes are
/// decoded. Entries that cannot be read make a report that says why
/// ([`WindowReport::unreadable`]), not an error of the whole inspection.
pub(crate) fn window_reports(path: &Path, operators: &[OperatorReport]) -> Vec<WindowReport> {
    let mut reports = Vec::new();
    for operator in operators {
        for state in &operator.states {
            let Some(engine) = WindowEngine::of_state(&state.name) else {
                continue;
            };
            let decoded = matches!(
                (engine, state.kind),
                (
                    WindowEngine::Slices | WindowEngine::Sessions,
                    StateReportKind::KeyedValue
                ) | (WindowEngine::Windows, StateReportKind::KeyedMap)
            );
            if !decoded {
                continue;
            }
            let (uid, name) = (operator.uid.as_str(), state.name.as_str());
            let mut tally = Tally::new(uid, name, engine);
            let read = OperatorKeyedState::read(path, uid).and_then(|operator| {
                operator.rows(name, &KeySelection::All, |row| tally.row(&row))?;
                operator.timers(&KeySelection::All, |timer| tally.timer(&timer))
            });
            reports.push(match read {
                Ok(()) => tally.finish(),
                Err(e) => WindowReport {
                    unreadable: Some(e.to_string()),
                    ..Tally::new(uid, name, engine).finish()
                },
            });
        }
    }
    reports
}

/// The table of the window operators' open windows (none: nothing).
pub(crate) fn write_windows(f: &mut fmt::Formatter<'_>, windows: &[WindowReport]) -> fmt::Result {
    if windows.is_empty() {
        return Ok(());
    }
    let mut table = Table::new(&[
        ("OPERATOR", Align::Left),
        ("WINDOW STATE", Align::Left),
        ("KEYS", Align::Right),
        ("OPEN", Align::Right),
        ("MOST (KEY)", Align::Left),
        ("FIRST START", Align::Right),
        ("ENDS", Align::Left),
        ("EVENT TIMERS (NEXT)", Align::Left),
        ("PROCESSING TIMERS (NEXT)", Align::Left),
    ]);
    let time = |t: Option<i64>| t.map_or_else(|| "-".into(), |t| t.to_string());
    let timers = |n: u64, next: Option<i64>| match next {
        Some(next) => format!("{n} ({next})"),
        None => n.to_string(),
    };
    for w in windows.iter().filter(|w| w.unreadable.is_none()) {
        table.row(vec![
            w.uid.clone(),
            w.state.clone(),
            w.keys.to_string(),
            format!("{} {}", w.open, w.engine.unit()),
            match &w.busiest_key {
                Some(key) => format!("{} ({key})", w.most_of_one_key),
                None => "-".into(),
            },
            time(w.earliest_start),
            match (w.earliest_end, w.latest_end) {
                (Some(first), Some(last)) => format!("{first}..={last}"),
                _ => "-".into(),
            },
            timers(w.event_timers, w.next_event_timer),
            timers(w.processing_timers, w.next_processing_timer),
        ]);
    }
    writeln!(f)?;
    if windows.iter().any(|w| w.unreadable.is_none()) {
        write!(f, "{table}")?;
    }
    for w in windows {
        if let Some(why) = &w.unreadable {
            writeln!(f, "{} {}: cannot read the windows: {why}", w.uid, w.state)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Sums up the entries `rows` of window state `state` of operator `uid`
    /// (as [`super::query_keyed_state`] reads them: a key's rows one after
    /// another) and its timers.
    fn summarise(
        uid: &str,
        state: &str,
        engine: WindowEngine,
        rows: &[QueryRow],
        timers: &[TimerRow],
    ) -> WindowReport {
        let mut tally = Tally::new(uid, state, engine);
        rows.iter().for_each(|row| tally.row(row));
        timers.iter().for_each(|timer| tally.timer(timer));
        tally.finish()
    }

    fn row(key: Json, user_key: Option<Json>, value: Json) -> QueryRow {
        QueryRow {
            key,
            user_key,
            value,
        }
    }

    fn timer(key: Json, timestamp: i64, domain: &'static str) -> TimerRow {
        TimerRow {
            key,
            timestamp,
            domain,
        }
    }

    #[test]
    fn slices_are_counted_per_key_with_the_span_of_their_ends() {
        let rows = [
            row(json!("a"), None, json!([[1000, 3], [2000, 1], [3000, 7]])),
            row(json!("b"), None, json!([[4000, 2]])),
            row(json!("c"), None, json!([])),
        ];
        let timers = [
            timer(json!("a"), 999, "event_time"),
            timer(json!("b"), 3999, "event_time"),
        ];
        let report = summarise("stats", WINDOW_SLICES, WindowEngine::Slices, &rows, &timers);
        assert_eq!(
            report,
            WindowReport {
                uid: "stats".into(),
                state: WINDOW_SLICES.into(),
                engine: WindowEngine::Slices,
                keys: 2,
                open: 4,
                most_of_one_key: 3,
                busiest_key: Some("\"a\"".into()),
                earliest_start: None,
                earliest_end: Some(1000),
                latest_end: Some(4000),
                event_timers: 2,
                next_event_timer: Some(999),
                processing_timers: 0,
                next_processing_timer: None,
                unreadable: None,
            }
        );
    }

    #[test]
    fn windows_are_counted_one_per_map_entry_with_their_starts_and_ends() {
        let window = |start: i64, end: i64| Some(json!({"start": start, "end": end}));
        let entry = json!({"contents": [1], "trigger": null, "timers": []});
        let rows = [
            row(json!(1), window(0, 3500), entry.clone()),
            row(json!(2), window(200, 1200), entry.clone()),
            row(json!(2), window(3100, 4100), entry.clone()),
        ];
        let timers = [
            timer(json!(1), 3499, "event_time"),
            timer(json!(2), 1199, "event_time"),
            timer(json!(2), 50, "processing_time"),
        ];
        let report = summarise("s", WINDOW_STATE, WindowEngine::Windows, &rows, &timers);
        assert_eq!((report.keys, report.open), (2, 3));
        assert_eq!(
            (report.most_of_one_key, report.busiest_key.as_deref()),
            (2, Some("2"))
        );
        assert_eq!(report.earliest_start, Some(0));
        assert_eq!(
            (report.earliest_end, report.latest_end),
            (Some(1200), Some(4100))
        );
        assert_eq!(
            (report.event_timers, report.next_event_timer),
            (2, Some(1199))
        );
        assert_eq!(
            (report.processing_timers, report.next_processing_timer),
            (1, Some(50))
        );
    }

    #[test]
    fn sessions_are_counted_per_key_with_their_starts_and_ends() {
        let session =
            |start: i64, end: i64| json!({"start": start, "end": end, "timer": end - 1, "acc": 1});
        let rows = [
            row(
                json!("a"),
                None,
                json!([session(100, 1100), session(2500, 3600)]),
            ),
            row(json!("b"), None, json!([session(50, 900)])),
        ];
        let timers = [
            timer(json!("a"), 1099, "event_time"),
            timer(json!("b"), 899, "event_time"),
        ];
        let report = summarise("s", WINDOW_SESSIONS, WindowEngine::Sessions, &rows, &timers);
        assert_eq!((report.keys, report.open), (2, 3));
        assert_eq!(
            (report.most_of_one_key, report.busiest_key.as_deref()),
            (2, Some("\"a\""))
        );
        assert_eq!(report.earliest_start, Some(50));
        assert_eq!(
            (report.earliest_end, report.latest_end),
            (Some(900), Some(3600))
        );
        assert_eq!(
            (report.event_timers, report.next_event_timer),
            (2, Some(899))
        );
        assert!(Shown(&[report]).to_string().contains("3 sessions"));
    }

    #[test]
    fn global_windows_have_no_span() {
        let rows = [row(
            json!("k"),
            Some(Json::Null),
            json!({"contents": [1, 2]}),
        )];
        let report = summarise("c", WINDOW_STATE, WindowEngine::Windows, &rows, &[]);
        assert_eq!((report.keys, report.open), (1, 1));
        assert_eq!((report.earliest_start, report.earliest_end), (None, None));
    }

    /// The window table as `weir inspect` prints it.
    struct Shown<'a>(&'a [WindowReport]);

    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_windows(f, self.0)
        }
    }

    #[test]
    fn a_window_state_that_cannot_be_read_is_named_with_the_reason() {
        let rows = [row(json!(1), None, json!([[1000, 2]]))];
        let read = summarise("a", WINDOW_SLICES, WindowEngine::Slices, &rows, &[]);
        let unreadable = WindowReport {
            unreadable: Some("chk-3/op-b-0: truncated".into()),
            ..summarise("b", WINDOW_STATE, WindowEngine::Windows, &[], &[])
        };
        let text = Shown(&[read, unreadable]).to_string();
        assert!(text.contains("1 slices"), "{text}");
        assert!(
            text.ends_with("b window-contents: cannot read the windows: chk-3/op-b-0: truncated\n"),
            "{text}"
        );
        assert_eq!(Shown(&[]).to_string(), "");
    }

    #[test]
    fn no_windows_is_an_empty_report() {
        let report = summarise("c", WINDOW_SLICES, WindowEngine::Slices, &[], &[]);
        assert_eq!((report.keys, report.open, report.busiest_key), (0, 0, None));
    }
}

//! The window view of a snapshot: per window operator, what is open when the
//! snapshot was taken, in the windows' own terms rather than as keyed state.
//!
//! A window operator keeps its windows as keyed state under a name of its
//! own, and that name says how to read them:
//! - `window-slices` ([`crate::window::slicing::WINDOW_SLICES`], the slice
//!   engine of tumbling, sliding and cumulating windows with an incremental
//!   function): per key, `(slice end, partial aggregate)` pairs;
//! - `window-contents` ([`crate::window::operator::WINDOW_STATE`], every
//!   other window): per key, a map from the window (`{"start":S,"end":E}` for
//!   time windows, `null` for the global window of count windows) to its
//!   contents, trigger state and timers.
//!
//! [`WindowReport`] sums one of them up: keys, open windows or slices (and the
//! key holding most of them), the span of their ends (and starts, for time
//! windows), and the operator's pending timers by domain with the next to
//! fire. [`summarise`] is the pure part; [`window_reports`] reads the
//! entries (through [`super::query_keyed_state`] and [`super::query_timers`])
//! of every window state whose bytes are decoded. An incremental RocksDB
//! checkpoint's window state is not summed up here: `weir query` reads it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::Value as Json;

use super::report::{OperatorReport, StateReportKind};
use super::table::{Align, Table};
use super::{query_keyed_state, query_timers, KeySelection, QueryRow, TimerRow};
use crate::window::operator::WINDOW_STATE;
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
}

impl WindowEngine {
    /// The engine whose state is named `state`, if any.
    pub fn of_state(state: &str) -> Option<Self> {
        match state {
            WINDOW_SLICES => Some(WindowEngine::Slices),
            WINDOW_STATE => Some(WindowEngine::Windows),
            _ => None,
        }
    }

    /// What one open unit of this engine is called.
    fn unit(self) -> &'static str {
        match self {
            WindowEngine::Slices => "slices",
            WindowEngine::Windows => "windows",
        }
    }
}

/// The windows a window operator held in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WindowReport {
    /// The operator's uid.
    pub uid: String,
    /// The state holding the windows (`window-slices` or `window-contents`).
    pub state: String,
    /// How the operator keeps them.
    pub engine: WindowEngine,
    /// Keys with at least one open window or slice.
    pub keys: u64,
    /// Open windows (`windows`) or slices (`slices`), over all keys.
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

/// Sums up the entries `rows` of window state `state` of operator `uid`
/// (as [`super::query_keyed_state`] reads them, in key-group order) and its
/// timers.
pub fn summarise(
    uid: &str,
    state: &str,
    engine: WindowEngine,
    rows: &[QueryRow],
    timers: &[TimerRow],
) -> WindowReport {
    let mut per_key: Vec<(String, u64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut count = |key: &Json, n: u64| {
        let key = key.to_string();
        match index.get(&key) {
            Some(&i) => per_key[i].1 += n,
            None => {
                index.insert(key.clone(), per_key.len());
                per_key.push((key, n));
            }
        }
    };
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    for row in rows {
        match engine {
            WindowEngine::Slices => {
                // The value: `[[slice end, aggregate], ...]`.
                let slices = row.value.as_array().map_or(&[][..], Vec::as_slice);
                if slices.is_empty() {
                    continue;
                }
                count(&row.key, slices.len() as u64);
                ends.extend(
                    slices
                        .iter()
                        .filter_map(|s| s.get(0).and_then(Json::as_i64)),
                );
            }
            WindowEngine::Windows => {
                count(&row.key, 1);
                if let Some(window) = &row.user_key {
                    starts.extend(window.get("start").and_then(Json::as_i64));
                    ends.extend(window.get("end").and_then(Json::as_i64));
                }
            }
        }
    }
    let busiest = per_key
        .iter()
        .fold(None::<&(String, u64)>, |best, entry| match best {
            Some(best) if best.1 >= entry.1 => Some(best),
            _ => Some(entry),
        });
    let timers_in = |domain: &str| {
        let times: Vec<i64> = timers
            .iter()
            .filter(|t| t.domain == domain)
            .map(|t| t.timestamp)
            .collect();
        (times.len() as u64, times.into_iter().min())
    };
    let (event_timers, next_event_timer) = timers_in("event_time");
    let (processing_timers, next_processing_timer) = timers_in("processing_time");
    WindowReport {
        uid: uid.to_string(),
        state: state.to_string(),
        engine,
        keys: per_key.len() as u64,
        open: per_key.iter().map(|(_, n)| n).sum(),
        most_of_one_key: busiest.map_or(0, |(_, n)| *n),
        busiest_key: busiest.map(|(key, _)| key.clone()),
        earliest_start: starts.iter().copied().min(),
        earliest_end: ends.iter().copied().min(),
        latest_end: ends.iter().copied().max(),
        event_timers,
        next_event_timer,
        processing_timers,
        next_processing_timer,
        unreadable: None,
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
                (WindowEngine::Slices, StateReportKind::KeyedValue)
                    | (WindowEngine::Windows, StateReportKind::KeyedMap)
            );
            if !decoded {
                continue;
            }
            let read = query_keyed_state(path, &operator.uid, &state.name, &KeySelection::All)
                .and_then(|rows| {
                    Ok((rows, query_timers(path, &operator.uid, &KeySelection::All)?))
                });
            reports.push(match read {
                Ok((rows, timers)) => summarise(&operator.uid, &state.name, engine, &rows, &timers),
                Err(e) => WindowReport {
                    unreadable: Some(e.to_string()),
                    ..summarise(&operator.uid, &state.name, engine, &[], &[])
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

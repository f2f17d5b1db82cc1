//! Reading retained checkpoints and savepoints from outside a job: what the
//! `weir` command shows.
//!
//! A snapshot is any directory holding `_metadata` (see
//! [`weir_actors::checkpoint::layout`]): a retained checkpoint
//! `<dir>/<job-id>/chk-<n>/` or a savepoint `<savepoint-dir>/savepoint-<job>-<n>/`,
//! on a local disk or in an object store (`s3://bucket/prefix/...`, feature
//! `s3`; see [`weir_actors::location`]).
//!
//! - [`list_checkpoints`] finds the snapshots under a directory (a checkpoint
//!   root, a job directory, a savepoint directory or one snapshot) and reads
//!   only their `_metadata`.
//! - [`inspect`] reads one snapshot completely, state files included (every
//!   file's checksum is verified), and reports per operator its states: kind,
//!   number of keys or entries and bytes, as far as the bytes can be decoded;
//!   for keyed states with a time to live, their TTL settings and their live
//!   and expired entries ([`StateTtlReport`]; [`inspect_at`] counts expired
//!   entries at a given time instead of now).
//! - [`query_keyed_state`] and [`query_timers`] read one keyed state (or the
//!   timers) of one operator entry by entry, as JSON, without the job's
//!   types; [`read_keyed_state`] reads it into the job's types.
//! - Window operators get a view of their own ([`WindowReport`], in
//!   [`SnapshotReport::windows`]): open windows or slices per key, the span
//!   of their ends and the pending timers.
//!
//! Both return plain values that print as aligned text tables
//! ([`std::fmt::Display`]) and serialise to JSON (`serde::Serialize`).
//!
//! ```no_run
//! let report = weir::inspect::inspect("/var/weir/checkpoints/0a1b2c3d4e5f6a7b/chk-12".as_ref())?;
//! for operator in &report.operators {
//!     println!("{}: {} bytes", operator.uid, operator.state_bytes);
//! }
//! # Ok::<(), weir::inspect::InspectError>(())
//! ```

mod listing;
mod query;
mod report;
pub(crate) mod table;
mod windows;

use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

pub use listing::{list_checkpoints, ListedSnapshot, Listing};
pub(crate) use query::CommittedState;
pub(crate) use query::{json_text_to_msgpack, msgpack_as_json, msgpack_to_json};
pub use query::{
    query_keyed_state, query_timers, read_keyed_state, KeySelection, QueryRow, TimerRow,
};
pub use report::{
    inspect, inspect_at, ExpiredAgainst, OperatorReport, SnapshotReport, StateReport,
    StateReportKind, StateTtlReport,
};
pub use windows::{WindowEngine, WindowReport};

/// Opens the snapshot at `path` (a local directory or an object store URL)
/// as far as its `_metadata`.
fn open_snapshot(
    path: &std::path::Path,
) -> Result<
    (
        weir_actors::checkpoint::FsStorage,
        weir_actors::checkpoint::CheckpointMetadata,
    ),
    InspectError,
> {
    let found = weir_actors::location::exists(path)
        .map_err(|e| InspectError::Open(format!("{}: {e}", path.display())))?;
    if !found {
        return Err(InspectError::Open(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    weir_actors::restore::open_snapshot_dir(path).map_err(InspectError::Open)
}

/// Reading a snapshot or listing a directory failed.
#[derive(Debug, Error)]
pub enum InspectError {
    /// The path is not a readable snapshot: missing, not a directory, without
    /// `_metadata`, or with a corrupt or foreign `_metadata`.
    #[error("{0}")]
    Open(String),
    /// The snapshot's metadata reads, but one of its state files does not
    /// (missing, corrupt, foreign).
    #[error("{path}: cannot read the snapshot's state: {cause}")]
    Read {
        /// The snapshot directory.
        path: PathBuf,
        /// What failed, naming the file.
        cause: String,
    },
    /// A directory cannot be listed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A directory holds no checkpoint or savepoint.
    #[error(
        "{0}: no checkpoint or savepoint here (no _metadata in it or in the two levels below)"
    )]
    NothingFound(PathBuf),
}

/// Whether a snapshot is a checkpoint or a savepoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    /// Taken by the job for its own recovery.
    Checkpoint,
    /// Taken on request, owned by the user.
    Savepoint,
}

impl SnapshotKind {
    fn of(savepoint: bool) -> Self {
        if savepoint {
            SnapshotKind::Savepoint
        } else {
            SnapshotKind::Checkpoint
        }
    }
}

impl std::fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            SnapshotKind::Checkpoint => "checkpoint",
            SnapshotKind::Savepoint => "savepoint",
        })
    }
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds,
/// e.g. `2023-11-14T22:13:20.123Z`.
pub fn format_rfc3339_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let second_of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(format_rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }
}

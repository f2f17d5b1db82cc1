//! The clock the runtime reads: processing time, in milliseconds since the
//! Unix epoch (Flink's processing time). Decisions that depend on time (the
//! checkpoint tracker, the restart tracker) take it as an argument, so their
//! tests pass a fake one; only the actors read this clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current processing time: milliseconds since the Unix epoch.
pub fn processing_time_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! Late elements, by Flink's rule, for both window engines: an element no
//! open window takes is late when its timestamp plus the allowed lateness is
//! at most the watermark; it goes to the late side output if one is set, or
//! is dropped, and is counted either way (`late_records`,
//! `late_records_dropped`).

use crate::ops::keyed_process::KeyedContext;
use crate::side_output::OutputTag;
use crate::state::Key;

/// What a window operator does with late elements, and how many it saw.
pub(crate) struct LateData<T> {
    /// The allowed lateness (ms, not negative once the operator opened).
    pub allowed_lateness: i64,
    tag: Option<OutputTag<T>>,
    /// Every late element (dropped or sent to the late side output).
    late: u64,
    /// Late elements dropped (no late side output).
    dropped: u64,
}

impl<T> Clone for LateData<T> {
    /// The same settings, counters at zero (a fresh operator instance).
    fn clone(&self) -> Self {
        LateData {
            allowed_lateness: self.allowed_lateness,
            tag: self.tag.clone(),
            late: 0,
            dropped: 0,
        }
    }
}

impl<T: crate::Data> LateData<T> {
    pub fn new(allowed_lateness: i64, tag: Option<OutputTag<T>>) -> Self {
        LateData {
            allowed_lateness,
            tag,
            late: 0,
            dropped: 0,
        }
    }

    /// An element no open window took: sent to the side output or dropped
    /// if late (event time only), counted either way; else ignored (it
    /// belongs to no window, as a sliding window's gap).
    pub fn on_unplaced<K: Key>(
        &mut self,
        value: T,
        timestamp: Option<i64>,
        watermark: i64,
        event_time: bool,
        ctx: &mut KeyedContext<'_, K>,
    ) {
        let late = event_time
            && timestamp.is_some_and(|t| t.saturating_add(self.allowed_lateness) <= watermark);
        if !late {
            return;
        }
        self.late += 1;
        match &self.tag {
            Some(tag) => ctx.output(tag, value),
            None => self.dropped += 1,
        }
    }

    /// The operator's counters.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("late_records", self.late),
            ("late_records_dropped", self.dropped),
        ]
    }
}

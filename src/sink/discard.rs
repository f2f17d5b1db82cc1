//! A sink that drops every record (benchmarks, side-effect-only jobs).

use crate::lifecycle::Lifecycle;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use weir_actors::UserError;

use super::Sink;

/// Counts what a [`DiscardSink`] dropped, and when the first record arrived.
#[derive(Clone, Debug, Default)]
pub struct DiscardCounter {
    records: Arc<AtomicU64>,
    first_record_at: Arc<OnceLock<Instant>>,
}

impl DiscardCounter {
    /// Records dropped so far, over all subtasks.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    /// When the first record reached the sink, if one did.
    pub fn first_record_at(&self) -> Option<Instant> {
        self.first_record_at.get().copied()
    }
}

/// Drops every record, counting them.
#[derive(Clone, Debug, Default)]
pub struct DiscardSink {
    counter: DiscardCounter,
}

impl DiscardSink {
    /// A sink and the counter that reads it.
    pub fn new() -> (Self, DiscardCounter) {
        let counter = DiscardCounter::default();
        (
            DiscardSink {
                counter: counter.clone(),
            },
            counter,
        )
    }
}

impl Lifecycle for DiscardSink {}

impl<T> Sink<T> for DiscardSink {
    fn write(&mut self, _record: T) -> Result<(), UserError> {
        self.counter.first_record_at.get_or_init(Instant::now);
        self.counter.records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn write_batch(&mut self, batch: Vec<T>) -> Result<(), UserError> {
        if !batch.is_empty() {
            self.counter.first_record_at.get_or_init(Instant::now);
            self.counter
                .records
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

//! Watermark strategies: how timestamps are read and watermarks generated.

use std::sync::Arc;
use std::time::Duration;

/// Where a [`WatermarkGenerator`] puts the watermarks it decides on.
#[derive(Debug, Default)]
pub struct WatermarkOutput {
    pub(crate) watermark: Option<i64>,
}

impl WatermarkOutput {
    /// Emits `watermark` (ignored unless it is past the last one emitted).
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }
}

/// Decides watermarks from the events it sees and from the passing of time (as
/// Flink's `WatermarkGenerator`).
pub trait WatermarkGenerator<T>: Send + 'static {
    /// Sees each record and its timestamp; may emit a watermark at once (punctuated).
    fn on_event(&mut self, record: &T, timestamp: i64, out: &mut WatermarkOutput);
    /// Called every emit interval (200 ms by default); may emit a watermark (periodic).
    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput);
    /// A fresh generator for another parallel instance.
    fn boxed_clone(&self) -> Box<dyn WatermarkGenerator<T>>;
}

/// Watermarks that trail the largest timestamp seen by a fixed bound: the
/// watermark is `max_timestamp - bound - 1`, emitted periodically.
#[derive(Clone, Debug)]
pub struct BoundedOutOfOrderness {
    bound_ms: i64,
    max_timestamp: Option<i64>,
}

impl BoundedOutOfOrderness {
    /// Records may be up to `bound` late.
    pub fn new(bound: Duration) -> Self {
        BoundedOutOfOrderness {
            bound_ms: bound.as_millis() as i64,
            max_timestamp: None,
        }
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrderness {
    fn on_event(&mut self, _record: &T, timestamp: i64, _out: &mut WatermarkOutput) {
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
    }

    fn on_periodic_emit(&mut self, out: &mut WatermarkOutput) {
        if let Some(max) = self.max_timestamp {
            out.emit_watermark(max.saturating_sub(self.bound_ms).saturating_sub(1));
        }
    }

    fn boxed_clone(&self) -> Box<dyn WatermarkGenerator<T>> {
        Box::new(self.clone())
    }
}

/// A watermark right after each record that `decide(record, timestamp)` picks
/// one for (as Flink's punctuated generators), in order with the records.
pub struct Punctuated<F> {
    decide: Arc<F>,
}

impl<F> Punctuated<F> {
    /// Watermarks where `decide` returns `Some(watermark)`.
    pub fn new(decide: F) -> Self {
        Punctuated {
            decide: Arc::new(decide),
        }
    }
}

impl<T, F> WatermarkGenerator<T> for Punctuated<F>
where
    F: Fn(&T, i64) -> Option<i64> + Send + Sync + 'static,
{
    fn on_event(&mut self, record: &T, timestamp: i64, out: &mut WatermarkOutput) {
        if let Some(watermark) = (self.decide)(record, timestamp) {
            out.emit_watermark(watermark);
        }
    }

    fn on_periodic_emit(&mut self, _out: &mut WatermarkOutput) {}

    fn boxed_clone(&self) -> Box<dyn WatermarkGenerator<T>> {
        Box::new(Punctuated {
            decide: self.decide.clone(),
        })
    }
}

type TimestampFn<T> = Arc<dyn Fn(&T, Option<i64>) -> i64 + Send + Sync>;

/// How a stream gets its timestamps and watermarks.
///
/// Without [`with_timestamp_assigner`](WatermarkStrategy::with_timestamp_assigner)
/// the records keep the timestamps they already have.
pub struct WatermarkStrategy<T> {
    pub(crate) generator: Box<dyn WatermarkGenerator<T>>,
    pub(crate) timestamps: Option<TimestampFn<T>>,
    pub(crate) idleness: Option<Duration>,
    pub(crate) emit_interval: Duration,
}

impl<T: 'static> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generator: self.generator.boxed_clone(),
            timestamps: self.timestamps.clone(),
            idleness: self.idleness,
            emit_interval: self.emit_interval,
        }
    }
}

impl<T: 'static> WatermarkStrategy<T> {
    /// A strategy with your own generator.
    pub fn for_generator(generator: impl WatermarkGenerator<T>) -> Self {
        WatermarkStrategy {
            generator: Box::new(generator),
            timestamps: None,
            idleness: None,
            emit_interval: Duration::from_millis(200),
        }
    }

    /// Records arrive at most `bound` out of order (periodic watermarks).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        Self::for_generator(BoundedOutOfOrderness::new(bound))
    }

    /// Timestamps never decrease (periodic watermarks at the largest timestamp
    /// seen, minus one millisecond).
    pub fn monotonous_timestamps() -> Self {
        Self::bounded_out_of_orderness(Duration::ZERO)
    }

    /// A watermark right after each record for which `decide(record, timestamp)`
    /// returns one, in order with the records. With
    /// `|_, ts| Some(ts)` every record is followed by its own watermark, so
    /// results do not depend on batching or timing (at a cost in throughput) —
    /// as long as the records reach the assigner in timestamp order: after a
    /// non-parallel source, give the assigner parallelism 1 too
    /// (`.set_parallelism(1)`), or a rebalance deals the records out to several
    /// assigners.
    pub fn punctuated<F>(decide: F) -> Self
    where
        F: Fn(&T, i64) -> Option<i64> + Send + Sync + 'static,
    {
        Self::for_generator(Punctuated::new(decide))
    }

    /// Reads each record's timestamp with `assigner`.
    pub fn with_timestamp_assigner<F>(mut self, assigner: F) -> Self
    where
        F: Fn(&T) -> i64 + Send + Sync + 'static,
    {
        self.timestamps = Some(Arc::new(move |record, _| assigner(record)));
        self
    }

    /// Marks the stream idle when it had no record for `timeout` (processing
    /// time), so that it does not hold back the watermark of what it feeds.
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// How often periodic generators are asked for a watermark (default 200 ms).
    pub fn with_emit_interval(mut self, interval: Duration) -> Self {
        self.emit_interval = interval;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_trails_the_largest_timestamp() {
        let mut g = BoundedOutOfOrderness::new(Duration::from_millis(10));
        let mut out = WatermarkOutput::default();
        WatermarkGenerator::<u8>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.watermark, None, "nothing seen, nothing emitted");
        g.on_event(&0u8, 100, &mut out);
        g.on_event(&0u8, 50, &mut out);
        assert_eq!(out.watermark, None, "periodic only");
        WatermarkGenerator::<u8>::on_periodic_emit(&mut g, &mut out);
        assert_eq!(out.watermark, Some(89));
    }

    #[test]
    fn punctuated_emits_where_the_function_says() {
        let mut g = Punctuated::new(|r: &u32, ts| r.is_multiple_of(2).then_some(ts));
        let mut out = WatermarkOutput::default();
        g.on_event(&1, 10, &mut out);
        assert_eq!(out.watermark, None);
        g.on_event(&2, 20, &mut out);
        assert_eq!(out.watermark, Some(20));
    }
}

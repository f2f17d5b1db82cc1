//! The operator that gives records their timestamps and the stream its watermarks.

use crate::lifecycle::Lifecycle;
use weir_actors::batch::NO_TIMESTAMP;
use weir_actors::{processing_time_now, RecordBatch, UserError};

use super::strategy::{WatermarkOutput, WatermarkStrategy};
use super::MAX_WATERMARK;
use crate::context::RuntimeContext;
use crate::operator::{Collector, OneInputOperator};

/// Assigns timestamps and generates watermarks by a [`WatermarkStrategy`].
///
/// As in Flink, watermarks from upstream are dropped (this operator is where
/// event time starts), except the final maximum watermark of a finished input.
pub struct TimestampsAndWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    watermark: i64,
    next_emit: i64,
    last_record_at: i64,
    idle: bool,
}

impl<T: 'static> Clone for TimestampsAndWatermarks<T> {
    /// A fresh instance with the same strategy.
    fn clone(&self) -> Self {
        Self::new(self.strategy.clone())
    }
}

impl<T: 'static> TimestampsAndWatermarks<T> {
    /// The operator for `strategy`.
    pub fn new(strategy: WatermarkStrategy<T>) -> Self {
        TimestampsAndWatermarks {
            strategy,
            watermark: i64::MIN,
            next_emit: i64::MAX,
            last_record_at: 0,
            idle: false,
        }
    }

    /// The timestamp of the record at `index`, which arrived with
    /// `previous` timestamps (if its stream had event time).
    #[inline]
    fn timestamp_of(&self, record: &T, previous: Option<&[i64]>, index: usize) -> i64 {
        let previous = previous
            .and_then(|stamps| stamps.get(index).copied())
            .filter(|&t| t != NO_TIMESTAMP);
        match &self.strategy.timestamps {
            Some(assign) => assign(record, previous),
            None => previous.unwrap_or(i64::MIN),
        }
    }

    fn emit(&mut self, out: &mut WatermarkOutput, collector: &mut Collector<T>) {
        if let Some(w) = out.watermark.take() {
            if w > self.watermark {
                self.watermark = w;
                collector.emit_watermark(w);
            }
        }
    }
}

impl<T: Clone + Send + 'static> Lifecycle for TimestampsAndWatermarks<T> {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        let now = processing_time_now();
        self.next_emit = now + self.strategy.emit_interval.as_millis() as i64;
        self.last_record_at = now;
        Ok(())
    }
}

impl<T: Clone + Send + 'static> OneInputOperator<T, T> for TimestampsAndWatermarks<T> {
    fn process_batch(
        &mut self,
        batch: RecordBatch<T>,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.idle {
            self.idle = false;
            out.emit_idle(false);
        }
        if self.strategy.idleness.is_some() {
            self.last_record_at = processing_time_now();
        }
        // The records keep their vector: a column of timestamps is computed
        // beside it and the batch leaves whole, unless the generator emits
        // a watermark between two records (punctuated watermarks): then the
        // records up to it leave first, the watermark after them, and the
        // rest go one by one, each followed by the watermark it brings.
        let RecordBatch {
            mut records,
            timestamps: previous,
        } = batch;
        let mut wm = WatermarkOutput::default();
        let mut stamps = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let timestamp = self.timestamp_of(record, previous.as_deref(), index);
            self.strategy.generator.on_event(record, timestamp, &mut wm);
            stamps.push(timestamp);
            if wm.watermark.is_some_and(|w| w > self.watermark) {
                let rest = records.split_off(index + 1);
                out.collect_batch(RecordBatch {
                    records,
                    timestamps: Some(stamps),
                });
                self.emit(&mut wm, out);
                for (offset, record) in rest.into_iter().enumerate() {
                    let index = index + 1 + offset;
                    let timestamp = self.timestamp_of(&record, previous.as_deref(), index);
                    self.strategy
                        .generator
                        .on_event(&record, timestamp, &mut wm);
                    out.collect_with_timestamp(record, timestamp);
                    self.emit(&mut wm, out);
                }
                return Ok(());
            }
        }
        out.collect_batch(RecordBatch {
            records,
            timestamps: Some(stamps),
        });
        // A watermark no later than the last one emitted is dropped.
        self.emit(&mut wm, out);
        Ok(())
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<T>,
    ) -> Result<(), UserError> {
        if watermark == MAX_WATERMARK && self.watermark < MAX_WATERMARK {
            self.watermark = MAX_WATERMARK;
            out.emit_watermark(MAX_WATERMARK);
        }
        Ok(())
    }

    fn next_processing_time(&self) -> Option<i64> {
        if self.watermark == MAX_WATERMARK {
            return None;
        }
        let idle_at = match self.strategy.idleness {
            Some(timeout) if !self.idle => self.last_record_at + timeout.as_millis() as i64,
            _ => i64::MAX,
        };
        Some(self.next_emit.min(idle_at))
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<T>) -> Result<(), UserError> {
        if now >= self.next_emit {
            let mut wm = WatermarkOutput::default();
            self.strategy.generator.on_periodic_emit(&mut wm);
            self.emit(&mut wm, out);
            self.next_emit = now + self.strategy.emit_interval.as_millis().max(1) as i64;
        }
        if let Some(timeout) = self.strategy.idleness {
            if !self.idle && now >= self.last_record_at + timeout.as_millis() as i64 {
                self.idle = true;
                out.emit_idle(true);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weir_actors::batch::{downcast_batch, Batch};
    use weir_actors::operator::Emitter;

    type Record = (u32, i64);

    /// What left the operator, in order.
    #[derive(Debug, PartialEq)]
    enum Event {
        Records(Vec<Record>, Option<Vec<i64>>),
        Watermark(i64),
    }

    #[derive(Default)]
    struct Log {
        events: Vec<Event>,
        /// Where the first batch's records were.
        first_at: Option<*const Record>,
    }

    impl Emitter for Log {
        fn emit(&mut self, batch: Batch) {
            let batch = downcast_batch::<Record>(batch).expect("records");
            self.first_at.get_or_insert(batch.records.as_ptr());
            self.events
                .push(Event::Records(batch.records, batch.timestamps));
        }
        fn emit_watermark(&mut self, watermark: i64) {
            self.events.push(Event::Watermark(watermark));
        }
        fn emit_idle(&mut self, _idle: bool) {}
        fn emit_side(&mut self, _tag: &std::sync::Arc<str>, _batch: Batch) {}
    }

    fn run(strategy: WatermarkStrategy<Record>, records: Vec<Record>) -> Log {
        let mut operator = TimestampsAndWatermarks::new(strategy);
        let mut out = Collector::new();
        operator
            .process_batch(RecordBatch::from(records), &mut out)
            .expect("no user error");
        let mut log = Log::default();
        out.flush_into(&mut log);
        log
    }

    #[test]
    fn a_batch_without_watermarks_between_its_records_leaves_whole_in_its_vector() {
        let records = vec![(1, 10), (2, 30), (3, 20)];
        let at = records.as_ptr();
        let log = run(
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(5))
                .with_timestamp_assigner(|r: &Record| r.1),
            records,
        );
        assert_eq!(
            log.events,
            [Event::Records(
                vec![(1, 10), (2, 30), (3, 20)],
                Some(vec![10, 30, 20])
            )]
        );
        assert_eq!(log.first_at, Some(at), "moved, not copied");
    }

    #[test]
    fn each_punctuated_watermark_leaves_right_after_its_record() {
        // Records with key 0 bring no watermark; a watermark that does not
        // advance is dropped.
        let log = run(
            WatermarkStrategy::punctuated(|r: &Record, ts| (r.0 != 0).then_some(ts))
                .with_timestamp_assigner(|r: &Record| r.1),
            vec![(0, 5), (0, 6), (1, 10), (0, 12), (1, 9), (1, 20), (0, 30)],
        );
        assert_eq!(
            log.events,
            [
                Event::Records(vec![(0, 5), (0, 6), (1, 10)], Some(vec![5, 6, 10])),
                Event::Watermark(10),
                Event::Records(vec![(0, 12), (1, 9), (1, 20)], Some(vec![12, 9, 20])),
                Event::Watermark(20),
                Event::Records(vec![(0, 30)], Some(vec![30])),
            ]
        );
    }
}

//! The operator that gives records their timestamps and the stream its watermarks.

use crate::lifecycle::Lifecycle;
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
        let mut wm = WatermarkOutput::default();
        for (record, previous) in batch.into_iter_with_timestamps() {
            let timestamp = match &self.strategy.timestamps {
                Some(assign) => assign(&record, previous),
                None => previous.unwrap_or(i64::MIN),
            };
            self.strategy
                .generator
                .on_event(&record, timestamp, &mut wm);
            out.collect_with_timestamp(record, timestamp);
            self.emit(&mut wm, out);
        }
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

//! Event time: timestamps, watermarks and the strategies that make them.
//!
//! A record's *timestamp* is when its event happened (milliseconds). A
//! *watermark* `w` says "no record with a timestamp at or below `w` is still to
//! come"; event-time timers fire when the watermark passes them. Watermarks
//! flow through the job in order with the records; an operator's watermark is
//! the minimum over its inputs, an idle input is left out of that minimum, and
//! the end of an input is the maximum watermark (so every timer fires).
//!
//! [`DataStream::assign_timestamps_and_watermarks`](crate::DataStream::assign_timestamps_and_watermarks)
//! gives a stream its timestamps and watermarks with a [`WatermarkStrategy`]:
//!
//! ```
//! use std::time::Duration;
//! use weir::time::WatermarkStrategy;
//!
//! // Events up to 5 s late, timestamped by their second field; a source with
//! // nothing to say for a minute stops holding back event time.
//! let strategy = WatermarkStrategy::bounded_out_of_orderness(Duration::from_secs(5))
//!     .with_timestamp_assigner(|event: &(String, i64)| event.1)
//!     .with_idleness(Duration::from_secs(60));
//! # let _ = strategy;
//! ```

mod assigner;
mod strategy;

pub use assigner::TimestampsAndWatermarks;
pub use strategy::{
    BoundedOutOfOrderness, Punctuated, WatermarkGenerator, WatermarkOutput, WatermarkStrategy,
};

/// The watermark that ends event time: every timer fires at it.
pub const MAX_WATERMARK: i64 = i64::MAX;

//! Windows: Flink's window API on weir's keyed state and timers.
//!
//! `stream.key_by(..).window(assigner)` cuts each key's records into windows;
//! a [`Trigger`] decides when a window's function runs, an [`Evictor`] may
//! trim its elements, and `reduce`, `aggregate` or `process` (a
//! [`ProcessWindowFunction`], alone or fed by an incremental reduce or
//! aggregate) turn it into a stream. Results carry the timestamp
//! `window.max_timestamp()`.
//!
//! - assigners ([`assigners`]): tumbling, sliding, session (static or dynamic
//!   gap), cumulating and global windows, in event or processing time;
//!   `count_window(n)` and `count_window_sliding(n, slide)`;
//! - triggers ([`triggers`]): event time, processing time, count, purging,
//!   continuous event/processing time, or your own;
//! - evictors ([`evictors`]): count, time, delta, or your own;
//! - lateness: `allowed_lateness(d)` keeps an event-time window for `d` after
//!   its end (a late element fires it again); an element too late for every
//!   window it belongs to goes to `side_output_late_data(&tag)` or is
//!   dropped, and is counted either way (`late_records`,
//!   `late_records_dropped` in [`JobResult::counter`](crate::runtime::JobResult::counter)),
//!   by Flink's rules: an element is late when `timestamp + lateness <=
//!   watermark` and all its windows are, a window's state is removed when
//!   the watermark passes `end - 1 + lateness`.
//!
//! One window operator runs every window; what it keeps and how it fires
//! is its engine's: the general engine ([`general`]: any assigner, trigger,
//! evictor and function, state `window-contents`), the slice engine
//! ([`slicing`]: tumbling, sliding and cumulating windows with `reduce` or
//! `aggregate` and the default trigger, state `window-slices`) or the
//! session engine ([`sessions`]: session windows likewise, state
//! `window-sessions`). Window state is keyed state on either backend:
//! checkpointed, restored, rescaled by key group, in savepoints, shown by
//! `weir inspect`. The end of a bounded input is the
//! largest watermark: every event-time window still open fires.
//!
//! ```
//! use std::time::Duration;
//! use weir::time::WatermarkStrategy;
//! use weir::window::{EventTimeSessionWindows, TimeWindow};
//! use weir::StreamEnv;
//!
//! // (user, time): sessions end after 1 s without a click.
//! let clicks: Vec<(String, i64)> = [("ann", 0), ("ann", 400), ("bob", 500), ("ann", 3_000)]
//!     .map(|(user, t)| (user.to_string(), t))
//!     .to_vec();
//! let env = StreamEnv::with_parallelism(1);
//! let sessions = env
//!     .from_collection(clicks)
//!     .assign_timestamps_and_watermarks(WatermarkStrategy::monotonous_timestamps().with_timestamp_assigner(|c: &(String, i64)| c.1))
//!     .map(|(user, _)| (user, 1_u32))
//!     .key_by(|c| c.0.clone())
//!     .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
//!     .reduce(|a, b| (a.0, a.1 + b.1))
//!     .collect();
//! env.execute_blocking("sessions").unwrap();
//! let mut got = sessions.take();
//! got.sort();
//! assert_eq!(got, vec![("ann".into(), 1), ("ann".into(), 2), ("bob".into(), 1)]);
//! ```

pub mod assigners;
mod engine;
pub mod evictors;
pub mod functions;
pub mod general;
mod late;
mod operator;
pub mod sessions;
pub mod slices;
pub mod slicing;
pub mod stream;
pub mod triggers;
pub mod window_state;
pub mod windows;

pub use assigners::{
    CumulatingEventTimeWindows, CumulatingProcessingTimeWindows, CumulatingWindows,
    EventTimeSessionWindows, GlobalWindows, ProcessingTimeSessionWindows, SessionSpec,
    SessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows, SlidingWindows,
    TimeKind, TumblingEventTimeWindows, TumblingProcessingTimeWindows, TumblingWindows,
    WindowAssigner,
};
pub use evictors::{
    CountEvictor, DeltaEvictor, Evictor, EvictorContext, NoEvictor, TimeEvictor, TimestampedValue,
};
pub use functions::{PassThrough, ProcessWindowFunction, WindowContext};
pub use general::WINDOW_STATE;
pub use sessions::WINDOW_SESSIONS;
pub use slices::SliceShape;
pub use slicing::{Slicing, WINDOW_SLICES};
pub use stream::WindowedStream;
pub use triggers::{
    ContinuousEventTimeTrigger, ContinuousProcessingTimeTrigger, CountTrigger, EventTimeTrigger,
    NeverTrigger, ProcessingTimeTrigger, PurgingTrigger, TimeTrigger, Trigger, TriggerContext,
    TriggerResult,
};
pub use window_state::{
    WindowListState, WindowListStateDescriptor, WindowStateDescriptor, WindowValueState,
    WindowValueStateDescriptor,
};
pub use windows::{window_start, GlobalWindow, TimeWindow, Window};

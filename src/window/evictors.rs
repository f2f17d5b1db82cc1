//! Evictors: elements removed from a window before or after its function
//! runs (Flink's `Evictor`s). A window with an evictor keeps its elements
//! (not an incremental aggregate), and the function sees what is left.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An element of a window with its timestamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimestampedValue<T> {
    /// The element.
    pub value: T,
    /// Its timestamp, if the stream has event time.
    pub timestamp: Option<i64>,
}

/// The time an evictor runs at.
#[derive(Clone, Copy, Debug)]
pub struct EvictorContext {
    /// The operator's current watermark.
    pub watermark: i64,
    /// The current processing time.
    pub processing_time: i64,
}

/// Removes elements from a window around its function, as Flink's `Evictor`.
pub trait Evictor<T, W>: Clone + Send + Sync + 'static {
    /// Before the function runs: remove elements from `elements` (in the
    /// order they were added).
    fn evict_before(
        &self,
        _elements: &mut Vec<TimestampedValue<T>>,
        _window: &W,
        _ctx: &EvictorContext,
    ) {
    }
    /// After the function ran.
    fn evict_after(
        &self,
        _elements: &mut Vec<TimestampedValue<T>>,
        _window: &W,
        _ctx: &EvictorContext,
    ) {
    }
    /// `true` only for [`NoEvictor`]: the window may aggregate incrementally.
    fn is_none(&self) -> bool {
        false
    }
    /// A short name, for the operator's name.
    fn describe(&self) -> String;
}

/// No evictor (the default): windows aggregate incrementally.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvictor;

impl<T, W> Evictor<T, W> for NoEvictor {
    fn is_none(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        String::new()
    }
}

/// `evict_before` and `evict_after` of an evictor with an `after` flag and
/// an `evict` method: it evicts on the side the flag names.
macro_rules! evict_on_one_side {
    () => {
        fn evict_before(&self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
            if !self.after {
                self.evict(elements);
            }
        }

        fn evict_after(&self, elements: &mut Vec<TimestampedValue<T>>, _: &W, _: &EvictorContext) {
            if self.after {
                self.evict(elements);
            }
        }
    };
}

/// Keeps at most `count` elements (the newest), before the function runs
/// (or after, with [`CountEvictor::of_after`]).
#[derive(Clone, Copy, Debug)]
pub struct CountEvictor {
    count: usize,
    after: bool,
}

impl CountEvictor {
    /// Keeps the newest `count` elements, before the function.
    pub fn of(count: usize) -> Self {
        CountEvictor {
            count,
            after: false,
        }
    }

    /// Keeps the newest `count` elements, after the function.
    pub fn of_after(count: usize) -> Self {
        CountEvictor { count, after: true }
    }

    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        if elements.len() > self.count {
            let excess = elements.len() - self.count;
            elements.drain(..excess);
        }
    }
}

impl<T, W> Evictor<T, W> for CountEvictor {
    evict_on_one_side!();

    fn describe(&self) -> String {
        format!("CountEvictor({})", self.count)
    }
}

/// Keeps the elements within `window_size` of the newest element's
/// timestamp (elements without a timestamp are kept).
#[derive(Clone, Copy, Debug)]
pub struct TimeEvictor {
    window_size: i64,
    after: bool,
}

impl TimeEvictor {
    /// Keeps the last `window_size` of event time, before the function.
    pub fn of(window_size: std::time::Duration) -> Self {
        TimeEvictor {
            window_size: super::assigners::millis(window_size),
            after: false,
        }
    }

    /// The same, after the function.
    pub fn of_after(window_size: std::time::Duration) -> Self {
        TimeEvictor {
            after: true,
            ..TimeEvictor::of(window_size)
        }
    }

    fn evict<T>(&self, elements: &mut Vec<TimestampedValue<T>>) {
        let Some(newest) = elements.iter().filter_map(|e| e.timestamp).max() else {
            return;
        };
        let cutoff = newest.saturating_sub(self.window_size);
        elements.retain(|e| e.timestamp.is_none_or(|t| t > cutoff));
    }
}

impl<T, W> Evictor<T, W> for TimeEvictor {
    evict_on_one_side!();

    fn describe(&self) -> String {
        format!("TimeEvictor({})", self.window_size)
    }
}

/// How far apart two elements are.
type Delta<T> = Arc<dyn Fn(&T, &T) -> f64 + Send + Sync>;

/// Removes the elements whose `delta` to the newest element is at least
/// `threshold` (Flink's `DeltaEvictor`).
pub struct DeltaEvictor<T> {
    threshold: f64,
    delta: Delta<T>,
    after: bool,
}

impl<T> Clone for DeltaEvictor<T> {
    fn clone(&self) -> Self {
        DeltaEvictor {
            threshold: self.threshold,
            delta: self.delta.clone(),
            after: self.after,
        }
    }
}

impl<T> DeltaEvictor<T> {
    /// Evicts before the function.
    pub fn of(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor {
            threshold,
            delta: Arc::new(delta),
            after: false,
        }
    }

    /// Evicts after the function.
    pub fn of_after(threshold: f64, delta: impl Fn(&T, &T) -> f64 + Send + Sync + 'static) -> Self {
        DeltaEvictor {
            after: true,
            ..DeltaEvictor::of(threshold, delta)
        }
    }

    fn evict(&self, elements: &mut Vec<TimestampedValue<T>>) {
        let Some(last) = elements.len().checked_sub(1) else {
            return;
        };
        let keep: Vec<bool> = elements
            .iter()
            .map(|e| (self.delta)(&e.value, &elements[last].value) < self.threshold)
            .collect();
        let mut keep = keep.into_iter();
        elements.retain(|_| keep.next().unwrap_or(true));
    }
}

impl<T: 'static, W> Evictor<T, W> for DeltaEvictor<T> {
    evict_on_one_side!();

    fn describe(&self) -> String {
        format!("DeltaEvictor({})", self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(ts: &[i64]) -> Vec<TimestampedValue<i64>> {
        ts.iter()
            .map(|&t| TimestampedValue {
                value: t,
                timestamp: Some(t),
            })
            .collect()
    }

    const CTX: EvictorContext = EvictorContext {
        watermark: 0,
        processing_time: 0,
    };

    #[test]
    fn evictors_keep_what_they_promise() {
        let mut e = values(&[1, 2, 3, 4]);
        Evictor::<i64, ()>::evict_before(&CountEvictor::of(2), &mut e, &(), &CTX);
        assert_eq!(e, values(&[3, 4]));
        let mut e = values(&[1, 5, 9, 10]);
        Evictor::<i64, ()>::evict_before(
            &TimeEvictor::of(std::time::Duration::from_millis(5)),
            &mut e,
            &(),
            &CTX,
        );
        assert_eq!(e, values(&[9, 10]));
        let mut e = values(&[1, 5, 9, 10]);
        let delta = DeltaEvictor::of(3.0, |a: &i64, b: &i64| (b - a) as f64);
        Evictor::<i64, ()>::evict_before(&delta, &mut e, &(), &CTX);
        assert_eq!(e, values(&[9, 10]));
        let mut e = values(&[1, 2, 3]);
        Evictor::<i64, ()>::evict_before(&CountEvictor::of_after(1), &mut e, &(), &CTX);
        assert_eq!(e.len(), 3);
    }
}

//! Batches: the unit in which records travel between subtasks.
//!
//! The runtime never looks inside a record. The API layer hands it a [`Batch`],
//! a boxed [`RecordBatch<T>`] behind the [`BatchData`] trait, and gets it back at
//! the next operator, where one downcast per batch (never per record) restores
//! the type. A record batch holds the records and, for event-time streams, one
//! timestamp per record in a parallel column.
//!
//! ```
//! use weir_actors::batch::{Batch, RecordBatch, downcast_batch};
//! let batch: Batch = Box::new(RecordBatch::from(vec![1u64, 2, 3]));
//! assert_eq!(batch.len(), 3);
//! let copy = batch.clone_batch();
//! let records: RecordBatch<u64> = downcast_batch(copy).unwrap();
//! assert_eq!(records.records, vec![1, 2, 3]);
//! ```

use crate::codec::{self, CodecError};
use std::any::Any;

use serde::{Deserialize, Serialize};

/// Stands for "no timestamp" in a timestamp column that has some.
pub const NO_TIMESTAMP: i64 = i64::MIN;

/// A type-erased batch of records (in practice a [`RecordBatch<T>`]).
pub type Batch = Box<dyn BatchData>;

/// Records and, when the stream has event time, their timestamps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch<T> {
    /// The records, in order.
    pub records: Vec<T>,
    /// One timestamp (milliseconds) per record, or `None` for a stream without event time.
    pub timestamps: Option<Vec<i64>>,
}

impl<T> From<Vec<T>> for RecordBatch<T> {
    fn from(records: Vec<T>) -> Self {
        RecordBatch {
            records,
            timestamps: None,
        }
    }
}

impl<T> RecordBatch<T> {
    /// An empty batch with room for `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        RecordBatch {
            records: Vec::with_capacity(capacity),
            timestamps: None,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends one record with its timestamp (`None`: no event time).
    #[inline]
    pub fn push(&mut self, record: T, timestamp: Option<i64>) {
        match (&mut self.timestamps, timestamp) {
            (Some(ts), t) => ts.push(t.unwrap_or(NO_TIMESTAMP)),
            (None, Some(t)) => {
                let mut ts = Vec::with_capacity(self.records.capacity());
                ts.resize(self.records.len(), NO_TIMESTAMP);
                ts.push(t);
                self.timestamps = Some(ts);
            }
            (None, None) => {}
        }
        self.records.push(record);
    }

    /// The timestamp of record `index`, if it has one.
    #[inline]
    pub fn timestamp(&self, index: usize) -> Option<i64> {
        self.timestamps
            .as_ref()
            .map(|ts| ts[index])
            .filter(|&t| t != NO_TIMESTAMP)
    }

    /// Moves every record of `other` to the end of this batch.
    pub fn append(&mut self, mut other: RecordBatch<T>) {
        if self.records.is_empty() && self.timestamps.is_none() {
            *self = other;
            return;
        }
        match (&mut self.timestamps, other.timestamps.take()) {
            (Some(ts), Some(mut more)) => ts.append(&mut more),
            (Some(ts), None) => ts.resize(ts.len() + other.records.len(), NO_TIMESTAMP),
            (None, Some(more)) => {
                let mut ts = vec![NO_TIMESTAMP; self.records.len()];
                ts.extend(more);
                self.timestamps = Some(ts);
            }
            (None, None) => {}
        }
        self.records.append(&mut other.records);
    }

    /// Splits the batch at `at`: this one keeps the records before it, the
    /// one returned holds the rest, each with its timestamps. Only the rest
    /// moves (cutting a long batch from the back moves each record once).
    pub fn split_off(&mut self, at: usize) -> RecordBatch<T> {
        RecordBatch {
            records: self.records.split_off(at),
            timestamps: self.timestamps.as_mut().map(|ts| ts.split_off(at)),
        }
    }

    /// Iterates over `(record, timestamp)` pairs, consuming the batch.
    pub fn into_iter_with_timestamps(self) -> impl Iterator<Item = (T, Option<i64>)> {
        let mut ts = self.timestamps.map(Vec::into_iter);
        self.records.into_iter().map(move |r| {
            let t = ts
                .as_mut()
                .and_then(Iterator::next)
                .filter(|&t| t != NO_TIMESTAMP);
            (r, t)
        })
    }
}

/// What the runtime may do with a batch without knowing its record type.
pub trait BatchData: Send + 'static {
    /// Number of records in the batch.
    fn len(&self) -> usize;
    /// Whether the batch holds no record.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A deep copy, used when one output feeds several consumers.
    fn clone_batch(&self) -> Batch;
    /// Turns the batch into `Box<dyn Any>` for a downcast.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
    /// The record type's name, for error messages.
    fn record_type(&self) -> &'static str;
    /// The batch serialised (rmp-serde), for in-flight data in unaligned checkpoints.
    fn encode(&self) -> Result<Vec<u8>, CodecError>;
    /// The bytes the batch would take serialised, estimated as its first
    /// record's encoded size times its records (records cross channels
    /// unserialised; one record is encoded per batch, into a reused buffer).
    /// 0 for an empty batch.
    fn estimated_bytes(&self) -> u64;
}

thread_local! {
    /// The buffer [`BatchData::estimated_bytes`] encodes into.
    static SIZING_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<T: Clone + Send + Serialize + 'static> BatchData for RecordBatch<T> {
    fn len(&self) -> usize {
        self.records.len()
    }

    fn clone_batch(&self) -> Batch {
        Box::new(self.clone())
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }

    fn record_type(&self) -> &'static str {
        std::any::type_name::<T>()
    }

    fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    fn estimated_bytes(&self) -> u64 {
        let Some(first) = self.records.first() else {
            return 0;
        };
        let one = SIZING_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            buffer.clear();
            let size = codec::encode_into(&mut buffer, first).map_or(0, |()| buffer.len());
            // One huge record does not keep its buffer for the thread's life.
            if buffer.capacity() > 1 << 16 {
                *buffer = Vec::new();
            }
            size
        });
        (one * self.records.len()) as u64
    }
}

/// Turns bytes written by [`BatchData::encode`] back into a batch of `T`
/// (in-flight records of an unaligned checkpoint, on restore).
pub type BatchDecoder = fn(&[u8]) -> Result<Batch, CodecError>;

/// The [`BatchDecoder`] for records of type `T`.
pub fn decode_batch<T>(bytes: &[u8]) -> Result<Batch, CodecError>
where
    T: Clone + Send + Serialize + serde::de::DeserializeOwned + 'static,
{
    let batch: RecordBatch<T> = codec::decode(bytes)?;
    Ok(Box::new(batch))
}

/// Restores the typed records of a batch.
///
/// Fails with a message naming both types when the batch holds other records:
/// that is a wiring bug in the layer that built the job graph, never user input.
pub fn downcast_batch<T: 'static>(batch: Batch) -> Result<RecordBatch<T>, String> {
    let found = batch.record_type();
    batch
        .into_any()
        .downcast::<RecordBatch<T>>()
        .map(|b| *b)
        .map_err(|_| {
            format!(
                "batch of `{found}` reached an operator expecting `{}`",
                std::any::type_name::<T>()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_estimated_from_the_first_record() {
        let small: RecordBatch<u64> = RecordBatch::from(vec![1, 2, 3]);
        assert_eq!(small.estimated_bytes(), 3);
        let words: RecordBatch<String> = RecordBatch::from(vec!["abcd".to_string(); 10]);
        assert_eq!(words.estimated_bytes(), 50);
        assert_eq!(RecordBatch::<u64>::from(vec![]).estimated_bytes(), 0);
    }

    #[test]
    fn a_split_keeps_each_record_with_its_timestamp() {
        let mut batch = RecordBatch {
            records: vec![1u32, 2, 3],
            timestamps: Some(vec![10, NO_TIMESTAMP, 30]),
        };
        let rest = batch.split_off(1);
        assert_eq!(batch.records, [1]);
        assert_eq!(batch.timestamps, Some(vec![10]));
        assert_eq!(rest.records, [2, 3]);
        assert_eq!(rest.timestamp(0), None);
        assert_eq!(rest.timestamp(1), Some(30));
        let mut untimed = RecordBatch::from(vec![1u32, 2]);
        assert_eq!(untimed.split_off(2), RecordBatch::from(vec![]));
        assert_eq!(untimed.timestamps, None);
    }

    #[test]
    fn downcast_to_the_wrong_type_names_both_types() {
        let batch: Batch = Box::new(RecordBatch::from(vec![1u32]));
        let err = downcast_batch::<String>(batch).unwrap_err();
        assert!(err.contains("u32") && err.contains("String"), "{err}");
    }

    #[test]
    fn clone_is_deep() {
        let batch: Batch = Box::new(RecordBatch::from(vec![String::from("a")]));
        let copy = batch.clone_batch();
        assert_eq!(downcast_batch::<String>(copy).unwrap().records, vec!["a"]);
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn timestamps_stay_aligned_with_records() {
        let mut batch = RecordBatch::from(vec![1, 2]);
        batch.push(3, Some(30));
        assert_eq!(batch.timestamps, Some(vec![NO_TIMESTAMP, NO_TIMESTAMP, 30]));
        let mut other = RecordBatch::from(vec![4]);
        other.append(batch.clone());
        assert_eq!(
            other.timestamps,
            Some(vec![NO_TIMESTAMP, NO_TIMESTAMP, NO_TIMESTAMP, 30])
        );
        batch.append(RecordBatch::from(vec![5]));
        assert_eq!(batch.timestamp(3), None);
        let pairs: Vec<_> = batch.into_iter_with_timestamps().collect();
        assert_eq!(pairs[2], (3, Some(30)));
    }
}

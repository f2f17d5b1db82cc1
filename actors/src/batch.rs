//! Batches: the unit in which records travel between subtasks.
//!
//! The runtime never looks inside a record. The API layer hands it a [`Batch`],
//! a boxed `Vec<T>` behind the [`BatchData`] trait, and gets it back at the next
//! operator, where one downcast per batch (never per record) restores the type.
//!
//! ```
//! use weir_actors::batch::{Batch, downcast_batch};
//! let batch: Batch = Box::new(vec![1u64, 2, 3]);
//! assert_eq!(batch.len(), 3);
//! let copy = batch.clone_batch();
//! let records: Vec<u64> = downcast_batch(copy).unwrap();
//! assert_eq!(records, vec![1, 2, 3]);
//! ```

use std::any::Any;

/// A type-erased batch of records (in practice a `Vec<T>`).
pub type Batch = Box<dyn BatchData>;

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
}

impl<T: Clone + Send + 'static> BatchData for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
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
}

/// Restores the typed records of a batch.
///
/// Fails with a message naming both types when the batch holds other records:
/// that is a wiring bug in the layer that built the job graph, never user input.
pub fn downcast_batch<T: 'static>(batch: Batch) -> Result<Vec<T>, String> {
    let found = batch.record_type();
    batch
        .into_any()
        .downcast::<Vec<T>>()
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
    fn downcast_to_the_wrong_type_names_both_types() {
        let batch: Batch = Box::new(vec![1u32]);
        let err = downcast_batch::<String>(batch).unwrap_err();
        assert!(err.contains("u32") && err.contains("String"), "{err}");
    }

    #[test]
    fn clone_is_deep() {
        let batch: Batch = Box::new(vec![String::from("a")]);
        let copy = batch.clone_batch();
        assert_eq!(downcast_batch::<String>(copy).unwrap(), vec!["a"]);
        assert_eq!(batch.len(), 1);
    }
}

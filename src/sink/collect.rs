//! A sink that keeps every record in memory, for tests and small results.

use crate::lifecycle::Lifecycle;
use std::sync::{Arc, Mutex, MutexGuard};

use weir_actors::UserError;

use super::Sink;

/// Gathers records from every subtask into one shared vector.
#[derive(Clone, Debug)]
pub struct CollectSink<T> {
    records: Arc<Mutex<Vec<T>>>,
}

/// Reads what a [`CollectSink`] gathered.
///
/// Records of one subtask keep their order; records of different subtasks
/// interleave by batch.
#[derive(Clone, Debug)]
pub struct CollectHandle<T> {
    records: Arc<Mutex<Vec<T>>>,
}

fn lock<T>(m: &Mutex<Vec<T>>) -> MutexGuard<'_, Vec<T>> {
    // A panicking writer cannot leave a Vec half-pushed in a way that matters here.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T> CollectSink<T> {
    /// A sink and the handle that reads it.
    pub fn new() -> (Self, CollectHandle<T>) {
        let records = Arc::new(Mutex::new(Vec::new()));
        (
            CollectSink {
                records: records.clone(),
            },
            CollectHandle { records },
        )
    }
}

impl<T> CollectHandle<T> {
    /// Takes the records gathered so far, leaving the handle empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *lock(&self.records))
    }

    /// Number of records gathered so far.
    pub fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> CollectHandle<T> {
    /// A copy of the records gathered so far.
    pub fn to_vec(&self) -> Vec<T> {
        lock(&self.records).clone()
    }
}

impl<T: Clone + Send + 'static> Lifecycle for CollectSink<T> {}

impl<T: Clone + Send + 'static> Sink<T> for CollectSink<T> {
    fn write(&mut self, record: T) -> Result<(), UserError> {
        lock(&self.records).push(record);
        Ok(())
    }

    fn write_batch(&mut self, mut batch: Vec<T>) -> Result<(), UserError> {
        lock(&self.records).append(&mut batch);
        Ok(())
    }
}

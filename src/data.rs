//! What a record must be.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A record type that can flow through a weir job.
///
/// Records are moved between threads (`Send`), copied where one stream feeds
/// several consumers or a broadcast (`Clone`), and serialised where the engine
/// persists them: checkpointed in-flight data and state (`Serialize`,
/// `DeserializeOwned`). Implemented for every type that meets the bounds.
///
/// ```
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Click { user: String, page: u32 }
/// fn assert_data<T: weir::Data>() {}
/// assert_data::<Click>();
/// assert_data::<(String, u64)>();
/// ```
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

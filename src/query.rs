//! Live queries: read a key's state straight from a running job (the seed
//! documents' "stream job as a database").
//!
//! A keyed state is made queryable on its descriptor
//! (`ValueStateDescriptor::new("count").queryable("count")`, on every keyed
//! state kind). [`QueryableState::query`] on a [`JobClient`](crate::JobClient)
//! or [`JobControl`] sends the key to the job's supervisor, which routes it
//! by key group to the subtask that owns the key, as a restore assigns key
//! groups; the subtask actor answers between two processing steps. So an
//! answer never sees a half-applied write, and reflects every record whose
//! processing was acknowledged (read-your-writes). Queries are messages:
//! any actix actor or async code in the process can ask, concurrently with
//! the job.
//!
//! [`QueryableState::query_entry`] reads one entry of a map state without
//! the whole map; [`QueryableState::keys`] lists the keys that have a value, a bounded
//! page at a time, over every subtask of the operator.
//!
//! What a query answers: a value state's value (with a default: the
//! default for a key without one), a list state's elements (`Vec<V>`), a
//! map state's entries (any map type, `HashMap<UK, UV>`, `BTreeMap<UK, UV>`),
//! a reducing state's value, an aggregating state's accumulator; `None` for
//! a key without one. A state becomes queryable once its operator has used
//! it (as in Flink, where a state registers when it is created). The read is
//! the function's: a state with a time to live that restarts on reads
//! (`OnReadAndWrite`) restarts on a query too.
//!
//! [`QueryableState::query_with`] chooses the [`Consistency`]: the live
//! state, or the latest completed checkpoint (`Committed`, `AtLeast(n)`).
//!
//! Errors ([`QueryError`]): an unknown uid lists the operators, an unknown
//! queryable name lists the operator's queryable names, a key of another type
//! than the operator's is refused, and a job that is not running says so
//! (`Unavailable`, with whether a retry may help: a restart).
//!
//! ```no_run
//! use weir::query::QueryableState;
//! # async fn example(client: weir::JobClient) -> Result<(), weir::query::QueryError> {
//! let count: Option<u64> = client.query("counter", "count", &"alice".to_string()).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;

use crate::inspect::CommittedState;
use crate::keys::key_group;
use crate::runtime::codec;
use crate::state::Key;
use crate::JobControl;

pub use weir_actors::QueryError;

/// Which state a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// The running job's state, between two processing steps of the
    /// subtask that owns the key (read-your-writes).
    Live,
    /// The state as of the latest completed checkpoint (or savepoint):
    /// consistent across every key and operator of the job, a value written
    /// after it is not seen, and answered also while the job restarts. Read
    /// from the snapshot's files (checkpoint storage on disk), decoded once
    /// per snapshot and operator.
    Committed,
    /// [`Consistency::Committed`], once checkpoint `n` has completed;
    /// before, [`QueryError::NotYet`].
    AtLeast(u64),
}

/// The decoded committed state of the snapshots read lately, by (snapshot
/// directory, operator uid): a committed query reads a snapshot's files
/// once.
static COMMITTED: Mutex<Vec<(PathBuf, String, Arc<CommittedState>)>> = Mutex::new(Vec::new());

/// How many (snapshot, operator) pairs [`COMMITTED`] keeps.
const COMMITTED_KEPT: usize = 8;

/// Operator `uid`'s committed state in the snapshot at `dir`, read once.
fn committed_state(dir: &Path, uid: &str) -> Result<Arc<CommittedState>, QueryError> {
    let cached = COMMITTED.lock().ok().and_then(|kept| {
        kept.iter()
            .find(|(d, u, _)| d == dir && u == uid)
            .map(|(.., state)| state.clone())
    });
    if let Some(state) = cached {
        return Ok(state);
    }
    let state = Arc::new(
        CommittedState::read(dir, uid).map_err(|e| QueryError::Failed {
            uid: uid.to_string(),
            name: String::new(),
            cause: e.to_string(),
        })?,
    );
    if let Ok(mut kept) = COMMITTED.lock() {
        if kept.len() >= COMMITTED_KEPT {
            kept.remove(0);
        }
        kept.push((dir.to_path_buf(), uid.to_string(), state.clone()));
    }
    Ok(state)
}

/// A committed query of `key` (at least checkpoint `wanted`).
fn query_committed<K: Key>(
    control: &JobControl,
    uid: &str,
    name: &str,
    key: &K,
    wanted: u64,
) -> Result<Option<Vec<u8>>, QueryError> {
    let latest = control.latest_snapshot_dir();
    let Some((id, dir)) = latest.filter(|(id, _)| *id >= wanted) else {
        return Err(QueryError::NotYet {
            job: control.name().to_string(),
            wanted,
            latest: control.latest_snapshot().map(|s| s.id),
        });
    };
    let state = committed_state(&dir, uid).map_err(|e| match e {
        QueryError::Failed { uid, cause, .. } => QueryError::Failed {
            uid,
            name: name.to_string(),
            cause: format!("reading checkpoint {id}: {cause}"),
        },
        other => other,
    })?;
    let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()))?;
    state.lookup(name, &encoded, key_group(key, state.max_parallelism()))
}

/// Live queries of a running job's queryable keyed state.
pub trait QueryableState {
    /// The value of `key` in the state that operator `uid` made queryable
    /// as `name`, decoded as `V`; `None` if the key has none.
    fn query<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send;

    /// [`query`](Self::query) at a chosen [`Consistency`].
    fn query_with<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send;

    /// One entry of a map state: the value under `user_key` in the map of
    /// `key` (of the map state that operator `uid` made queryable as
    /// `name`), decoded as `V`, without moving the whole map; `None` if
    /// there is none.
    fn query_entry<V: DeserializeOwned, K: Key, UK: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        user_key: &UK,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send;

    /// A page of the keys that have a value in the state that operator
    /// `uid` made queryable as `name`, over all its subtasks: at most
    /// `limit`, after `after` (the last key of the previous page). Keys come
    /// in the order of their encoded bytes, which is stable from page to
    /// page but is not the keys' own order.
    fn keys<K: Key>(
        &self,
        uid: &str,
        name: &str,
        limit: usize,
        after: Option<&K>,
    ) -> impl Future<Output = Result<Vec<K>, QueryError>> + Send;
}

impl QueryableState for JobControl {
    fn query<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()));
        let typed = key.clone();
        let group = Box::new(move |max: usize| key_group(&typed, max));
        let control = self.clone();
        let (uid, name) = (uid.to_string(), name.to_string());
        async move {
            let answer = control.query_state(&uid, &name, encoded?, group).await?;
            decode_value(&uid, &name, answer)
        }
    }

    fn query_with<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let wanted = match consistency {
            Consistency::Live => None,
            Consistency::Committed => Some(1),
            Consistency::AtLeast(n) => Some(n.max(1)),
        };
        let committed = wanted.map(|wanted| query_committed(self, uid, name, key, wanted));
        let live = committed
            .is_none()
            .then(|| self.query::<V, K>(uid, name, key));
        let (uid, name) = (uid.to_string(), name.to_string());
        async move {
            match (committed, live) {
                (Some(answer), _) => decode_value(&uid, &name, answer?),
                (None, Some(live)) => live.await,
                (None, None) => Ok(None),
            }
        }
    }

    fn query_entry<V: DeserializeOwned, K: Key, UK: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        user_key: &UK,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()));
        let user_key = codec::encode(user_key).map_err(|e| QueryError::Codec(e.to_string()));
        let typed = key.clone();
        let group = Box::new(move |max: usize| key_group(&typed, max));
        let control = self.clone();
        let (uid, name) = (uid.to_string(), name.to_string());
        async move {
            let answer = control
                .query_entry_state(&uid, &name, encoded?, group, user_key?)
                .await?;
            decode_value(&uid, &name, answer)
        }
    }

    fn keys<K: Key>(
        &self,
        uid: &str,
        name: &str,
        limit: usize,
        after: Option<&K>,
    ) -> impl Future<Output = Result<Vec<K>, QueryError>> + Send {
        let after = after
            .map(|k| codec::encode(k).map_err(|e| QueryError::Codec(e.to_string())))
            .transpose();
        let control = self.clone();
        let (uid, name) = (uid.to_string(), name.to_string());
        async move {
            let keys = control.query_keys(&uid, &name, limit, after?).await?;
            decode_keys(&uid, &name, keys)
        }
    }
}

/// An answer's value, decoded.
fn decode_value<V: DeserializeOwned>(
    uid: &str,
    name: &str,
    answer: Option<Vec<u8>>,
) -> Result<Option<V>, QueryError> {
    answer
        .map(|bytes| {
            codec::decode::<V>(&bytes).map_err(|e| {
                QueryError::Codec(format!(
                    "the value of state `{name}` of operator `{uid}` does not decode as `{}`: {e}",
                    std::any::type_name::<V>()
                ))
            })
        })
        .transpose()
}

/// The keys of a listing, decoded.
fn decode_keys<K: Key>(uid: &str, name: &str, keys: Vec<Vec<u8>>) -> Result<Vec<K>, QueryError> {
    keys.iter()
        .map(|bytes| {
            codec::decode::<K>(bytes).map_err(|e| {
                QueryError::Codec(format!(
                    "a key of state `{name}` of operator `{uid}` does not decode as `{}`: {e}",
                    std::any::type_name::<K>()
                ))
            })
        })
        .collect()
}

impl QueryableState for crate::JobClient {
    fn query<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let control: &JobControl = self;
        control.query(uid, name, key)
    }

    fn query_with<V: DeserializeOwned, K: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let control: &JobControl = self;
        control.query_with(uid, name, key, consistency)
    }

    fn query_entry<V: DeserializeOwned, K: Key, UK: Key>(
        &self,
        uid: &str,
        name: &str,
        key: &K,
        user_key: &UK,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let control: &JobControl = self;
        control.query_entry(uid, name, key, user_key)
    }

    fn keys<K: Key>(
        &self,
        uid: &str,
        name: &str,
        limit: usize,
        after: Option<&K>,
    ) -> impl Future<Output = Result<Vec<K>, QueryError>> + Send {
        let control: &JobControl = self;
        control.keys(uid, name, limit, after)
    }
}

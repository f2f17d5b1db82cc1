//! Live queries: read a key's state straight from a running job (the seed
//! documents' "stream job as a database").
//!
//! A keyed state is made queryable on its descriptor
//! (`ValueStateDescriptor::new("count").queryable("count")`, on every keyed
//! state kind); names should be unique in the job. [`QueryableState::query`]
//! on a [`JobControl`] (and so on a [`JobClient`](crate::JobClient), which
//! derefs to one) finds the operator
//! that has the name (or the one a [`QueryTarget`] names) and sends the key,
//! routed by key group as a restore assigns key groups, to the subtask actor
//! that owns it, which answers between two processing steps: an answer never
//! sees a half-applied write and reflects every record whose processing was
//! acknowledged (read-your-writes). Queries are messages: any actix actor or
//! async code in the process can ask, concurrently with the job.
//!
//! [`Consistency`] chooses what is read: the live state, or the state as of
//! the latest completed checkpoint (`Committed`, `AtLeast(n)`): consistent
//! across keys and operators, and answered while the job restarts.
//! [`QueryableState::query_entry`] reads one entry of a map state without
//! the whole map; [`QueryableState::keys`] lists the keys that have a
//! value, a bounded page at a time, over every subtask of the operator.
//!
//! What a query answers: a value state's value (with a default: the
//! default for a key without one), a list state's elements (`Vec<V>`), a
//! map state's entries (any map type, `HashMap<UK, UV>`, `BTreeMap<UK, UV>`),
//! a reducing state's value, an aggregating state's accumulator; `None` for
//! a key without one. A state becomes queryable once its operator has used
//! it (as in Flink, where a state registers when it is created). A live read
//! is the function's: a state with a time to live that restarts on reads
//! (`OnReadAndWrite`) restarts on a query too.
//!
//! Errors ([`QueryError`]): an unknown name lists the queryable names (an
//! unknown uid the operators), a key of another type than the operator's is
//! refused, and a job that is not running says so (`Unavailable`, with
//! whether a retry may help: a restart).
//!
//! ```no_run
//! use weir::query::{Consistency, QueryableState};
//! # async fn example(client: weir::JobClient) -> Result<(), weir::query::QueryError> {
//! let live: Option<u64> = client.query("count", &"alice".to_string(), Consistency::Live).await?;
//! let committed: Option<u64> =
//!     client.query(("counter", "count"), &"alice".to_string(), Consistency::Committed).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
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
    /// from the snapshot as the checkpoint storage keeps it (its files, or
    /// in memory), indexed by key once per snapshot.
    Committed,
    /// [`Consistency::Committed`], once checkpoint `n` has completed;
    /// before, [`QueryError::NotYet`].
    AtLeast(u64),
}

/// The queryable state a query reads: by its name (whichever operator has
/// a queryable state of that name; `"count"`), or an operator's uid and a
/// name (`("counter", "count")`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryTarget {
    uid: Option<String>,
    name: String,
}

impl QueryTarget {
    /// The queryable state `name`, in whichever operator has it.
    pub fn named(name: &str) -> Self {
        QueryTarget {
            uid: None,
            name: name.to_string(),
        }
    }

    /// The queryable state `name` of operator `uid`.
    pub fn in_operator(uid: &str, name: &str) -> Self {
        QueryTarget {
            uid: Some(uid.to_string()),
            name: name.to_string(),
        }
    }
}

impl From<&str> for QueryTarget {
    fn from(name: &str) -> Self {
        QueryTarget::named(name)
    }
}

impl From<(&str, &str)> for QueryTarget {
    fn from((uid, name): (&str, &str)) -> Self {
        QueryTarget::in_operator(uid, name)
    }
}

/// Live and committed queries of a running job's queryable keyed state.
pub trait QueryableState {
    /// The value of `key` in the queryable state `target`, as
    /// `consistency` says, decoded as `V`; `None` if the key has none.
    fn query<V: DeserializeOwned, K: Key>(
        &self,
        target: impl Into<QueryTarget>,
        key: &K,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send;

    /// One entry of a map state, live: the value under `user_key` in the
    /// map of `key`, decoded as `V`, without moving the whole map; `None`
    /// if there is none.
    fn query_entry<V: DeserializeOwned, K: Key, UK: Key>(
        &self,
        target: impl Into<QueryTarget>,
        key: &K,
        user_key: &UK,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send;

    /// A page of the keys that have a value in the queryable state
    /// `target`, live, over all the operator's subtasks: at most `limit`,
    /// after `after` (the last key of the previous page). Keys come in the
    /// order of their encoded bytes, which is stable from page to page but
    /// is not the keys' own order.
    fn keys<K: Key>(
        &self,
        target: impl Into<QueryTarget>,
        limit: usize,
        after: Option<&K>,
    ) -> impl Future<Output = Result<Vec<K>, QueryError>> + Send;
}

impl QueryableState for JobControl {
    fn query<V: DeserializeOwned, K: Key>(
        &self,
        target: impl Into<QueryTarget>,
        key: &K,
        consistency: Consistency,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let target = target.into();
        let wanted = match consistency {
            Consistency::Live => None,
            Consistency::Committed => Some(1),
            Consistency::AtLeast(n) => Some(n.max(1)),
        };
        let committed = wanted.map(|wanted| query_committed(self, &target, key, wanted));
        let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()));
        let typed = key.clone();
        let group: weir_actors::query::KeyGroupOf = Box::new(move |max| key_group(&typed, max));
        let control = self.clone();
        async move {
            let answer = match committed {
                // A name the snapshot does not know may be a state first
                // used after it: if the running job has it, the key had no
                // committed value.
                Some(Err(QueryError::UnknownState { .. } | QueryError::UnknownName { .. }))
                    if control
                        .query_keys(target.uid.as_deref(), &target.name, 0, None)
                        .await
                        .is_ok() =>
                {
                    None
                }
                Some(answer) => answer?,
                None => {
                    control
                        .query_state(target.uid.as_deref(), &target.name, encoded?, group)
                        .await?
                }
            };
            decode_value(&target, answer)
        }
    }

    fn query_entry<V: DeserializeOwned, K: Key, UK: Key>(
        &self,
        target: impl Into<QueryTarget>,
        key: &K,
        user_key: &UK,
    ) -> impl Future<Output = Result<Option<V>, QueryError>> + Send {
        let target = target.into();
        let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()));
        let user_key = codec::encode(user_key).map_err(|e| QueryError::Codec(e.to_string()));
        let typed = key.clone();
        let group: weir_actors::query::KeyGroupOf = Box::new(move |max| key_group(&typed, max));
        let control = self.clone();
        async move {
            let answer = control
                .query_entry_state(
                    target.uid.as_deref(),
                    &target.name,
                    encoded?,
                    group,
                    user_key?,
                )
                .await?;
            decode_value(&target, answer)
        }
    }

    fn keys<K: Key>(
        &self,
        target: impl Into<QueryTarget>,
        limit: usize,
        after: Option<&K>,
    ) -> impl Future<Output = Result<Vec<K>, QueryError>> + Send {
        let target = target.into();
        let after = after
            .map(|k| codec::encode(k).map_err(|e| QueryError::Codec(e.to_string())))
            .transpose();
        let control = self.clone();
        async move {
            let keys = control
                .query_keys(target.uid.as_deref(), &target.name, limit, after?)
                .await?;
            keys.iter()
                .map(|bytes| {
                    codec::decode::<K>(bytes).map_err(|e| {
                        QueryError::Codec(format!(
                            "a key of queryable state `{}` does not decode as `{}`: {e}",
                            target.name,
                            std::any::type_name::<K>()
                        ))
                    })
                })
                .collect()
        }
    }
}

/// A query of one key written as JSON text (text that is not JSON is the
/// key as a string: `alice` and `"alice"` are the same key), answered as
/// JSON, for callers that do not have the job's types: the REST API
/// ([`crate::web`]) and scripts. A live query asks a subtask of the
/// operator to read the key as its key type, then the subtask that owns it
/// (as [`QueryableState::query`] does); a committed one looks the key up in
/// the checkpoint by the encoding the operator gives it the same way, or,
/// while no subtask runs (a restart), by the JSON's own shape (a struct
/// key's fields in declaration order). A key the operator's key type cannot
/// read is [`QueryError::Codec`]. A list is a JSON array, a map an object
/// (non-string keys as their JSON text).
///
/// ```no_run
/// use weir::query::{query_json, Consistency, QueryTarget};
/// # async fn example(client: weir::JobClient) -> Result<(), weir::query::QueryError> {
/// let count = query_json(&client, QueryTarget::named("count"), "alice", Consistency::Live).await?;
/// println!("{}", count.unwrap_or_default());
/// # Ok(()) }
/// ```
pub async fn query_json(
    control: &JobControl,
    target: QueryTarget,
    key_json: &str,
    consistency: Consistency,
) -> Result<Option<serde_json::Value>, QueryError> {
    let wanted = match consistency {
        Consistency::Live => None,
        Consistency::Committed => Some(1),
        Consistency::AtLeast(n) => Some(n.max(1)),
    };
    let answer = match wanted {
        Some(wanted) => {
            let located = control
                .locate_json_key(target.uid.as_deref(), &target.name, key_json)
                .await;
            let (asked, encoded) = match located {
                Ok((uid, _, key)) => (QueryTarget::in_operator(&uid, &target.name), key),
                Err(e @ QueryError::Codec(_)) => return Err(e),
                // No running subtask to ask (or the state not used since
                // the restart): the key as its JSON's shape.
                Err(_) => {
                    let encoded = crate::inspect::json_text_to_msgpack(key_json)
                        .map_err(|e| QueryError::Codec(format!("the key `{key_json}`: {e}")))?;
                    (target.clone(), encoded)
                }
            };
            match query_committed_encoded(control, &asked, &encoded, wanted) {
                // As in `query`: a state first used after the snapshot.
                Err(QueryError::UnknownState { .. } | QueryError::UnknownName { .. })
                    if control
                        .query_keys(target.uid.as_deref(), &target.name, 0, None)
                        .await
                        .is_ok() =>
                {
                    None
                }
                answer => answer?,
            }
        }
        None => {
            control
                .query_state_json_key(target.uid.as_deref(), &target.name, key_json)
                .await?
        }
    };
    answer
        .map(|bytes| {
            crate::inspect::msgpack_to_json(&bytes).map_err(|e| QueryError::Failed {
                uid: target.uid.clone().unwrap_or_default(),
                name: target.name.clone(),
                cause: format!("its value does not decode: {e}"),
            })
        })
        .transpose()
}

/// An answer's value, decoded.
fn decode_value<V: DeserializeOwned>(
    target: &QueryTarget,
    answer: Option<Vec<u8>>,
) -> Result<Option<V>, QueryError> {
    answer
        .map(|bytes| {
            codec::decode::<V>(&bytes).map_err(|e| {
                QueryError::Codec(format!(
                    "the value of queryable state `{}` does not decode as `{}`: {e}",
                    target.name,
                    std::any::type_name::<V>()
                ))
            })
        })
        .transpose()
}

/// The decoded committed state of the snapshots read lately, by snapshot
/// directory or in-memory label (every operator's, by uid): a committed
/// query reads a snapshot once.
#[allow(clippy::type_complexity)]
static COMMITTED: Mutex<Vec<(PathBuf, Arc<BTreeMap<String, CommittedState>>)>> =
    Mutex::new(Vec::new());

/// How many snapshots [`COMMITTED`] keeps.
const COMMITTED_KEPT: usize = 4;

/// Where a committed snapshot is read: its directory, or (an in-memory
/// checkpoint) the job's checkpoint storage.
enum CommittedSource {
    Dir(PathBuf),
    Storage {
        /// `memory:<job id>/chk-<id>`: the snapshot's name in the cache and in errors.
        label: PathBuf,
        storage: Arc<dyn weir_actors::checkpoint::CheckpointStorage>,
    },
}

impl CommittedSource {
    /// The newest complete snapshot of `control`'s job, if it is at least
    /// checkpoint `wanted`, and where it is.
    fn latest(control: &JobControl, wanted: u64) -> Option<(u64, Self)> {
        if let Some((id, dir)) = control.latest_snapshot_dir() {
            return (id >= wanted).then_some((id, CommittedSource::Dir(dir)));
        }
        let id = control.latest_snapshot()?.id;
        let storage = control.checkpoint_storage()?;
        let label = PathBuf::from(format!("memory:{}/chk-{id}", control.job_id()));
        (id >= wanted).then_some((id, CommittedSource::Storage { label, storage }))
    }

    fn label(&self) -> &Path {
        match self {
            CommittedSource::Dir(dir) => dir,
            CommittedSource::Storage { label, .. } => label,
        }
    }
}

/// Every operator's committed state in snapshot `id`, read once.
fn committed_states(
    id: u64,
    source: &CommittedSource,
) -> Result<Arc<BTreeMap<String, CommittedState>>, String> {
    let label = source.label();
    let cached = COMMITTED.lock().ok().and_then(|kept| {
        kept.iter()
            .find(|(d, _)| d == label)
            .map(|(_, states)| states.clone())
    });
    if let Some(states) = cached {
        return Ok(states);
    }
    let read = match source {
        CommittedSource::Dir(dir) => CommittedState::read_all(dir),
        CommittedSource::Storage { label, storage } => {
            CommittedState::read_all_in(label, storage.as_ref(), id)
        }
    };
    let states = Arc::new(read.map_err(|e| e.to_string())?);
    if let Ok(mut kept) = COMMITTED.lock() {
        if kept.len() >= COMMITTED_KEPT {
            kept.remove(0);
        }
        kept.push((label.to_path_buf(), states.clone()));
    }
    Ok(states)
}

/// A committed query of `key` in `target` (at least checkpoint `wanted`).
fn query_committed<K: Key>(
    control: &JobControl,
    target: &QueryTarget,
    key: &K,
    wanted: u64,
) -> Result<Option<Vec<u8>>, QueryError> {
    let encoded = codec::encode(key).map_err(|e| QueryError::Codec(e.to_string()))?;
    query_committed_encoded(control, target, &encoded, wanted)
}

/// A committed query of the key encoded as `encoded`.
fn query_committed_encoded(
    control: &JobControl,
    target: &QueryTarget,
    encoded: &[u8],
    wanted: u64,
) -> Result<Option<Vec<u8>>, QueryError> {
    let Some((id, source)) = CommittedSource::latest(control, wanted) else {
        return Err(QueryError::NotYet {
            job: control.name().to_string(),
            wanted,
            latest: control.latest_snapshot().map(|s| s.id),
        });
    };
    let failed = |uid: &str, cause: String| QueryError::Failed {
        uid: uid.to_string(),
        name: target.name.clone(),
        cause: format!("reading checkpoint {id}: {cause}"),
    };
    let states = committed_states(id, &source).map_err(|e| failed("?", e))?;
    if let Some(uid) = &target.uid {
        let Some(state) = states.get(uid) else {
            return Err(QueryError::UnknownOperator {
                job: control.name().to_string(),
                uid: uid.clone(),
                known: weir_actors::query::known_names(states.keys()),
            });
        };
        return state.lookup(&target.name, encoded);
    }
    let mut known = Vec::new();
    for (uid, state) in states.iter() {
        if state.has_queryable(&target.name) {
            return state.lookup(&target.name, encoded);
        }
        known.extend(
            state
                .queryable_names()
                .into_iter()
                .map(|n| format!("{uid}/{n}")),
        );
    }
    Err(QueryError::UnknownName {
        job: control.name().to_string(),
        name: target.name.clone(),
        known: weir_actors::query::known_names(known),
    })
}

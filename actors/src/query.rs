//! Live queries of a running job's keyed state: a query is a message.
//!
//! When a deployment starts, the supervisor publishes its [`QueryRoutes`]
//! (per operator: max parallelism and the subtasks' addresses), and takes
//! them back when it cancels the subtasks (a restart, the end).
//! [`JobControl::query_state`](crate::JobControl::query_state) routes a key
//! by key group to the subtask that owns it (the same assignment a restore
//! uses, [`KeyGroupRange::owner_of`](crate::key_groups::KeyGroupRange::owner_of))
//! and sends it a [`QuerySubtask`] directly. The subtask actor answers
//! between two processing steps, so an answer never sees a half-applied
//! write, and a record whose processing was acknowledged is in it. The
//! operator decodes the key and encodes the value itself
//! ([`StreamOperator::query_state`](crate::operator::StreamOperator::query_state)):
//! the runtime moves bytes.

use actix::prelude::*;
use thiserror::Error;

/// Computes a key's key group from the operator's max parallelism (the
/// caller knows the key's type; the runtime knows the max parallelism).
pub type KeyGroupOf = Box<dyn Fn(usize) -> usize + Send + Sync>;

/// What a query asks of one subtask's queryable state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateQuery {
    /// The value of one key (encoded) of key group `key_group`.
    Get {
        /// The key's key group (the subtask checks it).
        key_group: usize,
        /// The key, encoded ([`crate::codec`]).
        key: Vec<u8>,
    },
    /// The value under one user key (encoded) of one key's map (map state).
    Entry {
        /// The key's key group (the subtask checks it).
        key_group: usize,
        /// The key, encoded.
        key: Vec<u8>,
        /// The map's key, encoded.
        user_key: Vec<u8>,
    },
    /// The key written as JSON text (or, if the text is not JSON, the text
    /// as a string), read as the operator's key type: its key group and its
    /// encoding ([`StateAnswer::Located`]). For callers that do not know the
    /// key's type (the REST API); any subtask of the operator answers it.
    Locate {
        /// The key as JSON text.
        key_json: String,
    },
    /// Up to `limit` of the subtask's keys with a value, encoded, in the
    /// order of their bytes, after the key `after` (encoded), if given.
    Keys {
        /// At most this many.
        limit: usize,
        /// Only keys whose encoding sorts after this one.
        after: Option<Vec<u8>>,
    },
}

/// A subtask's answer to a [`StateQuery`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateAnswer {
    /// The key's value, encoded (`None`: the key has none).
    Value(Option<Vec<u8>>),
    /// Keys, encoded, in byte order.
    Keys(Vec<Vec<u8>>),
    /// A located key ([`StateQuery::Locate`]): its group and its encoding.
    Located {
        /// The key's key group.
        key_group: usize,
        /// The key, encoded as the operator encodes its keys.
        key: Vec<u8>,
    },
}

/// A query of one queryable state, to one subtask (for a key: the one that
/// owns the key's group).
#[derive(Message)]
#[rtype(result = "Result<StateAnswer, QueryError>")]
pub struct QuerySubtask {
    /// The operator's uid.
    pub uid: String,
    /// The state's queryable name.
    pub name: String,
    /// What is asked.
    pub query: StateQuery,
}

/// Why a query has no answer.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    /// No operator of the job has this uid.
    #[error("job `{job}` has no operator with uid `{uid}`; its operators are: {known}")]
    UnknownOperator {
        /// The job's name.
        job: String,
        /// The uid asked for.
        uid: String,
        /// The uids there are, comma-separated.
        known: String,
    },
    /// The operator has no queryable state of this name (yet: a state is
    /// registered when the operator first uses it).
    #[error(
        "operator `{uid}` has no queryable state `{name}` (a state is queryable once the \
         operator has used it); its queryable states are: {known}"
    )]
    UnknownState {
        /// The operator's uid.
        uid: String,
        /// The name asked for.
        name: String,
        /// The queryable names the operator has, comma-separated (or "none").
        known: String,
    },
    /// The job cannot answer now (restarting, not started, finished): the
    /// status, and whether asking again may help.
    #[error("job `{job}` cannot answer a live query now: {reason}")]
    Unavailable {
        /// The job's name.
        job: String,
        /// Why (the job's status).
        reason: String,
        /// Whether the same query may be answered later (a restart).
        retry: bool,
    },
    /// A committed query asked for a checkpoint that has not completed yet
    /// (`AtLeast`), or no checkpoint has completed yet.
    #[error("job `{job}`: checkpoint {wanted} has not completed yet (the latest is {latest:?})")]
    NotYet {
        /// The job's name.
        job: String,
        /// The checkpoint asked for (1 for `Committed`: any).
        wanted: u64,
        /// The latest completed checkpoint, if any.
        latest: Option<u64>,
    },
    /// No operator of the job has a queryable state of this name (among the
    /// subtasks asked: a state is queryable once it has been used).
    #[error("job `{job}` has no queryable state `{name}`; its queryable states are: {known}")]
    UnknownName {
        /// The job's name.
        job: String,
        /// The name asked for.
        name: String,
        /// `uid/name` of the queryable states found, comma-separated (or "none").
        known: String,
    },
    /// The key or the value does not decode (the wrong type for the state).
    #[error("{0}")]
    Codec(String),
    /// Reading the state failed.
    #[error("reading state `{name}` of operator `{uid}` failed: {cause}")]
    Failed {
        /// The operator's uid.
        uid: String,
        /// The state's queryable name.
        name: String,
        /// What failed.
        cause: String,
    },
}

/// What [`known_names`] says of no names.
const NO_NAMES: &str = "none";

/// Names for an error message: comma-separated, or "none".
pub fn known_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let names: Vec<S> = names.into_iter().collect();
    match names.is_empty() {
        true => NO_NAMES.into(),
        false => names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl QueryError {
    /// Operator `uid` has no queryable state at all (asked for `name`).
    pub fn no_queryable_state(uid: &str, name: &str) -> Self {
        QueryError::UnknownState {
            uid: uid.to_string(),
            name: name.to_string(),
            known: NO_NAMES.into(),
        }
    }
}

/// Where live queries go in one deployment.
pub struct QueryRoutes {
    job: String,
    /// Per operator: uid, max parallelism, its subtasks.
    operators: Vec<(String, usize, Vec<Recipient<QuerySubtask>>)>,
    /// Queryable name -> the uid of the operator found to have it.
    learned: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl QueryRoutes {
    /// The routes of job `job`: per operator, its uid, max parallelism and
    /// subtasks in index order.
    pub(crate) fn new(
        job: String,
        operators: Vec<(String, usize, Vec<Recipient<QuerySubtask>>)>,
    ) -> Self {
        QueryRoutes {
            job,
            operators,
            learned: std::sync::Mutex::default(),
        }
    }

    /// The operators that may have queryable state `name`: the one found
    /// to have it before, else every operator.
    pub(crate) fn candidates(&self, name: &str) -> Vec<String> {
        let learned = self.learned.lock().ok().and_then(|l| l.get(name).cloned());
        match learned {
            Some(uid) => vec![uid],
            None => self.operators.iter().map(|(uid, ..)| uid.clone()).collect(),
        }
    }

    /// The operators to ask for queryable state `name`: `uid` if named,
    /// else [`QueryRoutes::candidates`].
    pub(crate) fn candidates_for(&self, uid: Option<&str>, name: &str) -> Vec<String> {
        match uid {
            Some(uid) => vec![uid.to_string()],
            None => self.candidates(name),
        }
    }

    /// Remembers that operator `uid` has queryable state `name`.
    pub(crate) fn learn(&self, name: &str, uid: &str) {
        if let Ok(mut learned) = self.learned.lock() {
            learned.insert(name.to_string(), uid.to_string());
        }
    }

    /// The error for a name no candidate knew (`uid`: the one asked for).
    pub(crate) fn unknown(
        &self,
        uid: Option<&str>,
        name: &str,
        answers: Vec<QueryError>,
    ) -> QueryError {
        if let (Some(_), Some(answer)) = (uid, answers.first()) {
            return answer.clone();
        }
        let mut known: Vec<String> = answers
            .iter()
            .filter_map(|e| match e {
                QueryError::UnknownState { uid, known, .. } if known != NO_NAMES => Some(
                    known
                        .split(", ")
                        .map(|n| format!("{uid}/{n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                _ => None,
            })
            .collect();
        known.sort();
        QueryError::UnknownName {
            job: self.job.clone(),
            name: name.to_string(),
            known: known_names(known),
        }
    }

    /// Operator `uid`'s max parallelism and subtasks.
    fn operator(&self, uid: &str) -> Result<(usize, &[Recipient<QuerySubtask>]), QueryError> {
        match self.operators.iter().find(|(u, ..)| u == uid) {
            Some((_, max, subtasks)) => Ok((*max, subtasks)),
            None => {
                let known: Vec<&str> = self.operators.iter().map(|(u, ..)| u.as_str()).collect();
                Err(QueryError::UnknownOperator {
                    job: self.job.clone(),
                    uid: uid.to_string(),
                    known: known.join(", "),
                })
            }
        }
    }

    /// Every subtask of operator `uid`.
    pub(crate) fn all(&self, uid: &str) -> Result<Vec<Recipient<QuerySubtask>>, QueryError> {
        self.operator(uid).map(|(_, subtasks)| subtasks.to_vec())
    }

    /// The subtask that owns the key of operator `uid` whose group
    /// `key_group` computes, and that group.
    pub(crate) fn route(
        &self,
        uid: &str,
        key_group: &KeyGroupOf,
    ) -> Result<(Recipient<QuerySubtask>, usize), QueryError> {
        let (max, subtasks) = self.operator(uid)?;
        let max = &max;
        let group = key_group(*max);
        let owner = crate::key_groups::KeyGroupRange::owner_of(group, *max, subtasks.len());
        let target = subtasks
            .get(owner)
            .cloned()
            .ok_or_else(|| QueryError::Unavailable {
                job: self.job.clone(),
                reason: format!("operator `{uid}` has no subtask {owner}"),
                retry: false,
            })?;
        Ok((target, group))
    }
}

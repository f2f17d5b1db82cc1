//! Live queries of a running job's keyed state: a query is a message.
//!
//! [`JobControl::query_state`](crate::JobControl::query_state) sends a
//! [`QueryState`] to the job's supervisor, which routes it by key group to
//! the subtask that owns the key (the same assignment a restore uses,
//! [`KeyGroupRange::owner_of`](crate::key_groups::KeyGroupRange::owner_of))
//! and forwards it there as a [`QuerySubtask`]. The subtask actor answers
//! between two processing steps, so an answer never sees a half-applied
//! write, and a record whose processing was acknowledged is in it. The
//! operator decodes the key and encodes the value itself
//! ([`StreamOperator::query_state`](crate::operator::StreamOperator::query_state)):
//! the runtime moves bytes.

use actix::prelude::*;
use thiserror::Error;

/// Computes a key's key group from the operator's max parallelism (the
/// caller knows the key's type; the runtime knows the max parallelism).
pub type KeyGroupOf = Box<dyn FnOnce(usize) -> usize + Send>;

/// A query of one key of one queryable state, to the job's supervisor.
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, QueryError>")]
pub struct QueryState {
    /// The operator's uid.
    pub uid: String,
    /// The state's queryable name.
    pub name: String,
    /// The key, encoded ([`crate::codec`]).
    pub key: Vec<u8>,
    /// The key's key group, given the max parallelism.
    pub key_group: KeyGroupOf,
}

/// [`QueryState`] routed to the subtask that owns the key group.
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<u8>>, QueryError>")]
pub struct QuerySubtask {
    /// The operator's uid.
    pub uid: String,
    /// The state's queryable name.
    pub name: String,
    /// The key's key group.
    pub key_group: usize,
    /// The key, encoded.
    pub key: Vec<u8>,
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

//! Errors of state access.

use thiserror::Error;

/// A state could not be opened, read or restored.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StateError {
    /// One name, two declarations.
    #[error("state `{name}` is declared as {declared} but was opened as {requested}")]
    Mismatch {
        /// The state's name.
        name: String,
        /// Kind and type it was first declared with.
        declared: String,
        /// Kind and type of the conflicting request.
        requested: String,
    },
    /// A record or timer outside the key groups this subtask owns.
    #[error("key group {group} is not owned by this subtask (it owns {start}..{end})")]
    ForeignKeyGroup {
        /// The key group.
        group: usize,
        /// First owned key group.
        start: usize,
        /// One past the last owned key group.
        end: usize,
    },
    /// State bytes that do not decode.
    #[error("cannot decode state `{name}` of key group {group}: {cause}")]
    Corrupt {
        /// The state's name.
        name: String,
        /// The key group.
        group: usize,
        /// The decoder's message.
        cause: String,
    },
    /// A kind of state this operator does not have.
    #[error("{0}")]
    Unavailable(String),
    /// A restore into a store whose states were already opened.
    #[error("keyed state can only be restored before it is first used")]
    RestoreAfterUse,
    /// State that cannot be encoded.
    #[error("cannot encode state `{name}`: {cause}")]
    Encode {
        /// The state's name.
        name: String,
        /// The encoder's message.
        cause: String,
    },
    /// A time-to-live configuration that cannot work (zero, or on a state
    /// that has no time to live); the message names the state. No restart
    /// can fix it: a job fails at once.
    #[error("invalid state time-to-live: {message}")]
    InvalidTtl {
        /// What is wrong, naming the state.
        message: String,
        /// Marks the error as one a restart cannot fix.
        #[source]
        cause: weir_actors::error::NotRetryable,
    },
    /// Two states of one operator made queryable under one name; no restart
    /// can fix it: the job fails at once.
    #[error("{message}")]
    InvalidQueryable {
        /// Which states and which name.
        message: String,
        /// Marks the error as one a restart cannot fix.
        #[source]
        cause: weir_actors::error::NotRetryable,
    },
    /// A restored state the job cannot read: the schema its snapshot
    /// recorded does not read as the descriptor's type and no migration
    /// covers it, or the snapshot was written by a newer version of the
    /// state. No restart can fix it: the job fails at once.
    #[error("state `{name}`{} cannot be restored: {message}", of_operator(.operator))]
    Schema {
        /// The state's name.
        name: String,
        /// The uid of the operator whose state it is, if known.
        operator: Option<String>,
        /// What differs and what to do.
        message: String,
        /// Marks the error as one a restart cannot fix.
        #[source]
        cause: weir_actors::error::NotRetryable,
    },
    /// The state backend failed (I/O, RocksDB, a missing or corrupt file); the
    /// message names what and where.
    #[error("{0}")]
    Backend(String),
}

/// ` of operator `uid``, if the operator is known.
fn of_operator(operator: &Option<String>) -> String {
    operator
        .as_ref()
        .map_or_else(String::new, |uid| format!(" of operator `{uid}`"))
}

impl StateError {
    /// The same error, naming operator `uid` if it is a schema error.
    pub fn of_operator(mut self, uid: &str) -> Self {
        if let StateError::Schema { operator, .. } = &mut self {
            operator.get_or_insert_with(|| uid.to_string());
        }
        self
    }

    /// A restored state whose schema the job cannot read.
    pub fn schema(name: &str, message: impl Into<String>) -> Self {
        StateError::Schema {
            name: name.to_string(),
            operator: None,
            message: message.into(),
            cause: weir_actors::error::NotRetryable,
        }
    }

    /// An invalid time-to-live configuration: `message` names the state.
    pub fn invalid_ttl(message: String) -> Self {
        StateError::InvalidTtl {
            message,
            cause: weir_actors::error::NotRetryable,
        }
    }
}

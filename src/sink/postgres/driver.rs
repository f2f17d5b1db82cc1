//! The I/O of the PostgreSQL sink: the connections (driven on
//! [`crate::io_runtime`]), and what the server's errors mean for the job (a
//! lost connection is worth a restart, a missing table is not).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};
use weir_actors::error::Permanent;
use weir_actors::UserError;

pub(crate) use crate::io_runtime::{run, spawn, Task};

/// The server a configuration names, for messages (no password).
pub(crate) fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("PostgreSQL {host}:{port}/{database}")
}

/// Connects (the connection is driven on the sink's runtime) and sets the
/// session's lock timeout.
pub(crate) async fn connect(
    config: Config,
    server: String,
    lock_timeout: Duration,
) -> Result<Arc<Client>, UserError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| sql_error(&server, "cannot connect", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL sink connection ended");
        }
    });
    client
        .batch_execute(&format!(
            "SET lock_timeout = {}",
            lock_timeout.as_millis().max(1)
        ))
        .await
        .map_err(|e| sql_error(&server, "cannot set lock_timeout", e))?;
    Ok(Arc::new(client))
}

/// What an error of the server or the connection means: the message names
/// the server, what was being done, the server's message, detail and hint,
/// and the error is [`Permanent`] unless a restart can help (a lost
/// connection, a lock timeout, a deadlock, a server shutting down).
pub(crate) fn sql_error(server: &str, doing: &str, error: tokio_postgres::Error) -> UserError {
    let message = match error.as_db_error() {
        Some(db) => {
            let mut text = format!(
                "{server}: {doing}: {} [SQLSTATE {}]",
                db.message(),
                db.code().code()
            );
            if let Some(table) = db.table() {
                text.push_str(&format!(" (table {table})"));
            }
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => format!("{server}: {doing}: {error}"),
    };
    if retryable(&error) {
        message.into()
    } else {
        Permanent(message.into()).into()
    }
}

/// Whether a restart can help with `error`.
fn retryable(error: &tokio_postgres::Error) -> bool {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection (closed, reset, refused, timed out).
        return true;
    };
    let class = &code.code()[..2];
    // 08: connection exception; 40: transaction rollback (serialization
    // failure, deadlock); 53: insufficient resources; 57: operator
    // intervention (shutdown); 55P03: lock not available (lock_timeout).
    matches!(class, "08" | "40" | "53" | "57") || *code == SqlState::LOCK_NOT_AVAILABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_described_without_its_password() {
        let config: Config = "host=db.example port=5433 user=weir password=secret dbname=shop"
            .parse()
            .unwrap();
        assert_eq!(describe(&config), "PostgreSQL db.example:5433/shop");
        let config: Config = "postgresql://weir:secret@127.0.0.1/".parse().unwrap();
        assert_eq!(describe(&config), "PostgreSQL 127.0.0.1:5432/weir");
    }
}

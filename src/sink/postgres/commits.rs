//! Settling a PostgreSQL sink's transactions: committing prepared ones,
//! writing deferred ones (rows carried in the checkpoint), rolling back
//! what a checkpoint did not keep, and listing what is prepared.
//!
//! A subtask's commits go through one [`Committer`]: a task on the sink's
//! runtime with its own connection that settles them one after the other,
//! in the order they were asked for, off the processing path. The order
//! matters: a deferred transaction's rows must land after the previous
//! transaction's, and a commit queued behind a write that waits for its
//! locks would never come.

use std::sync::Arc;

use futures::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};
use weir_actors::error::Permanent;
use weir_actors::UserError;

use super::driver::{self, connect, sql_error, Task};
use super::encoded::{Encoded, EncodedRow};
use super::{naming, statement};

/// What a transaction needs to be settled.
pub(crate) struct CommitTarget {
    pub(crate) sink: String,
    pub(crate) subtask: usize,
    pub(crate) checkpoint: u64,
    pub(crate) lineage: String,
    pub(crate) job: String,
    /// The prepared transaction, if it was prepared.
    pub(crate) name: Option<String>,
    /// The rows to write now, if it was deferred.
    pub(crate) rows: Vec<EncodedRow>,
}

/// Where commits go: the server, the commit table, the sink's statement.
#[derive(Clone)]
pub(crate) struct Destination {
    pub(crate) config: Config,
    pub(crate) server: String,
    pub(crate) table: String,
    pub(crate) sql: String,
    pub(crate) lock_timeout: std::time::Duration,
}

impl Destination {
    /// A new connection to the server.
    pub(crate) async fn connect(&self) -> Result<Arc<Client>, UserError> {
        connect(self.config.clone(), self.server.clone(), self.lock_timeout).await
    }

    /// A new connection, waited for on the sink's runtime.
    pub(crate) fn connect_blocking(&self) -> Result<Arc<Client>, UserError> {
        let destination = self.clone();
        driver::run(async move { destination.connect().await })?
    }
}

type Job = (
    CommitTarget,
    std::sync::mpsc::SyncSender<Result<(), UserError>>,
);

/// One subtask's queue of commits, settled in order by one task.
pub(crate) struct Committer {
    jobs: futures::channel::mpsc::UnboundedSender<Job>,
}

impl Committer {
    /// Starts the task (it connects when the first commit comes).
    pub(crate) fn start(destination: Destination) -> Result<Self, UserError> {
        let (jobs, mut queue) = futures::channel::mpsc::unbounded::<Job>();
        // The task ends when the committer is dropped and the queue is empty.
        driver::spawn(async move {
            let mut session: Option<(Arc<Client>, Option<Statement>)> = None;
            while let Some((target, done)) = queue.next().await {
                let outcome = settle_one(&destination, &mut session, target).await;
                if outcome.is_err() {
                    session = None;
                }
                let _ = done.send(outcome);
            }
        })?;
        Ok(Committer { jobs })
    }

    /// Queues `target`; the task's output says how it went.
    pub(crate) fn commit(
        &self,
        target: CommitTarget,
    ) -> Result<Task<Result<(), UserError>>, UserError> {
        let (done, output) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .unbounded_send((target, done))
            .map_err(|_| "the PostgreSQL sink's committer has stopped")?;
        Ok(Task::from_receiver(output))
    }
}

async fn settle_one(
    destination: &Destination,
    session: &mut Option<(Arc<Client>, Option<Statement>)>,
    target: CommitTarget,
) -> Result<(), UserError> {
    if session.is_none() {
        let client = destination.connect().await?;
        *session = Some((client, None));
    }
    let Some((client, statement)) = session.as_mut() else {
        return Err("no connection".into());
    };
    if let Some(name) = &target.name {
        return commit_prepared(client, destination, &target, name).await;
    }
    if target.rows.is_empty() {
        return Ok(());
    }
    if statement.is_none() {
        let sql = &destination.sql;
        *statement = Some(client.prepare(sql).await.map_err(|e| {
            sql_error(
                &destination.server,
                &format!("the sink's statement `{sql}`"),
                e,
            )
        })?);
    }
    let Some(statement) = statement.as_ref() else {
        return Err("no statement".into());
    };
    write_deferred(client, statement, destination, &target).await
}

fn marker_key(target: &CommitTarget) -> Result<(i32, i64), UserError> {
    Ok((
        i32::try_from(target.subtask)
            .map_err(|_| "subtask index does not fit a PostgreSQL integer")?,
        i64::try_from(target.checkpoint)
            .map_err(|_| "checkpoint id does not fit a PostgreSQL bigint")?,
    ))
}

async fn has_marker(
    client: &Client,
    destination: &Destination,
    target: &CommitTarget,
) -> Result<bool, UserError> {
    let (subtask, checkpoint) = marker_key(target)?;
    let found = client
        .query_opt(
            &statement::find_marker(&destination.table),
            &[&target.sink, &subtask, &checkpoint],
        )
        .await
        .map_err(|e| sql_error(&destination.server, "cannot read the commit table", e))?;
    Ok(found.is_some())
}

/// Removes the subtask's markers older than this commit's (the latest stays).
async fn prune(
    client: &Client,
    destination: &Destination,
    target: &CommitTarget,
) -> Result<(), UserError> {
    let (subtask, checkpoint) = marker_key(target)?;
    client
        .execute(
            &statement::prune_markers(&destination.table),
            &[&target.sink, &subtask, &checkpoint],
        )
        .await
        .map_err(|e| sql_error(&destination.server, "cannot prune the commit table", e))?;
    Ok(())
}

/// Inserts the marker of `target` in the open transaction.
pub(crate) async fn insert_marker(
    client: &Client,
    table: &str,
    server: &str,
    target: &CommitTarget,
) -> Result<(), UserError> {
    let (subtask, checkpoint) = marker_key(target)?;
    client
        .execute(
            &statement::insert_marker(table),
            &[
                &target.sink,
                &subtask,
                &checkpoint,
                &target.lineage,
                &target.job,
            ],
        )
        .await
        .map_err(|e| sql_error(server, "cannot insert the commit marker", e))?;
    Ok(())
}

/// Commits a prepared transaction. One no longer prepared must have
/// committed (its marker says so); else its rows are lost: a permanent error.
async fn commit_prepared(
    client: &Client,
    destination: &Destination,
    target: &CommitTarget,
    name: &str,
) -> Result<(), UserError> {
    let server = &destination.server;
    match client
        .batch_execute(&format!("COMMIT PREPARED '{name}'"))
        .await
    {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
            if !has_marker(client, destination, target).await? {
                return Err(Permanent(
                    format!(
                        "{server}: transaction {name} is neither prepared nor committed (no marker in {}): \
                         it was rolled back outside weir, and the rows of checkpoint {} of subtask {} are lost",
                        destination.table, target.checkpoint, target.subtask
                    )
                    .into(),
                )
                .into());
            }
        }
        Err(e) => return Err(sql_error(server, &format!("cannot commit {name}"), e)),
    }
    prune(client, destination, target).await
}

/// Writes a deferred transaction's rows with its marker, in one
/// transaction, unless its marker says it was written before.
async fn write_deferred(
    client: &Client,
    statement: &Statement,
    destination: &Destination,
    target: &CommitTarget,
) -> Result<(), UserError> {
    let server = &destination.server;
    let fail = |doing: &str| {
        let doing = doing.to_string();
        move |e| sql_error(server, &doing, e)
    };
    client
        .batch_execute("BEGIN")
        .await
        .map_err(fail("cannot begin a transaction"))?;
    let outcome = async {
        if has_marker(client, destination, target).await? {
            return Ok(false);
        }
        let results = futures::future::join_all(
            target
                .rows
                .iter()
                .map(|row| client.execute_raw(statement, row.iter().map(Encoded))),
        )
        .await;
        for result in results {
            result.map_err(fail(&format!(
                "cannot write the deferred rows of checkpoint {} of subtask {}",
                target.checkpoint, target.subtask
            )))?;
        }
        insert_marker(client, &destination.table, server, target).await?;
        Ok::<bool, UserError>(true)
    }
    .await;
    match outcome {
        Ok(true) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(fail("cannot commit"))?;
            prune(client, destination, target).await
        }
        Ok(false) => client
            .batch_execute("ROLLBACK")
            .await
            .map_err(fail("cannot roll back")),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Rolls back a prepared transaction (one already gone is fine).
pub(crate) async fn roll_back_prepared(
    client: &Client,
    name: &str,
    server: &str,
) -> Result<(), UserError> {
    match client
        .batch_execute(&format!("ROLLBACK PREPARED '{name}'"))
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => Ok(()),
        Err(e) => Err(sql_error(server, &format!("cannot roll back {name}"), e)),
    }
}

/// The prepared transactions of sink `sink_id` in the connection's
/// database, oldest checkpoint first: (name, subtask, checkpoint).
pub(crate) async fn prepared_transactions(
    client: &Client,
    sink_id: &str,
    server: &str,
) -> Result<Vec<(String, usize, u64)>, UserError> {
    let rows = client
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
            &[],
        )
        .await
        .map_err(|e| sql_error(server, "cannot list the prepared transactions", e))?;
    let mut ours = Vec::new();
    for row in rows {
        let name: String = row.try_get(0).map_err(|e| e.to_string())?;
        if let Some((subtask, checkpoint)) = naming::parse(sink_id, &name) {
            ours.push((name, subtask, checkpoint));
        }
    }
    ours.sort_by_key(|(_, subtask, checkpoint)| (*checkpoint, *subtask));
    Ok(ours)
}

/// Commits (with the commit table's bookkeeping) a prepared transaction
/// found on the server, outside any subtask: the pre-flight check's.
pub(crate) async fn commit_found(
    client: &Client,
    destination: &Destination,
    target: &CommitTarget,
) -> Result<(), UserError> {
    match &target.name {
        Some(name) => commit_prepared(client, destination, target, name).await,
        None => Ok(()),
    }
}

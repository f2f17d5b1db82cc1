//! The exactly-once PostgreSQL sink's pre-flight check, before any subtask
//! starts: the server allows enough prepared transactions, the commit table
//! exists, the statement is valid, and the prepared transactions the sink
//! left on the server are settled against the checkpoint the job restores
//! (committed up to it, rolled back after it), so that no row lock of an
//! earlier run is still held when the first row is written.

use std::sync::Arc;

use tokio_postgres::Client;
use weir_actors::error::Permanent;
use weir_actors::UserError;

use super::commits::{
    commit_found, prepared_transactions, roll_back_prepared, CommitTarget, Destination,
};
use super::driver::sql_error;
use super::statement;

/// What the check knows of the job.
pub(crate) struct Preflight {
    pub(crate) destination: Destination,
    pub(crate) sink_id: String,
    pub(crate) parallelism: usize,
    pub(crate) restored: Option<u64>,
    pub(crate) allow_rewind: bool,
    pub(crate) lineage: String,
    pub(crate) job: String,
}

/// Prepared transactions a subtask may hold at a time: the one waiting for
/// its commit and the one being prepared.
const PREPARED_PER_SUBTASK: usize = 2;

/// Runs the check on `client`.
pub(crate) async fn check(client: Arc<Client>, preflight: Preflight) -> Result<(), UserError> {
    let Preflight {
        destination,
        sink_id,
        parallelism,
        restored,
        allow_rewind,
        lineage,
        job,
    } = preflight;
    let server = &destination.server;
    let setting = client
        .query_one("SHOW max_prepared_transactions", &[])
        .await
        .map_err(|e| sql_error(server, "cannot read max_prepared_transactions", e))?;
    let allowed: String = setting.try_get(0).map_err(|e| e.to_string())?;
    let allowed: usize = allowed.trim().parse().unwrap_or(0);
    let needed = PREPARED_PER_SUBTASK * parallelism;
    if allowed < needed {
        return Err(Permanent(
            format!(
                "{server} has max_prepared_transactions = {allowed}, and the exactly-once sink prepares \
                 its transactions (PREPARE TRANSACTION), up to {PREPARED_PER_SUBTASK} per subtask at a time: \
                 set max_prepared_transactions = {needed} or more in postgresql.conf (or start the server \
                 with -c max_prepared_transactions={needed}) and restart the server"
            )
            .into(),
        )
        .into());
    }
    let table = &destination.table;
    client
        .batch_execute(&statement::create_commit_table(table))
        .await
        .map_err(|e| {
            sql_error(
                server,
                &format!("cannot create the commit table {table}"),
                e,
            )
        })?;
    let sql = &destination.sql;
    client
        .prepare(sql)
        .await
        .map_err(|e| sql_error(server, &format!("the sink's statement `{sql}`"), e))?;
    let mut leftovers = Vec::new();
    for (name, subtask, checkpoint) in prepared_transactions(&client, &sink_id, server).await? {
        match restored {
            Some(restored) if checkpoint <= restored => {
                let target = CommitTarget {
                    sink: sink_id.clone(),
                    subtask,
                    checkpoint,
                    lineage: lineage.clone(),
                    job: job.clone(),
                    name: Some(name),
                    rows: Vec::new(),
                };
                commit_found(&client, &destination, &target).await?;
            }
            Some(_) => roll_back_prepared(&client, &name, server).await?,
            None if allow_rewind => roll_back_prepared(&client, &name, server).await?,
            None => leftovers.push(name),
        }
    }
    if !leftovers.is_empty() {
        return Err(Permanent(
            format!(
                "{server} holds {} prepared transaction(s) of an earlier run of this sink ({}), and this job \
                 starts fresh: resume that run (--resume-from latest) so that they are committed or rolled \
                 back, or set sink.allow_rewind = true to roll them back",
                leftovers.len(),
                leftovers.join(", ")
            )
            .into(),
        )
        .into());
    }
    Ok(())
}

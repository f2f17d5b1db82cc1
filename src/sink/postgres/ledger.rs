//! The PostgreSQL sink's commit ledger: the marker rows of its commit table.
//!
//! Every transaction inserts a marker `(sink, subtask, checkpoint, lineage,
//! job)` before it is prepared, so a marker is visible exactly when its
//! transaction's rows are: the ledger can never say less (or more) than the
//! table holds, and [`CommitLedger::record`] has nothing left to do. A
//! commit removes the subtask's older markers; the latest one stays.

use std::sync::Arc;

use tokio_postgres::Client;
use weir_actors::UserError;

use super::commits::Destination;
use super::driver::{run, sql_error};
use super::statement;
use crate::sink::{CommitLedger, LedgerEntry};

/// The markers of one sink in one commit table.
pub(crate) struct MarkerLedger {
    pub(crate) destination: Destination,
    pub(crate) sink_id: String,
}

impl MarkerLedger {
    fn client(&self) -> Result<Arc<Client>, UserError> {
        self.destination.connect_blocking()
    }
}

impl CommitLedger for MarkerLedger {
    fn entries(&self) -> Result<Vec<LedgerEntry>, UserError> {
        let client = self.client()?;
        let (sql, sink, server) = (
            statement::latest_markers(&self.destination.table),
            self.sink_id.clone(),
            self.destination.server.clone(),
        );
        let rows = run(async move {
            client
                .query(&sql, &[&sink])
                .await
                .map_err(|e| sql_error(&server, "cannot read the commit table", e))
        })??;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let subtask: i32 = row.try_get(0).map_err(|e| e.to_string())?;
            let checkpoint: i64 = row.try_get(1).map_err(|e| e.to_string())?;
            entries.push(LedgerEntry {
                subtask: usize::try_from(subtask).map_err(|e| e.to_string())?,
                checkpoint: u64::try_from(checkpoint).map_err(|e| e.to_string())?,
                lineage: row.try_get(2).map_err(|e| e.to_string())?,
                job: row.try_get(3).map_err(|e| e.to_string())?,
            });
        }
        Ok(entries)
    }

    /// Nothing to do: each transaction wrote its marker itself.
    fn record(&self, _entry: &LedgerEntry) -> Result<(), UserError> {
        Ok(())
    }

    fn reset(&self) -> Result<(), UserError> {
        let client = self.client()?;
        let (sql, sink, server) = (
            statement::delete_markers(&self.destination.table),
            self.sink_id.clone(),
            self.destination.server.clone(),
        );
        run(async move {
            client
                .execute(&sql, &[&sink])
                .await
                .map_err(|e| sql_error(&server, "cannot reset the commit table", e))
        })??;
        Ok(())
    }

    fn location(&self) -> String {
        format!(
            "{}, table {} (sink {})",
            self.destination.server, self.destination.table, self.sink_id
        )
    }
}

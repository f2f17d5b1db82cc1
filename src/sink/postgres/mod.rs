//! Writing into PostgreSQL, exactly once (cargo feature `postgres`).
//!
//! [`PostgresSink`] maps each record to a row ([`ToRow`]: a tuple of
//! [`ToSql`] values) and executes one statement per row: an insert, an
//! upsert (`ON CONFLICT ... DO UPDATE`), or any statement of yours with
//! parameters `$1, $2, ...`. Rows are sent in batches, pipelined on one
//! connection.
//!
//! **Exactly once** ([`PostgresSink::exactly_once`], a
//! [`TwoPhaseCommitSink`]): each subtask writes the rows of a checkpoint
//! interval in one transaction, prepares it at the checkpoint's barrier
//! (`PREPARE TRANSACTION 'weir:{job}:{uid}:{subtask}:{checkpoint}'`) and
//! commits it (`COMMIT PREPARED`, on a second connection, off the processing
//! path) when the checkpoint completes. Each transaction also inserts a
//! marker row into a commit table (`weir_sink_commits`, created if missing),
//! so a transaction that is no longer prepared is known to be committed, and
//! the markers are the sink's [ledger](crate::sink::CommitLedger): a restore
//! behind what was committed is refused. When a job starts from checkpoint
//! `n`, every prepared transaction of the sink up to `n` is committed and
//! every later one rolled back, before any row is written;
//! `pg_prepared_xacts` is left empty by a job that ends.
//!
//! Requirements and limits:
//! - The server needs `max_prepared_transactions` of at least twice the
//!   sink's parallelism (the default, 0, disables prepared transactions; the
//!   pre-flight check says so).
//! - A prepared transaction keeps its row locks until it is committed. A row
//!   written by two subtasks, or rewritten while the previous checkpoint's
//!   transaction still waits for its commit (with more than one concurrent
//!   checkpoint, or after an aborted checkpoint), waits for that lock: the
//!   sink sets `lock_timeout` (30 s by default) so that such a wait ends in
//!   a restart, never in a hang. Route each row's key to one subtask
//!   (`key_by` the conflict key before the sink).
//! - A subtask never waits for its own locks: while one of its transactions
//!   waits for its commit, the next one's rows stay in memory. If the next
//!   barrier comes first (a checkpoint that overlaps the previous one, such
//!   as a job's final checkpoint), that transaction is *deferred*: its rows
//!   go into the checkpoint, encoded, and are written with the marker in
//!   one transaction when the checkpoint completes, in order after the
//!   previous transaction's commit.
//!
//! **At least once**: the sink itself is a [`Sink`]: each batch of rows is
//! committed in its own transaction, and everything before a checkpoint's
//! barrier is committed before the checkpoint completes.
//!
//! ```no_run
//! use weir::sink::postgres::PostgresSink;
//! use weir::StreamEnv;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let env = StreamEnv::with_parallelism(2);
//! let totals = PostgresSink::upsert(
//!     "host=127.0.0.1 user=shop dbname=shop",
//!     "totals",
//!     &["customer", "total"],
//!     &["customer"],
//!     |(customer, total): (String, i64)| (customer, total),
//! )?;
//! env.from_collection(vec![("alice".to_string(), 5i64)])
//!     .key_by(|(customer, _)| customer.clone())
//!     .add_sink(totals.exactly_once());
//! # Ok(()) }
//! ```

mod commits;
mod driver;
mod encoded;
mod ledger;
mod naming;
mod preflight;
mod row;
mod statement;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

pub use row::ToRow;
use serde::{Deserialize, Serialize};
pub use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Statement};
use weir_actors::error::Permanent;
use weir_actors::UserError;

use super::{CommitLedger, Hold, PreflightContext, Sink, TwoPhaseCommit, TwoPhaseCommitSink};
use crate::context::RuntimeContext;
use crate::lifecycle::Lifecycle;
use crate::state::{StateInitContext, StateSnapshotContext};
use commits::{prepared_transactions, roll_back_prepared, CommitTarget, Committer, Destination};
use driver::{run, sql_error, Task};
use encoded::EncodedRow;
use ledger::MarkerLedger;

/// The commit table's default name.
pub const DEFAULT_COMMIT_TABLE: &str = "weir_sink_commits";

/// Rows sent to the server at a time, by default.
pub const DEFAULT_BATCH_ROWS: usize = 1000;

/// How long a write waits for a row lock before it fails (and the job
/// restarts), by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection settings could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid PostgreSQL connection settings: {0}")]
pub struct ConnectionSettingsError(#[source] tokio_postgres::Error);

type RowMapping<T> = Arc<dyn Fn(T) -> Box<dyn ToRow> + Send + Sync>;

/// A sink into a PostgreSQL table; see the [module](self).
pub struct PostgresSink<T> {
    settings: Arc<Settings<T>>,
    instance: Instance,
}

struct Settings<T> {
    destination: Destination,
    /// The built-in statement's shape: rows go many to a statement.
    shape: Option<statement::Shape>,
    to_row: RowMapping<T>,
    batch_rows: usize,
    exactly_once: bool,
}

impl<T> Clone for Settings<T> {
    fn clone(&self) -> Self {
        Settings {
            destination: self.destination.clone(),
            shape: self.shape.clone(),
            to_row: self.to_row.clone(),
            batch_rows: self.batch_rows,
            exactly_once: self.exactly_once,
        }
    }
}

/// Who a subtask is, for transaction names and markers.
#[derive(Clone)]
struct Identity {
    sink_id: String,
    subtask: usize,
    lineage: String,
    job: String,
}

/// A commit asked for and not collected yet.
struct PendingCommit {
    /// It writes deferred rows: later rows wait for it.
    deferred: bool,
    task: Task<Result<(), UserError>>,
}

/// The writer connection and its statements.
#[derive(Clone)]
struct Writer {
    client: Arc<Client>,
    /// One row.
    single: Statement,
    /// Many rows, and how many (built-in statements).
    many: Option<(usize, Statement)>,
}

/// One subtask's connections, rows and transactions.
#[derive(Default)]
struct Instance {
    identity: Option<Identity>,
    writer: Option<Writer>,
    committer: Option<Committer>,
    /// A transaction is open on the writer connection.
    in_transaction: bool,
    /// Rows not sent yet.
    rows: Vec<Box<dyn ToRow>>,
    /// Checkpoints whose transaction is prepared or deferred and whose
    /// commit was not asked for: until it is, rows stay here (they could
    /// wait for its locks).
    unsettled: BTreeSet<u64>,
    commits: Vec<PendingCommit>,
    /// The latest checkpoint whose transaction this instance committed (a
    /// restore commits the restored ones before anything else).
    committed_up_to: u64,
}

/// A transaction of a [`PostgresSink`]: what a checkpoint keeps to commit it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostgresTransaction {
    /// The sink's id (`{job}:{uid}`, escaped).
    pub sink: String,
    /// The subtask that wrote it.
    pub subtask: usize,
    /// The checkpoint that prepared it.
    pub checkpoint: u64,
    /// The job's lineage, for the marker.
    pub lineage: String,
    /// The job's name, for the marker.
    pub job: String,
    /// The prepared transaction's name, if it was prepared.
    pub name: Option<String>,
    /// The rows it writes when it commits, if it was deferred (each
    /// parameter in PostgreSQL's binary format; `None` is NULL).
    #[serde(default)]
    pub rows: Vec<Vec<Option<Vec<u8>>>>,
}

impl PostgresTransaction {
    fn target(&self) -> CommitTarget {
        CommitTarget {
            sink: self.sink.clone(),
            subtask: self.subtask,
            checkpoint: self.checkpoint,
            lineage: self.lineage.clone(),
            job: self.job.clone(),
            name: self.name.clone(),
            rows: self.rows.clone(),
        }
    }
}

impl<T> Clone for PostgresSink<T> {
    /// The same sink, without connections (a new subtask's instance).
    fn clone(&self) -> Self {
        PostgresSink {
            settings: self.settings.clone(),
            instance: Instance::default(),
        }
    }
}

impl<T: Send + 'static> PostgresSink<T> {
    /// A sink executing `sql` (parameters `$1, $2, ...`) once per record,
    /// with the parameters `to_row` makes of it. `connection` is a libpq
    /// connection string (`host=... user=... dbname=...`) or URL
    /// (`postgresql://user@host/db`).
    pub fn new<R: ToRow>(
        connection: &str,
        sql: &str,
        to_row: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Result<Self, ConnectionSettingsError> {
        let mut config: Config = connection.parse().map_err(ConnectionSettingsError)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        Ok(PostgresSink {
            settings: Arc::new(Settings {
                destination: Destination {
                    server: driver::describe(&config),
                    config,
                    table: DEFAULT_COMMIT_TABLE.to_string(),
                    sql: sql.to_string(),
                    lock_timeout: DEFAULT_LOCK_TIMEOUT,
                },
                shape: None,
                to_row: Arc::new(move |record| Box::new(to_row(record))),
                batch_rows: DEFAULT_BATCH_ROWS,
                exactly_once: false,
            }),
            instance: Instance::default(),
        })
    }

    /// A sink inserting a row into `table` per record (`columns` in the
    /// order of the row's values).
    pub fn insert<R: ToRow>(
        connection: &str,
        table: &str,
        columns: &[&str],
        to_row: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Result<Self, ConnectionSettingsError> {
        Self::shaped(
            connection,
            statement::Shape::new(table, columns, None),
            to_row,
        )
    }

    /// A sink inserting a row into `table` per record, or updating the row
    /// whose `key` columns it conflicts with (`ON CONFLICT (key) DO UPDATE`
    /// every other column). `key` must be a unique index of the table.
    pub fn upsert<R: ToRow>(
        connection: &str,
        table: &str,
        columns: &[&str],
        key: &[&str],
        to_row: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Result<Self, ConnectionSettingsError> {
        Self::shaped(
            connection,
            statement::Shape::new(table, columns, Some(key)),
            to_row,
        )
    }

    /// A built-in statement, which sends many rows per statement.
    fn shaped<R: ToRow>(
        connection: &str,
        shape: statement::Shape,
        to_row: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Result<Self, ConnectionSettingsError> {
        let sink = Self::new(connection, &shape.sql(1), to_row)?;
        Ok(sink.with(|s| s.shape = Some(shape)))
    }

    fn with(mut self, change: impl FnOnce(&mut Settings<T>)) -> Self {
        let mut settings = (*self.settings).clone();
        change(&mut settings);
        self.settings = Arc::new(settings);
        self
    }

    /// Names the commit table (default [`DEFAULT_COMMIT_TABLE`]; may be
    /// schema-qualified).
    pub fn commit_table(self, table: &str) -> Self {
        let table = table.to_string();
        self.with(|s| s.destination.table = table)
    }

    /// Rows sent to the server at a time (default [`DEFAULT_BATCH_ROWS`]).
    pub fn batch_rows(self, rows: usize) -> Self {
        self.with(|s| s.batch_rows = rows.max(1))
    }

    /// How long a write waits for a row lock before it fails and the job
    /// restarts (default [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.destination.lock_timeout = timeout)
    }

    /// The SQL the sink executes per record.
    pub fn sql(&self) -> &str {
        &self.settings.destination.sql
    }

    /// This sink with exactly-once delivery (prepared transactions committed
    /// with each checkpoint): give the result to
    /// [`DataStream::add_sink`](crate::DataStream::add_sink).
    pub fn exactly_once(self) -> TwoPhaseCommit<Self, T> {
        TwoPhaseCommit::new(self.with(|s| s.exactly_once = true))
    }

    fn identify(&mut self, runtime: &RuntimeContext) {
        if self.instance.identity.is_none() {
            self.instance.identity = Some(Identity {
                sink_id: naming::sink_id(runtime.job_name(), runtime.uid()),
                subtask: runtime.subtask_index(),
                lineage: runtime.lineage().to_string(),
                job: runtime.job_name().to_string(),
            });
        }
    }

    fn identity(&self) -> Result<Identity, UserError> {
        self.instance
            .identity
            .clone()
            .ok_or_else(|| "the PostgreSQL sink was used before it was opened".into())
    }

    fn server(&self) -> String {
        self.settings.destination.server.clone()
    }

    fn connect(&self) -> Result<Arc<Client>, UserError> {
        self.settings.destination.connect_blocking()
    }

    /// The writer connection and its prepared statements (connecting first).
    fn writer(&mut self) -> Result<Writer, UserError> {
        if let Some(writer) = &self.instance.writer {
            return Ok(writer.clone());
        }
        let client = self.connect()?;
        let (sql, server) = (self.settings.destination.sql.clone(), self.server());
        // The pre-flight check created it; an operator run without one
        // (a test harness) creates it here.
        let commit_table = self
            .settings
            .exactly_once
            .then(|| statement::create_commit_table(&self.settings.destination.table));
        let many = self.settings.shape.as_ref().map(|shape| {
            (
                shape.rows_per_statement(),
                shape.sql(shape.rows_per_statement()),
            )
        });
        let prepared = client.clone();
        let (single, many) = run(async move {
            if let Some(create) = commit_table {
                prepared
                    .batch_execute(&create)
                    .await
                    .map_err(|e| sql_error(&server, "cannot create the commit table", e))?;
            }
            let single = prepared
                .prepare(&sql)
                .await
                .map_err(|e| sql_error(&server, &format!("the sink's statement `{sql}`"), e))?;
            let many = match many {
                Some((rows, sql)) => Some((
                    rows,
                    prepared.prepare(&sql).await.map_err(|e| {
                        sql_error(&server, &format!("the sink's statement of {rows} rows"), e)
                    })?,
                )),
                None => None,
            };
            Ok::<_, UserError>((single, many))
        })??;
        let writer = Writer {
            client,
            single,
            many,
        };
        self.instance.writer = Some(writer.clone());
        Ok(writer)
    }

    fn committer(&mut self) -> Result<&Committer, UserError> {
        if self.instance.committer.is_none() {
            self.instance.committer = Some(Committer::start(self.settings.destination.clone())?);
        }
        self.instance
            .committer
            .as_ref()
            .ok_or_else(|| "no committer".into())
    }

    /// Whether rows may be sent now: no transaction of this subtask waits
    /// for its commit, and no deferred one is being written.
    fn may_send(&mut self) -> Result<bool, UserError> {
        self.reap_commits(false)?;
        Ok(self.instance.unsettled.is_empty() && !self.instance.commits.iter().any(|c| c.deferred))
    }

    /// Sends the buffered rows into the open transaction (beginning it).
    fn send_rows(&mut self) -> Result<(), UserError> {
        if self.instance.rows.is_empty() {
            return Ok(());
        }
        let writer = self.writer()?;
        let rows = std::mem::take(&mut self.instance.rows);
        let pieces = self.pieces(rows, &writer)?;
        let begin = !self.instance.in_transaction;
        self.instance.in_transaction = true;
        let sent = run(execute_rows(writer, pieces, begin, self.server())).and_then(|r| r);
        self.on_error(sent)
    }

    /// Cuts `rows` into statements: full statements of many rows (for a
    /// built-in statement), the rest one by one. An upsert's statement
    /// never holds a key twice (PostgreSQL refuses that): a repeated key
    /// starts the next statement, so the rows still land in order.
    fn pieces(&self, rows: Vec<Box<dyn ToRow>>, writer: &Writer) -> Result<Vec<Piece>, UserError> {
        let Some((per_statement, _)) = writer.many else {
            return Ok(rows.into_iter().map(Piece::One).collect());
        };
        let key = self.settings.shape.as_ref().and_then(|s| s.key_positions());
        let mut pieces = Vec::new();
        let mut current: Vec<Box<dyn ToRow>> = Vec::with_capacity(per_statement);
        let mut keys = std::collections::HashSet::new();
        let close = |current: &mut Vec<Box<dyn ToRow>>, pieces: &mut Vec<Piece>| {
            if current.len() == per_statement {
                pieces.push(Piece::Many(std::mem::take(current)));
            } else {
                pieces.extend(current.drain(..).map(Piece::One));
            }
        };
        for row in rows {
            if let Some(positions) = &key {
                let encoded =
                    encoded::encode(row.as_ref(), writer.single.params()).map_err(Permanent)?;
                let row_key: Vec<Option<Vec<u8>>> =
                    positions.iter().map(|&i| encoded[i].clone()).collect();
                if !keys.insert(row_key.clone()) {
                    close(&mut current, &mut pieces);
                    keys.clear();
                    keys.insert(row_key);
                }
            }
            current.push(row);
            if current.len() == per_statement {
                close(&mut current, &mut pieces);
                keys.clear();
            }
        }
        close(&mut current, &mut pieces);
        Ok(pieces)
    }

    /// At least once: sends the buffered rows and commits them.
    fn flush_and_commit(&mut self) -> Result<(), UserError> {
        self.send_rows()?;
        if !self.instance.in_transaction {
            return Ok(());
        }
        let client = self.writer()?.client;
        let server = self.server();
        self.instance.in_transaction = false;
        let committed = run(async move {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| sql_error(&server, "cannot commit", e))
        })
        .and_then(|r| r);
        self.on_error(committed)
    }

    /// After a failed operation the writer connection is not used again.
    fn on_error(&mut self, result: Result<(), UserError>) -> Result<(), UserError> {
        if result.is_err() {
            self.instance.writer = None;
            self.instance.in_transaction = false;
        }
        result
    }

    /// Collects the commits that ended (all of them if `all`): the first
    /// error fails the job (the restore commits again).
    fn reap_commits(&mut self, all: bool) -> Result<(), UserError> {
        let mut result = Ok(());
        for pending in std::mem::take(&mut self.instance.commits) {
            let outcome = if all {
                pending.task.wait().and_then(|r| r)
            } else {
                match pending.task.poll() {
                    Ok(Some(outcome)) => outcome,
                    Ok(None) => {
                        self.instance.commits.push(pending);
                        continue;
                    }
                    Err(e) => Err(e),
                }
            };
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Rolls back what an earlier attempt of this subtask prepared after the
    /// checkpoint it restores (a restart within the run; a new run's
    /// pre-flight check settled every subtask's). Prepared transactions keep
    /// their locks: this comes before any row is written.
    fn roll_back_after(&mut self, restored: u64) -> Result<(), UserError> {
        let identity = self.identity()?;
        let client = self.connect()?;
        let server = self.server();
        run(async move {
            for (name, subtask, checkpoint) in
                prepared_transactions(&client, &identity.sink_id, &server).await?
            {
                if subtask == identity.subtask && checkpoint > restored {
                    tracing::debug!(transaction = %name, restored, "rolling back what an earlier attempt prepared");
                    roll_back_prepared(&client, &name, &server).await?;
                }
            }
            Ok(())
        })?
    }

    /// Keeps the buffered rows in `transaction`, encoded (see the module).
    fn defer(&mut self, transaction: &mut PostgresTransaction) -> Result<(), UserError> {
        if self.instance.rows.is_empty() {
            return Ok(());
        }
        let statement = self.writer()?.single;
        let rows = std::mem::take(&mut self.instance.rows);
        let encoded: Result<Vec<EncodedRow>, UserError> = rows
            .iter()
            .map(|row| encoded::encode(row.as_ref(), statement.params()))
            .collect();
        transaction.rows = encoded.map_err(Permanent)?;
        tracing::debug!(
            checkpoint = transaction.checkpoint,
            rows = transaction.rows.len(),
            "deferred"
        );
        self.instance.unsettled.insert(transaction.checkpoint);
        Ok(())
    }

    /// Prepares the open transaction with its marker.
    fn prepare(&mut self, transaction: &mut PostgresTransaction) -> Result<(), UserError> {
        let identity = self.identity()?;
        let name =
            naming::transaction_name(&identity.sink_id, identity.subtask, transaction.checkpoint);
        let client = self.writer()?.client;
        let (table, server) = (self.settings.destination.table.clone(), self.server());
        let target = transaction.target();
        let prepared_name = name.clone();
        self.instance.in_transaction = false;
        let prepared = run(async move {
            commits::insert_marker(&client, &table, &server, &target).await?;
            client
                .batch_execute(&format!("PREPARE TRANSACTION '{prepared_name}'"))
                .await
                .map_err(|e| sql_error(&server, &format!("cannot prepare {prepared_name}"), e))
        })
        .and_then(|r| r);
        self.on_error(prepared)?;
        tracing::debug!(transaction = %name, "prepared");
        transaction.name = Some(name);
        self.instance.unsettled.insert(transaction.checkpoint);
        Ok(())
    }
}

/// Rows for one statement.
enum Piece {
    Many(Vec<Box<dyn ToRow>>),
    One(Box<dyn ToRow>),
}

impl Piece {
    fn describe(&self) -> String {
        match self {
            Piece::One(row) => format!("row {}", row.describe()),
            Piece::Many(rows) => format!(
                "{} rows, {} to {}",
                rows.len(),
                rows.first().map(|r| r.describe()).unwrap_or_default(),
                rows.last().map(|r| r.describe()).unwrap_or_default()
            ),
        }
    }
}

/// Sends `pieces` (pipelined: every statement is on its way before the
/// first answer; one connection keeps their order).
async fn execute_rows(
    writer: Writer,
    pieces: Vec<Piece>,
    begin: bool,
    server: String,
) -> Result<(), UserError> {
    let client = &writer.client;
    if begin {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| sql_error(&server, "cannot begin a transaction", e))?;
    }
    let results = futures::future::join_all(pieces.iter().map(|piece| {
        let (statement, params): (&Statement, Vec<&(dyn ToSql + Sync)>) = match piece {
            Piece::One(row) => (&writer.single, row.params()),
            Piece::Many(rows) => match &writer.many {
                Some((_, many)) => (many, rows.iter().flat_map(|row| row.params()).collect()),
                None => (&writer.single, Vec::new()),
            },
        };
        client.execute_raw(statement, params)
    }))
    .await;
    for (piece, result) in pieces.iter().zip(results) {
        if let Err(e) = result {
            return Err(sql_error(
                &server,
                &format!("cannot write {}", piece.describe()),
                e,
            ));
        }
    }
    Ok(())
}

impl<T: Send + 'static> Lifecycle for PostgresSink<T> {
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.identify(ctx.runtime());
        if self.settings.exactly_once {
            // A restart without a completed checkpoint restores nothing: then
            // everything an earlier attempt prepared goes. What the restore
            // committed (before this) stays, whatever the restored id says.
            let restored = ctx.runtime().restored_checkpoint_id().unwrap_or(0);
            self.roll_back_after(restored.max(self.instance.committed_up_to))?;
        }
        Ok(())
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        self.identify(ctx);
        self.writer().map(|_| ())
    }

    fn snapshot_state(&mut self, _ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        if self.settings.exactly_once {
            return Ok(());
        }
        self.flush_and_commit()
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if !self.settings.exactly_once {
            self.flush_and_commit()?;
        }
        self.reap_commits(true)
    }

    fn close(&mut self) -> Result<(), UserError> {
        let result = self.reap_commits(true);
        self.instance.writer = None;
        self.instance.committer = None;
        result
    }
}

/// At least once: each batch of rows commits in its own transaction.
impl<T: Send + 'static> Sink<T> for PostgresSink<T> {
    fn preflight(&self, _ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        let mut probe = self.clone();
        probe.writer()?;
        Ok(Vec::new())
    }

    fn write(&mut self, record: T) -> Result<(), UserError> {
        self.instance.rows.push((self.settings.to_row)(record));
        if self.instance.rows.len() >= self.settings.batch_rows {
            self.flush_and_commit()?;
        }
        Ok(())
    }
}

impl<T: Send + 'static> TwoPhaseCommitSink<T> for PostgresSink<T> {
    type Transaction = PostgresTransaction;

    fn preflight(&self, ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        let sink_id = naming::sink_id(&ctx.job_name, &ctx.operator_uid);
        let longest = naming::longest_name(&sink_id, ctx.parallelism);
        if longest > naming::MAX_NAME_BYTES {
            return Err(Permanent(
                format!(
                    "the PostgreSQL sink's transaction names would take {longest} bytes (weir:{sink_id}:...), \
                     more than PostgreSQL's {}: shorten the job name or the sink's uid",
                    naming::MAX_NAME_BYTES
                )
                .into(),
            )
            .into());
        }
        let client = self.connect()?;
        run(preflight::check(
            client,
            preflight::Preflight {
                destination: self.settings.destination.clone(),
                sink_id,
                parallelism: ctx.parallelism,
                restored: ctx.restored_checkpoint,
                allow_rewind: ctx.allow_sink_rewind,
                lineage: ctx.lineage.clone(),
                job: ctx.job_name.clone(),
            },
        ))??;
        Ok(Vec::new())
    }

    fn ledger(&self, job_name: &str, operator_uid: &str) -> Option<Box<dyn CommitLedger>> {
        Some(Box::new(MarkerLedger {
            destination: self.settings.destination.clone(),
            sink_id: naming::sink_id(job_name, operator_uid),
        }))
    }

    fn begin_transaction(&mut self) -> Result<PostgresTransaction, UserError> {
        let identity = self.identity()?;
        Ok(PostgresTransaction {
            sink: identity.sink_id,
            subtask: identity.subtask,
            checkpoint: 0,
            lineage: identity.lineage,
            job: identity.job,
            name: None,
            rows: Vec::new(),
        })
    }

    fn write(
        &mut self,
        _transaction: &mut PostgresTransaction,
        record: T,
    ) -> Result<(), UserError> {
        self.instance.rows.push((self.settings.to_row)(record));
        if self.instance.rows.len() >= self.settings.batch_rows && self.may_send()? {
            self.send_rows()?;
        }
        Ok(())
    }

    fn pre_commit(
        &mut self,
        transaction: &mut PostgresTransaction,
        checkpoint_id: u64,
    ) -> Result<(), UserError> {
        transaction.checkpoint = checkpoint_id;
        // Rows already sent were sent when nothing was waiting (see `may_send`).
        if !self.instance.in_transaction && !self.may_send()? {
            return self.defer(transaction);
        }
        self.send_rows()?;
        if !self.instance.in_transaction {
            // No row: nothing to prepare.
            return Ok(());
        }
        self.prepare(transaction)
    }

    fn commit(&mut self, transaction: PostgresTransaction) -> Result<(), UserError> {
        self.instance.unsettled.remove(&transaction.checkpoint);
        self.instance.committed_up_to = self.instance.committed_up_to.max(transaction.checkpoint);
        if transaction.name.is_none() && transaction.rows.is_empty() {
            return Ok(());
        }
        tracing::debug!(checkpoint = transaction.checkpoint, name = ?transaction.name, "committing");
        let deferred = transaction.name.is_none();
        let task = self.committer()?.commit(transaction.target())?;
        self.instance.commits.push(PendingCommit { deferred, task });
        self.reap_commits(false)
    }

    fn abort(&mut self, transaction: PostgresTransaction) -> Result<(), UserError> {
        self.instance.unsettled.remove(&transaction.checkpoint);
        let Some(name) = transaction.name else {
            return Ok(());
        };
        let client = self.connect()?;
        let server = self.server();
        run(async move { roll_back_prepared(&client, &name, &server).await })?
    }
}

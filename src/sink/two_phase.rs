//! Exactly-once sinks by two-phase commit (as Flink's `TwoPhaseCommitSinkFunction`).
//!
//! Records go into a *transaction*. At a checkpoint's barrier the transaction
//! is *pre-committed* (made durable but not visible), its handle goes into the
//! checkpoint, and a new transaction begins. When the checkpoint completes, the
//! pre-committed transactions are *committed* (made visible). On restore, the
//! transactions pre-committed in the restored checkpoint are committed (the
//! checkpoint is complete, so they belong to the output) and the transaction
//! that was open is aborted (its records are replayed). Commits must be
//! idempotent: after a failure between pre-commit and commit, a transaction
//! may be committed twice.
//!
//! A sink that keeps a [`CommitLedger`] (the built-in file sink does) refuses
//! to rewind: before the job starts it compares the ledger with what the job
//! restores, and refuses a restore behind its commits or into output of
//! another lineage ([`check_rewind`]); before committing, it records the
//! checkpoint in the ledger. After its first commit in a run, it asks the
//! sink to remove what transactions of earlier runs left behind
//! ([`TwoPhaseCommitSink::remove_orphans`]).

use crate::lifecycle::{forward_lifecycle, Lifecycle};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_actors::error::Permanent;
use weir_actors::UserError;

use super::ledger::{check_rewind, CommitLedger, LedgerEntry};
use super::{Hold, PreflightContext, Sink};
use crate::state::{ListStateDescriptor, StateData, StateInitContext, StateSnapshotContext};

/// A sink with transactions. Implement this; run it with [`TwoPhaseCommit`].
pub trait TwoPhaseCommitSink<T>: Lifecycle + Clone + Send + 'static {
    /// A transaction's handle: what the checkpoint stores to commit or abort it later.
    type Transaction: StateData;
    /// Called once for the whole sink before the job starts (see
    /// [`Sink::preflight`]): create and probe the output, lock it.
    fn preflight(&self, _ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        Ok(Vec::new())
    }

    /// Where this sink records what it committed, next to its output, as
    /// operator `operator_uid` of job `job_name`; `None` (the default): it
    /// cannot refuse a restore that would commit again.
    fn ledger(&self, _job_name: &str, _operator_uid: &str) -> Option<Box<dyn CommitLedger>> {
        None
    }

    /// Removes what transactions of earlier runs of this subtask left behind
    /// (files of transactions that were neither committed nor aborted), keeping
    /// `keep`, the transactions this instance holds. Called after the first
    /// commit of a run, when every restored transaction is settled.
    fn remove_orphans(&mut self, _keep: &[&Self::Transaction]) -> Result<(), UserError> {
        Ok(())
    }

    /// Starts a transaction.
    fn begin_transaction(&mut self) -> Result<Self::Transaction, UserError>;
    /// Writes a record into the open transaction.
    fn write(&mut self, transaction: &mut Self::Transaction, record: T) -> Result<(), UserError>;
    /// Makes the transaction durable (not yet visible): after this, `commit`
    /// must succeed. `checkpoint_id` is the checkpoint whose barrier
    /// pre-commits it (0: the end of input of a job without checkpoints), for
    /// sinks that name their transactions after it.
    fn pre_commit(
        &mut self,
        transaction: &mut Self::Transaction,
        checkpoint_id: u64,
    ) -> Result<(), UserError>;
    /// Makes the transaction visible. Idempotent: committing it again does nothing.
    fn commit(&mut self, transaction: Self::Transaction) -> Result<(), UserError>;
    /// Throws the transaction away.
    fn abort(&mut self, transaction: Self::Transaction) -> Result<(), UserError>;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending<X> {
    checkpoint: u64,
    transaction: X,
}

/// Runs a [`TwoPhaseCommitSink`] as a [`Sink`]: pre-commit at every
/// checkpoint, commit on its completion, commit-or-abort on restore.
///
/// Without checkpointing the open transaction is pre-committed and committed
/// when the input ends.
pub struct TwoPhaseCommit<S: TwoPhaseCommitSink<T>, T> {
    sink: S,
    current: Option<S::Transaction>,
    pending: BTreeMap<u64, S::Transaction>,
    checkpointing: bool,
    /// All input has been written: the final checkpoint opens no next transaction.
    input_ended: bool,
    ledger: Option<Box<dyn CommitLedger>>,
    /// (lineage, job, subtask) of this instance, for its ledger entries.
    identity: Option<(String, String, usize)>,
    /// Whether the leftovers of earlier runs were removed.
    orphans_removed: bool,
    _records: std::marker::PhantomData<fn(T)>,
}

impl<S: TwoPhaseCommitSink<T>, T> Clone for TwoPhaseCommit<S, T> {
    /// A fresh instance around a copy of the sink (no transaction).
    fn clone(&self) -> Self {
        TwoPhaseCommit::new(self.sink.clone())
    }
}

fn state<X>() -> ListStateDescriptor<Pending<X>> {
    ListStateDescriptor::new("two-phase-commit-pending")
}

fn open_state<X>() -> ListStateDescriptor<X> {
    ListStateDescriptor::new("two-phase-commit-open")
}

impl<S: TwoPhaseCommitSink<T>, T> TwoPhaseCommit<S, T> {
    /// Wraps `sink`.
    pub fn new(sink: S) -> Self {
        TwoPhaseCommit {
            sink,
            current: None,
            pending: BTreeMap::new(),
            checkpointing: false,
            input_ended: false,
            ledger: None,
            identity: None,
            orphans_removed: false,
            _records: std::marker::PhantomData,
        }
    }

    /// Records in the ledger that this subtask committed up to `checkpoint`
    /// (before the commits themselves).
    fn record(&mut self, checkpoint: u64) -> Result<(), UserError> {
        if let (Some(ledger), Some((lineage, job, subtask))) = (&self.ledger, &self.identity) {
            ledger.record(&LedgerEntry {
                lineage: lineage.clone(),
                job: job.clone(),
                subtask: *subtask,
                checkpoint,
            })?;
        }
        Ok(())
    }

    /// After a commit: the first one of a run removes what earlier runs left.
    fn committed(&mut self) -> Result<(), UserError> {
        if self.orphans_removed {
            return Ok(());
        }
        self.orphans_removed = true;
        let keep: Vec<&S::Transaction> = self.current.iter().chain(self.pending.values()).collect();
        self.sink.remove_orphans(&keep)
    }
}

impl<S, T> TwoPhaseCommit<S, T>
where
    S: TwoPhaseCommitSink<T>,
    T: Send + 'static,
{
    /// Commits what the restored checkpoint pre-committed, aborts what was open.
    fn restore_transactions(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        let runtime = ctx.runtime();
        self.checkpointing = runtime.checkpointing();
        self.ledger = self.sink.ledger(runtime.job_name(), runtime.uid());
        self.identity = Some((
            runtime.lineage().to_string(),
            runtime.job_name().to_string(),
            runtime.subtask_index(),
        ));
        let restored_from = runtime.restored_checkpoint_id();
        if !ctx.is_restored() {
            return Ok(());
        }
        // Checked before the job started; checked again for every restore of
        // the run (a restart must never commit behind the ledger either).
        if let (Some(ledger), Some((lineage, _, _))) = (&self.ledger, &self.identity) {
            let entries: Vec<LedgerEntry> = ledger
                .entries()?
                .into_iter()
                .filter(|e| e.lineage == *lineage)
                .collect();
            check_rewind(&entries, lineage, restored_from, &ledger.location())
                .map_err(|refused| Permanent(Box::new(refused)))?;
        }
        // Pre-committed in a complete checkpoint: they belong to the output.
        let pending = ctx
            .operator_state()
            .list(&state::<S::Transaction>())?
            .get()?;
        if let Some(last) = pending.iter().map(|p| p.checkpoint).max() {
            self.record(restored_from.unwrap_or(last).max(last))?;
        }
        for pending in pending {
            self.sink.commit(pending.transaction)?;
        }
        // Open at the checkpoint: their records will be replayed.
        for open in ctx
            .operator_state()
            .list(&open_state::<S::Transaction>())?
            .get()?
        {
            self.sink.abort(open)?;
        }
        Ok(())
    }

    /// Pre-commits the open transaction at the barrier and opens the next.
    fn pre_commit_at(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        let mut transaction = match self.current.take() {
            Some(transaction) => transaction,
            None => self.sink.begin_transaction()?,
        };
        self.sink
            .pre_commit(&mut transaction, ctx.checkpoint_id())?;
        self.pending.insert(ctx.checkpoint_id(), transaction);
        // After the end of input nothing more is written, so the final
        // checkpoint leaves no empty transaction open behind it.
        let next = if self.input_ended {
            None
        } else {
            Some(self.sink.begin_transaction()?)
        };
        let pending: Vec<Pending<S::Transaction>> = self
            .pending
            .iter()
            .map(|(&checkpoint, transaction)| Pending {
                checkpoint,
                transaction: transaction.clone(),
            })
            .collect();
        ctx.operator_state()
            .list(&state::<S::Transaction>())?
            .update(&pending)?;
        ctx.operator_state()
            .list(&open_state::<S::Transaction>())?
            .update(next.as_slice())?;
        self.current = next;
        Ok(())
    }

    /// Commits every transaction pre-committed up to `checkpoint_id`.
    fn commit_up_to(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        // A transaction of an aborted checkpoint stays pending and is committed
        // with the next complete one (whose state still lists it).
        let done: Vec<u64> = self
            .pending
            .range(..=checkpoint_id)
            .map(|(&id, _)| id)
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        self.record(checkpoint_id)?;
        for id in done {
            if let Some(transaction) = self.pending.remove(&id) {
                self.sink.commit(transaction)?;
            }
        }
        self.committed()
    }

    /// The input ended: without checkpoints, commit what is left now.
    fn end_transactions(&mut self) -> Result<(), UserError> {
        self.input_ended = true;
        if self.checkpointing {
            // The final checkpoint pre-commits and commits what is left.
            return Ok(());
        }
        if let Some(mut transaction) = self.current.take() {
            self.sink.pre_commit(&mut transaction, 0)?;
            self.record(0)?;
            self.sink.commit(transaction)?;
            self.committed()?;
        }
        Ok(())
    }
}

impl<S, T> Lifecycle for TwoPhaseCommit<S, T>
where
    S: TwoPhaseCommitSink<T>,
    T: Send + 'static,
{
    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.restore_transactions(ctx)?;
        self.sink.initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.pre_commit_at(ctx)?;
        self.sink.snapshot_state(ctx)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.commit_up_to(checkpoint_id)?;
        self.sink.notify_checkpoint_complete(checkpoint_id)
    }

    /// The aborted checkpoint's transaction stays pending: the next complete
    /// checkpoint still lists it, and commits it.
    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.sink.notify_checkpoint_aborted(checkpoint_id)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.end_transactions()?;
        self.sink.finish()
    }

    forward_lifecycle!(sink: open, close);
}

impl<S, T> Sink<T> for TwoPhaseCommit<S, T>
where
    S: TwoPhaseCommitSink<T>,
    T: Send + 'static,
{
    fn preflight(&self, ctx: &PreflightContext) -> Result<Vec<Hold>, UserError> {
        let holds = self.sink.preflight(ctx)?;
        let Some(ledger) = self.sink.ledger(&ctx.job_name, &ctx.operator_uid) else {
            return Ok(holds);
        };
        let entries = ledger.entries()?;
        if let Err(refused) = check_rewind(
            &entries,
            &ctx.lineage,
            ctx.restored_checkpoint,
            &ledger.location(),
        ) {
            if !ctx.allow_sink_rewind {
                return Err(Permanent(Box::new(refused)).into());
            }
            tracing::warn!(job = %ctx.job_name, "{refused} -- sink.allow_rewind is set: going on, the output will hold duplicates");
            ledger.reset()?;
        }
        Ok(holds)
    }

    fn write(&mut self, record: T) -> Result<(), UserError> {
        if self.current.is_none() {
            self.current = Some(self.sink.begin_transaction()?);
        }
        let Some(transaction) = self.current.as_mut() else {
            return Err("no open transaction".into());
        };
        self.sink.write(transaction, record)
    }
}

//! The window operator: the one keyed operator every window engine runs in.
//!
//! It owns what all engines do alike: the keyed state store and timers
//! ([`KeyedCore`]), the key selector, the lifecycle (the window function's
//! hooks after the store's), the checks at open (the window definition's
//! settings, and a restore whose windows another engine kept), and the
//! operator calls (records, watermarks, processing time, metrics, queries).
//! An engine ([`WindowEngine`]) says only what is its own: what an element
//! and a timer do to its windows, the keyed state it keeps them in, and
//! its window function. The engines: the general one
//! ([`super::general`]: any assigner, trigger, evictor and function), the
//! slice engine ([`super::slicing`]) and the session engine
//! ([`super::sessions`]).

use std::marker::PhantomData;

use weir_actors::error::Permanent;
use weir_actors::{RecordBatch, UserError};

use crate::context::RuntimeContext;
use crate::lifecycle::Lifecycle;
use crate::operator::{Collector, OneInputOperator};
use crate::ops::keyed_core::KeyedCore;
use crate::ops::keyed_process::{KeySelector, KeyedContext};
use crate::state::schema::StateDeclarations;
use crate::state::timers::TimeDomain;
use crate::state::{BackendCell, Key, StateInitContext, StateSnapshotContext};

use super::general::WINDOW_STATE;
use super::late::LateData;
use super::sessions::WINDOW_SESSIONS;
use super::slicing::WINDOW_SLICES;

/// A way of keeping and firing windows, run by [`WindowOperator`].
///
/// `Clone` makes a fresh engine: the same definition, nothing of a run.
pub(crate) trait WindowEngine<K, T, Out>: Clone + Send + 'static {
    /// The keyed state the engine keeps its windows in.
    const STATE: &'static str;

    /// The window definition's verdict on its settings (`Err`: what is
    /// wrong), checked when the operator opens.
    fn settings(&self) -> Result<(), String>;

    /// The allowed lateness and the late records' side output and counters.
    fn late(&self) -> &LateData<T>;

    /// The window function, whose lifecycle hooks the operator's call.
    fn function(&mut self) -> &mut dyn Lifecycle;

    /// Declares the keyed state the engine keeps its windows in and the
    /// states its function declares (the job's plan: a restore checks
    /// their schemas before the job starts).
    fn declare_states(&self, states: &mut StateDeclarations);

    /// Puts an element of the current key into its windows.
    fn on_element(
        &mut self,
        value: T,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;

    /// A timer of the current key, of `domain`, fired at `time`.
    fn on_timer(
        &mut self,
        time: i64,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError>;
}

/// The window operator (see the module documentation).
pub(crate) struct WindowOperator<K, T, Out, E> {
    engine: E,
    key: KeySelector<T, K>,
    core: KeyedCore<K>,
    _types: PhantomData<fn(T) -> Out>,
}

impl<K, T, Out, E: Clone> Clone for WindowOperator<K, T, Out, E> {
    /// A fresh instance: same windows, function and key, no state.
    fn clone(&self) -> Self {
        WindowOperator {
            engine: self.engine.clone(),
            key: self.key.clone(),
            core: self.core.fresh(),
            _types: PhantomData,
        }
    }
}

impl<K: Key, T, Out, E> WindowOperator<K, T, Out, E> {
    /// The operator running `engine` on records keyed by `key`, its state
    /// in `backend`.
    pub(crate) fn new(engine: E, key: KeySelector<T, K>, backend: BackendCell) -> Self {
        WindowOperator {
            engine,
            key,
            core: KeyedCore::with_backend(backend),
            _types: PhantomData,
        }
    }

    /// Migrates the keys of restored window state written under an older
    /// key type (`KeyedStream::migrate_keys_from`).
    pub(crate) fn with_key_migration(
        mut self,
        migration: Option<crate::state::key_migration::KeyMigration<K>>,
    ) -> Self {
        self.core.set_key_migration(migration);
        self
    }
}

impl<K, T, Out, E> Lifecycle for WindowOperator<K, T, Out, E>
where
    K: Key,
    T: crate::Data,
    Out: 'static,
    E: WindowEngine<K, T, Out>,
{
    fn declare_states(&self, states: &mut StateDeclarations) {
        self.engine.declare_states(states);
    }

    fn initialize_state(&mut self, ctx: &mut StateInitContext) -> Result<(), UserError> {
        self.core.initialize(ctx);
        self.engine.function().initialize_state(ctx)
    }

    fn snapshot_state(&mut self, ctx: &mut StateSnapshotContext) -> Result<(), UserError> {
        self.core.snapshot(ctx)?;
        self.engine.function().snapshot_state(ctx)
    }

    fn open(&mut self, ctx: &RuntimeContext) -> Result<(), UserError> {
        let lateness = self.engine.late().allowed_lateness;
        check_settings(ctx, self.engine.settings(), lateness)?;
        self.core.open(ctx)?;
        check_restored_engine(ctx, &self.core.restored_state_names(), E::STATE)?;
        self.engine.function().open(ctx)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.engine
            .function()
            .notify_checkpoint_complete(checkpoint_id)
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<(), UserError> {
        self.engine
            .function()
            .notify_checkpoint_aborted(checkpoint_id)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        self.engine.function().finish()
    }

    fn close(&mut self) -> Result<(), UserError> {
        let closed = self.engine.function().close();
        self.core.close();
        closed
    }
}

impl<K, T, Out, E> OneInputOperator<T, Out> for WindowOperator<K, T, Out, E>
where
    K: Key,
    T: crate::Data,
    Out: Clone + Send + 'static,
    E: WindowEngine<K, T, Out>,
{
    fn process_batch(
        &mut self,
        batch: RecordBatch<T>,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let engine = &mut self.engine;
        self.core
            .for_each_record(batch, &self.key, None, out, |value, ctx, out| {
                engine.on_element(value, ctx, out)
            })
    }

    fn process_watermark(
        &mut self,
        watermark: i64,
        out: &mut Collector<Out>,
    ) -> Result<(), UserError> {
        let engine = &mut self.engine;
        self.core
            .advance_watermark(watermark, None, out, |time, ctx, out| {
                engine.on_timer(time, TimeDomain::EventTime, ctx, out)
            })
    }

    fn next_processing_time(&self) -> Option<i64> {
        self.core.next_processing_time()
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Collector<Out>) -> Result<(), UserError> {
        let engine = &mut self.engine;
        let domain = TimeDomain::ProcessingTime;
        self.core
            .fire_timers(domain, now, None, out, |time, ctx, out| {
                engine.on_timer(time, domain, ctx, out)
            })
    }

    fn state_metrics(&self) -> Vec<crate::StateMetrics> {
        self.core.state_metrics()
    }

    fn query_state(
        &mut self,
        uid: &str,
        name: &str,
        query: &weir_actors::query::StateQuery,
    ) -> Result<weir_actors::query::StateAnswer, weir_actors::QueryError> {
        self.core.query(uid, name, query)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.engine.late().counters()
    }
}

/// Fails the job once (no restart can fix settings) if `settings` (the
/// assigner's and trigger's verdict) or the allowed lateness is wrong.
fn check_settings(
    ctx: &RuntimeContext,
    settings: Result<(), String>,
    allowed_lateness: i64,
) -> Result<(), UserError> {
    let name = ctx.operator_name();
    let refuse = |what: String| -> UserError {
        Permanent::from_message(format!("window operator `{name}`: {what}")).into()
    };
    settings.map_err(refuse)?;
    if allowed_lateness < 0 {
        return Err(refuse("the allowed lateness must not be negative".into()));
    }
    Ok(())
}

/// The keyed state of each way of keeping windows, and what keeps it.
const WINDOW_ENGINES: [(&str, &str); 3] = [
    (
        WINDOW_STATE,
        "the general window engine (a trigger or an evictor given, `process`, or windows that neither slice nor merge)",
    ),
    (
        WINDOW_SLICES,
        "the slice engine (tumbling, sliding or cumulating windows with `reduce`/`aggregate` and the default trigger)",
    ),
    (
        WINDOW_SESSIONS,
        "the session engine (session windows with `reduce`/`aggregate` and the default trigger)",
    ),
];

/// Fails the job once if the operator was restored from a snapshot whose
/// windows another engine kept (state `restored`, the operator now keeping
/// `own`): the open windows cannot move between them, and would be lost
/// without a word (the window definition changed: a trigger or evictor
/// added or removed, another function or assigner).
fn check_restored_engine(
    ctx: &RuntimeContext,
    restored: &[String],
    own: &str,
) -> Result<(), UserError> {
    let describe = |state: &str| {
        WINDOW_ENGINES
            .iter()
            .find(|(name, _)| *name == state)
            .map_or("", |(_, what)| what)
    };
    let Some(other) = restored
        .iter()
        .map(String::as_str)
        .find(|state| *state != own && !describe(state).is_empty())
    else {
        return Ok(());
    };
    Err(Permanent::from_message(format!(
        "window operator `{}` (uid `{}`): the snapshot it restores keeps its windows in `{other}`, \
         {}, but the job now keeps them in `{own}`, {}; the open windows cannot move between \
         the two. Restore with the window definition the snapshot was taken with, or give the \
         operator a new uid to start it without its windows (with --allow-non-restored-state)",
        ctx.operator_name(),
        ctx.uid(),
        describe(other),
        describe(own),
    ))
    .into())
}

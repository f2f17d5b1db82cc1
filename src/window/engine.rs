//! What the window builder ([`super::stream`]) gives a window engine (the
//! slice engine, [`super::slicing`], and the session engine,
//! [`super::sessions`]): the function, the lateness rules, and how the
//! engine's windows are made of time.

use crate::side_output::OutputTag;

/// Everything a window engine is built from; `S` is how its windows are
/// made of time ([`super::Slicing`] or [`super::SessionSpec`]).
pub(crate) struct EngineSpec<T, F, P, S> {
    pub shape: S,
    /// The assigner's verdict on its settings.
    pub settings: Result<(), String>,
    /// The incremental fold (reduce or aggregate).
    pub fold: F,
    /// The process function the fold's result goes to.
    pub function: P,
    pub allowed_lateness: i64,
    pub late_tag: Option<OutputTag<T>>,
}

//! Test kits for weir jobs and operators.
//!
//! - [`OperatorHarness`] drives one operator instance by hand (records,
//!   watermarks, processing time, snapshots and restores) without starting a
//!   job, as Flink's operator test harnesses do. It is how state semantics,
//!   timers and redistribution are tested deterministically.

//! - [`Faults`] places failures on purpose: a panic at the n-th record of a
//!   named operator (optionally one subtask), a failure during the snapshot of
//!   checkpoint n, a failure between pre-commit and commit, a failure during
//!   restore; plans can be drawn from a seed and replayed from it
//!   (`Faults::from_seed`, printed with `Display`). Give it to a job with
//!   [`StreamEnv::set_faults`](crate::StreamEnv::set_faults).
//! - [`with_state_backend`] runs a test body with another state backend: the
//!   keyed operators of its harnesses, and the jobs it builds without a backend
//!   of their own, keep their state there (one suite, every backend).
//! - [`audit_exactly_once`] checks a committed output of running counts for
//!   loss and duplicates ([`audit_no_loss`] for at-least-once, [`audit_no_duplicates`]
//!   for output that stopped part-way).
//!
//! ```
//! use std::sync::Arc;
//! use weir::testing::Faults;
//! let faults = Arc::new(Faults::new());
//! faults.fail_at_record("count", 1_000, None).fail_before_commit(3);
//! assert!(faults.to_string().contains("fail `count` at record 1000"));
//! ```

mod audit;
mod backend;
mod harness;

pub use backend::with_state_backend;
pub(crate) use backend::{test_backend, test_shared_dir};

pub use audit::{audit_exactly_once, audit_no_duplicates, audit_no_loss, CountLine, Expected};
pub use harness::OperatorHarness;
pub use weir_actors::faults::FaultPlan as Faults;

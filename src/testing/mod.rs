//! Test kits for weir jobs and operators.
//!
//! - [`OperatorHarness`] drives one operator instance by hand (records,
//!   watermarks, processing time, snapshots and restores) without starting a
//!   job, as Flink's operator test harnesses do. It is how state semantics,
//!   timers and redistribution are tested deterministically.

mod harness;

pub use harness::OperatorHarness;

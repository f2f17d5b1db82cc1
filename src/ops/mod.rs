//! The built-in transformations, each a thin [`OneInputOperator`](crate::OneInputOperator).

pub mod broadcast_process;
pub mod filter;
pub mod flat_map;
pub(crate) mod keyed_core;
pub mod keyed_process;
pub mod map;
pub mod process;
pub mod rolling;
pub mod two_input;
mod warm_up;

//! The built-in transformations, each a thin [`OneInputOperator`](crate::OneInputOperator).

pub mod filter;
pub mod flat_map;
pub mod keyed_process;
pub mod map;
pub mod process;
pub mod rolling;

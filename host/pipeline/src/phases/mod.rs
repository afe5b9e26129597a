//! The phases of one iteration, in order. Each reads the previous phase's file from the run
//! directory and writes its own.

pub mod dpo;
pub mod eval;
pub mod judge;
pub mod sample;
pub mod select;

//! One module per subcommand group; each exposes its clap type and a `run` function.

pub mod bench;
pub mod data;
pub mod dpo;
pub mod eval;
pub mod experiment;
pub mod model;
pub mod plugins;
pub mod report;
pub mod train;

//! `ponder bench ...`: benchmarks that print figures. One child per area; each child has its own
//! `Args` struct and function here, so adding one is a variant, a struct and a function.

use clap::{Args, Subcommand};

/// The benchmark to run.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Plugin runtime: cold compile, cached load, instantiate, per-call time.
    Plugins(PluginsBenchArgs),
}

/// Arguments of `ponder bench plugins`.
#[derive(Args, Debug)]
pub struct PluginsBenchArgs {
    /// Directory holding the built first-party plugins (`<name>.wasm`).
    #[arg(long, default_value = "target/plugins")]
    pub plugins_dir: std::path::PathBuf,
    /// Number of timed calls per measurement.
    #[arg(long, default_value_t = 1000)]
    pub iterations: u32,
}

/// Runs one benchmark.
pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Plugins(args) => bench_plugins(args),
    }
}

/// `ponder bench plugins`.
fn bench_plugins(_args: PluginsBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("ponder bench plugins: not implemented yet")
}

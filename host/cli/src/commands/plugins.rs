//! `ponder plugins ...`: check the plugins of a manifest, run one plugin on JSONL input without a
//! model, scaffold a new plugin crate.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// A plugin subcommand.
#[derive(Subcommand, Debug)]
pub enum PluginsCommand {
    /// Load every plugin of a manifest; print role, WIT version, limits and grants.
    Check(CheckArgs),
    /// Run one plugin on JSONL input, without any model.
    Run(RunArgs),
    /// Scaffold a new plugin crate from the SDK's templates.
    New(NewArgs),
}

/// Arguments of `ponder plugins check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The run manifest (TOML).
    pub manifest: PathBuf,
}

/// Arguments of `ponder plugins run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The plugin's role: template, judge or selector.
    pub role: String,
    /// The plugin component (`.wasm`).
    #[arg(long)]
    pub plugin: PathBuf,
    /// JSONL input, one call per line.
    #[arg(long)]
    pub input: PathBuf,
    /// The plugin configuration as JSON.
    #[arg(long, default_value = "{}")]
    pub config: String,
}

/// Arguments of `ponder plugins new`.
#[derive(Args, Debug)]
pub struct NewArgs {
    /// The plugin's role: template, judge or selector.
    pub role: String,
    /// The new crate's name (also its directory).
    pub name: String,
}

/// Runs one plugin subcommand.
pub fn run(command: PluginsCommand) -> anyhow::Result<()> {
    match command {
        PluginsCommand::Check(_) | PluginsCommand::Run(_) | PluginsCommand::New(_) => {
            anyhow::bail!("not implemented yet")
        }
    }
}

//! `ponder report RUN_DIR`: rebuilds a run's `report.html` (plots and sample outputs of every
//! iteration so far), the page `ponder train` rebuilds after each phase.

use std::path::PathBuf;

use clap::Args;
use ponder_pipeline::RunDir;

/// Arguments of `ponder report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory (`run.out` of the manifest), finished or in progress.
    pub run_dir: PathBuf,
    /// Write the page here instead of RUN_DIR/report.html.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Runs `ponder report`: writes the page and prints its path.
pub fn run(args: ReportArgs) -> anyhow::Result<()> {
    let run = RunDir::new(&args.run_dir);
    // The error names the run directory or the file concerned.
    let path = ponder_pipeline::report::write(&run, args.out.as_deref())?;
    println!("{}", path.display());
    Ok(())
}

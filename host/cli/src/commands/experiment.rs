//! `ponder experiment EXPERIMENT`: trains every arm of an experiment manifest, then evaluates
//! every iteration of every arm against the baseline (the paper's Table 1 in miniature).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use ponder_manifest::ExperimentManifest;
use ponder_pipeline::experiment::{ExperimentOptions, evaluate_experiment, results_table};
use ponder_plugin_runtime::{LogLevel, StderrLog};

use crate::commands::train::{model_registry, train};

/// Arguments of `ponder experiment`.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// The experiment manifest (TOML): `[experiment]` (out, baseline, seed), `[[arms]]` (name and
    /// run manifest of each arm) and `[eval]` (the held-out evaluation, as in a run manifest).
    /// See examples/table1/experiment.toml.
    pub experiment: PathBuf,
    /// Evaluate only: fail instead of training an arm that is not trained yet.
    #[arg(long)]
    pub no_train: bool,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `ponder experiment`: each arm's run first (resumed where it stopped, skipped when
/// finished), then the evaluations (each model's outputs kept under OUT/outputs/, so a rerun
/// resumes there too), then the table, printed and written to OUT/results.md.
pub fn run(args: ExperimentArgs) -> anyhow::Result<()> {
    let experiment = ExperimentManifest::load(&args.experiment)?;
    let started = std::time::Instant::now();
    if !args.no_train {
        for (index, arm) in experiment.arms.iter().enumerate() {
            eprintln!(
                "experiment: training arm `{}` ({}/{}): {}",
                arm.name,
                index + 1,
                experiment.arms.len(),
                arm.manifest.file.display()
            );
            train(&arm.manifest, None, !args.no_progress)
                .with_context(|| format!("experiment arm `{}`", arm.name))?;
        }
    }
    let granted = experiment
        .eval
        .judge_grants
        .contains(&ponder_manifest::Grant::Models);
    let options = ExperimentOptions {
        progress: !args.no_progress,
        plugin_cache: ponder_plugin_runtime::cache::default_cache_dir(),
        plugin_log: Arc::new(StderrLog {
            min_level: LogLevel::Info,
        }),
        // An LLM judge of the evaluation calls the experiment's `[models]`.
        models: if granted {
            model_registry(&experiment.models, &experiment.file)?
        } else {
            None
        },
    };
    let results = evaluate_experiment(&experiment, &options)?;
    println!("{}", results_table(&results));
    println!(
        "results: {} and {} ({:.0} s)",
        experiment.out.join("results.md").display(),
        experiment.out.join("results.json").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

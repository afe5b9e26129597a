//! `ponder train MANIFEST`: Thought Preference Optimization as the manifest says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use ponder_manifest::{Grant, Manifest, NamedModel};
use ponder_pipeline::{IterationMetrics, RestartPoint, RunSummary, TrainOptions};
use ponder_plugin_runtime::capability::ModelAccess;
use ponder_plugin_runtime::{LogLevel, StderrLog};

use crate::model_access::ModelRegistry;

/// Arguments of `ponder train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The run manifest (TOML): model, data, sampling, DPO and the three plugins. See
    /// examples/smollm2-tpo.toml.
    pub manifest: PathBuf,
    /// Redo the run from here on, removing what this point and everything after it wrote:
    /// `N` (iteration N from sampling), `PHASE` (iteration 1) or `N:PHASE`, with PHASE one of
    /// sample, judge, select, dpo, eval (the last with the manifest's `[eval]` only).
    #[arg(long, value_name = "POINT")]
    pub restart_from: Option<String>,
    /// No progress bars (phase summaries are still printed).
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `ponder train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    let restart_from = args
        .restart_from
        .as_deref()
        .map(str::parse::<RestartPoint>)
        .transpose()?;
    let summary = train(&manifest, restart_from, !args.no_progress)?;
    print_summary(&summary);
    Ok(())
}

/// Trains (or resumes, or finds finished) the run of `manifest`, as `ponder train` does.
pub fn train(
    manifest: &Manifest,
    restart_from: Option<RestartPoint>,
    progress: bool,
) -> anyhow::Result<RunSummary> {
    let options = TrainOptions {
        restart_from,
        progress,
        plugin_cache: ponder_plugin_runtime::cache::default_cache_dir(),
        plugin_log: Arc::new(StderrLog {
            min_level: LogLevel::Info,
        }),
        models: granted_models(manifest)?,
    };
    Ok(ponder_pipeline::train(manifest, &options)?)
}

/// The manifest's `[models]`, loaded when a plugin (or the `[eval]` judge) is granted `models`.
pub fn granted_models(manifest: &Manifest) -> anyhow::Result<Option<Arc<dyn ModelAccess>>> {
    let granted = manifest
        .plugins
        .iter()
        .any(|spec| spec.is_granted(Grant::Models))
        || manifest
            .eval
            .as_ref()
            .is_some_and(|eval| eval.judge_grants.contains(&Grant::Models));
    if !granted {
        return Ok(None);
    }
    model_registry(&manifest.models, &manifest.file)
}

/// `models` (a manifest's `[models]`, `file` naming it in errors) loaded for the `models`
/// capability; `None` when there are none.
pub fn model_registry(
    models: &BTreeMap<String, NamedModel>,
    file: &Path,
) -> anyhow::Result<Option<Arc<dyn ModelAccess>>> {
    if models.is_empty() {
        return Ok(None);
    }
    let mut registry = ModelRegistry::new();
    for (name, model) in models {
        registry
            .add_named(name, model)
            .with_context(|| format!("{}: models.{name}", file.display()))?;
    }
    Ok(Some(Arc::new(registry)))
}

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

/// The per-iteration table and where everything is.
pub fn print_summary(summary: &RunSummary) {
    println!(
        "{:>4}  {:>12}  {:>14}  {:>14}  {:>5}  {:>9}  {:>10}  {:>8}",
        "iter",
        "parse fails",
        "score chosen",
        "score rejected",
        "pairs",
        "dpo loss",
        "margin",
        "seconds"
    );
    let with_eval = summary.iterations.iter().any(|m| {
        m.eval_win_rate_percent.is_some()
            || m.eval_ifeval_strict.is_some()
            || m.eval_seed_ifeval_strict.is_some()
    });
    for m in &summary.iterations {
        print_row(m);
    }
    if with_eval {
        println!(
            "\n{:>4}  {:>14}  {:>15}  {:>14}",
            "iter", "win % vs seed", "IFEval P-strict", "seed P-strict"
        );
        for m in &summary.iterations {
            println!(
                "{:>4}  {:>14}  {:>15}  {:>14}",
                m.iteration,
                number(m.eval_win_rate_percent, 1),
                number(m.eval_ifeval_strict, 3),
                number(m.eval_seed_ifeval_strict, 3),
            );
        }
    }
    println!("run directory: {}", summary.run_dir.display());
    println!("final model:   {}", summary.final_model.display());
}

fn print_row(m: &IterationMetrics) {
    println!(
        "{:>4}  {:>6}/{:<5}  {:>14}  {:>14}  {:>5}  {:>9}  {:>10}  {:>8}",
        m.iteration,
        m.parse_failures,
        m.samples,
        number(m.score_chosen, 3),
        number(m.score_rejected, 3),
        m.pairs,
        number(m.dpo_loss, 4),
        number(m.reward_margin, 4),
        number(m.seconds.get("total").copied(), 0),
    );
}

/// Arguments of `ponder bench iteration`.
#[derive(Args, Debug)]
pub struct BenchIterationArgs {
    /// The manifest whose model, data and plugins the iteration uses (its run directory, number
    /// of iterations and validation are replaced).
    #[arg(long, default_value = "examples/smollm2-tpo.toml")]
    pub manifest: PathBuf,
    /// Instructions of the iteration.
    #[arg(long, default_value_t = 64)]
    pub instructions: u32,
    /// Samples per instruction (K).
    #[arg(short = 'k', long, default_value_t = 8)]
    pub samples: u32,
    /// Most new tokens per sample.
    #[arg(long, default_value_t = 384)]
    pub max_new_tokens: u32,
    /// DPO epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: u32,
    /// Run directory (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `ponder bench iteration`: one TPO iteration of the manifest's model, each phase's time.
pub fn bench_iteration(args: BenchIterationArgs) -> anyhow::Result<()> {
    let mut manifest = Manifest::load(&args.manifest)?;
    let scratch = tempfile::tempdir()?;
    manifest.run.out = args
        .out
        .clone()
        .unwrap_or_else(|| scratch.path().join("run"));
    manifest.run.iterations = 1;
    let data = manifest
        .data
        .as_mut()
        .with_context(|| format!("{} has no [data]", args.manifest.display()))?;
    data.per_iteration = args.instructions;
    data.validation = None;
    // The bench times the TPO phases; an `[eval]` is not one of them.
    manifest.eval = None;
    manifest.sample.k = args.samples;
    manifest.sample.max_new_tokens = args.max_new_tokens;
    // A thought may take at most half of a shorter budget, so the response keeps room.
    manifest.sample.thought_budget = manifest.sample.thought_budget.min(args.max_new_tokens / 2);
    manifest.dpo.epochs = args.epochs;
    let options = TrainOptions {
        restart_from: None,
        progress: true,
        plugin_cache: ponder_plugin_runtime::cache::default_cache_dir(),
        plugin_log: Arc::new(StderrLog {
            min_level: LogLevel::Warn,
        }),
        models: granted_models(&manifest)?,
    };
    println!(
        "bench iteration: {} instructions x k={}, up to {} new tokens, {} DPO epoch(s), model {}",
        args.instructions,
        args.samples,
        args.max_new_tokens,
        args.epochs,
        manifest
            .model
            .as_ref()
            .map_or("-".into(), |m| m.path.display().to_string())
    );
    let summary = ponder_pipeline::train(&manifest, &options)?;
    let record = summary
        .iterations
        .first()
        .context("the iteration left no metrics")?;
    let samples = std::fs::read_to_string(summary.run_dir.join("iter-1/samples.jsonl"))?;
    let tokens: u64 = samples
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .flat_map(|row| {
            row["outputs"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|output| output["tokens"].as_u64())
        })
        .sum();
    let seconds = |phase: &str| record.seconds.get(phase).copied().unwrap_or(0.0);
    let total = seconds("total");
    for phase in ["sample", "judge", "select", "dpo"] {
        println!(
            "  {phase:<8} {:>8.1} s  {:>5.1}%",
            seconds(phase),
            100.0 * seconds(phase) / total.max(1e-9)
        );
    }
    println!(
        "  total    {total:>8.1} s ({:.1} min); sampling {tokens} tokens at {:.1} tokens/s; \
         plugins, JSON and files {:.2} s = {:.2}%; {} pairs, {} parse failures of {}",
        total / 60.0,
        tokens as f64 / seconds("sample").max(1e-9),
        seconds("host"),
        100.0 * seconds("host") / total.max(1e-9),
        record.pairs,
        record.parse_failures,
        record.samples
    );
    Ok(())
}

//! `ponder eval`: model A against model B on held-out instructions (win rate, AlpacaEval 2's
//! length-controlled win rate, bootstrap intervals), IFEval's accuracies on the verifiable ones;
//! a table on stdout and the whole result as JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use ponder_eval::{IfevalAccuracies, Interval, MeanLengths};
use ponder_manifest::{Grant, NamedModel, PluginSpec, Role, SampleSection};
use ponder_pipeline::eval::{
    EvalEngine, EvalJudge, EvalModel, EvalOptions, EvalPlan, EvalReport, JudgeKind,
};
use ponder_plugin_runtime::{LogLevel, StderrLog};

use crate::commands::plugins::{named_models, parse_named_model};

/// Where `scripts/build-plugins.sh` puts the constraints judge: the default IFEval checker.
const DEFAULT_CONSTRAINTS_JUDGE: &str = "target/plugins/judge-constraints.wasm";

/// How the comparison judge scores (`--judge-kind`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum JudgeKindArg {
    /// Scores each response alone; one call holds A's and B's response, the higher wins.
    Pointwise,
    /// Scores responses against each other; called with A first and with B first, the two
    /// verdicts make one preference (contradictory verdicts count one half).
    Pairwise,
}

/// Arguments of `ponder eval`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ponder eval --a runs/quick-tpo/iter-2/model --a-template target/plugins/thought-generic.wasm \\
      --b models/smollm2-135m-instruct-q4_1.gguf --b-template target/plugins/thought-direct.wasm \\
      --judge target/plugins/judge-constraints.wasm --data data/verifiable/eval.jsonl --limit 50
  ponder eval --a MODEL --a-template T.wasm --data data/verifiable/eval.jsonl   (IFEval of A only)

A parse failure (an output the template cannot split) is sampled again with a new seed up to
--parse-retries times (not under greedy decoding, which would repeat it); what still fails loses
to a parsed response without a judge call (two failures tie) and fails every IFEval constraint.
IFEval runs on the instructions whose metadata lists `instruction_id_list`, each constraint
judged alone by --constraints-judge, strictly and on IFEval's loose variants.")]
pub struct EvalArgs {
    /// Model A, the one evaluated: a Hugging Face directory or a .gguf file.
    #[arg(long = "a", value_name = "MODEL")]
    pub model_a: PathBuf,
    /// A's template plugin (.wasm): a thought prompt (thought-generic, ...) or thought-direct.
    #[arg(long = "a-template", value_name = "PLUGIN")]
    pub template_a: PathBuf,
    /// Model B, the baseline A is compared with (without it: IFEval of A only).
    #[arg(long = "b", value_name = "MODEL")]
    pub model_b: Option<PathBuf>,
    /// B's template plugin (default: A's).
    #[arg(long = "b-template", value_name = "PLUGIN")]
    pub template_b: Option<PathBuf>,
    /// Generate A's outputs on this served model of --models-from (serving model A; A's file
    /// still gives the tokenizer and chat template of the prompts, sent as token ids).
    #[arg(long = "a-engine", value_name = "NAME", requires = "models_from")]
    pub engine_a: Option<String>,
    /// Generate B's outputs on this served model of --models-from.
    #[arg(long = "b-engine", value_name = "NAME", requires = "models_from")]
    pub engine_b: Option<String>,
    /// A manifest (or any TOML file) whose `[models]` tables name the engines of --a-engine and
    /// --b-engine.
    #[arg(long, value_name = "FILE")]
    pub models_from: Option<PathBuf>,
    /// The judge plugin of the comparison (.wasm); needed with --b.
    #[arg(long, value_name = "PLUGIN")]
    pub judge: Option<PathBuf>,
    /// The judge's configuration, a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub judge_config: String,
    /// How the judge scores: pointwise (judge-constraints, judge-llm-pointwise) or pairwise
    /// (judge-llm-pairwise); a judge plugin does not say which it is.
    #[arg(long, value_enum, default_value = "pointwise")]
    pub judge_kind: JudgeKindArg,
    /// A model the judge may call, as NAME=PATH (its config's `model` names it); grants the
    /// judge `models`. Repeatable.
    #[arg(long = "judge-model", value_name = "NAME=PATH", value_parser = parse_named_model)]
    pub judge_models: Vec<(String, PathBuf)>,
    /// The IFEval constraint checker (default: target/plugins/judge-constraints.wasm when it
    /// exists).
    #[arg(long, value_name = "PLUGIN")]
    pub constraints_judge: Option<PathBuf>,
    /// Skip IFEval even where instructions list constraints.
    #[arg(long, conflicts_with = "constraints_judge")]
    pub no_ifeval: bool,
    /// The held-out instructions (JSONL or Parquet, as `ponder data check` reads them).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Evaluate the first N instructions only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Sampling temperature; 0 (the default) is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus threshold in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// The seed of the outputs (the same for A and B), the plugins and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most new tokens per output.
    #[arg(long, default_value_t = 384)]
    pub max_new_tokens: u32,
    /// Start each output with its template's thought header (as `sample.prefill`).
    #[arg(long)]
    pub prefill: bool,
    /// Force the template's response separator after this many thought tokens (as
    /// `sample.thought_budget`); 0: never.
    #[arg(long, default_value_t = 0)]
    pub thought_budget: u32,
    /// Instructions sampled together in one batch.
    #[arg(long, default_value_t = 8)]
    pub batch_prompts: u32,
    /// How many times an output that does not parse is sampled again (temperature > 0 only).
    #[arg(long, default_value_t = 2)]
    pub parse_retries: u32,
    /// Bootstrap resamples of the 95% intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Device of the models: cpu, wgpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where the JSON result goes.
    #[arg(long, value_name = "FILE", default_value = "eval.json")]
    pub out: PathBuf,
    /// Keep each model's outputs in DIR, and reuse them when the same model files, template,
    /// settings, seed and instructions are evaluated again (e.g. one baseline against many
    /// models).
    #[arg(long, value_name = "DIR")]
    pub keep_outputs: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

/// Runs `ponder eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let served = match &args.models_from {
        Some(file) => ponder_manifest::load_models(file)?,
        None => Default::default(),
    };
    let engine = |flag: &str, name: &Option<String>| -> anyhow::Result<Option<EvalEngine>> {
        let Some(name) = name else { return Ok(None) };
        match served.get(name) {
            Some(NamedModel::Served(config)) => Ok(Some(EvalEngine {
                name: name.clone(),
                served: config.clone(),
            })),
            Some(NamedModel::Local(_)) => {
                bail!(
                    "{flag} {name}: `[models.{name}]` is a local model; an engine is served (`url`)"
                )
            }
            None => bail!("{flag} {name}: --models-from has no `[models.{name}]` table"),
        }
    };
    let (engine_a, engine_b) = (
        engine("--a-engine", &args.engine_a)?,
        engine("--b-engine", &args.engine_b)?,
    );
    if engine_b.is_some() && args.model_b.is_none() {
        bail!("--b-engine generates B's outputs: name B with --b");
    }
    let model = |flag: &str, path: &Path, template: &Path, engine: Option<EvalEngine>| EvalModel {
        flag: flag.to_string(),
        path: path.to_path_buf(),
        device: args.device.clone(),
        template: PluginSpec::wasm(Role::Template, template),
        engine,
    };
    let b = args.model_b.as_ref().map(|path| {
        let template = args.template_b.as_ref().unwrap_or(&args.template_a);
        model("--b", path, template, engine_b.clone())
    });
    if b.is_none() && (args.template_b.is_some() || args.judge.is_some()) {
        bail!("--b-template and --judge compare A with B: name B with --b");
    }
    if b.is_some() && args.judge.is_none() {
        bail!("comparing two models needs a judge plugin: name it with --judge");
    }
    let judge = match &args.judge {
        Some(path) => {
            let config: serde_json::Value = serde_json::from_str(&args.judge_config)
                .context("--judge-config is not valid JSON")?;
            if !config.is_object() {
                bail!("--judge-config must be a JSON object, got {config}");
            }
            let mut spec = PluginSpec::wasm(Role::Judge, path);
            spec.config = config;
            if !args.judge_models.is_empty() {
                spec.grants.push(Grant::Models);
            }
            let kind = match args.judge_kind {
                JudgeKindArg::Pointwise => JudgeKind::Pointwise,
                JudgeKindArg::Pairwise => JudgeKind::Pairwise,
            };
            Some(EvalJudge { spec, kind })
        }
        None => None,
    };
    let constraints_judge = if args.no_ifeval {
        None
    } else {
        match &args.constraints_judge {
            Some(path) => Some(PluginSpec::wasm(Role::Judge, path)),
            None if Path::new(DEFAULT_CONSTRAINTS_JUDGE).is_file() => {
                Some(PluginSpec::wasm(Role::Judge, DEFAULT_CONSTRAINTS_JUDGE))
            }
            None => {
                eprintln!(
                    "eval: no IFEval: {DEFAULT_CONSTRAINTS_JUDGE} is missing (scripts/build-plugins.sh \
                     builds it; --constraints-judge names another)"
                );
                None
            }
        }
    };
    let plan = EvalPlan {
        a: model("--a", &args.model_a, &args.template_a, engine_a),
        b,
        judge,
        constraints_judge,
        data: args.data.clone(),
        limit: args.limit,
        sample: SampleSection {
            k: 1,
            temperature: args.temperature,
            top_p: args.top_p,
            max_new_tokens: args.max_new_tokens,
            prefill: args.prefill,
            thought_budget: args.thought_budget,
            batch_prompts: args.batch_prompts,
            engine: None,
            reload: None,
        },
        seed: args.seed,
        parse_retries: args.parse_retries,
        bootstrap: ponder_eval::BootstrapOptions {
            resamples: args.resamples,
            ..Default::default()
        },
    };
    let options = EvalOptions {
        progress: !args.no_progress,
        plugin_cache: ponder_plugin_runtime::cache::default_cache_dir(),
        plugin_log: Arc::new(StderrLog {
            min_level: LogLevel::Info,
        }),
        models: named_models(&args.judge_models, &args.device)?,
        outputs_dir: args.keep_outputs.clone(),
    };
    let report = ponder_pipeline::eval::evaluate(&plan, &options)?;
    write_json(&args.out, &report)?;
    print_report(&report);
    println!("result: {}", args.out.display());
    Ok(())
}

/// Writes the result atomically (a temporary file beside it, then a rename).
fn write_json(path: &Path, report: &EvalReport) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, text + "\n")
        .with_context(|| format!("writing {}", Path::new(&temporary).display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

fn number(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

fn interval(interval: Option<&Interval>) -> String {
    interval.map_or_else(
        || "[-]".to_string(),
        |i| format!("[{:.1}, {:.1}]", i.lower, i.upper),
    )
}

fn lengths(lengths: Option<&MeanLengths>) -> (String, String) {
    (
        number(lengths.map(|l| l.response_chars), 1),
        number(lengths.and_then(|l| l.thought_chars), 1),
    )
}

/// The four IFEval accuracies, or dashes.
fn accuracies(accuracies: Option<&IfevalAccuracies>) -> String {
    let cell = |pick: fn(&IfevalAccuracies) -> f64| number(accuracies.map(pick), 3);
    format!(
        "{:>8}  {:>8}  {:>8}  {:>8}",
        cell(|a| a.prompt_level_strict),
        cell(|a| a.prompt_level_loose),
        cell(|a| a.instruction_level_strict),
        cell(|a| a.instruction_level_loose)
    )
}

/// The tables: per model, the comparison, per category and per constraint type.
fn print_report(report: &EvalReport) {
    println!(
        "{} instructions from {}; seed {}, temperature {}, top-p {}, {} new tokens at most",
        report.instructions,
        report.data.display(),
        report.seed,
        report.temperature,
        report.top_p,
        report.max_new_tokens
    );
    println!(
        "\n{:<5} {:<20} {:>11} {:>9} {:>9} {:>9}  {:>8}  {:>8}  {:>8}  {:>8}",
        "model",
        "template",
        "parse fails",
        "resampled",
        "response",
        "thought",
        "P-strict",
        "P-loose",
        "I-strict",
        "I-loose"
    );
    for model in &report.models {
        let generation = &model.generation;
        let (response, thought) = lengths(generation.lengths.as_ref());
        println!(
            "{:<5} {:<20} {:>5}/{:<5} {:>9} {:>9} {:>9}  {}",
            model.flag.trim_start_matches('-'),
            model.template,
            generation.parse_failures,
            generation.outputs,
            generation.resampled,
            response,
            thought,
            accuracies(model.ifeval.as_ref().map(|r| &r.accuracies))
        );
    }
    println!(
        "(mean response and thought lengths in characters over parsed outputs; IFEval \
         accuracies prompt- and instruction-level, strict and loose)"
    );

    if let Some(pairwise) = &report.pairwise {
        let overall = &pairwise.win_rate;
        let judge = report.judge.as_ref().map_or_else(String::new, |judge| {
            let name = &judge.name;
            let kind = match judge.kind {
                JudgeKind::Pointwise => "pointwise",
                JudgeKind::Pairwise => "pairwise, both orders",
            };
            format!(" ({name}, {kind})")
        });
        println!(
            "\nwin rate of A over B{judge}: {:.1}% {} ({} wins, {} ties, {} losses)",
            overall.win_rate.win_rate_percent,
            interval(Some(&overall.interval_percent)),
            overall.win_rate.wins,
            overall.win_rate.ties,
            overall.win_rate.losses
        );
        if !report.judge_failures.is_empty() {
            let ids: Vec<&str> = report
                .judge_failures
                .iter()
                .map(|f| f.id.as_str())
                .collect();
            println!(
                "the judge failed on {} instructions, left out of the comparison: {}",
                ids.len(),
                ids.join(", ")
            );
        }
        match &pairwise.length_controlled {
            Some(lc) => println!(
                "length-controlled win rate: {:.1}% {}",
                lc.fit.win_rate_percent,
                interval(lc.interval_percent.as_ref())
            ),
            None => println!(
                "length-controlled win rate: - (needs 5 instructions and differing lengths)"
            ),
        }
        println!(
            "\n{:<24} {:>5} {:>8} {:>14} {:>8} {:>14}",
            "category", "n", "win %", "95%", "LC %", "95%"
        );
        for (category, row) in &pairwise.per_category {
            let lc = row.length_controlled.as_ref();
            println!(
                "{:<24} {:>5} {:>8.1} {:>14} {:>8} {:>14}",
                if category.is_empty() {
                    "(none)"
                } else {
                    category
                },
                row.win_rate.win_rate.instructions,
                row.win_rate.win_rate.win_rate_percent,
                interval(Some(&row.win_rate.interval_percent)),
                number(lc.map(|lc| lc.fit.win_rate_percent), 1),
                interval(lc.and_then(|lc| lc.interval_percent.as_ref()))
            );
        }
    }

    let with_ifeval: Vec<_> = report
        .models
        .iter()
        .filter_map(|model| Some((model.flag.trim_start_matches('-'), model.ifeval.as_ref()?)))
        .collect();
    for (flag, ifeval) in with_ifeval {
        println!(
            "\nIFEval of {flag} per category: {:<22} {:>5}  {:>8}  {:>8}  {:>8}  {:>8}",
            "", "n", "P-strict", "P-loose", "I-strict", "I-loose"
        );
        for (category, accuracy) in &ifeval.per_category {
            println!(
                "  {:<46} {:>5}  {}",
                if category.is_empty() {
                    "(none)"
                } else {
                    category
                },
                accuracy.prompts,
                accuracies(Some(accuracy))
            );
        }
        println!("IFEval of {flag} per constraint type (instruction level):");
        for (constraint, accuracy) in &ifeval.accuracies.per_constraint {
            println!(
                "  {:<46} {:>5}  {:>8.3}  {:>8.3}",
                constraint, accuracy.constraints, accuracy.strict, accuracy.loose
            );
        }
    }
}

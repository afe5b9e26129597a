//! `ponder experiment`: the paper's Table 1 in miniature. Each arm of an experiment manifest is a
//! run (`ponder train`, trained first by the caller); every iteration of every arm is then
//! evaluated on the held-out instructions as `ponder eval` does, against one baseline: the
//! baseline arm's iteration 0, its seed model through its own template (the seed model answering
//! directly, for a direct-response arm). Iteration 0 of a thought arm is the seed model with the
//! thought prompt, untrained. The last iteration of every other arm also meets the baseline
//! arm's last iteration head to head.
//!
//! Each model's outputs are kept under `OUT/outputs/` ([`EvalOptions::outputs_dir`]), so the
//! baseline is generated once (per distinct setting) and an interrupted experiment resumes
//! where it stopped; each comparison is written to `OUT/evals/`, the table to
//! `OUT/results.md` and everything to `OUT/results.json`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use ponder_eval::{
    IfevalReport, Interval, LengthControlledWithInterval, MeanLengths, WinRateWithInterval,
};
use ponder_manifest::{Arm, ExperimentManifest, Role, SampleSection};
use ponder_plugin_runtime::LogSink;
use ponder_plugin_runtime::capability::ModelAccess;
use serde::{Deserialize, Serialize};

use crate::eval::{
    EvalJudge, EvalModel, EvalOptions, EvalPlan, EvalReport, GenerationStats, JudgeInfo, JudgeKind,
    evaluate,
};
use crate::metrics::IterationMetrics;
use crate::phases::eval::{constraints_judge, eval_judge_spec};
use crate::run_dir::write_atomic;
use crate::{Phase, PipelineError, RunDir, metrics, seeds};

/// How `ponder experiment` evaluates, beyond its manifest.
#[derive(Clone)]
pub struct ExperimentOptions {
    /// Draw progress bars on stderr.
    pub progress: bool,
    /// Where compiled plugins are cached (`None`: compile in memory).
    pub plugin_cache: Option<PathBuf>,
    /// Where plugin log records go.
    pub plugin_log: Arc<dyn LogSink>,
    /// The models a judge granted `models` may call.
    pub models: Option<Arc<dyn ModelAccess>>,
}

/// One evaluated model: an arm at one iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRow {
    /// The arm.
    pub arm: String,
    /// The iteration (0: the seed model, untrained, through the arm's template).
    pub iteration: u32,
    /// The model evaluated.
    pub model: PathBuf,
    /// The arm's template plugin.
    pub template: String,
    /// How its outputs came out (parse failures, lengths, tokens).
    pub generation: GenerationStats,
    /// IFEval's accuracies of its outputs.
    pub ifeval: Option<IfevalReport>,
    /// Its win rate against the baseline; `None` for the baseline itself or without a judge.
    pub win_rate: Option<WinRateWithInterval>,
    /// The length-controlled win rate against the baseline, where it could be fitted.
    pub length_controlled: Option<LengthControlledWithInterval>,
    /// The comparison's full result.
    pub eval_file: PathBuf,
    /// The arm's training record of this iteration (`None` for iteration 0).
    pub training: Option<IterationMetrics>,
}

/// The last iteration of an arm against the baseline arm's last iteration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadToHead {
    /// The arm (A).
    pub arm: String,
    /// Its iteration.
    pub iteration: u32,
    /// The baseline arm (B).
    pub against: String,
    /// The baseline arm's iteration.
    pub against_iteration: u32,
    /// A's win rate over B.
    pub win_rate: Option<WinRateWithInterval>,
    /// A's length-controlled win rate over B.
    pub length_controlled: Option<LengthControlledWithInterval>,
    /// Mean lengths of A's outputs.
    pub lengths_a: Option<MeanLengths>,
    /// Mean lengths of B's outputs.
    pub lengths_b: Option<MeanLengths>,
    /// The comparison's full result.
    pub eval_file: PathBuf,
}

/// What `ponder experiment` measured, as `results.json` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentResults {
    /// The experiment manifest.
    pub experiment: PathBuf,
    /// The baseline arm.
    pub baseline: String,
    /// The held-out instructions.
    pub data: PathBuf,
    /// How many were evaluated.
    pub instructions: usize,
    /// The evaluation seed.
    pub seed: u64,
    /// Sampling temperature of the evaluation (0: greedy).
    pub temperature: f32,
    /// Bootstrap resamples of every interval.
    pub resamples: u32,
    /// The win rate's judge.
    pub judge: Option<JudgeInfo>,
    /// Every arm at every iteration, arms in the manifest's order.
    pub rows: Vec<ExperimentRow>,
    /// Each other arm's last iteration against the baseline arm's last.
    pub head_to_head: Vec<HeadToHead>,
}

/// The model of `arm` at `iteration` (0: its seed model) as `ponder eval` takes it.
fn arm_model(arm: &Arm, iteration: u32) -> Result<EvalModel, PipelineError> {
    let manifest = &arm.manifest;
    let missing = |key: &str| PipelineError::Manifest {
        file: manifest.file.clone(),
        key: key.to_string(),
        message: "an experiment arm needs it".into(),
    };
    let model = manifest.model.as_ref().ok_or_else(|| missing("model"))?;
    let template = manifest
        .plugins
        .get(Role::Template)
        .ok_or_else(|| missing("plugins.template"))?;
    let path = if iteration == 0 {
        model.path.clone()
    } else {
        RunDir::new(&manifest.run.out).phase_output(iteration, Phase::Dpo)
    };
    if !path.exists() {
        return Err(PipelineError::Eval {
            input: path.display().to_string(),
            message: format!(
                "arm `{}` has no model of iteration {iteration} yet: train it first \
                 (`ponder train {}`)",
                arm.name,
                manifest.file.display()
            ),
        });
    }
    Ok(EvalModel {
        flag: format!("{}-iter-{iteration}", arm.name),
        path,
        device: model.device.clone(),
        template: template.clone(),
        engine: None,
    })
}

/// The evaluation's sampler settings for `arm`: the `[eval]` table's, with the arm's thought
/// shaping (prefill, thought budget) and, unless `[eval]` sets its own, batching.
fn arm_sample(experiment: &ExperimentManifest, arm: &Arm) -> SampleSection {
    let sample = &arm.manifest.sample;
    SampleSection {
        k: 1,
        temperature: experiment.eval.temperature,
        top_p: experiment.eval.top_p,
        max_new_tokens: experiment
            .eval
            .max_new_tokens
            .unwrap_or(sample.max_new_tokens),
        prefill: sample.prefill,
        thought_budget: sample.thought_budget,
        batch_prompts: experiment
            .eval
            .batch_prompts
            .unwrap_or(sample.batch_prompts),
        // Evaluation generates on the host.
        engine: None,
        reload: None,
    }
}

/// Evaluates every arm at every iteration (the arms must be trained), writes `OUT/evals/*.json`,
/// `OUT/results.json` and `OUT/results.md`, and returns the results.
///
/// # Errors
/// An arm not trained as far as its manifest says, and whatever [`evaluate`] returns; an I/O
/// error on the output directory.
pub fn evaluate_experiment(
    experiment: &ExperimentManifest,
    options: &ExperimentOptions,
) -> Result<ExperimentResults, PipelineError> {
    let eval = &experiment.eval;
    // Every model exists before minutes of generation.
    for arm in &experiment.arms {
        for iteration in 0..=arm.manifest.run.iterations {
            arm_model(arm, iteration)?;
        }
    }
    let baseline_arm = experiment.baseline_arm();
    let baseline = arm_model(baseline_arm, 0)?;
    let judge = eval_judge_spec(eval).map(|spec| EvalJudge {
        spec,
        kind: match eval.judge_kind {
            ponder_manifest::EvalJudgeKind::Pointwise => JudgeKind::Pointwise,
            ponder_manifest::EvalJudgeKind::Pairwise => JudgeKind::Pairwise,
        },
    });
    let eval_options = EvalOptions {
        progress: options.progress,
        plugin_cache: options.plugin_cache.clone(),
        plugin_log: Arc::clone(&options.plugin_log),
        models: options.models.clone(),
        outputs_dir: Some(experiment.out.join("outputs")),
    };
    let evals_dir = experiment.out.join("evals");
    std::fs::create_dir_all(&evals_dir).map_err(|error| PipelineError::Io {
        path: evals_dir.clone(),
        error,
    })?;
    let plan = |arm: &Arm, a: EvalModel, b: Option<EvalModel>| EvalPlan {
        judge: b.as_ref().and(judge.clone()),
        a,
        b,
        constraints_judge: constraints_judge(eval),
        data: eval.data.clone(),
        limit: eval.limit.map(|limit| limit as usize),
        sample: arm_sample(experiment, arm),
        // One seed for every model: a model and the baseline draw the same numbers.
        seed: seeds::derive(experiment.seed, &["experiment"]),
        parse_retries: eval.parse_retries,
        bootstrap: ponder_eval::BootstrapOptions {
            resamples: eval.resamples as usize,
            ..Default::default()
        },
    };
    let run_eval = |plan: &EvalPlan, name: &str| -> Result<(EvalReport, PathBuf), PipelineError> {
        let report = evaluate(plan, &eval_options)?;
        let file = evals_dir.join(format!("{name}.json"));
        write_json(&file, &report)?;
        Ok((report, file))
    };

    let total: u32 = experiment
        .arms
        .iter()
        .map(|arm| arm.manifest.run.iterations + 1)
        .sum();
    let mut done = 0;
    let mut rows = Vec::new();
    let mut instructions = 0;
    let mut judge_info = None;
    for arm in &experiment.arms {
        let training = metrics::read_all(&RunDir::new(&arm.manifest.run.out))?;
        for iteration in 0..=arm.manifest.run.iterations {
            done += 1;
            eprintln!(
                "experiment: model {done}/{total}: arm `{}`, iteration {iteration}",
                arm.name
            );
            let model = arm_model(arm, iteration)?;
            let is_baseline = arm.name == baseline_arm.name && iteration == 0;
            let b = (!is_baseline).then(|| baseline.clone());
            let name = format!("{}-iter-{iteration}", arm.name);
            let (report, eval_file) = run_eval(&plan(arm, model, b), &name)?;
            instructions = report.instructions;
            judge_info = judge_info.or(report.judge.clone());
            let model_report =
                report
                    .models
                    .first()
                    .cloned()
                    .ok_or_else(|| PipelineError::Eval {
                        input: name.clone(),
                        message: "the evaluation reported no model".into(),
                    })?;
            let pairwise = report.pairwise.as_ref();
            rows.push(ExperimentRow {
                arm: arm.name.clone(),
                iteration,
                model: model_report.model,
                template: model_report.template,
                generation: model_report.generation,
                ifeval: model_report.ifeval,
                win_rate: pairwise.map(|p| p.win_rate.clone()),
                length_controlled: pairwise.and_then(|p| p.length_controlled.clone()),
                eval_file,
                training: training
                    .iter()
                    .find(|record| record.iteration == iteration)
                    .cloned(),
            });
        }
    }

    let last = |arm: &Arm| arm.manifest.run.iterations;
    let mut head_to_head = Vec::new();
    if judge.is_some() {
        let against = arm_model(baseline_arm, last(baseline_arm))?;
        for arm in experiment
            .arms
            .iter()
            .filter(|arm| arm.name != baseline_arm.name)
        {
            let name = format!(
                "{}-iter-{}-vs-{}-iter-{}",
                arm.name,
                last(arm),
                baseline_arm.name,
                last(baseline_arm)
            );
            eprintln!("experiment: head to head: {name}");
            let a = arm_model(arm, last(arm))?;
            let (report, eval_file) = run_eval(&plan(arm, a, Some(against.clone())), &name)?;
            let pairwise = report.pairwise.as_ref();
            head_to_head.push(HeadToHead {
                arm: arm.name.clone(),
                iteration: last(arm),
                against: baseline_arm.name.clone(),
                against_iteration: last(baseline_arm),
                win_rate: pairwise.map(|p| p.win_rate.clone()),
                length_controlled: pairwise.and_then(|p| p.length_controlled.clone()),
                lengths_a: pairwise.map(|p| p.lengths_a.clone()),
                lengths_b: pairwise.map(|p| p.lengths_b.clone()),
                eval_file,
            });
        }
    }

    let results = ExperimentResults {
        experiment: experiment.file.clone(),
        baseline: baseline_arm.name.clone(),
        data: eval.data.clone(),
        instructions,
        seed: experiment.seed,
        temperature: eval.temperature,
        resamples: eval.resamples,
        judge: judge_info,
        rows,
        head_to_head,
    };
    write_json(&experiment.out.join("results.json"), &results)?;
    write_atomic(
        &experiment.out.join("results.md"),
        results_table(&results).as_bytes(),
    )?;
    Ok(results)
}

fn write_json<T: Serialize>(file: &std::path::Path, value: &T) -> Result<(), PipelineError> {
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| PipelineError::RunFile {
        path: file.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    text.push(b'\n');
    write_atomic(file, &text)
}

/// `value` with its interval, e.g. `41.0 [31.5, 50.5]`.
fn with_interval(value: f64, interval: Option<&Interval>) -> String {
    match interval {
        Some(interval) => format!("{value:.1} [{:.1}, {:.1}]", interval.lower, interval.upper),
        None => format!("{value:.1}"),
    }
}

fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// The results as Markdown: the main table, the head-to-head comparisons and the arms' training
/// records.
pub fn results_table(results: &ExperimentResults) -> String {
    let mut out = String::new();
    let judge = results.judge.as_ref().map_or_else(
        || "none (IFEval accuracies only)".to_string(),
        |judge| format!("`{}` ({:?})", judge.name, judge.kind).to_lowercase(),
    );
    let decoding = if results.temperature == 0.0 {
        "greedy decoding".to_string()
    } else {
        format!("temperature {}", results.temperature)
    };
    let _ = writeln!(
        out,
        "Evaluated on {} held-out instructions of `{}`, {decoding}, evaluation seed {}. Win rates \
         are against `{}` iteration 0 (the seed model through that arm's template), judge {judge}; \
         intervals are 95% percentile bootstrap intervals over instructions ({} resamples). \
         IFEval accuracies in percent; lengths in characters, over parsed outputs.\n",
        results.instructions,
        results.data.display(),
        results.seed,
        results.baseline,
        results.resamples,
    );
    let _ = writeln!(
        out,
        "| arm | iter | IFEval prompt strict | prompt loose | instr. strict | instr. loose | \
         win % vs seed | LC win % vs seed | thought chars | response chars | parse failures |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &results.rows {
        let ifeval = row.ifeval.as_ref();
        let accuracy = |pick: fn(&IfevalReport) -> f64| {
            ifeval.map_or_else(|| "–".to_string(), |r| format!("{:.1}", 100.0 * pick(r)))
        };
        let intervals = ifeval.and_then(|r| r.prompt_level_intervals_percent);
        let prompt_strict = ifeval.map_or_else(
            || "–".to_string(),
            |r| {
                with_interval(
                    100.0 * r.accuracies.prompt_level_strict,
                    intervals.as_ref().map(|i| &i.strict),
                )
            },
        );
        let win = row.win_rate.as_ref().map_or_else(
            || "(baseline)".to_string(),
            |w| with_interval(w.win_rate.win_rate_percent, Some(&w.interval_percent)),
        );
        let lc = row.length_controlled.as_ref().map_or_else(
            || "–".to_string(),
            |lc| with_interval(lc.fit.win_rate_percent, lc.interval_percent.as_ref()),
        );
        let lengths = row.generation.lengths.as_ref();
        let _ = writeln!(
            out,
            "| {} | {} | {prompt_strict} | {} | {} | {} | {win} | {lc} | {} | {} | {}/{} |",
            row.arm,
            row.iteration,
            accuracy(|r| r.accuracies.prompt_level_loose),
            accuracy(|r| r.accuracies.instruction_level_strict),
            accuracy(|r| r.accuracies.instruction_level_loose),
            optional(lengths.and_then(|l| l.thought_chars), 0),
            optional(lengths.map(|l| l.response_chars), 0),
            row.generation.parse_failures,
            row.generation.outputs,
        );
    }
    if !results.head_to_head.is_empty() {
        let _ = writeln!(
            out,
            "\nHead to head, last iterations (A's win rate over B, same judge and intervals):\n"
        );
        let _ = writeln!(
            out,
            "| A | B | win % | LC win % | A response chars | B response chars |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for duel in &results.head_to_head {
            let win = duel.win_rate.as_ref().map_or_else(
                || "–".to_string(),
                |w| with_interval(w.win_rate.win_rate_percent, Some(&w.interval_percent)),
            );
            let lc = duel.length_controlled.as_ref().map_or_else(
                || "–".to_string(),
                |lc| with_interval(lc.fit.win_rate_percent, lc.interval_percent.as_ref()),
            );
            let _ = writeln!(
                out,
                "| {} iter {} | {} iter {} | {win} | {lc} | {} | {} |",
                duel.arm,
                duel.iteration,
                duel.against,
                duel.against_iteration,
                optional(duel.lengths_a.as_ref().map(|l| l.response_chars), 0),
                optional(duel.lengths_b.as_ref().map(|l| l.response_chars), 0),
            );
        }
    }
    let trained: Vec<&ExperimentRow> = results
        .rows
        .iter()
        .filter(|row| row.training.is_some())
        .collect();
    if !trained.is_empty() {
        let _ = writeln!(
            out,
            "\nTraining, per iteration (the samples of iteration t come from the model of t − 1; \
             scores are the training judge's):\n"
        );
        let _ = writeln!(
            out,
            "| arm | iter | parse failures | score all | score chosen | score rejected | pairs | \
             DPO loss | reward margin | seconds |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in trained {
            let Some(t) = &row.training else { continue };
            let _ = writeln!(
                out,
                "| {} | {} | {}/{} | {} | {} | {} | {} | {} | {} | {:.0} |",
                row.arm,
                row.iteration,
                t.parse_failures,
                t.samples,
                optional(t.score_all, 3),
                optional(t.score_chosen, 3),
                optional(t.score_rejected, 3),
                t.pairs,
                optional(t.dpo_loss, 3),
                optional(t.reward_margin, 3),
                t.seconds.get("total").copied().unwrap_or(0.0),
            );
        }
    }
    out
}

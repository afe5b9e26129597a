//! Phase 5 (only with the manifest's `[eval]`): the iteration's model against the seed model
//! (the manifest's `[model]`), both through the manifest's template plugin, with `ponder eval`'s
//! [`evaluate`](crate::eval::evaluate): the win rate when `eval.judge` names a judge, and IFEval's
//! accuracies of both models on the instructions that list constraints. The result is
//! `iter-N/eval.json`; its seed derives from the run seed and the iteration.

use std::path::PathBuf;

use ponder_manifest::{EvalJudgeKind, EvalSection, PluginSpec, Role, SampleSection};

use crate::eval::{EvalJudge, EvalModel, EvalOptions, EvalPlan, JudgeKind, evaluate};
use crate::metrics::HostTime;
use crate::run_dir::{Phase, write_atomic};
use crate::{PipelineError, RunPlan, seeds};

/// Where `scripts/build-plugins.sh` puts the constraints judge, the IFEval checker used when
/// `eval.constraints_judge` is not set.
pub const DEFAULT_CONSTRAINTS_JUDGE: &str = "target/plugins/judge-constraints.wasm";

/// The plugin of `eval.judge` with its configuration and grants; `None` without a judge.
pub fn eval_judge_spec(eval: &EvalSection) -> Option<PluginSpec> {
    let path = eval.judge.as_ref()?;
    let mut spec = PluginSpec::wasm(Role::Judge, path);
    spec.config = eval.judge_config.clone();
    spec.grants = eval.judge_grants.clone();
    Some(spec)
}

/// The IFEval checker of `eval`: `eval.constraints_judge`, else the default one when it was
/// built (a warning says so when it was not); none with `eval.ifeval = false`.
pub fn constraints_judge(eval: &EvalSection) -> Option<PluginSpec> {
    if !eval.ifeval {
        return None;
    }
    let path = match &eval.constraints_judge {
        Some(path) => path.clone(),
        None => {
            let default = PathBuf::from(DEFAULT_CONSTRAINTS_JUDGE);
            if !default.is_file() {
                eprintln!(
                    "warning: eval: no IFEval accuracies: the default checker \
                     {DEFAULT_CONSTRAINTS_JUDGE} is not built here (scripts/build-plugins.sh \
                     builds it); set eval.constraints_judge, or eval.ifeval = false to skip \
                     IFEval without this warning"
                );
                return None;
            }
            default
        }
    };
    Some(PluginSpec::wasm(Role::Judge, path))
}

/// What `ponder eval` is asked for iteration `iteration` of the run.
///
/// # Errors
/// A manifest without `[eval]` or `[model]`.
pub fn eval_plan(plan: &RunPlan<'_>, iteration: u32) -> Result<EvalPlan, PipelineError> {
    let manifest = plan.manifest;
    let eval = manifest
        .eval
        .as_ref()
        .ok_or_else(|| plan.manifest_error("eval", "the eval phase needs an `[eval]` table"))?;
    let model = manifest
        .model
        .as_ref()
        .ok_or_else(|| plan.manifest_error("model", "the eval phase needs the seed model"))?;
    let evaluated = |flag: &str, path: PathBuf| EvalModel {
        flag: flag.to_string(),
        path,
        device: model.device.clone(),
        template: plan.template.clone(),
        // Evaluation generates on the host (the engine serves the policy being trained).
        engine: None,
    };
    let iteration_model = plan.run.phase_output(iteration, Phase::Dpo);
    let judge = eval_judge_spec(eval).map(|spec| EvalJudge {
        spec,
        kind: match eval.judge_kind {
            EvalJudgeKind::Pointwise => JudgeKind::Pointwise,
            EvalJudgeKind::Pairwise => JudgeKind::Pairwise,
        },
    });
    let constraints_judge = constraints_judge(eval);
    // The seed model is evaluated when there is something to measure it by: the win rate, or
    // its IFEval accuracies beside the iteration model's (without a judge).
    let measured = judge.is_some() || constraints_judge.is_some();
    Ok(EvalPlan {
        a: evaluated(&format!("iter-{iteration}"), iteration_model),
        b: measured.then(|| evaluated("seed", model.path.clone())),
        judge,
        constraints_judge,
        data: eval.data.clone(),
        limit: eval.limit.map(|limit| limit as usize),
        sample: SampleSection {
            k: 1,
            temperature: eval.temperature,
            top_p: eval.top_p,
            max_new_tokens: eval
                .max_new_tokens
                .unwrap_or(manifest.sample.max_new_tokens),
            prefill: manifest.sample.prefill,
            thought_budget: manifest.sample.thought_budget,
            batch_prompts: eval.batch_prompts.unwrap_or(manifest.sample.batch_prompts),
            // Evaluation generates on the host.
            engine: None,
            reload: None,
        },
        seed: seeds::derive(manifest.run.seed, &["eval", &iteration.to_string()]),
        parse_retries: eval.parse_retries,
        bootstrap: ponder_eval::BootstrapOptions {
            resamples: eval.resamples as usize,
            ..Default::default()
        },
    })
}

/// Runs the phase for `iteration`: evaluates and writes `iter-N/eval.json` atomically.
///
/// # Errors
/// What [`evaluate`] returns (unreadable data, a plugin or model failure, a judge failing on
/// every instruction), or an I/O error on the run directory.
pub fn run(plan: &RunPlan<'_>, iteration: u32, host: &mut HostTime) -> Result<(), PipelineError> {
    let eval_plan = eval_plan(plan, iteration)?;
    let options = EvalOptions {
        progress: plan.options.progress,
        plugin_cache: plan.options.plugin_cache.clone(),
        plugin_log: plan.options.plugin_log.clone(),
        models: plan.options.models.clone(),
        outputs_dir: None,
    };
    let report = evaluate(&eval_plan, &options)?;
    let output = plan.run.phase_output(iteration, Phase::Eval);
    host.time(|| {
        let mut text = serde_json::to_vec_pretty(&report).map_err(|e| PipelineError::RunFile {
            path: output.clone(),
            line: 0,
            message: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomic(&output, &text)
    })
}

//! Phase 4: DPO from M_t on the iteration's pairs, reference = M_t (its log-probs computed once
//! and cached in `dpo/`), then the iteration's model M_{t+1}: the epoch with the best mean judge
//! score on the validation instructions when the manifest names them (the paper's rule), else the
//! last epoch. The trainer resumes a killed run from its newest checkpoint.
//!
//! With `[dpo.lora]` one adapter is carried across iterations over the frozen seed model:
//! iteration t trains, from M_t's adapter (none at t = 1), the seed plus that adapter, with M_t
//! (merged) as the reference. Each iteration's model directory holds the merged weights and the
//! adapter (`adapter/`, PEFT), relative to the seed, which is what a served engine loads.

use std::path::Path;

use ponder_checkpoint::{Checkpoint, Weights};
use ponder_contract::Message;
use ponder_manifest::DpoLoss;
use ponder_model::{CausalLm, GenerationRequest, LoraConfig, LoraTarget, generate};
use ponder_plugin_runtime::types::{JudgeRequest, Parsed};
use ponder_trainer::{
    ADAPTER_DIR, AdamWConfig, BatchSizeConfig, DpoConfig, DpoJob, EvalHook, LossConfig, LossKind,
    TrainError, TrainableModel, read_pairs, save_with_adapter, train_dpo,
};
use std::ops::ControlFlow;

use crate::metrics::{HostTime, validation_mean};
use crate::records::ValidationRecord;
use crate::run_dir::{Phase, link_dir, write_jsonl};
use crate::{PipelineError, Policy, RunPlan, seeds};

/// Runs the phase for `iteration`.
///
/// # Errors
/// Unreadable pairs, a training failure (divergence names the step), a validation plugin that
/// cannot be loaded, or an I/O error on the run directory.
pub fn run(
    plan: &RunPlan<'_>,
    iteration: u32,
    policy: &mut Policy,
    host: &mut HostTime,
) -> Result<(), PipelineError> {
    let run = &plan.run;
    let dir = run.iteration(iteration);
    let target = run.phase_output(iteration, Phase::Dpo);
    let pairs_file = run.phase_output(iteration, Phase::Select);
    let empty = host
        .time(|| std::fs::read_to_string(&pairs_file))
        .map_err(|e| PipelineError::io(&pairs_file, e))?
        .trim()
        .is_empty();
    let pairs = if empty {
        Vec::new()
    } else {
        host.time(|| read_pairs(&pairs_file))?
    };
    let device = ponder_model::parse_device(&policy.device)
        .map_err(|e| PipelineError::model(format!("device `{}`", policy.device), e))?;
    let checkpoint = policy.checkpoint()?.clone();
    let config = dpo_config(plan, iteration)?;
    // With LoRA from iteration 2 on: the seed model, and M_t's adapter over it.
    let adapter_start = match &config.lora {
        Some(lora) if iteration >= 2 => Some(carried_adapter(plan, &policy.path, lora)?),
        _ => None,
    };
    if pairs.is_empty() {
        eprintln!(
            "iteration {iteration} dpo: no pairs, nothing to train; the iteration's model is its \
             starting model"
        );
        // With LoRA the model keeps an adapter (M_t's, or a fresh one: B = 0 changes nothing),
        // so that every iteration's model can be loaded the same way.
        let fresh_factors;
        let adapter = match (&config.lora, &adapter_start) {
            (Some(lora), Some((_, factors))) => Some((lora, factors)),
            (Some(lora), None) => {
                fresh_factors = CausalLm::from_checkpoint(&checkpoint, &device)
                    .and_then(|model| model.with_lora(lora, config.seed))
                    .and_then(|model| model.lora_weights())
                    .map_err(|e| PipelineError::model("a fresh LoRA adapter", e))?;
                Some((lora, &fresh_factors))
            }
            (None, _) => None,
        };
        save_with_adapter(&target, &checkpoint, &checkpoint.weights, adapter)?;
        return Ok(());
    }
    let (start, reference, adapter) = match &adapter_start {
        Some((seed, factors)) => (seed, Some(&checkpoint), Some(factors)),
        None => (&checkpoint, None, None),
    };
    let job = DpoJob {
        policy: start,
        reference,
        pairs: &pairs,
        out_dir: &dir.join("dpo"),
        device: device.clone(),
        adapter,
    };
    let mut hook = ValidationHook {
        plan,
        iteration,
        checkpoint: &checkpoint,
        device,
    };
    let hook: Option<&mut dyn EvalHook<CausalLm>> = if plan.validation.is_empty() {
        None
    } else {
        Some(&mut hook)
    };
    let started = std::time::Instant::now();
    let outcome = train_dpo::<CausalLm>(&job, &config, hook)?;
    let kept = match (&outcome.best_dir, plan.validation.is_empty()) {
        (Some(best), false) => best.clone(),
        _ => outcome.model_dir.clone(),
    };
    host.time(|| link_dir(&kept, &target))?;
    let last = outcome.last.as_ref();
    eprintln!(
        "iteration {iteration} dpo: {} pairs, {} steps in {:.1} s, last loss {}, margin {}{}; model in {}",
        pairs.len(),
        outcome.steps,
        started.elapsed().as_secs_f64(),
        last.map_or("-".into(), |m| format!("{:.4}", m.loss)),
        last.map_or("-".into(), |m| format!("{:.3}", m.rewards_margins)),
        outcome.best_metric.map_or(String::new(), |score| format!(
            ", best validation score {score:.4}"
        )),
        target.display()
    );
    Ok(())
}

/// Checks the trainer configuration `[dpo]` gives (the trainer validates every optimiser and
/// loss value in one place, `DpoConfig::validate`), so that a value the manifest's own checks
/// let through but the trainer refuses stops the run before any sampling.
///
/// # Errors
/// [`PipelineError::Manifest`] for the `dpo` table, with the trainer's reason.
pub(crate) fn validate_config(plan: &RunPlan<'_>) -> Result<(), PipelineError> {
    dpo_config(plan, 1)?
        .validate()
        .map_err(|error| plan.manifest_error("dpo", error.to_string()))
}

/// The seed model and the adapter of M_t (`policy_dir`), which iteration t's LoRA training
/// continues.
///
/// # Errors
/// A policy directory without an adapter (its iteration trained without LoRA) or with one of
/// other settings; an unreadable seed model.
fn carried_adapter(
    plan: &RunPlan<'_>,
    policy_dir: &Path,
    lora: &LoraConfig,
) -> Result<(Checkpoint, Weights), PipelineError> {
    let adapter_dir = policy_dir.join(ADAPTER_DIR);
    if !adapter_dir.is_dir() {
        return Err(plan.manifest_error(
            "dpo.lora",
            format!(
                "{} has no LoRA adapter ({ADAPTER_DIR}/): its iteration trained every weight, so \
                 LoRA cannot continue from it; rerun with `--restart-from 1:dpo` to train every \
                 iteration with LoRA",
                policy_dir.display()
            ),
        ));
    }
    let (found, weights) = ponder_model::lora::read_peft_adapter(&adapter_dir)?;
    if &found != lora {
        return Err(plan.manifest_error(
            "dpo.lora",
            format!(
                "the adapter in {} has rank {}, alpha {} on {:?}, but `[dpo.lora]` asks for rank \
                 {}, alpha {} on {:?}",
                adapter_dir.display(),
                found.rank,
                found.alpha,
                found.targets,
                lora.rank,
                lora.alpha,
                lora.targets
            ),
        ));
    }
    let seed_path = &plan.manifest.model.as_ref().expect("checked by plan").path;
    Ok((Checkpoint::load(seed_path)?, weights))
}

/// The trainer's LoRA settings from `[dpo.lora]`.
fn lora_config(plan: &RunPlan<'_>) -> Result<Option<LoraConfig>, PipelineError> {
    let Some(lora) = &plan.manifest.dpo.lora else {
        return Ok(None);
    };
    let mut config = LoraConfig::new(lora.rank as usize);
    if let Some(alpha) = lora.alpha {
        config.alpha = alpha;
    }
    if let Some(targets) = &lora.targets {
        config.targets = LoraTarget::parse_list(&targets.join(","))
            .map_err(|e| plan.manifest_error("dpo.lora.targets", e.to_string()))?;
    }
    Ok(Some(config))
}

/// The trainer's configuration from `[dpo]`.
///
/// # Errors
/// [`PipelineError::Manifest`] for an unknown LoRA target.
fn dpo_config(plan: &RunPlan<'_>, iteration: u32) -> Result<DpoConfig, PipelineError> {
    let dpo = &plan.manifest.dpo;
    let defaults = DpoConfig::default();
    Ok(DpoConfig {
        loss: LossConfig {
            kind: match dpo.loss {
                DpoLoss::Sigmoid => LossKind::Sigmoid,
                DpoLoss::Ipo => LossKind::Ipo,
                DpoLoss::Hinge => LossKind::Hinge,
                DpoLoss::Robust => LossKind::Robust,
            },
            beta: dpo.beta,
            nll_weight: dpo.nll,
            ..LossConfig::default()
        },
        optimizer: AdamWConfig {
            lr: dpo.lr,
            ..defaults.optimizer
        },
        epochs: u64::from(dpo.epochs),
        batch: BatchSizeConfig::Pairs(dpo.batch_size as usize),
        seed: seeds::derive(plan.manifest.run.seed, &["dpo", &iteration.to_string()]),
        save_every: dpo.save_every.map(u64::from),
        progress: plan.options.progress,
        lora: lora_config(plan)?,
        ..defaults
    })
}

/// Scores a training model on the validation instructions: one output each (fixed seeds, the
/// manifest's sampling settings), split by the template, judged like training outputs (an output
/// that does not parse is judged whole). Each pass is written to `validation/step-S.jsonl`.
struct ValidationHook<'a> {
    plan: &'a RunPlan<'a>,
    iteration: u32,
    checkpoint: &'a Checkpoint,
    device: burn::tensor::Device,
}

impl ValidationHook<'_> {
    fn plugin_error(&self, source: ponder_plugin_runtime::PluginError) -> TrainError {
        TrainError::Config(format!(
            "iteration {}, validation: {source}",
            self.iteration
        ))
    }

    fn score(&mut self, model: &CausalLm, step: u64) -> Result<f64, PipelineError> {
        let plan = self.plan;
        let iteration = self.iteration.to_string();
        let runtime = plan.runtime(&["validation", &iteration])?;
        let mut template = plan.load(&runtime, plan.template, self.iteration, Phase::Dpo)?;
        let format = template
            .output_format()
            .map_err(|source| PipelineError::plugin(self.iteration, "validation", source))?;
        let prefix = if plan.manifest.sample.prefill {
            format.assistant_prefix.clone()
        } else {
            String::new()
        };
        let mut requests = Vec::with_capacity(plan.validation.len());
        for instruction in &plan.validation {
            let messages: Vec<Message> = template
                .render(&instruction.messages)
                .map_err(|source| PipelineError::plugin(self.iteration, "validation", source))?;
            requests.push(GenerationRequest {
                prompt: self
                    .checkpoint
                    .encode_chat_with_prefix(&messages, &prefix)?,
                seeds: vec![seeds::derive(
                    plan.manifest.run.seed,
                    &["validation", &iteration, &instruction.id],
                )],
            });
        }
        let params = super::sample::sampling_params(plan, self.checkpoint, &format)?;
        let (sequences, _) = generate(
            model,
            &self.checkpoint.tokenizer,
            &requests,
            &params,
            &mut |_| ControlFlow::Continue(()),
        )
        .map_err(|e| PipelineError::model("validation sampling", e))?;
        let mut rows = Vec::with_capacity(sequences.len());
        let mut judge_requests = Vec::with_capacity(sequences.len());
        for (sequence, instruction) in sequences.iter().zip(&plan.validation) {
            let text = format!("{prefix}{}", sequence.text);
            let (parsed, response) = match template.parse(&text) {
                Ok(Parsed::Ok(split)) => (true, split.response),
                _ => (false, sequence.text.clone()),
            };
            judge_requests.push(JudgeRequest {
                instruction: instruction.messages.clone(),
                responses: vec![response],
                reference: instruction.reference.clone(),
                metadata: instruction.metadata.to_string(),
            });
            rows.push(ValidationRecord {
                id: instruction.id.clone(),
                text,
                parsed,
                score: None,
            });
        }
        let judge_runtime = plan.runtime(&["validation-judge", &iteration])?;
        let mut judge = plan.load(&judge_runtime, plan.judge, self.iteration, Phase::Dpo)?;
        let outcomes = match judge.judge(&judge_requests) {
            Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
            // One bad row must not sink the pass: judge each alone.
            Err(_) => judge_requests
                .iter()
                .map(|request| {
                    let mut single = plan
                        .load(&judge_runtime, plan.judge, self.iteration, Phase::Dpo)
                        .ok()?;
                    single
                        .judge(std::slice::from_ref(request))
                        .ok()
                        .map(|mut outcomes| outcomes.remove(0))
                })
                .collect::<Vec<_>>(),
        };
        for (row, outcome) in rows.iter_mut().zip(outcomes) {
            row.score = outcome
                .and_then(Result::ok)
                .and_then(|scores| scores.first().copied().flatten());
        }
        let file = plan
            .run
            .iteration(self.iteration)
            .join("validation")
            .join(format!("step-{step:06}.jsonl"));
        write_jsonl(&file, &rows)?;
        let score = validation_mean(&rows);
        eprintln!(
            "iteration {} validation at step {step}: mean score {} over {} instructions ({} parsed)",
            self.iteration,
            score.map_or("-".into(), |s| format!("{s:.4}")),
            rows.len(),
            rows.iter().filter(|r| r.parsed).count()
        );
        Ok(score.unwrap_or(f64::MIN))
    }
}

impl EvalHook<CausalLm> for ValidationHook<'_> {
    fn evaluate(&mut self, model: &CausalLm, step: u64) -> Result<f64, TrainError> {
        // The trainer's view: LoRA adapters, if any, merged.
        let mut weights = <CausalLm as TrainableModel>::to_weights(model)?;
        let inference =
            CausalLm::from_weights_taken(&self.checkpoint.config, &mut weights, &self.device)
                .map_err(|e| TrainError::Model(e.to_string()))?;
        self.score(&inference, step).map_err(|error| match error {
            PipelineError::Plugin { error, .. } => self.plugin_error(*error),
            other => TrainError::Config(format!("validation: {other}")),
        })
    }

    fn higher_is_better(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "validation_score"
    }
}

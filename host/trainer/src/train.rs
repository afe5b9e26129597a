//! The DPO training loop: reference log-probs once, epochs of shuffled micro-batches, gradient
//! accumulation, global-norm clipping, AdamW, per-step metrics, checkpoints and resume.
//!
//! The configuration lives in [`crate::config`], the run directory (state files, checkpoints,
//! saved models) in `run_dir`, validation in [`crate::evaluate`]; they are re-exported here
//! under the paths callers have used.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor, TensorData};
use ponder_checkpoint::{Checkpoint, Weights};
use ponder_model::LoraConfig;
use serde::{Deserialize, Serialize};

pub use crate::config::{BatchSizeConfig, DpoConfig};
use crate::data::{PairRow, TokenizedPair, epoch_order, micro_batches, tokenize_pairs};
use crate::error::TrainError;
pub use crate::evaluate::{evaluate_pairs, policy_logps};
use crate::logps::pair_batch;
use crate::loss::{LossConfig, PairLogps, preference_loss};
use crate::metrics::{MetricsWriter, StepMetrics};
pub use crate::model::TrainableModel;
use crate::optim::{AdamW, GradientAccumulator, first_non_finite_parameter};
use crate::reference::{
    ReferenceLogps, cache_key, compute_logps, hash_weights, load_cached, store_cache,
};
use crate::run_dir::{RunDir, Start, TrainerState, save_model};
use crate::schedule::Schedule;

/// A validation metric computed on the model at each checkpoint, to keep the best one.
pub trait EvalHook<M> {
    /// The metric for the current model (`step` = optimiser steps taken).
    ///
    /// # Errors
    ///
    /// Any [`TrainError`]; it ends the run (the last checkpoint stays resumable).
    fn evaluate(&mut self, model: &M, step: u64) -> Result<f64, TrainError>;
    /// Whether larger values are better.
    fn higher_is_better(&self) -> bool;
    /// A short name for logs and the metrics file.
    fn name(&self) -> &str;
}

/// Where a run's inputs come from.
pub struct DpoJob<'a> {
    /// The starting policy (also the tokenizer and chat template used for the pairs).
    pub policy: &'a Checkpoint,
    /// The reference model; `None` = the starting policy.
    pub reference: Option<&'a Checkpoint>,
    /// The preference pairs.
    pub pairs: &'a [PairRow],
    /// The run directory.
    pub out_dir: &'a Path,
    /// Device to train on (plain; autodiff is derived from it).
    pub device: Device,
    /// LoRA factors to start from instead of fresh ones (unmerged, named as
    /// [`TrainableModel::lora_weights`] names them): an adapter trained further over the same
    /// frozen `policy`, as iterative DPO does (with `reference` the model it merges into). Needs
    /// [`DpoConfig::lora`].
    pub adapter: Option<&'a Weights>,
}

/// What a finished run leaves behind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpoOutcome {
    /// The final model (Hugging Face directory).
    pub model_dir: PathBuf,
    /// The best model by the eval hook, if a hook was given.
    pub best_dir: Option<PathBuf>,
    /// Optimiser steps taken in total.
    pub steps: u64,
    /// Metrics of the last step.
    pub last: Option<StepMetrics>,
    /// The best eval metric.
    pub best_metric: Option<f64>,
}

/// Reference log-probs of `pairs`: from the cache in `out_dir` when the reference weights and the
/// pairs are unchanged, else computed with the inference model (dropped before training starts),
/// with a progress bar on stderr when `progress`.
///
/// # Errors
///
/// [`TrainError::Model`] when the reference does not build or run, [`TrainError::Config`] for
/// a pair without tokens, [`TrainError::Io`] when the cache cannot be written.
pub fn reference_logps<M: TrainableModel>(
    reference: &Checkpoint,
    pairs: &[TokenizedPair],
    cache_path: &Path,
    batch_pairs: usize,
    device: &Device,
    progress: bool,
) -> Result<(Vec<ReferenceLogps>, String), TrainError> {
    let key = cache_key(&hash_weights(&reference.weights), pairs);
    if let Some(cached) = load_cached(cache_path, &key, pairs.len()) {
        return Ok((cached, key));
    }
    let model = M::from_checkpoint(reference, device)?;
    let bar = crate::metrics::progress_bar(
        "reference log-probs",
        "pairs",
        pairs.len() as u64,
        0,
        progress,
    );
    let mut logps = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_pairs.max(1)) {
        logps.extend(compute_logps(&model, chunk, batch_pairs, device)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    drop(model);
    store_cache(cache_path, &key, &logps)?;
    Ok((logps, key))
}

/// One micro-batch: its pairs, their reference log-probs, and the sum of the pair weights over
/// the whole optimiser step (which normalises each pair's weight).
#[derive(Debug, Clone, Copy)]
pub struct MicroBatch<'a> {
    /// The pairs.
    pub pairs: &'a [&'a TokenizedPair],
    /// Reference log-probs, one per pair.
    pub reference: &'a [ReferenceLogps],
    /// The largest weight of the optimiser step's pairs: weights are divided by it before
    /// they are summed, so that weights near `f64::MAX` cannot sum to infinity (which would
    /// give every pair weight 0). 1 for weights that are known to be small.
    pub weight_scale: f64,
    /// Sum of the weights of every pair of the optimiser step, each divided by
    /// `weight_scale` (see [`weight_normalisation`]).
    pub weight_total: f64,
}

/// `(weight_scale, weight_total)` of [`MicroBatch`] for the pairs of one optimiser step (or
/// one evaluation): the largest weight, and the sum of the weights divided by it, which is at
/// most the number of pairs and so never overflows. `(1, 0)` when every weight is 0.
pub fn weight_normalisation(weights: impl IntoIterator<Item = f64> + Clone) -> (f64, f64) {
    let scale = weights.clone().into_iter().fold(0.0_f64, f64::max);
    if scale <= 0.0 {
        return (1.0, 0.0);
    }
    (scale, weights.into_iter().map(|w| w / scale).sum())
}

/// The result of one micro-batch forward (and backward).
#[derive(Debug, Clone)]
pub struct MicroStats {
    /// The micro-batch's share of the step loss.
    pub loss: f64,
    /// `β (πc − rc)` per pair.
    pub chosen_rewards: Vec<f32>,
    /// `β (πr − rr)` per pair.
    pub rejected_rewards: Vec<f32>,
    /// Policy chosen log-prob sums per pair.
    pub chosen_logps: Vec<f32>,
    /// Policy rejected log-prob sums per pair.
    pub rejected_logps: Vec<f32>,
    /// Real tokens in the micro-batch.
    pub tokens: usize,
}

/// Forward + loss (+ backward into `grads` when `grads` is given) on one micro-batch, on the
/// model's device. `step` only names the optimiser step in a divergence error.
///
/// # Errors
///
/// [`TrainError::Config`] for a pair without tokens, [`TrainError::Model`] when the model cannot
/// run the batch, [`TrainError::NonFinite`] when the loss is NaN or infinite.
pub fn micro_step<M: TrainableModel>(
    model: &M,
    batch: &MicroBatch<'_>,
    loss_config: &LossConfig,
    step: u64,
    grads: Option<&mut GradientAccumulator>,
) -> Result<MicroStats, TrainError> {
    let MicroBatch {
        pairs,
        reference,
        weight_scale,
        weight_total,
    } = *batch;
    let n = pairs.len();
    let scoring = pair_batch(pairs)?;
    let sums = model.sequence_logprob_sums(&scoring)?;
    let device = sums.device();
    let policy_chosen = sums.clone().narrow(0, 0, n);
    let policy_rejected = sums.narrow(0, n, n);
    let vector = |values: Vec<f32>| Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
    let completion_tokens = scoring.scored_per_sequence();
    let tokens = |range: &[usize]| vector(range.iter().map(|&t| t as f32).collect());
    let inputs = PairLogps {
        policy_chosen: policy_chosen.clone(),
        policy_rejected: policy_rejected.clone(),
        reference_chosen: vector(reference.iter().map(|r| r.chosen as f32).collect()),
        reference_rejected: vector(reference.iter().map(|r| r.rejected as f32).collect()),
        chosen_tokens: tokens(&completion_tokens[..n]),
        rejected_tokens: tokens(&completion_tokens[n..]),
        weights: vector(
            pairs
                .iter()
                .map(|p| (p.weight / weight_scale / weight_total) as f32)
                .collect(),
        ),
    };
    let output = preference_loss(loss_config, inputs);
    let loss_value: f32 = output.loss.clone().into_scalar();
    let loss_value = f64::from(loss_value);
    if !loss_value.is_finite() {
        return Err(TrainError::NonFinite {
            step,
            what: "loss",
            value: loss_value,
        });
    }
    if let Some(grads) = grads {
        let backward = output.loss.backward();
        grads.accumulate(model, backward);
    }
    Ok(MicroStats {
        loss: loss_value,
        chosen_rewards: output.chosen_rewards,
        rejected_rewards: output.rejected_rewards,
        chosen_logps: crate::optim::tensor_to_vec(policy_chosen.detach())?,
        rejected_logps: crate::optim::tensor_to_vec(policy_rejected.detach())?,
        tokens: scoring.real_tokens(),
    })
}

/// One optimiser step's plan: its micro-batches (pair indices).
struct PlannedStep {
    epoch: u64,
    micro: Vec<Vec<usize>>,
}

fn plan(pairs: &[TokenizedPair], config: &DpoConfig) -> Vec<PlannedStep> {
    let mut steps = Vec::new();
    for epoch in 0..config.epochs {
        let order = epoch_order(pairs.len(), config.seed, epoch, config.shuffle);
        let micro = micro_batches(pairs, &order, config.batch.into());
        for group in micro.chunks(config.grad_accum) {
            steps.push(PlannedStep {
                epoch,
                micro: group.to_vec(),
            });
        }
    }
    steps
}

fn mean(values: &[f32]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64
}

/// What every optimiser step of a run reads: the tokenised pairs with their reference
/// log-probs, the plan, the schedule and the device gradients are taken on.
struct Loop<'a> {
    config: &'a DpoConfig,
    pairs: &'a [TokenizedPair],
    reference: &'a [ReferenceLogps],
    steps: Vec<PlannedStep>,
    schedule: Schedule,
    train_device: Device,
}

/// Sums of one optimiser step's micro-batch statistics.
#[derive(Default)]
struct StepTotals {
    loss: f64,
    chosen_rewards: Vec<f32>,
    rejected_rewards: Vec<f32>,
    chosen_logps: Vec<f32>,
    rejected_logps: Vec<f32>,
    tokens: usize,
}

impl StepTotals {
    fn add(&mut self, stats: MicroStats) {
        self.loss += stats.loss;
        self.chosen_rewards.extend(stats.chosen_rewards);
        self.rejected_rewards.extend(stats.rejected_rewards);
        self.chosen_logps.extend(stats.chosen_logps);
        self.rejected_logps.extend(stats.rejected_logps);
        self.tokens += stats.tokens;
    }
}

impl Loop<'_> {
    fn total_steps(&self) -> u64 {
        self.steps.len() as u64
    }

    fn steps_per_epoch(&self) -> u64 {
        (self.total_steps() / self.config.epochs).max(1)
    }

    /// Whether step `index` (0-based) is the last of its epoch.
    fn ends_epoch(&self, index: usize) -> bool {
        self.steps
            .get(index + 1)
            .is_none_or(|next| next.epoch != self.steps[index].epoch)
    }

    /// Optimiser step `index` (0-based): every micro-batch forward and backward, clipping,
    /// AdamW; returns the updated model and the step's metrics.
    fn step<M: TrainableModel>(
        &self,
        model: M,
        optimizer: &mut AdamW,
        index: usize,
    ) -> Result<(M, StepMetrics), TrainError> {
        let planned = &self.steps[index];
        let step = index as u64 + 1;
        let started = Instant::now();
        let (weight_scale, weight_total) = weight_normalisation(
            planned
                .micro
                .iter()
                .flatten()
                .map(|&i| self.pairs[i].weight),
        );
        let mut grads = GradientAccumulator::new();
        let mut totals = StepTotals::default();
        if weight_total > 0.0 {
            for micro in &planned.micro {
                let batch: Vec<&TokenizedPair> = micro.iter().map(|&i| &self.pairs[i]).collect();
                let refs: Vec<ReferenceLogps> = micro.iter().map(|&i| self.reference[i]).collect();
                let micro = MicroBatch {
                    pairs: &batch,
                    reference: &refs,
                    weight_scale,
                    weight_total,
                };
                totals.add(micro_step(
                    &model,
                    &micro,
                    &self.config.loss,
                    step,
                    Some(&mut grads),
                )?);
            }
        }
        let grad_norm = match self.config.optimizer.max_grad_norm {
            Some(max) => grads.clip_global_norm(max),
            None => grads.global_norm(),
        };
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                step,
                what: "grad_norm",
                value: grad_norm,
            });
        }
        let lr = self.schedule.lr(index as u64);
        let model = if grads.is_empty() {
            model
        } else {
            optimizer.step(model, grads, lr)
        };
        let elapsed = started.elapsed().as_secs_f64();
        let pairs = totals.chosen_rewards.iter().zip(&totals.rejected_rewards);
        let accuracies: Vec<f32> = pairs
            .clone()
            .map(|(c, r)| if c > r { 1.0 } else { 0.0 })
            .collect();
        let margins: Vec<f32> = pairs.map(|(c, r)| c - r).collect();
        let steps_per_epoch = self.steps_per_epoch();
        let record = StepMetrics {
            step,
            epoch: planned.epoch as f64
                + ((index as u64 % steps_per_epoch) + 1) as f64 / steps_per_epoch as f64,
            loss: totals.loss,
            rewards_chosen: mean(&totals.chosen_rewards),
            rewards_rejected: mean(&totals.rejected_rewards),
            rewards_margins: mean(&margins),
            rewards_accuracies: mean(&accuracies),
            logps_chosen: mean(&totals.chosen_logps),
            logps_rejected: mean(&totals.rejected_logps),
            grad_norm,
            learning_rate: lr,
            tokens_per_second: totals.tokens as f64 / elapsed.max(1e-9),
            step_seconds: elapsed,
            eval: None,
        };
        Ok((model, record))
    }
}

/// Runs the eval hook on `model`; saves it as the best model when the metric improved.
fn evaluate_and_keep_best<M: TrainableModel>(
    hook: &mut dyn EvalHook<M>,
    model: &M,
    step: u64,
    best_metric: &mut Option<f64>,
    policy: &Checkpoint,
    lora: Option<&LoraConfig>,
    best_dir: &Path,
) -> Result<f64, TrainError> {
    let value = hook.evaluate(model, step)?;
    let improved = best_metric.is_none_or(|best| {
        if hook.higher_is_better() {
            value > best
        } else {
            value < best
        }
    });
    if improved {
        *best_metric = Some(value);
        save_model(model, policy, lora, best_dir)?;
    }
    Ok(value)
}

/// Runs DPO on `job` and returns where the model went. Resumes from the newest complete checkpoint
/// in the run directory; returns at once when the run already completed.
///
/// # Errors
///
/// [`TrainError::Config`] for an invalid configuration, pairs without tokens or a run directory
/// holding a run with other LoRA settings; [`TrainError::Checkpoint`] / [`TrainError::Model`]
/// when a model does not load, build or save; [`TrainError::NonFinite`] when training diverges
/// ([`TrainError::NonFiniteWeights`] when an update leaves NaN or infinite weights; such a
/// model is never saved);
/// [`TrainError::Io`] / [`TrainError::State`] when the run directory cannot be written or its
/// state read; any error of the eval hook.
pub fn train_dpo<M: TrainableModel>(
    job: &DpoJob<'_>,
    config: &DpoConfig,
    mut hook: Option<&mut dyn EvalHook<M>>,
) -> Result<DpoOutcome, TrainError> {
    config.validate()?;
    let run_dir = RunDir::create(job.out_dir)?;
    let pairs = tokenize_pairs(job.policy, job.pairs, config.max_length)?;
    let (reference, reference_key) = reference_logps::<M>(
        job.reference.unwrap_or(job.policy),
        &pairs,
        &run_dir.path().join("reference_logps.json"),
        config.reference_batch_pairs(),
        &job.device,
        config.progress,
    )?;
    if job.adapter.is_some() && config.lora.is_none() {
        return Err(TrainError::Config(
            "a starting LoRA adapter was given, but the configuration trains no LoRA".to_string(),
        ));
    }
    // What the run starts from beyond its reference: another policy, a starting adapter.
    let mut start_key = reference_key;
    if job.reference.is_some() {
        start_key = format!("{start_key}:policy {}", hash_weights(&job.policy.weights));
    }
    if let Some(adapter) = job.adapter {
        start_key = format!("{start_key}:adapter {}", hash_weights(adapter));
    }
    let key = config.run_key(&start_key)?;
    run_dir.check_lora_matches(&config.lora)?;
    if let Some(outcome) = run_dir.completed(&key) {
        return Ok(outcome);
    }

    let steps = plan(&pairs, config);
    let total_steps = steps.len() as u64;
    let train_device = if config.gradient_checkpointing {
        job.device.clone().autodiff().gradient_checkpointing()
    } else {
        job.device.clone().autodiff()
    };
    let run = Loop {
        config,
        pairs: &pairs,
        reference: &reference,
        steps,
        schedule: Schedule {
            kind: config.schedule,
            peak: config.optimizer.lr,
            warmup_steps: config.warmup_steps,
            total_steps,
        },
        train_device,
    };
    let Start {
        mut model,
        mut optimizer,
        step: start_step,
        mut best_metric,
        mut last,
    } = run_dir.start::<M>(
        &key,
        job.policy,
        job.adapter,
        config,
        &run.train_device,
        &job.device,
    )?;

    let mut metrics = MetricsWriter::open(&run_dir.path().join("metrics.jsonl"), start_step)?;
    let progress =
        crate::metrics::progress_bar("dpo", "steps", total_steps, start_step, config.progress);
    let best_dir = run_dir.best_dir();
    let state =
        |step: u64, completed: bool, best_metric, last: &Option<StepMetrics>| TrainerState {
            run_key: key.clone(),
            step,
            total_steps,
            completed,
            best_metric,
            last: last.clone(),
            lora: config.lora.clone(),
        };

    for index in (start_step as usize)..run.steps.len() {
        let (updated, mut record) = run.step(model, &mut optimizer, index)?;
        model = updated;
        let step = record.step;
        progress.set_position(step);
        progress.set_message(format!(
            "loss {:.4} margin {:.3} acc {:.2}",
            record.loss, record.rewards_margins, record.rewards_accuracies
        ));
        let periodic = config
            .save_every
            .is_some_and(|every| step.is_multiple_of(every));
        let saving = run.ends_epoch(index) || periodic;
        let is_last = index + 1 == run.steps.len();
        // A finite loss does not prove finite weights: the update of this step is applied after
        // it. Checked before anything sees or saves the model (the check reads every weight
        // once, so not after every step).
        if (saving || is_last)
            && let Some(parameter) = first_non_finite_parameter(&model)
        {
            return Err(TrainError::NonFiniteWeights { step, parameter });
        }
        if saving && let Some(hook) = hook.as_deref_mut() {
            record.eval = Some(evaluate_and_keep_best(
                hook,
                &model,
                step,
                &mut best_metric,
                job.policy,
                config.lora.as_ref(),
                &best_dir,
            )?);
        }
        metrics.append(&record)?;
        last = Some(record);
        if saving && !is_last {
            run_dir.save_checkpoint(
                &model,
                &optimizer,
                job.policy,
                state(step, false, best_metric, &last),
            )?;
        }
    }
    progress.finish_and_clear();

    run_dir.finish(
        &model,
        job.policy,
        state(total_steps, true, best_metric, &last),
    )?;
    Ok(DpoOutcome {
        model_dir: run_dir.model_dir(),
        best_dir: best_dir.is_dir().then_some(best_dir),
        steps: total_steps,
        last,
        best_metric,
    })
}

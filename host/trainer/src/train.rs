//! The DPO training loop: reference log-probs once, epochs of shuffled micro-batches, gradient
//! accumulation, global-norm clipping, AdamW, per-step metrics, checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use ponder_checkpoint::{Checkpoint, Weights};
use ponder_model::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::data::{BatchSize, PairRow, TokenizedPair, epoch_order, micro_batches, tokenize_pairs};
use crate::error::TrainError;
use crate::logps::{CompletionBatch, LogitsModel, sequence_logps};
use crate::loss::{LossConfig, PairLogps, preference_loss};
use crate::metrics::{MetricsWriter, StepMetrics};
use crate::optim::{AdamW, AdamWConfig, GradientAccumulator};
use crate::reference::{
    ReferenceLogps, cache_key, compute_logps, hash_weights, load_cached, store_cache,
};
use crate::schedule::{Schedule, ScheduleKind};

/// A model the trainer can build, differentiate and save.
pub trait TrainableModel: Module + LogitsModel + Sized {
    /// Builds the model from a checkpoint on `device` (plain or autodiff).
    fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, TrainError>;
    /// The weights in Hugging Face names and layout, on the host (LoRA merged).
    fn to_weights(&self) -> Result<Weights, TrainError>;
    /// Freezes every weight and attaches fresh LoRA adapters (output unchanged), seeded by
    /// `seed`.
    fn with_lora(self, config: &LoraConfig, seed: u64) -> Result<Self, TrainError>;
    /// Freezes every weight and attaches LoRA adapters holding `weights` (from
    /// [`TrainableModel::lora_weights`]).
    fn with_lora_weights(self, config: &LoraConfig, weights: &Weights) -> Result<Self, TrainError>;
    /// The adapters' weights, unmerged (empty without LoRA).
    fn lora_weights(&self) -> Result<Weights, TrainError>;
}

/// Everything that shapes a DPO run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DpoConfig {
    /// The preference loss.
    pub loss: LossConfig,
    /// AdamW hyper-parameters and gradient clipping.
    pub optimizer: AdamWConfig,
    /// Learning-rate decay after warm-up.
    pub schedule: ScheduleKind,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// Passes over the pairs.
    pub epochs: u64,
    /// Pairs per forward/backward pass (micro-batch).
    pub batch: BatchSizeConfig,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Seed of the per-epoch shuffle.
    pub seed: u64,
    /// Shuffle the pairs every epoch.
    pub shuffle: bool,
    /// Cut completions so that prompt + completion fits (tokens); `None` = no limit.
    pub max_length: Option<usize>,
    /// Save a resumable checkpoint every this many optimiser steps (and always at epoch ends).
    pub save_every: Option<u64>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Train LoRA adapters on a frozen model instead of every weight (`None` = full fine-tune).
    /// Left out of the serialised form when `None`, so full fine-tunes keep their run keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Recompute the memory-bound intermediates (norms, activations, softmax) in the backward
    /// pass instead of keeping them (burn's balanced gradient checkpointing): about a third
    /// less peak memory for the same steps in about the same time. Results are identical, so
    /// it is not part of the run key (a run may resume with the other setting).
    #[serde(skip, default = "checkpointing_by_default")]
    pub gradient_checkpointing: bool,
}

fn checkpointing_by_default() -> bool {
    true
}

/// Serialisable form of [`BatchSize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSizeConfig {
    /// A fixed number of pairs per micro-batch.
    Pairs(usize),
    /// A budget of padded tokens per micro-batch.
    Tokens(usize),
}

impl From<BatchSizeConfig> for BatchSize {
    fn from(b: BatchSizeConfig) -> Self {
        match b {
            BatchSizeConfig::Pairs(n) => BatchSize::Pairs(n),
            BatchSizeConfig::Tokens(n) => BatchSize::Tokens(n),
        }
    }
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            loss: LossConfig::default(),
            optimizer: AdamWConfig {
                lr: 5e-7,
                ..AdamWConfig::default()
            },
            schedule: ScheduleKind::Linear,
            warmup_steps: 0,
            epochs: 1,
            batch: BatchSizeConfig::Pairs(4),
            grad_accum: 1,
            seed: 42,
            shuffle: true,
            max_length: None,
            save_every: None,
            progress: true,
            gradient_checkpointing: true,
            lora: None,
        }
    }
}

impl DpoConfig {
    /// Rejects values for which training is undefined.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.loss.validate()?;
        let o = &self.optimizer;
        if !(o.lr.is_finite() && o.lr >= 0.0) {
            return Err(TrainError::Config(format!("lr must be >= 0, got {}", o.lr)));
        }
        if !((0.0..1.0).contains(&o.beta1) && (0.0..1.0).contains(&o.beta2)) {
            return Err(TrainError::Config(
                "AdamW betas must be in [0, 1)".to_string(),
            ));
        }
        if o.max_grad_norm.is_some_and(|n| n.is_nan() || n <= 0.0) {
            return Err(TrainError::Config(
                "max grad norm must be positive".to_string(),
            ));
        }
        if self.epochs == 0 || self.grad_accum == 0 {
            return Err(TrainError::Config(
                "epochs and gradient accumulation must be at least 1".to_string(),
            ));
        }
        if let Some(lora) = &self.lora {
            lora.validate()
                .map_err(|e| TrainError::Config(e.to_string()))?;
        }
        match self.batch {
            BatchSizeConfig::Pairs(0) | BatchSizeConfig::Tokens(0) => Err(TrainError::Config(
                "batch size must be at least 1".to_string(),
            )),
            _ => Ok(()),
        }
    }
}

/// A validation metric computed on the model at each checkpoint, to keep the best one.
pub trait EvalHook<M> {
    /// The metric for the current model (`step` = optimiser steps taken).
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

/// Resume information written next to each checkpoint (last, so its presence marks the
/// checkpoint complete) and as `state.json` at the end of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    run_key: String,
    step: u64,
    total_steps: u64,
    completed: bool,
    best_metric: Option<f64>,
    last: Option<StepMetrics>,
    /// The run's LoRA settings (`None` = full fine-tune), to refuse resuming with others.
    #[serde(default)]
    lora: Option<LoraConfig>,
}

const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The LoRA factors of a resumable checkpoint, unmerged (`model/` holds them merged).
const ADAPTER_FILE: &str = "adapter.safetensors";

fn describe_lora(lora: &Option<LoraConfig>) -> String {
    match lora {
        None => "a full fine-tune (no LoRA)".to_string(),
        Some(l) => format!(
            "LoRA rank {} alpha {} on {}",
            l.rank,
            l.alpha,
            l.targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Refuses to run in a directory that holds a run (finished or resumable) with other LoRA
/// settings: its checkpoints cannot continue this run, and starting over would mix the two.
fn check_lora_matches(out: &Path, lora: &Option<LoraConfig>) -> Result<(), TrainError> {
    let mut states: Vec<(PathBuf, TrainerState)> = Vec::new();
    let final_state = out.join(STATE_FILE);
    if let Some(state) = read_state(&final_state) {
        states.push((final_state, state));
    }
    if let Ok(entries) = std::fs::read_dir(out.join("checkpoints")) {
        for entry in entries.flatten() {
            let path = entry.path().join(STATE_FILE);
            if let Some(state) = read_state(&path) {
                states.push((path, state));
            }
        }
    }
    for (path, state) in states {
        if &state.lora != lora {
            return Err(TrainError::Config(format!(
                "{} belongs to {}, but this run asks for {}; use the same LoRA settings to \
                 resume, or another output directory",
                path.display(),
                describe_lora(&state.lora),
                describe_lora(lora)
            )));
        }
    }
    Ok(())
}

fn read_state(path: &Path) -> Option<TrainerState> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(path: &Path, state: &TrainerState) -> Result<(), TrainError> {
    let text = serde_json::to_vec_pretty(state)
        .map_err(|e| TrainError::State(format!("serialising trainer state: {e}")))?;
    crate::io::write_atomic(path, &text)
}

fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:06}"))
}

/// The newest complete checkpoint of this run, if any.
fn latest_checkpoint(out: &Path, run_key: &str) -> Option<(PathBuf, TrainerState)> {
    let entries = std::fs::read_dir(out.join("checkpoints")).ok()?;
    let mut best: Option<(PathBuf, TrainerState)> = None;
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(state) = read_state(&dir.join(STATE_FILE)) else {
            continue;
        };
        if state.run_key != run_key || !dir.join("model").is_dir() {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| state.step > b.step) {
            best = Some((dir, state));
        }
    }
    best
}

fn save_model<M: TrainableModel>(
    model: &M,
    template: &Checkpoint,
    dir: &Path,
) -> Result<(), TrainError> {
    let weights = model.to_weights()?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    ponder_checkpoint::save_hf_dir(
        dir,
        &template.config,
        &weights,
        &template.tokenizer,
        template.chat_template.as_ref(),
    )?;
    Ok(())
}

/// Reference log-probs of `pairs`: from the cache in `out_dir` when the reference weights and the
/// pairs are unchanged, else computed with the inference model (dropped before training starts).
pub fn reference_logps<M: TrainableModel>(
    reference: &Checkpoint,
    pairs: &[TokenizedPair],
    cache_path: &Path,
    batch_pairs: usize,
    device: &Device,
) -> Result<(Vec<ReferenceLogps>, String), TrainError> {
    let key = cache_key(&hash_weights(&reference.weights), pairs);
    if let Some(cached) = load_cached(cache_path, &key, pairs.len()) {
        return Ok((cached, key));
    }
    let model = M::from_checkpoint(reference, device)?;
    let logps = compute_logps(&model, pairs, batch_pairs, device)?;
    drop(model);
    store_cache(cache_path, &key, &logps)?;
    Ok((logps, key))
}

fn run_key(reference_key: &str, config: &DpoConfig) -> Result<String, TrainError> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(reference_key.as_bytes());
    // the progress bar does not change the result
    let mut shaping = config.clone();
    shaping.progress = false;
    let json = serde_json::to_vec(&shaping)
        .map_err(|e| TrainError::State(format!("serialising the config: {e}")))?;
    hasher.update(&json);
    Ok(format!("{:x}", hasher.finalize()))
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

/// Forward + loss (+ backward into `grads` when `grads` is given) on one micro-batch.
/// `weight_total` normalises the pair weights over the whole optimiser step.
#[allow(clippy::too_many_arguments)]
pub fn micro_step<M: TrainableModel>(
    model: &M,
    pairs: &[&TokenizedPair],
    reference: &[ReferenceLogps],
    weight_total: f64,
    loss_config: &LossConfig,
    device: &Device,
    step: u64,
    grads: Option<&mut GradientAccumulator>,
) -> Result<MicroStats, TrainError> {
    let n = pairs.len();
    let batch = CompletionBatch::for_pairs(pairs)?;
    let sums = sequence_logps(model, &batch, device)?;
    let policy_chosen = sums.clone().narrow(0, 0, n);
    let policy_rejected = sums.narrow(0, n, n);
    let vector = |values: Vec<f32>| Tensor::<1>::from_data(TensorData::new(values, [n]), device);
    let inputs = PairLogps {
        policy_chosen: policy_chosen.clone(),
        policy_rejected: policy_rejected.clone(),
        reference_chosen: vector(reference.iter().map(|r| r.chosen as f32).collect()),
        reference_rejected: vector(reference.iter().map(|r| r.rejected as f32).collect()),
        chosen_tokens: vector(
            batch.completion_tokens[..n]
                .iter()
                .map(|&t| t as f32)
                .collect(),
        ),
        rejected_tokens: vector(
            batch.completion_tokens[n..]
                .iter()
                .map(|&t| t as f32)
                .collect(),
        ),
        weights: vector(
            pairs
                .iter()
                .map(|p| (p.weight / weight_total) as f32)
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
        tokens: batch.real_tokens(),
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

/// Runs DPO on `job` and returns where the model went. Resumes from the newest complete checkpoint
/// in the run directory; returns at once when the run already completed.
pub fn train_dpo<M: TrainableModel>(
    job: &DpoJob<'_>,
    config: &DpoConfig,
    mut hook: Option<&mut dyn EvalHook<M>>,
) -> Result<DpoOutcome, TrainError> {
    config.validate()?;
    let out = job.out_dir;
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let pairs = tokenize_pairs(job.policy, job.pairs, config.max_length)?;
    let reference_checkpoint = job.reference.unwrap_or(job.policy);
    let reference_batch = match config.batch {
        BatchSizeConfig::Pairs(n) => n,
        BatchSizeConfig::Tokens(_) => 4,
    };
    let (reference, reference_key) = reference_logps::<M>(
        reference_checkpoint,
        &pairs,
        &out.join("reference_logps.json"),
        reference_batch,
        &job.device,
    )?;
    let key = run_key(&reference_key, config)?;
    check_lora_matches(out, &config.lora)?;
    let model_dir = out.join("model");
    let best_dir = out.join("best");
    let final_state_path = out.join(STATE_FILE);
    if let Some(state) = read_state(&final_state_path)
        && state.completed
        && state.run_key == key
        && model_dir.is_dir()
    {
        return Ok(DpoOutcome {
            model_dir,
            best_dir: best_dir.is_dir().then_some(best_dir),
            steps: state.step,
            last: state.last,
            best_metric: state.best_metric,
        });
    }

    let steps = plan(&pairs, config);
    let total_steps = steps.len() as u64;
    let schedule = Schedule {
        kind: config.schedule,
        peak: config.optimizer.lr,
        warmup_steps: config.warmup_steps,
        total_steps,
    };
    let train_device = if config.gradient_checkpointing {
        job.device.clone().autodiff().gradient_checkpointing()
    } else {
        job.device.clone().autodiff()
    };

    let (mut model, mut optimizer, start_step, mut best_metric, mut last) =
        match latest_checkpoint(out, &key) {
            Some((dir, state)) => {
                let model = match &config.lora {
                    // the base stays frozen at the starting policy; only the factors moved
                    Some(lora) => {
                        let mut adapters = Weights::new();
                        ponder_checkpoint::read_safetensors_file(
                            &dir.join(ADAPTER_FILE),
                            &mut adapters,
                        )?;
                        M::from_checkpoint(job.policy, &train_device)?
                            .with_lora_weights(lora, &adapters)?
                    }
                    None => {
                        let resumed = Checkpoint::load(&dir.join("model"))?;
                        M::from_checkpoint(&resumed, &train_device)?
                    }
                };
                let optimizer =
                    AdamW::load(config.optimizer, &dir.join(OPTIMIZER_FILE), &job.device)?;
                (model, optimizer, state.step, state.best_metric, state.last)
            }
            None => (
                match &config.lora {
                    Some(lora) => M::from_checkpoint(job.policy, &train_device)?
                        .with_lora(lora, config.seed)?,
                    None => M::from_checkpoint(job.policy, &train_device)?,
                },
                AdamW::new(config.optimizer),
                0,
                None,
                None,
            ),
        };

    let mut metrics = MetricsWriter::open(&out.join("metrics.jsonl"), start_step)?;
    let progress = crate::metrics::progress_bar(total_steps, start_step, config.progress);
    let steps_per_epoch = (total_steps / config.epochs).max(1);

    for (index, planned) in steps.iter().enumerate().skip(start_step as usize) {
        let step = index as u64 + 1;
        let started = Instant::now();
        let weight_total: f64 = planned
            .micro
            .iter()
            .flatten()
            .map(|&i| pairs[i].weight)
            .sum();
        let mut grads = GradientAccumulator::new();
        let mut loss = 0.0;
        let (mut chosen_rewards, mut rejected_rewards) = (Vec::new(), Vec::new());
        let (mut chosen_logps, mut rejected_logps) = (Vec::new(), Vec::new());
        let mut tokens = 0usize;
        if weight_total > 0.0 {
            for micro in &planned.micro {
                let batch: Vec<&TokenizedPair> = micro.iter().map(|&i| &pairs[i]).collect();
                let refs: Vec<ReferenceLogps> = micro.iter().map(|&i| reference[i]).collect();
                let stats = micro_step(
                    &model,
                    &batch,
                    &refs,
                    weight_total,
                    &config.loss,
                    &train_device,
                    step,
                    Some(&mut grads),
                )?;
                loss += stats.loss;
                chosen_rewards.extend(stats.chosen_rewards);
                rejected_rewards.extend(stats.rejected_rewards);
                chosen_logps.extend(stats.chosen_logps);
                rejected_logps.extend(stats.rejected_logps);
                tokens += stats.tokens;
            }
        }
        let grad_norm = match config.optimizer.max_grad_norm {
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
        let lr = schedule.lr(index as u64);
        if !grads.is_empty() {
            model = optimizer.step(model, grads, lr);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let accuracies: Vec<f32> = chosen_rewards
            .iter()
            .zip(&rejected_rewards)
            .map(|(c, r)| if c > r { 1.0 } else { 0.0 })
            .collect();
        let margins: Vec<f32> = chosen_rewards
            .iter()
            .zip(&rejected_rewards)
            .map(|(c, r)| c - r)
            .collect();
        let record = StepMetrics {
            step,
            epoch: planned.epoch as f64
                + ((index as u64 % steps_per_epoch) + 1) as f64 / steps_per_epoch as f64,
            loss,
            rewards_chosen: mean(&chosen_rewards),
            rewards_rejected: mean(&rejected_rewards),
            rewards_margins: mean(&margins),
            rewards_accuracies: mean(&accuracies),
            logps_chosen: mean(&chosen_logps),
            logps_rejected: mean(&rejected_logps),
            grad_norm,
            learning_rate: lr,
            tokens_per_second: tokens as f64 / elapsed.max(1e-9),
            step_seconds: elapsed,
            eval: None,
        };
        progress.set_position(step);
        progress.set_message(format!(
            "loss {:.4} margin {:.3} acc {:.2}",
            record.loss, record.rewards_margins, record.rewards_accuracies
        ));

        let epoch_end = steps
            .get(index + 1)
            .is_none_or(|next| next.epoch != planned.epoch);
        let periodic = config
            .save_every
            .is_some_and(|every| step.is_multiple_of(every));
        let mut record = record;
        if epoch_end || periodic {
            if let Some(hook) = hook.as_deref_mut() {
                let value = hook.evaluate(&model, step)?;
                record.eval = Some(value);
                let improved = best_metric.is_none_or(|best| {
                    if hook.higher_is_better() {
                        value > best
                    } else {
                        value < best
                    }
                });
                if improved {
                    best_metric = Some(value);
                    save_model(&model, job.policy, &best_dir)?;
                }
            }
            metrics.append(&record)?;
            last = Some(record.clone());
            let is_last = index + 1 == steps.len();
            if !is_last {
                save_checkpoint(
                    &model,
                    &optimizer,
                    job.policy,
                    out,
                    TrainerState {
                        run_key: key.clone(),
                        step,
                        total_steps,
                        completed: false,
                        best_metric,
                        last: last.clone(),
                        lora: config.lora.clone(),
                    },
                )?;
            }
        } else {
            metrics.append(&record)?;
            last = Some(record);
        }
    }
    progress.finish_and_clear();

    save_model(&model, job.policy, &model_dir)?;
    write_state(
        &final_state_path,
        &TrainerState {
            run_key: key,
            step: total_steps,
            total_steps,
            completed: true,
            best_metric,
            last: last.clone(),
            lora: config.lora.clone(),
        },
    )?;
    let checkpoints = out.join("checkpoints");
    if checkpoints.is_dir() {
        std::fs::remove_dir_all(&checkpoints).map_err(|e| TrainError::io(&checkpoints, e))?;
    }
    Ok(DpoOutcome {
        model_dir,
        best_dir: best_dir.is_dir().then_some(best_dir),
        steps: total_steps,
        last,
        best_metric,
    })
}

/// Writes a resumable checkpoint (model, optimiser, then the state file that marks it complete)
/// and removes older ones.
fn save_checkpoint<M: TrainableModel>(
    model: &M,
    optimizer: &AdamW,
    template: &Checkpoint,
    out: &Path,
    state: TrainerState,
) -> Result<(), TrainError> {
    let dir = checkpoint_dir(out, state.step);
    std::fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    save_model(model, template, &dir.join("model"))?;
    if state.lora.is_some() {
        ponder_checkpoint::write_safetensors_f32(&dir.join(ADAPTER_FILE), &model.lora_weights()?)?;
    }
    optimizer.save(&dir.join(OPTIMIZER_FILE))?;
    write_state(&dir.join(STATE_FILE), &state)?;
    if let Ok(entries) = std::fs::read_dir(out.join("checkpoints")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path != dir {
                std::fs::remove_dir_all(&path).map_err(|e| TrainError::io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// Evaluates the DPO loss and reward statistics of `model` on `pairs` without gradients
/// (validation): returns `(loss, mean reward margin, reward accuracy)`.
pub fn evaluate_pairs<M: TrainableModel>(
    model: &M,
    pairs: &[TokenizedPair],
    reference: &[ReferenceLogps],
    loss: &LossConfig,
    batch_pairs: usize,
    device: &Device,
) -> Result<(f64, f64, f64), TrainError> {
    let total: f64 = pairs.iter().map(|p| p.weight).sum();
    if total <= 0.0 {
        return Err(TrainError::Config(
            "validation pairs have zero total weight".to_string(),
        ));
    }
    let (mut loss_sum, mut margins, mut correct) = (0.0, 0.0, 0.0);
    let indices: Vec<usize> = (0..pairs.len()).collect();
    for chunk in indices.chunks(batch_pairs.max(1)) {
        let batch: Vec<&TokenizedPair> = chunk.iter().map(|&i| &pairs[i]).collect();
        let refs: Vec<ReferenceLogps> = chunk.iter().map(|&i| reference[i]).collect();
        let stats = micro_step(model, &batch, &refs, total, loss, device, 0, None)?;
        loss_sum += stats.loss;
        for (c, r) in stats.chosen_rewards.iter().zip(&stats.rejected_rewards) {
            margins += f64::from(c - r);
            if c > r {
                correct += 1.0;
            }
        }
    }
    let n = pairs.len() as f64;
    Ok((loss_sum, margins / n, correct / n))
}

/// The step's metrics that `train_dpo` would compute, exposed for tests: sequence log-probs of
/// `pairs` under `model` (sums over completion tokens), `(chosen, rejected)` per pair.
pub fn policy_logps<M: LogitsModel>(
    model: &M,
    pairs: &[TokenizedPair],
    batch_pairs: usize,
    device: &Device,
) -> Result<Vec<ReferenceLogps>, TrainError> {
    compute_logps(model, pairs, batch_pairs, device)
}

//! What shapes a DPO run: [`DpoConfig`], its validation, and the run key that ties a run
//! directory to the settings it was trained with.

use ponder_model::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::data::BatchSize;
use crate::error::TrainError;
use crate::loss::LossConfig;
use crate::optim::AdamWConfig;
use crate::schedule::ScheduleKind;

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
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] naming the offending value.
    pub fn validate(&self) -> Result<(), TrainError> {
        self.loss.validate()?;
        validate_optimizer(&self.optimizer)?;
        if self.epochs == 0 || self.grad_accum == 0 {
            return Err(TrainError::Config(
                "epochs and gradient accumulation must be at least 1".to_string(),
            ));
        }
        if self.max_length == Some(0) {
            return Err(TrainError::Config(
                "max length must be at least 1 token (leave it out for no limit)".to_string(),
            ));
        }
        if self.save_every == Some(0) {
            return Err(TrainError::Config(
                "save every must be at least 1 step (leave it out to save at epoch ends only)"
                    .to_string(),
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

/// Rejects AdamW settings that make the update undefined or silently wrong. The step runs in
/// float32 (`ponder_model::fused::adamw`), so a value that float32 rounds to zero counts as
/// zero: an ε of 0 divides 0 by 0 for every parameter whose gradient was 0 so far, and the
/// saved weights would be NaN.
fn validate_optimizer(optimizer: &AdamWConfig) -> Result<(), TrainError> {
    let AdamWConfig {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        max_grad_norm,
    } = *optimizer;
    let invalid = |message: String| Err(TrainError::Config(message));
    if !(lr.is_finite() && lr >= 0.0) {
        return invalid(format!("learning rate must be finite and >= 0, got {lr}"));
    }
    for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
        if !(0.0..1.0).contains(&beta) {
            return invalid(format!("AdamW {name} must be in [0, 1), got {beta}"));
        }
    }
    if !(eps.is_finite() && eps >= f64::from(f32::MIN_POSITIVE)) {
        return invalid(format!(
            "AdamW eps must be finite and at least {:e} (the update runs in float32), got {eps}",
            f32::MIN_POSITIVE
        ));
    }
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        return invalid(format!(
            "weight decay must be finite and >= 0, got {weight_decay}"
        ));
    }
    // Decoupled decay multiplies every weight by 1 − lr·wd per step; at or below 0 it flips or
    // zeroes them.
    if lr * weight_decay >= 1.0 {
        return invalid(format!(
            "learning rate × weight decay must be below 1 (each step multiplies the weights by \
             1 − lr·weight_decay), got {lr} × {weight_decay}"
        ));
    }
    if let Some(norm) = max_grad_norm
        && !(norm.is_finite() && norm > 0.0)
    {
        return invalid(format!(
            "max grad norm must be finite and > 0 (leave it out for no clipping), got {norm}"
        ));
    }
    Ok(())
}

impl DpoConfig {
    /// Pairs per forward when computing reference log-probs: the micro-batch size, or 4 under a
    /// token budget.
    pub fn reference_batch_pairs(&self) -> usize {
        match self.batch {
            BatchSizeConfig::Pairs(n) => n,
            BatchSizeConfig::Tokens(_) => 4,
        }
    }

    /// The key of a run with these settings on the reference whose cache key is
    /// `reference_key`: what a resumable checkpoint must match. The progress bar and gradient
    /// checkpointing do not change results and are left out.
    ///
    /// # Errors
    ///
    /// [`TrainError::State`] when the configuration cannot be serialised.
    pub fn run_key(&self, reference_key: &str) -> Result<String, TrainError> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(reference_key.as_bytes());
        // the progress bar does not change the result
        let mut shaping = self.clone();
        shaping.progress = false;
        let json = serde_json::to_vec(&shaping)
            .map_err(|e| TrainError::State(format!("serialising the config: {e}")))?;
        hasher.update(&json);
        Ok(format!("{:x}", hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of validating the default configuration changed by `change`.
    fn refusal(change: impl FnOnce(&mut DpoConfig)) -> String {
        let mut config = DpoConfig::default();
        change(&mut config);
        match config.validate() {
            Err(TrainError::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        DpoConfig::default().validate().unwrap();
    }

    #[test]
    fn every_optimizer_value_is_checked() {
        type Change = Box<dyn FnOnce(&mut DpoConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("eps", Box::new(|c: &mut DpoConfig| c.optimizer.eps = 0.0)),
            ("eps", Box::new(|c: &mut DpoConfig| c.optimizer.eps = 1e-50)),
            (
                "eps",
                Box::new(|c: &mut DpoConfig| c.optimizer.eps = f64::NAN),
            ),
            ("eps", Box::new(|c: &mut DpoConfig| c.optimizer.eps = -1e-8)),
            (
                "weight decay",
                Box::new(|c: &mut DpoConfig| c.optimizer.weight_decay = f64::NAN),
            ),
            (
                "weight decay",
                Box::new(|c: &mut DpoConfig| c.optimizer.weight_decay = -0.1),
            ),
            (
                "weight decay",
                Box::new(|c: &mut DpoConfig| c.optimizer.weight_decay = f64::INFINITY),
            ),
            (
                "learning rate × weight decay",
                Box::new(|c: &mut DpoConfig| {
                    c.optimizer.lr = 10.0;
                    c.optimizer.weight_decay = 0.1;
                }),
            ),
            (
                "learning rate",
                Box::new(|c: &mut DpoConfig| c.optimizer.lr = f64::NAN),
            ),
            (
                "learning rate",
                Box::new(|c: &mut DpoConfig| c.optimizer.lr = f64::INFINITY),
            ),
            (
                "learning rate",
                Box::new(|c: &mut DpoConfig| c.optimizer.lr = -1e-6),
            ),
            (
                "beta1",
                Box::new(|c: &mut DpoConfig| c.optimizer.beta1 = 1.0),
            ),
            (
                "beta1",
                Box::new(|c: &mut DpoConfig| c.optimizer.beta1 = f64::NAN),
            ),
            (
                "beta2",
                Box::new(|c: &mut DpoConfig| c.optimizer.beta2 = -0.5),
            ),
            (
                "max grad norm",
                Box::new(|c: &mut DpoConfig| c.optimizer.max_grad_norm = Some(f64::NAN)),
            ),
            (
                "max grad norm",
                Box::new(|c: &mut DpoConfig| c.optimizer.max_grad_norm = Some(f64::INFINITY)),
            ),
            (
                "max grad norm",
                Box::new(|c: &mut DpoConfig| c.optimizer.max_grad_norm = Some(-1.0)),
            ),
            ("beta", Box::new(|c: &mut DpoConfig| c.loss.beta = f64::NAN)),
            ("beta", Box::new(|c: &mut DpoConfig| c.loss.beta = 0.0)),
            (
                "label smoothing",
                Box::new(|c: &mut DpoConfig| c.loss.label_smoothing = f64::NAN),
            ),
            (
                "nll",
                Box::new(|c: &mut DpoConfig| c.loss.nll_weight = f64::INFINITY),
            ),
            (
                "save every",
                Box::new(|c: &mut DpoConfig| c.save_every = Some(0)),
            ),
            (
                "max length",
                Box::new(|c: &mut DpoConfig| c.max_length = Some(0)),
            ),
            ("epochs", Box::new(|c: &mut DpoConfig| c.epochs = 0)),
            (
                "batch size",
                Box::new(|c: &mut DpoConfig| c.batch = BatchSizeConfig::Pairs(0)),
            ),
        ];
        for (named, change) in cases {
            let message = refusal(change);
            assert!(message.contains(named), "`{named}` not in: {message}");
        }
    }

    #[test]
    fn small_but_usable_values_are_accepted() {
        let mut config = DpoConfig::default();
        config.optimizer.eps = 1e-30;
        config.optimizer.weight_decay = 0.0;
        config.optimizer.lr = 0.0;
        config.optimizer.max_grad_norm = None;
        config.validate().unwrap();
    }
}

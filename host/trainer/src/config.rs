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

//! The trainer's view of `ponder_model::CausalLm`.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use ponder_checkpoint::{Checkpoint, Weights};
use ponder_model::{CausalLm, LoraConfig, ScoringBatch};

use crate::error::TrainError;
use crate::logps::LogProbModel;

/// The Hugging Face name of a parameter from its burn module path (defined with the model's
/// naming walk in `ponder-model`).
pub use ponder_model::hf_name;

/// A model the trainer can build, differentiate and save.
pub trait TrainableModel: Module + LogProbModel + Sized {
    /// Builds the model from a checkpoint on `device` (plain or autodiff).
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] when the checkpoint does not fit the architecture.
    fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, TrainError>;
    /// The weights in Hugging Face names and layout, on the host (LoRA merged).
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] when a tensor cannot be read back.
    fn to_weights(&self) -> Result<Weights, TrainError>;
    /// Freezes every weight and attaches fresh LoRA adapters (output unchanged), seeded by
    /// `seed`.
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] for an invalid configuration or a model that has adapters.
    fn with_lora(self, config: &LoraConfig, seed: u64) -> Result<Self, TrainError>;
    /// Freezes every weight and attaches LoRA adapters holding `weights` (from
    /// [`TrainableModel::lora_weights`]).
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] when an adapter is missing or has the wrong shape.
    fn with_lora_weights(self, config: &LoraConfig, weights: &Weights) -> Result<Self, TrainError>;
    /// The adapters' weights, unmerged (empty without LoRA).
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] when a tensor cannot be read back.
    fn lora_weights(&self) -> Result<Weights, TrainError>;
}

fn model_error(e: ponder_model::ModelError) -> TrainError {
    TrainError::Model(e.to_string())
}

impl LogProbModel for CausalLm {
    fn sequence_logprob_sums(&self, batch: &ScoringBatch) -> Result<Tensor<1>, TrainError> {
        CausalLm::sequence_logprob_sums(self, batch).map_err(model_error)
    }
}

impl TrainableModel for CausalLm {
    fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, TrainError> {
        CausalLm::from_checkpoint(checkpoint, device).map_err(model_error)
    }

    fn to_weights(&self) -> Result<Weights, TrainError> {
        CausalLm::to_weights(self).map_err(model_error)
    }

    fn with_lora(self, config: &LoraConfig, seed: u64) -> Result<Self, TrainError> {
        CausalLm::with_lora(self, config, seed).map_err(model_error)
    }

    fn with_lora_weights(self, config: &LoraConfig, weights: &Weights) -> Result<Self, TrainError> {
        CausalLm::with_lora_weights(self, config, weights).map_err(model_error)
    }

    fn lora_weights(&self) -> Result<Weights, TrainError> {
        CausalLm::lora_weights(self).map_err(model_error)
    }
}

//! The trainer's view of `ponder_model::CausalLm`.

use burn::tensor::{Device, Int, Tensor};
use ponder_checkpoint::{Checkpoint, Weights};
use ponder_model::{CausalLm, LoraConfig, PaddingSide, TokenBatch};

use crate::error::TrainError;
use crate::logps::LogitsModel;
use crate::train::TrainableModel;

fn model_error(e: ponder_model::ModelError) -> TrainError {
    TrainError::Model(e.to_string())
}

impl LogitsModel for CausalLm {
    fn logits_at(
        &self,
        ids: &[u32],
        rows: usize,
        len: usize,
        lengths: &[usize],
        cells: Tensor<1, Int>,
    ) -> Result<Tensor<2>, TrainError> {
        let sequences: Vec<Vec<u32>> = (0..rows)
            .map(|row| ids[row * len..row * len + lengths[row]].to_vec())
            .collect();
        let batch = TokenBatch::padded(&sequences, PaddingSide::Right).map_err(model_error)?;
        let hidden = self.forward_hidden(&batch).map_err(model_error)?;
        let [batch_rows, batch_len, width] = hidden.dims();
        // only the completion positions go through the (vocabulary-sized) head
        let selected = hidden
            .reshape([batch_rows * batch_len, width])
            .select(0, cells);
        Ok(self.head_logits(selected))
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

/// The Hugging Face name of a parameter of [`CausalLm`] from its module path
/// (`layers.0.self_attn.q_proj.weight` → `model.layers.0.self_attn.q_proj.weight`).
pub fn hf_name(module_path: &str) -> String {
    if module_path == "embed_tokens" {
        "model.embed_tokens.weight".to_string()
    } else if module_path.starts_with("lm_head") {
        module_path.to_string()
    } else {
        format!("model.{module_path}")
    }
}

//! Sequence log-probabilities of completions through the model crate's one log-prob path:
//! pairs are laid out as a [`ScoringBatch`] and scored with
//! [`CausalLm::sequence_logprob_sums`](ponder_model::CausalLm::sequence_logprob_sums)
//! (log-softmax at the completion positions only, summed per sequence, differentiable).

use burn::tensor::Tensor;
use ponder_model::ScoringBatch;

use crate::data::TokenizedPair;
use crate::error::TrainError;

/// What the trainer needs from a causal language model: sequence log-probs of a laid-out batch.
pub trait LogProbModel {
    /// Per-sequence sums of the scored (completion) tokens' log-probabilities of `batch`,
    /// `[sequences]`. Must be differentiable when the model lives on an autodiff device.
    ///
    /// # Errors
    ///
    /// [`TrainError::Model`] when the model cannot run the batch.
    fn sequence_logprob_sums(&self, batch: &ScoringBatch) -> Result<Tensor<1>, TrainError>;
}

/// Lays out the chosen sequences of `pairs` first, then the rejected ones in the same order
/// (sequence `i` is pair `i`'s chosen, `n + i` its rejected).
///
/// # Errors
///
/// [`TrainError::Config`] for an empty batch, or a prompt or completion without tokens.
pub fn pair_batch(pairs: &[&TokenizedPair]) -> Result<ScoringBatch, TrainError> {
    if pairs.is_empty() {
        return Err(TrainError::Config("empty batch".to_string()));
    }
    let n = pairs.len();
    let prompts: Vec<&[u32]> = pairs.iter().chain(pairs).map(|p| &p.prompt[..]).collect();
    let completions: Vec<&[u32]> = pairs
        .iter()
        .map(|p| &p.chosen[..])
        .chain(pairs.iter().map(|p| &p.rejected[..]))
        .collect();
    for (row, (prompt, completion)) in prompts.iter().zip(&completions).enumerate() {
        if prompt.is_empty() || completion.is_empty() {
            return Err(TrainError::Config(format!(
                "sequence {row}: the prompt and the completion need at least one token each"
            )));
        }
    }
    debug_assert_eq!(prompts.len(), 2 * n);
    ScoringBatch::new(&prompts, &completions).map_err(|e| TrainError::Model(e.to_string()))
}

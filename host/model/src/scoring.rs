//! Log-probabilities of continuations given prompts: the primitive DPO and `choice-logprobs`
//! stand on, and the one log-prob path of the crate's users: the trainer lays its pairs out as a
//! [`ScoringBatch`] and differentiates [`CausalLm::sequence_logprob_sums`]; scoring reads
//! [`CausalLm::target_logprobs`] per token ([`sequence_logprobs`]).

use burn::tensor::{Int, Tensor, TensorData};

use crate::batch::{PaddingSide, TokenBatch};
use crate::cpu_engine::CpuEngine;
use crate::{CausalLm, ModelError, fused};

/// Prompt + continuation pairs laid out for one forward: the right-padded token grid, which
/// cells predict a continuation token, and which sequence each scored token belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoringBatch {
    /// `prompt ++ continuation` per sequence, right-padded.
    pub tokens: TokenBatch,
    /// Flat cell index (`row * len + column`) whose logits predict each scored token.
    pub predict_at: Vec<usize>,
    /// The scored (continuation) tokens, in order.
    pub targets: Vec<u32>,
    /// The sequence each scored token belongs to.
    pub owners: Vec<usize>,
    /// Number of sequences.
    pub sequences: usize,
}

impl ScoringBatch {
    /// Lays out `prompts[i] ++ continuations[i]`; only continuation tokens are scored. Every
    /// prompt must be non-empty (its last token predicts the first continuation token).
    ///
    /// # Errors
    ///
    /// [`ModelError::InvalidRequest`] when the two lists differ in length, a prompt is empty or
    /// there is no sequence at all.
    pub fn new<P: AsRef<[u32]>, C: AsRef<[u32]>>(
        prompts: &[P],
        continuations: &[C],
    ) -> Result<Self, ModelError> {
        if prompts.len() != continuations.len() {
            return Err(ModelError::InvalidRequest(format!(
                "{} prompts but {} continuations",
                prompts.len(),
                continuations.len()
            )));
        }
        if let Some(index) = prompts.iter().position(|p| p.as_ref().is_empty()) {
            return Err(ModelError::InvalidRequest(format!(
                "prompt {index} is empty"
            )));
        }
        let joined: Vec<Vec<u32>> = prompts
            .iter()
            .zip(continuations)
            .map(|(p, c)| p.as_ref().iter().chain(c.as_ref()).copied().collect())
            .collect();
        let tokens = TokenBatch::padded(&joined, PaddingSide::Right)?;
        let mut predict_at = Vec::new();
        let mut targets = Vec::new();
        let mut owners = Vec::new();
        for (row, (prompt, continuation)) in prompts.iter().zip(continuations).enumerate() {
            let prompt_len = prompt.as_ref().len();
            for (offset, &token) in continuation.as_ref().iter().enumerate() {
                predict_at.push(row * tokens.len + prompt_len - 1 + offset);
                targets.push(token);
                owners.push(row);
            }
        }
        Ok(ScoringBatch {
            tokens,
            predict_at,
            targets,
            owners,
            sequences: prompts.len(),
        })
    }

    /// Scored (continuation) tokens of each sequence.
    pub fn scored_per_sequence(&self) -> Vec<usize> {
        let mut counts = vec![0; self.sequences];
        for &owner in &self.owners {
            counts[owner] += 1;
        }
        counts
    }

    /// Real (unpadded) tokens in the batch, prompts included.
    pub fn real_tokens(&self) -> usize {
        self.tokens.valid.iter().filter(|&&valid| valid).count()
    }

    /// Sums per-token values `[scored tokens]` into per-sequence totals `[sequences]`
    /// (differentiable: a matmul with a 0/1 ownership matrix).
    pub fn sequence_sums(&self, per_token: Tensor<1>) -> Tensor<1> {
        let device = per_token.device();
        let count = self.targets.len();
        if count == 0 {
            return Tensor::zeros([self.sequences], &device);
        }
        let mut ownership = vec![0f32; self.sequences * count];
        for (index, &owner) in self.owners.iter().enumerate() {
            ownership[owner * count + index] = 1.0;
        }
        let ownership =
            Tensor::<2>::from_data(TensorData::new(ownership, [self.sequences, count]), &device);
        ownership
            .matmul(per_token.reshape([count, 1]))
            .reshape([self.sequences])
    }
}

/// Per-token and summed log-probabilities of one continuation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ContinuationLogprobs {
    /// `log p(continuation[t] | prompt, continuation[..t])` for every token.
    pub token_logprobs: Vec<f64>,
    /// Their sum.
    pub total: f64,
}

impl CausalLm {
    /// Log-probability of every scored token of `scoring` (`[scored tokens]`), differentiable
    /// on autodiff devices. Only the scored positions go through the output head, and the
    /// log-softmax is taken at the targets only ([`fused::log_softmax_at`]). On the plain CPU
    /// device (no gradients) it runs on [`CpuEngine`].
    ///
    /// # Errors
    ///
    /// [`ModelError`] when the batch does not fit the model (a token outside the vocabulary).
    pub fn target_logprobs(&self, scoring: &ScoringBatch) -> Result<Tensor<1>, ModelError> {
        let device = self.device();
        let count = scoring.targets.len();
        if count == 0 {
            return Ok(Tensor::zeros([0], &device));
        }
        // Without gradients on the plain CPU the engine's kernels do the same computation
        // without burn's per-operation overhead.
        if let Some(engine) = CpuEngine::single_pass(self) {
            let values = engine.target_logprobs(scoring)?;
            return Ok(Tensor::from_data(TensorData::new(values, [count]), &device));
        }
        self.target_logprobs_on_burn(scoring)
    }

    /// [`CausalLm::target_logprobs`] as burn operations (differentiable; every device).
    pub(crate) fn target_logprobs_on_burn(
        &self,
        scoring: &ScoringBatch,
    ) -> Result<Tensor<1>, ModelError> {
        let device = self.device();
        let count = scoring.targets.len();
        let hidden = self.forward_hidden(&scoring.tokens)?;
        let [rows, len, width] = hidden.dims();
        let flat = hidden.reshape([rows * len, width]);
        let cells: Vec<i64> = scoring.predict_at.iter().map(|&c| c as i64).collect();
        let cells = Tensor::<1, Int>::from_data(TensorData::new(cells, [count]), &device);
        let logits = self.head_logits(flat.select(0, cells));
        let targets: Vec<usize> = scoring.targets.iter().map(|&t| t as usize).collect();
        Ok(fused::log_softmax_at(logits, &targets))
    }

    /// Per-sequence sums of the scored tokens' log-probabilities, `[sequences]`: what DPO
    /// compares (differentiable on autodiff devices).
    ///
    /// # Errors
    ///
    /// As [`CausalLm::target_logprobs`].
    pub fn sequence_logprob_sums(&self, scoring: &ScoringBatch) -> Result<Tensor<1>, ModelError> {
        Ok(scoring.sequence_sums(self.target_logprobs(scoring)?))
    }
}

/// Batched log-probabilities of `continuations[i]` given `prompts[i]`, computed in chunks of
/// at most `max_batch_tokens` padded tokens (at least one sequence per chunk).
///
/// # Errors
///
/// As [`ScoringBatch::new`] and [`CausalLm::target_logprobs`], and
/// [`ModelError::TensorRead`] when the values cannot be read back.
pub fn sequence_logprobs(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    continuations: &[Vec<u32>],
    max_batch_tokens: usize,
) -> Result<Vec<ContinuationLogprobs>, ModelError> {
    if prompts.len() != continuations.len() {
        return Err(ModelError::InvalidRequest(format!(
            "{} prompts but {} continuations",
            prompts.len(),
            continuations.len()
        )));
    }
    let mut out = Vec::with_capacity(prompts.len());
    let mut start = 0;
    while start < prompts.len() {
        let mut end = start + 1;
        let mut longest = prompts[start].len() + continuations[start].len();
        while end < prompts.len() {
            let candidate = longest.max(prompts[end].len() + continuations[end].len());
            if candidate * (end + 1 - start) > max_batch_tokens {
                break;
            }
            longest = candidate;
            end += 1;
        }
        let scoring = ScoringBatch::new(&prompts[start..end], &continuations[start..end])?;
        let values = model
            .target_logprobs(&scoring)?
            .try_into_vec_as::<f32>()
            .map_err(|e| ModelError::TensorRead(format!("{e:?}")))?;
        let mut chunk: Vec<ContinuationLogprobs> = (start..end)
            .map(|_| ContinuationLogprobs {
                token_logprobs: Vec::new(),
                total: 0.0,
            })
            .collect();
        for (value, &owner) in values.iter().zip(&scoring.owners) {
            chunk[owner].token_logprobs.push(*value as f64);
            chunk[owner].total += *value as f64;
        }
        out.extend(chunk);
        start = end;
    }
    Ok(out)
}

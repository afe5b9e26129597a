//! Evaluation without gradients: the DPO loss and reward statistics of a model on validation
//! pairs, and the policy's sequence log-probs.

use burn::tensor::Device;

use crate::data::TokenizedPair;
use crate::error::TrainError;
use crate::logps::LogProbModel;
use crate::loss::LossConfig;
use crate::model::TrainableModel;
use crate::reference::{ReferenceLogps, compute_logps};
use crate::train::{MicroBatch, micro_step, weight_normalisation};

/// Evaluates the DPO loss and reward statistics of `model` on `pairs` without gradients
/// (validation): returns `(loss, mean reward margin, reward accuracy)`. `_device` is kept for
/// the callers that name it; the forward runs where `model` lives.
///
/// # Errors
///
/// [`TrainError::Config`] when the pairs' weights sum to zero or a pair has no tokens,
/// [`TrainError::Model`] when the model cannot run a batch, [`TrainError::NonFinite`] for a
/// non-finite loss.
pub fn evaluate_pairs<M: TrainableModel>(
    model: &M,
    pairs: &[TokenizedPair],
    reference: &[ReferenceLogps],
    loss: &LossConfig,
    batch_pairs: usize,
    _device: &Device,
) -> Result<(f64, f64, f64), TrainError> {
    let (scale, total) = weight_normalisation(pairs.iter().map(|p| p.weight));
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
        let micro = MicroBatch {
            pairs: &batch,
            reference: &refs,
            weight_scale: scale,
            weight_total: total,
        };
        let stats = micro_step(model, &micro, loss, 0, None)?;
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
///
/// # Errors
///
/// As [`compute_logps`].
pub fn policy_logps<M: LogProbModel>(
    model: &M,
    pairs: &[TokenizedPair],
    batch_pairs: usize,
    device: &Device,
) -> Result<Vec<ReferenceLogps>, TrainError> {
    compute_logps(model, pairs, batch_pairs, device)
}

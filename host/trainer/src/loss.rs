//! DPO-family preference losses as functions of per-pair sequence log-probabilities.
//!
//! Conventions follow `reference/tiny/dpo.json` (and TRL): `z = (πc − rc) − (πr − rr)` from sums of
//! completion-token log-probs; IPO builds `z` from per-token MEAN log-probs; the batch loss is the
//! weighted mean of per-pair losses (all weights 1 → plain mean).

use burn::tensor::Tensor;
use burn::tensor::activation::{log_sigmoid, relu};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Which preference loss to optimise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Sigmoid DPO: `−log σ(βz)` (with label smoothing ε: conservative DPO,
    /// `−(1−ε) log σ(βz) − ε log σ(−βz)`).
    Sigmoid,
    /// IPO: `(z̄ − 1/(2β))²`, `z̄` from per-token mean log-ratios.
    Ipo,
    /// Hinge (SLiC): `relu(1 − βz)`.
    Hinge,
    /// Robust DPO: `(−(1−ε) log σ(βz) + ε log σ(−βz)) / (1 − 2ε)`.
    Robust,
}

impl std::str::FromStr for LossKind {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sigmoid" | "dpo" => Ok(Self::Sigmoid),
            "ipo" => Ok(Self::Ipo),
            "hinge" => Ok(Self::Hinge),
            "robust" => Ok(Self::Robust),
            other => Err(TrainError::Config(format!(
                "unknown loss `{other}` (expected sigmoid, ipo, hinge or robust)"
            ))),
        }
    }
}

/// Loss hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// The loss family.
    pub kind: LossKind,
    /// β: strength of the implicit KL penalty (TRL default 0.1).
    pub beta: f64,
    /// ε for `robust` and for label-smoothed (conservative) `sigmoid`; 0 = off.
    pub label_smoothing: f64,
    /// Weight of the NLL term on the chosen completion (IRPO / RPO); 0 = off.
    pub nll_weight: f64,
    /// Build `z` from per-token mean log-probs instead of sums (length-normalised DPO).
    /// IPO always uses means.
    pub length_normalized: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            kind: LossKind::Sigmoid,
            beta: 0.1,
            label_smoothing: 0.0,
            nll_weight: 0.0,
            length_normalized: false,
        }
    }
}

impl LossConfig {
    /// Rejects values for which the loss is undefined.
    ///
    /// # Errors
    ///
    /// [`TrainError::Config`] naming the offending value.
    pub fn validate(&self) -> Result<(), TrainError> {
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(TrainError::Config(format!(
                "beta must be positive, got {}",
                self.beta
            )));
        }
        // `contains` is false for NaN too
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(TrainError::Config(format!(
                "label smoothing must be in [0, 0.5), got {}",
                self.label_smoothing
            )));
        }
        if !(self.nll_weight.is_finite() && self.nll_weight >= 0.0) {
            return Err(TrainError::Config(format!(
                "nll weight must be >= 0, got {}",
                self.nll_weight
            )));
        }
        Ok(())
    }
}

/// Per-pair inputs of the loss, each a `[pairs]` tensor on the same device.
#[derive(Debug, Clone)]
pub struct PairLogps {
    /// Policy: sum of completion-token log-probs of the chosen completion (differentiable).
    pub policy_chosen: Tensor<1>,
    /// Policy: the same for the rejected completion (differentiable).
    pub policy_rejected: Tensor<1>,
    /// Reference model: chosen sums (constants).
    pub reference_chosen: Tensor<1>,
    /// Reference model: rejected sums (constants).
    pub reference_rejected: Tensor<1>,
    /// Number of completion tokens of the chosen completion.
    pub chosen_tokens: Tensor<1>,
    /// Number of completion tokens of the rejected completion.
    pub rejected_tokens: Tensor<1>,
    /// Per-pair weights, already divided by the total weight of the optimiser step, so the loss is
    /// `Σ wᵢ lᵢ` (equal weights over one batch → the mean).
    pub weights: Tensor<1>,
}

/// A loss value and the statistics TRL logs, per pair (detached, on the host).
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// The scalar loss to differentiate, shape `[1]`.
    pub loss: Tensor<1>,
    /// The preference part alone (without the NLL term), per pair.
    pub pair_losses: Vec<f32>,
    /// NLL of the chosen completion (mean over its tokens), per pair.
    pub chosen_nll: Vec<f32>,
    /// `β (πc − rc)` per pair (means instead of sums for IPO / length-normalised).
    pub chosen_rewards: Vec<f32>,
    /// `β (πr − rr)` per pair.
    pub rejected_rewards: Vec<f32>,
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap_or_default()
}

/// Computes the configured preference loss (plus the optional NLL term) over a batch of pairs.
pub fn preference_loss(config: &LossConfig, inputs: PairLogps) -> LossOutput {
    let PairLogps {
        policy_chosen,
        policy_rejected,
        reference_chosen,
        reference_rejected,
        chosen_tokens,
        rejected_tokens,
        weights,
    } = inputs;
    let beta = config.beta;
    let eps = config.label_smoothing;
    let per_token = config.length_normalized || config.kind == LossKind::Ipo;

    let chosen_nll = policy_chosen.clone().neg().div(chosen_tokens.clone());

    let (pc, pr, rc, rr) = if per_token {
        (
            policy_chosen.div(chosen_tokens.clone()),
            policy_rejected.div(rejected_tokens.clone()),
            reference_chosen.div(chosen_tokens),
            reference_rejected.div(rejected_tokens),
        )
    } else {
        (
            policy_chosen,
            policy_rejected,
            reference_chosen,
            reference_rejected,
        )
    };
    let chosen_ratio = pc - rc;
    let rejected_ratio = pr - rr;
    let z = chosen_ratio.clone() - rejected_ratio.clone();
    let scaled = z.clone().mul_scalar(beta);

    let losses = match config.kind {
        LossKind::Sigmoid => {
            let positive = log_sigmoid(scaled.clone()).neg().mul_scalar(1.0 - eps);
            if eps > 0.0 {
                positive - log_sigmoid(scaled.neg()).mul_scalar(eps)
            } else {
                positive
            }
        }
        LossKind::Robust => (log_sigmoid(scaled.clone()).neg().mul_scalar(1.0 - eps)
            + log_sigmoid(scaled.neg()).mul_scalar(eps))
        .div_scalar(1.0 - 2.0 * eps),
        LossKind::Hinge => relu(scaled.neg().add_scalar(1.0)),
        LossKind::Ipo => z.sub_scalar(1.0 / (2.0 * beta)).square(),
    };

    let mut loss = (losses.clone() * weights.clone()).sum();
    if config.nll_weight > 0.0 {
        loss = loss
            + (chosen_nll.clone() * weights)
                .sum()
                .mul_scalar(config.nll_weight);
    }

    LossOutput {
        loss,
        pair_losses: host(losses.detach()),
        chosen_nll: host(chosen_nll.detach()),
        chosen_rewards: host(chosen_ratio.detach().mul_scalar(beta)),
        rejected_rewards: host(rejected_ratio.detach().mul_scalar(beta)),
    }
}

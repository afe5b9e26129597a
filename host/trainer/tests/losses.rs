//! Every loss variant against `reference/tiny/dpo.json`, from its sequence log-probs.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{assert_rel, dpo_json, f};
use ponder_trainer::{LossConfig, LossKind, PairLogps, preference_loss};

fn inputs(json: &serde_json::Value, device: &Device) -> PairLogps {
    let pairs = json["pairs"].as_array().expect("pairs");
    let n = pairs.len();
    let column = |name: &str| -> Tensor<1> {
        let values: Vec<f32> = pairs.iter().map(|p| f(&p[name]) as f32).collect();
        Tensor::from_data(TensorData::new(values, [n]), device)
    };
    let count = |name: &str| -> Tensor<1> {
        let values: Vec<f32> = pairs
            .iter()
            .map(|p| p[name].as_array().expect("ids").len() as f32)
            .collect();
        Tensor::from_data(TensorData::new(values, [n]), device)
    };
    PairLogps {
        policy_chosen: column("policy_chosen_logp"),
        policy_rejected: column("policy_rejected_logp"),
        reference_chosen: column("ref_chosen_logp"),
        reference_rejected: column("ref_rejected_logp"),
        chosen_tokens: count("chosen_ids"),
        rejected_tokens: count("rejected_ids"),
        weights: Tensor::from_data(TensorData::new(vec![1.0 / n as f32; n], [n]), device),
    }
}

fn loss_of(config: LossConfig) -> f64 {
    let json = dpo_json();
    let device = common::device();
    let out = preference_loss(&config, inputs(&json, &device));
    f64::from(out.loss.into_scalar::<f32>())
}

fn config(kind: LossKind) -> LossConfig {
    let json = dpo_json();
    LossConfig {
        kind,
        beta: f(&json["conventions"]["beta"]),
        ..LossConfig::default()
    }
}

#[test]
fn sigmoid_matches_reference() {
    let json = dpo_json();
    assert_rel(
        "sigmoid",
        loss_of(config(LossKind::Sigmoid)),
        f(&json["losses"]["sigmoid"]),
    );
}

#[test]
fn hinge_matches_reference() {
    let json = dpo_json();
    assert_rel(
        "hinge",
        loss_of(config(LossKind::Hinge)),
        f(&json["losses"]["hinge"]),
    );
}

#[test]
fn ipo_uses_per_token_means_and_matches_reference() {
    let json = dpo_json();
    assert_rel(
        "ipo",
        loss_of(config(LossKind::Ipo)),
        f(&json["losses"]["ipo"]),
    );
}

#[test]
fn robust_matches_reference() {
    let json = dpo_json();
    let eps = f(&json["conventions"]["label_smoothing_eps"]);
    let value = loss_of(LossConfig {
        label_smoothing: eps,
        ..config(LossKind::Robust)
    });
    assert_rel("robust", value, f(&json["losses"]["robust"]));
}

#[test]
fn nll_term_matches_reference_and_adds_to_the_loss() {
    let json = dpo_json();
    let device = common::device();
    let out = preference_loss(&config(LossKind::Sigmoid), inputs(&json, &device));
    let mean_nll = out.chosen_nll.iter().map(|&v| f64::from(v)).sum::<f64>() / 4.0;
    assert_rel("nll", mean_nll, f(&json["losses"]["nll"]));
    let with_nll = loss_of(LossConfig {
        nll_weight: 0.5,
        ..config(LossKind::Sigmoid)
    });
    assert_rel(
        "sigmoid + 0.5 nll",
        with_nll,
        f(&json["losses"]["sigmoid"]) + 0.5 * f(&json["losses"]["nll"]),
    );
}

#[test]
fn label_smoothed_sigmoid_and_length_normalised_variants() {
    let json = dpo_json();
    let beta = f(&json["conventions"]["beta"]);
    let pairs = json["pairs"].as_array().expect("pairs");
    let z = |p: &serde_json::Value, normalise: bool| {
        let nc = if normalise {
            p["chosen_ids"].as_array().unwrap().len() as f64
        } else {
            1.0
        };
        let nr = if normalise {
            p["rejected_ids"].as_array().unwrap().len() as f64
        } else {
            1.0
        };
        (f(&p["policy_chosen_logp"]) - f(&p["ref_chosen_logp"])) / nc
            - (f(&p["policy_rejected_logp"]) - f(&p["ref_rejected_logp"])) / nr
    };
    let log_sigmoid = |x: f64| -(1.0 + (-x).exp()).ln();
    let eps = 0.1;
    let expected_smoothed: f64 = pairs
        .iter()
        .map(|p| {
            let s = beta * z(p, false);
            -(1.0 - eps) * log_sigmoid(s) - eps * log_sigmoid(-s)
        })
        .sum::<f64>()
        / 4.0;
    let smoothed = loss_of(LossConfig {
        label_smoothing: eps,
        ..config(LossKind::Sigmoid)
    });
    assert_rel("label-smoothed sigmoid", smoothed, expected_smoothed);
    let expected_normalised: f64 = pairs
        .iter()
        .map(|p| -log_sigmoid(beta * z(p, true)))
        .sum::<f64>()
        / 4.0;
    let normalised = loss_of(LossConfig {
        length_normalized: true,
        ..config(LossKind::Sigmoid)
    });
    assert_rel("length-normalised sigmoid", normalised, expected_normalised);
    // and it really differs from the plain loss on these pairs
    assert!((normalised - f(&json["losses"]["sigmoid"])).abs() > 1e-4);
}

#[test]
fn per_pair_weights_weight_the_mean() {
    let json = dpo_json();
    let device = common::device();
    let mut weighted = inputs(&json, &device);
    // all weight on pair 0
    weighted.weights =
        Tensor::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0], [4]), &device);
    let out = preference_loss(&config(LossKind::Sigmoid), weighted);
    let value = f64::from(out.loss.into_scalar::<f32>());
    assert_rel("weighted", value, f64::from(out.pair_losses[0]));
}

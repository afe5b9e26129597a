//! A `ModelConfig` built or edited by hand gets the same checks as one read from a file
//! (issue #11): sizes bounded, shape products checked, RoPE settings in range, so that building
//! a model from it is an error, never a panic in RoPE or an allocation sized by a wild number.

use ponder_checkpoint::{Checkpoint, RopeScaling};
use ponder_model::{CausalLm, ModelError, parse_device};

fn tiny_llama() -> Checkpoint {
    Checkpoint::load(&ponder_test_support::tiny_model_dir("llama")).expect("the tiny llama loads")
}

/// Builds the tiny llama with its configuration edited, returning the error's message.
fn build_error(edit: impl FnOnce(&mut ponder_checkpoint::ModelConfig)) -> String {
    let checkpoint = tiny_llama();
    let mut config = checkpoint.config.clone();
    edit(&mut config);
    let device = parse_device("cpu").expect("cpu device");
    match CausalLm::from_weights(&config, &checkpoint.weights, &device) {
        Ok(_) => panic!("built a model from {config:?}"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_linear_rope_factor_of_zero_is_refused() {
    let message = build_error(|config| {
        config.rope_scaling = Some(RopeScaling::Linear { factor: 0.0 });
    });
    assert!(
        message.contains("linear rope scaling factor is 0"),
        "{message}"
    );
}

#[test]
fn rope_theta_and_norm_epsilon_out_of_range_are_refused() {
    let message = build_error(|config| config.rope_theta = f64::NAN);
    assert!(message.contains("rope_theta is NaN"), "{message}");
    let message = build_error(|config| config.rms_norm_eps = -1.0);
    assert!(message.contains("rms_norm_eps is -1"), "{message}");
}

#[test]
fn a_head_dim_of_2_pow_62_is_refused_before_rope() {
    let message = build_error(|config| config.head_dim = 1 << 62);
    assert!(
        message.contains("head_dim is 4611686018427387904"),
        "{message}"
    );
}

#[test]
fn four_billion_layers_are_refused_before_loading_any() {
    let message = build_error(|config| config.num_hidden_layers = 4_000_000_000);
    assert!(
        message.contains("num_hidden_layers is 4000000000"),
        "{message}"
    );
}

#[test]
fn a_missing_tensor_is_named_once() {
    let checkpoint = tiny_llama();
    let mut weights = checkpoint.weights.clone();
    weights.take("model.norm.weight").expect("present");
    let device = parse_device("cpu").expect("cpu device");
    let error = match CausalLm::from_weights(&checkpoint.config, &weights, &device) {
        Ok(_) => panic!("built a model without its final norm"),
        Err(error) => error,
    };
    assert!(matches!(error, ModelError::Checkpoint(_)), "{error:?}");
    // Display and the source chain together, as anyhow's `{:#}` prints them.
    let mut chain = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(next) = cause {
        chain.push_str(&format!(": {next}"));
        cause = next.source();
    }
    assert_eq!(
        chain.matches("model.norm.weight is missing").count(),
        1,
        "{chain}"
    );
}

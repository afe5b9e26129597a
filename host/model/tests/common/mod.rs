//! Shared helpers of the model tests: loading the references and the embedded model (found by
//! `ponder-test-support`), and comparing logits.
#![allow(dead_code)]

use std::path::Path;

use burn::tensor::Device;
use ponder_checkpoint::Checkpoint;
use ponder_model::{CausalLm, parse_device};
pub use ponder_test_support::{embedded_model_path, reference_dir};

/// Loads a checkpoint without building a model.
pub fn load_checkpoint_only(path: &Path) -> ((), Checkpoint) {
    let checkpoint =
        Checkpoint::load(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    ((), checkpoint)
}

/// The device the reference tests run on: `$PONDER_TEST_DEVICE`
/// (`ponder_test_support::DEVICE_VAR`), `cpu` by default.
pub fn test_device() -> Device {
    let name = ponder_test_support::test_device_name();
    parse_device(&name).unwrap_or_else(|e| panic!("test device `{name}`: {e}"))
}

/// Loads a checkpoint and builds the model on the test device ([`test_device`]).
pub fn load_model(path: &Path) -> (CausalLm, Checkpoint) {
    load_model_on(path, &test_device())
}

/// Loads a checkpoint and builds the model on the plain CPU device, whatever the test device
/// (what the CPU engine's tests compare against).
pub fn load_cpu_model(path: &Path) -> (CausalLm, Checkpoint) {
    load_model_on(path, &parse_device("cpu").expect("cpu device"))
}

fn load_model_on(path: &Path, device: &Device) -> (CausalLm, Checkpoint) {
    let checkpoint =
        Checkpoint::load(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let model = CausalLm::from_checkpoint(&checkpoint, device)
        .unwrap_or_else(|e| panic!("building {}: {e}", path.display()));
    (model, checkpoint)
}

/// Row-wise log-softmax in f64 of `[rows, vocab]` logits.
pub fn log_softmax_rows(logits: &[f32], vocab: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(vocab) {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let lse = max
            + row
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln();
        out.extend(row.iter().map(|&l| l as f64 - lse));
    }
    out
}

/// Reads a tensor's values as f32.
pub fn to_vec<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Vec<f32> {
    tensor.try_into_vec_as::<f32>().expect("read tensor")
}

/// Largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The cases of `smollm2/reference_logits.json` (transformers on the embedded model).
pub fn smollm2_reference_cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(reference_dir().join("smollm2/reference_logits.json"))
        .expect("reference_logits.json");
    let reference: serde_json::Value = serde_json::from_str(&text).expect("parses");
    let cases = reference["cases"].as_array().expect("cases").clone();
    assert!(!cases.is_empty());
    cases
}

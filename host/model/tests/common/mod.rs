//! Shared helpers of the model tests: where the references and the embedded model are, and
//! loading them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ponder_checkpoint::Checkpoint;
use ponder_model::{CausalLm, parse_device};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/reference` next to the repository (or `PONDER_REFERENCE_DIR`).
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os("PONDER_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/reference"));
    assert!(
        dir.join("tiny/forward.json").is_file(),
        "reference outputs not found at {} (set PONDER_REFERENCE_DIR)",
        dir.display()
    );
    dir
}

/// The embedded default model; fails telling how to fetch it when absent.
pub fn embedded_model_path() -> PathBuf {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh to fetch the embedded model",
        path.display()
    );
    path
}

/// Loads a checkpoint without building a model.
pub fn load_checkpoint_only(path: &Path) -> ((), Checkpoint) {
    let checkpoint =
        Checkpoint::load(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    ((), checkpoint)
}

/// Loads a checkpoint and builds the model on the CPU.
pub fn load_model(path: &Path) -> (CausalLm, Checkpoint) {
    let checkpoint =
        Checkpoint::load(path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    let device = parse_device("cpu").expect("cpu device");
    let model = CausalLm::from_checkpoint(&checkpoint, &device)
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

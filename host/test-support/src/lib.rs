//! Where ponder's tests find their fixtures: the repository root, the Hugging Face reference
//! outputs in `../shared/reference` (see its README) and the embedded default model that
//! `scripts/setup.sh` fetches. A missing fixture fails the test with the fix, never skips it.
//! The device the reference suites run on is named by [`DEVICE_VAR`] (`cpu` by default).

use std::path::PathBuf;

/// Environment variable that points the tests at another copy of the reference outputs.
pub const REFERENCE_DIR_VAR: &str = "PONDER_REFERENCE_DIR";

/// Environment variable naming the device the model and trainer reference tests run on:
/// `cpu` (the default), or `wgpu` / `cuda:N` with the crates built with that feature, so that a
/// GPU machine runs the same suite (`PONDER_TEST_DEVICE=wgpu cargo test --release -p
/// ponder-model --features wgpu`).
pub const DEVICE_VAR: &str = "PONDER_TEST_DEVICE";

/// The device string the reference tests run on: `$PONDER_TEST_DEVICE`, else `cpu` (parse it
/// with `ponder_model::parse_device`).
pub fn test_device_name() -> String {
    std::env::var(DEVICE_VAR)
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "cpu".to_string())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    // This crate lives at host/test-support.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference outputs: `$PONDER_REFERENCE_DIR`, or `shared/reference` beside the repository.
/// Panics, naming the place looked at, when they are not there.
pub fn reference_dir() -> PathBuf {
    let dir = std::env::var_os(REFERENCE_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/reference"));
    assert!(
        dir.join("tiny").is_dir(),
        "reference outputs not found at {} (set {REFERENCE_DIR_VAR})",
        dir.display()
    );
    dir
}

/// One of the tiny random Hugging Face models of the references (`llama`, `qwen2`, ...).
pub fn tiny_model_dir(name: &str) -> PathBuf {
    reference_dir().join("tiny").join(name)
}

/// The embedded default model, SmolLM2-135M-Instruct Q4_1 GGUF. Panics with the set-up
/// instruction when it is absent.
pub fn embedded_model_path() -> PathBuf {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh to fetch the embedded default model",
        path.display()
    );
    path
}

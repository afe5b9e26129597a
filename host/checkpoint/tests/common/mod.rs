//! Paths shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `/work/shared/reference` (or `PONDER_REFERENCE_DIR`).
pub fn reference_dir() -> PathBuf {
    std::env::var_os("PONDER_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
        })
}

/// One of the tiny Hugging Face directories.
pub fn tiny(name: &str) -> PathBuf {
    reference_dir().join("tiny").join(name)
}

/// The embedded default GGUF; panics with the set-up instruction when it is absent.
pub fn embedded_gguf() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh to fetch the embedded default model",
        path.display()
    );
    path
}

/// Parses a JSON file.
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON array of integers as token ids.
pub fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an array of ids")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

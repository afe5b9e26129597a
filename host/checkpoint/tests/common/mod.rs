//! Paths shared by the integration tests.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

pub use ponder_test_support::{embedded_model_path as embedded_gguf, reference_dir};

/// One of the tiny Hugging Face directories.
pub fn tiny(name: &str) -> PathBuf {
    ponder_test_support::tiny_model_dir(name)
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

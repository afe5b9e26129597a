//! Shared helpers: the reference files and relative-tolerance checks.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// The device the tests run on: `$PONDER_TEST_DEVICE` (see
/// `ponder_test_support::test_device_name`), `cpu` by default.
pub fn device() -> burn::tensor::Device {
    let name = ponder_test_support::test_device_name();
    ponder_model::parse_device(&name).unwrap_or_else(|e| panic!("test device `{name}`: {e}"))
}

/// `tiny/` of the reference outputs (see `ponder_test_support::reference_dir`).
pub fn tiny_dir() -> PathBuf {
    ponder_test_support::reference_dir().join("tiny")
}

/// The parsed `tiny/dpo.json`.
pub fn dpo_json() -> Value {
    let path = tiny_dir().join("dpo.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("dpo.json is JSON")
}

/// Asserts `|actual − expected| <= 1e-3 · |expected|` (with a tiny absolute floor).
pub fn assert_rel(what: &str, actual: f64, expected: f64) {
    let tolerance = 1e-3 * expected.abs().max(1e-6);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected} (relative error {:.2e})",
        (actual - expected).abs() / expected.abs().max(1e-12)
    );
}

pub fn f(value: &Value) -> f64 {
    value.as_f64().expect("a number")
}

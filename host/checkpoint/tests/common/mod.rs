//! Paths shared by the integration tests.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;

pub mod gguf;

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

/// Copies a model directory into `dst` as fresh, writable files (the reference copies are
/// read-only), so a test can edit one of them.
pub fn copy_model_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        std::fs::write(dst.join(entry.file_name()), bytes).unwrap();
    }
}

/// Replaces top-level fields of `dir/config.json`.
pub fn edit_config(dir: &std::path::Path, fields: serde_json::Value) {
    let path = dir.join("config.json");
    let mut config = read_json(&path);
    for (key, value) in fields.as_object().expect("an object of fields") {
        config[key] = value.clone();
    }
    std::fs::write(&path, config.to_string()).unwrap();
}

/// An error and its causes as anyhow's `{:#}` prints them: every `source()` appended.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Property-test settings: `default_cases` keeps each property file to seconds in release on
/// two cores (CI); set `PROPTEST_CASES` to fuzz longer, e.g.
/// `PROPTEST_CASES=20000 cargo test --release -p ponder-checkpoint --test fuzz_gguf`.
/// Failures are not persisted to files: each crash found becomes a named regression test.
pub fn proptest_config(default_cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// Fails the property when `started` is more than `seconds` ago: a case that ends, however it
/// ends, must end promptly.
pub fn assert_prompt(started: std::time::Instant, seconds: u64, what: &str) {
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(seconds),
        "{what} took {elapsed:?}"
    );
}

//! The model commands on hostile model files and absurd flags (issue #11): each case is a
//! clear error (or works) through the real binary, never a panic, an abort or a hang.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ponder_e2e::{Outcome, ponder};

/// Runs `ponder` with `args`, asserting that it ended promptly and did not crash.
fn run(args: &[&str]) -> Outcome {
    let cache = tempfile::tempdir().expect("cache directory");
    let started = Instant::now();
    let outcome = ponder(args, cache.path());
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(120),
        "{args:?} took {elapsed:?}"
    );
    for crash in [
        "panicked",
        "memory allocation",
        "capacity overflow",
        "RUST_BACKTRACE",
    ] {
        assert!(!outcome.stderr.contains(crash), "{args:?}: {outcome:?}");
    }
    outcome
}

/// Runs `ponder` with `args`, expecting a failure, and returns its stderr.
fn failure(args: &[&str]) -> String {
    let outcome = run(args);
    assert!(!outcome.success, "{args:?} succeeded: {outcome:?}");
    outcome.stderr
}

/// A writable copy of the tiny random llama (context 256) in `dir`.
fn tiny_llama_copy(dir: &Path) -> PathBuf {
    let source = ponder_test_support::tiny_model_dir("llama");
    let model = dir.join("llama");
    std::fs::create_dir_all(&model).expect("model directory");
    for entry in std::fs::read_dir(&source).expect("tiny llama") {
        let entry = entry.expect("entry");
        let bytes = std::fs::read(entry.path()).expect("read");
        std::fs::write(model.join(entry.file_name()), bytes).expect("write");
    }
    model
}

fn edit_config(model: &Path, field: &str, value: serde_json::Value) {
    let path = model.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("JSON");
    config[field] = value;
    std::fs::write(&path, config.to_string()).expect("write config");
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

#[test]
fn generate_with_an_absurd_sample_count_is_a_usage_error() {
    let stderr = failure(&["generate", "--prompt", "hi", "-k", "2305843009213693952"]);
    assert!(
        stderr.contains("2305843009213693952") && stderr.contains("1..=1024"),
        "{stderr}"
    );
    let stderr = failure(&["generate", "--prompt", "hi", "-k", "0"]);
    assert!(stderr.contains("1..=1024"), "{stderr}");
}

#[test]
fn bench_flags_are_bounded() {
    let stderr = failure(&["bench", "generate", "-k", "2305843009213693952"]);
    assert!(stderr.contains("1..=1024"), "{stderr}");
    let stderr = failure(&["bench", "plugins", "--iterations", "4294967295"]);
    assert!(stderr.contains("4294967295"), "{stderr}");
    let stderr = failure(&["bench", "score", "--pairs", "1000000000000"]);
    assert!(stderr.contains("1..=100000"), "{stderr}");
}

#[test]
fn bench_score_scores_every_token_of_the_pairs() {
    let model = ponder_test_support::tiny_model_dir("llama");
    let outcome = run(&[
        "bench",
        "score",
        "--model",
        text(&model),
        "--pairs",
        "3",
        "--completion-tokens",
        "12",
        "--batch-pairs",
        "2",
        "--runs",
        "2",
    ]);
    assert!(outcome.success, "{outcome:?}");
    let report: serde_json::Value = serde_json::from_str(&outcome.stdout).expect("JSON report");
    assert_eq!(report["pairs"], 3);
    // Each pair scores its prompt twice and both completions: more than 3 × 2 × 12 tokens.
    assert!(
        report["scored_tokens"].as_u64().expect("count") > 72,
        "{report}"
    );
    let rates = report["tokens_per_second_min_median_max"]
        .as_array()
        .expect("rates");
    assert_eq!(rates.len(), 3);
    assert!(rates.iter().all(|r| r.as_f64().is_some_and(|r| r > 0.0)));
    assert_eq!(outcome.stderr.matches("tokens/s").count(), 2, "{outcome:?}");
}

#[test]
fn generate_with_four_billion_new_tokens_is_an_error_not_an_abort() {
    let stderr = failure(&[
        "generate",
        "--prompt",
        "hi",
        "--max-new-tokens",
        "4294967295",
    ]);
    assert!(stderr.contains("4294967295"), "{stderr}");
}

#[test]
fn generate_beyond_the_model_context_is_an_invalid_request() {
    // The tiny llama's context is 256 tokens: the prompt plus 300 new tokens cannot fit.
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_llama_copy(dir.path());
    let stderr = failure(&[
        "generate",
        "--model",
        text(&model),
        "--prompt",
        "hi",
        "--temperature",
        "0",
        "--max-new-tokens",
        "300",
    ]);
    assert!(stderr.contains("invalid request"), "{stderr}");
}

#[test]
fn tokenize_with_four_billion_layers_is_a_clean_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_llama_copy(dir.path());
    edit_config(
        &model,
        "num_hidden_layers",
        serde_json::json!(4_000_000_000u64),
    );
    let stderr = failure(&["tokenize", "--model", text(&model), "hi"]);
    assert_eq!(
        stderr.matches("num_hidden_layers is 4000000000").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn tokenize_chat_with_a_hostile_template_is_a_clean_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_llama_copy(dir.path());
    std::fs::write(
        model.join("chat_template.jinja"),
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    .expect("write template");
    let stderr = failure(&["tokenize", "--chat", "--model", text(&model), "hi"]);
    assert!(
        stderr.contains("chat template") && stderr.contains("work budget"),
        "{stderr}"
    );
}

#[test]
fn logits_print_nan_truthfully() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_llama_copy(dir.path());
    // Set the final norm's weights to NaN in place: every logit becomes NaN.
    let path = model.join("model.safetensors");
    let mut bytes = std::fs::read(&path).expect("weights");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + header_len]).expect("header");
    let offsets = &header["model.norm.weight"]["data_offsets"];
    let start = 8 + header_len + offsets[0].as_u64().expect("start") as usize;
    let end = 8 + header_len + offsets[1].as_u64().expect("end") as usize;
    for value in bytes[start..end].chunks_exact_mut(4) {
        value.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(&path, bytes).expect("write weights");
    let outcome = run(&["logits", "--model", text(&model), "--top", "3", "hi"]);
    assert!(outcome.success, "{outcome:?}");
    assert_eq!(outcome.stdout.lines().count(), 3, "{outcome:?}");
    for line in outcome.stdout.lines() {
        assert!(line.contains("NaN"), "{line}");
        assert!(!line.contains("0.0000"), "{line}");
    }
}

#[test]
fn errors_print_their_cause_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let model = tiny_llama_copy(dir.path());
    edit_config(&model, "num_attention_heads", serde_json::json!(0));
    let stderr = failure(&["tokenize", "--model", text(&model), "hi"]);
    assert_eq!(
        stderr
            .matches("num_attention_heads must be positive")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("config.json: invalid model configuration"),
        "{stderr}"
    );
}

//! LLM judges served by the real embedded model through the `models` capability
//! (`ponder plugins run judge --model NAME=PATH`), driving the release binary.

use ponder_e2e::{Outcome, plugin, ponder};

const INPUT: &str = r#"{"instruction": [{"role": "user", "content": "What is the capital of France?"}], "responses": ["The capital of France is Paris.", "I like turtles.", "Paris."]}"#;

fn scores(stdout: &str) -> Vec<Option<f64>> {
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON row");
    row["scores"]
        .as_array()
        .unwrap_or_else(|| panic!("no scores in {row}"))
        .iter()
        .map(|score| score.as_f64())
        .collect()
}

/// Runs `judge-llm-pointwise` (configured to use the model named `judge`) on [`INPUT`], with
/// `extra` arguments added.
fn run_pointwise_judge(extra: &[&str]) -> Outcome {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("judge.jsonl");
    std::fs::write(&input, INPUT).expect("write input");
    let wasm = plugin("judge-llm-pointwise");
    let mut args = vec![
        "plugins",
        "run",
        "judge",
        "--plugin",
        wasm.to_str().expect("UTF-8"),
        "--config",
        r#"{"model": "judge"}"#,
        "--input",
        input.to_str().expect("UTF-8"),
    ];
    args.extend_from_slice(extra);
    ponder(&args, cache.path())
}

#[test]
fn pointwise_judge_rates_every_response_with_the_embedded_model() {
    let model = ponder_test_support::embedded_model_path();
    let named_model = format!("judge={}", model.display());
    let outcome = run_pointwise_judge(&["--model", &named_model]);
    assert!(outcome.success, "{outcome:?}");
    let scores = scores(&outcome.stdout);
    assert_eq!(scores.len(), 3, "{}", outcome.stdout);
    for score in scores {
        let score = score.expect("every response rated");
        // The expected rating over the choices 1/10 .. 10/10.
        assert!(
            (1.0..=10.0).contains(&score),
            "rating {score} outside 1..10"
        );
    }
}

#[test]
fn a_judge_without_models_is_refused_access() {
    let outcome = run_pointwise_judge(&[]);
    assert!(outcome.success, "{outcome:?}");
    assert!(
        outcome.stdout.contains("does not grant `models`"),
        "{}",
        outcome.stdout
    );
}

//! `ponder eval` through the real binary and real plugins, on the tiny random Llama of
//! ../shared/reference/tiny and a few rows of the built-in verifiable eval set:
//!
//! - a thought template against a direct one, judged by `judge-constraints`: the JSON result is
//!   written, its counts agree, win rates are percentages and IFEval accuracies fractions;
//! - a model against itself with the same seed ties on every instruction (50%), with a pointwise
//!   and with a pairwise judge;
//! - instructions the judge fails on are left out of the comparison and listed;
//! - bad input (a missing instruction file, a plugin of the wrong role) is refused naming it.

use std::path::{Path, PathBuf};

use ponder_e2e::{Outcome, plugin, ponder, root, test_guest};
use ponder_test_support::tiny_model_dir;
use serde_json::Value;

const INSTRUCTIONS: usize = 6;

/// Runs `ponder eval` of the tiny model with `template_a` against `template_b` on the first
/// verifiable eval rows, with `extra` flags; returns the outcome and the JSON result.
fn eval(dir: &Path, template_a: &str, template_b: &str, extra: &[&str]) -> (Outcome, Value) {
    let out = dir.join("result.json");
    let model = tiny_model_dir("llama");
    let data = root().join("data/verifiable/eval.jsonl");
    let (template_a, template_b) = (plugin(template_a), plugin(template_b));
    let judge = plugin("judge-constraints");
    let limit = INSTRUCTIONS.to_string();
    let mut args: Vec<&str> = vec![
        "eval",
        "--a",
        model.to_str().unwrap(),
        "--a-template",
        template_a.to_str().unwrap(),
        "--b",
        model.to_str().unwrap(),
        "--b-template",
        template_b.to_str().unwrap(),
        "--judge",
        judge.to_str().unwrap(),
        "--constraints-judge",
        judge.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--limit",
        &limit,
        "--max-new-tokens",
        "24",
        "--resamples",
        "200",
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let outcome = ponder(&args, &dir.join("cache"));
    assert!(
        outcome.success,
        "ponder eval failed:\n{}\n{}",
        outcome.stdout, outcome.stderr
    );
    let text = std::fs::read_to_string(&out).expect("the JSON result is written");
    (
        outcome,
        serde_json::from_str(&text).expect("the result is JSON"),
    )
}

fn number(value: &Value, path: &[&str]) -> f64 {
    let mut at = value;
    for key in path {
        at = &at[key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("{} is not a number in {value}", path.join(".")))
}

fn assert_fraction(value: &Value, path: &[&str]) {
    let x = number(value, path);
    assert!((0.0..=1.0).contains(&x), "{}: {x}", path.join("."));
}

#[test]
fn thought_against_direct_writes_a_consistent_result() {
    let dir = tempfile::tempdir().unwrap();
    let (outcome, result) = eval(
        dir.path(),
        "thought-generic",
        "thought-direct",
        &[
            "--prefill",
            "--thought-budget",
            "8",
            "--temperature",
            "0.8",
            "--seed",
            "5",
        ],
    );
    assert!(
        outcome.stdout.contains("win rate of A over B"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("P-strict"), "{}", outcome.stdout);
    assert_eq!(result["instructions"], INSTRUCTIONS);
    assert_eq!(result["judge"]["name"], "judge-constraints");
    assert_eq!(result["judge"]["kind"], "pointwise");
    assert_eq!(result["models"].as_array().unwrap().len(), 2);
    for model in result["models"].as_array().unwrap() {
        let generation = &model["generation"];
        assert_eq!(generation["outputs"], INSTRUCTIONS);
        let failures = generation["parse_failures"].as_u64().unwrap();
        assert_eq!(
            generation["parse_failure_ids"].as_array().unwrap().len() as u64,
            failures
        );
        let ifeval = &model["ifeval"]["accuracies"];
        assert_eq!(ifeval["prompts"], INSTRUCTIONS);
        for key in [
            "prompt_level_strict",
            "prompt_level_loose",
            "instruction_level_strict",
            "instruction_level_loose",
        ] {
            assert_fraction(ifeval, &[key]);
        }
        // Loose never below strict.
        assert!(
            number(ifeval, &["prompt_level_loose"]) >= number(ifeval, &["prompt_level_strict"])
        );
        let per_constraint = ifeval["per_constraint"].as_object().unwrap();
        let constraints: u64 = per_constraint
            .values()
            .map(|accuracy| accuracy["constraints"].as_u64().unwrap())
            .sum();
        assert_eq!(ifeval["constraints"].as_u64().unwrap(), constraints);
    }
    // The direct template has no thought; the thought template's outputs (prefilled, the
    // separator forced) all parse and have one.
    let a = &result["models"][0]["generation"];
    assert_eq!(a["parse_failures"], 0, "{a}");
    assert!(number(a, &["lengths", "thought_chars"]) > 0.0);
    assert!(result["models"][1]["generation"]["lengths"]["thought_chars"].is_null());

    let pairwise = &result["pairwise"];
    let win_rate = &pairwise["win_rate"];
    let percent = number(win_rate, &["win_rate_percent"]);
    assert!((0.0..=100.0).contains(&percent), "{percent}");
    let tally: u64 = ["wins", "losses", "ties"]
        .iter()
        .map(|key| win_rate[key].as_u64().unwrap())
        .sum();
    assert_eq!(tally, INSTRUCTIONS as u64);
    let (lower, upper) = (
        number(win_rate, &["interval_percent", "lower"]),
        number(win_rate, &["interval_percent", "upper"]),
    );
    assert!(
        lower <= percent && percent <= upper,
        "{lower} {percent} {upper}"
    );
    let per_category: u64 = pairwise["per_category"]
        .as_object()
        .unwrap()
        .values()
        .map(|category| category["instructions"].as_u64().unwrap())
        .sum();
    assert_eq!(per_category, INSTRUCTIONS as u64);
    let per_instruction = result["per_instruction"].as_array().unwrap();
    assert_eq!(per_instruction.len(), INSTRUCTIONS);
    let mean_preference: f64 = per_instruction
        .iter()
        .map(|row| number(row, &["preference"]))
        .sum::<f64>()
        / INSTRUCTIONS as f64;
    assert!((100.0 * mean_preference - percent).abs() < 1e-9);
}

#[test]
fn a_model_against_itself_ties_pointwise_and_pairwise() {
    for kind in ["pointwise", "pairwise"] {
        let dir = tempfile::tempdir().unwrap();
        let (_, result) = eval(
            dir.path(),
            "thought-direct",
            "thought-direct",
            &["--temperature", "0.8", "--seed", "9", "--judge-kind", kind],
        );
        let win_rate = &result["pairwise"]["win_rate"];
        assert_eq!(number(win_rate, &["win_rate_percent"]), 50.0, "{kind}");
        assert_eq!(win_rate["ties"], INSTRUCTIONS, "{kind}");
        let (a, b) = (&result["models"][0], &result["models"][1]);
        assert_eq!(a["generation"]["lengths"], b["generation"]["lengths"]);
        assert_eq!(a["ifeval"], b["ifeval"]);
    }
}

#[test]
fn instructions_the_judge_fails_on_are_left_out_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("marked.jsonl");
    // The marked judge traps on a call holding `[trap]` and breaks the contract on `[short]`:
    // only those two instructions fail, the others keep their verdicts.
    let rows: String = [
        "Say hi.",
        "Say [trap] hi.",
        "Count to 3.",
        "Say [short] no.",
        "Name a fruit.",
    ]
    .iter()
    .enumerate()
    .map(|(index, prompt)| {
        let row = serde_json::json!({
            "id": format!("row-{index}"),
            "prompt": [{"role": "user", "content": prompt}],
        });
        format!("{row}\n")
    })
    .collect();
    std::fs::write(&data, rows).unwrap();
    let model = tiny_model_dir("llama");
    let template = plugin("thought-direct");
    let judge = test_guest("hostile-marked-judge");
    let out = dir.path().join("result.json");
    let outcome = ponder(
        &[
            "eval",
            "--a",
            model.to_str().unwrap(),
            "--a-template",
            template.to_str().unwrap(),
            "--b",
            model.to_str().unwrap(),
            "--judge",
            judge.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--max-new-tokens",
            "8",
            "--no-ifeval",
            "--no-progress",
            "--out",
            out.to_str().unwrap(),
        ],
        &dir.path().join("cache"),
    );
    assert!(outcome.success, "{}\n{}", outcome.stdout, outcome.stderr);
    assert!(
        outcome.stdout.contains("row-1, row-3"),
        "{}",
        outcome.stdout
    );
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let failed: Vec<&str> = result["judge_failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| failure["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["row-1", "row-3"]);
    assert_eq!(result["pairwise"]["win_rate"]["instructions"], 3);
    assert!(result["per_instruction"][1]["preference"].is_null());
    assert_eq!(result["per_instruction"][0]["preference"], 0.5);
}

#[test]
fn bad_input_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model_dir("llama");
    let judge = plugin("judge-constraints");
    let template = plugin("thought-direct");
    let run = |template: &Path, data: &Path| {
        ponder(
            &[
                "eval",
                "--a",
                model.to_str().unwrap(),
                "--a-template",
                template.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--no-progress",
                "--out",
                dir.path().join("result.json").to_str().unwrap(),
            ],
            &dir.path().join("cache"),
        )
    };
    let missing: PathBuf = dir.path().join("missing.jsonl");
    let outcome = run(&template, &missing);
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains(missing.to_str().unwrap()),
        "{}",
        outcome.stderr
    );

    // A judge given as a template: the file and the flag are named.
    let data = root().join("data/verifiable/eval.jsonl");
    let outcome = run(&judge, &data);
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains(judge.to_str().unwrap())
            && outcome.stderr.contains("--a-template")
            && outcome.stderr.contains("wrong world"),
        "{}",
        outcome.stderr
    );
    assert!(!dir.path().join("result.json").exists());
}

//! `ponder experiment` through the real binary and real plugins, on the tiny random Llama of
//! ../shared/reference/tiny: a thought arm and a direct arm, one iteration each, evaluated on a
//! few held-out verifiable instructions.
//!
//! - both arms train, every iteration of both is evaluated against the seed model answering
//!   directly, the last iterations meet head to head, the table and JSON are written;
//! - the seed model's outputs are generated once for both arms, and a rerun reuses every
//!   model's outputs and writes the same results;
//! - bad input (a baseline naming no arm, an untrained arm with `--no-train`) is refused.

use std::path::{Path, PathBuf};

use ponder_e2e::{Outcome, plugin, plugin_tables, ponder, root};
use ponder_test_support::tiny_model_dir;
use serde_json::Value;

const INSTRUCTIONS: usize = 4;

/// A copy of first-party plugin `name` in `dir` (the test rewrites it).
fn plugin_copy(dir: &Path, name: &str) -> PathBuf {
    let copy = dir.join(format!("{name}.wasm"));
    std::fs::copy(plugin(name), &copy).expect("copying a plugin");
    copy
}

/// A run manifest of one arm with template `template`, writing under `dir`.
fn arm_manifest(dir: &Path, name: &str, template: &str, shaping: &str) -> PathBuf {
    let text = format!(
        r#"
[run]
out = "{out}"
seed = 3
iterations = 1

[model]
path = "{model}"

[data]
train = "{train}"
per_iteration = 3

[sample]
k = 3
max_new_tokens = 32
batch_prompts = 3
{shaping}

[dpo]
lr = 1e-3
epochs = 1
batch_size = 2
{plugins}"#,
        out = dir.join("runs").join(name).display(),
        model = tiny_model_dir("llama").display(),
        train = root().join("data/verifiable/train.jsonl").display(),
        plugins = plugin_tables(&[
            ("template", &plugin_copy(dir, template), ""),
            (
                "judge",
                &plugin("judge-constraints"),
                r#"{ mode = "loose" }"#
            ),
            ("selector", &plugin("select-best-worst"), ""),
        ]),
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).expect("writing an arm manifest");
    file
}

/// An experiment manifest with a direct and a thought arm, `baseline` its baseline.
fn experiment_manifest(dir: &Path, baseline: &str) -> PathBuf {
    arm_manifest(dir, "direct", "thought-direct", "");
    arm_manifest(
        dir,
        "tpo",
        "thought-generic",
        "prefill = true\nthought_budget = 12",
    );
    let text = format!(
        r#"
[experiment]
out = "{out}"
baseline = "{baseline}"
seed = 11

[[arms]]
name = "direct"
manifest = "direct.toml"

[[arms]]
name = "tpo"
manifest = "tpo.toml"

[eval]
data = "{data}"
limit = {INSTRUCTIONS}
judge = "{judge}"
judge_config = {{ mode = "loose" }}
max_new_tokens = 24
batch_prompts = 2
resamples = 200
"#,
        out = dir.join("experiment").display(),
        data = root().join("data/verifiable/eval.jsonl").display(),
        judge = plugin("judge-constraints").display(),
    );
    let file = dir.join("experiment.toml");
    std::fs::write(&file, text).expect("writing the experiment manifest");
    file
}

fn experiment(dir: &Path, file: &Path, extra: &[&str]) -> Outcome {
    let mut args = vec!["experiment", file.to_str().unwrap(), "--no-progress"];
    args.extend_from_slice(extra);
    ponder(&args, &dir.join("cache"))
}

fn kept_outputs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("experiment/outputs"))
        .expect("the outputs directory")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
        })
        .count()
}

#[test]
fn experiment_trains_both_arms_evaluates_every_iteration_and_resumes() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path();
    let file = experiment_manifest(dir, "direct");
    let outcome = experiment(dir, &file, &[]);
    assert!(
        outcome.success,
        "ponder experiment failed:\n{}\n{}",
        outcome.stdout, outcome.stderr
    );
    for arm in ["direct", "tpo"] {
        assert!(
            dir.join("runs").join(arm).join("iter-1/model").exists(),
            "arm {arm} trained"
        );
    }
    let results_file = dir.join("experiment/results.json");
    let text = std::fs::read_to_string(&results_file).expect("results.json is written");
    let results: Value = serde_json::from_str(&text).expect("results.json is JSON");
    assert_eq!(results["baseline"], "direct");
    assert_eq!(results["instructions"], INSTRUCTIONS);
    let rows = results["rows"].as_array().expect("rows");
    let names: Vec<(String, u64)> = rows
        .iter()
        .map(|row| {
            (
                row["arm"].as_str().unwrap().to_string(),
                row["iteration"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = [("direct", 0), ("direct", 1), ("tpo", 0), ("tpo", 1)]
        .iter()
        .map(|(arm, iteration)| (arm.to_string(), *iteration))
        .collect();
    assert_eq!(names, expected);
    // The baseline is not compared with itself; every other row has a win rate in percent.
    assert!(rows[0]["win_rate"].is_null(), "{}", rows[0]);
    for row in &rows[1..] {
        let win = row["win_rate"]["win_rate_percent"]
            .as_f64()
            .unwrap_or_else(|| panic!("a win rate in {row}"));
        assert!((0.0..=100.0).contains(&win), "{win}");
        let lower = row["win_rate"]["interval_percent"]["lower"]
            .as_f64()
            .unwrap();
        let upper = row["win_rate"]["interval_percent"]["upper"]
            .as_f64()
            .unwrap();
        assert!(lower <= win && win <= upper, "{lower} {win} {upper}");
    }
    for row in rows {
        let accuracy = row["ifeval"]["accuracies"]["prompt_level_strict"]
            .as_f64()
            .unwrap_or_else(|| panic!("IFEval accuracies in {row}"));
        assert!((0.0..=1.0).contains(&accuracy));
        assert!(row["ifeval"]["prompt_level_intervals_percent"]["strict"]["lower"].is_f64());
        assert_eq!(row["generation"]["outputs"], INSTRUCTIONS);
        let trained = row["iteration"].as_u64() == Some(1);
        assert_eq!(row["training"].is_object(), trained, "{row}");
        assert!(Path::new(row["eval_file"].as_str().unwrap()).is_file());
    }
    // The thought arm's untrained row is the seed model with the thought prompt.
    assert_eq!(rows[2]["template"], "thought-generic");
    assert_eq!(rows[0]["model"], rows[2]["model"]);
    let duels = results["head_to_head"].as_array().expect("head_to_head");
    assert_eq!(duels.len(), 1);
    assert_eq!(
        (duels[0]["arm"].as_str(), duels[0]["against"].as_str()),
        (Some("tpo"), Some("direct"))
    );
    let table = std::fs::read_to_string(dir.join("experiment/results.md")).expect("results.md");
    assert!(
        table.contains("| tpo | 1 |") && table.contains("(baseline)"),
        "{table}"
    );
    assert!(
        outcome.stdout.contains("| direct | 0 |"),
        "{}",
        outcome.stdout
    );
    // Four models: the seed model answering directly is generated once, though the thought
    // arm's rows (other sampler settings) and the head to head compare with it too.
    assert_eq!(kept_outputs(dir), 4);

    // A rerun trains nothing, generates nothing and writes the same results, though a
    // template was rewritten since (a plugin build writes the same bytes with a new time).
    let template = dir.join("thought-direct.wasm");
    let bytes = std::fs::read(&template).expect("the template copy");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&template, bytes).expect("rewriting the template");
    let again = experiment(dir, &file, &[]);
    assert!(again.success, "rerun failed:\n{}", again.stderr);
    assert_eq!(
        again.stderr.matches("reusing the outputs").count(),
        // Each comparison's two models, the baseline alone, the head to head.
        3 * 2 + 1 + 2,
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("tokens/s"), "{}", again.stderr);
    let text_again = std::fs::read_to_string(&results_file).expect("results.json");
    assert_eq!(text, text_again, "a rerun writes the same results");
}

#[test]
fn experiment_refuses_bad_input() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let dir = scratch.path();
    let file = experiment_manifest(dir, "nobody");
    let outcome = experiment(dir, &file, &[]);
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains("experiment.baseline") && outcome.stderr.contains("`nobody`"),
        "{}",
        outcome.stderr
    );

    let file = experiment_manifest(dir, "direct");
    let outcome = experiment(dir, &file, &["--no-train"]);
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains("no model of iteration") && outcome.stderr.contains("train it"),
        "{}",
        outcome.stderr
    );
    assert!(
        !dir.join("runs/direct").exists(),
        "--no-train trains nothing"
    );
}

//! Plugins written in Python and JavaScript, through the real binary:
//!
//! - the first-party `judge-py-rubric` (Python) and `select-js-margin` (JavaScript), built by
//!   scripts/build-plugins.sh, judge and select in `ponder train` from a manifest;
//! - `ponder plugins new ROLE NAME --lang python|js` scaffolds a plugin whose native tests pass,
//!   whose build script builds a component, and which `ponder plugins run` runs.
//!
//! The interpreted components (12-18 MB) take seconds to compile, so the runs share one
//! component cache, `target/e2e-interpreted-cache`.

use ponder_e2e::{Outcome, plugin, ponder, ponder_binary, root};
use ponder_test_support::tiny_model_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cache() -> PathBuf {
    root().join("target/e2e-interpreted-cache")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn run(command: &mut Command, what: &str) -> Outcome {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {what}: {error}"));
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn a_python_judge_and_a_javascript_selector_train_from_a_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let manifest = dir.path().join("tpo.toml");
    let text = format!(
        r#"
[run]
out = "{out}"
seed = 7
iterations = 1

[model]
path = "{model}"

[data]
train = "{train}"
validation = "{validation}"
validation_size = 2
per_iteration = 4

[sample]
k = 4
max_new_tokens = 40
prefill = true
thought_budget = 16
batch_prompts = 2

[dpo]
beta = 0.1
lr = 1e-3
epochs = 1
batch_size = 2

[plugins.template]
wasm = "{template}"

[plugins.judge]
wasm = "{judge}"
config = {{ min_words = 1, max_words = 40 }}

[plugins.selector]
wasm = "{selector}"
config = {{ pairs_per_group = 2, weight = "margin" }}
"#,
        out = out.display(),
        model = tiny_model_dir("llama").display(),
        train = root().join("data/train.jsonl").display(),
        validation = root().join("data/eval.jsonl").display(),
        template = plugin("thought-generic").display(),
        judge = plugin("judge-py-rubric").display(),
        selector = plugin("select-js-margin").display(),
    );
    std::fs::write(&manifest, text).expect("write manifest");

    let check = ponder(&["plugins", "check", path_str(&manifest)], &cache());
    assert!(check.success, "{check:?}");
    for name in ["judge-py-rubric", "select-js-margin"] {
        assert!(check.stdout.contains(name), "{}", check.stdout);
    }

    let outcome = run(
        Command::new(ponder_binary())
            .arg("train")
            .arg(&manifest)
            .arg("--no-progress")
            .current_dir(root())
            .env("XDG_CACHE_HOME", cache()),
        "ponder train",
    );
    assert!(outcome.success, "{outcome:?}");

    // The Python judge scored every parsed candidate in [0, 1].
    let judgments = jsonl(&out.join("iter-1/judgments.jsonl"));
    assert_eq!(judgments.len(), 4);
    let mut scored = 0;
    for row in &judgments {
        for candidate in row["candidates"].as_array().expect("candidates") {
            if let Some(score) = candidate["score"].as_f64() {
                assert!((0.0..=1.0).contains(&score), "{candidate}");
                scored += 1;
            }
        }
    }
    assert!(scored > 0, "no candidate was scored: {judgments:?}");

    // The JavaScript selector's pairs prefer the higher score, with margin weights averaging 1.
    let pairs = jsonl(&out.join("iter-1/pairs.jsonl"));
    let mut weights = Vec::new();
    for pair in &pairs {
        let meta = &pair["metadata"];
        let chosen = meta["chosen_score"].as_f64().expect("chosen score");
        let rejected = meta["rejected_score"].as_f64().expect("rejected score");
        assert!(chosen > rejected, "{meta}");
        weights.push(pair["weight"].as_f64().expect("weight"));
    }
    assert!(!weights.is_empty(), "no pair was made: {judgments:?}");
    let mean = weights.iter().sum::<f64>() / weights.len() as f64;
    assert!((mean - 1.0).abs() < 1e-9, "{weights:?}");
    assert!(
        weights.iter().any(|weight| (weight - 1.0).abs() > 1e-9),
        "margin weights differ between pairs of different gaps: {weights:?}"
    );
    assert!(
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .expect("metrics")
            .contains("\"pairs\""),
        "metrics.jsonl has the iteration"
    );
}

/// Scaffolds `role` `name` in `lang` into `dir`, runs its native tests and its build script;
/// returns the component.
fn scaffold_and_build(dir: &Path, lang: &str, role: &str, name: &str) -> PathBuf {
    let outcome = ponder(
        &[
            "plugins",
            "new",
            role,
            name,
            "--lang",
            lang,
            "--dir",
            path_str(dir),
        ],
        &cache(),
    );
    assert!(outcome.success, "{outcome:?}");
    let plugin_dir = dir.join(name);
    let module = name.replace('-', "_");
    let mut tests = match lang {
        "python" => {
            let mut command = Command::new("python3");
            command
                .args(["-m", "unittest", "-v"])
                .env("PYTHONPATH", root().join("sdk/python"))
                .env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
        _ => {
            let mut command = Command::new("npm");
            command.args(["test", "--silent"]);
            command
        }
    };
    let tests = run(tests.current_dir(&plugin_dir), "the scaffold's tests");
    assert!(tests.success, "{tests:?}");
    let source = plugin_dir.join(format!(
        "{module}.{}",
        if lang == "python" { "py" } else { "js" }
    ));
    assert!(source.is_file(), "{}", source.display());
    let build = run(
        Command::new(plugin_dir.join("build.sh")).arg("--quiet"),
        "the scaffold's build.sh",
    );
    assert!(build.success, "{build:?}");
    let wasm = plugin_dir.join(format!("{name}.wasm"));
    assert!(wasm.is_file(), "{}", wasm.display());
    wasm
}

#[test]
fn scaffolded_python_and_javascript_plugins_build_and_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let examples = root().join("examples/plugins");

    let judge = scaffold_and_build(dir.path(), "python", "judge", "my-judge");
    let outcome = ponder(
        &[
            "plugins",
            "run",
            "judge",
            "--plugin",
            path_str(&judge),
            "--input",
            path_str(&examples.join("judge-input.jsonl")),
            "--config",
            r#"{"keywords": ["paris"]}"#,
        ],
        &cache(),
    );
    assert!(outcome.success, "{outcome:?}");
    let first = outcome.stdout.lines().next().expect("a line per row");
    assert_eq!(first, r#"{"scores":[1.0,1.0,0.0]}"#);
    assert!(
        outcome.stderr.contains("my-judge: 1 keywords"),
        "the plugin's log: {}",
        outcome.stderr
    );

    let selector = scaffold_and_build(dir.path(), "js", "selector", "my-selector");
    let outcome = ponder(
        &[
            "plugins",
            "run",
            "selector",
            "--plugin",
            path_str(&selector),
            "--input",
            path_str(&examples.join("selector-input.jsonl")),
        ],
        &cache(),
    );
    assert!(outcome.success, "{outcome:?}");
    let first = outcome.stdout.lines().next().expect("a line per row");
    assert_eq!(
        first,
        r#"{"pairs":[{"chosen":0,"rejected":2,"weight":1.0}]}"#
    );
}

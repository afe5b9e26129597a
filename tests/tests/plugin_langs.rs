//! Plugins written in Python and JavaScript, through the real binary:
//!
//! - the first-party `judge-py-rubric` (Python) and `select-js-margin` (JavaScript), built by
//!   scripts/build-plugins.sh, judge and select in `ponder train` from a manifest;
//! - `ponder plugins new ROLE NAME --lang python|js` scaffolds a plugin whose native tests pass,
//!   whose build script builds a component, and which `ponder plugins run` runs.
//!
//! The interpreted components (12-18 MB) take seconds to compile, so the runs of the first-party
//! ones share a component cache, `target/e2e-interpreted-cache`; the scaffolds, new bytes on every
//! run, compile into the test's temporary directory.

use ponder_e2e::{Outcome, plugin, ponder, ponder_binary, root};
use ponder_test_support::tiny_model_dir;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The component cache of the first-party plugins' runs.
fn shared_cache() -> PathBuf {
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

/// A one-iteration run of the tiny test model on `dir` with the three plugins (components and
/// their `config` tables as inline TOML); returns the manifest's path.
fn write_manifest(dir: &Path, plugins: [(&Path, &str); 3]) -> PathBuf {
    let [
        (template, template_config),
        (judge, judge_config),
        (selector, selector_config),
    ] = plugins;
    let manifest = dir.join("tpo.toml");
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
config = {template_config}

[plugins.judge]
wasm = "{judge}"
config = {judge_config}

[plugins.selector]
wasm = "{selector}"
config = {selector_config}
"#,
        out = dir.join("run").display(),
        model = tiny_model_dir("llama").display(),
        train = root().join("data/train.jsonl").display(),
        validation = root().join("data/eval.jsonl").display(),
        template = template.display(),
        judge = judge.display(),
        selector = selector.display(),
    );
    std::fs::write(&manifest, text).expect("write manifest");
    manifest
}

/// Runs `ponder train` on `manifest` with the component cache `cache`.
fn train(manifest: &Path, cache: &Path) -> Outcome {
    run(
        Command::new(ponder_binary())
            .arg("train")
            .arg(manifest)
            .arg("--no-progress")
            .current_dir(root())
            .env("XDG_CACHE_HOME", cache),
        "ponder train",
    )
}

#[test]
fn a_python_judge_and_a_javascript_selector_train_from_a_manifest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("run");
    let manifest = write_manifest(
        dir.path(),
        [
            (&plugin("thought-generic"), "{}"),
            (
                &plugin("judge-py-rubric"),
                "{ min_words = 1, max_words = 40 }",
            ),
            (
                &plugin("select-js-margin"),
                r#"{ pairs_per_group = 2, weight = "margin" }"#,
            ),
        ],
    );

    let check = ponder(&["plugins", "check", path_str(&manifest)], &shared_cache());
    assert!(check.success, "{check:?}");
    for name in ["judge-py-rubric", "select-js-margin"] {
        assert!(check.stdout.contains(name), "{}", check.stdout);
    }

    let outcome = train(&manifest, &shared_cache());
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
fn scaffold_and_build(dir: &Path, lang: &str, role: &str, name: &str, cache: &Path) -> PathBuf {
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
        cache,
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

/// `ponder plugins run ROLE` on `plugin` with `input` and `config`; returns its stdout lines.
fn run_plugin(role: &str, plugin: &Path, input: &Path, config: &str, cache: &Path) -> Vec<String> {
    let outcome = ponder(
        &[
            "plugins",
            "run",
            role,
            "--plugin",
            path_str(plugin),
            "--input",
            path_str(input),
            "--config",
            config,
        ],
        cache,
    );
    assert!(outcome.success, "{outcome:?}");
    outcome.stdout.lines().map(str::to_string).collect()
}

/// Every role in both languages, scaffolded, tested, built and run by `ponder plugins run`; then
/// the Python template (render, parse and the output format, through `prefill` and
/// `thought_budget`), the JavaScript judge and the Python selector train together.
#[test]
fn scaffolded_python_and_javascript_plugins_build_and_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cache = dir.path().join("cache");
    let examples = root().join("examples/plugins");
    let judge_input = examples.join("judge-input.jsonl");
    let selector_input = examples.join("selector-input.jsonl");
    let template_input = dir.path().join("template-input.jsonl");
    std::fs::write(
        &template_input,
        "{\"instruction\": [{\"role\": \"user\", \"content\": \"Name a colour.\"}]}\n\
         {\"output\": \"<thought> hmm </thought> Blue.\"}\n{\"output\": \"Blue.\"}\n",
    )
    .expect("write template input");
    let keywords = r#"{"keywords": ["paris"]}"#;

    let mut built = std::collections::BTreeMap::new();
    for lang in ["python", "js"] {
        for role in ["judge", "template", "selector"] {
            let name = format!("my-{lang}-{role}");
            let wasm = scaffold_and_build(dir.path(), lang, role, &name, &cache);
            built.insert((lang, role), wasm);
        }
    }
    for lang in ["python", "js"] {
        let judge = &built[&(lang, "judge")];
        let scores = run_plugin("judge", judge, &judge_input, keywords, &cache);
        assert_eq!(scores[0], r#"{"scores":[1.0,1.0,0.0]}"#, "{lang}");
        let pairs = run_plugin(
            "selector",
            &built[&(lang, "selector")],
            &selector_input,
            "{}",
            &cache,
        );
        assert_eq!(
            pairs[0], r#"{"pairs":[{"chosen":0,"rejected":2,"weight":1.0}]}"#,
            "{lang}"
        );
        let template = run_plugin(
            "template",
            &built[&(lang, "template")],
            &template_input,
            "{}",
            &cache,
        );
        assert!(
            template[0].contains("<thought></thought> tags")
                && template[0].contains("Name a colour."),
            "{lang}: {template:?}"
        );
        assert_eq!(
            template[1], r#"{"response":"Blue.","thought":"hmm"}"#,
            "{lang}"
        );
        assert_eq!(
            template[2], r#"{"failure":"the output does not start with <thought>"}"#,
            "{lang}"
        );
    }

    let run_dir = dir.path().join("train");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let manifest = write_manifest(
        &run_dir,
        [
            (&built[&("python", "template")], "{}"),
            (&built[&("js", "judge")], r#"{ keywords = ["the"] }"#),
            (&built[&("python", "selector")], "{}"),
        ],
    );
    let outcome = train(&manifest, &cache);
    assert!(outcome.success, "{outcome:?}");
    // With the template's `<thought>` prefilled and the forced `</thought>`, outputs parse.
    let judgments = jsonl(&run_dir.join("run/iter-1/judgments.jsonl"));
    let parsed = judgments
        .iter()
        .flat_map(|row| row["candidates"].as_array().expect("candidates").clone())
        .filter(|candidate| candidate["parsed"] == true)
        .count();
    assert!(parsed > 0, "no output parsed: {judgments:?}");
}

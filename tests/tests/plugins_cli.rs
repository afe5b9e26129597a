//! `ponder plugins check|run|new` on real components, driving the release binary.

use ponder_e2e::{plugin, ponder, root};
use std::path::Path;

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn check_loads_every_plugin_of_the_example_manifest() {
    let cache = tempfile::tempdir().expect("cache");
    for name in [
        "thought-generic",
        "judge-constraints",
        "select-length-controlled",
    ] {
        plugin(name);
    }
    let outcome = ponder(
        &["plugins", "check", "examples/smollm2-tpo.toml"],
        cache.path(),
    );
    assert!(outcome.success, "{outcome:?}");
    for expected in [
        "template  thought-generic: ponder:plugin@0.2.0 (world thought-template)",
        "judge     judge-constraints: ponder:plugin@0.2.0 (world judge)",
        "selector  select-length-controlled: ponder:plugin@0.2.0 (world pair-selector)",
        "limits: memory 128 MiB, fuel 1000000000, timeout 5000 ms; grants: none",
        "compiled: now (cached)",
    ] {
        assert!(
            outcome.stdout.contains(expected),
            "missing `{expected}` in:\n{}",
            outcome.stdout
        );
    }
    // The second check reads the compiled components from the cache.
    let again = ponder(
        &["plugins", "check", "examples/smollm2-tpo.toml"],
        cache.path(),
    );
    assert!(again.success, "{again:?}");
    assert_eq!(
        again.stdout.matches("compiled: cache hit").count(),
        3,
        "{}",
        again.stdout
    );
}

#[test]
fn check_fails_naming_plugin_call_and_cause() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let corrupt = dir.path().join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm\x01\0\0\0garbage").expect("write");
    let manifest = dir.path().join("bad.toml");
    std::fs::write(
        &manifest,
        format!(
            "[plugins.template]\nwasm = \"{}\"\n\n[plugins.judge]\nwasm = \"{}\"\n\n[plugins.selector]\nwasm = \"corrupt.wasm\"\n",
            path_str(&plugin("thought-generic")),
            path_str(&plugin("select-best-worst")),
        ),
    )
    .expect("write manifest");
    let outcome = ponder(&["plugins", "check", path_str(&manifest)], cache.path());
    assert!(!outcome.success, "{outcome:?}");
    assert!(
        outcome.stdout.contains("ok   template  thought-generic"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains(
            "plugin `select-best-worst` (judge), call `load`: wrong world: expected world `judge`"
        ),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome
            .stdout
            .contains("plugin `corrupt` (selector), call `load`: not a valid plugin"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stderr.contains("2 plugin(s)"), "{}", outcome.stderr);
}

#[test]
fn manifest_errors_name_key_file_and_position() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let manifest = dir.path().join("typo.toml");
    std::fs::write(&manifest, "[sample]\nk = 8\ntmperature = 0.8\n").expect("write");
    let outcome = ponder(&["plugins", "check", path_str(&manifest)], cache.path());
    assert!(!outcome.success);
    let expected = format!(
        "{}:3:1: sample.tmperature: unknown field `tmperature`",
        manifest.display()
    );
    assert!(outcome.stderr.contains(&expected), "{}", outcome.stderr);

    std::fs::write(&manifest, "[sample]\ntop_p = 1.5\n").expect("write");
    let outcome = ponder(&["plugins", "check", path_str(&manifest)], cache.path());
    assert!(!outcome.success);
    assert!(
        outcome
            .stderr
            .contains("sample.top_p: must be in (0, 1], got 1.5"),
        "{}",
        outcome.stderr
    );
}

fn jsonl(outcome: &ponder_e2e::Outcome) -> Vec<serde_json::Value> {
    assert!(outcome.success, "{outcome:?}");
    outcome
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}")))
        .collect()
}

#[test]
fn run_judge_prints_one_line_per_request() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("judge.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"instruction": [{"role": "user", "content": "Answer without commas."}], "responses": ["yes indeed", "yes, indeed"], "metadata": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}}"#,
            "\n\n",
            r#"{"instruction": [{"role": "user", "content": "Say hi."}], "responses": ["hi"]}"#,
            "\n",
        ),
    )
    .expect("write input");
    let judge = plugin("judge-constraints");
    let outcome = ponder(
        &[
            "plugins",
            "run",
            "judge",
            "--plugin",
            path_str(&judge),
            "--input",
            path_str(&input),
        ],
        cache.path(),
    );
    let rows = jsonl(&outcome);
    assert_eq!(rows.len(), 2, "{}", outcome.stdout);
    let scores = rows[0]["scores"].as_array().expect("scores");
    assert_eq!(scores.len(), 2);
    assert!(
        scores[0].as_f64() > scores[1].as_f64(),
        "the response without commas must score higher: {}",
        rows[0]
    );
}

#[test]
fn run_selector_and_template() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let groups = dir.path().join("groups.jsonl");
    std::fs::write(
        &groups,
        concat!(
            r#"{"candidates": [{"score": 0.9, "parsed": true, "response_tokens": 10, "response_chars": 50}, {"score": 0.1, "parsed": true, "response_tokens": 12, "response_chars": 60}, {"parsed": false}]}"#,
            "\n",
            r#"{"candidates": []}"#,
            "\n",
        ),
    )
    .expect("write groups");
    let selector = plugin("select-best-worst");
    let rows = jsonl(&ponder(
        &[
            "plugins",
            "run",
            "selector",
            "--plugin",
            path_str(&selector),
            "--input",
            path_str(&groups),
        ],
        cache.path(),
    ));
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"pairs": [{"chosen": 0, "rejected": 1, "weight": 1.0}]}),
            serde_json::json!({"pairs": []}),
        ]
    );

    let rows_file = dir.path().join("template.jsonl");
    std::fs::write(
        &rows_file,
        concat!(
            r#"{"instruction": [{"role": "user", "content": "What is 2+2?"}]}"#,
            "\n",
            r#"{"output": "Here is my thought process: add.\nHere is my response: 4"}"#,
            "\n",
            r#"{"output": "just 4"}"#,
            "\n",
        ),
    )
    .expect("write template rows");
    let template = plugin("thought-generic");
    let rows = jsonl(&ponder(
        &[
            "plugins",
            "run",
            "template",
            "--plugin",
            path_str(&template),
            "--input",
            path_str(&rows_file),
        ],
        cache.path(),
    ));
    assert_eq!(rows.len(), 3);
    let messages = rows[0]["messages"].as_array().expect("messages");
    assert!(
        messages.iter().any(|message| message["content"]
            .as_str()
            .is_some_and(|text| text.contains("What is 2+2?"))),
        "{}",
        rows[0]
    );
    assert_eq!(rows[1]["response"], "4", "{}", rows[1]);
    assert!(rows[2]["failure"].is_string(), "{}", rows[2]);
}

#[test]
fn run_refuses_a_native_library_without_explicit_trust() {
    let cache = tempfile::tempdir().expect("cache");
    let not_wasm = root().join("examples/smollm2-tpo.toml");
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("empty.jsonl");
    std::fs::write(&input, "").expect("write");
    let outcome = ponder(
        &[
            "plugins",
            "run",
            "selector",
            "--plugin",
            path_str(&not_wasm),
            "--input",
            path_str(&input),
        ],
        cache.path(),
    );
    assert!(!outcome.success);
    assert!(
        outcome.stderr.contains("is not a WebAssembly component"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("--trust-native"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn new_scaffolds_a_plugin_crate_from_the_sdk_templates() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let outcome = ponder(
        &[
            "plugins",
            "new",
            "judge",
            "my-judge",
            "--dir",
            path_str(dir.path()),
        ],
        cache.path(),
    );
    assert!(outcome.success, "{outcome:?}");
    let manifest =
        std::fs::read_to_string(dir.path().join("my-judge/Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains("my-judge"), "{manifest}");
    assert!(!manifest.contains("{{"), "unfilled placeholder: {manifest}");
    assert!(dir.path().join("my-judge/src/lib.rs").is_file());
    let again = ponder(
        &[
            "plugins",
            "new",
            "judge",
            "my-judge",
            "--dir",
            path_str(dir.path()),
        ],
        cache.path(),
    );
    assert!(
        !again.success && again.stderr.contains("already exists"),
        "{again:?}"
    );
}

/// A granted judge that generates forever on the embedded model is interrupted by its wall-time
/// budget, promptly, and one that asks for 200,000 choices is refused naming the limit: the host
/// stays in charge of a granted plugin.
#[test]
fn granted_judge_model_budgets_hold_on_the_real_model() {
    let cache = tempfile::tempdir().expect("cache");
    let dir = tempfile::tempdir().expect("dir");
    let judge = ponder_e2e::test_guest("hostile-model-budget");
    let model = format!(
        "judge={}",
        ponder_test_support::embedded_model_path().display()
    );
    let run = |attack: &str| {
        let input = dir.path().join(format!("{attack}.jsonl"));
        std::fs::write(
            &input,
            format!(
                r#"{{"instruction": [{{"role": "user", "content": "Hi."}}], "responses": ["attack", "{attack}"]}}"#
            ) + "\n",
        )
        .expect("write input");
        let started = std::time::Instant::now();
        let outcome = ponder(
            &[
                "plugins",
                "run",
                "judge",
                "--plugin",
                path_str(&judge),
                "--input",
                path_str(&input),
                "--model",
                &model,
                "--call-timeout-ms",
                "3000",
            ],
            cache.path(),
        );
        (outcome, started.elapsed())
    };

    let (outcome, elapsed) = run("generate-forever");
    assert!(!outcome.success, "{}", outcome.stdout);
    assert!(
        outcome.stderr.contains("budget exceeded")
            && outcome.stderr.contains("limits.call_timeout_ms"),
        "{}",
        outcome.stderr
    );
    // 3 s of budget and the model load; unbounded it never ends.
    assert!(elapsed < std::time::Duration::from_secs(60), "{elapsed:?}");

    let (outcome, _) = run("many-choices");
    assert!(outcome.success, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("limits.choices = 1024"),
        "{}",
        outcome.stdout
    );
}

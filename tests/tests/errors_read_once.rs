//! Every error the `ponder` binary prints reads once: no clause of the cause chain (split at
//! `": "`) printed twice, as `{:#}` does when an error's message includes its cause and also
//! reports it as its `source()`. Drives the release binary through many failing invocations (bad
//! manifests, missing and malformed files, invalid UTF-8, bad model directories, a text file as
//! a plugin, optimiser settings that would train NaN weights), each of which must fail with a
//! message naming what is wrong; data-file errors must also name the line.

use std::path::{Path, PathBuf};

use ponder_e2e::{Outcome, plugin, ponder, root};
use ponder_test_support::tiny_model_dir;

/// The error part of `stderr`: from the `error: ` line `main` prints to the end.
fn error_text(stderr: &str) -> &str {
    stderr
        .find("error: ")
        .map_or(stderr, |start| &stderr[start + "error: ".len()..])
        .trim()
}

/// The first clause (or run of clauses, split at `": "`) that occurs twice in `text`, if any.
/// Clauses of three characters or fewer (`0`, `a`) may repeat innocently and are skipped.
fn repeated_clause(text: &str) -> Option<String> {
    let clauses: Vec<&str> = text.split(": ").map(str::trim).collect();
    for length in (1..=clauses.len() / 2).rev() {
        for first in 0..clauses.len() - length {
            let run = &clauses[first..first + length];
            if run.iter().map(|clause| clause.len()).sum::<usize>() <= 3 {
                continue;
            }
            let again = (first + length..=clauses.len() - length)
                .any(|second| clauses[second..second + length] == *run);
            if again {
                return Some(run.join(": "));
            }
        }
    }
    None
}

/// Asserts that `outcome` failed, that its error reads once and contains every part of
/// `expected`.
fn assert_fails_once(what: &str, outcome: &Outcome, expected: &[&str]) {
    assert!(
        !outcome.success,
        "{what}: expected a failure, got success:\n{outcome:?}"
    );
    let error = error_text(&outcome.stderr);
    assert!(!error.is_empty(), "{what}: no error printed:\n{outcome:?}");
    assert_reads_once(what, error, expected);
}

/// Asserts that the error message `error` has no repeated clause and contains every part of
/// `expected`.
fn assert_reads_once(what: &str, error: &str, expected: &[&str]) {
    if let Some(clause) = repeated_clause(error) {
        panic!("{what}: `{clause}` is printed twice in:\n{error}");
    }
    for part in expected {
        assert!(error.contains(part), "{what}: `{part}` not in:\n{error}");
    }
}

/// `ponder plugins check` reports each plugin on stdout: the line about `plugin`.
fn check_line<'a>(outcome: &'a Outcome, plugin: &str) -> &'a str {
    assert!(!outcome.success, "expected a failure:\n{outcome:?}");
    outcome
        .stdout
        .lines()
        .find(|line| line.contains(&format!("plugin `{plugin}`")))
        .unwrap_or_else(|| panic!("no line about `{plugin}`:\n{outcome:?}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A scratch directory and a private plugin cache.
struct Scratch {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("scratch dir"),
            cache: tempfile::tempdir().expect("cache dir"),
        }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).expect("write scratch file");
        path
    }

    fn ponder(&self, args: &[&str]) -> Outcome {
        ponder(args, self.cache.path())
    }

    /// A copy of the tiny Llama with `config.json` edited by `edit`.
    fn model_with_config(&self, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
        let source = tiny_model_dir("llama");
        let target = self.dir.path().join(name);
        std::fs::create_dir_all(&target).expect("model dir");
        for entry in std::fs::read_dir(&source).expect("tiny model") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy");
        }
        let config_path = target.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config"))
                .expect("config.json is JSON");
        edit(&mut config);
        std::fs::write(&config_path, config.to_string()).expect("write config");
        target
    }

    /// A manifest for `ponder plugins check` / `ponder train` with the example's plugins, the
    /// judge replaced by `judge` and `extra` TOML appended.
    fn manifest(&self, name: &str, judge: &Path, extra: &str) -> PathBuf {
        let text = format!(
            r#"[run]
out = "{out}"

[model]
path = "{model}"

[data]
train = "{train}"
per_iteration = 4

[sample]
k = 2
max_new_tokens = 8

[plugins.template]
wasm = "{template}"

[plugins.judge]
wasm = "{judge}"

[plugins.selector]
wasm = "{selector}"
{extra}"#,
            out = self.dir.path().join("run").display(),
            model = tiny_model_dir("llama").display(),
            train = root().join("data/train.jsonl").display(),
            template = plugin("thought-generic").display(),
            judge = judge.display(),
            selector = plugin("select-length-controlled").display(),
        );
        self.file(name, text.as_bytes())
    }
}

const GOOD_PAIR: &str =
    r#"{"prompt": [{"role": "user", "content": "Say hi."}], "chosen": "Hi!", "rejected": "No."}"#;

#[test]
fn the_detector_finds_repeats() {
    let repeated =
        "pairs.jsonl: stream did not contain valid UTF-8: stream did not contain valid UTF-8";
    assert_eq!(
        repeated_clause(repeated).as_deref(),
        Some("stream did not contain valid UTF-8")
    );
    assert_eq!(
        repeated_clause("a.toml: cannot read: x: y: cannot read: x").as_deref(),
        Some("cannot read: x")
    );
    assert_eq!(
        repeated_clause("pairs.jsonl:2: field `(row)`: not valid UTF-8"),
        None
    );
    assert_eq!(error_text("noise\nerror: a: b\n"), "a: b");
}

#[test]
fn manifest_errors_read_once() {
    let scratch = Scratch::new();
    let judge = plugin("judge-constraints");

    let missing = scratch.dir.path().join("missing.toml");
    assert_fails_once(
        "missing manifest",
        &scratch.ponder(&["plugins", "check", path_str(&missing)]),
        &["missing.toml", "No such file"],
    );

    let unknown_key = scratch.manifest("unknown.toml", &judge, "\n[dpo]\nbta = 0.1\n");
    assert_fails_once(
        "unknown manifest key",
        &scratch.ponder(&["plugins", "check", path_str(&unknown_key)]),
        &["unknown.toml", "dpo.bta"],
    );

    let bad_value = scratch.manifest("bad-value.toml", &judge, "\n[dpo]\nlr = nan\n");
    assert_fails_once(
        "NaN learning rate in the manifest",
        &scratch.ponder(&["train", path_str(&bad_value), "--no-progress"]),
        &["bad-value.toml", "dpo.lr"],
    );

    // Passes the manifest's own range checks; the trainer's validation refuses it before any
    // sampling (AdamW's decay would multiply every weight by 1 − 200 · 0.01 < 0).
    let trainer_refuses = scratch.manifest("huge-lr.toml", &judge, "\n[dpo]\nlr = 200.0\n");
    let outcome = scratch.ponder(&["train", path_str(&trainer_refuses), "--no-progress"]);
    assert_fails_once(
        "a learning rate the trainer refuses",
        &outcome,
        &["huge-lr.toml", "dpo", "weight decay"],
    );
    assert!(
        !scratch.dir.path().join("run/iter-1/samples.jsonl").exists(),
        "sampled before refusing:\n{outcome:?}"
    );

    let syntax = scratch.file("syntax.toml", b"[run\nout = 1\n");
    assert_fails_once(
        "TOML syntax error",
        &scratch.ponder(&["plugins", "check", path_str(&syntax)]),
        &["syntax.toml:1"],
    );

    let missing_plugin = scratch.manifest(
        "missing-plugin.toml",
        &scratch.dir.path().join("nowhere.wasm"),
        "",
    );
    assert_fails_once(
        "missing plugin file",
        &scratch.ponder(&["train", path_str(&missing_plugin), "--no-progress"]),
        &["plugins.judge", "nowhere.wasm"],
    );
    let outcome = scratch.ponder(&["plugins", "check", path_str(&missing_plugin)]);
    assert_reads_once(
        "missing plugin file (check)",
        check_line(&outcome, "nowhere"),
        &["nowhere.wasm"],
    );
}

#[test]
fn a_text_file_as_a_plugin_is_named_without_its_content() {
    let scratch = Scratch::new();
    let text = scratch.file(
        "notes.wasm",
        b"first line of a private note, not code\nsecond line\n",
    );
    let manifest = scratch.manifest("text-judge.toml", &text, "");
    let outcome = scratch.ponder(&["plugins", "check", path_str(&manifest)]);
    assert_reads_once(
        "plugins check",
        check_line(&outcome, "notes"),
        &["not a WebAssembly component"],
    );
    let outcome_text = format!("{}{}", outcome.stdout, outcome.stderr);
    assert!(
        !outcome_text.contains("private note"),
        "plugins check: the file's content is echoed:\n{outcome_text}"
    );
    let outcome = scratch.ponder(&["train", path_str(&manifest), "--no-progress"]);
    assert_fails_once("train", &outcome, &["notes", "not a WebAssembly component"]);
    assert!(
        !outcome.stderr.contains("private note"),
        "train: the file's content is echoed:\n{}",
        outcome.stderr
    );
    let input = scratch.file("input.jsonl", b"{}\n");
    let outcome = scratch.ponder(&[
        "plugins",
        "run",
        "judge",
        "--plugin",
        path_str(&text),
        "--input",
        path_str(&input),
    ]);
    assert_fails_once("plugins run", &outcome, &["not a WebAssembly component"]);
    assert!(
        !outcome.stderr.contains("private note"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn pairs_file_errors_read_once_and_name_the_line() {
    let scratch = Scratch::new();
    let model = tiny_model_dir("llama");
    let dpo = |pairs: &Path, extra: &[&str]| {
        let out = scratch.dir.path().join("dpo-out");
        let mut args = vec![
            "dpo",
            "--model",
            path_str(&model),
            "--pairs",
            path_str(pairs),
            "--out",
            path_str(&out),
            "--no-progress",
        ];
        args.extend_from_slice(extra);
        let outcome = scratch.ponder(&args);
        assert!(
            !out.join("model").exists(),
            "a failed run saved a model:\n{outcome:?}"
        );
        outcome
    };

    let mut invalid_utf8 = format!("{GOOD_PAIR}\n").into_bytes();
    invalid_utf8.extend_from_slice(b"{\"prompt\": \"\xff\xfe\"}\n");
    let pairs = scratch.file("utf8.jsonl", &invalid_utf8);
    assert_fails_once(
        "invalid UTF-8 in pairs",
        &dpo(&pairs, &[]),
        &["utf8.jsonl:2", "UTF-8"],
    );

    let bad_json = scratch.file("json.jsonl", format!("{GOOD_PAIR}\n\n{{oops\n").as_bytes());
    assert_fails_once(
        "bad JSON line in pairs",
        &dpo(&bad_json, &[]),
        &["json.jsonl:3", "invalid JSON"],
    );

    let missing_field = scratch.file(
        "field.jsonl",
        br#"{"prompt": [{"role": "user", "content": "x"}], "chosen": "a"}"#,
    );
    assert_fails_once(
        "missing field in pairs",
        &dpo(&missing_field, &[]),
        &["field.jsonl:1", "rejected"],
    );

    let missing = scratch.dir.path().join("missing.jsonl");
    assert_fails_once(
        "missing pairs file",
        &dpo(&missing, &[]),
        &["missing.jsonl", "No such file"],
    );

    let good = scratch.file("good.jsonl", format!("{GOOD_PAIR}\n").as_bytes());
    for (flags, named) in [
        (&["--adam-eps", "0"][..], "eps"),
        (&["--weight-decay", "NaN"][..], "weight decay"),
        (&["--lr", "inf"][..], "learning rate"),
        (&["--max-grad-norm", "NaN"][..], "max grad norm"),
    ] {
        assert_fails_once(
            &format!("ponder dpo {flags:?}"),
            &dpo(&good, flags),
            &[named],
        );
    }
}

#[test]
fn instruction_file_errors_read_once_and_name_the_line() {
    let scratch = Scratch::new();
    let mut bytes = b"{\"id\": \"a\", \"prompt\": \"Say hi.\"}\n".to_vec();
    bytes.extend_from_slice(b"{\"id\": \"b\", \"prompt\": \"\xc3\x28\"}\n");
    let invalid_utf8 = scratch.file("utf8.jsonl", &bytes);
    assert_fails_once(
        "invalid UTF-8 in instructions",
        &scratch.ponder(&["data", "check", path_str(&invalid_utf8)]),
        &["utf8.jsonl", "line 2", "UTF-8"],
    );

    let bad_json = scratch.file("json.jsonl", b"{\"id\": \"a\", \"prompt\": \"x\"}\n{oops\n");
    assert_fails_once(
        "bad JSON in instructions",
        &scratch.ponder(&["data", "check", path_str(&bad_json)]),
        &["json.jsonl", "line 2", "not valid JSON"],
    );

    let no_prompt = scratch.file("rows.jsonl", b"{\"id\": \"a\", \"category\": \"x\"}\n");
    assert_fails_once(
        "row without a prompt",
        &scratch.ponder(&["data", "check", path_str(&no_prompt)]),
        &["rows.jsonl", "line 1", "prompt"],
    );

    let missing = scratch.dir.path().join("missing.jsonl");
    assert_fails_once(
        "missing instruction file",
        &scratch.ponder(&["data", "check", path_str(&missing)]),
        &["missing.jsonl", "No such file"],
    );

    // The same file through a manifest.
    let manifest = scratch.manifest("utf8-data.toml", &plugin("judge-constraints"), "");
    let text = std::fs::read_to_string(&manifest)
        .expect("manifest")
        .replace(
            &root().join("data/train.jsonl").display().to_string(),
            &invalid_utf8.display().to_string(),
        );
    std::fs::write(&manifest, text).expect("write manifest");
    assert_fails_once(
        "invalid UTF-8 in the manifest's training data",
        &scratch.ponder(&["train", path_str(&manifest), "--no-progress"]),
        &["utf8.jsonl", "line 2"],
    );
}

#[test]
fn model_errors_read_once() {
    let scratch = Scratch::new();
    let tokenize = |model: &Path| scratch.ponder(&["tokenize", "--model", path_str(model), "hi"]);

    let missing = scratch.dir.path().join("no-model");
    assert_fails_once("missing model", &tokenize(&missing), &["no-model"]);

    let empty = scratch.dir.path().join("empty-model");
    std::fs::create_dir_all(&empty).expect("empty dir");
    assert_fails_once("empty model directory", &tokenize(&empty), &["empty-model"]);

    let bad_type = scratch.model_with_config("bad-type", |config| {
        config["hidden_size"] = serde_json::json!("thirty-two");
    });
    assert_fails_once(
        "config.json value of the wrong type",
        &tokenize(&bad_type),
        &["config.json", "hidden_size"],
    );

    let not_json = scratch.model_with_config("not-json", |_| {});
    std::fs::write(not_json.join("config.json"), "{ not json").expect("write");
    assert_fails_once(
        "config.json that is not JSON",
        &tokenize(&not_json),
        &["config.json"],
    );

    let bad_pairs = scratch.file("pairs.jsonl", format!("{GOOD_PAIR}\n").as_bytes());
    let inconsistent = scratch.model_with_config("inconsistent", |config| {
        config["num_attention_heads"] = serde_json::json!(3);
    });
    let out = scratch.dir.path().join("out");
    assert_fails_once(
        "inconsistent config.json",
        &scratch.ponder(&[
            "dpo",
            "--model",
            path_str(&inconsistent),
            "--pairs",
            path_str(&bad_pairs),
            "--out",
            path_str(&out),
            "--no-progress",
        ]),
        &[],
    );
}

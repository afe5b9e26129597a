//! `ponder train`: the Thought Preference Optimization loop through the real binary and real
//! plugins, on the tiny random Llama of ../shared/reference/tiny, for two iterations.
//!
//! - a killed run (SIGKILL in the middle of sampling, judging, DPO and validation) resumes to
//!   the same artifacts, byte for byte, as an uninterrupted run (wall-clock fields aside);
//! - bad input gets an error naming the file and the key or line, and damages nothing;
//! - a manifest edited in a way that invalidates finished work is refused, naming the key;
//!   `--restart-from` redoes from there.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ponder_e2e::{Outcome, plugin, ponder_binary, root, test_guest, tpo_plugin_tables};
use ponder_test_support::tiny_model_dir;

/// The manifest of the test runs, with `extra` TOML appended (later keys of a table must be set
/// through `replace` instead: TOML forbids a key twice).
fn manifest(out: &Path, replace: &[(&str, &str)]) -> String {
    let mut text = format!(
        r#"
[run]
out = "{out}"
seed = 7
iterations = 2

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
epochs = 2
batch_size = 2
save_every = 1
{plugins}
"#,
        out = out.display(),
        model = tiny_model_dir("llama").display(),
        train = root().join("data/train.jsonl").display(),
        validation = root().join("data/eval.jsonl").display(),
        plugins = tpo_plugin_tables(),
    );
    for (from, to) in replace {
        assert!(text.contains(from), "{from} is not in the manifest");
        text = text.replace(from, to);
    }
    text
}

/// A scratch directory with a manifest, a run directory and a plugin cache.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn write_manifest(&self, replace: &[(&str, &str)]) -> PathBuf {
        let path = self.dir.path().join("tpo.toml");
        std::fs::write(&path, manifest(&self.run_dir(), replace)).expect("write manifest");
        path
    }

    fn command(&self, manifest: &Path, extra: &[&str]) -> Command {
        let mut command = Command::new(ponder_binary());
        command
            .arg("train")
            .arg(manifest)
            .arg("--no-progress")
            .args(extra)
            .current_dir(root())
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"));
        command
    }

    fn train(&self, manifest: &Path, extra: &[&str]) -> Outcome {
        let output = self
            .command(manifest, extra)
            .output()
            .expect("running ponder train");
        Outcome {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts a run and SIGKILLs it as soon as `moment` holds for its run directory. Returns
    /// whether the kill landed (false: the run finished first).
    fn train_and_kill(&self, manifest: &Path, moment: &dyn Fn(&Path) -> bool) -> bool {
        let mut child = self
            .command(manifest, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ponder train");
        let run = self.run_dir();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = child.try_wait().expect("waiting") {
                assert!(status.success(), "the run failed before the kill: {status}");
                return false;
            }
            if moment(&run) {
                child.kill().expect("SIGKILL");
                let status = child.wait().expect("reaping");
                return status.signal() == Some(9);
            }
            assert!(Instant::now() < deadline, "the kill moment never came");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn assert_ok(outcome: &Outcome) {
    assert!(
        outcome.success,
        "ponder train failed\nstdout:\n{}\nstderr:\n{}",
        outcome.stdout, outcome.stderr
    );
}

fn assert_fails_with(outcome: &Outcome, needles: &[&str]) {
    assert!(
        !outcome.success,
        "ponder train succeeded but should have failed\nstdout:\n{}",
        outcome.stdout
    );
    for needle in needles {
        assert!(
            outcome.stderr.contains(needle),
            "the error does not mention {needle:?}:\n{}",
            outcome.stderr
        );
    }
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
}

/// Keys whose values are wall-clock measurements: the only non-deterministic content.
const TIMING_KEYS: [&str; 3] = ["seconds", "step_seconds", "tokens_per_second"];

fn strip_timings(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for key in TIMING_KEYS {
                map.remove(key);
            }
            map.values_mut().for_each(strip_timings);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_timings),
        _ => {}
    }
}

/// Every file of a run directory (relative path → comparable content), timings logs and the
/// report left out and timing fields of JSON files removed; everything else byte for byte.
fn artifacts(run: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(base, &path, out);
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // report.html is a view of the other files, wall-clock timings included.
            if name == "timings.jsonl" || name == "report.html" {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read artifact");
            let json_lines = name.ends_with(".jsonl") || name.ends_with(".json");
            let content = if json_lines && (name.contains("metrics") || name.contains("state")) {
                let text = String::from_utf8(bytes).expect("UTF-8");
                let values: Vec<serde_json::Value> = if name.ends_with(".jsonl") {
                    text.lines()
                        .map(|line| serde_json::from_str(line).expect("JSON line"))
                        .collect()
                } else {
                    vec![serde_json::from_str(&text).expect("JSON")]
                };
                let mut values = values;
                values.iter_mut().for_each(strip_timings);
                serde_json::to_vec(&values).expect("JSON")
            } else {
                bytes
            };
            out.insert(
                path.strip_prefix(base).expect("inside").to_path_buf(),
                content,
            );
        }
    }
    let mut out = BTreeMap::new();
    walk(run, run, &mut out);
    out
}

fn assert_same_artifacts(expected: &Path, actual: &Path) {
    let expected = artifacts(expected);
    let actual = artifacts(actual);
    let names = |map: &BTreeMap<PathBuf, Vec<u8>>| map.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&expected), names(&actual), "different files");
    for (path, bytes) in &expected {
        assert!(
            &actual[path] == bytes,
            "{} differs from the uninterrupted run",
            path.display()
        );
    }
}

fn exists_glob(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    })
}

/// One uninterrupted run, shared by the tests that compare against it.
fn reference_run() -> &'static Path {
    static RUN: std::sync::OnceLock<(tempfile::TempDir, PathBuf)> = std::sync::OnceLock::new();
    let (_, run) = RUN.get_or_init(|| {
        let scratch = Scratch::new();
        let manifest = scratch.write_manifest(&[]);
        let outcome = scratch.train(&manifest, &[]);
        assert_ok(&outcome);
        let run = scratch.run_dir();
        (scratch.dir, run)
    });
    run
}

#[test]
fn two_iterations_leave_every_artifact_and_train_on_pairs() {
    let run = reference_run();
    for iteration in ["iter-1", "iter-2"] {
        let dir = run.join(iteration);
        for file in [
            "instructions.jsonl",
            "samples.jsonl",
            "judgments.jsonl",
            "pairs.jsonl",
            "model/config.json",
            "model/model.safetensors",
            "model/tokenizer.json",
            "dpo/reference_logps.json",
        ] {
            assert!(dir.join(file).is_file(), "{iteration}/{file} is missing");
        }
        assert!(!dir.join("samples.parts").exists());
        assert!(!dir.join("judgments.parts").exists());
        assert!(exists_glob(&dir.join("validation"), "step-"));
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let records: Vec<serde_json::Value> = metrics
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(records.len(), 2);
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record["iteration"], index as u64 + 1);
        assert_eq!(record["samples"], 16);
        assert!(record["pairs"].as_u64().expect("pairs") > 0, "{record}");
        assert!(record["dpo_loss"].as_f64().is_some(), "{record}");
        for key in ["sample", "judge", "select", "dpo", "host", "total"] {
            assert!(record["seconds"][key].as_f64().is_some(), "{key}: {record}");
        }
    }
    // The thought budget forces the separator, so every output parses (the tiny model writes
    // noise); the judge saw responses only.
    let samples = std::fs::read_to_string(run.join("iter-1/samples.jsonl")).expect("samples");
    let first: serde_json::Value =
        serde_json::from_str(samples.lines().next().expect("a row")).expect("JSON");
    let text = first["outputs"][0]["text"].as_str().expect("text");
    assert!(text.starts_with("Here is my thought process:"), "{text}");
    assert!(text.contains("Here is my response:"), "{text}");
    // The second iteration starts from the first one's model.
    let pairs = std::fs::read_to_string(run.join("iter-2/pairs.jsonl")).expect("pairs");
    assert!(!pairs.is_empty());
    // Iteration slices are disjoint.
    let ids = |iteration: &str| -> Vec<String> {
        std::fs::read_to_string(run.join(iteration).join("instructions.jsonl"))
            .expect("instructions")
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("JSON");
                row["id"].as_str().expect("id").to_string()
            })
            .collect()
    };
    let (first, second) = (ids("iter-1"), ids("iter-2"));
    assert!(
        first.iter().all(|id| !second.contains(id)),
        "{first:?} {second:?}"
    );
}

/// The tensors of a safetensors file.
fn tensors(path: &Path) -> ponder_checkpoint::Weights {
    let mut weights = ponder_checkpoint::Weights::new();
    ponder_checkpoint::read_safetensors_file(path, &mut weights)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    weights
}

/// `[dpo.lora]` rank 4 (alpha 8, every projection) on the test manifest.
const LORA: (&str, &str) = (
    "save_every = 1\n",
    "save_every = 1\n\n[dpo.lora]\nrank = 4\n",
);

/// The first and the last DPO step's metrics of an iteration.
fn first_and_last_steps(run: &Path, iteration: &str) -> (serde_json::Value, serde_json::Value) {
    let text = std::fs::read_to_string(run.join(iteration).join("dpo/metrics.jsonl"))
        .expect("dpo metrics");
    let steps: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    (steps[0].clone(), steps[steps.len() - 1].clone())
}

#[test]
fn lora_carries_one_adapter_over_the_seed_model_across_iterations() {
    let scratch = Scratch::new();
    let manifest = scratch.write_manifest(&[LORA]);
    assert_ok(&scratch.train(&manifest, &[]));
    let run = scratch.run_dir();
    let seed = tensors(&tiny_model_dir("llama").join("model.safetensors"));
    let scale = 8.0 / 4.0;
    let mut adapters = Vec::new();
    for iteration in ["iter-1", "iter-2"] {
        let model = run.join(iteration).join("model");
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(model.join("adapter/adapter_config.json"))
                .expect("adapter_config.json"),
        )
        .expect("JSON");
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["r"], 4);
        assert_eq!(config["lora_alpha"], 8.0);
        assert_eq!(config["target_modules"].as_array().map(Vec::len), Some(7));
        let adapter = tensors(&model.join("adapter/adapter_model.safetensors"));
        let merged = tensors(&model.join("model.safetensors"));
        // The iteration's model is the seed plus its adapter, which is therefore relative to
        // the seed: what an engine serving the seed model loads.
        let mut adapted = 0;
        for (name, weight) in merged.iter() {
            let Some(base) = seed.get(name) else {
                continue;
            };
            let stem = name.strip_suffix(".weight").unwrap_or(name);
            let factor =
                |which: &str| adapter.get(&format!("base_model.model.{stem}.{which}.weight"));
            let (Some(a), Some(b)) = (factor("lora_A"), factor("lora_B")) else {
                assert_eq!(weight, base, "{iteration}: {name} is frozen");
                continue;
            };
            let (rows, columns, rank) = (b.shape[0], a.shape[1], a.shape[0]);
            for row in 0..rows {
                for column in 0..columns {
                    let delta: f64 = (0..rank)
                        .map(|r| {
                            f64::from(b.data[row * rank + r])
                                * f64::from(a.data[r * columns + column])
                        })
                        .sum();
                    let expected = f64::from(base.data[row * columns + column]) + scale * delta;
                    let found = f64::from(weight.data[row * columns + column]);
                    assert!(
                        (found - expected).abs() < 1e-5,
                        "{iteration}: {name}[{row}, {column}] = {found}, seed + adapter = {expected}"
                    );
                }
            }
            adapted += 1;
        }
        assert_eq!(
            adapted,
            2 * 7,
            "{iteration}: every projection of both layers is adapted"
        );
        adapters.push(adapter);
    }
    assert_ne!(
        adapters[0], adapters[1],
        "iteration 2 trained the adapter further"
    );
    // Iteration 2 started from iteration 1's adapter: its first step's policy is its reference
    // (M_2), so the implicit rewards start at zero, as at iteration 1; a fresh adapter would
    // start from the seed, which iteration 1's training moved away from.
    for iteration in ["iter-1", "iter-2"] {
        let (first, last) = first_and_last_steps(&run, iteration);
        for key in ["rewards/chosen", "rewards/rejected"] {
            let reward = first[key].as_f64().expect(key);
            assert!(reward.abs() < 1e-4, "{iteration} step 1 {key} = {reward}");
        }
        let moved = last["rewards/chosen"].as_f64().expect("reward").abs()
            + last["rewards/rejected"].as_f64().expect("reward").abs();
        assert!(
            moved > 1e-2,
            "{iteration}: training moved the policy ({last})"
        );
    }

    // A bad target is named before any work.
    let bad = Scratch::new();
    let manifest = bad.write_manifest(&[(
        "save_every = 1\n",
        "save_every = 1\n\n[dpo.lora]\nrank = 4\ntargets = [\"q_proj\", \"qkv\"]\n",
    )]);
    assert_fails_with(&bad.train(&manifest, &[]), &["dpo.lora.targets", "qkv"]);
    assert!(!bad.run_dir().join("iter-1").exists());
}

#[test]
fn lora_killed_while_training_iteration_two_resumes_to_the_same_bytes() {
    let expected = Scratch::new();
    let manifest = expected.write_manifest(&[LORA]);
    assert_ok(&expected.train(&manifest, &[]));
    let scratch = Scratch::new();
    let manifest = scratch.write_manifest(&[LORA]);
    let killed = scratch.train_and_kill(&manifest, &|run| {
        exists_glob(&run.join("iter-2/dpo/checkpoints"), "step-")
    });
    assert!(
        killed,
        "the run finished before iteration 2's first DPO checkpoint"
    );
    assert_ok(&scratch.train(&manifest, &[]));
    assert_same_artifacts(&expected.run_dir(), &scratch.run_dir());
}

#[test]
fn a_rerun_of_a_finished_run_changes_nothing() {
    let scratch = Scratch::new();
    let manifest = scratch.write_manifest(&[]);
    assert_ok(&scratch.train(&manifest, &[]));
    let before = artifacts(&scratch.run_dir());
    let again = scratch.train(&manifest, &[]);
    assert_ok(&again);
    assert!(again.stderr.contains("done earlier"), "{}", again.stderr);
    assert_eq!(before, artifacts(&scratch.run_dir()));
    assert_same_artifacts(reference_run(), &scratch.run_dir());
}

/// Kills a run when `moment` holds for its run directory, reruns it to the end, and compares
/// with the reference run. The kill must land where `moment` says (the run must still be in that
/// state afterwards); a kill that came too late is retried with a fresh run.
fn killed_and_resumed_equals_uninterrupted(moment: &dyn Fn(&Path) -> bool, what: &str) {
    for _attempt in 0..5 {
        let scratch = Scratch::new();
        let manifest = scratch.write_manifest(&[]);
        let killed = scratch.train_and_kill(&manifest, moment);
        if !(killed && moment(&scratch.run_dir())) {
            continue;
        }
        assert_ok(&scratch.train(&manifest, &[]));
        assert_same_artifacts(reference_run(), &scratch.run_dir());
        return;
    }
    panic!("five runs finished their phase before the kill {what} landed");
}

#[test]
fn killed_while_sampling_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_uninterrupted(
        &|run| {
            let dir = run.join("iter-1");
            exists_glob(&dir.join("samples.parts"), "chunk-") && !dir.join("samples.jsonl").exists()
        },
        "in the sampling phase",
    );
}

#[test]
fn killed_while_judging_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_uninterrupted(
        &|run| {
            let dir = run.join("iter-2");
            exists_glob(&dir.join("judgments.parts"), "chunk-")
                && !dir.join("judgments.jsonl").exists()
        },
        "in the judging phase",
    );
}

#[test]
fn killed_while_training_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_uninterrupted(
        &|run| {
            exists_glob(&run.join("iter-1/dpo/checkpoints"), "step-")
                && !run.join("iter-1/model").exists()
        },
        "in the DPO phase",
    );
}

#[test]
fn killed_while_validating_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_uninterrupted(
        &|run| {
            exists_glob(&run.join("iter-2/validation"), "step-")
                && !run.join("iter-2/model").exists()
        },
        "in a validation pass",
    );
}

#[test]
fn killed_between_phases_resumes_to_the_same_bytes() {
    killed_and_resumed_equals_uninterrupted(
        &|run| run.join("iter-2/judgments.jsonl").exists() && !run.join("iter-2/dpo").exists(),
        "after judging",
    );
}

#[test]
fn an_edited_manifest_is_refused_naming_the_key_and_restart_redoes() {
    let scratch = Scratch::new();
    let manifest = scratch.write_manifest(&[]);
    assert_ok(&scratch.train(&manifest, &[]));
    let finished = artifacts(&scratch.run_dir());

    // A sampling setting: everything depends on it.
    let edited = scratch.write_manifest(&[("max_new_tokens = 40", "max_new_tokens = 41")]);
    let refused = scratch.train(&edited, &[]);
    assert_fails_with(
        &refused,
        &[
            "sample.max_new_tokens",
            "40",
            "41",
            "--restart-from 1:sample",
        ],
    );
    assert_eq!(
        finished,
        artifacts(&scratch.run_dir()),
        "a refusal damages nothing"
    );

    // A DPO setting: sampling and judging stay valid; `--restart-from 2` is not enough.
    let edited = scratch.write_manifest(&[("lr = 1e-3", "lr = 2e-3")]);
    assert_fails_with(&scratch.train(&edited, &[]), &["dpo.lr", "1:dpo"]);
    assert_fails_with(
        &scratch.train(&edited, &["--restart-from", "2"]),
        &["dpo.lr", "1:dpo"],
    );
    let redone = scratch.train(&edited, &["--restart-from", "1:dpo"]);
    assert_ok(&redone);
    let after = artifacts(&scratch.run_dir());
    for kept in [
        "iter-1/samples.jsonl",
        "iter-1/judgments.jsonl",
        "iter-1/pairs.jsonl",
    ] {
        assert_eq!(after[Path::new(kept)], finished[Path::new(kept)], "{kept}");
    }
    assert_ne!(
        after[Path::new("iter-1/model/model.safetensors")],
        finished[Path::new("iter-1/model/model.safetensors")],
        "iteration 1 was trained again with the new learning rate"
    );

    // More iterations are not an edit of finished work.
    let longer = scratch.write_manifest(&[
        ("lr = 1e-3", "lr = 2e-3"),
        ("iterations = 2", "iterations = 3"),
    ]);
    let continued = scratch.train(&longer, &[]);
    assert_ok(&continued);
    assert!(scratch.run_dir().join("iter-3/model").is_dir());

    let bad = scratch.train(&longer, &["--restart-from", "2:think"]);
    assert_fails_with(
        &bad,
        &["--restart-from", "2:think", "sample, judge, select, dpo"],
    );
}

#[test]
fn bad_input_is_named_and_damages_nothing() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();

    let missing_plugin = scratch.write_manifest(&[(
        &plugin("judge-constraints").display().to_string(),
        "/nonexistent/judge.wasm",
    )]);
    assert_fails_with(
        &scratch.train(&missing_plugin, &[]),
        &["plugins.judge", "/nonexistent/judge.wasm"],
    );

    let wrong_role = scratch.write_manifest(&[(
        &plugin("judge-constraints").display().to_string(),
        &plugin("thought-generic").display().to_string(),
    )]);
    assert_fails_with(
        &scratch.train(&wrong_role, &[]),
        &["judge", "thought-generic"],
    );

    let missing_model = scratch.write_manifest(&[(
        &tiny_model_dir("llama").display().to_string(),
        "/nonexistent/model",
    )]);
    assert_fails_with(
        &scratch.train(&missing_model, &[]),
        &["model.path", "/nonexistent/model"],
    );

    let rows = dir.join("rows.jsonl");
    std::fs::write(
        &rows,
        "{\"id\": \"a\", \"prompt\": \"Say hi.\"}\n{\"id\": \"b\", \"category\": \"x\"}\n",
    )
    .expect("write rows");
    let no_instruction = scratch.write_manifest(&[(
        &root().join("data/train.jsonl").display().to_string(),
        &rows.display().to_string(),
    )]);
    assert_fails_with(
        &scratch.train(&no_instruction, &[]),
        &["rows.jsonl", "line 2"],
    );

    let too_small = scratch.write_manifest(&[("per_iteration = 4", "per_iteration = 60")]);
    assert_fails_with(
        &scratch.train(&too_small, &[]),
        &["train.jsonl", "80 instructions", "120"],
    );

    // A run directory that cannot be created (its parent is a file).
    let blocker = dir.join("file");
    std::fs::write(&blocker, "not a directory").expect("write");
    let text = manifest(&blocker.join("run"), &[]);
    let unwritable = dir.join("unwritable.toml");
    std::fs::write(&unwritable, text).expect("write manifest");
    assert_fails_with(&scratch.train(&unwritable, &[]), &["file/run"]);

    // None of the failures left a run behind.
    assert!(!scratch.run_dir().join("iter-1").exists());
}

/// A scratch run of one iteration over the first eight rows of data/train.jsonl, in file order,
/// all eight in one sampling batch and one judge call (so a call that fails as a whole holds rows
/// that do not fail too). `edit` changes row `index` before it is written; `policy` is
/// `run.on_row_failure`; `replace` edits the manifest further.
fn eight_row_run(
    edit: &dyn Fn(usize, &mut serde_json::Value),
    policy: &str,
    replace: &[(&str, &str)],
) -> (Scratch, PathBuf) {
    let scratch = Scratch::new();
    let mut text = String::new();
    for (index, line) in std::fs::read_to_string(root().join("data/train.jsonl"))
        .expect("train")
        .lines()
        .take(8)
        .enumerate()
    {
        let mut row: serde_json::Value = serde_json::from_str(line).expect("JSON");
        edit(index, &mut row);
        text.push_str(&row.to_string());
        text.push('\n');
    }
    let rows = scratch.dir.path().join("rows.jsonl");
    std::fs::write(&rows, text).expect("write rows");
    let train = root().join("data/train.jsonl").display().to_string();
    let rows = rows.display().to_string();
    let iterations = format!("iterations = 1\non_row_failure = \"{policy}\"");
    let mut edits = vec![
        (train.as_str(), rows.as_str()),
        ("iterations = 2", iterations.as_str()),
        ("per_iteration = 4", "per_iteration = 8\nshuffle = false"),
        ("batch_prompts = 2", "batch_prompts = 8"),
    ];
    edits.extend_from_slice(replace);
    let manifest = scratch.write_manifest(&edits);
    (scratch, manifest)
}

/// The rows of a run file of iteration 1 (`judgments.jsonl`, `samples.jsonl`).
fn iteration_rows(run: &Path, file: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("iter-1").join(file))
        .expect("run file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

/// The iteration's `failed_rows` metric.
fn failed_rows_metric(run: &Path) -> u64 {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let record: serde_json::Value = serde_json::from_str(metrics.trim()).expect("JSON");
    record["failed_rows"].as_u64().expect("failed_rows")
}

#[test]
fn judge_failures_on_some_rows_are_skipped_and_counted_or_stop_the_run() {
    // One of the eight instructions has constraints the judge cannot check.
    let unknown_constraint = |index: usize, row: &mut serde_json::Value| {
        if index == 0 {
            row["metadata"]["instruction_id_list"] = serde_json::json!(["no_such:constraint"]);
            row["metadata"]["kwargs"] = serde_json::json!([{}]);
        }
    };
    let (scratch, skip) = eight_row_run(&unknown_constraint, "skip", &[]);
    assert_ok(&scratch.train(&skip, &[]));
    assert_eq!(failed_rows_metric(&scratch.run_dir()), 1);
    let judgments =
        std::fs::read_to_string(scratch.run_dir().join("iter-1/judgments.jsonl")).expect("j");
    assert_eq!(judgments.matches("\"failure\"").count(), 1, "{judgments}");

    let (stop_scratch, stop) = eight_row_run(&unknown_constraint, "stop", &[]);
    let stopped = stop_scratch.train(&stop, &[]);
    assert_fails_with(&stopped, &["judge-constraints", "no_such:constraint"]);
    assert!(
        stop_scratch
            .run_dir()
            .join("iter-1/samples.jsonl")
            .is_file(),
        "the samples survive the stop"
    );
}

#[test]
fn a_judge_call_that_fails_as_a_whole_fails_only_its_marked_rows() {
    // In the one judge call over all eight rows, row 1 makes the judge trap and row 5 makes it
    // return one score too few: the host bisects the call down to those two rows.
    let mark = |index: usize, row: &mut serde_json::Value| {
        let marker = match index {
            1 => " [trap]",
            5 => " [short]",
            _ => return,
        };
        let content = row["prompt"][0]["content"].as_str().expect("content");
        row["prompt"][0]["content"] = serde_json::json!(format!("{content}{marker}"));
    };
    // thought-direct: every non-empty output parses, so every row reaches the judge.
    let template = plugin("thought-generic").display().to_string();
    let direct = plugin("thought-direct").display().to_string();
    let judge = plugin("judge-constraints").display().to_string();
    let marked_judge = test_guest("hostile-marked-judge").display().to_string();
    let replace = [
        (template.as_str(), direct.as_str()),
        (judge.as_str(), marked_judge.as_str()),
    ];

    let (scratch, skip) = eight_row_run(&mark, "skip", &replace);
    assert_ok(&scratch.train(&skip, &[]));
    let run = scratch.run_dir();
    assert_eq!(failed_rows_metric(&run), 2);
    for (index, judgment) in iteration_rows(&run, "judgments.jsonl").iter().enumerate() {
        let failure = judgment["failure"].as_str();
        match index {
            1 => assert!(
                failure.is_some_and(|f| f.contains("unreachable")),
                "{judgment}"
            ),
            5 => assert!(
                failure.is_some_and(|f| f.contains("scores for")),
                "{judgment}"
            ),
            _ => {
                assert!(failure.is_none(), "row {index} failed: {judgment}");
                // The judge's verdicts of the rows that shared the failed calls are kept.
                let candidates = judgment["candidates"].as_array().expect("candidates");
                for candidate in candidates.iter().filter(|c| c["parsed"] == true) {
                    assert!(candidate["score"].is_number(), "row {index}: {candidate}");
                }
            }
        }
    }
    // The same seed gives the same bytes, bisection included.
    let (again, skip_again) = eight_row_run(&mark, "skip", &replace);
    assert_ok(&again.train(&skip_again, &[]));
    let (first, second) = (artifacts(&run), artifacts(&again.run_dir()));
    assert_eq!(first.len(), second.len(), "different files");
    // run.json names the rows file, which each scratch directory has its own copy of.
    for (path, bytes) in first
        .iter()
        .filter(|(path, _)| *path != Path::new("run.json"))
    {
        assert!(
            second.get(path) == Some(bytes),
            "{} differs between two runs with the same seed",
            path.display()
        );
    }

    let (stop_scratch, stop) = eight_row_run(&mark, "stop", &replace);
    assert_fails_with(
        &stop_scratch.train(&stop, &[]),
        &["hostile_marked_judge", "unreachable"],
    );
}

#[test]
fn a_template_whose_parse_traps_on_some_outputs_fails_only_their_rows() {
    // The marked template traps on an output whose length in bytes is a multiple of 5.
    let traps = |output: &serde_json::Value| {
        output["text"]
            .as_str()
            .expect("text")
            .len()
            .is_multiple_of(5)
    };
    let template = plugin("thought-generic").display().to_string();
    let marked_template = test_guest("hostile-marked-template").display().to_string();
    let replace = [(template.as_str(), marked_template.as_str())];

    let (scratch, skip) = eight_row_run(&|_, _| {}, "skip", &replace);
    assert_ok(&scratch.train(&skip, &[]));
    let run = scratch.run_dir();
    let samples = iteration_rows(&run, "samples.jsonl");
    let judgments = iteration_rows(&run, "judgments.jsonl");
    let mut failing = 0;
    for (sample, judgment) in samples.iter().zip(&judgments) {
        let outputs = sample["outputs"].as_array().expect("outputs");
        let trapped = outputs.iter().filter(|output| traps(output)).count();
        let candidates = judgment["candidates"].as_array().expect("candidates");
        let unparsed = candidates.iter().filter(|c| c["parsed"] == false).count();
        assert_eq!(unparsed, trapped, "{judgment}");
        assert_eq!(judgment["failure"].is_string(), trapped > 0, "{judgment}");
        if trapped > 0 {
            failing += 1;
        } else {
            assert!(
                candidates.iter().all(|c| c["score"].is_number()),
                "{judgment}"
            );
        }
    }
    assert!(
        failing > 0 && failing < samples.len(),
        "this seed's outputs should make some rows fail and not others ({failing} of {})",
        samples.len()
    );
    // A row counts once, however many of its outputs trapped.
    assert_eq!(failed_rows_metric(&run), failing as u64);

    let (stop_scratch, stop) = eight_row_run(&|_, _| {}, "stop", &replace);
    assert_fails_with(
        &stop_scratch.train(&stop, &[]),
        &["hostile_marked_template", "parse", "unreachable"],
    );
}

/// The manifest of the test runs with an `[eval]` table evaluating `limit` rows of the
/// verifiable evaluation set (with `eval.judge`: the win rate too).
fn manifest_with_eval(out: &Path, limit: u32) -> String {
    manifest_with_eval_judged(out, limit, true)
}

fn manifest_with_eval_judged(out: &Path, limit: u32, win_rate: bool) -> String {
    let judge = plugin("judge-constraints");
    let judge_line = if win_rate {
        format!("judge = \"{}\"", judge.display())
    } else {
        String::new()
    };
    format!(
        r#"{}
[eval]
data = "{data}"
limit = {limit}
{judge_line}
constraints_judge = "{judge}"
max_new_tokens = 24
"#,
        manifest(out, &[]),
        data = root().join("data/verifiable/eval.jsonl").display(),
        judge = judge.display(),
    )
}

#[test]
fn an_eval_table_evaluates_each_iteration_against_the_seed_model() {
    let scratch = Scratch::new();
    let manifest = scratch.dir.path().join("tpo.toml");
    std::fs::write(&manifest, manifest_with_eval(&scratch.run_dir(), 3)).expect("write manifest");
    let outcome = scratch.train(&manifest, &[]);
    assert_ok(&outcome);
    assert!(
        outcome.stdout.contains("win % vs seed"),
        "{}",
        outcome.stdout
    );
    let run = scratch.run_dir();
    for iteration in 1..=2 {
        let path = run.join(format!("iter-{iteration}/eval.json"));
        let text = std::fs::read_to_string(&path).expect("eval.json");
        let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(report["instructions"], 3, "{report}");
        assert_eq!(report["temperature"], 0.0, "{report}");
        assert_eq!(report["max_new_tokens"], 24, "{report}");
        let models = report["models"].as_array().expect("models");
        assert_eq!(models.len(), 2, "{report}");
        let model_path = |index: usize| models[index]["model"].as_str().unwrap_or("").to_string();
        assert!(
            model_path(0).ends_with(&format!("iter-{iteration}/model")),
            "{}",
            model_path(0)
        );
        assert_eq!(model_path(1), tiny_model_dir("llama").display().to_string());
        for model in models {
            assert_eq!(model["template"], "thought-generic", "{report}");
            let strict = &model["ifeval"]["accuracies"]["prompt_level_strict"];
            assert!(strict.is_f64(), "{report}");
        }
        assert!(
            report["pairwise"]["win_rate"]["win_rate_percent"].is_f64(),
            "{report}"
        );
    }
    let records: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(records.len(), 2);
    for record in &records {
        for key in [
            "eval_win_rate_percent",
            "eval_ifeval_strict",
            "eval_seed_ifeval_strict",
        ] {
            assert!(record[key].is_f64(), "{key}: {record}");
        }
    }

    // A rerun is a no-op, byte for byte.
    let files = |run: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![run.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.insert(path.clone(), std::fs::read(&path).expect("read"));
                }
            }
        }
        out
    };
    let before = files(&run);
    let again = scratch.train(&manifest, &[]);
    assert_ok(&again);
    assert!(again.stderr.contains("done earlier"), "{}", again.stderr);
    assert_eq!(before, files(&run), "the rerun changed the run directory");

    // An edited `[eval]` key invalidates the eval phase only.
    std::fs::write(&manifest, manifest_with_eval(&run, 2)).expect("write manifest");
    assert_fails_with(&scratch.train(&manifest, &[]), &["eval.limit", "1:eval"]);

    // `--restart-from 2:eval` redoes iteration 2's evaluation only, to the same result.
    std::fs::write(&manifest, manifest_with_eval(&run, 3)).expect("write manifest");
    let restarted = scratch.train(&manifest, &["--restart-from", "2:eval"]);
    assert_ok(&restarted);
    let after = files(&run);
    let model_file = run.join("iter-2/model/model.safetensors");
    assert_eq!(before.get(&model_file), after.get(&model_file));
    let without_seconds = |bytes: &[u8]| {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).expect("JSON");
        strip_timings(&mut value);
        value
    };
    let eval_file = run.join("iter-2/eval.json");
    assert_eq!(
        without_seconds(&before[&eval_file]),
        without_seconds(&after[&eval_file])
    );
    let iteration_one = |map: &BTreeMap<PathBuf, Vec<u8>>| -> Vec<(PathBuf, Vec<u8>)> {
        map.iter()
            .filter(|(path, _)| path.starts_with(run.join("iter-1")))
            .filter(|(path, _)| !path.ends_with("timings.jsonl"))
            .map(|(path, bytes)| (path.clone(), bytes.clone()))
            .collect()
    };
    assert_eq!(iteration_one(&before), iteration_one(&after));
}

#[test]
fn an_eval_table_without_a_judge_measures_ifeval_of_both_models() {
    let scratch = Scratch::new();
    let manifest = scratch.dir.path().join("tpo.toml");
    let text = manifest_with_eval_judged(&scratch.run_dir(), 2, false)
        .replace("iterations = 2", "iterations = 1");
    std::fs::write(&manifest, text).expect("write manifest");
    assert_ok(&scratch.train(&manifest, &[]));
    let run = scratch.run_dir();
    let text = std::fs::read_to_string(run.join("iter-1/eval.json")).expect("eval.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(report["pairwise"].is_null(), "{report}");
    assert!(report["judge"].is_null(), "{report}");
    let models = report["models"].as_array().expect("models");
    assert_eq!(models.len(), 2, "{report}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let record: serde_json::Value =
        serde_json::from_str(metrics.lines().next().expect("a record")).expect("JSON");
    assert!(record["eval_win_rate_percent"].is_null(), "{record}");
    assert!(record["eval_ifeval_strict"].is_f64(), "{record}");
    assert!(record["eval_seed_ifeval_strict"].is_f64(), "{record}");
}

#[test]
fn an_eval_table_llm_judge_granted_models_calls_the_manifests_models() {
    let scratch = Scratch::new();
    let file = scratch.dir.path().join("tpo.toml");
    let text = format!(
        r#"{}
[eval]
data = "{data}"
limit = 2
judge = "{judge}"
judge_grant = ["models"]
judge_config = {{ model = "judge" }}
ifeval = false
max_new_tokens = 24

[models.judge]
path = "{model}"
"#,
        manifest(&scratch.run_dir(), &[("iterations = 2", "iterations = 1")]),
        data = root().join("data/verifiable/eval.jsonl").display(),
        judge = plugin("judge-llm-pointwise").display(),
        model = tiny_model_dir("llama").display(),
    );
    std::fs::write(&file, text).expect("write manifest");
    let outcome = scratch.train(&file, &[]);
    assert_ok(&outcome);
    let text =
        std::fs::read_to_string(scratch.run_dir().join("iter-1/eval.json")).expect("eval.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["judge"]["name"], "judge-llm-pointwise", "{report}");
    assert!(
        report["judge_failures"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "the judge reached its model: {report}"
    );
    assert!(
        report["pairwise"]["win_rate"]["win_rate_percent"].is_f64(),
        "{report}"
    );
}

//! `[sample] engine`: the sampling phase of `ponder train` on llama.cpp's real `llama-server`
//! serving the embedded GGUF on loopback, started and reloaded by
//! `scripts/llama-policy-server.sh` (the README's hook): two iterations with the new policy
//! exported and served before the second; the server killed mid-phase and the rerun keeping
//! every finished sample; a server answering garbage and one that stalls.
//!
//! Without the llama-server binary these tests skip, except under CI (`CI=true`), where they
//! fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ponder_e2e::served::{fake_server, free_port, llama_server_binary, respond};
use ponder_e2e::{Outcome, plugin, plugin_tables, ponder_binary, root};

/// llama-server serving a GGUF through scripts/llama-policy-server.sh, stopped on drop.
struct PolicyServer {
    state: PathBuf,
    binary: PathBuf,
}

impl PolicyServer {
    fn start(binary: &Path, state: &Path, port: u16) -> PolicyServer {
        let server = PolicyServer {
            state: state.to_path_buf(),
            binary: binary.to_path_buf(),
        };
        let model = ponder_test_support::embedded_model_path();
        let status = server
            .script()
            .arg("start")
            .arg(&model)
            .arg(port.to_string())
            .status()
            .expect("running scripts/llama-policy-server.sh");
        assert!(status.success());
        server
    }

    fn script(&self) -> Command {
        let mut command = Command::new(root().join("scripts/llama-policy-server.sh"));
        command
            .env("PONDER_LLAMA_POLICY_DIR", &self.state)
            .env("PONDER_LLAMA_SERVER", &self.binary)
            .env("PONDER_BIN", ponder_binary())
            .env("LLAMA_SERVER_ARGS", "-c 2048 -np 4 -t 2")
            .stdin(Stdio::null());
        command
    }

    /// Kills the server at once (no clean shutdown), as a crash would.
    fn kill(&self) {
        let pid = std::fs::read_to_string(self.state.join("pid")).expect("pid file");
        let status = Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success());
        let _ = std::fs::remove_file(self.state.join("pid"));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("server.log")).unwrap_or_default()
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.script().arg("stop").status();
    }
}

/// The llama-server binary, a run's directory and the policy server started in it on a free
/// port; `None` (skip) without the binary.
fn started_server() -> Option<(PathBuf, tempfile::TempDir, PolicyServer, u16)> {
    let binary = llama_server_binary()?;
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let server = PolicyServer::start(&binary, &dir.path().join("llama"), port);
    Some((binary, dir, server, port))
}

/// A manifest sampling on the engine at `url` (the embedded model is the policy).
fn manifest(
    dir: &Path,
    url: &str,
    iterations: u32,
    per_iteration: u32,
    engine_extra: &str,
) -> PathBuf {
    let path = dir.join("served.toml");
    let root = root();
    let text = format!(
        r#"[run]
out = "{out}"
seed = 7
iterations = {iterations}

[model]
path = "{model}"

[data]
train = "{train}"
per_iteration = {per_iteration}

[sample]
k = 3
max_new_tokens = 48
prefill = true
thought_budget = 24
engine = "policy"

[sample.reload]
command = ["{hook}"]
ready_timeout_s = 300

[models.policy]
url = "{url}"
model = "policy"
{engine_extra}

[dpo]
beta = 0.1
lr = 1e-6
epochs = 1
batch_size = 2
{plugins}"#,
        out = dir.join("run").display(),
        model = ponder_test_support::embedded_model_path().display(),
        train = root.join("data/verifiable/train.jsonl").display(),
        hook = root.join("scripts/llama-policy-server.sh").display(),
        plugins = plugin_tables(&[
            ("template", &plugin("thought-generic"), ""),
            (
                "judge",
                &plugin("judge-constraints"),
                r#"{ mode = "loose" }"#
            ),
            ("selector", &plugin("select-best-worst"), ""),
        ]),
    );
    std::fs::write(&path, text).expect("manifest");
    path
}

/// `ponder train MANIFEST` with the hook's environment.
fn train(manifest: &Path, server: &PolicyServer) -> Outcome {
    let output = Command::new(ponder_binary())
        .arg("train")
        .arg(manifest)
        .env("PONDER_LLAMA_POLICY_DIR", &server.state)
        .env("PONDER_LLAMA_SERVER", &server.binary)
        .env("PONDER_BIN", ponder_binary())
        .env("LLAMA_SERVER_ARGS", "-c 2048 -np 4 -t 2")
        .env(
            "XDG_CACHE_HOME",
            manifest.parent().expect("dir").join("cache"),
        )
        .output()
        .expect("running ponder train");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Every output of a samples.jsonl by (instruction id, sample index).
fn outputs(samples: &Path) -> BTreeMap<(String, u64), serde_json::Value> {
    let mut all = BTreeMap::new();
    for record in jsonl(samples) {
        let id = record["id"].as_str().expect("id").to_string();
        for (index, output) in record["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .enumerate()
        {
            all.insert((id.clone(), index as u64), output.clone());
        }
    }
    all
}

/// Checks one iteration's samples: K outputs per instruction, each starting with the thought
/// header (prefill), each with its response separator (written or forced), none empty.
fn check_samples(samples: &Path, instructions: usize) {
    let records = jsonl(samples);
    assert_eq!(records.len(), instructions);
    for record in &records {
        let outputs = record["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), 3, "{record}");
        for output in outputs {
            let text = output["text"].as_str().expect("text");
            let prefix = record["assistant_prefix"].as_str().expect("prefix");
            assert!(!prefix.is_empty() && text.starts_with(prefix), "{output}");
            assert!(text.len() > prefix.len() + 20, "{output}");
            let tokens = output["tokens"].as_u64().expect("tokens");
            assert!((1..=48).contains(&tokens), "{output}");
            if output["forced_response"] == true {
                assert!(text.contains("Here is my response:"), "{output}");
            }
        }
    }
}

#[test]
fn two_iterations_sample_on_llama_server_and_the_second_on_the_trained_policy() {
    let Some((_, dir, server, port)) = started_server() else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let manifest = manifest(dir.path(), &url, 2, 3, "retries = 1\nconcurrency = 4");
    let outcome = train(&manifest, &server);
    assert!(
        outcome.success,
        "{}\n--- server log\n{}",
        outcome.stderr,
        server.log()
    );
    let run = dir.path().join("run");
    for iteration in [1, 2] {
        let iter = run.join(format!("iter-{iteration}"));
        check_samples(&iter.join("samples.jsonl"), 3);
        assert!(
            !iter.join("samples.served.jsonl").exists(),
            "the journal goes once done"
        );
        assert!(iter.join("judgments.jsonl").is_file());
    }
    assert!(
        outcome.stderr.contains("iteration 1 sample on `policy`")
            && outcome.stderr.contains("9 of 9 samples now (0 resumed)"),
        "{}",
        outcome.stderr
    );
    // Before iteration 2 the hook wrote iteration 1's model as GGUF and restarted the server
    // on it; iteration 1 needed no reload.
    assert!(!run.join("iter-1/reload.log").exists());
    let reload = std::fs::read_to_string(run.join("iter-2/reload.log")).expect("reload.log");
    let exported = run.join("iter-1/model.gguf");
    assert!(exported.is_file(), "{reload}");
    assert!(
        reload.contains(&format!("serving {}", exported.display())),
        "{reload}"
    );
    assert!(server.log().contains("model.gguf"), "{}", server.log());
    // The exported policy is the trained model, loadable here too.
    let back = Command::new(ponder_binary())
        .args(["tokenize", "--model"])
        .arg(&exported)
        .arg("Hello")
        .output()
        .expect("ponder tokenize");
    assert!(
        back.status.success(),
        "{}",
        String::from_utf8_lossy(&back.stderr)
    );
}

#[test]
fn a_server_killed_mid_phase_stops_the_run_and_the_rerun_keeps_every_finished_sample() {
    let Some((binary, dir, server, port)) = started_server() else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let manifest = manifest(dir.path(), &url, 1, 6, "retries = 1\nconcurrency = 2");
    let journal = dir.path().join("run/iter-1/samples.served.jsonl");

    let mut child = Command::new(ponder_binary())
        .arg("train")
        .arg(&manifest)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ponder train");
    let started = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|text| text.lines().count())
            .unwrap_or(0);
        if lines >= 3 {
            break;
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the run ended before the server was killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no samples after 600 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    let output = child.wait_with_output().expect("ponder train");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("sample on engine `policy`"), "{stderr}");
    assert!(stderr.contains(&format!("{url}/completions")), "{stderr}");
    assert!(stderr.contains("samples.served.jsonl"), "{stderr}");
    assert!(!dir.path().join("run/iter-1/samples.jsonl").exists());
    let kept: BTreeMap<(String, u64), serde_json::Value> = jsonl(&journal)
        .into_iter()
        .map(|line| {
            (
                (
                    line["id"].as_str().expect("id").to_string(),
                    line["sample"].as_u64().expect("sample"),
                ),
                line["output"].clone(),
            )
        })
        .collect();
    assert!(kept.len() >= 3 && kept.len() < 18, "{}", kept.len());

    let server = PolicyServer::start(&binary, &dir.path().join("llama"), port);
    let outcome = train(&manifest, &server);
    assert!(
        outcome.success,
        "{}\n--- server log\n{}",
        outcome.stderr,
        server.log()
    );
    assert!(
        outcome.stderr.contains(&format!(
            "{} of {} samples now ({} resumed)",
            18 - kept.len(),
            18 - kept.len(),
            kept.len()
        )),
        "{}",
        outcome.stderr
    );
    let samples = dir.path().join("run/iter-1/samples.jsonl");
    check_samples(&samples, 6);
    let all = outputs(&samples);
    for (key, output) in &kept {
        assert_eq!(all.get(key), Some(output), "{key:?} kept as it was");
    }
    assert!(!journal.exists());
}

#[test]
fn garbage_and_silence_from_the_engine_are_errors_and_no_sample_is_made_up() {
    // Answers `GET /v1/models` (ready), then garbage to every completion.
    let (garbage, _) = fake_server(|_, head, stream| {
        if head.starts_with("GET") {
            respond(stream, "200 OK", r#"{"data":[]}"#);
        } else {
            respond(stream, "200 OK", r#"{"choices":[{"text":"#);
        }
    });
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    // Ready, then never answers a completion.
    let (silent, _) = fake_server(move |_, head, stream| {
        if head.starts_with("GET") {
            respond(stream, "200 OK", r#"{"data":[]}"#);
        } else if let Ok(stream) = stream.try_clone() {
            keep.lock().expect("lock").push(stream);
        }
    });
    for (url, extra, expected) in [
        (&garbage, "retries = 0", "malformed reply"),
        (
            &silent,
            "retries = 0\ntimeout_ms = 800",
            "no reply within 800 ms",
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let manifest = manifest(dir.path(), url, 1, 2, extra);
        let outcome = ponder_e2e::ponder(
            &["train", manifest.to_str().expect("UTF-8")],
            &dir.path().join("cache"),
        );
        assert!(!outcome.success, "{}", outcome.stderr);
        assert!(outcome.stderr.contains(expected), "{}", outcome.stderr);
        assert!(
            outcome.stderr.contains(&format!("{url}/completions"))
                && outcome.stderr.contains("instruction `verifiable-")
                && outcome.stderr.contains(" sample "),
            "the error names the endpoint and the request: {}",
            outcome.stderr
        );
        let iter = dir.path().join("run/iter-1");
        assert!(!iter.join("samples.jsonl").exists());
        let journaled =
            std::fs::read_to_string(iter.join("samples.served.jsonl")).unwrap_or_default();
        assert_eq!(journaled, "", "nothing made up");
    }
    drop(held);
}

#[test]
fn ponder_eval_generates_on_the_engine() {
    let Some((_, dir, _server, port)) = started_server() else {
        return;
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let models = dir.path().join("models.toml");
    std::fs::write(
        &models,
        format!("[models.policy]\nurl = \"{url}\"\nmodel = \"policy\"\nconcurrency = 4\n"),
    )
    .expect("models file");
    let model = ponder_test_support::embedded_model_path();
    let out = dir.path().join("eval.json");
    let eval = |engine: &str| {
        ponder_e2e::ponder(
            &[
                "eval",
                "--a",
                model.to_str().expect("UTF-8"),
                "--a-template",
                plugin("thought-generic").to_str().expect("UTF-8"),
                "--a-engine",
                engine,
                "--models-from",
                models.to_str().expect("UTF-8"),
                "--data",
                root()
                    .join("data/verifiable/eval.jsonl")
                    .to_str()
                    .expect("UTF-8"),
                "--limit",
                "4",
                "--max-new-tokens",
                "48",
                "--prefill",
                "--thought-budget",
                "24",
                "--no-progress",
                "--out",
                out.to_str().expect("UTF-8"),
            ],
            &dir.path().join("cache"),
        )
    };
    let outcome = eval("policy");
    assert!(outcome.success, "{}", outcome.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("eval.json")).expect("JSON");
    let generation = &report["models"][0]["generation"];
    assert_eq!(generation["outputs"], 4, "{report}");
    let tokens = generation["tokens"].as_u64().expect("tokens");
    assert!((4..=4 * 48).contains(&tokens), "{generation}");
    assert_eq!(
        report["models"][0]["ifeval"]["accuracies"]["prompts"], 4,
        "IFEval of the served outputs"
    );
    let wrong = eval("nobody");
    assert!(!wrong.success);
    assert!(
        wrong.stderr.contains("--a-engine nobody") && wrong.stderr.contains("[models.nobody]"),
        "{}",
        wrong.stderr
    );
}

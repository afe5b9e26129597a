//! Served models (`[models.NAME]` with `url`): the plugins' `models` capability over an
//! OpenAI-compatible endpoint. The main path runs against llama.cpp's real `llama-server`
//! serving the embedded GGUF on a loopback port (built by scripts/llama-server.sh, which
//! scripts/test.sh runs; found at target/llama-server/bin/llama-server or $PONDER_LLAMA_SERVER);
//! the faults (a server that stalls, one that answers garbage or cuts its reply off, one that is
//! overloaded for a while) are tiny servers in this file.
//!
//! Without the binary these tests skip, except under CI (`CI=true`), where they fail.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ponder_e2e::served::{
    TestServer, fake_server, free_port, llama_server_binary, read_request_and_body, respond,
    start_test_server,
};
use ponder_e2e::{Outcome, plugin, ponder_binary, root};
use ponder_manifest::ServedModel;
use ponder_plugin_runtime::capability::{
    BudgetExceeded, ChoiceRequest, GenerateRequest, Message, ModelAccessError, ModelBudget,
    RewardRequest, Sampling,
};
use ponder_served::ServedClient;

const INPUT: &str = r#"{"instruction": [{"role": "user", "content": "What is the capital of France?"}], "responses": ["The capital of France is Paris.", "I like turtles.", "Paris."]}"#;

/// The shared llama-server serving the embedded model, started on first use; `None` when the
/// binary is not built (outside CI).
fn llama_server() -> Option<&'static TestServer> {
    static SERVER: OnceLock<Option<TestServer>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            llama_server_binary().map(|binary| {
                let model = ponder_test_support::embedded_model_path();
                let port = free_port();
                let mut args: Vec<OsString> = vec!["-m".into(), model.into_os_string()];
                let flags = ["--host", "127.0.0.1", "-c", "4096", "-np", "4", "-t", "2"];
                args.extend(flags.map(OsString::from));
                args.extend(["--port".into(), port.to_string().into()]);
                start_test_server(
                    "llama-server",
                    &binary,
                    &args,
                    &[],
                    port,
                    "/health",
                    Duration::from_secs(300),
                )
            })
        })
        .as_ref()
}

fn served(url: &str) -> ServedModel {
    ServedModel {
        url: url.to_string(),
        model: "smollm2".into(),
        api_key_env: None,
        timeout_ms: 120_000,
        concurrency: 4,
        retries: 3,
    }
}

fn question(text: &str) -> Vec<Message> {
    vec![Message {
        role: "user".into(),
        content: text.into(),
    }]
}

fn greedy(text: &str, max_new_tokens: u32, stop: Vec<String>) -> GenerateRequest {
    GenerateRequest {
        messages: question(text),
        sampling: Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens,
            seed: 1,
            stop,
        },
    }
}

/// A models file naming `url` as the model `judge`, with `extra` keys.
fn models_file(dir: &Path, url: &str, extra: &str) -> PathBuf {
    let file = dir.join("models.toml");
    std::fs::write(
        &file,
        format!("[models.judge]\nurl = \"{url}\"\nmodel = \"smollm2\"\n{extra}\n"),
    )
    .expect("write models.toml");
    file
}

/// Runs `judge` (a first-party component) on [`INPUT`] with the models of `models`, `env` set.
fn run_judge(judge: &str, config: &str, models: &Path, env: &[(&str, &str)]) -> Outcome {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("judge.jsonl");
    std::fs::write(&input, INPUT).expect("write input");
    let mut command = Command::new(ponder_binary());
    command
        .args(["plugins", "run", "judge", "--plugin"])
        .arg(plugin(judge))
        .args(["--config", config, "--input"])
        .arg(&input)
        .arg("--models-from")
        .arg(models)
        .current_dir(root())
        .env("XDG_CACHE_HOME", dir.path().join("cache"));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("running ponder");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The one output row of a judge run.
fn output_row(outcome: &Outcome) -> serde_json::Value {
    assert!(outcome.success, "{outcome:?}");
    serde_json::from_str(outcome.stdout.trim())
        .unwrap_or_else(|error| panic!("{error}: {outcome:?}"))
}

// ---- against the real llama-server ------------------------------------------------------

#[test]
fn generate_on_llama_server_answers_and_honours_stop_strings() {
    let Some(server) = llama_server() else { return };
    let client =
        ServedClient::new("judge", &served(&format!("{}/v1", server.base))).expect("client");
    let mut budget = ModelBudget::unlimited();
    let replies = client
        .generate(
            &[
                GenerateRequest {
                    messages: vec![
                        Message {
                            role: "system".into(),
                            content: "You are a helpful assistant.".into(),
                        },
                        Message {
                            role: "user".into(),
                            content: "What is the capital of France? Answer in one word.".into(),
                        },
                    ],
                    sampling: greedy("", 20, Vec::new()).sampling,
                },
                // The server is not told the stop string: it generates up to 16 tokens
                // ("1, 2, 3, 4, 5, 6, 7," is 20), ponder cuts the reply after "5".
                greedy(
                    "Count from 1 to 100, separated by commas.",
                    16,
                    vec!["5".into()],
                ),
            ],
            &mut budget,
        )
        .expect("generate");
    assert!(replies[0].contains("Paris"), "{:?}", replies[0]);
    // The contract includes the stop string, once, at the end.
    assert!(replies[1].ends_with('5'), "{:?}", replies[1]);
    assert_eq!(replies[1].matches('5').count(), 1, "{:?}", replies[1]);
    assert!(budget.tokens_used() >= 2, "{}", budget.tokens_used());
    assert!(budget.tokens_used() <= 36, "{}", budget.tokens_used());
}

#[test]
fn seeded_requests_on_llama_server_repeat_alone() {
    let Some(server) = llama_server() else { return };
    let client =
        ServedClient::new("judge", &served(&format!("{}/v1", server.base))).expect("client");
    let requests: Vec<GenerateRequest> = (0..6)
        .map(|seed| {
            let mut request = greedy("Name a colour.", 12, Vec::new());
            request.sampling.temperature = 0.8;
            request.sampling.top_p = 0.95;
            request.sampling.seed = seed;
            request
        })
        .collect();
    // Concurrent requests are all answered, one reply each.
    let concurrent = client
        .generate(&requests, &mut ModelBudget::unlimited())
        .expect("concurrent");
    assert_eq!(concurrent.len(), 6);
    assert!(
        concurrent.iter().all(|reply| !reply.is_empty()),
        "{concurrent:?}"
    );
    // A seeded request sent alone twice is answered the same way. (Among concurrent requests
    // the server's batching may change the numbers: no bit-for-bit promise there.)
    for request in requests.iter().take(2) {
        let alone = |_| {
            client
                .generate(std::slice::from_ref(request), &mut ModelBudget::unlimited())
                .expect("alone")
        };
        assert_eq!(alone(0), alone(1), "seed {}", request.sampling.seed);
    }
}

#[test]
fn the_token_budget_caps_served_requests() {
    let Some(server) = llama_server() else { return };
    let client =
        ServedClient::new("judge", &served(&format!("{}/v1", server.base))).expect("client");
    let requests: Vec<GenerateRequest> = (0..3)
        .map(|_| greedy("Count from 1 to 100, separated by commas.", 200, Vec::new()))
        .collect();
    let mut budget = ModelBudget::new(Instant::now(), Duration::from_secs(600), 20);
    let error = client
        .generate(&requests, &mut budget)
        .expect_err("20 tokens cannot serve 3 x 200");
    assert!(matches!(error, ModelAccessError::Failed(_)), "{error:?}");
    assert_eq!(
        budget.exceeded(),
        Some(BudgetExceeded::Tokens {
            generated_tokens: 20
        })
    );
    // The server was never asked for more than the budget held.
    assert_eq!(budget.tokens_used(), 20);
}

#[test]
fn choice_logprobs_and_reward_are_unsupported_on_llama_server() {
    let Some(server) = llama_server() else { return };
    let client =
        ServedClient::new("judge", &served(&format!("{}/v1", server.base))).expect("client");
    let choices = client.choice_logprobs(
        &[ChoiceRequest {
            messages: question("Rate it."),
            prefix: "Score: ".into(),
            choices: vec!["1".into(), "2".into()],
        }],
        &mut ModelBudget::unlimited(),
    );
    assert!(
        matches!(&choices, Err(ModelAccessError::Unsupported(text)) if text.contains("prompt log-probabilities")),
        "{choices:?}"
    );
    let reward = client.reward(
        &[RewardRequest {
            messages: question("Hi"),
            response: "Hello".into(),
        }],
        &mut ModelBudget::unlimited(),
    );
    // llama.cpp's server has no pooling API (HTTP 404).
    assert!(
        matches!(&reward, Err(ModelAccessError::Unsupported(text)) if text.contains("HTTP 404")),
        "{reward:?}"
    );
}

/// A loopback proxy in front of llama-server that counts the chat completions it passes on
/// and the ones the server answered with 200; returns its base URL and the two counts.
fn counting_proxy(server: &'static TestServer) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let upstream = server
        .base
        .strip_prefix("http://")
        .expect("an http URL")
        .to_string();
    let requests = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let (counted, ok) = (Arc::clone(&requests), Arc::clone(&answered));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (upstream, counted, ok) = (upstream.clone(), Arc::clone(&counted), Arc::clone(&ok));
            std::thread::spawn(move || {
                let (head, body) = read_request_and_body(&mut stream);
                let request_line = head.lines().next().unwrap_or("").to_string();
                if request_line.contains("/v1/chat/completions") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let Ok(mut server) = TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = write!(
                    server,
                    "{request_line}\r\nHost: {upstream}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = server.write_all(&body);
                let mut reply = Vec::new();
                let _ = server.read_to_end(&mut reply);
                if reply.starts_with(b"HTTP/1.1 200") {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.write_all(&reply);
            });
        }
    });
    (format!("http://{address}/v1"), requests, answered)
}

#[test]
fn pairwise_judge_runs_unchanged_on_llama_server() {
    let Some(server) = llama_server() else { return };
    let (url, requests, answered) = counting_proxy(server);
    let dir = tempfile::tempdir().expect("dir");
    let models = models_file(dir.path(), &url, "concurrency = 3");
    let outcome = run_judge(
        "judge-llm-pairwise",
        r#"{"model": "judge", "max_new_tokens": 32}"#,
        &models,
        &[],
    );
    let row = output_row(&outcome);
    let scores = row["scores"]
        .as_array()
        .unwrap_or_else(|| panic!("no scores: {row}"));
    assert_eq!(scores.len(), 3, "{row}");
    // Every score is a number or none (a response none of whose comparisons gave a verdict).
    assert!(scores.iter().all(|s| s.is_null() || s.is_f64()), "{row}");
    // 3 responses: 6 ordered comparisons, each one chat completion by llama-server.
    assert_eq!(requests.load(Ordering::SeqCst), 6, "{row}");
    assert_eq!(answered.load(Ordering::SeqCst), 6, "{row}");
}

#[test]
fn pointwise_judge_on_llama_server_says_choice_logprobs_are_unsupported() {
    let Some(server) = llama_server() else { return };
    let dir = tempfile::tempdir().expect("dir");
    let models = models_file(dir.path(), &format!("{}/v1", server.base), "");
    let outcome = run_judge("judge-llm-pointwise", r#"{"model": "judge"}"#, &models, &[]);
    let row = output_row(&outcome);
    let error = row["error"].to_string();
    assert!(error.contains("unsupported"), "{row}");
    assert!(error.contains("choice-logprobs"), "{row}");
    assert!(error.contains(&server.base), "{row}");
}

// ---- faults, with tiny servers ----------------------------------------------------------

const VERDICT: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Assistant A is better. [[A]]"},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":8,"total_tokens":58}}"#;

#[test]
fn a_stalled_server_is_a_timeout_naming_endpoint_and_request() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    // Accepts, reads the request, never answers (the connection is kept open).
    let (url, _) = fake_server(move |_, _, stream| {
        if let Ok(stream) = stream.try_clone() {
            keep.lock().expect("lock").push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let models = models_file(dir.path(), &url, "timeout_ms = 700\nretries = 0");
    let started = Instant::now();
    let outcome = run_judge(
        "judge-llm-pairwise",
        r#"{"model": "judge", "max_new_tokens": 16}"#,
        &models,
        &[],
    );
    let row = output_row(&outcome);
    let error = row["error"].to_string();
    assert!(error.contains("no reply within 700 ms"), "{row}");
    assert!(error.contains(&format!("{url}/chat/completions")), "{row}");
    assert!(error.contains("generate request"), "{row}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[test]
fn garbage_and_cut_off_replies_are_errors_naming_endpoint_and_request() {
    let (url, _) = fake_server(|_, _, stream| respond(stream, "200 OK", "<html>oops</html>"));
    let dir = tempfile::tempdir().expect("dir");
    let models = models_file(dir.path(), &url, "retries = 0");
    let outcome = run_judge(
        "judge-llm-pairwise",
        r#"{"model": "judge", "max_new_tokens": 16}"#,
        &models,
        &[],
    );
    let row = output_row(&outcome);
    let error = row["error"].to_string();
    assert!(error.contains("malformed reply"), "{row}");
    assert!(error.contains("<html>oops</html>"), "{row}");
    assert!(error.contains(&format!("{url}/chat/completions")), "{row}");
    assert!(error.contains("generate request"), "{row}");

    // A reply that promises more bytes than it sends before the connection closes.
    let (url, _) = fake_server(|_, _, stream| {
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            VERDICT.len(),
            &VERDICT[..40]
        );
    });
    let models = models_file(dir.path(), &url, "retries = 0");
    let outcome = run_judge(
        "judge-llm-pairwise",
        r#"{"model": "judge", "max_new_tokens": 16}"#,
        &models,
        &[],
    );
    let row = output_row(&outcome);
    let error = row["error"].to_string();
    assert!(error.contains("cut off"), "{row}");
    assert!(error.contains(&format!("{url}/chat/completions")), "{row}");
}

#[test]
fn overload_is_retried_and_the_api_key_is_sent() {
    // The first two requests get 503; every request without the key gets 401.
    let (url, count) = fake_server(|index, head, stream| {
        let authorised = head
            .lines()
            .any(|line| line.eq_ignore_ascii_case("authorization: Bearer sk-test"));
        if !authorised {
            respond(stream, "401 Unauthorized", r#"{"error":"no key"}"#);
        } else if index < 2 {
            respond(stream, "503 Service Unavailable", r#"{"error":"loading"}"#);
        } else {
            respond(stream, "200 OK", VERDICT);
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let models = models_file(
        dir.path(),
        &url,
        "api_key_env = \"PONDER_TEST_KEY\"\nconcurrency = 1\nretries = 2",
    );
    let config = r#"{"model": "judge", "max_new_tokens": 16}"#;
    let outcome = run_judge(
        "judge-llm-pairwise",
        config,
        &models,
        &[("PONDER_TEST_KEY", "sk-test")],
    );
    let row = output_row(&outcome);
    let scores = row["scores"]
        .as_array()
        .unwrap_or_else(|| panic!("no scores: {row}"));
    // Every comparison says [[A]]: each response wins as A and loses as B, so all tie.
    assert_eq!(scores.len(), 3, "{row}");
    assert!(scores.iter().all(|s| s.is_f64()), "{row}");
    // 3 responses: 6 ordered comparisons, the first tried three times.
    assert_eq!(count.load(Ordering::SeqCst), 8);

    // Without the variable the model is refused before any request.
    let outcome = run_judge("judge-llm-pairwise", config, &models, &[]);
    assert!(!outcome.success, "{outcome:?}");
    assert!(
        outcome.stderr.contains("PONDER_TEST_KEY") && outcome.stderr.contains("models.judge"),
        "{outcome:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 8);
}

#[test]
fn a_server_that_stays_overloaded_fails_after_its_retries() {
    let (url, count) = fake_server(|_, _, stream| {
        respond(stream, "429 Too Many Requests", r#"{"error":"slow down"}"#)
    });
    let client = ServedClient::new(
        "judge",
        &ServedModel {
            retries: 2,
            concurrency: 1,
            ..served(&url)
        },
    )
    .expect("client");
    let error = client
        .generate(
            &[greedy("Hi", 8, Vec::new())],
            &mut ModelBudget::unlimited(),
        )
        .expect_err("always 429");
    let text = error.to_string();
    assert!(text.contains("HTTP 429 after 3 attempt(s)"), "{text}");
    assert!(text.contains("slow down"), "{text}");
    assert!(text.contains("generate request 0"), "{text}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn a_stalled_server_stops_at_the_calls_deadline() {
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    let (url, _) = fake_server(move |_, _, stream| {
        if let Ok(stream) = stream.try_clone() {
            keep.lock().expect("lock").push(stream);
        }
    });
    let client = ServedClient::new("judge", &served(&url)).expect("client");
    let started = Instant::now();
    let mut budget = ModelBudget::new(started, Duration::from_millis(400), u64::MAX);
    client
        .generate(&[greedy("Hi", 8, Vec::new())], &mut budget)
        .expect_err("no answer");
    assert_eq!(
        budget.exceeded(),
        Some(BudgetExceeded::Time {
            call_timeout_ms: 400
        })
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[test]
fn nothing_listening_is_a_connection_error_after_retries() {
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    let client = ServedClient::new(
        "judge",
        &ServedModel {
            retries: 1,
            ..served(&url)
        },
    )
    .expect("client");
    let error = client
        .generate(
            &[greedy("Hi", 8, Vec::new())],
            &mut ModelBudget::unlimited(),
        )
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.contains("cannot reach the server after 2 attempt(s)"),
        "{text}"
    );
    assert!(text.contains(&url), "{text}");
}

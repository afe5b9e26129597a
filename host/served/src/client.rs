//! [`ServedClient`]: one served model, its HTTP agent and the `models` functions over it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use ponder_manifest::ServedModel;
use ponder_plugin_runtime::capability::{
    ChoiceRequest, GenerateRequest, ModelAccessError, ModelBudget, RewardRequest,
};

use crate::error::ServedError;
use crate::reply::{
    Completion, Finish, TokenCompletion, TokenRequest, chat_body, cut_at_stop, parse_chat,
    parse_text, start_of, token_body,
};
use crate::scoring::{
    RewardReplyError, ScoreReplyError, Scored, Tokenized, parse_prompt_logprobs, parse_reward,
    parse_tokenize, reward_body, score_body, tokenize_chat_body, tokenize_text_body,
};

/// The first wait before a retry (doubled each time).
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait before a retry, `Retry-After` included.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The largest reply body read.
const MAX_REPLY_BYTES: u64 = 64 << 20;
/// Characters of a bad reply quoted in errors.
const QUOTED_CHARS: usize = 200;
/// How long past the call's deadline the coordinator waits for a worker before giving up on it
/// (every request's own timeout already ends by the deadline).
const GRACE: Duration = Duration::from_secs(5);

/// A model served behind an OpenAI-compatible HTTP API, as `[models.NAME]` with `url` names it.
/// Usable from several threads; each call sends its requests concurrently, up to the model's
/// `concurrency`.
#[derive(Debug)]
pub struct ServedClient {
    name: String,
    base: String,
    endpoint: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    concurrency: usize,
    retries: u32,
    agent: ureq::Agent,
}

/// Why one request produced no completion.
enum Failure {
    /// The server failed it, or its reply is unusable.
    Served(ServedError),
    /// The plugin call's time ran out while it waited.
    OutOfTime,
}

/// Why one choice request produced no scores.
enum Refusal {
    /// As the plugin sees it.
    Error(ModelAccessError),
    /// The plugin call's time ran out while it waited.
    OutOfTime,
}

/// What one HTTP attempt came to.
enum Attempt {
    /// A 2xx reply's body.
    Reply(String),
    /// A connection error, 429 or 5xx: worth another attempt.
    Retry {
        error: ServedError,
        retry_after: Option<Duration>,
    },
    /// Final.
    Fail(Failure),
}

/// One request handed to a worker, with the tokens it may ask for.
struct Job {
    index: usize,
    max_tokens: u32,
}

/// A worker's answer to a [`Job`].
struct Done {
    index: usize,
    max_tokens: u32,
    outcome: Result<Completion, Failure>,
}

impl ServedClient {
    /// The client of `[models.NAME]` (`name`) served as `config` says. Reads the API key from
    /// the environment now, so a missing one is found before any plugin runs.
    pub fn new(name: &str, config: &ServedModel) -> Result<Self, ServedError> {
        let api_key = match &config.api_key_env {
            Some(variable) => {
                Some(
                    std::env::var(variable).map_err(|_| ServedError::MissingApiKey {
                        model: name.to_string(),
                        variable: variable.clone(),
                    })?,
                )
            }
            None => None,
        };
        let concurrency = usize::try_from(config.concurrency.max(1)).unwrap_or(1);
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(concurrency)
            .max_idle_connections_per_host(concurrency)
            .build()
            .new_agent();
        Ok(ServedClient {
            name: name.to_string(),
            base: config.url.trim_end_matches('/').to_string(),
            endpoint: format!("{}/chat/completions", config.url.trim_end_matches('/')),
            model: config.model.clone(),
            api_key,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            concurrency,
            retries: config.retries,
            agent,
        })
    }

    /// The URL generation requests are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The API's base URL (`[models.NAME] url`, without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Requests the model takes in flight at once (`concurrency`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// One text completion of a prompt given as token ids (`POST {url}/completions`), so the
    /// server sees exactly these tokens (no chat template of its own); retried and timed out as
    /// every request is. `label` names the request in errors. Blocking; call it from as many
    /// threads as the model's concurrency.
    ///
    /// # Errors
    /// As [`ServedError`]: unreachable after the retries, an error status, no reply within
    /// `timeout_ms`, a malformed or cut-off reply.
    pub fn complete_tokens(
        &self,
        request: &TokenRequest,
        label: &str,
    ) -> Result<TokenCompletion, ServedError> {
        let endpoint = format!("{}/completions", self.base);
        let body = token_body(&self.model, request);
        let text = self.post_without_deadline(&endpoint, &body, label)?;
        parse_text(&text, request.max_tokens).map_err(|message| ServedError::Malformed {
            model: self.name.clone(),
            endpoint,
            request: label.to_string(),
            message,
            start: start_of(&text, QUOTED_CHARS),
        })
    }

    /// The same server and settings, asking for `model` instead of `[models.NAME] model` (a
    /// LoRA adapter loaded into the server under that name).
    pub fn with_model(mut self, model: &str) -> Self {
        self.model = model.to_string();
        self
    }

    /// The model name requests ask for.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Loads the PEFT adapter directory `path` (a path the server can read) into the server
    /// under `name` through vLLM's runtime adapter API (`POST {url}/load_lora_adapter`; vLLM
    /// needs `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`). A name the server
    /// already holds is taken as this adapter: give each adapter its own name.
    ///
    /// # Errors
    /// As [`ServedError`]; a server without the API answers 404.
    pub fn load_lora_adapter(&self, name: &str, path: &str) -> Result<(), ServedError> {
        let endpoint = format!("{}/load_lora_adapter", self.base);
        let body = serde_json::json!({ "lora_name": name, "lora_path": path })
            .to_string()
            .into_bytes();
        match self.post_without_deadline(&endpoint, &body, &format!("LoRA adapter `{name}`")) {
            Ok(_) => Ok(()),
            // vLLM's refusal to load a name twice
            Err(ServedError::Status {
                status: 400, body, ..
            }) if body.contains("already been loaded") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Posts `body` with the retries and request timeout every request has, and no deadline of
    /// a call beyond them (they bound the wait); the reply's body.
    fn post_without_deadline(
        &self,
        endpoint: &str,
        body: &[u8],
        label: &str,
    ) -> Result<String, ServedError> {
        let attempts = Duration::from_secs(1).max(self.timeout + MAX_BACKOFF) * (self.retries + 1);
        let deadline = Instant::now() + attempts;
        self.post(endpoint, body, label, deadline)
            .map_err(|failure| match failure {
                Failure::Served(error) => error,
                Failure::OutOfTime => ServedError::Timeout {
                    model: self.name.clone(),
                    endpoint: endpoint.to_string(),
                    request: label.to_string(),
                    timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                },
            })
    }

    /// Waits until `GET {url}/models` answers with a 2xx status (a server still loading its
    /// model answers 503), polling twice a second, for at most `timeout`.
    ///
    /// # Errors
    /// [`ServedError::Timeout`] (naming the last answer) when it does not answer in time.
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), ServedError> {
        let endpoint = format!("{}/models", self.base);
        let deadline = Instant::now() + timeout;
        loop {
            let mut request = self.agent.get(&endpoint);
            if let Some(key) = &self.api_key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            let answer = request
                .config()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .call();
            let last = match answer {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => format!("HTTP {}", response.status().as_u16()),
                Err(error) => error.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(ServedError::NotReady {
                    model: self.name.clone(),
                    endpoint,
                    waited_s: timeout.as_secs(),
                    last,
                });
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// One reply per request, in request order: a chat completion each, requests in flight up
    /// to the model's concurrency, within the call's `budget`.
    pub fn generate(
        &self,
        requests: &[GenerateRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<String>, ModelAccessError> {
        for (index, request) in requests.iter().enumerate() {
            if request.messages.is_empty() {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "generate request {index} has no messages"
                )));
            }
            let sampling = &request.sampling;
            if !(sampling.temperature.is_finite() && sampling.temperature >= 0.0) {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "generate request {index}: temperature must be finite and ≥ 0, got {}",
                    sampling.temperature
                )));
            }
            if !(sampling.top_p > 0.0 && sampling.top_p <= 1.0) {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "generate request {index}: top-p must be in (0, 1], got {}",
                    sampling.top_p
                )));
            }
            if sampling.max_new_tokens == 0 {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "generate request {index}: max-new-tokens must be at least 1"
                )));
            }
        }
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        if budget.check_time().is_break() {
            return Err(self.out_of_budget(budget));
        }
        let deadline = Instant::now() + budget.time_left();
        let workers = self.concurrency.min(requests.len());
        let (job_sender, jobs) = mpsc::channel::<Job>();
        let jobs = Mutex::new(jobs);
        let (done_sender, done) = mpsc::channel::<Done>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let jobs = &jobs;
                let done_sender = done_sender.clone();
                scope.spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(jobs) => jobs.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let outcome = self.complete(
                            job.index,
                            &requests[job.index],
                            job.max_tokens,
                            deadline,
                        );
                        let done = Done {
                            index: job.index,
                            max_tokens: job.max_tokens,
                            outcome,
                        };
                        if done_sender.send(done).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_sender);
            // Returning drops the job sender: workers finish their request in flight (bounded by
            // the call's deadline) and end; the scope waits for them.
            self.coordinate(requests, budget, job_sender, &done, workers)
        })
    }

    /// Hands requests to the workers as the budget allows, spends each reply's tokens, and
    /// collects the replies in request order.
    fn coordinate(
        &self,
        requests: &[GenerateRequest],
        budget: &mut ModelBudget,
        jobs: mpsc::Sender<Job>,
        done: &mpsc::Receiver<Done>,
        workers: usize,
    ) -> Result<Vec<String>, ModelAccessError> {
        let mut replies: Vec<Option<String>> = vec![None; requests.len()];
        let mut next = 0;
        let mut in_flight = 0;
        // Tokens asked for by requests in flight: a request asks only for what is not promised
        // to another, so the call cannot generate past its budget.
        let mut reserved: u64 = 0;
        loop {
            while in_flight < workers && next < requests.len() {
                let free = budget.tokens_left().saturating_sub(reserved);
                let wanted = requests[next].sampling.max_new_tokens;
                let max_tokens = u32::try_from(free.min(u64::from(wanted))).unwrap_or(wanted);
                if max_tokens == 0 {
                    break;
                }
                jobs.send(Job {
                    index: next,
                    max_tokens,
                })
                .map_err(|_| self.failed("the request workers ended early"))?;
                reserved += u64::from(max_tokens);
                in_flight += 1;
                next += 1;
            }
            if in_flight == 0 {
                if next == requests.len() {
                    break;
                }
                // Nothing in flight and no token left for the next request.
                let _ = budget.spend_token();
                return Err(self.out_of_budget(budget));
            }
            let answer = match done.recv_timeout(budget.time_left() + GRACE) {
                Ok(answer) => answer,
                Err(_) => {
                    let _ = budget.check_time();
                    return Err(self.out_of_budget(budget));
                }
            };
            in_flight -= 1;
            reserved -= u64::from(answer.max_tokens);
            let completion = match answer.outcome {
                Ok(completion) => completion,
                Err(Failure::Served(error)) => return Err(error.into()),
                Err(Failure::OutOfTime) => {
                    let _ = budget.check_time();
                    return Err(self.out_of_budget(budget));
                }
            };
            for _ in 0..completion.tokens {
                if budget.spend_token().is_break() {
                    return Err(self.out_of_budget(budget));
                }
            }
            let request = &requests[answer.index];
            let text = match cut_at_stop(&completion.text, &request.sampling.stop) {
                Some(text) => text,
                None => {
                    let capped = answer.max_tokens < request.sampling.max_new_tokens;
                    if capped && completion.finish == Finish::Length {
                        // Cut short by the call's token budget, not by the request's own
                        // limit: the budget breaks here, as it does on the local path.
                        let _ = budget.spend_token();
                        return Err(self.out_of_budget(budget));
                    }
                    completion.text
                }
            };
            replies[answer.index] = Some(text);
        }
        replies
            .into_iter()
            .enumerate()
            .map(|(index, reply)| {
                reply.ok_or_else(|| self.failed(&format!("generate request {index} got no reply")))
            })
            .collect()
    }

    /// One chat completion for request `index`.
    fn complete(
        &self,
        index: usize,
        request: &GenerateRequest,
        max_tokens: u32,
        deadline: Instant,
    ) -> Result<Completion, Failure> {
        let label = format!("generate request {index}");
        let body = chat_body(&self.model, request, max_tokens);
        let text = self.post(&self.endpoint, &body, &label, deadline)?;
        parse_chat(&text, max_tokens).map_err(|message| {
            Failure::Served(ServedError::Malformed {
                model: self.name.clone(),
                endpoint: self.endpoint.clone(),
                request: label.clone(),
                message,
                start: start_of(&text, QUOTED_CHARS),
            })
        })
    }

    /// Posts `body`, retrying connection errors, 429 and 5xx with backoff, until a 2xx reply's
    /// body, a final error, or the call's deadline.
    fn post(
        &self,
        endpoint: &str,
        body: &[u8],
        label: &str,
        deadline: Instant,
    ) -> Result<String, Failure> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::OutOfTime);
            }
            let (timeout, cut_by_call) = if left < self.timeout {
                (left, true)
            } else {
                (self.timeout, false)
            };
            match self.attempt(endpoint, body, label, timeout, cut_by_call, attempts) {
                Attempt::Reply(text) => return Ok(text),
                Attempt::Fail(failure) => return Err(failure),
                Attempt::Retry { error, retry_after } => {
                    let shift = (attempts - 1).min(16);
                    let wait = retry_after
                        .unwrap_or(FIRST_BACKOFF * (1u32 << shift))
                        .min(MAX_BACKOFF);
                    if attempts > self.retries || Instant::now() + wait >= deadline {
                        return Err(Failure::Served(error));
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }

    /// One HTTP request.
    fn attempt(
        &self,
        endpoint: &str,
        body: &[u8],
        label: &str,
        timeout: Duration,
        cut_by_call: bool,
        attempts: u32,
    ) -> Attempt {
        let timed_out = || {
            if cut_by_call {
                Attempt::Fail(Failure::OutOfTime)
            } else {
                Attempt::Fail(Failure::Served(ServedError::Timeout {
                    model: self.name.clone(),
                    endpoint: endpoint.to_string(),
                    request: label.to_string(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                }))
            }
        };
        let connection = |message: String| ServedError::Connection {
            model: self.name.clone(),
            endpoint: endpoint.to_string(),
            request: label.to_string(),
            attempts,
            message,
        };
        let mut request = self
            .agent
            .post(endpoint)
            .header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let response = request
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(body);
        let mut response = match response {
            Ok(response) => response,
            Err(ureq::Error::Timeout(ureq::Timeout::Connect)) => {
                return Attempt::Retry {
                    error: connection("connecting timed out".into()),
                    retry_after: None,
                };
            }
            Err(ureq::Error::Timeout(_)) => return timed_out(),
            Err(
                error @ (ureq::Error::Io(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::HostNotFound
                | ureq::Error::Protocol(_)),
            ) => {
                return Attempt::Retry {
                    error: connection(error.to_string()),
                    retry_after: None,
                };
            }
            Err(error) => return Attempt::Fail(Failure::Served(connection(error.to_string()))),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = match response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()
        {
            Ok(text) => text,
            Err(ureq::Error::Timeout(_)) => return timed_out(),
            Err(ureq::Error::BodyExceedsLimit(limit)) => {
                return Attempt::Fail(Failure::Served(ServedError::Malformed {
                    model: self.name.clone(),
                    endpoint: endpoint.to_string(),
                    request: label.to_string(),
                    message: format!("the reply is longer than {limit} bytes"),
                    start: String::new(),
                }));
            }
            Err(error) => {
                return Attempt::Fail(Failure::Served(ServedError::Truncated {
                    model: self.name.clone(),
                    endpoint: endpoint.to_string(),
                    request: label.to_string(),
                    message: error.to_string(),
                }));
            }
        };
        let error = ServedError::Status {
            model: self.name.clone(),
            endpoint: endpoint.to_string(),
            request: label.to_string(),
            status,
            attempts,
            body: start_of(&text, QUOTED_CHARS),
        };
        match status {
            200..=299 => Attempt::Reply(text),
            429 | 500..=599 => Attempt::Retry { error, retry_after },
            _ => Attempt::Fail(Failure::Served(error)),
        }
    }

    /// Per request, the total natural-log probability of each choice, in the order of
    /// `choices`: exact, as the server's own forward pass gives it, where the server tokenizes a
    /// chat with the model's template and returns prompt log-probabilities (vLLM does);
    /// [`ModelAccessError::Unsupported`] where it does not (llama.cpp's server), never an
    /// approximation.
    ///
    /// What is scored mirrors the local path: the conversation rendered with the chat template
    /// and its generation prompt (`POST {root}/tokenize` with `messages` and
    /// `add_generation_prompt`, `{root}` being `url` without its `/v1`), then the prefix's
    /// tokens, then the choice's tokens, each text tokenized on its own (`/tokenize` with
    /// `prompt` and no special tokens). The sequences of one request go in one
    /// `POST {url}/completions` with token-id prompts and `prompt_logprobs`: 0; a choice's value
    /// is the sum of the log-probabilities of its tokens. Requests are in flight up to the
    /// model's concurrency.
    ///
    /// Budget: as on the local path, scoring generates nothing, so no token is spent (the one
    /// token vLLM must generate per sequence is thrown away); every HTTP request is cut to the
    /// call's time and the clock is looked at between requests.
    ///
    /// # Errors
    /// `InvalidRequest` for a request without choices, an empty choice, or a sequence longer
    /// than the server's context (`max_model_len`, one position kept for the generated token);
    /// `Unsupported` when `/tokenize` is not there (HTTP 404), tokenizes no conversation (llama.cpp
    /// reads only `content`), or the completion has no `prompt_logprobs`; `Failed` for the
    /// faults [`ServedError`] lists (each names the endpoint and the request) and a used-up
    /// budget.
    pub fn choice_logprobs(
        &self,
        requests: &[ChoiceRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        for (index, request) in requests.iter().enumerate() {
            if request.choices.is_empty() {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "choice request {index} has no choices"
                )));
            }
            if let Some(choice_index) = request.choices.iter().position(String::is_empty) {
                return Err(ModelAccessError::InvalidRequest(format!(
                    "choice {choice_index} of request {index} is empty"
                )));
            }
        }
        // Tokenizations of prefixes and choices, shared by the call's requests (a judge asks the
        // same choices of every request).
        let texts: Mutex<HashMap<String, Vec<u32>>> = Mutex::new(HashMap::new());
        self.fan_out(
            requests.len(),
            "choice request",
            budget,
            |index, deadline| self.score(index, &requests[index], &texts, deadline),
        )
    }

    /// Runs `work` for requests `0..count`, up to the model's concurrency at once, each within
    /// the call's time; the answers in request order. The first failure ends the call (`what`
    /// names a request in errors).
    fn fan_out<T: Send>(
        &self,
        count: usize,
        what: &str,
        budget: &mut ModelBudget,
        work: impl Fn(usize, Instant) -> Result<T, Refusal> + Sync,
    ) -> Result<Vec<T>, ModelAccessError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        if budget.check_time().is_break() {
            return Err(self.out_of_budget(budget));
        }
        let deadline = Instant::now() + budget.time_left();
        let workers = self.concurrency.min(count);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (done_sender, done) = mpsc::channel::<(usize, Result<T, Refusal>)>();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let (next, stop, work) = (&next, &stop, &work);
                let done_sender = done_sender.clone();
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let index = next.fetch_add(1, Ordering::SeqCst);
                        if index >= count {
                            return;
                        }
                        if done_sender.send((index, work(index, deadline))).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(done_sender);
            // Returning stops the workers after their request in flight (bounded by the call's
            // deadline); the scope waits for them.
            let outcome = self.collect_answers(count, what, budget, &done);
            stop.store(true, Ordering::SeqCst);
            outcome
        })
    }

    /// The workers' answers, in request order; the first failure ends the call.
    fn collect_answers<T>(
        &self,
        count: usize,
        what: &str,
        budget: &mut ModelBudget,
        done: &mpsc::Receiver<(usize, Result<T, Refusal>)>,
    ) -> Result<Vec<T>, ModelAccessError> {
        let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
        for _ in 0..count {
            let (index, outcome) = match done.recv_timeout(budget.time_left() + GRACE) {
                Ok(answer) => answer,
                Err(_) => {
                    let _ = budget.check_time();
                    return Err(self.out_of_budget(budget));
                }
            };
            match outcome {
                Ok(scores) => results[index] = Some(scores),
                Err(Refusal::Error(error)) => return Err(error),
                Err(Refusal::OutOfTime) => {
                    let _ = budget.check_time();
                    return Err(self.out_of_budget(budget));
                }
            }
            if budget.check_time().is_break() {
                return Err(self.out_of_budget(budget));
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(index, answer)| {
                answer.ok_or_else(|| self.failed(&format!("{what} {index} got no answer")))
            })
            .collect()
    }

    /// The choices' log-probabilities of one request: its sequences tokenized, then scored in
    /// one completion.
    fn score(
        &self,
        index: usize,
        request: &ChoiceRequest,
        texts: &Mutex<HashMap<String, Vec<u32>>>,
        deadline: Instant,
    ) -> Result<Vec<f64>, Refusal> {
        let label = format!("choice request {index}");
        let tokenize = self.tokenize_endpoint();
        let chat = self.tokenized(
            &tokenize,
            &tokenize_chat_body(&self.model, &request.messages),
            &format!("{label} (its conversation)"),
            deadline,
        )?;
        if chat.tokens.is_empty() {
            return Err(Refusal::Error(self.unsupported_choices(&format!(
                "{tokenize} tokenized the conversation to no tokens: the server does not apply a \
                 chat template to `messages` there (llama.cpp's reads only `content`)"
            ))));
        }
        let mut prompt = chat.tokens;
        if !request.prefix.is_empty() {
            let what = format!("{label} (its prefix)");
            prompt.extend(self.text_tokens(&request.prefix, &what, texts, deadline)?);
        }
        let mut sequences = Vec::with_capacity(request.choices.len());
        for (choice_index, choice) in request.choices.iter().enumerate() {
            let what = format!("{label} (choice {choice_index})");
            let ids = self.text_tokens(choice, &what, texts, deadline)?;
            let needed = prompt.len() + ids.len();
            if let Some(context) = chat.max_model_len
                && u64::try_from(needed + 1).unwrap_or(u64::MAX) > context
            {
                return Err(Refusal::Error(ModelAccessError::InvalidRequest(format!(
                    "choice {choice_index} of request {index} needs {needed} positions and the \
                     server one more for the token it generates, more than served model `{}`'s \
                     context of {context} (max_model_len)",
                    self.name
                ))));
            }
            let mut sequence = prompt.clone();
            sequence.extend_from_slice(&ids);
            sequences.push((sequence, ids.len()));
        }
        let endpoint = format!("{}/completions", self.base);
        let prompts: Vec<Vec<u32>> = sequences.iter().map(|(tokens, _)| tokens.clone()).collect();
        let text = self
            .post(
                &endpoint,
                &score_body(&self.model, &prompts),
                &label,
                deadline,
            )
            .map_err(|failure| self.refusal(failure))?;
        let scored: Vec<Scored<'_>> = sequences
            .iter()
            .map(|(tokens, choice_tokens)| Scored {
                tokens,
                choice_tokens: *choice_tokens,
            })
            .collect();
        parse_prompt_logprobs(&text, &scored).map_err(|error| match error {
            ScoreReplyError::NoPromptLogprobs => Refusal::Error(
                self.unsupported_choices(&format!("{endpoint} answered without `prompt_logprobs`")),
            ),
            ScoreReplyError::Malformed(message) => {
                self.malformed(&endpoint, &label, message, &text)
            }
        })
    }

    /// The tokens of a prefix or choice, from the call's cache or the server's `/tokenize`.
    fn text_tokens(
        &self,
        text: &str,
        label: &str,
        texts: &Mutex<HashMap<String, Vec<u32>>>,
        deadline: Instant,
    ) -> Result<Vec<u32>, Refusal> {
        if let Some(tokens) = texts.lock().ok().and_then(|texts| texts.get(text).cloned()) {
            return Ok(tokens);
        }
        let endpoint = self.tokenize_endpoint();
        let tokenized = self.tokenized(
            &endpoint,
            &tokenize_text_body(&self.model, text),
            label,
            deadline,
        )?;
        if tokenized.tokens.is_empty() {
            return Err(Refusal::Error(self.unsupported_choices(&format!(
                "{endpoint} tokenized the non-empty text {text:?} to no tokens ({label})"
            ))));
        }
        if let Ok(mut texts) = texts.lock() {
            texts.insert(text.to_string(), tokenized.tokens.clone());
        }
        Ok(tokenized.tokens)
    }

    /// One `/tokenize` request. A 404 means the server has no such endpoint: unsupported.
    fn tokenized(
        &self,
        endpoint: &str,
        body: &[u8],
        label: &str,
        deadline: Instant,
    ) -> Result<Tokenized, Refusal> {
        let text = self.post_to_optional_api(endpoint, body, label, deadline, || {
            self.unsupported_choices(&format!(
                "{endpoint} answered HTTP 404 (the server has no tokenize endpoint)"
            ))
        })?;
        parse_tokenize(&text).map_err(|message| self.malformed(endpoint, label, message, &text))
    }

    /// vLLM's `/tokenize`: at the server's root, beside (not under) the `/v1` of `url`.
    fn tokenize_endpoint(&self) -> String {
        format!("{}/tokenize", self.root())
    }

    /// The server's root: `url` without its `/v1` (where vLLM puts `/tokenize` and `/pooling`).
    fn root(&self) -> &str {
        self.base.strip_suffix("/v1").unwrap_or(&self.base)
    }

    /// Posts to an endpoint not every server has (vLLM's `/tokenize`, `/pooling`): HTTP 404
    /// is `missing()` (unsupported), any other failure as [`Self::refusal`] says.
    fn post_to_optional_api(
        &self,
        endpoint: &str,
        body: &[u8],
        label: &str,
        deadline: Instant,
        missing: impl FnOnce() -> ModelAccessError,
    ) -> Result<String, Refusal> {
        self.post(endpoint, body, label, deadline)
            .map_err(|failure| match failure {
                Failure::Served(ServedError::Status { status: 404, .. }) => {
                    Refusal::Error(missing())
                }
                failure => self.refusal(failure),
            })
    }

    /// A reply of `endpoint` to request `label` that is not what the API promises.
    fn malformed(&self, endpoint: &str, label: &str, message: String, text: &str) -> Refusal {
        Refusal::Error(ModelAccessError::from(ServedError::Malformed {
            model: self.name.clone(),
            endpoint: endpoint.to_string(),
            request: label.to_string(),
            message,
            start: start_of(text, QUOTED_CHARS),
        }))
    }

    fn refusal(&self, failure: Failure) -> Refusal {
        match failure {
            Failure::Served(error) => Refusal::Error(error.into()),
            Failure::OutOfTime => Refusal::OutOfTime,
        }
    }

    /// `choice-logprobs` refused: the server lacks what exact scores need (`why`).
    fn unsupported_choices(&self, why: &str) -> ModelAccessError {
        ModelAccessError::Unsupported(format!(
            "choice-logprobs on served model `{}` needs exact prompt log-probabilities: a server \
             that tokenizes a chat with the model's template (`POST /tokenize` with `messages`) \
             and returns `prompt_logprobs` from `POST /v1/completions`, as vLLM does; {why}. \
             llama.cpp's server returns no prompt log-probabilities, and ponder does not \
             approximate them: serve the judge with vLLM, use a judge that generates its verdict \
             (judge-llm-pairwise), or a local model (`path`)",
            self.name
        ))
    }

    /// The scalar of a reward model (a sequence classifier with one output) for each request,
    /// through vLLM's pooling API: the conversation with the response as the assistant's turn,
    /// `POST {root}/pooling` with `messages` (the server applies the reward model's chat template,
    /// no generation prompt), `task: "classify"` and `use_activation: false`, so the value is the
    /// head's raw output, as transformers' `logits[0]`. vLLM serves it for a model started with
    /// `--runner pooling`. Requests are in flight up to the model's concurrency; scoring
    /// generates nothing, so no token is spent.
    ///
    /// # Errors
    /// `Unsupported` when the server has no pooling API (HTTP 404: llama.cpp's, or vLLM serving
    /// a generative model) or the model gives other than one value per sequence; `Failed` for the
    /// faults [`ServedError`] lists and a used-up budget.
    pub fn reward(
        &self,
        requests: &[RewardRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<f64>, ModelAccessError> {
        self.fan_out(
            requests.len(),
            "reward request",
            budget,
            |index, deadline| self.reward_of(index, &requests[index], deadline),
        )
    }

    /// One request's reward.
    fn reward_of(
        &self,
        index: usize,
        request: &RewardRequest,
        deadline: Instant,
    ) -> Result<f64, Refusal> {
        let label = format!("reward request {index}");
        let endpoint = format!("{}/pooling", self.root());
        let body = reward_body(&self.model, &request.messages, &request.response);
        let text = self.post_to_optional_api(&endpoint, &body, &label, deadline, || {
            self.unsupported_reward(&format!(
                "{endpoint} answered HTTP 404 (the server has no pooling API)"
            ))
        })?;
        parse_reward(&text).map_err(|error| match error {
            RewardReplyError::NotOneValue(count) => {
                Refusal::Error(self.unsupported_reward(&format!(
                    "{endpoint} gave {count} values for a sequence, where a reward model gives one"
                )))
            }
            RewardReplyError::Malformed(message) => {
                self.malformed(&endpoint, &label, message, &text)
            }
        })
    }

    /// `reward` refused: the server does not serve a reward model (`why`).
    fn unsupported_reward(&self, why: &str) -> ModelAccessError {
        ModelAccessError::Unsupported(format!(
            "reward on served model `{}` needs a reward model (a sequence classifier with one \
             output) behind vLLM's pooling API (`vllm serve MODEL --runner pooling`); {why}",
            self.name
        ))
    }

    fn failed(&self, message: &str) -> ModelAccessError {
        ModelAccessError::Failed(format!(
            "served model `{}` ({}): {message}",
            self.name, self.endpoint
        ))
    }

    /// The error of a call whose budget broke (which one, when the budget says).
    fn out_of_budget(&self, budget: &ModelBudget) -> ModelAccessError {
        match budget.exceeded() {
            Some(exceeded) => self.failed(&exceeded.to_string()),
            None => self.failed("the call's model budget is used up"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    use ponder_plugin_runtime::capability::Message;
    use serde_json::json;

    type Answer = dyn Fn(&str, &serde_json::Value) -> (u16, String) + Send + Sync;
    /// The requests a test server saw: path and JSON body.
    type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

    /// A loopback server answering each request (path, JSON body) with `answer`'s status and
    /// body; returns its `/v1` base URL and the requests it saw.
    fn server(answer: Arc<Answer>) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (answer, log) = (Arc::clone(&answer), Arc::clone(&log));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let length = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let (status, reply) = answer(&path, &json);
                    log.lock().expect("log").push((path, json));
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                        reply.len()
                    );
                });
            }
        });
        (format!("http://{address}/v1"), seen)
    }

    fn client(url: &str) -> ServedClient {
        ServedClient::new(
            "judge",
            &ServedModel {
                url: url.to_string(),
                model: "m".into(),
                api_key_env: None,
                timeout_ms: 10_000,
                concurrency: 2,
                retries: 0,
            },
        )
        .expect("client")
    }

    fn reward_request(response: &str) -> RewardRequest {
        RewardRequest {
            messages: vec![Message {
                role: "user".into(),
                content: "Say hi.".into(),
            }],
            response: response.into(),
        }
    }

    #[test]
    fn rewards_come_from_the_pooling_api_in_request_order() {
        // A vLLM-like reward server: the reward is the response's length.
        let answer: Arc<Answer> = Arc::new(|path, body| match path {
            "/pooling" => {
                let messages = body["messages"].as_array().expect("messages");
                let response = messages.last().expect("a turn")["content"]
                    .as_str()
                    .expect("text");
                let value = match response {
                    "two values" => json!([0.5, 0.5]),
                    "garbage" => return (200, "<html>".into()),
                    _ => json!([response.len() as f64]),
                };
                (
                    200,
                    json!({"data": [{"index": 0, "object": "pooling", "data": value}]}).to_string(),
                )
            }
            _ => (404, "{\"detail\":\"Not Found\"}".into()),
        });
        let (url, seen) = server(answer);
        let served = client(&url);
        let mut budget = ModelBudget::unlimited();
        let rewards = served
            .reward(
                &[reward_request("hi"), reward_request("hello there")],
                &mut budget,
            )
            .expect("rewards");
        assert_eq!(rewards, [2.0, 11.0]);
        assert_eq!(budget.tokens_used(), 0);
        let seen = seen.lock().expect("log").clone();
        let body = &seen[0].1;
        assert_eq!(body["task"], "classify");
        assert_eq!(body["use_activation"], false);
        assert_eq!(body["add_generation_prompt"], false);
        assert_eq!(body["model"], "m");
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["role"].as_str().expect("role"))
            .collect();
        assert_eq!(roles, ["user", "assistant"]);

        match served.reward(&[reward_request("two values")], &mut budget) {
            Err(ModelAccessError::Unsupported(message)) => {
                assert!(message.contains("gave 2 values"), "{message}");
            }
            other => panic!("expected unsupported, got {other:?}"),
        }
        match served.reward(&[reward_request("garbage")], &mut budget) {
            Err(ModelAccessError::Failed(message)) => {
                assert!(message.contains("/pooling"), "{message}");
                assert!(message.contains("reward request 0"), "{message}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        assert_eq!(
            served.reward(&[], &mut budget).expect("nothing"),
            Vec::<f64>::new()
        );

        // A server without the pooling API (llama.cpp's, a generative vLLM model).
        let (bare, _) = server(Arc::new(|_, _| (404, "{\"detail\":\"Not Found\"}".into())));
        match client(&bare).reward(&[reward_request("hi")], &mut budget) {
            Err(ModelAccessError::Unsupported(message)) => {
                assert!(message.contains("--runner pooling"), "{message}");
                assert!(message.contains("HTTP 404"), "{message}");
            }
            other => panic!("expected unsupported, got {other:?}"),
        }
    }

    #[test]
    fn a_lora_adapter_is_loaded_by_name_and_requests_then_ask_for_it() {
        // vLLM's answers: success, a name it holds already, no runtime LoRA API.
        let answer: Arc<Answer> = Arc::new(|path, body| match (path, body["lora_name"].as_str()) {
            ("/v1/load_lora_adapter", Some("new")) => (
                200,
                "Success: LoRA adapter 'new' added successfully.".into(),
            ),
            ("/v1/load_lora_adapter", Some(name)) => (
                400,
                json!({"error": {"message": format!("The lora adapter '{name}' has already been \
                    loaded. If you want to load the adapter in place, set 'load_inplace' to \
                    True.")}})
                .to_string(),
            ),
            ("/v1/completions", _) => (
                200,
                json!({"choices": [{"text": "ok", "finish_reason": "stop"}],
                       "usage": {"completion_tokens": 1}})
                .to_string(),
            ),
            _ => (404, "{\"detail\":\"Not Found\"}".into()),
        });
        let (url, seen) = server(answer);
        let served = client(&url);
        served
            .load_lora_adapter("new", "/runs/iter-1/model/adapter")
            .expect("loaded");
        served
            .load_lora_adapter("held", "/x")
            .expect("a held name is this adapter");
        let adapter = served.with_model("new");
        assert_eq!(adapter.model(), "new");
        let request = TokenRequest {
            prompt: vec![1, 2],
            max_tokens: 4,
            temperature: 0.0,
            top_p: 1.0,
            seed: 1,
        };
        adapter
            .complete_tokens(&request, "sample 0")
            .expect("completion");
        let seen = seen.lock().expect("log").clone();
        assert_eq!(
            seen[0].1,
            json!({"lora_name": "new", "lora_path": "/runs/iter-1/model/adapter"})
        );
        assert_eq!(seen[2].0, "/v1/completions");
        assert_eq!(seen[2].1["model"], "new");

        let (bare, _) = server(Arc::new(|_, _| (404, "{\"detail\":\"Not Found\"}".into())));
        match client(&bare).load_lora_adapter("new", "/x") {
            Err(ServedError::Status {
                status: 404,
                endpoint,
                ..
            }) => {
                assert!(endpoint.ends_with("/v1/load_lora_adapter"), "{endpoint}");
            }
            other => panic!("expected HTTP 404, got {other:?}"),
        }
    }

    fn request(prefix: &str, choices: &[&str]) -> ChoiceRequest {
        ChoiceRequest {
            messages: vec![Message {
                role: "user".into(),
                content: "Rate it.".into(),
            }],
            prefix: prefix.into(),
            choices: choices.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// Tokens of the test texts: the conversation is [1, 2, 3]; each text its listed ids.
    fn tokens_of(body: &serde_json::Value) -> Vec<u32> {
        if body.get("messages").is_some() {
            return vec![1, 2, 3];
        }
        match body["prompt"].as_str() {
            Some("Score: ") => vec![4],
            Some("x") => vec![5],
            Some("yy") => vec![6, 7],
            _ => vec![9],
        }
    }

    /// A vLLM-like server: every prompt token `t` has log-probability −t/10.
    fn vllm(max_model_len: u32) -> Arc<Answer> {
        Arc::new(move |path, body| match path {
            "/tokenize" => (
                200,
                json!({"count": 0, "max_model_len": max_model_len, "tokens": tokens_of(body)})
                    .to_string(),
            ),
            "/v1/completions" => {
                let prompts = body["prompt"].as_array().cloned().unwrap_or_default();
                let choices: Vec<serde_json::Value> = prompts
                    .iter()
                    .enumerate()
                    .map(|(index, prompt)| {
                        let mut logprobs = vec![serde_json::Value::Null];
                        for id in prompt.as_array().expect("ids").iter().skip(1) {
                            let id = id.as_u64().expect("an id");
                            logprobs.push(json!({
                                id.to_string(): {"logprob": -(id as f64) / 10.0, "rank": 1}
                            }));
                        }
                        json!({"index": index, "text": "!", "finish_reason": "length",
                               "prompt_logprobs": logprobs})
                    })
                    .collect();
                (200, json!({"choices": choices}).to_string())
            }
            _ => (404, r#"{"detail":"Not Found"}"#.into()),
        })
    }

    #[test]
    fn choices_are_scored_from_prompt_logprobs_of_concatenated_tokens() {
        let (url, seen) = server(vllm(2048));
        let client = client(&url);
        let mut budget = ModelBudget::unlimited();
        let scores = client
            .choice_logprobs(
                &[
                    request("Score: ", &["x", "yy"]),
                    request("", &["yy", "x", "x"]),
                ],
                &mut budget,
            )
            .expect("scores");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert_eq!(scores.len(), 2);
        assert!(
            close(scores[0][0], -0.5) && close(scores[0][1], -1.3),
            "{scores:?}"
        );
        assert!(
            close(scores[1][0], -1.3) && close(scores[1][1], -0.5) && close(scores[1][2], -0.5),
            "{scores:?}"
        );
        // Scoring spends no generated token, as on the local path.
        assert_eq!(budget.tokens_used(), 0);
        let seen = seen.lock().expect("log");
        let completions: Vec<&serde_json::Value> = seen
            .iter()
            .filter(|(path, _)| path == "/v1/completions")
            .map(|(_, body)| body)
            .collect();
        // One completion per request, its sequences as token-id prompts.
        assert_eq!(completions.len(), 2);
        let with_prefix = completions
            .iter()
            .find(|body| body["prompt"].as_array().is_some_and(|p| p.len() == 2))
            .expect("the first request's completion");
        assert_eq!(
            with_prefix["prompt"],
            json!([[1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7]])
        );
        assert_eq!(with_prefix["prompt_logprobs"], 0);
        assert_eq!(with_prefix["max_tokens"], 1);
        // The conversation is tokenized per request with its template; the prefix and choice
        // texts are tokenized once per call (1 + 2), at worst once per worker (two workers may
        // miss the cache on the same text at once), never once per use (6).
        let chats = seen
            .iter()
            .filter(|(path, body)| path == "/tokenize" && body.get("messages").is_some())
            .count();
        let texts = seen
            .iter()
            .filter(|(path, body)| path == "/tokenize" && body.get("prompt").is_some())
            .count();
        assert_eq!(chats, 2);
        assert!((3..=5).contains(&texts), "{texts} text tokenizations");
        let chat = seen
            .iter()
            .find(|(_, body)| body.get("messages").is_some())
            .expect("a chat tokenization");
        assert_eq!(chat.1["add_generation_prompt"], true);
    }

    #[test]
    fn servers_without_prompt_logprobs_are_unsupported_naming_the_endpoint() {
        // llama.cpp's server: `/tokenize` reads `content` only, so a chat is no tokens.
        let (llama, _) = server(Arc::new(|path, _| match path {
            "/tokenize" => (200, r#"{"tokens":[]}"#.into()),
            _ => (500, "unexpected".into()),
        }));
        // A server with no tokenize endpoint.
        let (missing, _) = server(Arc::new(|_, _| {
            (404, r#"{"error":"File Not Found"}"#.into())
        }));
        // A server that tokenizes but returns no prompt log-probabilities.
        let (plain, _) = server(Arc::new(|path, body| match path {
            "/tokenize" => (200, json!({"tokens": tokens_of(body)}).to_string()),
            _ => (
                200,
                r#"{"choices":[{"index":0,"text":"!","logprobs":null,"finish_reason":"length"}],
                    "usage":{"completion_tokens":1}}"#
                    .into(),
            ),
        }));
        for (url, expected) in [
            (&llama, "/tokenize tokenized the conversation to no tokens"),
            (&missing, "/tokenize answered HTTP 404"),
            (&plain, "/v1/completions answered without `prompt_logprobs`"),
        ] {
            let error = client(url)
                .choice_logprobs(&[request("", &["x"])], &mut ModelBudget::unlimited())
                .expect_err(url);
            let ModelAccessError::Unsupported(message) = &error else {
                panic!("{url}: {error:?}");
            };
            let root = url.strip_suffix("/v1").expect("a /v1 URL");
            assert!(message.contains(root), "{message}");
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("choice-logprobs"), "{message}");
            assert!(message.contains("prompt log-probabilities"), "{message}");
            assert!(message.contains("vLLM"), "{message}");
        }
    }

    #[test]
    fn malformed_replies_are_errors_naming_endpoint_and_request() {
        let (short, _) = server(Arc::new(|path, body| match path {
            "/tokenize" => (200, json!({"tokens": tokens_of(body)}).to_string()),
            _ => (
                200,
                r#"{"choices":[{"index":0,"prompt_logprobs":[null,{"2":{"logprob":-1}}]}]}"#.into(),
            ),
        }));
        let (garbage, _) = server(Arc::new(|_, _| (200, "<html>oops</html>".into())));
        for (url, endpoint, label, expected) in [
            (
                &short,
                "/v1/completions",
                "choice request 0",
                "has 2 entries for its 4 tokens",
            ),
            (
                &garbage,
                "/tokenize",
                "choice request 0 (its conversation)",
                "not the JSON of a tokenization",
            ),
        ] {
            let error = client(url)
                .choice_logprobs(&[request("", &["x"])], &mut ModelBudget::unlimited())
                .expect_err(url);
            let ModelAccessError::Failed(message) = &error else {
                panic!("{url}: {error:?}");
            };
            let root = url.strip_suffix("/v1").expect("a /v1 URL");
            assert!(message.contains(&format!("{root}{endpoint}")), "{message}");
            assert!(message.contains(&format!("{label}:")), "{message}");
            assert!(message.contains("malformed reply"), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn bad_requests_and_spent_budgets_are_refused() {
        let (url, seen) = server(vllm(6));
        let client = client(&url);
        let refused = |requests: &[ChoiceRequest]| {
            client.choice_logprobs(requests, &mut ModelBudget::unlimited())
        };
        assert_eq!(refused(&[]), Ok(Vec::new()));
        assert!(matches!(
            refused(&[request("", &[])]),
            Err(ModelAccessError::InvalidRequest(m)) if m == "choice request 0 has no choices"
        ));
        assert!(matches!(
            refused(&[request("", &["x"]), request("", &["x", ""])]),
            Err(ModelAccessError::InvalidRequest(m)) if m == "choice 1 of request 1 is empty"
        ));
        assert!(seen.lock().expect("log").is_empty());
        // [1, 2, 3] + [4] + [6, 7] and the generated token: 7 positions, past the 6 served.
        assert!(matches!(
            refused(&[request("Score: ", &["x", "yy"])]),
            Err(ModelAccessError::InvalidRequest(m))
                if m.contains("choice 1 of request 0 needs 6 positions")
                    && m.contains("context of 6 (max_model_len)")
        ));
        let mut spent = ModelBudget::new(Instant::now(), Duration::ZERO, u64::MAX);
        let error = client
            .choice_logprobs(&[request("", &["x"])], &mut spent)
            .expect_err("no time left");
        assert!(
            matches!(&error, ModelAccessError::Failed(m) if m.contains("call_timeout_ms")),
            "{error:?}"
        );
    }
}

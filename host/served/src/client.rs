//! [`ServedClient`]: one served model, its HTTP agent and the `models` functions over it.

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
        // No call deadline here: each attempt has the request timeout and the retries are
        // counted, so the wait is bounded by those.
        let attempts = Duration::from_secs(1).max(self.timeout + MAX_BACKOFF) * (self.retries + 1);
        let deadline = Instant::now() + attempts;
        let text =
            self.post(&endpoint, &body, label, deadline)
                .map_err(|failure| match failure {
                    Failure::Served(error) => error,
                    Failure::OutOfTime => ServedError::Timeout {
                        model: self.name.clone(),
                        endpoint: endpoint.clone(),
                        request: label.to_string(),
                        timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                    },
                })?;
        parse_text(&text, request.max_tokens).map_err(|message| ServedError::Malformed {
            model: self.name.clone(),
            endpoint,
            request: label.to_string(),
            message,
            start: start_of(&text, QUOTED_CHARS),
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

    /// Unsupported: an OpenAI-compatible server gives no exact log-probabilities of given
    /// continuations (llama.cpp's server returns no prompt log-probabilities at all), and ponder
    /// does not pass off an approximation as them.
    pub fn choice_logprobs(
        &self,
        _requests: &[ChoiceRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        Err(ModelAccessError::Unsupported(format!(
            "choice-logprobs needs the exact log-probabilities of given continuations, which the \
             OpenAI-compatible API of served model `{}` ({}) does not return (llama.cpp's server \
             returns no prompt log-probabilities); use a judge that generates its verdict \
             (judge-llm-pairwise), or a local model (`path`)",
            self.name, self.endpoint
        )))
    }

    /// Unsupported: the OpenAI-compatible API has no reward endpoint.
    pub fn reward(
        &self,
        _requests: &[RewardRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<f64>, ModelAccessError> {
        Err(ModelAccessError::Unsupported(format!(
            "served model `{}` ({}): the OpenAI-compatible API has no reward endpoint",
            self.name, self.endpoint
        )))
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

//! Models served elsewhere, behind an OpenAI-compatible HTTP API (vLLM, SGLang, llama.cpp's
//! `llama-server`), as the plugins' `models` capability sees them: a manifest's
//! `[models.NAME]` with `url` and `model` ([`ponder_manifest::ServedModel`]) becomes a
//! [`ServedClient`], which the host's model registry calls like a local model.
//!
//! What each `models` function does on a served model:
//!
//! - `generate`: one `POST {url}/chat/completions` per request (the server applies its chat
//!   template), up to `concurrency` in flight at once, with the request's `temperature`,
//!   `top_p`, `max_tokens` and `seed`. Stop strings are applied here, not by the server: an
//!   OpenAI-compatible reply does not say which stop string ended it (llama.cpp's does not; the
//!   contract includes the stop string in the reply), so the reply is cut after the first stop
//!   string it contains. The server's work past that point still counts against the call's
//!   token budget.
//! - `choice-logprobs`: exact where the server tokenizes a chat with the model's own template and
//!   returns prompt log-probabilities — vLLM does — and unsupported elsewhere (llama.cpp's server
//!   returns no prompt log-probabilities; an OpenAI-compatible chat endpoint returns none);
//!   ponder never approximates them. Per request, as the local path scores it: the conversation
//!   rendered with the chat template and generation prompt (`POST {root}/tokenize` with
//!   `messages` and `add_generation_prompt`, `{root}` being `url` without its `/v1`, where vLLM
//!   serves it), then the prefix and each choice tokenized on their own (`/tokenize` with
//!   `prompt`, no special tokens), the ids concatenated; then one `POST {url}/completions` with
//!   those token-id prompts, `max_tokens` 1 and `prompt_logprobs` 0; a choice's value is the sum
//!   (natural log) of its tokens' log-probabilities. A 404 from `/tokenize`, a conversation
//!   tokenized to no tokens (llama.cpp's `/tokenize` reads only `content`) or a completion
//!   without `prompt_logprobs` is `unsupported`, naming the endpoint; nothing falls back. No
//!   token is spent from the call's budget (scoring generates nothing on the local path either;
//!   the one token vLLM must generate is thrown away), and the call's time bounds every request.
//! - `reward`: through vLLM's pooling API, for a reward model (a sequence classifier with one
//!   output) served with `--runner pooling`: per request, `POST {root}/pooling` with the
//!   conversation and the response as the assistant's turn (`messages`; the server applies the
//!   reward model's chat template without a generation prompt), `task: "classify"` and
//!   `use_activation: false`, so the value is the head's raw output, as transformers' logits.
//!   A server without the pooling API (HTTP 404: llama.cpp's, or vLLM serving a generative
//!   model), or a model with more than one output, is `unsupported`.
//!
//! The sampling phase of `ponder train` (`[sample] engine`) uses the same client for text
//! completions of token-id prompts ([`ServedClient::complete_tokens`]): the host applies the
//! chat and thought templates, so the server sees exactly the prompt the host would sample
//! from; the sampled token ids come back in the reply's `logprobs`.
//!
//! Faults: connection errors, 429 and 5xx replies are retried `retries` times with exponential
//! backoff (or the server's `Retry-After`); every HTTP request has a timeout (the endpoint's
//! `timeout_ms`, cut to the time the plugin call has left); a reply that is not the JSON of a
//! chat completion, or is cut off, is an error naming the endpoint and the request. Nothing is
//! ever turned into an empty reply.
//!
//! Budgets: a request asks for at most the tokens the call has left (its budget cannot be
//! counted token by token on a server), each reply's `usage.completion_tokens` is spent from
//! the call's budget, and a reply cut short by that cap breaks the budget as the local path
//! does.

#![warn(missing_docs)]

mod client;
mod error;
mod reply;
mod scoring;

pub use client::ServedClient;
pub use error::ServedError;
pub use reply::{Finish, TokenCompletion, TokenRequest};

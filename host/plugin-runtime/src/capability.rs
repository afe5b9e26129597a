//! The capability through which granted plugins reach models: the `models` host interface of the
//! WIT, as a plain Rust trait. The model core implements it (an adapter in the CLI/pipeline side);
//! this crate only routes plugin calls to it, so it needs no model code and no burn.
//!
//! `not-granted` never reaches the trait: the runtime decides it from the manifest's grants before
//! a call is forwarded.

use serde::{Deserialize, Serialize};

/// One chat message, as in the Hugging Face chat format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

/// Sampling settings of one generation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus threshold in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Upper bound on generated tokens.
    pub max_new_tokens: u32,
    /// Seed of this request's random stream.
    pub seed: u64,
    /// Generation stops after any of these strings (included in the output).
    pub stop: Vec<String>,
}

/// One generation request: the conversation, rendered with the model's chat template and a
/// generation prompt appended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// How to sample the reply.
    pub sampling: Sampling,
}

/// A request for the log-probabilities of alternative continuations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceRequest {
    /// The conversation, rendered with the chat template and a generation prompt.
    pub messages: Vec<Message>,
    /// Text the assistant turn is forced to start with before each choice.
    pub prefix: String,
    /// The alternative continuations.
    pub choices: Vec<String>,
}

/// A request for a reward model's scalar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRequest {
    /// The conversation up to the response.
    pub messages: Vec<Message>,
    /// The assistant response to score.
    pub response: String,
}

/// Why a model call failed (the WIT `model-error` less `not-granted`).
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ModelAccessError {
    /// No model of that name is declared under `[models]`.
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// A request is malformed; the text says which and why.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The model lacks the capability (e.g. `reward` without a reward head).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The host failed while running the model.
    #[error("model failed: {0}")]
    Failed(String),
}

/// Batched access to the models a manifest names. Implementations must be usable from several
/// threads; each function receives all requests of one plugin call at once.
pub trait ModelAccess: Send + Sync {
    /// One reply per request, in request order, without the prompt.
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
    ) -> Result<Vec<String>, ModelAccessError>;

    /// Per request, the total natural-log probability of each choice, in the order of `choices`.
    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelAccessError>;

    /// The reward model's scalar for each request.
    fn reward(&self, model: &str, requests: &[RewardRequest])
    -> Result<Vec<f64>, ModelAccessError>;
}

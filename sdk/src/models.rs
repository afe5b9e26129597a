//! Host models behind a trait (WIT interface `models`), so judge logic runs natively against a
//! test double and inside a component against the host.
//!
//! Every function takes a batch: send one call with the work of all requests of a `judge` call.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Message;

/// Why a model call failed (WIT `model-error`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelError {
    /// The manifest did not grant `models` to this plugin.
    NotGranted,
    /// No model of that name is declared in the manifest's `[models]` table.
    UnknownModel(String),
    /// A request is malformed; the text says which and why.
    InvalidRequest(String),
    /// The model lacks the capability (e.g. `reward` without a reward head).
    Unsupported(String),
    /// The host failed while running the model.
    Failed(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotGranted => write!(
                f,
                "the manifest does not grant `models` to this plugin (add grant = [\"models\"])"
            ),
            Self::UnknownModel(name) => write!(f, "no model named `{name}` in [models]"),
            Self::InvalidRequest(text) => write!(f, "invalid model request: {text}"),
            Self::Unsupported(text) => write!(f, "unsupported by the model: {text}"),
            Self::Failed(text) => write!(f, "model call failed: {text}"),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<ModelError> for crate::PluginError {
    fn from(error: ModelError) -> Self {
        crate::PluginError::Failed(error.to_string())
    }
}

/// Sampling settings of one generation request (WIT `sampling`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

impl Sampling {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: u32) -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens,
            seed: 0,
            stop: Vec::new(),
        }
    }
}

/// One generation request (WIT `generate-request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The conversation; the host applies the model's chat template and a generation prompt.
    pub messages: Vec<Message>,
    /// How to sample the reply.
    pub sampling: Sampling,
}

/// One request for the log-probabilities of alternative continuations (WIT `choice-request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChoiceRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Text the assistant turn is forced to start with before each choice; empty for none.
    pub prefix: String,
    /// The alternative continuations.
    pub choices: Vec<String>,
}

/// One request for a reward model's scalar (WIT `reward-request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardRequest {
    /// The conversation up to the response.
    pub messages: Vec<Message>,
    /// The assistant response to score.
    pub response: String,
}

/// The models a judge may call, by the names of the manifest's `[models.NAME]` tables.
///
/// Inside a component the export macro passes the host's implementation; in native unit tests,
/// pass a test double.
pub trait Models {
    /// One reply per request, in order, without the prompt.
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
    ) -> Result<Vec<String>, ModelError>;

    /// Per request, the total natural-log probability of each choice, in the order of `choices`.
    fn choice_logprobs(
        &self,
        model: &str,
        requests: &[ChoiceRequest],
    ) -> Result<Vec<Vec<f64>>, ModelError>;

    /// A reward model's scalar per request.
    fn reward(&self, model: &str, requests: &[RewardRequest]) -> Result<Vec<f64>, ModelError>;
}

/// A [`Models`] that grants nothing: every call is [`ModelError::NotGranted`]. For judges that
/// need no model, in tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoModels;

impl Models for NoModels {
    fn generate(&self, _: &str, _: &[GenerateRequest]) -> Result<Vec<String>, ModelError> {
        Err(ModelError::NotGranted)
    }

    fn choice_logprobs(&self, _: &str, _: &[ChoiceRequest]) -> Result<Vec<Vec<f64>>, ModelError> {
        Err(ModelError::NotGranted)
    }

    fn reward(&self, _: &str, _: &[RewardRequest]) -> Result<Vec<f64>, ModelError> {
        Err(ModelError::NotGranted)
    }
}

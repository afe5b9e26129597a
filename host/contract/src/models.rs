//! WIT interface `models`: the requests a granted plugin sends to the host's models. The error is
//! [`crate::ModelAccessError`].

use crate::Message;
use serde::{Deserialize, Serialize};

/// Sampling settings of one generation request (WIT `sampling`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Softmax temperature; 0 means greedy decoding.
    pub temperature: f32,
    /// Nucleus sampling threshold in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Upper bound on the number of generated tokens.
    pub max_new_tokens: u32,
    /// Seed of this request's random stream: the same request with the same seed gives the same
    /// text, whatever else is in the batch.
    pub seed: u64,
    /// Generation stops after any of these strings (they are included in the output); it always
    /// stops at the model's end of turn.
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

/// One generation request (WIT `generate-request`): the conversation, rendered with the model's
/// chat template and a generation prompt appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// How to sample the reply.
    pub sampling: Sampling,
}

/// One request for the log-probabilities of alternative continuations (WIT `choice-request`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceRequest {
    /// The conversation, rendered with the model's chat template and a generation prompt.
    pub messages: Vec<Message>,
    /// Text the assistant turn is forced to start with before each choice (e.g. `"Score: "`);
    /// empty for none.
    pub prefix: String,
    /// The alternative continuations, e.g. `["1", "2", ..., "10"]` or `["[[A]]", "[[B]]"]`.
    pub choices: Vec<String>,
}

/// One request for a reward model's scalar (WIT `reward-request`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRequest {
    /// The conversation up to the response.
    pub messages: Vec<Message>,
    /// The assistant response to score.
    pub response: String,
}

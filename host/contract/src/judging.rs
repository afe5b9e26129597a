//! WIT interface `judging`: what a judge receives and returns.

use crate::{Message, PluginFailure};
use serde::{Deserialize, Serialize};

/// All candidates for one instruction, as a judge sees them (WIT `judge-request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeRequest {
    /// The instruction as chat messages, without the thought prompt.
    pub instruction: Vec<Message>,
    /// The candidates' responses. Thoughts are withheld by the host: a judge never sees them.
    pub responses: Vec<String>,
    /// The dataset row's reference answer, when it has one.
    #[serde(default)]
    pub reference: Option<String>,
    /// The dataset row's `metadata` field as JSON text (`{}` when absent), e.g. the verifiable
    /// constraints of an instruction. Read it with [`JudgeRequest::metadata_as`].
    #[serde(default = "empty_object")]
    pub metadata: String,
}

fn empty_object() -> String {
    "{}".to_string()
}

impl JudgeRequest {
    /// Deserialises the metadata; a malformed field becomes [`PluginFailure::InvalidInput`]
    /// naming its path.
    pub fn metadata_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginFailure> {
        crate::json::parse_named(&self.metadata, "metadata").map_err(PluginFailure::InvalidInput)
    }

    /// The text of the last user message of the instruction (empty when there is none): what a
    /// judge prompt usually quotes as "the question".
    pub fn last_user_text(&self) -> &str {
        self.instruction
            .iter()
            .rev()
            .find(|message| message.role == "user")
            .map_or("", |message| message.content.as_str())
    }
}

/// The judge's outcome for one request: one optional score per response (same length and order
/// as `responses`; `None` when that response could not be judged; higher is better; finite), or
/// why the whole request could not be judged.
pub type JudgeOutcome = Result<Vec<Option<f64>>, PluginFailure>;

/// One [`JudgeOutcome`] in JSON, as the native ABI and `ponder plugins run judge` write it:
/// `{"scores": [0.5, null]}` or `{"error": {"kind": "invalid-input", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JudgeOutcomeJson {
    /// One optional score per response.
    Scores {
        /// The scores, in response order.
        scores: Vec<Option<f64>>,
    },
    /// The request could not be judged.
    Error {
        /// Why.
        error: PluginFailure,
    },
}

impl From<JudgeOutcomeJson> for JudgeOutcome {
    fn from(outcome: JudgeOutcomeJson) -> Self {
        match outcome {
            JudgeOutcomeJson::Scores { scores } => Ok(scores),
            JudgeOutcomeJson::Error { error } => Err(error),
        }
    }
}

impl From<JudgeOutcome> for JudgeOutcomeJson {
    fn from(outcome: JudgeOutcome) -> Self {
        match outcome {
            Ok(scores) => JudgeOutcomeJson::Scores { scores },
            Err(error) => JudgeOutcomeJson::Error { error },
        }
    }
}

impl From<&JudgeOutcome> for JudgeOutcomeJson {
    fn from(outcome: &JudgeOutcome) -> Self {
        outcome.clone().into()
    }
}

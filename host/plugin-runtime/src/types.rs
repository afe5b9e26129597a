//! Plain Rust forms of the values passed to and returned by plugins. Their JSON shapes are the
//! SDK's (`ponder-sdk`), so the same JSON serves `ponder plugins run`, native plugins and the SDK.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use crate::capability::Message;

/// Why a plugin said a call failed (WIT `plugin-error`). JSON: `{"kind": "invalid-config",
/// "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
pub enum PluginFailure {
    /// The configuration is unusable.
    InvalidConfig(String),
    /// The input of the call is unusable.
    InvalidInput(String),
    /// Another failure (a model call failed, say).
    Failed(String),
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(text) => write!(f, "invalid configuration: {text}"),
            Self::InvalidInput(text) => write!(f, "invalid input: {text}"),
            Self::Failed(text) => write!(f, "failed: {text}"),
        }
    }
}

/// An output split into thought and response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The thought, hidden from judges.
    pub thought: String,
    /// The response, what is judged.
    pub response: String,
}

/// The result of parsing one output. JSON: `{"ok": {"thought": .., "response": ..}}` or
/// `{"failure": "why"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parsed {
    /// The output has the expected format.
    Ok(Split),
    /// It does not; the text says why.
    Failure(String),
}

/// All candidates for one instruction, as a judge sees them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeRequest {
    /// The instruction as chat messages, without the thought prompt.
    pub instruction: Vec<Message>,
    /// The candidates' responses (never the thoughts).
    pub responses: Vec<String>,
    /// The dataset row's reference answer.
    #[serde(default)]
    pub reference: Option<String>,
    /// The dataset row's metadata as JSON text (`{}` when absent).
    #[serde(default = "empty_object")]
    pub metadata: String,
}

fn empty_object() -> String {
    "{}".to_string()
}

/// The judge's outcome for one request: one optional score per response, or why the request
/// could not be judged.
pub type JudgeOutcome = Result<Vec<Option<f64>>, PluginFailure>;

/// One sampled output, as a selector sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Candidate {
    /// The judge's score; `None` for a parse failure or an unjudged response.
    pub score: Option<f64>,
    /// Whether the output parsed into thought and response.
    pub parsed: bool,
    /// Response length in policy tokens.
    pub response_tokens: u32,
    /// Response length in Unicode scalar values.
    pub response_chars: u32,
    /// Thought length in tokens.
    pub thought_tokens: u32,
    /// Thought length in Unicode scalar values.
    pub thought_chars: u32,
    /// Whole output length in tokens.
    pub output_tokens: u32,
}

/// A preference pair naming candidates of one group by index.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Index of the preferred candidate.
    pub chosen: u32,
    /// Index of the dispreferred candidate.
    pub rejected: u32,
    /// Weight in the DPO loss, positive and finite.
    pub weight: f64,
}

//! Plain Rust mirrors of the WIT types that plugins see.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One chat message, as in the Hugging Face chat format (WIT `message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with the given role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Why a plugin call failed (WIT `plugin-error`). The host reports it with the plugin's name and
/// the call; it never aborts the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
pub enum PluginError {
    /// The configuration is unusable: the text names the key and says why.
    InvalidConfig(String),
    /// The input of this call is unusable: the text says what and where.
    InvalidInput(String),
    /// The plugin could not do its work for another reason (a model call failed, say).
    Failed(String),
}

impl PluginError {
    /// An [`PluginError::InvalidConfig`] with the given text.
    pub fn invalid_config(text: impl Into<String>) -> Self {
        Self::InvalidConfig(text.into())
    }

    /// An [`PluginError::InvalidInput`] with the given text.
    pub fn invalid_input(text: impl Into<String>) -> Self {
        Self::InvalidInput(text.into())
    }

    /// A [`PluginError::Failed`] with the given text.
    pub fn failed(text: impl Into<String>) -> Self {
        Self::Failed(text.into())
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidConfig(text) => write!(f, "invalid configuration: {text}"),
            Self::InvalidInput(text) => write!(f, "invalid input: {text}"),
            Self::Failed(text) => write!(f, "failed: {text}"),
        }
    }
}

impl std::error::Error for PluginError {}

/// An output split into thought and response (WIT `split`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The thought: hidden from judges and from the user at evaluation time.
    pub thought: String,
    /// The response: what is judged and shown.
    pub response: String,
}

/// The result of parsing one output (WIT `parsed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parsed {
    /// The output has the expected format.
    Ok(Split),
    /// The output does not have the expected format; the text says what was wrong.
    Failure(String),
}

impl Parsed {
    /// A successful split.
    pub fn split(thought: impl Into<String>, response: impl Into<String>) -> Self {
        Self::Ok(Split {
            thought: thought.into(),
            response: response.into(),
        })
    }

    /// A parse failure with the given reason.
    pub fn failure(why: impl Into<String>) -> Self {
        Self::Failure(why.into())
    }
}

/// All candidates for one instruction (WIT `judge-request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeRequest {
    /// The instruction as chat messages, without the thought prompt.
    pub instruction: Vec<Message>,
    /// The candidates' responses (never the thoughts).
    pub responses: Vec<String>,
    /// The dataset row's reference answer, when it has one.
    pub reference: Option<String>,
    /// The dataset row's `metadata` field as JSON text (`{}` when absent). Read it with
    /// [`JudgeRequest::metadata_as`].
    pub metadata: String,
}

impl JudgeRequest {
    /// Deserialises the metadata; a malformed field becomes [`PluginError::InvalidInput`] naming
    /// its path.
    pub fn metadata_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PluginError> {
        crate::config::parse_input(&self.metadata, "metadata")
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

/// The outcome for one judge request: one optional score per response, or why the whole request
/// could not be judged.
pub type JudgeResult = Result<Vec<Option<f64>>, PluginError>;

/// One sampled output of the policy model as a selector sees it (WIT `candidate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Candidate {
    /// The judge's score; `None` for a parse failure or an unjudged response.
    pub score: Option<f64>,
    /// Whether the output parsed into thought and response.
    pub parsed: bool,
    /// Response length in tokens of the policy's tokenizer (0 for a parse failure).
    pub response_tokens: u32,
    /// Response length in Unicode scalar values (0 for a parse failure).
    pub response_chars: u32,
    /// Thought length in tokens (0 for a parse failure).
    pub thought_tokens: u32,
    /// Thought length in Unicode scalar values (0 for a parse failure).
    pub thought_chars: u32,
    /// Length of the whole output in tokens.
    pub output_tokens: u32,
}

impl Candidate {
    /// A parsed candidate with a finite score: one a selector may rank.
    pub fn is_scored(&self) -> bool {
        self.parsed && self.score.is_some_and(f64::is_finite)
    }
}

/// A preference pair naming two different candidates of one group by index (WIT `pair`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Index of the preferred candidate.
    pub chosen: u32,
    /// Index of the dispreferred candidate; never equal to `chosen`.
    pub rejected: u32,
    /// Weight in the DPO loss; positive and finite.
    pub weight: f64,
}

impl Pair {
    /// A pair of weight 1, or `None` when `chosen == rejected` or an index does not fit in `u32`.
    pub fn new(chosen: usize, rejected: usize) -> Option<Self> {
        if chosen == rejected {
            return None;
        }
        Some(Self {
            chosen: u32::try_from(chosen).ok()?,
            rejected: u32::try_from(rejected).ok()?,
            weight: 1.0,
        })
    }
}

//! WIT interface `template`: what a thought template returns.

use serde::{Deserialize, Serialize};

/// An output split into thought and response (WIT `split`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The thought: hidden from judges and from the user at evaluation time.
    pub thought: String,
    /// The response: what is judged and shown.
    pub response: String,
}

/// The result of parsing one output (WIT `parsed`). JSON: `{"ok": {"thought": .., "response":
/// ..}}` or `{"failure": "why"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Parsed {
    /// The output has the expected format.
    Ok(Split),
    /// The output does not have the expected format (a separator missing, say); the text says
    /// what was wrong. Such outputs serve as rejected samples in training and are resampled at
    /// evaluation.
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

/// How the host shapes generation for a template (WIT `output-format`, new in `ponder:plugin@0.2.0`).
/// Templates built against 0.1.0, native templates and templates that keep the default have
/// [`OutputFormat::default`]: no prefix, no separator.
///
/// JSON: `{"assistant_prefix": "...", "response_separator": "..." | null, "forced_response":
/// "..."}`; missing fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputFormat {
    /// Text the host puts at the start of the assistant turn (after the chat template's
    /// generation prompt); the model continues it. It is part of the output: `parse` sees it and
    /// training learns it. Empty for none.
    pub assistant_prefix: String,
    /// The text that starts the response, as `parse` expects it (e.g. `Here is my response:`);
    /// `None` for templates whose outputs have no separator (direct answers).
    pub response_separator: Option<String>,
    /// What the host appends to a thought that ended without the separator when the run forces
    /// the response (it contains `response_separator`), e.g. `"\n\nHere is my response:\n"`.
    /// Ignored when `response_separator` is `None`.
    pub forced_response: String,
}

impl OutputFormat {
    /// The whole output of a generation whose response the host forced: the assistant prefix,
    /// the thought the model wrote, the forced-response text (only when there is a response
    /// separator) and the response the model wrote after it. A template's `parse` must accept
    /// it; plugin tests use this to check that.
    pub fn forced_output(&self, thought: &str, response: &str) -> String {
        let forced = if self.response_separator.is_some() {
            self.forced_response.as_str()
        } else {
            ""
        };
        format!("{}{thought}{forced}{response}", self.assistant_prefix)
    }
}

//! WIT `types.message`.

use serde::{Deserialize, Serialize};

/// One chat message, as in the Hugging Face chat format (WIT `message`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant` (templates may use others; the model's chat template
    /// decides what it accepts).
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message from its role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
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

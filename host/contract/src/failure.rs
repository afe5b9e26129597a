//! The contract's two error types: what a plugin reports ([`PluginFailure`], WIT
//! `types.plugin-error`) and what a model call reports ([`ModelAccessError`], WIT
//! `models.model-error`). See the crate docs for how they nest in the host's errors.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a plugin says a call failed (WIT `plugin-error`). The host reports it with the plugin's
/// name and the call (inside `ponder_plugin_runtime::PluginError`); it never aborts the host.
///
/// JSON: `{"kind": "invalid-config", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "message")]
pub enum PluginFailure {
    /// The configuration (the JSON of the plugin's manifest table) is unusable: the text names
    /// the key and says why.
    InvalidConfig(String),
    /// The input of this call is unusable (a malformed metadata field of a dataset row, say): the
    /// text says what and where.
    InvalidInput(String),
    /// The plugin could not do its work for another reason (a model call failed, say).
    Failed(String),
}

impl PluginFailure {
    /// A [`PluginFailure::InvalidConfig`] with the given text.
    pub fn invalid_config(text: impl Into<String>) -> Self {
        Self::InvalidConfig(text.into())
    }

    /// A [`PluginFailure::InvalidInput`] with the given text.
    pub fn invalid_input(text: impl Into<String>) -> Self {
        Self::InvalidInput(text.into())
    }

    /// A [`PluginFailure::Failed`] with the given text.
    pub fn failed(text: impl Into<String>) -> Self {
        Self::Failed(text.into())
    }
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

impl std::error::Error for PluginFailure {}

/// Why a call of the `models` interface failed (WIT `model-error`). Plugins receive it from
/// their model calls; the host's `ModelAccess` implementations return it (never
/// [`ModelAccessError::NotGranted`]: the runtime decides that from the manifest's grants).
///
/// Not to be confused with `ponder_model::ModelError`, the model core's own error.
///
/// JSON (serde's default external tagging): `"NotGranted"` or `{"UnknownModel": "name"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelAccessError {
    /// The manifest did not grant `models` to this plugin.
    NotGranted,
    /// No model of that name is declared in the manifest's `[models]` table.
    UnknownModel(String),
    /// A request is malformed (an empty message list, top-p outside (0, 1], say): the text says
    /// which request and why.
    InvalidRequest(String),
    /// The model lacks the capability (e.g. `reward` without a reward head).
    Unsupported(String),
    /// The host failed while running the model.
    Failed(String),
}

impl fmt::Display for ModelAccessError {
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

impl std::error::Error for ModelAccessError {}

/// A failed model call fails the plugin's call ([`PluginFailure::Failed`], the model error's
/// text), so a judge can use `?` on its model calls.
impl From<ModelAccessError> for PluginFailure {
    fn from(error: ModelAccessError) -> Self {
        PluginFailure::Failed(error.to_string())
    }
}

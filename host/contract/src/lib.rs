//! The plain Rust forms of the values that cross ponder's plugin contract (`ponder:plugin`, see
//! `wit/v<version>/ponder-plugin.wit`). The host (runtime, pipeline, checkpoint) and the SDK both
//! use these types; each side converts them to and from its generated bindings in one place
//! (`ponder-plugin-runtime`'s `bindings::convert`, `ponder-sdk`'s `conversions`). The JSON shapes
//! (serde) are those of `ponder plugins run` and of the native C ABI (`sdk/include/ponder_plugin.h`).
//!
//! | WIT (`ponder:plugin`) | here |
//! |---|---|
//! | `types.message` | [`Message`] |
//! | `types.plugin-error` | [`PluginFailure`] |
//! | `template.split`, `template.parsed` | [`Split`], [`Parsed`] |
//! | `template.output-format` (0.2.0) | [`OutputFormat`] |
//! | `judging.judge-request`, one `judge` result | [`JudgeRequest`], [`JudgeOutcome`] |
//! | `selector.candidate`, `selector.pair` | [`Candidate`], [`Pair`] |
//! | `models.sampling`, `generate-request`, `choice-request`, `reward-request` | [`Sampling`], [`GenerateRequest`], [`ChoiceRequest`], [`RewardRequest`] |
//! | `models.model-error` | [`ModelAccessError`] |
//!
//! # How the errors nest
//!
//! ```text
//! ponder_plugin_runtime::PluginError          the host's envelope: plugin name, role, call, cause
//! └── cause: ponder_plugin_runtime::Cause     what went wrong: a trap, out of fuel, a deadline, ...
//!     └── Cause::Plugin(PluginFailure)        ... or the plugin itself reported a failure
//!                                             (WIT `plugin-error`, this crate)
//! ModelAccessError                            a `models` call failed (WIT `model-error`, this crate);
//!                                             a judge usually turns it into
//!                                             PluginFailure::Failed (`From` impl below)
//! ```
//!
//! A plugin returns a [`PluginFailure`] (the SDK's traits use it directly); the runtime wraps it
//! in its `PluginError`, which adds which plugin and which call. [`ModelAccessError`] is what a
//! model call gives back to a plugin (and what the host's `ModelAccess` implementations return);
//! it is not `ponder_model::ModelError`, the model core's own error.

#![warn(missing_docs)]

mod failure;
pub mod json;
mod judging;
mod message;
mod models;
mod selector;
mod template;

pub use failure::{ModelAccessError, PluginFailure};
pub use judging::{JudgeOutcome, JudgeOutcomeJson, JudgeRequest};
pub use message::Message;
pub use models::{ChoiceRequest, GenerateRequest, RewardRequest, Sampling};
pub use selector::{Candidate, Pair};
pub use template::{OutputFormat, Parsed, Split};

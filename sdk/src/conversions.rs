//! The one place where the contract's plain types (`ponder-contract`) meet the component bindings
//! that the export macros generate in each plugin crate: `From` impls only, expanded by
//! [`__ponder_conversions!`](crate::__ponder_conversions) into the plugin crate (where the
//! generated types are local, so the impls are allowed there). One arm per part of the contract;
//! each export macro expands `types` and its own world's arm. Adding a field to a contract type
//! touches the WIT, the contract crate, the host's `bindings::convert` and this file.

/// Expands the `From` impls between the contract's types and the plugin crate's generated
/// `ponder_bindings` for one part of the contract: `types` (messages, plugin errors, log levels),
/// `template`, `judge` (requests and the `models` interface) or `selector`.
#[doc(hidden)]
#[macro_export]
macro_rules! __ponder_conversions {
    (types) => {
        impl From<ponder_bindings::ponder::plugin::types::Message> for $crate::Message {
            fn from(message: ponder_bindings::ponder::plugin::types::Message) -> Self {
                $crate::Message {
                    role: message.role,
                    content: message.content,
                }
            }
        }

        impl From<&$crate::Message> for ponder_bindings::ponder::plugin::types::Message {
            fn from(message: &$crate::Message) -> Self {
                ponder_bindings::ponder::plugin::types::Message {
                    role: message.role.clone(),
                    content: message.content.clone(),
                }
            }
        }

        impl From<$crate::PluginFailure> for ponder_bindings::ponder::plugin::types::PluginError {
            fn from(failure: $crate::PluginFailure) -> Self {
                use ponder_bindings::ponder::plugin::types::PluginError as Wit;
                match failure {
                    $crate::PluginFailure::InvalidConfig(text) => Wit::InvalidConfig(text),
                    $crate::PluginFailure::InvalidInput(text) => Wit::InvalidInput(text),
                    $crate::PluginFailure::Failed(text) => Wit::Failed(text),
                }
            }
        }

        impl From<$crate::log::Level> for ponder_bindings::ponder::plugin::log::Level {
            fn from(level: $crate::log::Level) -> Self {
                use ponder_bindings::ponder::plugin::log::Level as Wit;
                match level {
                    $crate::log::Level::Trace => Wit::Trace,
                    $crate::log::Level::Debug => Wit::Debug,
                    $crate::log::Level::Info => Wit::Info,
                    $crate::log::Level::Warn => Wit::Warn,
                    $crate::log::Level::Error => Wit::Error,
                }
            }
        }
    };
    (template) => {
        impl From<$crate::Parsed> for ponder_bindings::exports::ponder::plugin::template::Parsed {
            fn from(parsed: $crate::Parsed) -> Self {
                use ponder_bindings::exports::ponder::plugin::template as wit;
                match parsed {
                    $crate::Parsed::Ok(split) => wit::Parsed::Ok(wit::Split {
                        thought: split.thought,
                        response: split.response,
                    }),
                    $crate::Parsed::Failure(why) => wit::Parsed::Failure(why),
                }
            }
        }

        impl From<$crate::OutputFormat>
            for ponder_bindings::exports::ponder::plugin::template::OutputFormat
        {
            fn from(format: $crate::OutputFormat) -> Self {
                ponder_bindings::exports::ponder::plugin::template::OutputFormat {
                    assistant_prefix: format.assistant_prefix,
                    response_separator: format.response_separator,
                    forced_response: format.forced_response,
                }
            }
        }
    };
    (judge) => {
        impl From<ponder_bindings::exports::ponder::plugin::judging::JudgeRequest>
            for $crate::JudgeRequest
        {
            fn from(
                request: ponder_bindings::exports::ponder::plugin::judging::JudgeRequest,
            ) -> Self {
                $crate::JudgeRequest {
                    instruction: request.instruction.into_iter().map(Into::into).collect(),
                    responses: request.responses,
                    reference: request.reference,
                    metadata: request.metadata,
                }
            }
        }

        impl From<&$crate::models::GenerateRequest>
            for ponder_bindings::ponder::plugin::models::GenerateRequest
        {
            fn from(request: &$crate::models::GenerateRequest) -> Self {
                use ponder_bindings::ponder::plugin::models as wit;
                let sampling = &request.sampling;
                wit::GenerateRequest {
                    messages: request.messages.iter().map(Into::into).collect(),
                    sampling: wit::Sampling {
                        temperature: sampling.temperature,
                        top_p: sampling.top_p,
                        max_new_tokens: sampling.max_new_tokens,
                        seed: sampling.seed,
                        stop: sampling.stop.clone(),
                    },
                }
            }
        }

        impl From<&$crate::models::ChoiceRequest>
            for ponder_bindings::ponder::plugin::models::ChoiceRequest
        {
            fn from(request: &$crate::models::ChoiceRequest) -> Self {
                ponder_bindings::ponder::plugin::models::ChoiceRequest {
                    messages: request.messages.iter().map(Into::into).collect(),
                    prefix: request.prefix.clone(),
                    choices: request.choices.clone(),
                }
            }
        }

        impl From<&$crate::models::RewardRequest>
            for ponder_bindings::ponder::plugin::models::RewardRequest
        {
            fn from(request: &$crate::models::RewardRequest) -> Self {
                ponder_bindings::ponder::plugin::models::RewardRequest {
                    messages: request.messages.iter().map(Into::into).collect(),
                    response: request.response.clone(),
                }
            }
        }

        impl From<ponder_bindings::ponder::plugin::models::ModelError>
            for $crate::models::ModelAccessError
        {
            fn from(error: ponder_bindings::ponder::plugin::models::ModelError) -> Self {
                use ponder_bindings::ponder::plugin::models::ModelError as Wit;
                use $crate::models::ModelAccessError as E;
                match error {
                    Wit::NotGranted => E::NotGranted,
                    Wit::UnknownModel(name) => E::UnknownModel(name),
                    Wit::InvalidRequest(text) => E::InvalidRequest(text),
                    Wit::Unsupported(text) => E::Unsupported(text),
                    Wit::Failed(text) => E::Failed(text),
                }
            }
        }
    };
    (selector) => {
        impl From<ponder_bindings::exports::ponder::plugin::selector::Candidate>
            for $crate::Candidate
        {
            fn from(
                candidate: ponder_bindings::exports::ponder::plugin::selector::Candidate,
            ) -> Self {
                $crate::Candidate {
                    score: candidate.score,
                    parsed: candidate.parsed,
                    response_tokens: candidate.response_tokens,
                    response_chars: candidate.response_chars,
                    thought_tokens: candidate.thought_tokens,
                    thought_chars: candidate.thought_chars,
                    output_tokens: candidate.output_tokens,
                }
            }
        }

        impl From<$crate::Pair> for ponder_bindings::exports::ponder::plugin::selector::Pair {
            fn from(pair: $crate::Pair) -> Self {
                ponder_bindings::exports::ponder::plugin::selector::Pair {
                    chosen: pair.chosen,
                    rejected: pair.rejected,
                    weight: pair.weight,
                }
            }
        }
    };
}

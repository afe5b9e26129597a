//! `ponder-sdk`: write ponder plugins as plain Rust.
//!
//! ponder trains language models with Thought Preference Optimization (TPO). Its policies are
//! WebAssembly components implementing one world of the WIT package `ponder:plugin@0.1.0` (bundled
//! with this crate, see [`WIT`]). With this crate a plugin is an ordinary Rust type implementing
//! one of three traits over plain Rust types:
//!
//! - [`ThoughtTemplate`]: how the thought prompt reads and how an output splits;
//! - [`Judge`]: how responses are scored, with host models reached through [`models::Models`];
//! - [`PairSelector`]: how scored candidates become preference pairs.
//!
//! One macro call ([`export_thought_template!`], [`export_judge!`], [`export_pair_selector!`])
//! generates the component glue in the plugin crate; the plugin never depends on wit-bindgen
//! itself. The logic stays testable with a plain native `cargo test`: the glue compiles natively
//! and host imports are only reached on `wasm32`.
//!
//! See `README.md` for a walkthrough from `cargo new` to a judge loaded by `ponder`.

pub mod config;
pub mod log;
pub mod models;
pub mod native;
pub mod stats;
pub mod template;
mod types;

pub use types::{Candidate, JudgeRequest, JudgeResult, Message, Pair, Parsed, PluginError, Split};

include!(concat!(env!("OUT_DIR"), "/wit_bindings.rs"));

/// A thought-prompt template: puts the thought prompt around an instruction and splits a model
/// output into thought and response (WIT interface `template`).
pub trait ThoughtTemplate: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none). Use
    /// [`config::parse`] to turn it into a typed configuration.
    fn configure(config: &str) -> Result<Self, PluginError>;

    /// Returns the messages the policy model is prompted with for `instruction`.
    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginError>;

    /// Splits one generated output into thought and response, or says why it does not parse.
    fn parse(&self, output: &str) -> Parsed;
}

/// A judge: scores the candidate responses of each request (WIT interface `judging`).
pub trait Judge: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none).
    fn configure(config: &str) -> Result<Self, PluginError>;

    /// Returns one entry per request, in order: one optional, finite score per response (higher
    /// is better), or the error that makes the whole request unjudgeable. `models` reaches the
    /// models the manifest grants; batch all requests into one call per function.
    fn judge(&mut self, requests: &[JudgeRequest], models: &dyn models::Models)
    -> Vec<JudgeResult>;
}

/// A pair selector: turns the scored candidates of every instruction of an iteration into
/// preference pairs (WIT interface `selector`).
pub trait PairSelector: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none).
    fn configure(config: &str) -> Result<Self, PluginError>;

    /// `groups[i]` holds the candidates of instruction `i`; the result holds that instruction's
    /// pairs at the same index. A pair names two different candidates of its own group.
    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginError>;
}

/// Implementation details of the export macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::log::install_sink;
}

/// Shared part of the export macros: conversions between the plugin crate's generated WIT types
/// and the SDK's plain types, and the log sink. Expands inside the glue's private block.
#[doc(hidden)]
#[macro_export]
macro_rules! __ponder_common_glue {
    () => {
        use ponder_bindings::ponder::plugin::log as __wit_log;
        use ponder_bindings::ponder::plugin::types as __wit_types;

        fn __log_to_host(level: $crate::log::Level, message: &str) {
            let level = match level {
                $crate::log::Level::Trace => __wit_log::Level::Trace,
                $crate::log::Level::Debug => __wit_log::Level::Debug,
                $crate::log::Level::Info => __wit_log::Level::Info,
                $crate::log::Level::Warn => __wit_log::Level::Warn,
                $crate::log::Level::Error => __wit_log::Level::Error,
            };
            __wit_log::log(level, message);
        }

        #[allow(dead_code)]
        fn __message_from_wit(message: __wit_types::Message) -> $crate::Message {
            $crate::Message {
                role: message.role,
                content: message.content,
            }
        }

        #[allow(dead_code)]
        fn __message_to_wit(message: &$crate::Message) -> __wit_types::Message {
            __wit_types::Message {
                role: message.role.clone(),
                content: message.content.clone(),
            }
        }

        fn __error_to_wit(error: $crate::PluginError) -> __wit_types::PluginError {
            match error {
                $crate::PluginError::InvalidConfig(text) => {
                    __wit_types::PluginError::InvalidConfig(text)
                }
                $crate::PluginError::InvalidInput(text) => {
                    __wit_types::PluginError::InvalidInput(text)
                }
                $crate::PluginError::Failed(text) => __wit_types::PluginError::Failed(text),
            }
        }

        fn __not_configured() -> __wit_types::PluginError {
            __wit_types::PluginError::Failed(
                "the plugin was called before `configure` succeeded".to_string(),
            )
        }
    };
}

/// Exports a [`ThoughtTemplate`] implementation as the plugin's component (world
/// `thought-template`). Call it once, at the crate root: `ponder_sdk::export_thought_template!(MyTemplate);`
#[macro_export]
macro_rules! export_thought_template {
    ($plugin:ty) => {
        /// Component bindings of world `thought-template`, generated by `ponder-sdk`.
        #[doc(hidden)]
        #[allow(dead_code, clippy::all)]
        pub mod ponder_bindings {
            $crate::__ponder_generate_bindings!("thought-template");
        }

        const _: () = {
            $crate::__ponder_common_glue!();
            use ponder_bindings::exports::ponder::plugin::template as __wit_template;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            #[allow(dead_code)]
            struct Glue;

            impl __wit_template::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    $crate::__private::install_sink(__log_to_host);
                    let plugin = <$plugin as $crate::ThoughtTemplate>::configure(&config)
                        .map_err(__error_to_wit)?;
                    STATE.with(|state| *state.borrow_mut() = Some(plugin));
                    Ok(())
                }

                fn render(
                    instruction: Vec<__wit_types::Message>,
                ) -> Result<Vec<__wit_types::Message>, __wit_types::PluginError> {
                    let instruction: Vec<$crate::Message> =
                        instruction.into_iter().map(__message_from_wit).collect();
                    STATE.with(|state| match state.borrow().as_ref() {
                        Some(plugin) => $crate::ThoughtTemplate::render(plugin, &instruction)
                            .map(|messages| messages.iter().map(__message_to_wit).collect())
                            .map_err(__error_to_wit),
                        None => Err(__not_configured()),
                    })
                }

                fn parse(output: String) -> __wit_template::Parsed {
                    STATE.with(|state| match state.borrow().as_ref() {
                        Some(plugin) => match $crate::ThoughtTemplate::parse(plugin, &output) {
                            $crate::Parsed::Ok(split) => {
                                __wit_template::Parsed::Ok(__wit_template::Split {
                                    thought: split.thought,
                                    response: split.response,
                                })
                            }
                            $crate::Parsed::Failure(why) => __wit_template::Parsed::Failure(why),
                        },
                        None => __wit_template::Parsed::Failure(
                            "the plugin was called before `configure` succeeded".to_string(),
                        ),
                    })
                }
            }

            // Natively the plugin is an ordinary library for tests: component exports (whose
            // names are not valid native symbol names) exist only on wasm.
            #[cfg(target_arch = "wasm32")]
    ponder_bindings::export!(Glue with_types_in ponder_bindings);
        };
    };
}

/// Exports a [`Judge`] implementation as the plugin's component (world `judge`). Call it once,
/// at the crate root: `ponder_sdk::export_judge!(MyJudge);`
#[macro_export]
macro_rules! export_judge {
    ($plugin:ty) => {
        /// Component bindings of world `judge`, generated by `ponder-sdk`.
        #[doc(hidden)]
        #[allow(dead_code, clippy::all)]
        pub mod ponder_bindings {
            $crate::__ponder_generate_bindings!("judge");
        }

        const _: () = {
            $crate::__ponder_common_glue!();
            use ponder_bindings::exports::ponder::plugin::judging as __wit_judge;
            use ponder_bindings::ponder::plugin::models as __wit_models;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            /// The host's `models` import behind the SDK's [`Models`] trait.
            struct HostModels;

            fn __model_error(error: __wit_models::ModelError) -> $crate::models::ModelError {
                use $crate::models::ModelError as E;
                match error {
                    __wit_models::ModelError::NotGranted => E::NotGranted,
                    __wit_models::ModelError::UnknownModel(text) => E::UnknownModel(text),
                    __wit_models::ModelError::InvalidRequest(text) => E::InvalidRequest(text),
                    __wit_models::ModelError::Unsupported(text) => E::Unsupported(text),
                    __wit_models::ModelError::Failed(text) => E::Failed(text),
                }
            }

            impl $crate::models::Models for HostModels {
                fn generate(
                    &self,
                    model: &str,
                    requests: &[$crate::models::GenerateRequest],
                ) -> Result<Vec<String>, $crate::models::ModelError> {
                    let requests: Vec<__wit_models::GenerateRequest> = requests
                        .iter()
                        .map(|request| __wit_models::GenerateRequest {
                            messages: request.messages.iter().map(__message_to_wit).collect(),
                            sampling: __wit_models::Sampling {
                                temperature: request.sampling.temperature,
                                top_p: request.sampling.top_p,
                                max_new_tokens: request.sampling.max_new_tokens,
                                seed: request.sampling.seed,
                                stop: request.sampling.stop.clone(),
                            },
                        })
                        .collect();
                    __wit_models::generate(model, &requests).map_err(__model_error)
                }

                fn choice_logprobs(
                    &self,
                    model: &str,
                    requests: &[$crate::models::ChoiceRequest],
                ) -> Result<Vec<Vec<f64>>, $crate::models::ModelError> {
                    let requests: Vec<__wit_models::ChoiceRequest> = requests
                        .iter()
                        .map(|request| __wit_models::ChoiceRequest {
                            messages: request.messages.iter().map(__message_to_wit).collect(),
                            prefix: request.prefix.clone(),
                            choices: request.choices.clone(),
                        })
                        .collect();
                    __wit_models::choice_logprobs(model, &requests).map_err(__model_error)
                }

                fn reward(
                    &self,
                    model: &str,
                    requests: &[$crate::models::RewardRequest],
                ) -> Result<Vec<f64>, $crate::models::ModelError> {
                    let requests: Vec<__wit_models::RewardRequest> = requests
                        .iter()
                        .map(|request| __wit_models::RewardRequest {
                            messages: request.messages.iter().map(__message_to_wit).collect(),
                            response: request.response.clone(),
                        })
                        .collect();
                    __wit_models::reward(model, &requests).map_err(__model_error)
                }
            }

            #[allow(dead_code)]
            struct Glue;

            impl __wit_judge::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    $crate::__private::install_sink(__log_to_host);
                    let plugin =
                        <$plugin as $crate::Judge>::configure(&config).map_err(__error_to_wit)?;
                    STATE.with(|state| *state.borrow_mut() = Some(plugin));
                    Ok(())
                }

                fn judge(
                    requests: Vec<__wit_judge::JudgeRequest>,
                ) -> Vec<Result<Vec<Option<f64>>, __wit_types::PluginError>> {
                    let count = requests.len();
                    let requests: Vec<$crate::JudgeRequest> = requests
                        .into_iter()
                        .map(|request| $crate::JudgeRequest {
                            instruction: request
                                .instruction
                                .into_iter()
                                .map(__message_from_wit)
                                .collect(),
                            responses: request.responses,
                            reference: request.reference,
                            metadata: request.metadata,
                        })
                        .collect();
                    STATE.with(|state| match state.borrow_mut().as_mut() {
                        Some(plugin) => $crate::Judge::judge(plugin, &requests, &HostModels)
                            .into_iter()
                            .map(|result| result.map_err(__error_to_wit))
                            .collect(),
                        None => (0..count).map(|_| Err(__not_configured())).collect(),
                    })
                }
            }

            // Natively the plugin is an ordinary library for tests: component exports (whose
            // names are not valid native symbol names) exist only on wasm.
            #[cfg(target_arch = "wasm32")]
    ponder_bindings::export!(Glue with_types_in ponder_bindings);
        };
    };
}

/// Exports a [`PairSelector`] implementation as the plugin's component (world `pair-selector`).
/// Call it once, at the crate root: `ponder_sdk::export_pair_selector!(MySelector);`
#[macro_export]
macro_rules! export_pair_selector {
    ($plugin:ty) => {
        /// Component bindings of world `pair-selector`, generated by `ponder-sdk`.
        #[doc(hidden)]
        #[allow(dead_code, clippy::all)]
        pub mod ponder_bindings {
            $crate::__ponder_generate_bindings!("pair-selector");
        }

        const _: () = {
            $crate::__ponder_common_glue!();
            use ponder_bindings::exports::ponder::plugin::selector as __wit_selector;

            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }

            #[allow(dead_code)]
            struct Glue;

            impl __wit_selector::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    $crate::__private::install_sink(__log_to_host);
                    let plugin = <$plugin as $crate::PairSelector>::configure(&config)
                        .map_err(__error_to_wit)?;
                    STATE.with(|state| *state.borrow_mut() = Some(plugin));
                    Ok(())
                }

                fn select(
                    groups: Vec<Vec<__wit_selector::Candidate>>,
                ) -> Result<Vec<Vec<__wit_selector::Pair>>, __wit_types::PluginError> {
                    let groups: Vec<Vec<$crate::Candidate>> = groups
                        .into_iter()
                        .map(|group| {
                            group
                                .into_iter()
                                .map(|candidate| $crate::Candidate {
                                    score: candidate.score,
                                    parsed: candidate.parsed,
                                    response_tokens: candidate.response_tokens,
                                    response_chars: candidate.response_chars,
                                    thought_tokens: candidate.thought_tokens,
                                    thought_chars: candidate.thought_chars,
                                    output_tokens: candidate.output_tokens,
                                })
                                .collect()
                        })
                        .collect();
                    STATE.with(|state| match state.borrow_mut().as_mut() {
                        Some(plugin) => $crate::PairSelector::select(plugin, &groups)
                            .map(|pairs| {
                                pairs
                                    .into_iter()
                                    .map(|group| {
                                        group
                                            .into_iter()
                                            .map(|pair| __wit_selector::Pair {
                                                chosen: pair.chosen,
                                                rejected: pair.rejected,
                                                weight: pair.weight,
                                            })
                                            .collect()
                                    })
                                    .collect()
                            })
                            .map_err(__error_to_wit),
                        None => Err(__not_configured()),
                    })
                }
            }

            // Natively the plugin is an ordinary library for tests: component exports (whose
            // names are not valid native symbol names) exist only on wasm.
            #[cfg(target_arch = "wasm32")]
    ponder_bindings::export!(Glue with_types_in ponder_bindings);
        };
    };
}

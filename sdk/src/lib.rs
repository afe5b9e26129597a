//! `ponder-sdk`: write ponder plugins as plain Rust.
//!
//! ponder trains language models with Thought Preference Optimization (TPO). Its policies are
//! WebAssembly components implementing one world of the WIT package `ponder:plugin@0.2.0` (bundled
//! with this crate, see [`WIT`]; the host also still loads components built against 0.1.0). With
//! this crate a plugin is an ordinary Rust type implementing one of three traits over the
//! contract's plain Rust types (`ponder-contract`, re-exported here):
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
mod conversions;
pub mod log;
pub mod models;
pub mod native;
pub mod stats;
pub mod template;

pub use ponder_contract::{
    Candidate, JudgeOutcome, JudgeRequest, Message, OutputFormat, Pair, Parsed, PluginFailure,
    Split,
};

/// The former name of [`PluginFailure`] (WIT `plugin-error`), kept so that existing plugins
/// compile; write `PluginFailure` in new code. (In the host, `PluginError` is the runtime's
/// envelope around a failed plugin call, which is why the contract type was renamed.)
pub type PluginError = PluginFailure;

/// The former name of [`JudgeOutcome`], kept so that existing plugins compile.
pub type JudgeResult = JudgeOutcome;

include!(concat!(env!("OUT_DIR"), "/wit_bindings.rs"));

/// A thought-prompt template: puts the thought prompt around an instruction and splits a model
/// output into thought and response (WIT interface `template`).
pub trait ThoughtTemplate: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none). Use
    /// [`config::parse`] to turn it into a typed configuration.
    fn configure(config: &str) -> Result<Self, PluginFailure>;

    /// Returns the messages the policy model is prompted with for `instruction`.
    fn render(&self, instruction: &[Message]) -> Result<Vec<Message>, PluginFailure>;

    /// Splits one generated output into thought and response, or says why it does not parse.
    /// With an [`OutputFormat::assistant_prefix`], the output starts with that prefix; after a
    /// forced response it holds [`OutputFormat::forced_response`] between thought and response.
    fn parse(&self, output: &str) -> Parsed;

    /// How the host shapes generation for this template (WIT `get-output-format`, new in
    /// `ponder:plugin@0.2.0`): the text the assistant turn starts with, the response separator
    /// and the text that forces a response. The default has none of them (a direct answer, or a
    /// template that leaves the format entirely to the model).
    fn output_format(&self) -> OutputFormat {
        OutputFormat::default()
    }
}

/// A judge: scores the candidate responses of each request (WIT interface `judging`).
pub trait Judge: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none).
    fn configure(config: &str) -> Result<Self, PluginFailure>;

    /// Returns one entry per request, in order: one optional, finite score per response (higher
    /// is better), or the error that makes the whole request unjudgeable. `models` reaches the
    /// models the manifest grants; batch all requests into one call per function.
    fn judge(
        &mut self,
        requests: &[JudgeRequest],
        models: &dyn models::Models,
    ) -> Vec<JudgeOutcome>;
}

/// A pair selector: turns the scored candidates of every instruction of an iteration into
/// preference pairs (WIT interface `selector`).
pub trait PairSelector: Sized + 'static {
    /// Builds the plugin from the JSON of its manifest table (`{}` when there is none).
    fn configure(config: &str) -> Result<Self, PluginFailure>;

    /// `groups[i]` holds the candidates of instruction `i`; the result holds that instruction's
    /// pairs at the same index. A pair names two different candidates of its own group.
    fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginFailure>;
}

/// Implementation details of the export macros. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub use crate::log::install_sink;
}

/// Shared part of the export macros: the conversions of the shared WIT types, the log sink and
/// the state of the plugin. Expands inside the glue's private block.
#[doc(hidden)]
#[macro_export]
macro_rules! __ponder_common_glue {
    ($plugin:ty) => {
        $crate::__ponder_conversions!(types);
        use ponder_bindings::ponder::plugin::types as __wit_types;

        fn __log_to_host(level: $crate::log::Level, message: &str) {
            ponder_bindings::ponder::plugin::log::log(level.into(), message);
        }

        fn __not_configured() -> __wit_types::PluginError {
            __wit_types::PluginError::Failed(
                "the plugin was called before `configure` succeeded".to_string(),
            )
        }

        ::std::thread_local! {
            static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                const { ::std::cell::RefCell::new(::std::option::Option::None) };
        }

        /// Installs the log sink and keeps the configured plugin.
        fn __configure(
            configure: impl FnOnce() -> Result<$plugin, $crate::PluginFailure>,
        ) -> Result<(), __wit_types::PluginError> {
            $crate::__private::install_sink(__log_to_host);
            let plugin = configure()?;
            STATE.with(|state| *state.borrow_mut() = Some(plugin));
            Ok(())
        }

        /// Runs `call` on the configured plugin, or returns `unconfigured` before `configure`.
        #[allow(dead_code)]
        fn __with_plugin<R>(
            unconfigured: impl FnOnce() -> R,
            call: impl FnOnce(&mut $plugin) -> R,
        ) -> R {
            STATE.with(|state| match state.borrow_mut().as_mut() {
                Some(plugin) => call(plugin),
                None => unconfigured(),
            })
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
            $crate::__ponder_common_glue!($plugin);
            $crate::__ponder_conversions!(template);
            use ponder_bindings::exports::ponder::plugin::template as __wit_template;

            #[allow(dead_code)]
            struct Glue;

            impl __wit_template::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    __configure(|| <$plugin as $crate::ThoughtTemplate>::configure(&config))
                }

                fn render(
                    instruction: Vec<__wit_types::Message>,
                ) -> Result<Vec<__wit_types::Message>, __wit_types::PluginError> {
                    let instruction: Vec<$crate::Message> =
                        instruction.into_iter().map(Into::into).collect();
                    __with_plugin(
                        || Err(__not_configured()),
                        |plugin| {
                            let messages = $crate::ThoughtTemplate::render(plugin, &instruction)?;
                            Ok(messages.iter().map(Into::into).collect())
                        },
                    )
                }

                fn parse(output: String) -> __wit_template::Parsed {
                    __with_plugin(
                        || {
                            __wit_template::Parsed::Failure(
                                "the plugin was called before `configure` succeeded".to_string(),
                            )
                        },
                        |plugin| $crate::ThoughtTemplate::parse(plugin, &output).into(),
                    )
                }

                fn get_output_format() -> __wit_template::OutputFormat {
                    __with_plugin(
                        || $crate::OutputFormat::default().into(),
                        |plugin| $crate::ThoughtTemplate::output_format(plugin).into(),
                    )
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
            $crate::__ponder_common_glue!($plugin);
            $crate::__ponder_conversions!(judge);
            use ponder_bindings::exports::ponder::plugin::judging as __wit_judge;
            use ponder_bindings::ponder::plugin::models as __wit_models;

            /// The host's `models` import behind the SDK's [`Models`] trait.
            struct HostModels;

            impl $crate::models::Models for HostModels {
                fn generate(
                    &self,
                    model: &str,
                    requests: &[$crate::models::GenerateRequest],
                ) -> Result<Vec<String>, $crate::models::ModelAccessError> {
                    let requests: Vec<__wit_models::GenerateRequest> =
                        requests.iter().map(Into::into).collect();
                    __wit_models::generate(model, &requests).map_err(Into::into)
                }

                fn choice_logprobs(
                    &self,
                    model: &str,
                    requests: &[$crate::models::ChoiceRequest],
                ) -> Result<Vec<Vec<f64>>, $crate::models::ModelAccessError> {
                    let requests: Vec<__wit_models::ChoiceRequest> =
                        requests.iter().map(Into::into).collect();
                    __wit_models::choice_logprobs(model, &requests).map_err(Into::into)
                }

                fn reward(
                    &self,
                    model: &str,
                    requests: &[$crate::models::RewardRequest],
                ) -> Result<Vec<f64>, $crate::models::ModelAccessError> {
                    let requests: Vec<__wit_models::RewardRequest> =
                        requests.iter().map(Into::into).collect();
                    __wit_models::reward(model, &requests).map_err(Into::into)
                }
            }

            #[allow(dead_code)]
            struct Glue;

            impl __wit_judge::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    __configure(|| <$plugin as $crate::Judge>::configure(&config))
                }

                fn judge(
                    requests: Vec<__wit_judge::JudgeRequest>,
                ) -> Vec<Result<Vec<Option<f64>>, __wit_types::PluginError>> {
                    let count = requests.len();
                    let requests: Vec<$crate::JudgeRequest> =
                        requests.into_iter().map(Into::into).collect();
                    __with_plugin(
                        || (0..count).map(|_| Err(__not_configured())).collect(),
                        |plugin| {
                            $crate::Judge::judge(plugin, &requests, &HostModels)
                                .into_iter()
                                .map(|outcome| outcome.map_err(Into::into))
                                .collect()
                        },
                    )
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
            $crate::__ponder_common_glue!($plugin);
            $crate::__ponder_conversions!(selector);
            use ponder_bindings::exports::ponder::plugin::selector as __wit_selector;

            #[allow(dead_code)]
            struct Glue;

            impl __wit_selector::Guest for Glue {
                fn configure(config: String) -> Result<(), __wit_types::PluginError> {
                    __configure(|| <$plugin as $crate::PairSelector>::configure(&config))
                }

                fn select(
                    groups: Vec<Vec<__wit_selector::Candidate>>,
                ) -> Result<Vec<Vec<__wit_selector::Pair>>, __wit_types::PluginError> {
                    let groups: Vec<Vec<$crate::Candidate>> = groups
                        .into_iter()
                        .map(|group| group.into_iter().map(Into::into).collect())
                        .collect();
                    __with_plugin(
                        || Err(__not_configured()),
                        |plugin| {
                            let pairs = $crate::PairSelector::select(plugin, &groups)?;
                            Ok(pairs
                                .into_iter()
                                .map(|group| group.into_iter().map(Into::into).collect())
                                .collect())
                        },
                    )
                }
            }

            // Natively the plugin is an ordinary library for tests: component exports (whose
            // names are not valid native symbol names) exist only on wasm.
            #[cfg(target_arch = "wasm32")]
    ponder_bindings::export!(Glue with_types_in ponder_bindings);
        };
    };
}

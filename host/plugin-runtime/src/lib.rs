//! ponder's plugin runtime: loads the plugins a manifest names (thought template, judge, pair
//! selector) and calls them.
//!
//! - **WebAssembly components** (the default) implement one world of `ponder:plugin`, at any
//!   version this host serves ([`WIT_VERSIONS`]: 0.1.0 and 0.2.0, each from its frozen WIT under
//!   `wit/v<version>/`, see [`bindings`]), and run in a sandbox: WASI is linked, but with no preopened directories, no sockets, no
//!   environment, no arguments, a fixed clock and a seeded random source; stdout and stderr go to
//!   the log. Every call runs under a memory cap, a fuel budget and an epoch deadline from the
//!   manifest. Components are compiled once and cached on disk ([`cache`]), and pre-instantiated
//!   so that a fresh instance is cheap.
//! - **Native libraries** ([`native`]) implement the same roles behind a C ABI. They run with full
//!   process rights and are loaded only where the manifest says `trust = "native"`.
//!
//! The values passed to and from plugins are the contract's plain types (`ponder-contract`,
//! re-exported in [`types`] and [`capability`]). Every failure is a [`PluginError`] (the host's
//! envelope) naming the plugin, the call and the [`Cause`] — which may be the plugin's own
//! [`types::PluginFailure`] (WIT `plugin-error`); the host survives it, and a sandboxed plugin gets a fresh instance for its next call. Outputs are
//! checked against the contract (score counts, finite scores, pair indices, weights).
//!
//! Models reach plugins only through the [`capability::ModelAccess`] trait, and only for plugins
//! granted `models` in the manifest; this crate has no model code.

pub mod bindings;
pub mod cache;
pub mod capability;
mod error;
pub mod native;
mod sandbox;
pub mod types;
mod wasm;

pub use cache::CacheOutcome;
pub use error::{Cause, PluginError};
pub use sandbox::{LogLevel, LogSink, StderrLog};
pub use wasm::{WIT_PACKAGE, WIT_VERSION, WIT_VERSIONS, interface_name, world_name};

use capability::ModelAccess;
use error::CallResult;
use native::NativePlugin;
use ponder_manifest::{Grant, Limits, PluginSource, PluginSpec, Role};
use sandbox::{HostState, ModelsGrant};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use types::{Candidate, JudgeOutcome, JudgeRequest, Message, OutputFormat, Pair, Parsed};
use wasm::{LoadContext, WasmPlugin};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

/// Why the runtime itself could not start.
#[derive(thiserror::Error, Debug)]
pub enum RuntimeError {
    /// The wasmtime engine or linker could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

/// How a runtime is set up.
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` compiles in memory every time.
    pub cache_dir: Option<PathBuf>,
    /// Where plugin log records and captured stdout/stderr go.
    pub log: Arc<dyn LogSink>,
    /// The models granted plugins may call; `None` when this host serves none.
    pub models: Option<Arc<dyn ModelAccess>>,
    /// Seed of the plugins' deterministic random source.
    pub seed: u64,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: cache::default_cache_dir(),
            log: Arc::new(StderrLog {
                min_level: LogLevel::Info,
            }),
            models: None,
            seed: 0,
        }
    }
}

/// Increments the engine's epoch at a fixed period, driving the per-call deadlines.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ponder-epoch-ticker".to_string())
            .spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    std::thread::sleep(sandbox::EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .ok();
        EpochTicker { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Loads plugins. One runtime (one engine, one linker, one epoch ticker) serves all plugins of a
/// process.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    options: RuntimeOptions,
    _ticker: EpochTicker,
}

/// What a loaded plugin is, for `ponder plugins check`.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The plugin's name (its file stem).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Where its code is.
    pub source: PluginSource,
    /// The contract version it was built against: `0.1.0` or `0.2.0` (as the component names it)
    /// for a component, `native ABI 1` for a native library.
    pub version: String,
    /// Its sandbox limits (`None` for native plugins: they have none).
    pub limits: Option<Limits>,
    /// Granted capabilities.
    pub grants: Vec<Grant>,
    /// How the compiled component was obtained (`None` for native plugins).
    pub cache: Option<CacheOutcome>,
}

/// What runs a plugin: a sandboxed component ([`WasmPlugin`]) or a native library
/// ([`NativePlugin`]). Each call returns the value in the contract's types, or the failing call's
/// name and the cause (a plugin's reported failure as [`Cause::Plugin`]); [`Plugin`] checks the
/// role first and wraps failures in a [`PluginError`].
trait Backend: Send {
    /// Makes the plugin ready for calls (a sandboxed plugin: a configured live instance).
    fn configure(&mut self) -> CallResult<()>;
    /// `template.render`.
    fn render(&mut self, instruction: &[Message]) -> CallResult<Vec<Message>>;
    /// `template.parse`.
    fn parse(&mut self, output: &str) -> CallResult<Parsed>;
    /// `template.get-output-format`.
    fn output_format(&mut self) -> CallResult<OutputFormat>;
    /// `judging.judge`.
    fn judge(&mut self, requests: &[JudgeRequest]) -> CallResult<Vec<JudgeOutcome>>;
    /// `selector.select`.
    fn select(&mut self, groups: &[Vec<Candidate>]) -> CallResult<Vec<Vec<Pair>>>;
}

/// A loaded and configured plugin of one role.
pub struct Plugin {
    info: PluginInfo,
    backend: Box<dyn Backend>,
}

impl PluginRuntime {
    /// Sets up the engine (fuel metering and epoch interruption on), the linker (WASI p2 and the
    /// `ponder:plugin` host interfaces of every served version) and the epoch ticker.
    pub fn new(options: RuntimeOptions) -> Result<PluginRuntime, RuntimeError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        config.epoch_interruption(true);
        let engine =
            Engine::new(&config).map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        sandbox::link_host_interfaces(&mut linker)
            .map_err(|error| RuntimeError::Engine(format!("{error:#}")))?;
        let ticker = EpochTicker::start(engine.clone());
        Ok(PluginRuntime {
            engine,
            linker,
            options,
            _ticker: ticker,
        })
    }

    /// The engine (for tools that inspect compiled artifacts).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The options the runtime was made with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Loads the plugin of a manifest table, instantiates it and runs `configure` with the
    /// table's `config`.
    ///
    /// # Errors
    /// As [`PluginRuntime::load_unconfigured`], and the plugin's `configure` failing (the error
    /// names the plugin, the call and the cause).
    pub fn load(&self, spec: &PluginSpec) -> Result<Plugin, PluginError> {
        let mut plugin = self.load_unconfigured(spec)?;
        plugin.configure()?;
        Ok(plugin)
    }

    /// Loads and pre-instantiates a component without instantiating or configuring it (for
    /// benchmarks). A native library has no separate instantiation: it is loaded and configured
    /// here, once.
    ///
    /// # Errors
    /// The file cannot be read or compiled, the component implements another world or an
    /// unsupported contract version, or (native) the library cannot be loaded or refuses its
    /// configuration.
    pub fn load_unconfigured(&self, spec: &PluginSpec) -> Result<Plugin, PluginError> {
        let name = spec.name();
        let error = |call: &'static str, cause: Cause| PluginError {
            plugin: name.clone(),
            role: spec.role,
            call,
            cause,
        };
        let config = serde_json::to_string(&spec.config)
            .map_err(|json| error("load", Cause::Host(json.to_string())))?;
        match &spec.source {
            PluginSource::Wasm(path) => {
                let models = if spec.is_granted(Grant::Models) {
                    ModelsGrant::Granted(self.options.models.clone())
                } else {
                    ModelsGrant::NotGranted
                };
                let context = LoadContext {
                    engine: &self.engine,
                    linker: &self.linker,
                    cache_dir: self.options.cache_dir.as_deref(),
                    log: Arc::clone(&self.options.log),
                    models,
                    seed: self.options.seed,
                };
                let (plugin, loaded) = WasmPlugin::load(
                    context,
                    Arc::from(name.as_str()),
                    spec.role,
                    path,
                    spec.limits,
                    config,
                )
                .map_err(|cause| error("load", cause))?;
                Ok(Plugin {
                    info: PluginInfo {
                        name: name.clone(),
                        role: spec.role,
                        source: spec.source.clone(),
                        version: loaded.wit_version,
                        limits: Some(spec.limits),
                        grants: spec.grants.clone(),
                        cache: Some(loaded.cache),
                    },
                    backend: Box::new(plugin),
                })
            }
            PluginSource::Native(path) => {
                let plugin =
                    NativePlugin::load(path, spec.role).map_err(|cause| error("load", cause))?;
                // Native plugins keep their own state; configure once here.
                plugin
                    .configure_once(&config)
                    .map_err(|cause| error("configure", cause))?;
                Ok(Plugin {
                    info: PluginInfo {
                        name: name.clone(),
                        role: spec.role,
                        source: spec.source.clone(),
                        version: format!("native ABI {}", native::NATIVE_ABI_VERSION),
                        limits: None,
                        grants: spec.grants.clone(),
                        cache: None,
                    },
                    backend: Box::new(plugin),
                })
            }
        }
    }
}

impl Plugin {
    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    fn error(&self, call: &'static str, cause: Cause) -> PluginError {
        PluginError {
            plugin: self.info.name.clone(),
            role: self.info.role,
            call,
            cause,
        }
    }

    /// Runs one backend call of a role: refuses it for another role ([`Cause::WrongRole`]) and
    /// wraps a failure in a [`PluginError`].
    fn dispatch<T>(
        &mut self,
        role: Role,
        call: &'static str,
        run: impl FnOnce(&mut dyn Backend) -> CallResult<T>,
    ) -> Result<T, PluginError> {
        if self.info.role != role {
            return Err(self.error(call, Cause::WrongRole));
        }
        run(self.backend.as_mut()).map_err(|(call, cause)| self.error(call, cause))
    }

    /// Instantiates the component (when there is no live instance) and runs `configure`.
    /// Sandboxed plugins are configured again automatically after any failure.
    pub fn configure(&mut self) -> Result<(), PluginError> {
        let role = self.info.role;
        self.dispatch(role, "configure", |backend| backend.configure())
    }

    /// `template.render`: the messages the policy is prompted with for an instruction.
    pub fn render(&mut self, instruction: &[Message]) -> Result<Vec<Message>, PluginError> {
        self.dispatch(Role::Template, "render", |backend| {
            backend.render(instruction)
        })
    }

    /// `template.parse`: splits one output into thought and response.
    pub fn parse(&mut self, output: &str) -> Result<Parsed, PluginError> {
        self.dispatch(Role::Template, "parse", |backend| backend.parse(output))
    }

    /// `template.get-output-format`: how the host shapes generation for this template (assistant
    /// prefix, response separator, forced-response text). Templates built against
    /// `ponder:plugin@0.1.0` and native templates have [`OutputFormat::default`] (no prefix, no
    /// separator); a 0.2.0 component is asked.
    pub fn output_format(&mut self) -> Result<OutputFormat, PluginError> {
        self.dispatch(Role::Template, "get-output-format", |backend| {
            backend.output_format()
        })
    }

    /// `judge.judge`: per request, one optional score per response or the request's failure.
    /// The output is checked: one entry per request, one score per response, scores finite.
    pub fn judge(&mut self, requests: &[JudgeRequest]) -> Result<Vec<JudgeOutcome>, PluginError> {
        let outcomes = self.dispatch(Role::Judge, "judge", |backend| backend.judge(requests))?;
        validate_judgments(requests, &outcomes)
            .map_err(|message| self.error("judge", Cause::InvalidOutput(message)))?;
        Ok(outcomes)
    }

    /// `selector.select`: per group, the preference pairs. The output is checked: one list per
    /// group, indices in range, chosen ≠ rejected, weights positive and finite.
    pub fn select(&mut self, groups: &[Vec<Candidate>]) -> Result<Vec<Vec<Pair>>, PluginError> {
        let pairs = self.dispatch(Role::Selector, "select", |backend| backend.select(groups))?;
        validate_pairs(groups, &pairs)
            .map_err(|message| self.error("select", Cause::InvalidOutput(message)))?;
        Ok(pairs)
    }
}

/// Checks a judge's output against its input.
pub fn validate_judgments(
    requests: &[JudgeRequest],
    outcomes: &[JudgeOutcome],
) -> Result<(), String> {
    if outcomes.len() != requests.len() {
        return Err(format!(
            "returned {} results for {} requests",
            outcomes.len(),
            requests.len()
        ));
    }
    for (index, (request, outcome)) in requests.iter().zip(outcomes).enumerate() {
        let Ok(scores) = outcome else { continue };
        if scores.len() != request.responses.len() {
            return Err(format!(
                "request {index}: returned {} scores for {} responses",
                scores.len(),
                request.responses.len()
            ));
        }
        if let Some((response, score)) = scores.iter().enumerate().find_map(|(at, score)| {
            score
                .filter(|value| !value.is_finite())
                .map(|value| (at, value))
        }) {
            return Err(format!(
                "request {index}, response {response}: score {score} is not finite"
            ));
        }
    }
    Ok(())
}

/// Checks a selector's output against its input.
pub fn validate_pairs(groups: &[Vec<Candidate>], pairs: &[Vec<Pair>]) -> Result<(), String> {
    if pairs.len() != groups.len() {
        return Err(format!(
            "returned pairs for {} groups, but {} groups were given",
            pairs.len(),
            groups.len()
        ));
    }
    for (index, (group, group_pairs)) in groups.iter().zip(pairs).enumerate() {
        for (at, pair) in group_pairs.iter().enumerate() {
            let size = group.len();
            if pair.chosen as usize >= size || pair.rejected as usize >= size {
                return Err(format!(
                    "group {index}, pair {at}: index out of range (chosen {}, rejected {}, group of {size})",
                    pair.chosen, pair.rejected
                ));
            }
            if pair.chosen == pair.rejected {
                return Err(format!(
                    "group {index}, pair {at}: chosen and rejected are both candidate {}",
                    pair.chosen
                ));
            }
            if !(pair.weight.is_finite() && pair.weight > 0.0) {
                return Err(format!(
                    "group {index}, pair {at}: weight {} is not positive and finite",
                    pair.weight
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PluginFailure;

    fn request(responses: usize) -> JudgeRequest {
        JudgeRequest {
            instruction: vec![Message {
                role: "user".into(),
                content: "hi".into(),
            }],
            responses: vec!["x".into(); responses],
            reference: None,
            metadata: "{}".into(),
        }
    }

    #[test]
    fn judgments_are_checked() {
        let requests = vec![request(2)];
        assert!(validate_judgments(&requests, &[Ok(vec![Some(1.0), None])]).is_ok());
        assert!(validate_judgments(&requests, &[Err(PluginFailure::Failed("x".into()))]).is_ok());
        let error = validate_judgments(&requests, &[Ok(vec![Some(1.0)])]).unwrap_err();
        assert!(error.contains("1 scores for 2 responses"), "{error}");
        let error = validate_judgments(&requests, &[Ok(vec![Some(f64::NAN), None])]).unwrap_err();
        assert!(error.contains("NaN is not finite"), "{error}");
        let error =
            validate_judgments(&requests, &[Ok(vec![None, Some(f64::INFINITY)])]).unwrap_err();
        assert!(error.contains("response 1"), "{error}");
        assert!(validate_judgments(&requests, &[]).is_err());
    }

    #[test]
    fn pairs_are_checked() {
        let groups = vec![vec![Candidate::default(); 3]];
        let pair = |chosen, rejected, weight| Pair {
            chosen,
            rejected,
            weight,
        };
        assert!(validate_pairs(&groups, &[vec![pair(0, 2, 1.0)]]).is_ok());
        assert!(validate_pairs(&groups, &[vec![]]).is_ok());
        let error = validate_pairs(&groups, &[vec![pair(0, 3, 1.0)]]).unwrap_err();
        assert!(error.contains("out of range"), "{error}");
        let error = validate_pairs(&groups, &[vec![pair(1, 1, 1.0)]]).unwrap_err();
        assert!(error.contains("both candidate 1"), "{error}");
        let error = validate_pairs(&groups, &[vec![pair(0, 1, 0.0)]]).unwrap_err();
        assert!(error.contains("weight"), "{error}");
        let error = validate_pairs(&groups, &[vec![pair(0, 1, f64::NAN)]]).unwrap_err();
        assert!(error.contains("weight"), "{error}");
        assert!(validate_pairs(&groups, &[]).is_err());
    }
}

//! Sandboxed WebAssembly plugins: world and version checks, pre-instantiation, per-call limits,
//! trap classification and re-instantiation after a failure.

use crate::bindings::{judge_world, selector_world, template_world, types as wit};
use crate::cache::{self, CacheOutcome};
use crate::error::Cause;
use crate::sandbox::{self, HostState, LogSink, ModelsGrant, SandboxSettings};
use crate::types::{
    Candidate, JudgeOutcome, JudgeRequest, Message, Pair, Parsed, PluginFailure, Split,
};
use ponder_manifest::{Limits, Role};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

/// The contract version this host serves.
pub const WIT_PACKAGE: &str = "ponder:plugin";
/// The version of [`WIT_PACKAGE`] this host was built against.
pub const WIT_VERSION: &str = "0.1.0";

/// The WIT world a role's component must implement.
pub fn world_name(role: Role) -> &'static str {
    match role {
        Role::Template => "thought-template",
        Role::Judge => "judge",
        Role::Selector => "pair-selector",
    }
}

/// The interface a role's component must export.
pub fn interface_name(role: Role) -> &'static str {
    match role {
        Role::Template => "template",
        Role::Judge => "judging",
        Role::Selector => "selector",
    }
}

fn role_of_interface(interface: &str) -> Option<Role> {
    Role::ALL
        .into_iter()
        .find(|role| interface_name(*role) == interface)
}

/// Parses `MAJOR.MINOR.PATCH` (pre-release suffixes ignored).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|part| part.parse::<u64>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Semver compatibility with the host's version: same major, and for 0.x also the same minor.
fn compatible(version: &str) -> bool {
    let (Some(found), Some(host)) = (parse_version(version), parse_version(WIT_VERSION)) else {
        return false;
    };
    found.0 == host.0 && (host.0 != 0 || found.1 == host.1)
}

/// Checks the component's exports against the role; returns the contract version it was built
/// against.
pub(crate) fn check_world(exports: &[String], role: Role) -> Result<String, Cause> {
    let wanted = interface_name(role);
    let expected_export = format!("{WIT_PACKAGE}/{wanted}@{WIT_VERSION}");
    let mut ours = Vec::new();
    for name in exports {
        if let Some(rest) = name.strip_prefix(&format!("{WIT_PACKAGE}/")) {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            ours.push((name.as_str(), interface, version));
        }
    }
    if let Some((name, _, version)) = ours.iter().find(|(_, interface, _)| *interface == wanted) {
        if compatible(version) {
            return Ok(version.to_string());
        }
        let relation = match (parse_version(version), parse_version(WIT_VERSION)) {
            (Some(found), Some(host)) if found > host => " (newer than this host supports)",
            (Some(_), Some(_)) => " (older, no longer supported)",
            _ => " (unversioned or malformed version)",
        };
        return Err(Cause::IncompatibleVersion {
            expected: expected_export,
            found: format!("{name}{relation}"),
        });
    }
    let expected = format!("world `{}` (exports {expected_export})", world_name(role));
    let found = if ours.is_empty() {
        if exports.is_empty() {
            "a component without exports".to_string()
        } else {
            format!("a component exporting {}", exports.join(", "))
        }
    } else {
        let described: Vec<String> = ours
            .iter()
            .map(|(name, interface, _)| match role_of_interface(interface) {
                Some(other) => format!("{name} (world `{}`)", world_name(other)),
                None => name.to_string(),
            })
            .collect();
        format!("a component exporting {}", described.join(", "))
    };
    Err(Cause::WrongWorld { expected, found })
}

/// The result of a call, or the failing call's name and the cause.
type CallResult<T> = Result<T, (&'static str, Cause)>;

/// The pre-instantiated component of one role.
enum Pre {
    Template(template_world::ThoughtTemplatePre<HostState>),
    Judge(judge_world::JudgePre<HostState>),
    Selector(selector_world::PairSelectorPre<HostState>),
}

/// An instantiated component of one role.
enum Bindings {
    Template(template_world::ThoughtTemplate),
    Judge(judge_world::Judge),
    Selector(selector_world::PairSelector),
}

struct Live {
    store: Store<HostState>,
    bindings: Bindings,
}

/// What a load found out, for `ponder plugins check` and benchmarks.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) wit_version: String,
    pub(crate) cache: CacheOutcome,
}

/// A loaded, sandboxed plugin. Keeps one live instance between calls (so a plugin's state, e.g.
/// its parsed configuration, survives), and replaces it after any failure.
pub(crate) struct WasmPlugin {
    engine: Engine,
    pre: Pre,
    live: Option<Live>,
    plugin: Arc<str>,
    limits: Limits,
    config: String,
    log: Arc<dyn LogSink>,
    models: ModelsGrant,
    seed: u64,
}

/// Everything `WasmPlugin::load` needs from the runtime.
pub(crate) struct LoadContext<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) linker: &'a Linker<HostState>,
    pub(crate) cache_dir: Option<&'a Path>,
    pub(crate) log: Arc<dyn LogSink>,
    pub(crate) models: ModelsGrant,
    pub(crate) seed: u64,
}

fn error_text(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}

impl WasmPlugin {
    /// Reads, compiles (or fetches from the cache), checks and pre-instantiates a component.
    /// Does not instantiate it yet.
    pub(crate) fn load(
        context: LoadContext<'_>,
        plugin: Arc<str>,
        role: Role,
        path: &Path,
        limits: Limits,
        config: String,
    ) -> Result<(WasmPlugin, Loaded), Cause> {
        let wasm = std::fs::read(path).map_err(|error| Cause::Read {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        let (component, cache) = cache::load_component(context.engine, context.cache_dir, &wasm)
            .map_err(|error| Cause::Invalid(error_text(&error)))?;
        let exports = export_names(context.engine, &component);
        let wit_version = check_world(&exports, role)?;
        let instance_pre = context
            .linker
            .instantiate_pre(&component)
            .map_err(|error| Cause::Link(error_text(&error)))?;
        let shape = |error: wasmtime::Error| Cause::WrongWorld {
            expected: format!(
                "world `{}` with the functions of {WIT_VERSION}",
                world_name(role)
            ),
            found: format!("mismatched exports: {}", error_text(&error)),
        };
        let pre = match role {
            Role::Template => {
                Pre::Template(template_world::ThoughtTemplatePre::new(instance_pre).map_err(shape)?)
            }
            Role::Judge => Pre::Judge(judge_world::JudgePre::new(instance_pre).map_err(shape)?),
            Role::Selector => {
                Pre::Selector(selector_world::PairSelectorPre::new(instance_pre).map_err(shape)?)
            }
        };
        Ok((
            WasmPlugin {
                engine: context.engine.clone(),
                pre,
                live: None,
                plugin,
                limits,
                config,
                log: context.log,
                models: context.models,
                seed: context.seed,
            },
            Loaded { wit_version, cache },
        ))
    }

    fn memory_cap_bytes(&self) -> usize {
        usize::try_from(u64::from(self.limits.memory_mib) * 1024 * 1024).unwrap_or(usize::MAX)
    }

    /// Makes sure a configured instance exists; returns the failing call on error.
    pub(crate) fn ensure_live(&mut self) -> CallResult<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut store = sandbox::new_store(
            &self.engine,
            SandboxSettings {
                plugin: Arc::clone(&self.plugin),
                log: Arc::clone(&self.log),
                models: self.models.clone(),
                memory_cap_bytes: self.memory_cap_bytes(),
                seed: self.seed,
            },
        );
        self.prepare_call(&mut store);
        let instantiated = match &self.pre {
            Pre::Template(pre) => pre.instantiate(&mut store).map(Bindings::Template),
            Pre::Judge(pre) => pre.instantiate(&mut store).map(Bindings::Judge),
            Pre::Selector(pre) => pre.instantiate(&mut store).map(Bindings::Selector),
        };
        let bindings = match instantiated {
            Ok(bindings) => bindings,
            Err(error) => return Err(("instantiate", self.classify(&mut store, &error))),
        };
        // `configure` runs under the same per-call limits as every other call.
        self.prepare_call(&mut store);
        let configured = match &bindings {
            Bindings::Template(b) => b
                .ponder_plugin_template()
                .call_configure(&mut store, &self.config),
            Bindings::Judge(b) => b
                .ponder_plugin_judging()
                .call_configure(&mut store, &self.config),
            Bindings::Selector(b) => b
                .ponder_plugin_selector()
                .call_configure(&mut store, &self.config),
        };
        store.data_mut().flush_output();
        match configured {
            Ok(Ok(())) => {
                self.live = Some(Live { store, bindings });
                Ok(())
            }
            Ok(Err(failure)) => Err(("configure", Cause::Plugin(failure_from_wit(failure)))),
            Err(error) => Err(("configure", self.classify(&mut store, &error))),
        }
    }

    fn prepare_call(&self, store: &mut Store<HostState>) {
        let timeout = Duration::from_millis(self.limits.timeout_ms);
        store.data_mut().begin_call(timeout);
        // Fuel is only unavailable when the engine does not meter it, which ours always does.
        let _ = store.set_fuel(self.limits.fuel);
        store.set_epoch_deadline(sandbox::ticks(timeout));
    }

    /// Turns a wasmtime failure into a cause, using what the store recorded.
    fn classify(&self, store: &mut Store<HostState>, error: &wasmtime::Error) -> Cause {
        store.data_mut().flush_output();
        let state = store.data();
        if let Some(requested_bytes) = state.limiter.refused {
            return Cause::Memory {
                limit_mib: self.limits.memory_mib,
                requested_bytes,
            };
        }
        if state.clock.timed_out {
            return Cause::Deadline {
                timeout_ms: self.limits.timeout_ms,
            };
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Cause::OutOfFuel {
                fuel: self.limits.fuel,
            },
            Some(Trap::Interrupt) => Cause::Deadline {
                timeout_ms: self.limits.timeout_ms,
            },
            Some(Trap::StackOverflow) => Cause::StackOverflow,
            Some(Trap::MemoryOutOfBounds) => Cause::Trap {
                message: format!(
                    "{} (in a Rust or C plugin, deep recursion overflowing the shadow stack in \
                     linear memory ends like this)",
                    Trap::MemoryOutOfBounds
                ),
                stderr: state.stderr_of_call.trim().to_string(),
            },
            Some(trap) => Cause::Trap {
                message: trap.to_string(),
                stderr: state.stderr_of_call.trim().to_string(),
            },
            None => Cause::Trap {
                message: error_text(error),
                stderr: state.stderr_of_call.trim().to_string(),
            },
        }
    }

    /// Runs one export call under the per-call limits. Any failure drops the instance; the next
    /// call gets a fresh one.
    fn call<R>(
        &mut self,
        call: &'static str,
        run: impl FnOnce(&mut Store<HostState>, &Bindings) -> wasmtime::Result<R>,
    ) -> CallResult<R> {
        self.ensure_live()?;
        let Some(mut live) = self.live.take() else {
            return Err((call, Cause::Host("no live instance".to_string())));
        };
        self.prepare_call(&mut live.store);
        let result = run(&mut live.store, &live.bindings);
        live.store.data_mut().flush_output();
        match result {
            Ok(value) => {
                self.live = Some(live);
                Ok(value)
            }
            Err(error) => Err((call, self.classify(&mut live.store, &error))),
        }
    }

    /// `template.render`.
    pub(crate) fn render(
        &mut self,
        instruction: &[Message],
    ) -> CallResult<Result<Vec<Message>, PluginFailure>> {
        let instruction: Vec<wit::Message> = instruction.iter().map(message_to_wit).collect();
        let result = self.call("render", |store, bindings| match bindings {
            Bindings::Template(b) => b.ponder_plugin_template().call_render(store, &instruction),
            _ => Err(wasmtime::Error::msg("not a template")),
        })?;
        Ok(result
            .map(|messages| messages.into_iter().map(message_from_wit).collect())
            .map_err(failure_from_wit))
    }

    /// `template.parse`.
    pub(crate) fn parse(&mut self, output: &str) -> CallResult<Parsed> {
        use template_world::exports::ponder::plugin::template::Parsed as WitParsed;
        let parsed = self.call("parse", |store, bindings| match bindings {
            Bindings::Template(b) => b.ponder_plugin_template().call_parse(store, output),
            _ => Err(wasmtime::Error::msg("not a template")),
        })?;
        Ok(match parsed {
            WitParsed::Ok(split) => Parsed::Ok(Split {
                thought: split.thought,
                response: split.response,
            }),
            WitParsed::Failure(why) => Parsed::Failure(why),
        })
    }

    /// `judge.judge`.
    pub(crate) fn judge(&mut self, requests: &[JudgeRequest]) -> CallResult<Vec<JudgeOutcome>> {
        use judge_world::exports::ponder::plugin::judging::JudgeRequest as WitRequest;
        let requests: Vec<WitRequest> = requests
            .iter()
            .map(|request| WitRequest {
                instruction: request.instruction.iter().map(message_to_wit).collect(),
                responses: request.responses.clone(),
                reference: request.reference.clone(),
                metadata: request.metadata.clone(),
            })
            .collect();
        let outcomes = self.call("judge", |store, bindings| match bindings {
            Bindings::Judge(b) => b.ponder_plugin_judging().call_judge(store, &requests),
            _ => Err(wasmtime::Error::msg("not a judge")),
        })?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.map_err(failure_from_wit))
            .collect())
    }

    /// `selector.select`.
    pub(crate) fn select(
        &mut self,
        groups: &[Vec<Candidate>],
    ) -> CallResult<Result<Vec<Vec<Pair>>, PluginFailure>> {
        use selector_world::exports::ponder::plugin::selector::Candidate as WitCandidate;
        let groups: Vec<Vec<WitCandidate>> = groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|candidate| WitCandidate {
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
        let result = self.call("select", |store, bindings| match bindings {
            Bindings::Selector(b) => b.ponder_plugin_selector().call_select(store, &groups),
            _ => Err(wasmtime::Error::msg("not a selector")),
        })?;
        Ok(result
            .map(|groups| {
                groups
                    .into_iter()
                    .map(|pairs| {
                        pairs
                            .into_iter()
                            .map(|pair| Pair {
                                chosen: pair.chosen,
                                rejected: pair.rejected,
                                weight: pair.weight,
                            })
                            .collect()
                    })
                    .collect()
            })
            .map_err(failure_from_wit))
    }
}

/// Names of the component's exports.
pub(crate) fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

fn message_to_wit(message: &Message) -> wit::Message {
    wit::Message {
        role: message.role.clone(),
        content: message.content.clone(),
    }
}

fn message_from_wit(message: wit::Message) -> Message {
    Message {
        role: message.role,
        content: message.content,
    }
}

fn failure_from_wit(failure: wit::PluginError) -> PluginFailure {
    match failure {
        wit::PluginError::InvalidConfig(text) => PluginFailure::InvalidConfig(text),
        wit::PluginError::InvalidInput(text) => PluginFailure::InvalidInput(text),
        wit::PluginError::Failed(text) => PluginFailure::Failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn matching_world_reports_its_version() {
        let version = check_world(&names(&["ponder:plugin/judging@0.1.0"]), Role::Judge);
        assert_eq!(version, Ok("0.1.0".to_string()));
        let version = check_world(&names(&["ponder:plugin/judging@0.1.4"]), Role::Judge);
        assert_eq!(version, Ok("0.1.4".to_string()));
    }

    #[test]
    fn newer_version_names_expected_and_found() {
        let cause = check_world(&names(&["ponder:plugin/judging@0.2.0"]), Role::Judge).unwrap_err();
        let text = cause.to_string();
        assert!(
            text.contains("expected ponder:plugin/judging@0.1.0"),
            "{text}"
        );
        assert!(
            text.contains("found ponder:plugin/judging@0.2.0 (newer"),
            "{text}"
        );
    }

    #[test]
    fn wrong_world_names_both_worlds() {
        let cause =
            check_world(&names(&["ponder:plugin/selector@0.1.0"]), Role::Judge).unwrap_err();
        let text = cause.to_string();
        assert!(text.contains("expected world `judge`"), "{text}");
        assert!(text.contains("world `pair-selector`"), "{text}");
        let cause = check_world(&names(&["wasi:cli/run@0.2.0"]), Role::Template).unwrap_err();
        assert!(cause.to_string().contains("wasi:cli/run@0.2.0"));
    }
}

//! Sandboxed WebAssembly plugins: world and version checks, pre-instantiation, per-call limits,
//! trap classification and re-instantiation after a failure.
//!
//! A component may be built against any contract version this host serves
//! ([`ContractVersion`]); the calls of each version's bindings are put behind one trait,
//! [`ComponentExports`], so the rest of the runtime never looks at versions.

use crate::Backend;
use crate::bindings::{ContractVersion, v0_1_0, v0_2_0};
use crate::cache::{self, CacheOutcome};
use crate::error::{CallResult, Cause};
use crate::sandbox::{self, HostState, LogSink, ModelsGrant, SandboxSettings};
use crate::types::{
    Candidate, JudgeOutcome, JudgeRequest, Message, OutputFormat, Pair, Parsed, PluginFailure,
};
use ponder_manifest::{Limits, Role};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store, Trap};

/// The name of the contract's WIT package (without a version; see [`WIT_VERSIONS`]).
pub const WIT_PACKAGE: &str = "ponder:plugin";
/// The newest version of [`WIT_PACKAGE`] this host serves: what `ponder-sdk` builds against.
pub const WIT_VERSION: &str = ContractVersion::NEWEST.number();
/// Every version of [`WIT_PACKAGE`] this host serves, oldest first. A component built against a
/// version compatible with one of them (same major, and for 0.x the same minor) loads.
pub const WIT_VERSIONS: [&str; 2] = [
    ContractVersion::V0_1_0.number(),
    ContractVersion::V0_2_0.number(),
];

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

/// The served version a component's version is semver-compatible with: same major, and for 0.x
/// also the same minor.
fn served_version(version: &str) -> Option<ContractVersion> {
    let found = parse_version(version)?;
    ContractVersion::ALL.into_iter().find(|served| {
        parse_version(served.number())
            .is_some_and(|host| found.0 == host.0 && (host.0 != 0 || found.1 == host.1))
    })
}

/// How a version no served version accepts relates to the served ones.
fn unserved_relation(version: &str) -> &'static str {
    let oldest = parse_version(ContractVersion::ALL[0].number());
    let newest = parse_version(ContractVersion::NEWEST.number());
    match (parse_version(version), oldest, newest) {
        (Some(found), _, Some(newest)) if found > newest => " (newer than this host supports)",
        (Some(found), Some(oldest), _) if found < oldest => " (older, no longer supported)",
        (Some(_), _, _) => " (not a version this host serves)",
        _ => " (unversioned or malformed version)",
    }
}

/// Checks the component's exports against the role; returns the contract version it was built
/// against (as the component names it) and the served version that handles it.
pub(crate) fn check_world(
    exports: &[String],
    role: Role,
) -> Result<(String, ContractVersion), Cause> {
    let wanted = interface_name(role);
    let expected_export = WIT_VERSIONS
        .map(|version| format!("{WIT_PACKAGE}/{wanted}@{version}"))
        .join(" or ");
    let mut ours = Vec::new();
    for name in exports {
        if let Some(rest) = name.strip_prefix(&format!("{WIT_PACKAGE}/")) {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            ours.push((name.as_str(), interface, version));
        }
    }
    let candidates: Vec<_> = ours
        .iter()
        .filter(|(_, interface, _)| *interface == wanted)
        .collect();
    if let Some((version, served)) = candidates
        .iter()
        .find_map(|(_, _, version)| served_version(version).map(|served| (version, served)))
    {
        return Ok((version.to_string(), served));
    }
    if let Some((name, _, version)) = candidates.first() {
        return Err(Cause::IncompatibleVersion {
            expected: format!("{expected_export} (compatible: same major.minor)"),
            found: format!("{name}{}", unserved_relation(version)),
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

/// A pre-instantiated component of one world and contract version: linked, type-checked, cheap
/// to instantiate.
trait PreparedComponent: Send + Sync {
    /// A fresh instance in `store`.
    fn instantiate(
        &self,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Box<dyn ComponentExports>>;
}

/// The exports of an instantiated component, whatever its world and contract version, as calls
/// on the contract's plain types. A world implements the calls it exports; `Plugin` checks the
/// role before calling, so the defaults (an error) are never reached through the public API.
trait ComponentExports: Send {
    /// `configure` (every world).
    fn configure(
        &self,
        store: &mut Store<HostState>,
        config: &str,
    ) -> wasmtime::Result<Result<(), PluginFailure>>;

    /// `template.render`.
    fn render(
        &self,
        _store: &mut Store<HostState>,
        _instruction: &[Message],
    ) -> wasmtime::Result<Result<Vec<Message>, PluginFailure>> {
        Err(not_exported("render"))
    }

    /// `template.parse`.
    fn parse(&self, _store: &mut Store<HostState>, _output: &str) -> wasmtime::Result<Parsed> {
        Err(not_exported("parse"))
    }

    /// `template.get-output-format` (0.2.0 and later; the default format before).
    fn output_format(&self, _store: &mut Store<HostState>) -> wasmtime::Result<OutputFormat> {
        Err(not_exported("get-output-format"))
    }

    /// `judging.judge`.
    fn judge(
        &self,
        _store: &mut Store<HostState>,
        _requests: &[JudgeRequest],
    ) -> wasmtime::Result<Vec<JudgeOutcome>> {
        Err(not_exported("judge"))
    }

    /// `selector.select`.
    fn select(
        &self,
        _store: &mut Store<HostState>,
        _groups: &[Vec<Candidate>],
    ) -> wasmtime::Result<Result<Vec<Vec<Pair>>, PluginFailure>> {
        Err(not_exported("select"))
    }
}

fn not_exported(call: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!("the component's world does not export `{call}`"))
}

/// Implements [`PreparedComponent`] and [`ComponentExports`] for the three worlds of one contract
/// version's bindings. `output_format` is the body of the template's `output_format` call, given
/// the bindings and the store.
macro_rules! component_exports {
    ($version:ident, output_format: |$bindings:ident, $store:ident| $output_format:expr) => {
        impl PreparedComponent for $version::template_world::ThoughtTemplatePre<HostState> {
            fn instantiate(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Box<dyn ComponentExports>> {
                Ok(Box::new(
                    $version::template_world::ThoughtTemplatePre::instantiate(self, store)?,
                ))
            }
        }

        impl PreparedComponent for $version::judge_world::JudgePre<HostState> {
            fn instantiate(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Box<dyn ComponentExports>> {
                Ok(Box::new($version::judge_world::JudgePre::instantiate(
                    self, store,
                )?))
            }
        }

        impl PreparedComponent for $version::selector_world::PairSelectorPre<HostState> {
            fn instantiate(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Box<dyn ComponentExports>> {
                Ok(Box::new(
                    $version::selector_world::PairSelectorPre::instantiate(self, store)?,
                ))
            }
        }

        impl ComponentExports for $version::template_world::ThoughtTemplate {
            fn configure(
                &self,
                store: &mut Store<HostState>,
                config: &str,
            ) -> wasmtime::Result<Result<(), PluginFailure>> {
                let result = self
                    .ponder_plugin_template()
                    .call_configure(store, config)?;
                Ok(result.map_err(Into::into))
            }

            fn render(
                &self,
                store: &mut Store<HostState>,
                instruction: &[Message],
            ) -> wasmtime::Result<Result<Vec<Message>, PluginFailure>> {
                let instruction: Vec<$version::types::Message> =
                    instruction.iter().map(Into::into).collect();
                let result = self
                    .ponder_plugin_template()
                    .call_render(store, &instruction)?;
                Ok(result
                    .map(|messages| messages.into_iter().map(Into::into).collect())
                    .map_err(Into::into))
            }

            fn parse(
                &self,
                store: &mut Store<HostState>,
                output: &str,
            ) -> wasmtime::Result<Parsed> {
                Ok(self
                    .ponder_plugin_template()
                    .call_parse(store, output)?
                    .into())
            }

            fn output_format(
                &self,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<OutputFormat> {
                let $bindings = self;
                let $store = store;
                $output_format
            }
        }

        impl ComponentExports for $version::judge_world::Judge {
            fn configure(
                &self,
                store: &mut Store<HostState>,
                config: &str,
            ) -> wasmtime::Result<Result<(), PluginFailure>> {
                let result = self.ponder_plugin_judging().call_configure(store, config)?;
                Ok(result.map_err(Into::into))
            }

            fn judge(
                &self,
                store: &mut Store<HostState>,
                requests: &[JudgeRequest],
            ) -> wasmtime::Result<Vec<JudgeOutcome>> {
                let requests: Vec<$version::judging::JudgeRequest> =
                    requests.iter().map(Into::into).collect();
                let outcomes = self.ponder_plugin_judging().call_judge(store, &requests)?;
                Ok(outcomes
                    .into_iter()
                    .map(|outcome| outcome.map_err(Into::into))
                    .collect())
            }
        }

        impl ComponentExports for $version::selector_world::PairSelector {
            fn configure(
                &self,
                store: &mut Store<HostState>,
                config: &str,
            ) -> wasmtime::Result<Result<(), PluginFailure>> {
                let result = self
                    .ponder_plugin_selector()
                    .call_configure(store, config)?;
                Ok(result.map_err(Into::into))
            }

            fn select(
                &self,
                store: &mut Store<HostState>,
                groups: &[Vec<Candidate>],
            ) -> wasmtime::Result<Result<Vec<Vec<Pair>>, PluginFailure>> {
                let groups: Vec<Vec<$version::selector::Candidate>> = groups
                    .iter()
                    .map(|group| group.iter().map(Into::into).collect())
                    .collect();
                let result = self.ponder_plugin_selector().call_select(store, &groups)?;
                Ok(result
                    .map(|groups| {
                        groups
                            .into_iter()
                            .map(|pairs| pairs.into_iter().map(Into::into).collect())
                            .collect()
                    })
                    .map_err(Into::into))
            }
        }
    };
}

// 0.1.0 has no `get-output-format`: its templates have the default format.
component_exports!(v0_1_0, output_format: |_bindings, _store| Ok(OutputFormat::default()));
component_exports!(v0_2_0, output_format: |bindings, store| Ok(bindings
    .ponder_plugin_template()
    .call_get_output_format(store)?
    .into()));

/// Type-checks a linked component against its role's world in its contract version.
fn prepare(
    version: ContractVersion,
    role: Role,
    instance_pre: InstancePre<HostState>,
) -> wasmtime::Result<Box<dyn PreparedComponent>> {
    use ContractVersion::{V0_1_0, V0_2_0};
    Ok(match (version, role) {
        (V0_1_0, Role::Template) => Box::new(v0_1_0::template_world::ThoughtTemplatePre::new(
            instance_pre,
        )?),
        (V0_1_0, Role::Judge) => Box::new(v0_1_0::judge_world::JudgePre::new(instance_pre)?),
        (V0_1_0, Role::Selector) => {
            Box::new(v0_1_0::selector_world::PairSelectorPre::new(instance_pre)?)
        }
        (V0_2_0, Role::Template) => Box::new(v0_2_0::template_world::ThoughtTemplatePre::new(
            instance_pre,
        )?),
        (V0_2_0, Role::Judge) => Box::new(v0_2_0::judge_world::JudgePre::new(instance_pre)?),
        (V0_2_0, Role::Selector) => {
            Box::new(v0_2_0::selector_world::PairSelectorPre::new(instance_pre)?)
        }
    })
}

struct Live {
    store: Store<HostState>,
    exports: Box<dyn ComponentExports>,
}

/// What a load found out, for `ponder plugins check` and benchmarks.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The contract version the component was built against, as it names it (e.g. `0.1.0`).
    pub(crate) wit_version: String,
    pub(crate) cache: CacheOutcome,
}

/// A loaded, sandboxed plugin. Keeps one live instance between calls (so a plugin's state, e.g.
/// its parsed configuration, survives), and replaces it after any failure.
pub(crate) struct WasmPlugin {
    engine: Engine,
    pre: Box<dyn PreparedComponent>,
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
        let (wit_version, served) = check_world(&exports, role)?;
        let instance_pre = context
            .linker
            .instantiate_pre(&component)
            .map_err(|error| Cause::Link(error_text(&error)))?;
        let pre = prepare(served, role, instance_pre).map_err(|error| Cause::WrongWorld {
            expected: format!(
                "world `{}` with the functions of {WIT_PACKAGE}@{}",
                world_name(role),
                served.number()
            ),
            found: format!("mismatched exports: {}", error_text(&error)),
        })?;
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

    /// Makes sure a configured instance exists; returns the failing call on error.
    fn ensure_live(&mut self) -> CallResult<()> {
        if self.live.is_some() {
            return Ok(());
        }
        let mut store = sandbox::new_store(
            &self.engine,
            SandboxSettings {
                plugin: Arc::clone(&self.plugin),
                log: Arc::clone(&self.log),
                models: self.models.clone(),
                limits: self.limits,
                seed: self.seed,
            },
        );
        self.prepare_call(&mut store);
        let exports = match self.pre.instantiate(&mut store) {
            Ok(exports) => exports,
            Err(error) => return Err(("instantiate", self.classify(&mut store, &error))),
        };
        // `configure` runs under the same per-call limits as every other call.
        self.prepare_call(&mut store);
        let configured = exports.configure(&mut store, &self.config);
        store.data_mut().flush_output();
        match configured {
            Ok(Ok(())) => {
                self.live = Some(Live { store, exports });
                Ok(())
            }
            Ok(Err(failure)) => Err(("configure", Cause::Plugin(failure))),
            Err(error) => Err(("configure", self.classify(&mut store, &error))),
        }
    }

    fn prepare_call(&self, store: &mut Store<HostState>) {
        store.data_mut().begin_call();
        // Fuel is only unavailable when the engine does not meter it, which ours always does.
        let _ = store.set_fuel(self.limits.fuel);
        let timeout = self.limits.timeout_ms.min(self.limits.call_timeout_ms);
        store.set_epoch_deadline(sandbox::ticks(Duration::from_millis(timeout)));
    }

    /// Turns a wasmtime failure into a cause, using what the store recorded.
    fn classify(&self, store: &mut Store<HostState>, error: &wasmtime::Error) -> Cause {
        store.data_mut().flush_output();
        let state = store.data();
        if let Some(exceeded) = state.budget_exceeded {
            return Cause::Budget(exceeded);
        }
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
    /// call gets a fresh one. A plugin's reported failure becomes [`Cause::Plugin`].
    fn call<R>(
        &mut self,
        call: &'static str,
        run: impl FnOnce(
            &mut Store<HostState>,
            &dyn ComponentExports,
        ) -> wasmtime::Result<Result<R, PluginFailure>>,
    ) -> CallResult<R> {
        self.ensure_live()?;
        let Some(mut live) = self.live.take() else {
            return Err((call, Cause::Host("no live instance".to_string())));
        };
        self.prepare_call(&mut live.store);
        let result = run(&mut live.store, live.exports.as_ref());
        live.store.data_mut().flush_output();
        match result {
            Ok(value) => {
                self.live = Some(live);
                value.map_err(|failure| (call, Cause::Plugin(failure)))
            }
            Err(error) => Err((call, self.classify(&mut live.store, &error))),
        }
    }
}

impl Backend for WasmPlugin {
    fn configure(&mut self) -> CallResult<()> {
        self.ensure_live()
    }

    fn render(&mut self, instruction: &[Message]) -> CallResult<Vec<Message>> {
        self.call("render", |store, exports| {
            exports.render(store, instruction)
        })
    }

    fn parse(&mut self, output: &str) -> CallResult<Parsed> {
        self.call("parse", |store, exports| {
            exports.parse(store, output).map(Ok)
        })
    }

    fn output_format(&mut self) -> CallResult<OutputFormat> {
        self.call("get-output-format", |store, exports| {
            exports.output_format(store).map(Ok)
        })
    }

    fn judge(&mut self, requests: &[JudgeRequest]) -> CallResult<Vec<JudgeOutcome>> {
        self.call("judge", |store, exports| {
            exports.judge(store, requests).map(Ok)
        })
    }

    fn select(&mut self, groups: &[Vec<Candidate>]) -> CallResult<Vec<Vec<Pair>>> {
        self.call("select", |store, exports| exports.select(store, groups))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn matching_world_reports_its_version() {
        let version = check_world(&names(&["ponder:plugin/judging@0.1.0"]), Role::Judge);
        assert_eq!(version, Ok(("0.1.0".to_string(), ContractVersion::V0_1_0)));
        let version = check_world(&names(&["ponder:plugin/judging@0.1.4"]), Role::Judge);
        assert_eq!(version, Ok(("0.1.4".to_string(), ContractVersion::V0_1_0)));
        let version = check_world(&names(&["ponder:plugin/template@0.2.0"]), Role::Template);
        assert_eq!(version, Ok(("0.2.0".to_string(), ContractVersion::V0_2_0)));
    }

    #[test]
    fn newer_version_names_expected_and_found() {
        let cause = check_world(&names(&["ponder:plugin/judging@0.3.0"]), Role::Judge).unwrap_err();
        let text = cause.to_string();
        assert!(
            text.contains("expected ponder:plugin/judging@0.1.0 or ponder:plugin/judging@0.2.0"),
            "{text}"
        );
        assert!(
            text.contains("found ponder:plugin/judging@0.3.0 (newer"),
            "{text}"
        );
        let cause = check_world(&names(&["ponder:plugin/judging@1.0.0"]), Role::Judge).unwrap_err();
        assert!(cause.to_string().contains("(newer"), "{cause}");
    }

    #[test]
    fn older_and_malformed_versions_are_refused() {
        let cause = check_world(&names(&["ponder:plugin/judging@0.0.9"]), Role::Judge).unwrap_err();
        assert!(cause.to_string().contains("(older"), "{cause}");
        let cause = check_world(&names(&["ponder:plugin/judging"]), Role::Judge).unwrap_err();
        assert!(cause.to_string().contains("(unversioned"), "{cause}");
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

    #[test]
    fn served_versions_are_listed_oldest_first() {
        assert_eq!(WIT_VERSIONS, ["0.1.0", "0.2.0"]);
        assert_eq!(WIT_VERSION, "0.2.0");
    }
}

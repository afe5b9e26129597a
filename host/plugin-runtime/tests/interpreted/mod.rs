//! What the tests of hostile interpreted guests share (`hostile_python.rs`, `hostile_js.rs`): one
//! judge per language whose configuration names the attack (a request whose first response is
//! `"attack"` triggers it; every other response scores its length), built from source with the
//! language's SDK and the pinned toolchain (`scripts/plugin-langs.sh`), compiled once into a cache
//! shared by the tests of the binary, and the harness that runs an attack and checks that the same
//! `Plugin` serves the next call.

use ponder_manifest::{Limits, PluginSpec, Role};
use ponder_plugin_runtime::capability::{
    ChoiceRequest, GenerateRequest, ModelAccess, ModelAccessError, ModelBudget, RewardRequest,
};
use ponder_plugin_runtime::types::{JudgeOutcome, JudgeRequest, Message, PluginFailure};
use ponder_plugin_runtime::{
    Cause, LogLevel, LogSink, Plugin, PluginError, PluginRuntime, RuntimeOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// A hostile guest in one language.
pub struct Guest {
    /// The component's (and the plugin's) name: the module's file stem.
    pub name: &'static str,
    /// The language, as `scripts/plugin-langs.sh` names it.
    pub lang: &'static str,
    /// The guest's source, relative to the workspace root.
    pub source: &'static str,
    /// The SDK directory whose files the build depends on, relative to the workspace root.
    pub sdk: &'static str,
    /// The build command (program and arguments, relative to the workspace root), to which the
    /// source and `-o OUTPUT` are appended, and its environment.
    pub build: &'static [&'static str],
    /// Environment of the build command: name and path relative to the workspace root.
    pub build_env: &'static [(&'static str, &'static str)],
}

/// The Python guest.
#[allow(dead_code)] // each test binary uses one guest
pub const PYTHON: Guest = Guest {
    name: "hostile_py",
    lang: "python",
    source: "tests/guests-py/hostile_py.py",
    sdk: "sdk/python/ponder_plugin",
    build: &[
        "target/py-venv/bin/python",
        "-m",
        "ponder_plugin.build",
        "--quiet",
    ],
    build_env: &[("PYTHONPATH", "sdk/python")],
};

/// The JavaScript guest.
#[allow(dead_code)] // each test binary uses one guest
pub const JS: Guest = Guest {
    name: "hostile_js",
    lang: "js",
    source: "tests/guests-js/hostile_js.js",
    sdk: "sdk/js",
    build: &["node", "sdk/js/build.mjs", "--quiet"],
    build_env: &[],
};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// The newest modification time of the files under `path` (a file or a directory).
fn newest(path: &Path) -> SystemTime {
    let mut latest = modified(path).unwrap_or(SystemTime::UNIX_EPOCH);
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let child = entry.path();
            let skipped = child
                .file_name()
                .is_some_and(|name| name == "__pycache__" || name == "node_modules");
            if !skipped {
                latest = latest.max(newest(&child));
            }
        }
    }
    latest
}

/// What `built` holds once the guest is ready: the component and the compile cache.
pub struct Built {
    /// The component.
    pub wasm: PathBuf,
    /// The compile cache the tests share.
    pub cache: PathBuf,
}

/// Builds `guest` when its sources changed and compiles it into the shared cache, once per
/// test process.
pub fn built(guest: &'static Guest) -> &'static Built {
    static PY: OnceLock<Built> = OnceLock::new();
    static JS_GUEST: OnceLock<Built> = OnceLock::new();
    let cell = if guest.lang == "python" {
        &PY
    } else {
        &JS_GUEST
    };
    cell.get_or_init(|| {
        let root = workspace_root();
        let out = root.join("target/guests-interpreted");
        let wasm = out.join(format!("{}.wasm", guest.name));
        let cache = out.join(format!("cache-{}", guest.name));
        let sources = newest(&root.join(guest.source)).max(newest(&root.join(guest.sdk)));
        if modified(&wasm).is_none_or(|time| time < sources) {
            let status = Command::new(root.join("scripts/plugin-langs.sh"))
                .arg(guest.lang)
                .status()
                .expect("running scripts/plugin-langs.sh");
            assert!(
                status.success(),
                "installing the {} toolchain failed",
                guest.lang
            );
            let program = if guest.build[0].contains('/') {
                root.join(guest.build[0])
            } else {
                PathBuf::from(guest.build[0])
            };
            let mut command = Command::new(program);
            command
                .current_dir(&root)
                .args(&guest.build[1..])
                .arg(root.join(guest.source))
                .arg("-o")
                .arg(&wasm);
            for (name, path) in guest.build_env {
                command.env(name, root.join(path));
            }
            let status = command.status().expect("running the SDK's build");
            assert!(status.success(), "building {} failed", guest.source);
            // Entries of earlier builds are never read again.
            let _ = std::fs::remove_dir_all(&cache);
        }
        std::fs::create_dir_all(&cache).expect("cache directory");
        // Compile once here, so that the tests running in parallel all hit the cache.
        let runtime = PluginRuntime::new(RuntimeOptions {
            cache_dir: Some(cache.clone()),
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let mut spec = PluginSpec::wasm(Role::Judge, &wasm);
        spec.config = serde_json::json!({ "attack": "exception" });
        runtime
            .load_unconfigured(&spec)
            .unwrap_or_else(|error| panic!("compiling {}: {error}", guest.name));
        Built { wasm, cache }
    })
}

/// Collects log records for assertions.
#[derive(Default)]
pub struct CapturedLog(pub Mutex<Vec<(String, LogLevel, String)>>);

impl LogSink for CapturedLog {
    fn record(&self, plugin: &str, level: LogLevel, message: &str) {
        if let Ok(mut records) = self.0.lock() {
            records.push((plugin.to_string(), level, message.to_string()));
        }
    }
}

/// Replies `"reply to <content>"` to every generation request; counts the calls.
#[derive(Default)]
pub struct EchoModels {
    /// One entry per `generate` call.
    pub calls: Mutex<Vec<String>>,
}

impl ModelAccess for EchoModels {
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<String>, ModelAccessError> {
        if model != "judge" {
            return Err(ModelAccessError::UnknownModel(model.to_string()));
        }
        self.calls
            .lock()
            .expect("lock")
            .push(format!("generate {}", requests.len()));
        Ok(requests
            .iter()
            .map(|request| format!("reply to {}", request.messages[0].content))
            .collect())
    }

    fn choice_logprobs(
        &self,
        _model: &str,
        _requests: &[ChoiceRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        Err(ModelAccessError::Unsupported("choice-logprobs".into()))
    }

    fn reward(
        &self,
        _model: &str,
        _requests: &[RewardRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<f64>, ModelAccessError> {
        Err(ModelAccessError::Unsupported("reward".into()))
    }
}

/// A runtime on the shared cache, with captured log and echo models.
pub struct Harness {
    /// The runtime.
    pub runtime: PluginRuntime,
    /// What plugins logged.
    pub log: Arc<CapturedLog>,
    /// The models granted plugins reach.
    pub models: Arc<EchoModels>,
    guest: &'static Guest,
}

impl Harness {
    /// A harness for `guest` whose plugins' random source has `seed`.
    pub fn new(guest: &'static Guest, seed: u64) -> Harness {
        let built = built(guest);
        let log = Arc::new(CapturedLog::default());
        let models = Arc::new(EchoModels::default());
        let runtime = PluginRuntime::new(RuntimeOptions {
            cache_dir: Some(built.cache.clone()),
            log: log.clone(),
            models: Some(models.clone()),
            seed,
        })
        .expect("runtime");
        Harness {
            runtime,
            log,
            models,
            guest,
        }
    }

    /// The guest's judge table with `attack` and `limits`.
    pub fn spec(&self, attack: &str, limits: Limits) -> PluginSpec {
        let mut spec = PluginSpec::wasm(Role::Judge, &built(self.guest).wasm);
        spec.config = serde_json::json!({ "attack": attack });
        spec.limits = limits;
        spec
    }

    /// Loads and configures `spec`.
    pub fn load(&self, spec: &PluginSpec) -> Plugin {
        self.runtime
            .load(spec)
            .unwrap_or_else(|error| panic!("loading {}: {error}", self.guest.name))
    }

    /// Whether any record of the plugin at `level` contains `text`.
    pub fn logged(&self, level: LogLevel, text: &str) -> bool {
        let records = self.log.0.lock().expect("log");
        records.iter().any(|(plugin, record_level, message)| {
            plugin == self.guest.name && *record_level == level && message.contains(text)
        })
    }
}

/// A judge request of `responses`.
pub fn request(responses: &[&str]) -> JudgeRequest {
    JudgeRequest {
        instruction: vec![Message {
            role: "user".into(),
            content: "Say something.".into(),
        }],
        responses: responses.iter().map(|text| text.to_string()).collect(),
        reference: None,
        metadata: "{}".into(),
    }
}

/// After an attack, the same plugin must judge a well-behaved request.
pub fn serves_the_next_call(plugin: &mut Plugin) {
    let outcomes = plugin
        .judge(&[request(&["ab", "abc"])])
        .unwrap_or_else(|error| panic!("the call after the attack must work: {error}"));
    assert_eq!(outcomes, vec![Ok(vec![Some(2.0), Some(3.0)])]);
}

/// Runs `attack` under `limits` in a fresh harness: the call must fail naming plugin, call and
/// cause, and the next call must work. Returns the error and the harness.
pub fn attacked(guest: &'static Guest, attack: &str, limits: Limits) -> (PluginError, Harness) {
    let harness = Harness::new(guest, 7);
    let mut plugin = harness.load(&harness.spec(attack, limits));
    let error = plugin
        .judge(&[request(&["attack", "inf"])])
        .expect_err("the attack must fail");
    assert_eq!(error.plugin, guest.name);
    assert_eq!(error.call, "judge");
    assert_eq!(error.role, Role::Judge);
    assert!(
        error
            .to_string()
            .starts_with(&format!("plugin `{}` (judge), call `judge`: ", guest.name)),
        "{error}"
    );
    serves_the_next_call(&mut plugin);
    (error, harness)
}

/// The guest's stderr of a trap; panics on any other cause.
pub fn trap_stderr(error: &PluginError) -> String {
    match &error.cause {
        Cause::Trap { stderr, .. } => stderr.clone(),
        other => panic!("expected a trap, got {other}"),
    }
}

/// Runs an attack that the plugin itself reports as a failure of every request of the call;
/// returns the failure's message.
pub fn failed_requests(harness: &Harness, spec: &PluginSpec) -> String {
    let mut plugin = harness.load(spec);
    let outcomes = plugin
        .judge(&[request(&["attack", "inf"]), request(&["x"])])
        .expect("a plugin failure is an outcome, not a call error");
    let [
        Err(PluginFailure::Failed(first)),
        Err(PluginFailure::Failed(second)),
    ] = outcomes.as_slice()
    else {
        panic!("expected both requests failed, got {outcomes:?}");
    };
    assert_eq!(first, second);
    serves_the_next_call(&mut plugin);
    first.clone()
}

/// Checks that `error` is the memory cap of `cap_mib` refusing a larger memory.
pub fn assert_memory_cap(error: &PluginError, cap_mib: u32) {
    match error.cause {
        Cause::Memory {
            limit_mib,
            requested_bytes,
        } => {
            assert_eq!(limit_mib, cap_mib);
            assert!(
                requested_bytes > (cap_mib as usize) << 20,
                "{requested_bytes}"
            );
        }
        ref other => panic!("expected a memory error, got {other}"),
    }
}

/// The scores of the `random` attack with the runtime seeded `seed`.
pub fn random_reading(guest: &'static Guest, seed: u64) -> Vec<Option<f64>> {
    let harness = Harness::new(guest, seed);
    let mut plugin = harness.load(&harness.spec("random", Limits::default()));
    let outcomes: Vec<JudgeOutcome> = plugin.judge(&[request(&["attack", "x"])]).expect("judge");
    match outcomes.as_slice() {
        [Ok(scores)] => scores.clone(),
        other => panic!("expected one scored request, got {other:?}"),
    }
}

/// The WASI interfaces the guest's component imports (`wasi:NAME/INTERFACE`, versions dropped).
pub fn wasi_imports(guest: &'static Guest) -> Vec<String> {
    // The runtime's engine, so that the compiled component comes from the shared cache.
    let built = built(guest);
    let runtime = PluginRuntime::new(RuntimeOptions::default()).expect("runtime");
    let engine = runtime.engine();
    let wasm = std::fs::read(&built.wasm).expect("the guest's component");
    let (component, _) =
        ponder_plugin_runtime::cache::load_component(engine, Some(&built.cache), &wasm)
            .expect("the guest's component");
    let mut names: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("wasi:"))
        .collect();
    names.sort();
    names.dedup();
    names
}

//! The sandbox against hostile plugins written in Python: `tests/guests-py/hostile_py.py`, one
//! judge built with the Python SDK (`sdk/python`, componentize-py) whose configuration names the
//! attack, built here from source (the pinned toolchain is installed into `target/py-venv` by
//! `scripts/plugin-langs.sh python`). An interpreted guest must be contained exactly as a Rust
//! guest (`hostile.rs`): each attack ends as a `PluginError` naming plugin, call and cause, or as
//! the plugin's own failure, and the same `Plugin` then serves a well-behaved call.
//!
//! The component (18 MB: CPython and the standard library) is compiled once into a cache shared
//! by these tests, `target/guests-py/cache`.

use ponder_manifest::{Grant, Limits, PluginSpec, Role};
use ponder_plugin_runtime::capability::{
    ChoiceRequest, GenerateRequest, ModelAccess, ModelAccessError, ModelBudget, RewardRequest,
};
use ponder_plugin_runtime::types::{JudgeOutcome, JudgeRequest, Message, PluginFailure};
use ponder_plugin_runtime::{
    CacheOutcome, Cause, LogLevel, LogSink, Plugin, PluginError, PluginRuntime, RuntimeOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

const NAME: &str = "hostile_py";

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

/// The newest modification time of the guest's sources (the guest and the SDK package).
fn sources_modified(root: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut files = vec![root.join("tests/guests-py/hostile_py.py")];
    let sdk = root.join("sdk/python/ponder_plugin");
    for entry in std::fs::read_dir(&sdk).expect("reading sdk/python/ponder_plugin") {
        files.push(entry.expect("sdk entry").path());
    }
    for file in files {
        if let Some(time) = modified(&file) {
            newest = newest.max(time);
        }
    }
    newest
}

/// Builds the Python guest (when its sources changed) and compiles it into the shared cache,
/// once per test process; returns the component's path and the cache directory.
fn guest() -> &'static (PathBuf, PathBuf) {
    static GUEST: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    GUEST.get_or_init(|| {
        let root = workspace_root();
        let out = root.join("target/guests-py");
        let wasm = out.join(format!("{NAME}.wasm"));
        let cache = out.join("cache");
        let stale = modified(&wasm).is_none_or(|built| built < sources_modified(&root));
        if stale {
            let status = Command::new(root.join("scripts/plugin-langs.sh"))
                .arg("python")
                .status()
                .expect("running scripts/plugin-langs.sh");
            assert!(status.success(), "installing componentize-py failed");
            let status = Command::new(root.join("target/py-venv/bin/python"))
                .args(["-m", "ponder_plugin.build", "--quiet"])
                .arg(root.join("tests/guests-py/hostile_py.py"))
                .arg("-o")
                .arg(&wasm)
                .env("PYTHONPATH", root.join("sdk/python"))
                .status()
                .expect("running the Python SDK's build");
            assert!(
                status.success(),
                "building tests/guests-py/hostile_py.py failed"
            );
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
            .unwrap_or_else(|error| panic!("compiling the Python guest: {error}"));
        (wasm, cache)
    })
}

/// Collects log records for assertions.
#[derive(Default)]
struct CapturedLog(Mutex<Vec<(String, LogLevel, String)>>);

impl LogSink for CapturedLog {
    fn record(&self, plugin: &str, level: LogLevel, message: &str) {
        if let Ok(mut records) = self.0.lock() {
            records.push((plugin.to_string(), level, message.to_string()));
        }
    }
}

/// Replies `"reply to <content>"` to every generation request; counts the calls.
#[derive(Default)]
struct EchoModels {
    calls: Mutex<Vec<String>>,
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

struct Harness {
    runtime: PluginRuntime,
    log: Arc<CapturedLog>,
    models: Arc<EchoModels>,
}

fn harness_with_seed(seed: u64) -> Harness {
    let (_, cache) = guest();
    let log = Arc::new(CapturedLog::default());
    let models = Arc::new(EchoModels::default());
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.clone()),
        log: log.clone(),
        models: Some(models.clone()),
        seed,
    })
    .expect("runtime");
    Harness {
        runtime,
        log,
        models,
    }
}

fn spec(attack: &str, limits: Limits) -> PluginSpec {
    let (wasm, _) = guest();
    let mut spec = PluginSpec::wasm(Role::Judge, wasm);
    spec.config = serde_json::json!({ "attack": attack });
    spec.limits = limits;
    spec
}

fn load(harness: &Harness, spec: &PluginSpec) -> Plugin {
    harness
        .runtime
        .load(spec)
        .unwrap_or_else(|error| panic!("loading the Python guest: {error}"))
}

fn request(responses: &[&str]) -> JudgeRequest {
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
fn serves_the_next_call(plugin: &mut Plugin) {
    let outcomes = plugin
        .judge(&[request(&["ab", "abc"])])
        .unwrap_or_else(|error| panic!("the call after the attack must work: {error}"));
    assert_eq!(outcomes, vec![Ok(vec![Some(2.0), Some(3.0)])]);
}

/// Runs `attack` under `limits` in a fresh harness: the call must fail naming plugin, call and
/// cause, and the next call must work. Returns the error and the harness.
fn attacked(attack: &str, limits: Limits) -> (PluginError, Harness) {
    let harness = harness_with_seed(7);
    let mut plugin = load(&harness, &spec(attack, limits));
    let error = plugin
        .judge(&[request(&["attack", "inf"])])
        .expect_err("the attack must fail");
    assert_eq!(error.plugin, NAME);
    assert_eq!(error.call, "judge");
    assert_eq!(error.role, Role::Judge);
    assert!(
        error
            .to_string()
            .starts_with(&format!("plugin `{NAME}` (judge), call `judge`: ")),
        "{error}"
    );
    serves_the_next_call(&mut plugin);
    (error, harness)
}

/// The Python traceback of a trap; panics on any other cause.
fn trap_stderr(error: &PluginError) -> String {
    match &error.cause {
        Cause::Trap { stderr, .. } => stderr.clone(),
        other => panic!("expected a trap, got {other}"),
    }
}

/// Runs an attack that the plugin itself reports as a failure of every request of the call.
fn failed_requests(harness: &Harness, spec: &PluginSpec) -> String {
    let mut plugin = load(harness, spec);
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

#[test]
fn configured_state_survives_between_calls() {
    let harness = harness_with_seed(7);
    let mut plugin = load(&harness, &spec("exception", Limits::default()));
    assert_eq!(plugin.info().version, "0.2.0");
    assert_eq!(plugin.info().cache, Some(CacheOutcome::Hit));
    for _ in 0..3 {
        let outcomes = plugin
            .judge(&[request(&["a", "abcd"]), request(&[])])
            .expect("judge");
        assert_eq!(outcomes, vec![Ok(vec![Some(1.0), Some(4.0)]), Ok(vec![])]);
    }
}

#[test]
fn a_bad_configuration_is_the_plugins_invalid_config() {
    let harness = harness_with_seed(7);
    let error = harness
        .runtime
        .load(&spec("telepathy", Limits::default()))
        .err()
        .expect("an unknown attack must be refused");
    assert_eq!(error.call, "configure");
    assert_eq!(
        error.cause,
        Cause::Plugin(PluginFailure::InvalidConfig(
            "config key `attack`: unknown attack 'telepathy'".into()
        ))
    );
}

#[test]
fn endless_loop_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 300,
        ..Limits::default()
    };
    let (error, _) = attacked("loop", limits);
    assert_eq!(error.cause, Cause::Deadline { timeout_ms: 300 });
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 200_000_000,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    let (error, _) = attacked("loop", limits);
    assert_eq!(error.cause, Cause::OutOfFuel { fuel: 200_000_000 });
}

fn assert_memory_cap(error: &PluginError, cap_mib: u32) {
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

#[test]
fn memory_growth_past_the_cap_is_a_memory_error() {
    let limits = Limits {
        memory_mib: 64,
        ..Limits::default()
    };
    let (error, _) = attacked("alloc", limits);
    assert_memory_cap(&error, 64);
}

#[test]
fn deep_recursion_is_stopped() {
    // Python's own guard: a RecursionError, which traps like any uncaught exception.
    let (error, _) = attacked("recursion-limit", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("RecursionError"), "{stderr}");
    // Past the guard, Python frames live on the heap: the memory cap stops them.
    let limits = Limits {
        memory_mib: 64,
        fuel: u64::MAX / 2,
        timeout_ms: 120_000,
        ..Limits::default()
    };
    let (error, _) = attacked("recursion", limits);
    assert_memory_cap(&error, 64);
    // Recursion in the interpreter's C code overflows the WebAssembly stack.
    let (error, _) = attacked("c-recursion", Limits::default());
    assert_eq!(error.cause, Cause::StackOverflow);
}

#[test]
fn huge_output_is_stopped_by_the_memory_cap() {
    let (error, _) = attacked("output", Limits::default());
    assert_memory_cap(&error, 256);
}

#[test]
fn an_exception_is_a_trap_with_the_traceback() {
    let (error, harness) = attacked("exception", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("ValueError: hostile Python judge raised on purpose"),
        "{stderr}"
    );
    assert!(stderr.contains("hostile_py.py"), "{stderr}");
    let records = harness.log.0.lock().expect("log");
    assert!(
        records.iter().any(|(plugin, level, message)| plugin == NAME
            && *level == LogLevel::Warn
            && message.contains("ValueError")),
        "the traceback must reach the log: {records:?}"
    );
}

#[test]
fn a_raised_plugin_failure_fails_the_requests_only() {
    let harness = harness_with_seed(7);
    let message = failed_requests(&harness, &spec("failure", Limits::default()));
    assert_eq!(message, "hostile Python judge failed on purpose");
}

#[test]
fn non_finite_scores_are_invalid_output() {
    let (error, _) = attacked("nan", Limits::default());
    match &error.cause {
        Cause::InvalidOutput(message) => {
            assert!(message.contains("inf is not finite"), "{message}")
        }
        other => panic!("expected invalid output, got {other}"),
    }
}

#[test]
fn wrong_number_of_scores_is_invalid_output() {
    let (error, _) = attacked("wrong-length", Limits::default());
    assert_eq!(
        error.cause,
        Cause::InvalidOutput("request 0: returned 1 scores for 2 responses".into())
    );
}

#[test]
fn reading_a_file_is_denied() {
    let (error, _) = attacked("read-file", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("reading /etc/passwd"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(!stderr.contains("root:"), "file content leaked: {stderr}");
}

#[test]
fn opening_a_socket_is_denied() {
    let (error, _) = attacked("socket", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("connecting to 127.0.0.1:80"), "{stderr}");
    assert!(stderr.contains("PermissionError"), "{stderr}");
}

#[test]
fn the_environment_and_arguments_are_empty() {
    let (error, _) = attacked("env", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("reading the environment: {} argv []"),
        "{stderr}"
    );
}

#[test]
fn models_without_a_grant_are_refused() {
    let harness = harness_with_seed(7);
    let message = failed_requests(&harness, &spec("models", Limits::default()));
    assert!(message.contains("not granted"), "{message}");
    assert!(
        harness.models.calls.lock().expect("lock").is_empty(),
        "an ungranted plugin must never reach the models"
    );
}

#[test]
fn granted_models_are_served() {
    let harness = harness_with_seed(7);
    let mut spec = spec("models", Limits::default());
    spec.grants = vec![Grant::Models];
    let mut plugin = load(&harness, &spec);
    let outcomes = plugin
        .judge(&[request(&["attack", "xy"])])
        .expect("granted model call");
    // "reply to attack" and "reply to xy".
    assert_eq!(outcomes, vec![Ok(vec![Some(15.0), Some(11.0)])]);
    assert_eq!(
        *harness.models.calls.lock().expect("lock"),
        vec!["generate 2".to_string()]
    );
}

#[test]
fn clocks_are_fixed() {
    let harness = harness_with_seed(7);
    let mut plugin = load(&harness, &spec("clock", Limits::default()));
    let outcomes = plugin.judge(&[request(&["attack", "x"])]).expect("judge");
    assert_eq!(outcomes, vec![Ok(vec![Some(1_704_067_200.0), Some(0.0)])]);
}

fn random_reading(seed: u64) -> Vec<JudgeOutcome> {
    let harness = harness_with_seed(seed);
    let mut plugin = load(&harness, &spec("random", Limits::default()));
    plugin.judge(&[request(&["attack", "x"])]).expect("judge")
}

#[test]
fn randomness_is_the_hosts_seeded_stream() {
    assert_eq!(random_reading(7), random_reading(7));
    // Both `random` (seeded from the host's stream when the instance starts, not when the
    // component was built) and `os.urandom` follow the seed.
    let scores = |outcomes: Vec<JudgeOutcome>| match outcomes.as_slice() {
        [Ok(scores)] => scores.clone(),
        other => panic!("expected one scored request, got {other:?}"),
    };
    let (seven, eight) = (scores(random_reading(7)), scores(random_reading(8)));
    assert_eq!(seven.len(), 2);
    assert_ne!(seven[0], eight[0]);
    assert_ne!(seven[1], eight[1]);
}

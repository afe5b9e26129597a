//! The sandbox against hostile plugins, built from source by this harness (like wasmtime's own
//! tests build their guests): `tests/guests/` is a separate cargo workspace with one small crate
//! per misbehaviour, built here with
//! `cargo build --release --target wasm32-wasip2 --target-dir target/guests`.
//!
//! Each misbehaviour must end as a `PluginError` naming plugin, call and cause, after which the
//! same `Plugin` serves a well-behaved call (on a fresh instance).
//!
//! The native-plugin tests build `plugins/native-select-best-worst` for the host into
//! `target/native-plugins` the same way.

use ponder_manifest::{Grant, Limits, PluginSource, PluginSpec, Role};
use ponder_plugin_runtime::capability::{
    BudgetExceeded, ChoiceRequest, GenerateRequest, ModelAccess, ModelAccessError, ModelBudget,
    RewardRequest,
};
use ponder_plugin_runtime::types::{Candidate, JudgeRequest, Message, OutputFormat, Pair, Parsed};
use ponder_plugin_runtime::{
    CacheOutcome, Cause, LogLevel, LogSink, Plugin, PluginError, PluginRuntime, RuntimeOptions,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds the hostile guests once per test process; returns their output directory.
fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let status = cargo()
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(root.join("tests/guests/Cargo.toml"))
            .arg("--target-dir")
            .arg(root.join("target/guests"))
            .status()
            .expect("running cargo to build the hostile guests");
        assert!(status.success(), "building tests/guests failed");
        root.join("target/guests/wasm32-wasip2/release")
    })
}

/// Builds the native example plugin once per test process; returns the library's path.
fn native_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target/native-plugins");
        let status = cargo()
            .args([
                "build",
                "--release",
                "-p",
                "native-select-best-worst",
                "--manifest-path",
            ])
            .arg(root.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("running cargo to build the native plugin");
        assert!(status.success(), "building native-select-best-worst failed");
        target.join("release").join(format!(
            "{}native_select_best_worst{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    })
}

fn guest(name: &str) -> PathBuf {
    guests().join(format!("{}.wasm", name.replace('-', "_")))
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

/// A deterministic model: replies `"reply to <content>"` after `delay`, "generating" each
/// request's `max-new-tokens` against the call's budget (`token_delay` each) the way the real
/// host does; counts calls and tokens.
#[derive(Default)]
struct EchoModels {
    delay: std::time::Duration,
    token_delay: std::time::Duration,
    calls: Mutex<Vec<String>>,
    tokens: Mutex<u64>,
}

impl ModelAccess for EchoModels {
    fn generate(
        &self,
        model: &str,
        requests: &[GenerateRequest],
        budget: &mut ModelBudget,
    ) -> Result<Vec<String>, ModelAccessError> {
        if model != "judge" {
            return Err(ModelAccessError::UnknownModel(model.to_string()));
        }
        std::thread::sleep(self.delay);
        self.calls
            .lock()
            .expect("lock")
            .push(format!("generate {}", requests.len()));
        for request in requests {
            for _ in 0..request.sampling.max_new_tokens {
                std::thread::sleep(self.token_delay);
                if budget.spend_token().is_break() {
                    return Err(ModelAccessError::Failed("out of budget".into()));
                }
                *self.tokens.lock().expect("lock") += 1;
            }
        }
        Ok(requests
            .iter()
            .map(|request| format!("reply to {}", request.messages[0].content))
            .collect())
    }

    fn choice_logprobs(
        &self,
        _model: &str,
        requests: &[ChoiceRequest],
        _budget: &mut ModelBudget,
    ) -> Result<Vec<Vec<f64>>, ModelAccessError> {
        Ok(requests
            .iter()
            .map(|request| vec![0.0; request.choices.len()])
            .collect())
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
    _cache: tempfile::TempDir,
}

fn harness() -> Harness {
    let cache = tempfile::tempdir().expect("temporary cache");
    let log = Arc::new(CapturedLog::default());
    let models = Arc::new(EchoModels::default());
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        log: log.clone(),
        models: Some(models.clone()),
        seed: 7,
    })
    .expect("runtime");
    Harness {
        runtime,
        log,
        models,
        _cache: cache,
    }
}

fn spec(role: Role, name: &str, limits: Limits) -> PluginSpec {
    let mut spec = PluginSpec::wasm(role, guest(name));
    spec.limits = limits;
    spec
}

fn load(harness: &Harness, role: Role, name: &str, limits: Limits) -> Plugin {
    harness
        .runtime
        .load(&spec(role, name, limits))
        .unwrap_or_else(|error| panic!("loading {name}: {error}"))
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

/// The attack must fail with the plugin, the call and a cause; the next call must work.
fn attack_judge(plugin: &mut Plugin, name: &str) -> PluginError {
    let error = plugin
        .judge(&[request(&["attack", "inf"])])
        .expect_err("the attack must fail");
    assert_eq!(error.plugin, name.replace('-', "_"));
    assert_eq!(error.call, "judge");
    assert_eq!(error.role, Role::Judge);
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "plugin `{}` (judge), call `judge`: ",
            name.replace('-', "_")
        )),
        "{text}"
    );
    let outcomes = plugin
        .judge(&[request(&["ab", "abc"])])
        .unwrap_or_else(|error| panic!("the call after the attack must work: {error}"));
    assert_eq!(outcomes, vec![Ok(vec![Some(2.0), Some(3.0)])]);
    error
}

/// A hostile judge after its attack (see [`attack_judge`]), with the harness it ran in.
struct Attacked {
    harness: Harness,
    plugin: Plugin,
    error: PluginError,
}

/// Loads the hostile judge `name` under `limits` in a fresh harness and runs its attack.
fn attacked(name: &str, limits: Limits) -> Attacked {
    let harness = harness();
    let mut plugin = load(&harness, Role::Judge, name, limits);
    let error = attack_judge(&mut plugin, name);
    Attacked {
        harness,
        plugin,
        error,
    }
}

/// The guest's stderr of a trap; panics on any other cause.
fn trap_stderr(error: &PluginError) -> &str {
    match &error.cause {
        Cause::Trap { stderr, .. } => stderr,
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn well_behaved_call_scores_and_instance_is_reused() {
    let harness = harness();
    let mut plugin = load(&harness, Role::Judge, "hostile-trap", Limits::default());
    assert_eq!(plugin.info().version, "0.1.0");
    assert_eq!(plugin.info().cache, Some(CacheOutcome::Compiled));
    for _ in 0..3 {
        let outcomes = plugin
            .judge(&[request(&["a", "abcd"]), request(&[])])
            .expect("judge");
        assert_eq!(outcomes, vec![Ok(vec![Some(1.0), Some(4.0)]), Ok(vec![])]);
    }
}

#[test]
fn infinite_loop_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 200,
        ..Limits::default()
    };
    let Attacked { error, .. } = attacked("hostile-loop", limits);
    assert_eq!(error.cause, Cause::Deadline { timeout_ms: 200 });
    assert!(error.to_string().contains("deadline exceeded"), "{error}");
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 20_000_000,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    let Attacked { error, .. } = attacked("hostile-loop", limits);
    assert_eq!(error.cause, Cause::OutOfFuel { fuel: 20_000_000 });
    assert!(error.to_string().contains("out of fuel"), "{error}");
}

#[test]
fn allocation_past_the_cap_is_a_memory_error() {
    let limits = Limits {
        memory_mib: 64,
        ..Limits::default()
    };
    let Attacked { error, .. } = attacked("hostile-alloc", limits);
    match error.cause {
        Cause::Memory {
            limit_mib,
            requested_bytes,
        } => {
            assert_eq!(limit_mib, 64);
            assert!(requested_bytes > 64 << 20, "{requested_bytes}");
        }
        other => panic!("expected a memory error, got {other}"),
    }
    assert!(error.to_string().contains("memory cap exceeded"), "{error}");
}

#[test]
fn deep_recursion_is_a_stack_overflow() {
    let Attacked { error, .. } = attacked("hostile-recursion", Limits::default());
    assert_eq!(error.cause, Cause::StackOverflow);
}

#[test]
fn multi_gigabyte_output_is_stopped_by_the_memory_cap() {
    let harness = harness();
    let mut plugin = load(
        &harness,
        Role::Template,
        "hostile-output",
        Limits::default(),
    );
    let attack = [Message {
        role: "user".into(),
        content: "attack".into(),
    }];
    let error = plugin
        .render(&attack)
        .expect_err("3 GiB must not come back");
    assert_eq!(error.call, "render");
    assert!(
        matches!(error.cause, Cause::Memory { limit_mib: 256, .. }),
        "{error}"
    );
    let normal = [Message {
        role: "user".into(),
        content: "hello".into(),
    }];
    assert_eq!(
        plugin.render(&normal).expect("render after the attack"),
        normal
    );
}

#[test]
fn trap_is_reported_with_its_message() {
    let Attacked { error, .. } = attacked("hostile-trap", Limits::default());
    match &error.cause {
        Cause::Trap { message, .. } => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let Attacked { harness, error, .. } = attacked("hostile-panic", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("hostile judge panicked on purpose"),
        "{stderr}"
    );
    let records = harness.log.0.lock().expect("log");
    assert!(
        records
            .iter()
            .any(|(plugin, level, message)| plugin == "hostile_panic"
                && *level == LogLevel::Warn
                && message.contains("hostile judge panicked on purpose")),
        "the plugin's stderr must reach the log: {records:?}"
    );
}

#[test]
fn non_finite_scores_are_invalid_output() {
    let Attacked {
        mut plugin, error, ..
    } = attacked("hostile-nan", Limits::default());
    match &error.cause {
        Cause::InvalidOutput(message) => {
            assert!(message.contains("inf is not finite"), "{message}")
        }
        other => panic!("expected invalid output, got {other}"),
    }
    let error = plugin.judge(&[request(&["attack", "x"])]).expect_err("NaN");
    assert!(error.to_string().contains("NaN is not finite"), "{error}");
}

#[test]
fn wrong_number_of_scores_is_invalid_output() {
    let Attacked { error, .. } = attacked("hostile-wrong-length", Limits::default());
    assert_eq!(
        error.cause,
        Cause::InvalidOutput("request 0: returned 1 scores for 2 responses".into())
    );
}

#[test]
fn bad_pairs_are_invalid_output() {
    let harness = harness();
    let mut plugin = load(&harness, Role::Selector, "hostile-pairs", Limits::default());
    let group = |first: f64| {
        vec![
            Candidate {
                score: Some(first),
                parsed: true,
                ..Candidate::default()
            },
            Candidate::default(),
            Candidate::default(),
        ]
    };
    for (marker, expected) in [
        (-1.0, "index out of range"),
        (-2.0, "chosen and rejected are both candidate 1"),
        (-3.0, "weight NaN"),
    ] {
        let error = plugin
            .select(&[group(0.5), group(marker)])
            .expect_err("bad pair");
        assert_eq!(error.call, "select");
        let text = error.to_string();
        assert!(text.contains("group 1, pair 0"), "{text}");
        assert!(text.contains(expected), "{text}");
        let pairs = plugin
            .select(&[group(0.5)])
            .expect("select after the attack");
        assert_eq!(
            pairs,
            vec![vec![Pair {
                chosen: 0,
                rejected: 1,
                weight: 1.0
            }]]
        );
    }
}

#[test]
fn reading_a_file_is_denied() {
    let Attacked { error, .. } = attacked("hostile-read-file", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("reading /etc/passwd"), "{stderr}");
    assert!(!stderr.contains("root:"), "file content leaked: {stderr}");
}

#[test]
fn opening_a_socket_is_denied() {
    let Attacked { error, .. } = attacked("hostile-socket", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("connecting to 127.0.0.1:80"), "{stderr}");
}

#[test]
fn the_environment_is_empty() {
    let Attacked { error, .. } = attacked("hostile-env", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("reading $HOME"), "{stderr}");
    assert!(stderr.contains("NotPresent"), "{stderr}");
}

#[test]
fn models_without_a_grant_are_refused() {
    let Attacked { harness, error, .. } = attacked("hostile-models", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("NotGranted"), "{stderr}");
    assert!(
        harness.models.calls.lock().expect("lock").is_empty(),
        "an ungranted plugin must never reach the models"
    );
}

#[test]
fn granted_models_are_served_through_the_trait() {
    let harness = harness();
    let mut spec = spec(Role::Judge, "hostile-models", Limits::default());
    spec.grants = vec![Grant::Models];
    let mut plugin = harness.runtime.load(&spec).expect("load");
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
fn granted_models_without_a_model_host_fail_clearly() {
    let cache = tempfile::tempdir().expect("cache");
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        models: None,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let mut spec = spec(Role::Judge, "hostile-models", Limits::default());
    spec.grants = vec![Grant::Models];
    let mut plugin = runtime.load(&spec).expect("load");
    let error = attack_judge(&mut plugin, "hostile-models");
    assert!(trap_stderr(&error).contains("serves no models"), "{error}");
}

#[test]
fn wrong_world_names_expected_and_found() {
    let harness = harness();
    let error = harness
        .runtime
        .load(&spec(Role::Judge, "hostile-pairs", Limits::default()))
        .err()
        .expect("a selector is not a judge");
    assert_eq!(error.call, "load");
    let text = error.to_string();
    assert!(matches!(error.cause, Cause::WrongWorld { .. }), "{text}");
    assert!(text.contains("expected world `judge`"), "{text}");
    assert!(
        text.contains("ponder:plugin/selector@0.1.0 (world `pair-selector`)"),
        "{text}"
    );

    let error = harness
        .runtime
        .load(&spec(Role::Selector, "hostile-output", Limits::default()))
        .err()
        .expect("a template is not a selector");
    assert!(
        error.to_string().contains("world `thought-template`"),
        "{error}"
    );
}

#[test]
fn newer_contract_version_is_refused() {
    let harness = harness();
    let error = harness
        .runtime
        .load(&spec(Role::Judge, "hostile-newer-wit", Limits::default()))
        .err()
        .expect("0.3.0 is newer than every served version");
    let text = error.to_string();
    assert!(
        matches!(error.cause, Cause::IncompatibleVersion { .. }),
        "{text}"
    );
    assert!(
        text.contains("expected ponder:plugin/judging@0.1.0 or ponder:plugin/judging@0.2.0"),
        "{text}"
    );
    assert!(
        text.contains("found ponder:plugin/judging@0.3.0 (newer"),
        "{text}"
    );
}

/// Renders and parses with the plain template of `guest_support` (either contract version).
fn check_plain_template(plugin: &mut Plugin) {
    let messages = plugin
        .render(&[Message::system("Be brief."), Message::user("2+2?")])
        .expect("render");
    assert_eq!(messages[0], Message::system("Be brief."));
    assert_eq!(
        messages[1],
        Message::user("Think, then answer after \"Answer:\".\n\n2+2?")
    );
    assert_eq!(
        plugin.parse("two and two Answer: 4").expect("parse"),
        Parsed::split("two and two", "4")
    );
    assert!(matches!(
        plugin.parse("no answer").expect("parse"),
        Parsed::Failure(_)
    ));
}

#[test]
fn template_built_against_0_1_0_keeps_loading() {
    let harness = harness();
    let mut plugin = load(
        &harness,
        Role::Template,
        "template-v0-1-0",
        Limits::default(),
    );
    assert_eq!(plugin.info().version, "0.1.0");
    check_plain_template(&mut plugin);
    assert_eq!(
        plugin.output_format().expect("output format"),
        OutputFormat::default()
    );
}

#[test]
fn template_built_against_0_2_0_gives_its_output_format() {
    let harness = harness();
    let mut plugin = load(
        &harness,
        Role::Template,
        "template-v0-2-0",
        Limits::default(),
    );
    assert_eq!(plugin.info().version, "0.2.0");
    check_plain_template(&mut plugin);
    let format = plugin.output_format().expect("output format");
    assert_eq!(
        format,
        OutputFormat {
            assistant_prefix: "Thinking:\n".to_string(),
            response_separator: Some("Answer:".to_string()),
            forced_response: "\nAnswer: ".to_string(),
        }
    );
    let output = format.forced_output("two and two", "4");
    assert_eq!(
        plugin.parse(&output).expect("parse"),
        Parsed::split("Thinking:\ntwo and two", "4")
    );
}

#[test]
fn output_format_is_a_template_call() {
    let harness = harness();
    let mut judge = load(&harness, Role::Judge, "hostile-trap", Limits::default());
    let error = judge
        .output_format()
        .expect_err("a judge has no output format");
    assert!(matches!(error.cause, Cause::WrongRole), "{error}");
    assert_eq!(error.call, "get-output-format");
}

#[test]
fn corrupt_wasm_is_an_invalid_plugin() {
    let harness = harness();
    let dir = tempfile::tempdir().expect("dir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0this is not wasm").expect("write");
    let truncated = dir.path().join("truncated.wasm");
    let real = std::fs::read(guest("hostile-trap")).expect("read guest");
    std::fs::write(&truncated, &real[..real.len() / 2]).expect("write");
    for path in [&garbage, &truncated] {
        let error = harness
            .runtime
            .load(&PluginSpec::wasm(Role::Judge, path))
            .err()
            .expect("corrupt");
        assert!(matches!(error.cause, Cause::Invalid(_)), "{error}");
        assert_eq!(error.call, "load");
    }
    let missing = harness
        .runtime
        .load(&PluginSpec::wasm(
            Role::Judge,
            dir.path().join("missing.wasm"),
        ))
        .err()
        .expect("missing");
    assert!(matches!(missing.cause, Cause::Read { .. }), "{missing}");
}

#[test]
fn compiled_components_are_cached_and_corrupt_entries_recompiled() {
    let cache = tempfile::tempdir().expect("cache");
    let runtime = || {
        PluginRuntime::new(RuntimeOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..RuntimeOptions::default()
        })
        .expect("runtime")
    };
    let spec = spec(Role::Judge, "hostile-trap", Limits::default());
    let first = runtime().load(&spec).expect("first load");
    assert_eq!(first.info().cache, Some(CacheOutcome::Compiled));
    let mut second = runtime().load(&spec).expect("second load");
    assert_eq!(second.info().cache, Some(CacheOutcome::Hit));
    assert!(second.judge(&[request(&["a"])]).is_ok());

    let entries: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .expect("cache dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].extension().and_then(|ext| ext.to_str()),
        Some("cwasm")
    );
    std::fs::write(&entries[0], b"corrupt cache entry").expect("corrupt it");
    let mut third = runtime().load(&spec).expect("load over a corrupt entry");
    assert_eq!(third.info().cache, Some(CacheOutcome::Recompiled));
    assert!(third.judge(&[request(&["a"])]).is_ok());
    assert_eq!(
        runtime().load(&spec).expect("fourth").info().cache,
        Some(CacheOutcome::Hit)
    );
}

#[test]
fn a_call_of_another_role_is_refused() {
    let harness = harness();
    let mut plugin = load(&harness, Role::Judge, "hostile-trap", Limits::default());
    let error = plugin.select(&[vec![]]).expect_err("a judge cannot select");
    assert_eq!(error.cause, Cause::WrongRole);
    assert_eq!(error.call, "select");
}

#[test]
fn native_plugin_loads_only_as_native_and_is_checked() {
    let harness = harness();
    let library = native_library();
    let mut spec = PluginSpec::wasm(Role::Selector, library);
    spec.config = serde_json::json!({ "min_margin": 0.0 });

    // As a `wasm` source, a native library is not a component: refused, never dlopen'ed.
    let error = harness.runtime.load(&spec).err().expect("not a component");
    assert!(matches!(error.cause, Cause::Invalid(_)), "{error}");

    spec.source = PluginSource::Native(library.to_path_buf());
    let mut plugin = harness.runtime.load(&spec).expect("native load");
    assert_eq!(plugin.info().version, "native ABI 1");
    assert_eq!(plugin.info().limits, None);
    let scored = |score: f64| Candidate {
        score: Some(score),
        parsed: true,
        ..Candidate::default()
    };
    let pairs = plugin
        .select(&[vec![scored(0.1), Candidate::default(), scored(0.9)], vec![]])
        .expect("select");
    assert_eq!(
        pairs,
        vec![
            vec![Pair {
                chosen: 2,
                rejected: 0,
                weight: 1.0
            }],
            vec![]
        ]
    );

    // The wrong role is refused at load.
    let mut judge = spec.clone();
    judge.role = Role::Judge;
    let error = harness.runtime.load(&judge).err().expect("not a judge");
    assert!(
        error.to_string().contains("expected a native judge plugin"),
        "{error}"
    );
    assert!(
        error.to_string().contains("found a native selector plugin"),
        "{error}"
    );

    // A configuration error comes back as the plugin's error, naming the call.
    let mut bad = spec.clone();
    bad.config = serde_json::json!({ "min_margin": -1.0 });
    let error = harness.runtime.load(&bad).err().expect("bad config");
    assert_eq!(error.call, "configure");
    assert!(matches!(error.cause, Cause::Plugin(_)), "{error}");
}

#[test]
fn clocks_are_fixed() {
    let harness = harness();
    let mut plugin = load(&harness, Role::Judge, "hostile-clock", Limits::default());
    for _ in 0..2 {
        let outcomes = plugin
            .judge(&[request(&["attack", "x"])])
            .expect("clock probe");
        // 2024-01-01T00:00:00Z, and no monotonic time passes.
        assert_eq!(outcomes, vec![Ok(vec![Some(1_704_067_200.0), Some(0.0)])]);
    }
}

#[test]
fn time_in_model_calls_does_not_count_against_the_deadline() {
    let cache = tempfile::tempdir().expect("cache");
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        // A model that takes longer than the plugin's whole time limit.
        models: Some(Arc::new(EchoModels {
            delay: std::time::Duration::from_millis(600),
            ..EchoModels::default()
        })),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let limits = Limits {
        timeout_ms: 200,
        ..Limits::default()
    };
    let mut spec = spec(Role::Judge, "hostile-models", limits);
    spec.grants = vec![Grant::Models];
    let mut plugin = runtime.load(&spec).expect("load");
    let outcomes = plugin
        .judge(&[request(&["attack", "xy"])])
        .expect("a 600 ms model call inside a 200 ms plugin limit");
    // "reply to attack" and "reply to xy".
    assert_eq!(outcomes, vec![Ok(vec![Some(15.0), Some(11.0)])]);
}

/// What the random probe reads in a fresh runtime seeded with `seed`.
fn random_reading(seed: u64) -> Vec<ponder_plugin_runtime::types::JudgeOutcome> {
    let cache = tempfile::tempdir().expect("cache");
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        seed,
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let mut plugin = runtime
        .load(&spec(Role::Judge, "hostile-random", Limits::default()))
        .expect("load");
    plugin
        .judge(&[request(&["attack", "x"])])
        .expect("random probe")
}

#[test]
fn randomness_is_a_seeded_stream() {
    let first = random_reading(7);
    assert_eq!(first, random_reading(7), "same seed, same stream");
    assert_ne!(first, random_reading(8), "another seed, another stream");
}

/// A runtime serving `models`, and the budget guest loaded in it, granted, under `limits`.
fn budget_guest(
    models: EchoModels,
    limits: Limits,
) -> (Arc<EchoModels>, Plugin, tempfile::TempDir) {
    let cache = tempfile::tempdir().expect("cache");
    let models = Arc::new(models);
    let runtime = PluginRuntime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        models: Some(models.clone()),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let mut spec = spec(Role::Judge, "hostile-model-budget", limits);
    spec.grants = vec![Grant::Models];
    let plugin = runtime.load(&spec).expect("load");
    (models, plugin, cache)
}

/// Runs `attack` of the budget guest; the next call must be served.
fn budget_attack(
    plugin: &mut Plugin,
    attack: &str,
) -> Result<Vec<ponder_plugin_runtime::types::JudgeOutcome>, PluginError> {
    let result = plugin.judge(&[request(&["attack", attack])]);
    let outcomes = plugin
        .judge(&[request(&["ab", "abc"])])
        .unwrap_or_else(|error| panic!("the call after `{attack}` must work: {error}"));
    assert_eq!(outcomes, vec![Ok(vec![Some(2.0), Some(3.0)])]);
    result
}

/// The message of the plugin's per-request failure (a refused model call).
fn refusal(outcomes: &[ponder_plugin_runtime::types::JudgeOutcome]) -> String {
    match outcomes {
        [Err(failure)] => failure.to_string(),
        other => panic!("expected one refused request, got {other:?}"),
    }
}

#[test]
fn endless_generation_is_interrupted_by_the_call_wall_time() {
    let models = EchoModels {
        token_delay: std::time::Duration::from_millis(1),
        ..EchoModels::default()
    };
    let limits = Limits {
        call_timeout_ms: 300,
        ..Limits::default()
    };
    let (models, mut plugin, _cache) = budget_guest(models, limits);
    let started = std::time::Instant::now();
    let error = budget_attack(&mut plugin, "generate-forever").expect_err("must be interrupted");
    let elapsed = started.elapsed();
    assert_eq!(
        error.cause,
        Cause::Budget(BudgetExceeded::Time {
            call_timeout_ms: 300
        }),
        "{error}"
    );
    assert!(
        error.to_string().contains("limits.call_timeout_ms"),
        "{error}"
    );
    // Interrupted mid-generation: one model call of 64 x 64 tokens alone takes 4 s here.
    assert!(elapsed < std::time::Duration::from_secs(3), "{elapsed:?}");
    assert!(*models.tokens.lock().expect("lock") < 4096);
}

#[test]
fn endless_generation_is_interrupted_by_the_token_budget() {
    let limits = Limits {
        generated_tokens: 10_000,
        ..Limits::default()
    };
    let (models, mut plugin, _cache) = budget_guest(EchoModels::default(), limits);
    let error = budget_attack(&mut plugin, "generate-forever").expect_err("must be interrupted");
    assert_eq!(
        error.cause,
        Cause::Budget(BudgetExceeded::Tokens {
            generated_tokens: 10_000
        }),
        "{error}"
    );
    assert!(
        error.to_string().contains("limits.generated_tokens"),
        "{error}"
    );
    // Every token is counted; the guest's later calls add the well-behaved call's nothing.
    assert_eq!(*models.tokens.lock().expect("lock"), 10_000);
}

#[test]
fn model_requests_over_a_cap_are_refused_naming_the_limit() {
    let (models, mut plugin, _cache) = budget_guest(EchoModels::default(), Limits::default());
    let outcomes = budget_attack(&mut plugin, "huge-max-new-tokens").expect("refused, not failed");
    let message = refusal(&outcomes);
    assert!(message.contains("invalid-request"), "{message}");
    assert!(message.contains("max-new-tokens 1000000"), "{message}");
    assert!(
        message.contains("limits.max_new_tokens = 4096"),
        "{message}"
    );

    let outcomes = budget_attack(&mut plugin, "many-choices").expect("refused, not failed");
    let message = refusal(&outcomes);
    assert!(message.contains("200000 choices"), "{message}");
    assert!(message.contains("limits.choices = 1024"), "{message}");

    let outcomes = budget_attack(&mut plugin, "huge-batch").expect("refused, not failed");
    let message = refusal(&outcomes);
    assert!(message.contains("5000 requests in one call"), "{message}");
    assert!(message.contains("limits.model_batch = 1024"), "{message}");
    // None of them reached the model.
    assert!(models.calls.lock().expect("lock").is_empty());
}

#[test]
fn model_requests_per_call_are_counted_across_model_calls() {
    let limits = Limits {
        model_requests: 1_000,
        ..Limits::default()
    };
    let (models, mut plugin, _cache) = budget_guest(EchoModels::default(), limits);
    let outcomes = budget_attack(&mut plugin, "many-requests").expect("refused, not failed");
    let message = refusal(&outcomes);
    assert!(message.contains("1100 model requests"), "{message}");
    assert!(
        message.contains("limits.model_requests = 1000"),
        "{message}"
    );
    // Ten calls of 100 were served; the eleventh was refused. The count starts afresh per call.
    assert_eq!(models.calls.lock().expect("lock").len(), 10);
    budget_attack(&mut plugin, "many-requests").expect("refused again, not failed");
    assert_eq!(models.calls.lock().expect("lock").len(), 20);
}

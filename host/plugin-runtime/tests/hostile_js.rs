//! The sandbox against hostile plugins written in JavaScript: `tests/guests-js/hostile_js.js`,
//! one judge built with the JavaScript SDK (`sdk/js`, componentize-js 0.23.0 with `http` and
//! `fetch-event` disabled, from `scripts/plugin-langs.sh js`) whose configuration names the
//! attack, built here from source. Contained exactly as a Rust guest (`hostile.rs`): each attack
//! ends as a `PluginError` naming plugin, call and cause, or as the plugin's own failure, and the
//! same `Plugin` then serves a well-behaved call. The component (12 MB: SpiderMonkey) is compiled
//! once into a cache the tests share (see `interpreted/`).

mod interpreted;

use interpreted::{
    Harness, JS, assert_memory_cap, attacked, failed_requests, random_reading, request,
    trap_stderr, wasi_imports,
};
use ponder_manifest::{Grant, Limits};
use ponder_plugin_runtime::types::PluginFailure;
use ponder_plugin_runtime::{CacheOutcome, Cause, LogLevel};

#[test]
fn configured_state_survives_between_calls() {
    let harness = Harness::new(&JS, 7);
    let mut plugin = harness.load(&harness.spec("exception", Limits::default()));
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
    let harness = Harness::new(&JS, 7);
    let error = harness
        .runtime
        .load(&harness.spec("telepathy", Limits::default()))
        .err()
        .expect("an unknown attack must be refused");
    assert_eq!(error.call, "configure");
    assert_eq!(
        error.cause,
        Cause::Plugin(PluginFailure::InvalidConfig(
            "config key `attack`: unknown attack \"telepathy\"".into()
        ))
    );
}

#[test]
fn the_component_imports_no_network() {
    let imports = wasi_imports(&JS);
    assert!(
        imports
            .iter()
            .all(|name| !name.starts_with("wasi:http") && !name.starts_with("wasi:sockets")),
        "{imports:?}"
    );
}

#[test]
fn endless_loop_hits_the_deadline() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 300,
        ..Limits::default()
    };
    let (error, _) = attacked(&JS, "loop", limits);
    assert_eq!(error.cause, Cause::Deadline { timeout_ms: 300 });
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 200_000_000,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    let (error, _) = attacked(&JS, "loop", limits);
    assert_eq!(error.cause, Cause::OutOfFuel { fuel: 200_000_000 });
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_error() {
    let limits = Limits {
        memory_mib: 64,
        ..Limits::default()
    };
    let (error, _) = attacked(&JS, "alloc", limits);
    assert_memory_cap(&error, 64);
}

#[test]
fn deep_recursion_is_stopped_by_the_engine() {
    // SpiderMonkey's own guard: `too much recursion`, which traps like any uncaught error.
    let (error, _) = attacked(&JS, "recursion", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("too much recursion"), "{stderr}");
}

#[test]
fn huge_output_is_stopped_by_the_memory_cap() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 120_000,
        ..Limits::default()
    };
    let (error, _) = attacked(&JS, "output", limits);
    assert_memory_cap(&error, 256);
}

#[test]
fn an_exception_is_a_trap_with_the_stack() {
    let (error, harness) = attacked(&JS, "exception", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("RangeError: hostile JavaScript judge threw on purpose"),
        "{stderr}"
    );
    assert!(
        harness.logged(LogLevel::Warn, "RangeError"),
        "the stack must reach the log"
    );
}

#[test]
fn a_thrown_plugin_failure_fails_the_requests_only() {
    let harness = Harness::new(&JS, 7);
    let message = failed_requests(&harness, &harness.spec("failure", Limits::default()));
    assert_eq!(message, "hostile JavaScript judge failed on purpose");
}

#[test]
fn non_finite_scores_are_invalid_output() {
    let (error, _) = attacked(&JS, "nan", Limits::default());
    match &error.cause {
        Cause::InvalidOutput(message) => {
            assert!(message.contains("inf is not finite"), "{message}")
        }
        other => panic!("expected invalid output, got {other}"),
    }
}

#[test]
fn wrong_number_of_scores_is_invalid_output() {
    let (error, _) = attacked(&JS, "wrong-length", Limits::default());
    assert_eq!(
        error.cause,
        Cause::InvalidOutput("request 0: returned 1 scores for 2 responses".into())
    );
}

/// `fetch` is the engine's only path to files and the network; without wasi:http it traps.
fn assert_fetch_traps(attack: &str) {
    let (error, _) = attacked(&JS, attack, Limits::default());
    match &error.cause {
        Cause::Trap { message, stderr } => {
            assert!(message.contains("unreachable"), "{message}");
            assert!(!stderr.contains("root:"), "file content leaked: {stderr}");
        }
        other => panic!("expected a trap, got {other}"),
    }
}

#[test]
fn reading_a_file_is_denied() {
    assert_fetch_traps("read-file");
}

#[test]
fn opening_a_socket_is_denied() {
    assert_fetch_traps("socket");
}

#[test]
fn no_environment_api_exists() {
    let (error, _) = attacked(&JS, "env", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("process: undefined, require: undefined, Deno: undefined"),
        "{stderr}"
    );
}

#[test]
fn models_without_a_grant_are_refused() {
    let harness = Harness::new(&JS, 7);
    let message = failed_requests(&harness, &harness.spec("models", Limits::default()));
    assert!(message.contains("not granted"), "{message}");
    assert!(
        harness.models.calls.lock().expect("lock").is_empty(),
        "an ungranted plugin must never reach the models"
    );
}

#[test]
fn granted_models_are_served() {
    let harness = Harness::new(&JS, 7);
    let mut spec = harness.spec("models", Limits::default());
    spec.grants = vec![Grant::Models];
    let mut plugin = harness.load(&spec);
    let outcomes = plugin
        .judge(&[request(&["attack", "xy"])])
        .expect("granted model call");
    assert_eq!(outcomes, vec![Ok(vec![Some(15.0), Some(11.0)])]);
    assert_eq!(
        *harness.models.calls.lock().expect("lock"),
        vec!["generate 2".to_string()]
    );
}

#[test]
fn clocks_are_fixed() {
    let harness = Harness::new(&JS, 7);
    let mut plugin = harness.load(&harness.spec("clock", Limits::default()));
    let outcomes = plugin.judge(&[request(&["attack", "x"])]).expect("judge");
    assert_eq!(outcomes, vec![Ok(vec![Some(1_704_067_200.0), Some(0.0)])]);
}

#[test]
fn randomness_is_the_hosts_seeded_stream() {
    assert_eq!(random_reading(&JS, 7), random_reading(&JS, 7));
    // `crypto.getRandomValues` reads the host's stream; `Math.random` is seeded from it.
    let (seven, eight) = (random_reading(&JS, 7), random_reading(&JS, 8));
    assert_eq!(seven.len(), 2);
    assert_ne!(seven[1], eight[1]);
    assert_ne!(seven[0], eight[0]);
}

//! The sandbox against hostile plugins written in Python: `tests/guests-py/hostile_py.py`, one
//! judge built with the Python SDK (`sdk/python`, componentize-py 0.25.1 from
//! `scripts/plugin-langs.sh python`) whose configuration names the attack, built here from
//! source. An interpreted guest must be contained exactly as a Rust guest (`hostile.rs`): each
//! attack ends as a `PluginError` naming plugin, call and cause, or as the plugin's own failure,
//! and the same `Plugin` then serves a well-behaved call. The component (18 MB: CPython and the
//! standard library) is compiled once into a cache the tests share (see `interpreted/`).

mod interpreted;

use interpreted::{
    Harness, PYTHON, assert_memory_cap, attacked, failed_requests, random_reading, request,
    trap_stderr, wasi_imports,
};
use ponder_manifest::{Grant, Limits};
use ponder_plugin_runtime::types::PluginFailure;
use ponder_plugin_runtime::{CacheOutcome, Cause, LogLevel};

#[test]
fn configured_state_survives_between_calls() {
    let harness = Harness::new(&PYTHON, 7);
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
    let harness = Harness::new(&PYTHON, 7);
    let error = harness
        .runtime
        .load(&harness.spec("telepathy", Limits::default()))
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
    let (error, _) = attacked(&PYTHON, "loop", limits);
    assert_eq!(error.cause, Cause::Deadline { timeout_ms: 300 });
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let limits = Limits {
        fuel: 200_000_000,
        timeout_ms: 600_000,
        ..Limits::default()
    };
    let (error, _) = attacked(&PYTHON, "loop", limits);
    assert_eq!(error.cause, Cause::OutOfFuel { fuel: 200_000_000 });
}

#[test]
fn memory_growth_past_the_cap_is_a_memory_error() {
    let limits = Limits {
        memory_mib: 64,
        ..Limits::default()
    };
    let (error, _) = attacked(&PYTHON, "alloc", limits);
    assert_memory_cap(&error, 64);
}

#[test]
fn deep_recursion_is_stopped() {
    // Python's own guard: a RecursionError, which traps like any uncaught exception.
    let (error, _) = attacked(&PYTHON, "recursion-limit", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("RecursionError"), "{stderr}");
    // Past the guard, Python frames live on the heap: the memory cap stops them.
    let limits = Limits {
        memory_mib: 64,
        fuel: u64::MAX / 2,
        timeout_ms: 120_000,
        ..Limits::default()
    };
    let (error, _) = attacked(&PYTHON, "recursion", limits);
    assert_memory_cap(&error, 64);
    // Recursion in the interpreter's C code overflows the WebAssembly stack.
    let (error, _) = attacked(&PYTHON, "c-recursion", Limits::default());
    assert_eq!(error.cause, Cause::StackOverflow);
}

#[test]
fn huge_output_is_stopped_by_the_memory_cap() {
    let (error, _) = attacked(&PYTHON, "output", Limits::default());
    assert_memory_cap(&error, 256);
}

#[test]
fn an_exception_is_a_trap_with_the_traceback() {
    let (error, harness) = attacked(&PYTHON, "exception", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("ValueError: hostile Python judge raised on purpose"),
        "{stderr}"
    );
    assert!(stderr.contains("hostile_py.py"), "{stderr}");
    assert!(
        harness.logged(LogLevel::Warn, "ValueError"),
        "the traceback must reach the log"
    );
}

#[test]
fn a_raised_plugin_failure_fails_the_requests_only() {
    let harness = Harness::new(&PYTHON, 7);
    let message = failed_requests(&harness, &harness.spec("failure", Limits::default()));
    assert_eq!(message, "hostile Python judge failed on purpose");
}

#[test]
fn non_finite_scores_are_invalid_output() {
    let (error, _) = attacked(&PYTHON, "nan", Limits::default());
    match &error.cause {
        Cause::InvalidOutput(message) => {
            assert!(message.contains("inf is not finite"), "{message}")
        }
        other => panic!("expected invalid output, got {other}"),
    }
}

#[test]
fn wrong_number_of_scores_is_invalid_output() {
    let (error, _) = attacked(&PYTHON, "wrong-length", Limits::default());
    assert_eq!(
        error.cause,
        Cause::InvalidOutput("request 0: returned 1 scores for 2 responses".into())
    );
}

#[test]
fn reading_a_file_is_denied() {
    let (error, _) = attacked(&PYTHON, "read-file", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("reading /etc/passwd"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(!stderr.contains("root:"), "file content leaked: {stderr}");
}

#[test]
fn opening_a_socket_is_denied() {
    // CPython's WASI build imports wasi:sockets; the host serves it with every socket refused.
    assert!(
        wasi_imports(&PYTHON).contains(&"wasi:sockets/tcp-create-socket".to_string()),
        "{:?}",
        wasi_imports(&PYTHON)
    );
    let (error, _) = attacked(&PYTHON, "socket", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(stderr.contains("connecting to 127.0.0.1:80"), "{stderr}");
    assert!(stderr.contains("PermissionError"), "{stderr}");
}

#[test]
fn the_environment_and_arguments_are_empty() {
    let (error, _) = attacked(&PYTHON, "env", Limits::default());
    let stderr = trap_stderr(&error);
    assert!(
        stderr.contains("reading the environment: {} argv []"),
        "{stderr}"
    );
}

#[test]
fn models_without_a_grant_are_refused() {
    let harness = Harness::new(&PYTHON, 7);
    let message = failed_requests(&harness, &harness.spec("models", Limits::default()));
    assert!(message.contains("not granted"), "{message}");
    assert!(
        harness.models.calls.lock().expect("lock").is_empty(),
        "an ungranted plugin must never reach the models"
    );
}

#[test]
fn granted_models_are_served() {
    let harness = Harness::new(&PYTHON, 7);
    let mut spec = harness.spec("models", Limits::default());
    spec.grants = vec![Grant::Models];
    let mut plugin = harness.load(&spec);
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
    let harness = Harness::new(&PYTHON, 7);
    let mut plugin = harness.load(&harness.spec("clock", Limits::default()));
    let outcomes = plugin.judge(&[request(&["attack", "x"])]).expect("judge");
    assert_eq!(outcomes, vec![Ok(vec![Some(1_704_067_200.0), Some(0.0)])]);
}

#[test]
fn randomness_is_the_hosts_seeded_stream() {
    assert_eq!(random_reading(&PYTHON, 7), random_reading(&PYTHON, 7));
    // Both `random` (seeded from the host's stream when the instance starts, not when the
    // component was built) and `os.urandom` follow the seed.
    let (seven, eight) = (random_reading(&PYTHON, 7), random_reading(&PYTHON, 8));
    assert_eq!(seven.len(), 2);
    assert_ne!(seven[0], eight[0]);
    assert_ne!(seven[1], eight[1]);
}

//! A native plugin built against another version of the native ABI is refused at load, with an
//! error naming both versions, before any of its functions other than
//! `ponder_plugin_abi_version` is called.
//!
//! The libraries are built here from generated source with `rustc` (like wasmtime's tests build
//! their guests), so the test needs nothing prebuilt: a cdylib that exports the ABI's two
//! argument-less functions, reporting the version it is told to.

use ponder_manifest::{PluginSource, PluginSpec, Role};
use ponder_plugin_runtime::native::NATIVE_ABI_VERSION;
use ponder_plugin_runtime::{Cause, PluginRuntime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds a selector library reporting native ABI `version` into `dir`; returns its path.
fn library_reporting(dir: &Path, version: u32) -> PathBuf {
    let source = dir.join(format!("abi{version}.rs"));
    // No `ponder_plugin_configure` and no calls: a library the host loads must be refused
    // on its version alone, and one it accepts fails on the missing symbol instead.
    std::fs::write(
        &source,
        format!(
            "#[no_mangle]\n\
             pub extern \"C\" fn ponder_plugin_abi_version() -> u32 {{ {version} }}\n\
             #[no_mangle]\n\
             pub extern \"C\" fn ponder_plugin_role() -> u32 {{ 2 }}\n"
        ),
    )
    .expect("write the library's source");
    let library = dir.join(format!(
        "{}abi{version}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let status = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "cdylib",
            "-C",
            "opt-level=0",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&library)
        .status()
        .expect("running rustc to build a test library");
    assert!(status.success(), "building {} failed", source.display());
    library
}

fn native_selector(library: &Path) -> PluginSpec {
    let mut spec = PluginSpec::wasm(Role::Selector, library);
    spec.source = PluginSource::Native(library.to_path_buf());
    spec
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    })
    .expect("runtime")
}

#[test]
fn a_library_of_another_native_abi_version_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let runtime = runtime();
    for other in [NATIVE_ABI_VERSION + 1, 0] {
        let library = library_reporting(dir.path(), other);
        let error = runtime
            .load(&native_selector(&library))
            .err()
            .expect("another ABI version is refused");
        assert_eq!(error.call, "load", "{error}");
        assert!(
            matches!(error.cause, Cause::IncompatibleVersion { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&format!(
                "expected native ABI version {NATIVE_ABI_VERSION} (exactly)"
            )) && !message.contains("major.minor"),
            "{message}"
        );
        assert!(
            message.contains(&format!("found native ABI version {other}")),
            "{message}"
        );
        assert!(message.contains(&format!("abi{other}")), "{message}");
    }
}

#[test]
fn a_library_of_this_abi_version_gets_past_the_version_check() {
    // The control: the same library at the host's version loads and is refused only later, for
    // the function it lacks, so the refusal above is the version check's.
    let dir = tempfile::tempdir().expect("temporary directory");
    let library = library_reporting(dir.path(), NATIVE_ABI_VERSION);
    let error = runtime()
        .load(&native_selector(&library))
        .err()
        .expect("a library without ponder_plugin_configure cannot be configured");
    assert!(
        !matches!(error.cause, Cause::IncompatibleVersion { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("ponder_plugin_configure"),
        "{error}"
    );
}

//! Helpers of the end-to-end tests: where the workspace, the `ponder` binary and the built
//! plugins are, and a runner that captures a command's outcome.

pub mod served;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The release `ponder` binary (`$PONDER_BIN` overrides). Panics with the command that builds it
/// when it is missing.
pub fn ponder_binary() -> PathBuf {
    let binary = std::env::var_os("PONDER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/ponder"));
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build --release -p ponder-cli` (scripts/test.sh does)",
        binary.display()
    );
    binary
}

/// A first-party component built by scripts/build-plugins.sh. Panics with the command that
/// builds it when it is missing.
pub fn plugin(name: &str) -> PathBuf {
    let path = root().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the plugins with scripts/build-plugins.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The `[plugins.ROLE]` tables of a test manifest, one per `(role, component, config)`;
/// `config` is an inline TOML table (`{ rho = 0.2 }`), empty for none.
pub fn plugin_tables(plugins: &[(&str, &Path, &str)]) -> String {
    let mut tables = String::new();
    for (role, component, config) in plugins {
        tables.push_str(&format!(
            "\n[plugins.{role}]\nwasm = \"{}\"\n",
            component.display()
        ));
        if !config.is_empty() {
            tables.push_str(&format!("config = {config}\n"));
        }
    }
    tables
}

/// The plugins of most test runs: the generic thought template, the constraints judge (loose)
/// and the length-controlled selector (ρ = 0.2), as [`plugin_tables`] writes them.
pub fn tpo_plugin_tables() -> String {
    plugin_tables(&[
        ("template", &plugin("thought-generic"), ""),
        (
            "judge",
            &plugin("judge-constraints"),
            r#"{ mode = "loose" }"#,
        ),
        (
            "selector",
            &plugin("select-length-controlled"),
            "{ rho = 0.2 }",
        ),
    ])
}

/// A guest plugin of `tests/guests/` (hostile plugins and test templates, a workspace of its
/// own), e.g. `hostile-marked-judge`. The first call builds them all with `cargo build --release
/// --target wasm32-wasip2` into `target/guests`: a target directory of its own, so the build does
/// not wait on the lock of the running `cargo test`.
pub fn test_guest(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = root();
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
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
            .expect("running cargo to build tests/guests");
        assert!(status.success(), "building tests/guests failed");
        root.join("target/guests/wasm32-wasip2/release")
    });
    dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

/// What a command did.
#[derive(Debug)]
pub struct Outcome {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

/// Runs `ponder` with the arguments from the workspace root, with a private component cache.
pub fn ponder(args: &[&str], cache: &Path) -> Outcome {
    let output = Command::new(ponder_binary())
        .args(args)
        .current_dir(root())
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("running ponder");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

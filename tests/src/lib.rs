//! Helpers of the end-to-end tests: where the workspace, the `ponder` binary and the built
//! plugins are, and a runner that captures a command's outcome.

use std::path::{Path, PathBuf};
use std::process::Command;

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

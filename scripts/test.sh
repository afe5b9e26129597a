#!/usr/bin/env bash
# The whole test suite: set-up (idempotent; it also installs the pinned toolchains of plugins in
# Python and JavaScript), the first-party plugins built to WebAssembly, the native tests of the
# Python and JavaScript SDKs and plugins, the `ponder` binary, then every test of the workspace in
# release mode (tensor code is orders of magnitude slower unoptimised; one profile also keeps a
# single build for tests and the binary).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
scripts/build-plugins.sh
scripts/test-plugin-langs.sh
# llama.cpp's server for tests/tests/served_models.rs: built once (minutes), then reused
scripts/llama-server.sh >/dev/null
cargo build --release --locked -p ponder-cli
cargo test --release --locked --workspace "$@"
scripts/ifeval/run.sh

#!/usr/bin/env bash
# Builds {{name}}.wasm from __CRATE_NAME__.js with the ponder JavaScript SDK (componentize-js).
set -euo pipefail
cd "$(dirname "$0")"
"{{sdk_path}}/js/build.sh" __CRATE_NAME__.js -o {{name}}.wasm "$@"

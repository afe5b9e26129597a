#!/usr/bin/env bash
# Builds {{name}}.wasm from __CRATE_NAME__.py with the ponder Python SDK (componentize-py).
set -euo pipefail
cd "$(dirname "$0")"
"{{sdk_path}}/python/build.sh" __CRATE_NAME__.py -o {{name}}.wasm "$@"

#!/usr/bin/env bash
# Builds a JavaScript ponder plugin into a WebAssembly component:
#   sdk/js/build.sh my_selector.js -o my_selector.wasm
# Installs the pinned componentize-js into the ponder checkout's target/js-tools first (once; see
# scripts/plugin-langs.sh), then runs build.mjs.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
"$sdk/../../scripts/plugin-langs.sh" js
exec node "$sdk/build.mjs" "$@"

#!/usr/bin/env bash
# Builds a Python ponder plugin into a WebAssembly component:
#   sdk/python/build.sh my_judge.py -o my_judge.wasm
# Installs the pinned componentize-py into the ponder checkout's target/py-venv first (once; see
# scripts/plugin-langs.sh), then runs `python -m ponder_plugin.build` with this SDK.
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
ponder=$(cd "$sdk/../.." && pwd)
"$ponder/scripts/plugin-langs.sh" python
PYTHONPATH="$sdk${PYTHONPATH:+:$PYTHONPATH}" exec "$ponder/target/py-venv/bin/python" -m ponder_plugin.build "$@"

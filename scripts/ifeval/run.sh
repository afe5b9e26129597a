#!/usr/bin/env bash
# Compares the judge-constraints plugin with IFEval's reference checkers (PyPI `if-verifiable`):
# makes a venv under target/ifeval-venv with the pinned reference (idempotent, quiet), then runs
# scripts/ifeval/compare.py on the built binary and component. Expects target/release/ponder and
# target/plugins/judge-constraints.wasm (scripts/test.sh builds both first).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

venv=target/ifeval-venv
# `if-verifiable` without its dependencies: they include `datasets` (for downloading the
# benchmark), which the checkers never import. The versions are pinned because the plugin's
# Unicode tables (src/py_tables.rs) are generated from this `regex`.
pins=(nltk==3.10.4 regex==2026.11.19 langdetect==1.0.9 immutabledict==4.3.1)
stamp="$venv/.pins"
want="if-verifiable==0.1.2 ${pins[*]}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps if-verifiable==0.1.2
  echo "$want" > "$stamp"
fi
"$venv/bin/python" scripts/ifeval/compare.py --show 20 "$@"

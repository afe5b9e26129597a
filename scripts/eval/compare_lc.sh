#!/usr/bin/env bash
# Checks ponder-eval's length-controlled win rate against AlpacaEval's own GLM (PyPI
# `alpaca-eval`): makes a venv under target/alpaca-eval-venv with the pinned package (idempotent,
# quiet), re-runs scripts/eval/compare_lc.py against the committed fixture
# (host/eval/tests/fixtures/alpaca_eval_lc.json), then runs ponder-eval's reference tests on it.
# `--update` rewrites the fixture from the package instead of checking it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

venv=target/alpaca-eval-venv
# The numerical stack is pinned, so that the fixture is reproducible (scikit-learn 1.10 also drops
# the `penalty` argument the package passes); `pkg_resources`, which the package imports, left
# setuptools in version 81. The package's other dependencies (API clients, `datasets`) are
# imported by its modules but play no part in the fit.
pins=(numpy==2.4.6 pandas==3.1.1 scipy==1.17.1 scikit-learn==1.9.1 patsy==1.0.3 "setuptools<81")
stamp="$venv/.pins"
want="alpaca-eval==0.6.6 ${pins[*]}"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" alpaca-eval==0.6.6
  echo "$want" > "$stamp"
fi
if [ "${1:-}" = "--update" ]; then
  "$venv/bin/python" scripts/eval/compare_lc.py
else
  "$venv/bin/python" scripts/eval/compare_lc.py --check
fi
cargo test --release -p ponder-eval --test reference_fixtures

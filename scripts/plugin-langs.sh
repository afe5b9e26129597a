#!/usr/bin/env bash
# Installs the pinned toolchains that build ponder plugins written in Python and JavaScript,
# into target/ (idempotent, quiet when already there):
#   python: target/py-venv, a venv with componentize-py (PyPI)
#   js:     target/js-tools, @bytecodealliance/componentize-js and rolldown (npm), as locked by
#           sdk/js/tools/package-lock.json
# Usage: scripts/plugin-langs.sh [python|js]...   (no argument: both)
# Called by scripts/build-plugins.sh and by the tests that build Python and JavaScript guests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

componentize_py=componentize-py==0.25.1
componentize_js=@bytecodealliance/componentize-js@0.23.0

python_tools() {
  local venv=target/py-venv stamp=target/py-venv/.pins
  if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$componentize_py" ]; then
    return
  fi
  echo "plugin-langs: installing $componentize_py into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$componentize_py"
  echo "$componentize_py" > "$stamp"
}

js_tools() {
  # The versions are pinned by sdk/js/tools/package-lock.json (`npm ci` installs exactly it).
  local dir=target/js-tools stamp=target/js-tools/.pins
  local want
  want=$(cat sdk/js/tools/package.json sdk/js/tools/package-lock.json | sha256sum | cut -d' ' -f1)
  if [ -d "$dir/node_modules" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  if ! command -v npm >/dev/null; then
    echo "plugin-langs: npm (Node.js 20 or later) is needed for JavaScript plugins" >&2
    exit 1
  fi
  echo "plugin-langs: installing $componentize_js and rolldown into $dir (npm ci)"
  mkdir -p "$dir"
  cp sdk/js/tools/package.json sdk/js/tools/package-lock.json "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
}

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python js)
for lang in "${langs[@]}"; do
  case "$lang" in
    python) python_tools ;;
    js) js_tools ;;
    *) echo "plugin-langs: unknown language \`$lang\` (expected python or js)" >&2; exit 2 ;;
  esac
done

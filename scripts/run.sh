#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct): set-up, build, then a short
# Thought Preference Optimization run, `ponder train examples/quick-tpo.toml`: two iterations of
# sampling with the thought prompt, judging the responses, selecting preference pairs and DPO,
# each leaving its files in runs/quick-tpo/. Rerunning resumes (or skips) what is done.
#
# Arguments go to `ponder train` (e.g. `--restart-from 1` to run it again from the start).
# A longer run, shaped like the paper's: target/release/ponder train examples/smollm2-tpo.toml
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/setup.sh
scripts/build-plugins.sh
cargo build --release --locked -p ponder-cli

target/release/ponder plugins check examples/quick-tpo.toml
target/release/ponder train examples/quick-tpo.toml "$@"

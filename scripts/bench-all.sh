#!/usr/bin/env bash
# Every README benchmark figure in one back-to-back run: each ponder benchmark, then its peer
# (../shared/peers, set up by its setup.sh and build_llamacpp.sh under $PEERS_ROOT), nothing
# else running. Logs go to $OUT (default: bench-results/<date>/); the load average is recorded
# before every step. About 30 minutes on 2 cores.
# Usage: scripts/bench-all.sh   (after scripts/run.sh has built ponder and fetched the model)
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS_ROOT=${PEERS_ROOT:-/tmp/peers}
SHARED=${SHARED:-../shared/peers}
OUT=${OUT:-bench-results/$(date -u +%Y-%m-%dT%H%M)}
PONDER=target/release/ponder
export PEERS_HF_DIR=${PEERS_HF_DIR:-$PEERS_ROOT/smollm2-hf}
GGUF=models/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$OUT"
[ -x "$PONDER" ] || { echo "no $PONDER: build it first (scripts/run.sh)" >&2; exit 1; }
[ -x "$PEERS_ROOT/venv/bin/python" ] || { echo "no peers venv under $PEERS_ROOT: run $SHARED/setup.sh" >&2; exit 1; }
{ echo "commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')"; date -u; nproc; } > "$OUT/about.txt"
step() {
  local name=$1; shift
  echo "== $name: $*" | tee -a "$OUT/about.txt"
  echo "   load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/about.txt"
  "$@" > "$OUT/$name.out" 2> "$OUT/$name.err" || echo "   FAILED (see $OUT/$name.err)" | tee -a "$OUT/about.txt"
}
py="$PEERS_ROOT/venv/bin/python"
step generate-fixed "$PONDER" bench generate --runs 3
step peer-hf-fixed "$py" "$SHARED/bench_generate.py" --backend hf --mode fixed --runs 1
if [ -x "$PEERS_ROOT/llama.cpp/build/bin/llama-batched-bench" ]; then
  step peer-llamacpp-batched "$PEERS_ROOT/llama.cpp/build/bin/llama-batched-bench" -m "$GGUF" \
    -c 16384 -b 2048 -ub 512 -npp 42 -ntg 256 -npl 32 -t 2 -tb 2
fi
step generate-natural "$PONDER" bench generate --mode natural --runs 3
step peer-hf-natural "$py" "$SHARED/bench_generate.py" --backend hf --mode natural --runs 1
step score "$PONDER" bench score --runs 3
step peer-score "$py" scripts/peers/bench_score.py --runs 3 --shared "$SHARED"
step dpo "$PONDER" bench dpo
step peer-dpo "$py" "$SHARED/bench_dpo.py"
step dpo-lora "$PONDER" bench dpo --lora-rank 16
step peer-dpo-lora "$py" "$SHARED/bench_dpo.py" --lora
step dpo-no-checkpointing "$PONDER" bench dpo --no-gradient-checkpointing
echo "done: $OUT" | tee -a "$OUT/about.txt"

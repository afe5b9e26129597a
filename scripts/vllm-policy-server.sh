#!/usr/bin/env bash
# Serves the policy on vLLM's OpenAI-compatible server for `[sample] engine`, and is the
# `[sample.reload] command` that gives the server each new policy (full weights: vLLM loads the
# Hugging Face directory ponder writes for each iteration; a reload is a restart).
#
#   scripts/vllm-policy-server.sh start MODEL_DIR PORT   # serve iteration 1's policy
#   scripts/vllm-policy-server.sh stop
#   scripts/vllm-policy-server.sh                        # as the reload hook (PONDER_MODEL,
#                                                        # PONDER_ENGINE_URL set by ponder)
#
# The served name is always "policy" (`[models.NAME] model = "policy"`). The policy must be a
# Hugging Face directory: for a GGUF seed, serve the directory it converts to (e.g. with
# transformers, or ../shared/peers/convert_gguf_to_hf.py) for iteration 1.
#
# VLLM: the `vllm` executable (default: `vllm` on PATH). VLLM_ARGS: more flags (default
# "--dtype float32 --max-model-len 2048"; on a GPU box e.g. "--dtype bfloat16
# --gpu-memory-utilization 0.9"). State (pid, log) in PONDER_VLLM_POLICY_DIR (default
# target/vllm-policy).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${PONDER_VLLM_POLICY_DIR:-$root/target/vllm-policy}
vllm=${VLLM:-vllm}
args=${VLLM_ARGS:---dtype float32 --max-model-len 2048}
mkdir -p "$state"

# shellcheck source=scripts/policy-server-lib.sh
. "$root/scripts/policy-server-lib.sh"

start() {
  local model=$1 port=$2
  [ -d "$model" ] || { echo "vLLM serves Hugging Face directories; $model is not one" >&2; exit 1; }
  # shellcheck disable=SC2086 # VLLM_ARGS is a list of flags
  launch "vLLM serving $model on port $port" \
    "$vllm" serve "$model" --served-model-name policy --host 127.0.0.1 --port "$port" $args
}

case ${1:-reload} in
  start) stop; start "$2" "$3" ;;
  stop) stop ;;
  reload)
    : "${PONDER_MODEL:?run by ponder as [sample.reload] command (PONDER_MODEL unset)}"
    : "${PONDER_ENGINE_URL:?PONDER_ENGINE_URL unset}"
    stop
    start "$PONDER_MODEL" "$(port_of "$PONDER_ENGINE_URL")"
    ;;
  *) echo "usage: $0 [start MODEL_DIR PORT | stop]" >&2; exit 2 ;;
esac

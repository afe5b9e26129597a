#!/usr/bin/env bash
# Serves the policy on llama.cpp's OpenAI-compatible server for `[sample] engine`, and is the
# `[sample.reload] command` that gives the server each new policy.
#
#   scripts/llama-policy-server.sh start MODEL.gguf PORT   # start serving (iteration 1's policy)
#   scripts/llama-policy-server.sh stop                    # stop the server
#   scripts/llama-policy-server.sh                         # as the reload hook: ponder sets
#                                                          # PONDER_MODEL, PONDER_SEED_MODEL,
#                                                          # PONDER_ENGINE_URL
#
# As the hook it writes the new policy (a Hugging Face directory) as GGUF beside it with
# `ponder export-gguf --like $PONDER_SEED_MODEL` (llama.cpp loads GGUF only), stops the running
# server and starts one on the new file, on the port of PONDER_ENGINE_URL; ponder then waits until
# it answers. llama.cpp's server cannot swap weights in place, so a reload is a restart.
#
# State (pid, the server's log, its flags) lives in PONDER_LLAMA_POLICY_DIR
# (default target/llama-policy). Flags for llama-server: LLAMA_SERVER_ARGS (default
# "-c 4096 -np 4 -t 2"). The server binary: PONDER_LLAMA_SERVER, else the one
# scripts/llama-server.sh builds. The ponder binary: PONDER_BIN, else target/release/ponder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
state=${PONDER_LLAMA_POLICY_DIR:-$root/target/llama-policy}
server=${PONDER_LLAMA_SERVER:-$root/target/llama-server/bin/llama-server}
ponder=${PONDER_BIN:-$root/target/release/ponder}
args=${LLAMA_SERVER_ARGS:--c 4096 -np 4 -t 2}
mkdir -p "$state"

# shellcheck source=scripts/policy-server-lib.sh
. "$root/scripts/policy-server-lib.sh"

start() {
  local model=$1 port=$2
  [ -x "$server" ] || { echo "llama-server not found at $server (run scripts/llama-server.sh)" >&2; exit 1; }
  [ -f "$model" ] || { echo "model $model not found" >&2; exit 1; }
  # shellcheck disable=SC2086 # LLAMA_SERVER_ARGS is a list of flags
  launch "llama-server serving $model on port $port" \
    "$server" -m "$model" --host 127.0.0.1 --port "$port" $args
}

case ${1:-reload} in
  start) stop; start "$2" "$3" ;;
  stop) stop ;;
  reload)
    : "${PONDER_MODEL:?run by ponder as [sample.reload] command (PONDER_MODEL unset)}"
    : "${PONDER_ENGINE_URL:?PONDER_ENGINE_URL unset}"
    if [ -d "$PONDER_MODEL" ]; then
      : "${PONDER_SEED_MODEL:?PONDER_SEED_MODEL unset}"
      gguf="${PONDER_MODEL%/}.gguf"
      "$ponder" export-gguf "$PONDER_MODEL" --like "$PONDER_SEED_MODEL" --out "$gguf"
    else
      gguf=$PONDER_MODEL
    fi
    stop
    start "$gguf" "$(port_of "$PONDER_ENGINE_URL")"
    ;;
  *) echo "usage: $0 [start MODEL.gguf PORT | stop]" >&2; exit 2 ;;
esac

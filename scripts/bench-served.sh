#!/usr/bin/env bash
# Throughput of ponder driving llama.cpp's server (`[sample] engine`) against that server's own
# batched benchmark (`llama-batched-bench`) on the same GGUF, threads and parallel sequences:
# does ponder keep the engine busy?
#
#   scripts/bench-served.sh [SLOTS]      # SLOTS parallel sequences (default 4)
#
# ponder side: the sampling phase of `ponder train` on the built-in verifiable instructions
# (16 instructions × K = 4, natural lengths up to 256 tokens, the generic thought template, no
# thought budget: one request per sample), `concurrency = SLOTS` against `llama-server -np SLOTS
# -t 2`; the run is stopped once the phase has written its samples (no DPO).
# Peer: `llama-batched-bench -npl SLOTS -npp P -ntg G -t 2 -tb 2` with P and G the mean prompt
# and output lengths of ponder's samples, so both decode the same number of tokens per sequence.
# Needs: target/release/ponder, target/llama-server/bin/llama-server (scripts/llama-server.sh),
# llama-batched-bench (LLAMA_BATCHED_BENCH, default $PEERS_ROOT/llama.cpp/build/bin/ from
# ../shared/peers/build_llamacpp.sh). Run on an otherwise idle machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
slots=${1:-4}
ponder=$root/target/release/ponder
model=$root/models/SmolLM2-135M-Instruct.Q4_1.gguf
bench=${LLAMA_BATCHED_BENCH:-${PEERS_ROOT:-/tmp/peers}/llama.cpp/build/bin/llama-batched-bench}
for file in "$ponder" "$model" "$bench"; do
  [ -e "$file" ] || { echo "missing: $file (see the comment at the top of $0)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'PONDER_LLAMA_POLICY_DIR=$work/llama "$root/scripts/llama-policy-server.sh" stop; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export PONDER_LLAMA_POLICY_DIR=$work/llama LLAMA_SERVER_ARGS="-c $((slots * 1024)) -np $slots -t 2"
"$root/scripts/llama-policy-server.sh" start "$model" "$port"

cat > "$work/bench.toml" <<TOML
[run]
out = "$work/run"
seed = 5
iterations = 1
[model]
path = "$model"
[data]
train = "$root/data/verifiable/train.jsonl"
per_iteration = 16
[sample]
k = 4
temperature = 0.8
top_p = 0.95
max_new_tokens = 256
engine = "policy"
[sample.reload]
command = ["true"]
ready_timeout_s = 120
[models.policy]
url = "http://127.0.0.1:$port/v1"
model = "policy"
concurrency = $slots
[plugins.template]
wasm = "$root/target/plugins/thought-generic.wasm"
[plugins.judge]
wasm = "$root/target/plugins/judge-constraints.wasm"
[plugins.selector]
wasm = "$root/target/plugins/select-best-worst.wasm"
TOML

"$ponder" train "$work/bench.toml" 2>"$work/train.log" &
train=$!
while [ ! -f "$work/run/iter-1/samples.jsonl" ] && kill -0 "$train" 2>/dev/null; do sleep 0.5; done
kill "$train" 2>/dev/null || true
wait "$train" 2>/dev/null || true
line=$(grep "sample on" "$work/train.log" || { cat "$work/train.log" >&2; exit 1; })
echo "ponder: $line"
read -r samples tokens seconds output_mean < <(python3 - "$work/run/iter-1/samples.jsonl" "$work/train.log" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
outs = [o for r in rows for o in r["outputs"]]
log = open(sys.argv[2]).read()
m = re.search(r"(\d+) tokens in ([\d.]+) s", log)
print(len(outs), m.group(1), m.group(2), round(sum(o["tokens"] for o in outs) / len(outs)))
PY
)
# The prompt length: the chat template around the rendered thought prompt, as ponder encoded it.
prompt_mean=$(python3 - "$work/run/iter-1/samples.jsonl" "$ponder" "$model" <<'PY'
import json, subprocess, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
lengths = []
for r in rows:
    messages = r["prompt"]
    text = messages[-1]["content"]
    ids = json.loads(subprocess.run([sys.argv[2], "tokenize", "--model", sys.argv[3], "--chat", text],
                                    capture_output=True, text=True, check=True).stdout)
    lengths.append(len(ids))
print(round(sum(lengths) / len(lengths)))
PY
)
"$root/scripts/llama-policy-server.sh" stop
"$bench" -m "$model" -c $((slots * (prompt_mean + output_mean + 16))) -b 2048 -ub 512 \
  -npp "$prompt_mean" -ntg "$output_mean" -npl "$slots" -t 2 -tb 2 > "$work/bench.log" 2>&1 ||
  { cat "$work/bench.log" >&2; exit 1; }
peer=$(grep -E '^\|\s+[0-9]+' "$work/bench.log" | tail -1)
echo "llama-batched-bench: $peer"
python3 - "$samples" "$tokens" "$seconds" "$prompt_mean" "$output_mean" "$slots" "$peer" <<'PY'
import sys
samples, tokens, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
prompt, output, slots = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
cols = [c.strip() for c in sys.argv[7].strip().strip("|").split("|")]
# PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s
t_total, tg_speed = float(cols[8]), float(cols[7])
peer_samples = slots / t_total
ours_tokens, ours_samples = tokens / seconds, samples / seconds
print()
print(f"{samples} samples, mean prompt {prompt} tokens, mean output {output} tokens, {slots} slots, 2 threads")
print(f"| | samples/s | generated tokens/s |")
print(f"|---|---|---|")
print(f"| ponder → llama-server | {ours_samples:.2f} | {ours_tokens:.1f} |")
print(f"| llama-batched-bench (prompt + decode, {slots} × {prompt}+{output}) | {peer_samples:.2f} | {slots*output/t_total:.1f} (decode alone {tg_speed:.1f}) |")
print(f"| ratio | {ours_samples/peer_samples:.2f} | {ours_tokens/(slots*output/t_total):.2f} |")
PY

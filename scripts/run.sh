#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct): set-up, build, then the phases of
# one Thought Preference Optimization iteration, each run by the real `ponder` binary with the real
# plugins, on a few instructions of data/eval.jsonl:
#
#   1. check the manifest's plugins;   2. render the thought prompt (template plugin);
#   3. sample K outputs per prompt;     4. split them into thought and response (template plugin);
#   5. judge the responses only;        6. select preference pairs (selector plugin);
#   7. a short DPO run on bundled TPO-format pairs (examples/tpo-pairs.jsonl).
#
# Until the TPO loop command lands, this script is the glue; everything it writes goes to
# runs/main/ (PONDER_RUN_DIR to change). Environment knobs: PONDER_K (samples per prompt, default
# 4), PONDER_PROMPTS (instructions, default 2), PONDER_MAX_NEW_TOKENS (default 160).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

k=${PONDER_K:-4}
prompts=${PONDER_PROMPTS:-2}
max_new=${PONDER_MAX_NEW_TOKENS:-160}
run=${PONDER_RUN_DIR:-runs/main}
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
template=target/plugins/thought-generic.wasm
judge=target/plugins/judge-constraints.wasm
selector=target/plugins/select-length-controlled.wasm

scripts/setup.sh
scripts/build-plugins.sh
cargo build --release --locked -p ponder-cli
ponder=target/release/ponder
mkdir -p "$run"

step() { printf '\n== %s\n' "$*"; }

step "1. plugins of examples/smollm2-tpo.toml"
"$ponder" plugins check examples/smollm2-tpo.toml

step "2. thought prompt around $prompts instructions of data/eval.jsonl"
head -n "$prompts" data/eval.jsonl > "$run/instructions.jsonl"
python3 scripts/tour.py instructions "$run/instructions.jsonl" > "$run/template-input.jsonl"
"$ponder" plugins run template --plugin "$template" --input "$run/template-input.jsonl" > "$run/prompts.jsonl"

step "3. $k samples per prompt (temperature 0.8, top-p 0.95, the paper's settings)"
"$ponder" generate --model "$model" --input "$run/prompts.jsonl" -k "$k" \
  --temperature 0.8 --top-p 0.95 --max-new-tokens "$max_new" --seed 1234 --json > "$run/samples.jsonl"
echo "wrote $(wc -l < "$run/samples.jsonl") samples to $run/samples.jsonl"

step "4. split into thought and response"
python3 scripts/tour.py outputs "$run/samples.jsonl" > "$run/parse-input.jsonl"
"$ponder" plugins run template --plugin "$template" --input "$run/parse-input.jsonl" > "$run/parsed.jsonl"

step "5. judge the responses (thoughts withheld) with judge-constraints"
python3 scripts/tour.py judge-requests "$run/instructions.jsonl" "$run/samples.jsonl" "$run/parsed.jsonl" "$k" \
  > "$run/judge-input.jsonl"
"$ponder" plugins run judge --plugin "$judge" --config '{"mode": "loose"}' \
  --input "$run/judge-input.jsonl" > "$run/judgments.jsonl"

step "6. preference pairs with select-length-controlled"
python3 scripts/tour.py candidates "$run/samples.jsonl" "$run/parsed.jsonl" "$run/judgments.jsonl" "$k" \
  > "$run/selector-input.jsonl"
"$ponder" plugins run selector --plugin "$selector" --config '{"rho": 0.3}' \
  --input "$run/selector-input.jsonl" > "$run/selections.jsonl"
python3 scripts/tour.py pairs "$run/prompts.jsonl" "$run/samples.jsonl" "$run/selections.jsonl" "$k" \
  > "$run/pairs.jsonl"
python3 scripts/tour.py summary "$run/selector-input.jsonl" "$run/pairs.jsonl"

step "7. DPO on the bundled TPO-format pairs (8 pairs, 2 steps)"
"$ponder" dpo --model "$model" --pairs examples/tpo-pairs.jsonl --out "$run/dpo" \
  --epochs 1 --batch-pairs 4 --lr 1e-5 --no-progress

printf '\nmain job done: every phase left its file in %s\n' "$run"

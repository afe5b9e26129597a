"""Scoring baseline for `ponder bench score`: transformers float32 forward under torch.no_grad().

The workload of ../shared/peers/bench_dpo.py (its make_pairs: 16 seeded pairs, prompt 64 tokens,
chosen and rejected 192 tokens each with <|im_end|>), scored as DPO's reference log-probs are:
batches of 4 pairs (8 sequences, right-padded), one forward each, the sum of each completion's
token log-probs. 2 threads. Reports scored tokens per second (prompt + completion of every
sequence), min/median/max over runs after a warm-up.

usage: PEERS_HF_DIR=/tmp/peers/smollm2-hf python scripts/peers/bench_score.py [--runs 3]
       [--shared ../shared/peers]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch-pairs", type=int, default=4)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared/peers"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.shared))
    import bench_dpo  # the peers' pair maker, so both benches score the same workload

    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(bench_dpo.THREADS)
    tok = AutoTokenizer.from_pretrained(bench_dpo.HF_DIR)
    model = AutoModelForCausalLM.from_pretrained(bench_dpo.HF_DIR, dtype=torch.float32).eval()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    sequences = []  # (token ids, index where the completion starts)
    for pair in bench_dpo.make_pairs(tok):
        prompt = tok(pair["prompt"], add_special_tokens=False).input_ids
        for side in ("chosen", "rejected"):
            completion = tok(pair[side], add_special_tokens=False).input_ids + [end]
            sequences.append((prompt + completion, len(prompt)))
    # batch order as DPO's: the chosen of a batch's pairs, then their rejected
    batches = []
    pairs = len(sequences) // 2
    for first in range(0, pairs, a.batch_pairs):
        chunk = range(first, min(first + a.batch_pairs, pairs))
        batches.append([sequences[2 * i] for i in chunk] + [sequences[2 * i + 1] for i in chunk])
    scored_tokens = sum(len(ids) for ids, _ in sequences)

    def score(batch):
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        mask = torch.zeros(len(batch), width, dtype=torch.long)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits
            logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            targets = torch.gather(logps, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        sums = []
        for row, (ids, start) in enumerate(batch):
            sums.append(targets[row, start - 1 : len(ids) - 1].sum().item())
        return sums

    score(batches[0])  # warm-up
    seconds = []
    for run in range(a.runs):
        started = time.perf_counter()
        for batch in batches:
            score(batch)
        seconds.append(time.perf_counter() - started)
        print(f"run {run}: {scored_tokens} tokens in {seconds[-1]:.2f}s = {scored_tokens / seconds[-1]:.1f} tokens/s",
              file=sys.stderr)
    rates = sorted(scored_tokens / s for s in seconds)
    print(json.dumps({
        "peer": "transformers float32 forward, torch.no_grad()",
        "torch": torch.__version__, "threads": bench_dpo.THREADS,
        "pairs": pairs, "batch_pairs": a.batch_pairs, "scored_tokens": scored_tokens,
        "tokens_per_second_min_median_max": [rates[0], statistics.median(rates), rates[-1]],
    }, indent=2))


if __name__ == "__main__":
    main()

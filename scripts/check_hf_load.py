#!/usr/bin/env python3
"""Checks that Hugging Face transformers loads a directory written by ponder's `save_hf_dir`.

Usage: check_hf_load.py DIR [--tokens REFERENCE_TOKENS_JSON] [--logits REFERENCE_LOGITS_JSON]

Loads DIR with AutoModelForCausalLM and AutoTokenizer (float32, local files only), then, for the
reference files given: every reference string must tokenize to the reference ids, every chat
case's chat template (add_generation_prompt=True) must give the reference prompt ids, and the
last-position logits of every case must match the reference top-20 within --tolerance.
Prints a JSON summary; exits 1 on any mismatch.
"""

import argparse
import json
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--tokens", help="reference_tokens.json")
    parser.add_argument("--logits", help="reference_logits.json")
    parser.add_argument("--tolerance", type=float, default=2e-3)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(args.dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        args.dir, local_files_only=True, dtype=torch.float32
    )
    model.eval()
    failures = []
    summary = {"model_class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters())}

    if args.tokens:
        with open(args.tokens) as f:
            strings = json.load(f)["strings"]
        for case in strings:
            ids = tokenizer(case["text"], add_special_tokens=False).input_ids
            if ids != case["ids"]:
                failures.append({"tokens": case["text"], "got": ids, "expected": case["ids"]})
        summary["token_strings"] = len(strings)

    if args.logits:
        with open(args.logits) as f:
            cases = json.load(f)["cases"]
        worst = 0.0
        for case in cases:
            if case["messages"]:
                rendered = tokenizer.apply_chat_template(
                    case["messages"], add_generation_prompt=True, tokenize=False
                )
                ids = tokenizer(rendered, add_special_tokens=False).input_ids
            else:
                ids = tokenizer(case["text"], add_special_tokens=False).input_ids
            if ids != case["input_ids"]:
                failures.append({"prompt": case["name"], "got": ids, "expected": case["input_ids"]})
                continue
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0, -1]
            for entry in case["last_position_top20"]:
                diff = abs(float(logits[entry["id"]]) - entry["logit"])
                worst = max(worst, diff)
                if diff > args.tolerance:
                    failures.append({"logits": case["name"], "id": entry["id"], "diff": diff})
        summary["logit_cases"] = len(cases)
        summary["worst_top20_logit_diff"] = worst

    summary["failures"] = failures[:20]
    summary["ok"] = not failures
    print(json.dumps(summary, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

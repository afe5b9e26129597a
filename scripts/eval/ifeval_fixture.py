#!/usr/bin/env python3
"""Writes the IFEval fixture of ponder-eval: `if-verifiable`'s own verdicts and aggregation.

The reference is the PyPI package `if-verifiable` (IFEval's checkers, and its
`common.evaluate_instructions` / `get_loose_transformations`), loaded exactly as
`scripts/ifeval/compare.py` loads it (that module is imported for its loader and its seeded
response corpus); run this with the venv `scripts/ifeval/run.sh` makes:

    target/ifeval-venv/bin/python scripts/eval/ifeval_fixture.py [--check]

Prompts of one to four constraints are drawn with a fixed seed; for each, the fixture records
the constraint ids, `if-verifiable`'s strict and loose verdict per constraint and its per-prompt
scores (`binary_*`: every constraint holds; `partial_*`: the fraction that holds), and for each
response its loose variants. ponder-eval's `tests/reference_fixtures.rs` checks `loose_variants`
and the aggregation against them: prompt-level accuracy is the mean of `binary_*`, and
instruction-level accuracy pools the constraints (IFEval's `evaluation_main.py`), which is the
mean of `partial_*` weighted by the prompts' constraint counts. With `--check` a fresh run is
compared with the committed fixture instead of written.
"""

import argparse
import importlib.util
import json
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "host/eval/tests/fixtures/if_verifiable.json")


def load_compare():
    """scripts/ifeval/compare.py as a module (it loads `if-verifiable` without `datasets`)."""
    path = os.path.join(ROOT, "scripts/ifeval/compare.py")
    spec = importlib.util.spec_from_file_location("ifeval_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(seed, prompts):
    compare = load_compare()
    from if_verifiable.common import evaluate_instructions, get_loose_transformations

    rng = random.Random(seed)
    rows = []
    while len(rows) < prompts:
        prompt = "Write about tea. " + rng.choice(["Be brief.", "Use CAPITALS.", "Ünïcode?"])
        ids = rng.sample(compare.INSTRUCTIONS, rng.randint(1, 4))
        if "combination:repeat_prompt" in ids:  # it needs the response to start with the prompt
            ids.remove("combination:repeat_prompt")
        if not ids:
            continue
        text = compare.targeted(ids[0], rng, prompt) if rng.random() < 0.3 else compare.response(rng)
        kwargs = [compare.kwargs_for(i, rng, text, prompt) for i in ids]
        results, scores = evaluate_instructions(text, ids, kwargs, prompt, compare.REGISTRY)
        if len(results) != len(ids):  # a blank response: if-verifiable scores it without verdicts
            continue
        rows.append({
            "response": text,
            "loose_variants": get_loose_transformations(text),
            "verdicts": [{"constraint_id": r.instruction_id, "strict": r.strict_pass,
                          "loose": r.loose_pass} for r in results],
            "scores": {"binary_strict": scores.binary_strict, "binary_loose": scores.binary_loose,
                       "partial_strict": scores.partial_strict,
                       "partial_loose": scores.partial_loose},
        })
    return {"seed": seed, "prompts": rows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--check", action="store_true",
                        help="compare a fresh run with the committed fixture instead of writing")
    args = parser.parse_args()
    fixture = build(args.seed, args.prompts)
    verdicts = [v for row in fixture["prompts"] for v in row["verdicts"]]
    print(f"ifeval_fixture: {len(fixture['prompts'])} prompts, {len(verdicts)} constraints, "
          f"{sum(v['strict'] for v in verdicts)} strict and {sum(v['loose'] for v in verdicts)} "
          f"loose passes")
    if args.check:
        with open(FIXTURE, encoding="utf-8") as f:
            same = json.load(f) == fixture
        print("ifeval_fixture: " + ("matches" if same else "DIFFERS from") + " the committed fixture")
        sys.exit(0 if same else 1)
    with open(FIXTURE, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"ifeval_fixture: wrote {FIXTURE}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks ponder-eval's length-controlled win rate and bootstrap against the `alpaca-eval` package.

The reference is `alpaca-eval`'s own GLM (`alpaca_eval/metrics/glm_winrate.py`), which must be
importable; this script installs nothing (`scripts/eval/compare_lc.sh` makes a venv for it). The
package's top-level `get_length_controlled_winrate` first downloads AlpacaEval's instruction
difficulties and gamed-baseline annotations from a model hub, which the `length_controlled_minimal`
model never uses; so the few lines of its `_get_featurized_data` that build the minimal model's
features are restated here (character lengths, `std_delta_len = (len(output_1) - len(output_2)) /
std`, preference `- 1`, `not_gamed_baseline = True`, the test rows at `std_delta_len = 0`), and the
design matrix and the fit are the package's own `make_dmatrix_for_model` and
`fit_LogisticRegressionCV` with `GLM_INFO["length_controlled_minimal"]`.

It generates seeded annotation sets (preferences and lengths), fits each with the package, and
writes the inputs and the package's results to a JSON fixture; ponder-eval's test
`tests/reference_fixtures.rs` checks the Rust implementation against the committed copy
(`host/eval/tests/fixtures/alpaca_eval_lc.json`). With `--check` it compares a fresh run with the
committed fixture instead of writing (the package and its dependencies still agree with it).

It also records bootstrap intervals computed independently in NumPy from the same SplitMix64
draws (`numpy.percentile`, linear), for the win rate, and for the length-controlled win rate with
the package's fit on every resample.

Usage: scripts/eval/compare_lc.py [--out PATH] [--check]
"""

import argparse
import importlib.util
import json
import math
import os
import random
import sys
import types
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "host/eval/tests/fixtures/alpaca_eval_lc.json")
GLM_NAME = "length_controlled_minimal"


def load_glm():
    """The package's `glm_winrate` module, without `alpaca_eval/__init__` (which imports the
    annotators and their API clients; the metrics don't need them)."""
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None:
        sys.exit("compare_lc: `alpaca-eval` is not importable (scripts/eval/compare_lc.sh)")
    package = types.ModuleType("alpaca_eval")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["alpaca_eval"] = package
    from alpaca_eval.metrics import glm_winrate

    return glm_winrate


def splitmix64(seed):
    """Vigna's SplitMix64, as ponder-eval's `rng.rs`: a generator of 64-bit ints."""
    mask = (1 << 64) - 1
    state = seed
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def resamples(count, items, seed):
    """The bootstrap's index draws: ponder-eval's `SplitMix64::below` (high half of a product)."""
    stream = splitmix64(seed)
    for _ in range(count):
        yield [(next(stream) * items) >> 64 for _ in range(items)]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def annotation_sets():
    """Seeded sets of (preference for A in [0, 1], len(A), len(B)); A is AlpacaEval's model
    (`output_2`), B its baseline (`output_1`)."""
    sets = {}

    def lengths(rng, n, a_range, b_range):
        return [(rng.randint(*a_range), rng.randint(*b_range)) for _ in range(n)]

    def draw(rng, p, tie=0.0):
        u = rng.random()
        return 0.5 if u < tie else (1.0 if rng.random() < p else 0.0)

    # A judge that favours length, discrete verdicts with some ties (an AlpacaEval-like run).
    rng = random.Random(1)
    pairs = lengths(rng, 200, (200, 2400), (300, 1800))
    sd = _sd([b - a for a, b in pairs])
    sets["length_biased_discrete"] = [
        (draw(rng, sigmoid(0.3 - 1.5 * math.tanh((b - a) / sd)), tie=0.1), a, b) for a, b in pairs]

    # Continuous preferences (a judge's probabilities).
    rng = random.Random(2)
    pairs = lengths(rng, 120, (50, 900), (50, 900))
    sd = _sd([b - a for a, b in pairs])
    sets["continuous"] = [
        (min(1.0, max(0.0, sigmoid(-0.4 - 0.8 * math.tanh((b - a) / sd)) + rng.uniform(-0.2, 0.2))), a, b)
        for a, b in pairs]

    # No length effect at all.
    rng = random.Random(3)
    sets["no_length_effect"] = [(draw(rng, 0.65), a, b) for a, b in lengths(rng, 300, (100, 1500), (100, 1500))]

    # A verbose model: A almost always longer, the judge mildly length-biased.
    rng = random.Random(4)
    pairs = lengths(rng, 150, (800, 3000), (200, 1200))
    sd = _sd([b - a for a, b in pairs])
    sets["verbose_model"] = [(draw(rng, sigmoid(-0.2 - 1.0 * math.tanh((b - a) / sd)), tie=0.05), a, b)
                             for a, b in pairs]

    # A judge that mostly rewards length. (Not one that always prefers the longer output: on such
    # separable data the likelihood is nearly flat along the length weight, and the package's
    # value depends on where liblinear stops, e.g. 15.98% where the exact optimum gives 12.96%.)
    rng = random.Random(5)
    pairs = lengths(rng, 80, (100, 1000), (100, 1000))
    sd = _sd([b - a for a, b in pairs])
    sets["strong_length_judge"] = [(draw(rng, sigmoid(0.2 - 4.0 * math.tanh((b - a) / sd))), a, b)
                                   for a, b in pairs]

    # Small: twelve instructions, the cross-validation's folds hold two or three each.
    rng = random.Random(6)
    sets["small"] = [(draw(rng, 0.6, tie=0.2), a, b) for a, b in lengths(rng, 12, (100, 600), (100, 600))]
    return sets


def _sd(values):
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def package_fit(glm, rows):
    """The package's length_controlled_minimal fit of `rows`: (LC win rate in percent, C, weights)."""
    import pandas as pd

    info = glm.GLM_INFO[GLM_NAME]
    # AlpacaEval's annotations: preference 1 (output_1, the baseline, wins) to 2 (output_2 wins).
    df = pd.DataFrame({
        "preference": [1 + p for p, _, _ in rows],
        "output_1": ["x" * b for _, _, b in rows],
        "output_2": ["x" * a for _, a, _ in rows],
        "index": range(len(rows)),
    })
    # glm_winrate._get_featurized_data, step 2 and 3 (step 1 downloads data the minimal model
    # does not use).
    len_1 = df["output_1"].str.len()
    len_2 = df["output_2"].str.len()
    std_delta_len = len_1 - len_2
    df = df[["preference", "index"]].copy()
    df["std_delta_len"] = std_delta_len / std_delta_len.std()
    df["preference"] = df["preference"].astype(float).replace({0.0: 1.5}) - 1
    df["not_gamed_baseline"] = True
    df_test = df[["not_gamed_baseline"]].copy()
    df_test["std_delta_len"] = 0
    assert not info["regularize_to_baseline_lambda"]
    df_XY_train, df_X_test = glm.make_dmatrix_for_model(df, df_test, formula=info["formula"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = glm.fit_LogisticRegressionCV(df_XY_train, "preference", is_ytrue_proba=True,
                                             sample_weight=None, **info["kwargs"])
    predicted = model.predict_proba(df_X_test)[:, 1]
    weights = dict(zip(df_X_test.columns, model.coef_[0]))
    return {
        "win_rate_percent": float(predicted.mean() * 100),
        "inverse_penalty": float(model.C_[0]),
        "length_weight": float(weights["np.tanh(std_delta_len)"]),
        "constant_weight": float(weights["not_gamed_baseline.astype(float)"]),
        "length_difference_sd": float(std_delta_len.std()),
        "cv_mean_scores": [float(s) for s in model.scores_[1].mean(axis=0).ravel()],
    }


def percentile_interval(values, level=0.95):
    import numpy as np

    tail = (1 - level) / 2 * 100
    lower, upper = np.percentile(np.array(values), [tail, 100 - tail])
    return {"lower": float(lower), "upper": float(upper)}


def build(glm):
    import numpy as np

    sets = annotation_sets()
    fixture = {"glm": GLM_NAME, "formula": glm.GLM_INFO[GLM_NAME]["formula"], "sets": {}}
    for name, rows in sets.items():
        fit = package_fit(glm, rows)
        fixture["sets"][name] = {
            "instructions": [[p, a, b] for p, a, b in rows],
            "win_rate_percent": float(np.mean([p for p, _, _ in rows]) * 100),
            "length_controlled": fit,
        }
        print(f"{name:24} n={len(rows):4} win rate {fixture['sets'][name]['win_rate_percent']:7.3f}"
              f"  LC {fit['win_rate_percent']:.6f}  C={fit['inverse_penalty']:.6g}")

    # Bootstrap: the win rate over 1000 resamples, the LC win rate (the package's fit on every
    # resample) over 40, both with SplitMix64 draws.
    rows = sets["length_biased_discrete"]
    preferences = np.array([p for p, _, _ in rows])
    seed, count = 7, 1000
    values = [float(preferences[idx].mean() * 100) for idx in resamples(count, len(rows), seed)]
    fixture["bootstrap_win_rate"] = {
        "set": "length_biased_discrete", "seed": seed, "resamples": count, "level": 0.95,
        "interval": percentile_interval(values)}
    seed, count = 9, 40
    values = [package_fit(glm, [rows[i] for i in idx])["win_rate_percent"]
              for idx in resamples(count, len(rows), seed)]
    fixture["bootstrap_length_controlled"] = {
        "set": "length_biased_discrete", "seed": seed, "resamples": count, "level": 0.95,
        "interval": percentile_interval(values)}
    print(f"bootstrap: win rate {fixture['bootstrap_win_rate']['interval']}, "
          f"LC {fixture['bootstrap_length_controlled']['interval']}")
    return fixture


def compare(fresh, committed):
    """Differences between a fresh run and the committed fixture (package results to 1e-9)."""
    problems = []

    def walk(path, a, b):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    problems.append(f"{path}.{key}: only in one")
                else:
                    walk(f"{path}.{key}", a[key], b[key])
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(f"{path}[{i}]", x, y)
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if abs(a - b) > 1e-9 * max(1.0, abs(a), abs(b)):
                problems.append(f"{path}: fresh {a} vs committed {b}")
        elif a != b:
            problems.append(f"{path}: fresh {a!r} vs committed {b!r}")

    walk("", fresh, committed)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=FIXTURE)
    parser.add_argument("--check", action="store_true",
                        help="compare a fresh run with the committed fixture instead of writing")
    args = parser.parse_args()
    glm = load_glm()
    fixture = build(glm)
    if args.check:
        with open(FIXTURE) as f:
            problems = compare(fixture, json.load(f))
        for problem in problems[:20]:
            print("DIFF", problem)
        print(f"compare_lc: {len(problems)} differences from the committed fixture")
        sys.exit(1 if problems else 0)
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"compare_lc: wrote {args.out}")


if __name__ == "__main__":
    main()

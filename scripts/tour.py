#!/usr/bin/env python3
"""JSON glue between the phases of scripts/run.sh (the main job), until ponder's TPO loop
command lands: it reshapes one phase's JSONL output into the next plugin's JSONL input, in the
shapes documented in sdk/README.md. It decides nothing itself: rendering, parsing, judging and
pair selection are the plugins' work. Stdlib only."""
import json
import subprocess
import sys


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def emit(row):
    print(json.dumps(row, ensure_ascii=False))


def samples_by_prompt(path, k):
    """The samples of `ponder generate --json`, as a list per prompt ordered by sample index."""
    rows = sorted(read_jsonl(path), key=lambda r: (r["prompt"], r["sample"]))
    groups = [rows[i:i + k] for i in range(0, len(rows), k)]
    for index, group in enumerate(groups):
        if len(group) != k or any(r["prompt"] != index for r in group):
            sys.exit(f"tour.py: {path}: expected {k} samples for prompt {index}")
    return groups


def token_count(text):
    ids = subprocess.run(["target/release/ponder", "tokenize", text], check=True,
                         capture_output=True, text=True).stdout
    return len(json.loads(ids))


def instructions(path):
    for row in read_jsonl(path):
        emit({"instruction": row["prompt"]})


def outputs(path):
    for row in sorted(read_jsonl(path), key=lambda r: (r["prompt"], r["sample"])):
        emit({"output": row["text"]})


def judge_requests(instructions_path, samples_path, parsed_path, k):
    rows = read_jsonl(instructions_path)
    parsed = read_jsonl(parsed_path)
    for index, row in enumerate(rows):
        group = parsed[index * k:(index + 1) * k]
        # Thoughts are withheld: the judge gets responses only. A parse failure is judged as an
        # empty response (the selector treats it as a failure through `parsed`).
        emit({"instruction": row["prompt"],
              "responses": [p.get("response", "") for p in group],
              "metadata": row.get("metadata", {})})


def candidates(samples_path, parsed_path, judgments_path, k):
    groups = samples_by_prompt(samples_path, k)
    parsed = read_jsonl(parsed_path)
    judgments = read_jsonl(judgments_path)
    for index, group in enumerate(groups):
        scores = judgments[index].get("scores") or [None] * k
        row = []
        for j, sample in enumerate(group):
            split = parsed[index * k + j]
            ok = "response" in split
            row.append({
                "score": scores[j] if ok else None,
                "parsed": ok,
                "response_tokens": token_count(split["response"]) if ok else 0,
                "response_chars": len(split["response"]) if ok else 0,
                "thought_tokens": token_count(split["thought"]) if ok else 0,
                "thought_chars": len(split["thought"]) if ok else 0,
                "output_tokens": len(sample["tokens"]),
            })
        emit({"candidates": row})


def pairs(prompts_path, samples_path, selections_path, k):
    prompts = read_jsonl(prompts_path)
    groups = samples_by_prompt(samples_path, k)
    for index, selection in enumerate(read_jsonl(selections_path)):
        for pair in selection.get("pairs", []):
            # Both sides are the full output, thought included; the prompt keeps the thought prompt.
            emit({"prompt": prompts[index]["messages"],
                  "chosen": groups[index][pair["chosen"]]["text"],
                  "rejected": groups[index][pair["rejected"]]["text"],
                  "weight": pair.get("weight", 1.0)})


def summary(candidates_path, pairs_path):
    candidates = [c for row in read_jsonl(candidates_path) for c in row["candidates"]]
    failures = sum(1 for c in candidates if not c["parsed"])
    scores = [c["score"] for c in candidates if c["parsed"] and c["score"] is not None]
    mean = f"{sum(scores) / len(scores):.3f}" if scores else "n/a (nothing parsed)"
    print(f"{len(candidates)} samples, {failures} parse failures, mean judge score of parsed "
          f"responses {mean}, {len(read_jsonl(pairs_path))} preference pairs")


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command in ("judge-requests", "candidates", "pairs"):
        args[-1] = int(args[-1])
    {"instructions": instructions, "outputs": outputs, "judge-requests": judge_requests,
     "candidates": candidates, "pairs": pairs, "summary": summary}[command](*args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes train.jsonl and eval.jsonl: short instructions with verifiable constraints in the
IFEval metadata format that the judge-constraints plugin reads (see
plugins/judge-constraints/README.md). Authored for ponder; deterministic (seeded).

A row: {"id": str, "prompt": [chat messages], "metadata": {"instruction_id_list": [...],
"kwargs": [...]}}. Rerun to regenerate: python3 data/make_constraints_data.py
"""
import json
import random
from pathlib import Path

TASKS = [
    "Describe how a bicycle gear works",
    "Explain why the sky is blue",
    "Give advice to someone starting to learn the piano",
    "Write a short story about a lighthouse keeper",
    "Summarize the benefits of drinking water",
    "Explain what a prime number is",
    "Describe your ideal weekend",
    "Write a product description for a reusable water bottle",
    "Explain how to make a cup of tea",
    "Give three tips for writing clear emails",
    "Describe the water cycle",
    "Write a poem about autumn leaves",
    "Explain what photosynthesis does for a plant",
    "Describe a busy market in the morning",
    "Explain how to plant a tree",
    "Write a thank-you note to a neighbour",
    "Explain the difference between weather and climate",
    "Give a recipe for a simple salad",
    "Describe how bees make honey",
    "Explain why sleep is important",
    "Write a short speech welcoming new students",
    "Explain how a library organizes its books",
    "Describe the life of a river from source to sea",
    "Give advice for a first job interview",
    "Explain what a computer program is to a child",
    "Write a review of an imaginary restaurant",
    "Explain how rainbows form",
    "Describe a walk through a snowy forest",
    "Explain why exercise helps the heart",
    "Write a letter inviting a friend to a picnic",
    "Explain how to save money on groceries",
    "Describe what astronauts eat in space",
]

# (instruction text, instruction id, kwargs) builders; each takes a random generator.
CONSTRAINTS = [
    lambda r: ("Do not use any commas in your response.", "punctuation:no_comma", {}),
    lambda r: ("Your entire response should be in English and in all lowercase letters.",
               "change_case:english_lowercase", {}),
    lambda r: ("Your entire response should be in English and in all capital letters.",
               "change_case:english_capital", {}),
    lambda r: (lambda n: (f"Answer with at most {n} words.", "length_constraints:number_words",
                          {"num_words": n, "relation": "at most"}))(r.choice([40, 60, 80])),
    lambda r: (lambda n: (f"Answer with at least {n} words.", "length_constraints:number_words",
                          {"num_words": n, "relation": "at least"}))(r.choice([30, 50])),
    lambda r: (lambda n: (f"Your answer must contain exactly {n} bullet points. Use markdown "
                          "bullet points such as:\n* This is a point.",
                          "detectable_format:number_bullet_lists", {"num_bullets": n}))(r.choice([2, 3])),
    lambda r: ("Your answer must contain a title, wrapped in double angular brackets, such as "
               "<<poem of joy>>.", "detectable_format:title", {}),
    lambda r: ("At the end of your response, please explicitly add a postscript starting with P.S.",
               "detectable_content:postscript", {"postscript_marker": "P.S."}),
    lambda r: ("Wrap your entire response with double quotation marks.", "startend:quotation", {}),
    lambda r: (lambda w: (f"Include the keyword \"{w}\" in your response.", "keywords:existence",
                          {"keywords": [w]}))(r.choice(["simple", "morning", "green", "friend"])),
    lambda r: (lambda p: (f"Finish your response with this exact phrase: {p}. No other words "
                          "should follow this phrase.", "startend:end_checker",
                          {"end_phrase": p}))(r.choice(["Is there anything else I can help with?",
                                                        "That is all."])),
    lambda r: (lambda n: (f"Highlight at least {n} sections in your answer with markdown, i.e. "
                          "*highlighted section*.", "detectable_format:number_highlighted_sections",
                          {"num_highlights": n}))(r.choice([1, 2])),
]

# Pairs that cannot hold together.
EXCLUSIVE = {("change_case:english_lowercase", "change_case:english_capital"),
             ("change_case:english_capital", "change_case:english_lowercase")}


def make_row(rng, index, task):
    count = rng.choice([1, 2, 2])
    chosen = []
    while len(chosen) < count:
        text, iid, kwargs = rng.choice(CONSTRAINTS)(rng)
        if any(iid == c[1] or (iid, c[1]) in EXCLUSIVE for c in chosen):
            continue
        chosen.append((text, iid, kwargs))
    prompt = task + ". " + " ".join(c[0] for c in chosen)
    return {
        "id": f"constraints-{index:03d}",
        "prompt": [{"role": "user", "content": prompt}],
        "metadata": {"instruction_id_list": [c[1] for c in chosen], "kwargs": [c[2] for c in chosen]},
    }


def main():
    rng = random.Random(20241014)
    rows = [make_row(rng, i, task) for i, task in enumerate(TASKS * 3)]
    rng.shuffle(rows)
    here = Path(__file__).parent
    splits = {"eval.jsonl": rows[:16], "train.jsonl": rows[16:]}
    for name, part in splits.items():
        with open(here / name, "w") as out:
            for row in part:
                out.write(json.dumps(row) + "\n")
        print(f"wrote {len(part)} rows to {here / name}")


if __name__ == "__main__":
    main()

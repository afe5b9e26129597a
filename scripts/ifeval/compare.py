#!/usr/bin/env python3
"""Compares the `judge-constraints` plugin with IFEval's reference checkers.

The reference is the PyPI package `if-verifiable` (IFEval's own `instructions.py`), which must be
importable; this script installs nothing (`scripts/test.sh` makes a venv for it). NLTK's Punkt
data is in no package registry, so NLTK is pointed at a temporary data directory holding an
empty `tokenizers/punkt_tab/english/` model: Punkt then runs with default (untrained)
parameters, deterministically, and that is what the plugin reproduces.

It generates a corpus of responses with a fixed seed (Unicode, markdown, bullets, code blocks,
JSON, abbreviations, ellipses, titles, sections, postscripts, every relation IFEval accepts, every
constraint type both plugin and reference support, satisfying and violating cases), computes
IFEval's strict and loose verdicts exactly as IFEval's `evaluation_lib` does, runs the plugin on
the same inputs through the real binary (`ponder plugins run judge`), and compares. It prints
agreement per constraint type and overall, lists the first disagreements, and exits non-zero when
a disagreement is not covered by `ALLOWED` (the deliberate differences documented in
`plugins/judge-constraints/README.md`).

Usage: scripts/ifeval/compare.py [--ponder BIN] [--plugin WASM] [--seed N] [--cases N]
"""

import argparse
import importlib.util
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import types
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def nltk_data_dir():
    """A temporary NLTK data directory with an empty English Punkt model (default parameters).

    The directory alone is not enough for NLTK >= 3.9.3, which wants the four model files to
    exist: they are created empty, which loads as empty parameter sets.
    """
    root = tempfile.mkdtemp(prefix="ifeval-nltk-")
    english = os.path.join(root, "tokenizers", "punkt_tab", "english")
    os.makedirs(english)
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        open(os.path.join(english, name), "w").close()
    return root


def load_reference():
    """IFEval's instruction registry from `if-verifiable`, without its top-level `__init__`
    (which imports `datasets` to download benchmarks; the checkers don't need it)."""
    spec = importlib.util.find_spec("if_verifiable")
    if spec is None:
        sys.exit("compare: `if-verifiable` is not importable (pip install if-verifiable)")
    package = types.ModuleType("if_verifiable")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["if_verifiable"] = package
    import nltk

    nltk.data.path[:] = [nltk_data_dir()]
    import langdetect

    # langdetect samples at random; a seed makes the reference's verdicts reproducible.
    langdetect.DetectorFactory.seed = 0
    from if_verifiable.ifeval import instructions_registry, instructions_util

    return instructions_registry.INSTRUCTION_DICT, instructions_util, nltk


REGISTRY, UTIL, NLTK = load_reference()


# --- IFEval's evaluation (evaluation_lib.test_instruction_following_strict / _loose) ----------


def loose_variants(response):
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        first,
        last,
        both,
        first.replace("*", ""),
        last.replace("*", ""),
        both.replace("*", ""),
    ]


def checker(instruction_id, kwargs, prompt):
    instruction = REGISTRY[instruction_id](instruction_id)
    instruction.build_description(**{k: v for k, v in kwargs.items() if v is not None})
    args = instruction.get_instruction_args()
    if args and "prompt" in args:
        instruction.build_description(prompt=prompt)
    return instruction


def reference_verdicts(instruction_id, kwargs, prompt, response):
    """(strict, loose) as IFEval computes them."""
    instruction = checker(instruction_id, kwargs, prompt)
    strict = bool(response.strip() and instruction.check_following(response))
    loose = any(v.strip() and instruction.check_following(v) for v in loose_variants(response))
    return strict, loose


# --- Deliberate differences (mirrored in plugins/judge-constraints/README.md) ----------------


def without_language_test(instruction_id, response, mode):
    """The verdict of `change_case:english_*` without IFEval's `langdetect` test."""
    test = str.isupper if instruction_id == "change_case:english_capital" else str.islower
    variants = [response] if mode == "strict" else loose_variants(response)
    return any(v.strip() and test(v) for v in variants)


def language_detection_skipped(instruction_id, kwargs, response, mode, plugin):
    return instruction_id in (
        "change_case:english_capital",
        "change_case:english_lowercase",
    ) and plugin == without_language_test(instruction_id, response, mode)


# Each entry: (name, predicate(instruction_id, kwargs, response, mode, plugin_verdict)).
ALLOWED = [
    ("english_* skip IFEval's langdetect test", language_detection_skipped),
]


# --- The corpus ------------------------------------------------------------------------------

WORDS = (
    "the a of tea river quiet light morning green stone people answer simple house city "
    "reading winter music garden honest paper bright travel water history small result"
).split()
CAPS = ["NASA", "USA", "OK", "HTTP", "IMPORTANT", "NOTE", "API", "I", "A", "WARNING", "JSON"]
UNICODE_WORDS = [
    "café", "naïve", "Straße", "İstanbul", "ıi", "Ωmega", "ΣΟΦΙΑ", "σοφία", "日本語", "中文",
    "हिन्दी", "العربية", "Ⓐⓑ", "ǅemal", "ǄEMAL", "e\u0301clair", "ÉCOLE", "ﬁne", "Ⅻ", "²",
    "🎉", "👍🏽", "👨‍👩‍👧", "•", "—", "–", "…", "«oui»", "“quoted”", "‘single’", "x\u200by",
    "\u00a0", "KELVIN\u212a", "ß", "ẞIG", "Ǆ", "ꞵ", "𝐁𝐎𝐋𝐃", "١٢٣", "৩",
]
ABBREVIATIONS = [
    "P.P.S.", "P.S.", "U.S.A.", "e.g.", "i.e.", "Dr.", "Mr.", "Mrs.", "J. K. Rowling", "3.5",
    "No. 7", "etc.", "vs.", "a.m.", "Ph.D.", "St. Louis", "U.K.", "A.", "www.example.com",
]
PUNCT_TAILS = [".", "!", "?", "...", "…", "?!", ".\"", ".)", "!'", ". . .", "..", ""]
CONTRACTIONS = ["DON'T", "can't", "CANNOT", "gonna", "I'M", "It's", "'tis", "o'clock",
                "WANNA go", "rock 'n' roll", "JOHN'S", "they'll", "'QUOTED'", "d'ye"]
MARKERS = ["P.S.", "P.P.S", "p.s.", "P. S.", "p. p. s", "PS", "P.S", "Note:"]


def word(rng):
    roll = rng.random()
    if roll < 0.55:
        w = rng.choice(WORDS)
        return w.capitalize() if rng.random() < 0.15 else w
    if roll < 0.68:
        return rng.choice(CAPS)
    if roll < 0.82:
        return rng.choice(UNICODE_WORDS)
    if roll < 0.9:
        return rng.choice(ABBREVIATIONS)
    if roll < 0.97:
        return rng.choice(CONTRACTIONS)
    return rng.choice(["-", "--", "(see", "note)", "[name]", "[", "]", "*", "**", "#", "&",
                       "x-ray", "well-known", "A/B", "$3.88", "50%", "@home", "a:b", "1,000",
                       "co-op", "«", "“", "''", "``", "`code`", "<b>", "{", "}", ";", ","])


def sentence(rng):
    n = rng.randint(1, 9)
    words = [word(rng) for _ in range(n)]
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = words[i] + rng.choice([",", ";", ":", ""])
    text = " ".join(words)
    if rng.random() < 0.3:
        text = text[:1].upper() + text[1:]
    return text + rng.choice(PUNCT_TAILS)


def paragraph(rng):
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))


def block(rng):
    kind = rng.randrange(14)
    if kind == 0:
        bullet = rng.choice(["* ", "- ", "*", "-", "  * ", "• ", "** ", "1. ", "\t- "])
        return "\n".join(bullet + sentence(rng) for _ in range(rng.randint(1, 4)))
    if kind == 1:
        return "```" + rng.choice(["", "python", "json"]) + "\nx = [1, 2]\nprint(x)\n```"
    if kind == 2:
        return json.dumps({"answer": sentence(rng), "n": rng.randint(0, 9)})
    if kind == 3:
        return "<<" + rng.choice(["", " ", "Title", "A Poem of Joy", "Über café", "<x>"]) + ">>"
    if kind == 4:
        return rng.choice(["SECTION", "Section", "section", "PARAGRAPH", "Chapter"]) + \
            rng.choice([" ", "", "  "]) + str(rng.randint(0, 12)) + rng.choice(["\n", ": ", " "])
    if kind == 5:
        return rng.choice(MARKERS) + " " + sentence(rng)
    if kind == 6:
        return rng.choice(["***", " *** ", "* * *", "******", "**", "\n***\n"])
    if kind == 7:
        return "*" + sentence(rng) + "*" + rng.choice(["", " and **" + word(rng) + "**"])
    if kind == 8:
        return rng.choice(["My answer is yes.", "My answer is no.", "My answer is maybe.",
                           "my answer is yes", "My answer is Yes."])
    if kind == 9:
        return "Dear [name], at [address] on [ date ]" + rng.choice(["", " [", "]", "[]"])
    if kind == 10:
        return "\"" + paragraph(rng) + "\""
    if kind == 11:
        return rng.choice(["Honestly... I'm not sure.", "Wait… what?", "Mr. Smith arrived. He sat.",
                           "It costs 3.5 dollars. Really!", "See e.g. the U.S.A. They agree.",
                           "J. K. Rowling wrote it. She did.", "(Sent one.) Sent two.",
                           "He said \"Stop.\" Then left.", "No. 5 is next. ok.", "Hi!! Bye?!"])
    if kind == 12:
        return rng.choice(["", " ", "\n", "\t", "   \n  "])
    return paragraph(rng)


def response(rng):
    parts = [block(rng) for _ in range(rng.randint(1, 6))]
    seps = ["\n\n", "\n", " ", "\n\n\n", "\n \n"]
    text = parts[0]
    for part in parts[1:]:
        text += rng.choice(seps) + part
    roll = rng.random()
    if roll < 0.08:
        text = text.upper()
    elif roll < 0.16:
        text = text.lower()
    elif roll < 0.2:
        text = "Sure, here it is:\n" + text
    elif roll < 0.24:
        text = text + "\nHope this helps!"
    elif roll < 0.27:
        text = "**" + text + "**"
    return text


def capital_words(text):
    return sum(1 for w in NLTK.word_tokenize(text) if w.isupper())


def near(rng, count):
    return max(0, count + rng.choice([-2, -1, 0, 0, 1, 1, 2]))


RELATIONS = ["less than", "at least"]


def kwargs_for(instruction_id, rng, text, prompt):
    """Arguments for `instruction_id`, chosen near the response's own counts so that both
    verdicts occur and the boundaries are tested."""
    words = UTIL.nltk.tokenize.RegexpTokenizer(r"\w+").tokenize(text) or ["tea"]
    if instruction_id == "keywords:existence":
        pool = [w for w in words if w.isalpha()] or ["tea"]
        picks = rng.sample(pool, min(len(pool), rng.randint(1, 2)))
        if rng.random() < 0.4:
            picks.append(rng.choice(WORDS + ["ISTANBUL", "straße", "KELVIN", "σοφια"]))
        return {"keywords": picks}
    if instruction_id == "keywords:forbidden_words":
        pool = [w for w in words if w.isalpha()] or ["tea"]
        return {"forbidden_words": rng.sample(pool, min(len(pool), rng.randint(1, 2)))
                if rng.random() < 0.5 else rng.sample(WORDS, 2)}
    if instruction_id == "keywords:frequency":
        keyword = rng.choice([w for w in words if w.isalpha()] or ["tea"])
        count = len([w for w in words if w.lower() == keyword.lower()])
        return {"keyword": keyword, "frequency": near(rng, count) or 1,
                "relation": rng.choice(RELATIONS)}
    if instruction_id == "keywords:letter_frequency":
        letter = rng.choice("aeiostkAEZ")
        return {"letter": letter, "let_frequency": near(rng, text.lower().count(letter.lower())),
                "let_relation": rng.choice(RELATIONS)}
    if instruction_id == "length_constraints:number_words":
        return {"num_words": near(rng, UTIL.count_words(text)), "relation": rng.choice(RELATIONS)}
    if instruction_id == "length_constraints:number_sentences":
        return {"num_sentences": near(rng, UTIL.count_sentences(text)),
                "relation": rng.choice(RELATIONS)}
    if instruction_id == "length_constraints:number_paragraphs":
        return {"num_paragraphs": near(rng, text.count("***") + 1) or 1}
    if instruction_id == "length_constraints:nth_paragraph_first_word":
        paragraphs = [p for p in text.split("\n\n") if p.strip()] or ["tea"]
        nth = rng.randint(1, len(paragraphs))
        first = paragraphs[nth - 1].split()[0] if rng.random() < 0.7 else rng.choice(WORDS)
        return {"num_paragraphs": max(nth, near(rng, len(paragraphs))), "nth_paragraph": nth,
                "first_word": first}
    if instruction_id == "detectable_content:number_placeholders":
        return {"num_placeholders": near(rng, text.count("[")) or 1}
    if instruction_id == "detectable_content:postscript":
        return {"postscript_marker": rng.choice(["P.S.", "P.P.S", "P.S.", "Note:", "PS"])}
    if instruction_id == "detectable_format:number_bullet_lists":
        return {"num_bullets": near(rng, text.count("\n*") + text.count("\n-"))}
    if instruction_id == "detectable_format:number_highlighted_sections":
        count = len([h for h in re.findall(r"\*[^\n\*]*\*", text) if h.strip("*").strip()])
        return {"num_highlights": near(rng, count) or 1}
    if instruction_id == "detectable_format:multiple_sections":
        splitter = rng.choice(["Section", "SECTION", "PARAGRAPH", "Chapter"])
        count = len(re.split(r"\s?" + splitter + r"\s?\d+\s?", text)) - 1
        return {"section_spliter": splitter, "num_sections": near(rng, count) or 1}
    if instruction_id == "change_case:capital_word_frequency":
        return {"capital_frequency": near(rng, capital_words(text)),
                "capital_relation": rng.choice(RELATIONS)}
    if instruction_id == "startend:end_checker":
        tail = text.strip().strip('"').split()
        phrase = " ".join(tail[-rng.randint(1, 3):]) if tail and rng.random() < 0.6 else \
            rng.choice(["Any other questions?", "Is there anything else I can help with?"])
        return {"end_phrase": phrase}
    if instruction_id == "combination:repeat_prompt":
        return {"prompt_to_repeat": prompt}
    return {}


INSTRUCTIONS = [
    "keywords:existence", "keywords:forbidden_words", "keywords:frequency",
    "keywords:letter_frequency", "length_constraints:number_words",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word", "detectable_content:number_placeholders",
    "detectable_content:postscript", "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response", "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections", "detectable_format:json_format",
    "detectable_format:title", "combination:two_responses", "combination:repeat_prompt",
    "startend:end_checker", "startend:quotation", "change_case:capital_word_frequency",
    "change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma",
]


def targeted(instruction_id, rng, prompt):
    """Responses aimed at one constraint (the random ones rarely satisfy some kinds)."""
    if instruction_id == "combination:two_responses":
        a, b = paragraph(rng), paragraph(rng)
        return rng.choice([a + "\n******\n" + b, a + "******" + a, "******\n" + a + "\n******\n" + b,
                           a + "\n******\n******\n" + b, a + " ****** " + b + " ******"])
    if instruction_id == "startend:quotation":
        return rng.choice(["\"", "\"\"", " \"" + paragraph(rng) + "\" ", "“" + paragraph(rng) + "”"])
    if instruction_id == "detectable_format:json_format":
        body = json.dumps({"a": [1, 2], "b": paragraph(rng)}, ensure_ascii=rng.random() < 0.5)
        return rng.choice(["```json\n" + body + "\n```", "```JSON\n" + body + "```", body,
                           "```\n" + body + "\n```", body + "\nThanks", "[1, 2,]", "NaN"])
    if instruction_id == "combination:repeat_prompt":
        return rng.choice([prompt, prompt.lower(), " " + prompt.upper(), "Write about"]) + \
            rng.choice(["", " ", "\n"]) + paragraph(rng)
    if instruction_id == "length_constraints:number_paragraphs":
        return rng.choice(["\n***\n", " *** ", "***", "\n\n***\n\n"]).join(
            paragraph(rng) for _ in range(rng.randint(1, 4)))
    if instruction_id in ("change_case:english_capital", "change_case:english_lowercase"):
        text = paragraph(rng)
        return text.upper() if instruction_id.endswith("capital") else text.lower()
    return response(rng)


def corpus(seed, cases):
    rng = random.Random(seed)
    rows = []
    per = max(1, cases // len(INSTRUCTIONS))
    for instruction_id in INSTRUCTIONS:
        for index in range(per):
            prompt = "Write about tea. " + rng.choice(["Be brief.", "Use CAPITALS.", "Ünïcode?"])
            text = targeted(instruction_id, rng, prompt) if index % 3 == 0 else response(rng)
            kwargs = kwargs_for(instruction_id, rng, text, prompt)
            rows.append({"id": instruction_id, "kwargs": kwargs, "prompt": prompt, "response": text})
    return rows


# --- The plugin through the real binary ------------------------------------------------------


def run_plugin(rows, mode, ponder, plugin):
    """The plugin's verdicts on `rows` in one judge call, or None when the call fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({
                "instruction": [{"role": "user", "content": row["prompt"]}],
                "responses": [row["response"]],
                "metadata": {"instruction_id_list": [row["id"]], "kwargs": [row["kwargs"]]},
            }, ensure_ascii=False) + "\n")
        path = f.name
    try:
        done = subprocess.run(
            [ponder, "plugins", "run", "judge", "--plugin", plugin,
             "--config", json.dumps({"mode": mode}), "--input", path],
            capture_output=True, text=True,
        )
    finally:
        os.unlink(path)
    if done.returncode != 0:
        return None
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if len(lines) != len(rows):
        sys.exit(f"compare: the plugin answered {len(lines)} rows for {len(rows)}")
    verdicts = []
    for row, line in zip(rows, lines):
        if "scores" not in line:
            sys.exit(f"compare: the plugin rejected {row!r}: {line}")
        verdicts.append(line["scores"][0] == 1.0)
    return verdicts


def plugin_verdicts(rows, mode, ponder, plugin):
    """One request per case (a constraint each), so a score of 1.0 is the verdict. A failed call
    (a trap fails the whole batch) is bisected down to the cases that fail; those get None."""
    verdicts = run_plugin(rows, mode, ponder, plugin)
    if verdicts is not None:
        return verdicts
    if len(rows) == 1:
        return [None]
    half = len(rows) // 2
    return plugin_verdicts(rows[:half], mode, ponder, plugin) + \
        plugin_verdicts(rows[half:], mode, ponder, plugin)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ponder", default=os.path.join(ROOT, "target/release/ponder"))
    parser.add_argument("--plugin", default=os.path.join(ROOT, "target/plugins/judge-constraints.wasm"))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cases", type=int, default=6000)
    parser.add_argument("--show", type=int, default=25, help="disagreements to list")
    args = parser.parse_args()

    rows = corpus(args.seed, args.cases)
    totals = defaultdict(lambda: [0, 0, 0])  # cases, agreements, allowed differences
    listed, unexplained = 0, 0
    for mode in ("strict", "loose"):
        plugin = plugin_verdicts(rows, mode, args.ponder, args.plugin)
        for row, got in zip(rows, plugin):
            strict, loose = reference_verdicts(row["id"], row["kwargs"], row["prompt"], row["response"])
            want = strict if mode == "strict" else loose
            key = (row["id"], mode)
            totals[key][0] += 1
            if got == want:
                totals[key][1] += 1
                continue
            allowed = got is not None and [
                name for name, ok in ALLOWED
                if ok(row["id"], row["kwargs"], row["response"], mode, got)]
            if allowed:
                totals[key][2] += 1
                continue
            unexplained += 1
            if listed < args.show:
                listed += 1
                print(f"DIFF {mode} {row['id']} {json.dumps(row['kwargs'], ensure_ascii=False)}"
                      f" reference={want} plugin={'call failed' if got is None else got}\n    {row['response']!r}")

    print(f"\n{'constraint':48} {'mode':6} {'cases':>6} {'agree':>7} {'allowed':>7}")
    all_cases = all_agree = all_allowed = 0
    for (instruction_id, mode), (cases, agree, allowed) in sorted(totals.items()):
        print(f"{instruction_id:48} {mode:6} {cases:6} {100 * agree / cases:6.1f}% {allowed:7}")
        all_cases += cases
        all_agree += agree
        all_allowed += allowed
    print(f"{'overall':48} {'both':6} {all_cases:6} {100 * all_agree / all_cases:6.2f}% "
          f"{all_allowed:7}")
    print(f"compare: {all_cases} verdicts, {all_agree} agree, {all_allowed} differ as documented, "
          f"{unexplained} differ otherwise")
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()

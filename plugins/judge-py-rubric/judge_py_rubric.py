"""judge-py-rubric: a readability and format rubric judge, written in Python with the ponder SDK
(`sdk/python`) and the standard library only.

Each response is scored on five criteria, each in [0, 1], and the score is their weighted mean:

- `length`: the word count lies in [`min_words`, `max_words`]; below, the share of `min_words`
  reached; above, falling linearly to 0 at twice `max_words`.
- `sentences`: the mean sentence length is at most `max_sentence_words`; above, falling linearly
  to 0 at three times that.
- `readability`: the Flesch reading ease (206.835 - 1.015 words/sentence - 84.6
  syllables/word, syllables counted by vowel groups) mapped from [0, `target_ease`] to [0, 1].
- `repetition`: the share of distinct sentences, times the share of distinct word trigrams.
- `format`: 1 minus 0.25 for each problem found: an unclosed code fence, leftover thought
  markers (`Here is my thought process`, `<thought>`, ...), an unbalanced bracket or quote
  pair, a run of three or more blank lines, a long response (over 120 words) in a single
  paragraph with no list.

An empty (or whitespace-only) response scores 0. The configuration (all keys optional):

    {"min_words": 20, "max_words": 300, "max_sentence_words": 25, "target_ease": 60,
     "weights": {"length": 1, "sentences": 1, "readability": 1, "repetition": 1, "format": 1}}

A request's metadata may narrow the length band for its instruction:
`{"rubric": {"min_words": 5, "max_words": 40}}`; a malformed one fails that request only
(`invalid-input`).
"""

import re

import ponder_plugin as pp

CRITERIA = ("length", "sentences", "readability", "repetition", "format")
THOUGHT_MARKERS = (
    "here is my thought process",
    "here is my response",
    "<thought>",
    "</thought>",
    "<think>",
    "</think>",
)
WORD = re.compile(r"[A-Za-z0-9']+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)")
VOWEL_GROUP = re.compile(r"[aeiouy]+")
LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
PAIRS = (("(", ")"), ("[", "]"), ("{", "}"))


def words(text):
    """The words of `text` (letters, digits and apostrophes)."""
    return WORD.findall(text)


def sentences(text):
    """The non-empty sentences of `text` (split at . ! ? followed by space, blank lines and
    list items)."""
    return [part.strip() for part in SENTENCE_END.split(text) if words(part)]


def syllables(word):
    """Syllables of an English word, counted by vowel groups (a silent final e dropped)."""
    word = word.lower().strip("'")
    count = len(VOWEL_GROUP.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(count, 1)


def flesch_reading_ease(text):
    """The Flesch reading ease of `text` (higher is easier; about 60-70 is plain English)."""
    found = words(text)
    parts = sentences(text)
    if not found or not parts:
        return 0.0
    per_sentence = len(found) / len(parts)
    per_word = sum(syllables(word) for word in found) / len(found)
    return 206.835 - 1.015 * per_sentence - 84.6 * per_word


def clamp(value):
    """`value` limited to [0, 1]."""
    return min(1.0, max(0.0, value))


def format_problems(text):
    """The format problems found in `text`, as short descriptions."""
    problems = []
    if text.count("```") % 2:
        problems.append("unclosed code fence")
    lowered = text.lower()
    if any(marker in lowered for marker in THOUGHT_MARKERS):
        problems.append("leftover thought marker")
    if any(text.count(open_) != text.count(close) for open_, close in PAIRS) or text.count('"') % 2:
        problems.append("unbalanced brackets or quotes")
    if re.search(r"\n\s*\n\s*\n\s*\n", text):
        problems.append("run of blank lines")
    if len(words(text)) > 120 and "\n\n" not in text.strip() and not LIST_ITEM.search(text):
        problems.append("one long paragraph")
    return problems


class Band:
    """The settings one response is scored with."""

    def __init__(self, min_words, max_words, max_sentence_words, target_ease):
        self.min_words = min_words
        self.max_words = max_words
        self.max_sentence_words = max_sentence_words
        self.target_ease = target_ease


def criteria(text, band):
    """Each criterion's score of `text`, in [0, 1]."""
    found = words(text)
    parts = sentences(text)
    count = len(found)
    if count < band.min_words:
        length = count / band.min_words if band.min_words else 1.0
    elif count <= band.max_words:
        length = 1.0
    else:
        length = clamp(2.0 - count / band.max_words)
    mean_sentence = count / max(len(parts), 1)
    if mean_sentence <= band.max_sentence_words:
        sentence_score = 1.0
    else:
        sentence_score = clamp(1.5 - 0.5 * mean_sentence / band.max_sentence_words)
    lowered = [word.lower() for word in found]
    trigrams = [tuple(lowered[i : i + 3]) for i in range(len(lowered) - 2)]
    distinct_trigrams = len(set(trigrams)) / len(trigrams) if trigrams else 1.0
    normalised = [" ".join(words(part.lower())) for part in parts]
    distinct_sentences = len(set(normalised)) / len(normalised) if normalised else 1.0
    return {
        "length": length,
        "sentences": sentence_score,
        "readability": clamp(flesch_reading_ease(text) / band.target_ease),
        "repetition": distinct_sentences * distinct_trigrams,
        "format": clamp(1.0 - 0.25 * len(format_problems(text))),
    }


def positive_number(config, key, default):
    """`config[key]` as a positive finite number, else `InvalidConfig` naming the key."""
    value = pp.config.get(config, key, float, float(default))
    if value <= 0:
        raise pp.InvalidConfig(f"config key `{key}`: must be positive, got {value:g}")
    return value


@pp.export_judge
class RubricJudge(pp.Judge):
    """The rubric: weights and the default band."""

    def configure(self, config):
        pp.config.only_keys(
            config, ["min_words", "max_words", "max_sentence_words", "target_ease", "weights"]
        )
        min_words = pp.config.get(config, "min_words", float, 20.0)
        if min_words < 0:
            raise pp.InvalidConfig(f"config key `min_words`: must not be negative, got {min_words:g}")
        max_words = positive_number(config, "max_words", 300)
        if max_words < min_words:
            raise pp.InvalidConfig(
                f"config key `max_words`: {max_words:g} is below min_words {min_words:g}"
            )
        self.band = Band(
            min_words,
            max_words,
            positive_number(config, "max_sentence_words", 25),
            positive_number(config, "target_ease", 60),
        )
        weights = pp.config.get(config, "weights", dict, {})
        pp.config.only_keys(weights, CRITERIA)
        self.weights = {}
        for name in CRITERIA:
            weight = pp.config.get(weights, name, float, 1.0)
            if weight < 0:
                raise pp.InvalidConfig(f"config key `weights.{name}`: must not be negative, got {weight:g}")
            self.weights[name] = weight
        if sum(self.weights.values()) <= 0:
            raise pp.InvalidConfig("config key `weights`: at least one weight must be positive")
        pp.log.debug(f"judge-py-rubric: weights {self.weights}")

    def band_of(self, request):
        """The band of one request: the configured one, narrowed by its metadata's `rubric`."""
        metadata = request.metadata_json()
        rubric = metadata.get("rubric") if isinstance(metadata, dict) else None
        if rubric is None:
            return self.band
        if not isinstance(rubric, dict):
            raise pp.InvalidInput("metadata `rubric`: expected a table")
        try:
            pp.config.only_keys(rubric, ["min_words", "max_words"])
            min_words = pp.config.get(rubric, "min_words", float, self.band.min_words)
            max_words = pp.config.get(rubric, "max_words", float, self.band.max_words)
        except pp.InvalidConfig as error:
            raise pp.InvalidInput("metadata `rubric`: " + error.message.replace("config key ", "key ")) from None
        if min_words < 0 or max_words <= 0 or max_words < min_words:
            raise pp.InvalidInput(
                f"metadata `rubric`: need 0 <= min_words <= max_words and max_words > 0, "
                f"got {min_words:g} and {max_words:g}"
            )
        return Band(min_words, max_words, self.band.max_sentence_words, self.band.target_ease)

    def score(self, text, band):
        """The weighted mean of the criteria; 0 for an empty response."""
        if not words(text):
            return 0.0
        found = criteria(text, band)
        total = sum(self.weights.values())
        return sum(self.weights[name] * found[name] for name in CRITERIA) / total

    def judge(self, requests, models):
        outcomes = []
        for request in requests:
            try:
                band = self.band_of(request)
            except pp.PluginFailure as failure:
                outcomes.append(failure)
                continue
            outcomes.append([self.score(response, band) for response in request.responses])
        return outcomes

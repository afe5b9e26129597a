"""Native tests of judge-py-rubric (no WebAssembly): `python -m unittest` in this directory with
the SDK on the path (`PYTHONPATH=../../sdk/python`); scripts/build-plugins.sh runs them before
building the component."""

import unittest

import ponder_plugin as pp
from judge_py_rubric import RubricJudge, flesch_reading_ease, format_problems, sentences, syllables

PLAIN = (
    "Tea is a drink made from the leaves of a plant. People in many countries drink it every day. "
    "It can be served hot or cold, with milk or with lemon. Green tea and black tea come from the "
    "same plant but are dried in different ways."
)


def judge(config=None):
    plugin = RubricJudge()
    plugin.configure(config or {})
    return plugin


def scores(plugin, responses, metadata="{}"):
    request = pp.JudgeRequest([pp.Message.user("Tell me about tea.")], responses, None, metadata)
    (outcome,) = plugin.judge([request], pp.NoModels())
    return outcome


class Text(unittest.TestCase):
    def test_syllables(self):
        self.assertEqual([syllables(w) for w in ["tea", "make", "table", "beautiful", "a"]], [1, 1, 2, 3, 1])

    def test_sentences_split_at_ends_blank_lines_and_list_items(self):
        self.assertEqual(sentences("One. Two!\n\nThree\n- four\n- five"), ["One.", "Two!", "Three", "- four", "- five"])

    def test_plain_text_reads_easily(self):
        self.assertGreater(flesch_reading_ease(PLAIN), 60)
        dense = "Notwithstanding considerable institutional heterogeneity, organisational epistemologies systematically operationalise interdisciplinary methodologies."
        self.assertLess(flesch_reading_ease(dense), 0)

    def test_format_problems(self):
        self.assertEqual(format_problems(PLAIN), [])
        self.assertEqual(
            format_problems("Here is my thought process: ```python\nx = (1"),
            ["unclosed code fence", "leftover thought marker", "unbalanced brackets or quotes"],
        )
        self.assertEqual(format_problems(" ".join(["word"] * 130)), ["one long paragraph"])


class Judging(unittest.TestCase):
    def test_plain_answer_beats_rambling_and_broken_ones(self):
        rambling = " ".join(["tea is good and tea is good"] * 20)
        broken = "Here is my thought process: ```" + PLAIN
        good, bad, worse, empty = scores(judge(), [PLAIN, rambling, broken, "   "])
        self.assertGreater(good, 0.9)
        self.assertLess(bad, good)
        self.assertLess(worse, good)
        self.assertEqual(empty, 0.0)
        for value in (good, bad, worse):
            self.assertTrue(0.0 <= value <= 1.0)

    def test_weights_select_criteria(self):
        only_length = judge({"weights": {"length": 1, "sentences": 0, "readability": 0, "repetition": 0, "format": 0}})
        self.assertEqual(scores(only_length, ["one two three four five", PLAIN]), [0.25, 1.0])

    def test_metadata_narrows_the_band_and_bad_metadata_fails_its_request_only(self):
        plugin = judge({"weights": {"length": 1, "sentences": 0, "readability": 0, "repetition": 0, "format": 0}})
        self.assertEqual(scores(plugin, [PLAIN], '{"rubric": {"min_words": 5, "max_words": 20}}'), [0.0])
        ok = pp.JudgeRequest([pp.Message.user("q")], ["a b c d e"], None, '{"rubric": {"min_words": 5}}')
        bad = pp.JudgeRequest([pp.Message.user("q")], ["a"], None, '{"rubric": {"max_words": "ten"}}')
        invalid_json = pp.JudgeRequest([pp.Message.user("q")], ["a"], None, "{")
        first, second, third = plugin.judge([ok, bad, invalid_json], pp.NoModels())
        self.assertEqual(first, [1.0])
        self.assertEqual(second, pp.InvalidInput("metadata `rubric`: key `max_words`: expected float, got \"ten\""))
        self.assertIsInstance(third, pp.InvalidInput)

    def test_configuration_errors_name_the_key(self):
        for config, key in [
            ({"max_words": 0}, "max_words"),
            ({"min_words": 50, "max_words": 10}, "max_words"),
            ({"weights": {"length": -1}}, "weights.length"),
            ({"weights": {"lenght": 1}}, "lenght"),
            ({"wieghts": {}}, "wieghts"),
            ({"target_ease": "high"}, "target_ease"),
        ]:
            with self.assertRaises(pp.InvalidConfig, msg=str(config)) as raised:
                judge(config)
            self.assertIn(f"`{key}`", raised.exception.message)


if __name__ == "__main__":
    unittest.main()

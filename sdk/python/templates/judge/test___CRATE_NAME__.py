"""Native tests: `PYTHONPATH={{sdk_path}}/python python3 -m unittest`."""

import unittest

import ponder_plugin as pp
from __CRATE_NAME__ import KeywordJudge


class Tests(unittest.TestCase):
    def test_scores_the_fraction_of_keywords(self):
        judge = KeywordJudge()
        judge.configure({"keywords": ["Paris", "France"]})
        request = pp.JudgeRequest(
            [pp.Message.user("What is the capital of France?")],
            ["Paris, France.", "It is Paris.", "Lyon"],
        )
        self.assertEqual(judge.judge([request], pp.NoModels()), [[1.0, 0.5, 0.0]])

    def test_missing_keywords_are_a_config_error(self):
        with self.assertRaises(pp.InvalidConfig) as raised:
            KeywordJudge().configure({})
        self.assertIn("keywords", raised.exception.message)


if __name__ == "__main__":
    unittest.main()

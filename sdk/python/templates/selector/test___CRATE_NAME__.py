"""Native tests: `PYTHONPATH={{sdk_path}}/python python3 -m unittest`."""

import unittest

import ponder_plugin as pp
from __CRATE_NAME__ import BestWorst


class Tests(unittest.TestCase):
    def test_best_against_worst(self):
        selector = BestWorst()
        selector.configure({"min_margin": 0.1})
        group = [
            pp.Candidate(score=0.5, parsed=True),
            pp.Candidate(score=None, parsed=False),
            pp.Candidate(score=0.9, parsed=True),
            pp.Candidate(score=0.2, parsed=True),
        ]
        close = [pp.Candidate(score=0.5, parsed=True), pp.Candidate(score=0.55, parsed=True)]
        self.assertEqual(selector.select([group, close, []]), [[pp.Pair(2, 3)], [], []])


if __name__ == "__main__":
    unittest.main()

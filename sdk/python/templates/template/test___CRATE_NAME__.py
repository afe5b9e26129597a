"""Native tests: `PYTHONPATH={{sdk_path}}/python python3 -m unittest`."""

import unittest

import ponder_plugin as pp
from __CRATE_NAME__ import TagTemplate


class Tests(unittest.TestCase):
    def setUp(self):
        self.template = TagTemplate()
        self.template.configure({})

    def test_render_prefixes_the_last_message(self):
        (message,) = self.template.render([pp.Message.user("Name a colour.")])
        self.assertEqual(message.role, "user")
        self.assertTrue(message.content.endswith("Name a colour."))
        self.assertIn("<thought>", message.content)

    def test_parse_splits_and_accepts_a_forced_response(self):
        self.assertEqual(self.template.parse("<thought>hmm</thought> Blue."), pp.Split("hmm", "Blue."))
        forced = self.template.output_format().forced_output(" long thought", "Red.")
        self.assertEqual(self.template.parse(forced), pp.Split("long thought", "Red."))
        self.assertIsInstance(self.template.parse("Blue."), pp.ParseFailure)


if __name__ == "__main__":
    unittest.main()

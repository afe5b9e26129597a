"""Native tests of the Python SDK: `cd sdk/python && python3 -m unittest discover -s tests`
(scripts/test-plugin-langs.sh runs them). The WebAssembly side (`_glue`, the build) is tested by
host/plugin-runtime/tests/hostile_python.rs and tests/tests/plugin_langs.rs."""

import json
import unittest

import ponder_plugin as pp
from ponder_plugin import build, config, plugin


class Config(unittest.TestCase):
    def test_parse_takes_a_table_only(self):
        self.assertEqual(config.parse('{"a": 1}'), {"a": 1})
        with self.assertRaises(pp.InvalidConfig):
            config.parse("[1]")
        with self.assertRaises(pp.InvalidConfig):
            config.parse("{")

    def test_get_checks_types_and_names_the_key(self):
        table = {"n": 3, "x": 0.5, "flag": True, "name": "a", "inf": float("inf")}
        self.assertEqual(config.get(table, "n", float), 3.0)
        self.assertIsInstance(config.get(table, "n", float), float)
        self.assertEqual(config.get(table, "n", int), 3)
        self.assertIs(config.get(table, "flag", bool), True)
        self.assertEqual(config.get(table, "missing", str, "default"), "default")
        for key, kind, text in [
            ("flag", float, "config key `flag`: expected float, got true"),
            ("name", int, 'config key `name`: expected int, got "a"'),
            ("missing", str, "config key `missing` is missing"),
            ("inf", float, "config key `inf`: inf is not finite"),
        ]:
            with self.assertRaises(pp.InvalidConfig) as raised:
                config.get(table, key, kind)
            self.assertEqual(raised.exception.message, text)

    def test_only_keys_names_the_unknown_key(self):
        config.only_keys({"a": 1}, ["a", "b"])
        with self.assertRaises(pp.InvalidConfig) as raised:
            config.only_keys({"a": 1, "c": 2}, ["a", "b"])
        self.assertEqual(raised.exception.message, "unknown config key `c` (expected: `a`, `b`)")

    def test_default_configure_accepts_no_keys(self):
        pp.Judge().configure({})
        with self.assertRaises(pp.InvalidConfig):
            pp.Judge().configure({"x": 1})


class Types(unittest.TestCase):
    def test_failures_compare_by_kind_and_message(self):
        self.assertEqual(pp.InvalidInput("x"), pp.InvalidInput("x"))
        self.assertNotEqual(pp.InvalidInput("x"), pp.Failed("x"))
        self.assertEqual(pp.InvalidConfig("x").kind, "invalid-config")

    def test_model_error_is_a_failure(self):
        error = pp.ModelError("unknown-model", "judge")
        self.assertIsInstance(error, pp.Failed)
        self.assertEqual((error.error_kind, error.detail, error.message), ("unknown-model", "judge", "unknown model `judge`"))
        with self.assertRaises(ValueError):
            pp.ModelError("teapot")
        with self.assertRaises(pp.ModelError) as raised:
            pp.NoModels().generate("judge", [])
        self.assertEqual(raised.exception.error_kind, "not-granted")

    def test_metadata_json(self):
        request = pp.JudgeRequest([pp.Message.user("q")], ["a"], None, '{"k": [1]}')
        self.assertEqual(request.metadata_json(), {"k": [1]})
        with self.assertRaises(pp.InvalidInput):
            pp.JudgeRequest([], [], None, "{").metadata_json()

    def test_forced_output(self):
        fmt = pp.OutputFormat("Thought:", "Response:", "\nResponse:")
        self.assertEqual(fmt.forced_output(" t", " r"), "Thought: t\nResponse: r")
        self.assertEqual(pp.OutputFormat().forced_output("t", "r"), "tr")

    def test_candidate_is_scored(self):
        self.assertTrue(pp.Candidate(score=0.5, parsed=True).is_scored())
        self.assertFalse(pp.Candidate(score=0.5, parsed=False).is_scored())
        self.assertFalse(pp.Candidate(score=None, parsed=True).is_scored())


class Export(unittest.TestCase):
    def setUp(self):
        self.saved = plugin._exported
        plugin._exported = None

    def tearDown(self):
        plugin._exported = self.saved

    def test_one_plugin_per_module(self):
        class A(pp.Judge):
            pass

        class B(pp.PairSelector):
            pass

        self.assertIs(pp.export_judge(A), A)
        self.assertEqual(plugin.exported(), ("judge", A))
        pp.export_judge(A)  # the same export again is harmless
        with self.assertRaises(RuntimeError):
            pp.export_selector(B)

    def test_export_checks_the_base_class(self):
        class NotAJudge:
            pass

        with self.assertRaises(TypeError):
            pp.export_judge(NotAJudge)
        with self.assertRaises(TypeError):
            pp.export_template(pp.Judge)


class Build(unittest.TestCase):
    def test_entry_module_takes_the_worlds_export_class(self):
        source = build.entry_source("my_judge", "judge")
        self.assertIn("import my_judge", source)
        self.assertIn("Judging = _glue.judging_class()", source)
        self.assertIn("Selector = _glue.selector_class()", build.entry_source("s", "selector"))
        self.assertIn("Template = _glue.template_class()", build.entry_source("t", "template"))

    def test_bundled_wit_declares_the_sdk_version(self):
        text = (build.WIT_DIR / "ponder-plugin.wit").read_text()
        self.assertIn(f"package ponder:plugin@{pp.WIT_VERSION};", text)
        for world in build.WORLDS.values():
            self.assertIn(f"world {world} {{", text)


if __name__ == "__main__":
    unittest.main()

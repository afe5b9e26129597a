"""The glue between componentize-py's generated bindings (`wit_world`, present only inside a
component build) and the plain Python API. `ponder_plugin.build` generates an entry module that
imports the plugin's module and then takes its export class from here:

    Template = _glue.template_class()     # world thought-template
    Judging = _glue.judging_class()       # world judge
    Selector = _glue.selector_class()     # world pair-selector

componentize-py makes a new object of the export class for every call, so the configured plugin
lives in this module (`_plugin`), not on the export object. An uncaught exception traps the call
(componentize-py prints its traceback to stderr, which the host puts in the error and its log),
as a panic does in a Rust plugin; the host then starts a fresh instance.
"""

from __future__ import annotations

from typing import Any, Callable, List

from componentize_py_types import Err, Ok

from . import config as _config
from . import log as _log
from . import plugin as _plugin_module
from .models import ChoiceRequest, GenerateRequest, ModelError, Models, RewardRequest
from .types import (
    Candidate,
    JudgeRequest,
    Message,
    OutputFormat,
    Pair,
    ParseFailure,
    PluginFailure,
    Split,
)
from wit_world.imports import log as _wit_log
from wit_world.imports import types as _wit_types

# The configured plugin; `None` until `configure` succeeded.
_plugin: Any = None

_LEVELS = {
    "trace": _wit_log.Level.TRACE,
    "debug": _wit_log.Level.DEBUG,
    "info": _wit_log.Level.INFO,
    "warn": _wit_log.Level.WARN,
    "error": _wit_log.Level.ERROR,
}


def _host_log(level: str, message: str) -> None:
    _wit_log.log(_LEVELS[level], message)


_log._sink = _host_log


def _exported(role: str) -> type:
    exported = _plugin_module.exported()
    if exported is None:
        raise RuntimeError(
            f"the plugin module exports no plugin: call ponder_plugin.export_{role}(YourClass)"
        )
    if exported[0] != role:
        raise RuntimeError(f"this component is built as a {role}, but the module exports a {exported[0]}")
    return exported[1]


def _wit_error(failure: PluginFailure) -> Any:
    if failure.kind == "invalid-config":
        return _wit_types.PluginError_InvalidConfig(failure.message)
    if failure.kind == "invalid-input":
        return _wit_types.PluginError_InvalidInput(failure.message)
    return _wit_types.PluginError_Failed(failure.message)


def _guarded(call: Callable[[], Any]) -> Any:
    """Runs `call`: a `PluginFailure` becomes the WIT error; anything else propagates and traps."""
    try:
        return call()
    except PluginFailure as failure:
        raise Err(_wit_error(failure)) from None


def _configure(role: str, text: str) -> None:
    global _plugin
    cls = _exported(role)

    def make() -> None:
        global _plugin
        plugin = cls()
        plugin.configure(_config.parse(text))
        _plugin = plugin

    _plugin = None
    _guarded(make)


def _configured() -> Any:
    if _plugin is None:
        raise Err(_wit_types.PluginError_Failed("the plugin is not configured"))
    return _plugin


def _message(message: Any) -> Message:
    return Message(message.role, message.content)


def _wit_message(message: Message) -> Any:
    return _wit_types.Message(str(message.role), str(message.content))


def template_class() -> type:
    """The export class of world `thought-template`."""
    from wit_world import exports
    from wit_world.exports import template as wit_template

    def output_format(format: OutputFormat) -> Any:
        return wit_template.OutputFormat(
            str(format.assistant_prefix),
            None if format.response_separator is None else str(format.response_separator),
            str(format.forced_response),
        )

    class Template(exports.Template):
        def configure(self, config: str) -> None:
            _configure("template", config)

        def render(self, instruction: List[Any]) -> List[Any]:
            plugin = _configured()
            messages = _guarded(lambda: plugin.render([_message(m) for m in instruction]))
            return [_wit_message(m) for m in messages]

        def parse(self, output: str) -> Any:
            plugin = _configured()
            parsed = _guarded(lambda: plugin.parse(output))
            if isinstance(parsed, Split):
                return wit_template.Parsed_Ok(wit_template.Split(str(parsed.thought), str(parsed.response)))
            if isinstance(parsed, ParseFailure):
                return wit_template.Parsed_Failure(str(parsed.reason))
            raise TypeError(f"parse must return Split or ParseFailure, got {parsed!r}")

        def get_output_format(self) -> Any:
            plugin = _configured()
            return output_format(_guarded(plugin.output_format))

    return Template


class _HostModels(Models):
    """`models` served by the host's imports."""

    def __init__(self) -> None:
        from wit_world.imports import models

        self._wit = models

    def _call(self, function: Callable[[], Any]) -> Any:
        try:
            return function()
        except Err as error:
            value = error.value
            kind = {
                "ModelError_NotGranted": "not-granted",
                "ModelError_UnknownModel": "unknown-model",
                "ModelError_InvalidRequest": "invalid-request",
                "ModelError_Unsupported": "unsupported",
            }.get(type(value).__name__, "failed")
            raise ModelError(kind, getattr(value, "value", "") or "") from None

    def _messages(self, messages: List[Message]) -> List[Any]:
        return [_wit_message(m) for m in messages]

    def generate(self, model: str, requests: List[GenerateRequest]) -> List[str]:
        wit = self._wit
        converted = [
            wit.GenerateRequest(
                self._messages(r.messages),
                wit.Sampling(
                    float(r.sampling.temperature),
                    float(r.sampling.top_p),
                    int(r.sampling.max_new_tokens),
                    int(r.sampling.seed),
                    [str(s) for s in r.sampling.stop],
                ),
            )
            for r in requests
        ]
        return self._call(lambda: wit.generate(model, converted))

    def choice_logprobs(self, model: str, requests: List[ChoiceRequest]) -> List[List[float]]:
        wit = self._wit
        converted = [
            wit.ChoiceRequest(self._messages(r.messages), str(r.prefix), [str(c) for c in r.choices])
            for r in requests
        ]
        return self._call(lambda: wit.choice_logprobs(model, converted))

    def reward(self, model: str, requests: List[RewardRequest]) -> List[float]:
        wit = self._wit
        converted = [wit.RewardRequest(self._messages(r.messages), str(r.response)) for r in requests]
        return self._call(lambda: wit.reward(model, converted))


def _score(score: Any, request: int, response: int) -> Any:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise TypeError(f"request {request}, response {response}: score {score!r} is not a number or None")
    return float(score)


def judging_class() -> type:
    """The export class of world `judge`."""
    from wit_world import exports

    models = _HostModels()

    def outcomes(requests: List[Any]) -> List[Any]:
        plugin = _configured()
        plain = [
            JudgeRequest([_message(m) for m in r.instruction], list(r.responses), r.reference, r.metadata)
            for r in requests
        ]
        try:
            results = plugin.judge(plain, models)
        except PluginFailure as failure:
            return [Err(_wit_error(failure)) for _ in requests]
        converted = []
        for index, result in enumerate(results):
            if isinstance(result, PluginFailure):
                converted.append(Err(_wit_error(result)))
            elif isinstance(result, (list, tuple)):
                converted.append(Ok([_score(s, index, j) for j, s in enumerate(result)]))
            else:
                raise TypeError(f"request {index}: expected a list of scores or a PluginFailure, got {result!r}")
        return converted

    class Judging(exports.Judging):
        def configure(self, config: str) -> None:
            _configure("judge", config)

        def judge(self, requests: List[Any]) -> List[Any]:
            return outcomes(requests)

    return Judging


def selector_class() -> type:
    """The export class of world `pair-selector`."""
    from wit_world import exports
    from wit_world.exports import selector as wit_selector

    def pair(value: Any, group: int) -> Any:
        if not isinstance(value, Pair):
            raise TypeError(f"group {group}: expected Pair, got {value!r}")
        return wit_selector.Pair(int(value.chosen), int(value.rejected), float(value.weight))

    class Selector(exports.Selector):
        def configure(self, config: str) -> None:
            _configure("selector", config)

        def select(self, groups: List[List[Any]]) -> List[List[Any]]:
            plugin = _configured()
            plain = [
                [
                    Candidate(
                        c.score,
                        c.parsed,
                        c.response_tokens,
                        c.response_chars,
                        c.thought_tokens,
                        c.thought_chars,
                        c.output_tokens,
                    )
                    for c in group
                ]
                for group in groups
            ]

            def run() -> List[List[Any]]:
                selected = plugin.select(plain)
                return [[pair(p, index) for p in pairs] for index, pairs in enumerate(selected)]

            return _guarded(run)

    return Selector


__all__ = ["template_class", "judging_class", "selector_class"]

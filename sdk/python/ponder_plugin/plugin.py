"""The three plugin roles as base classes, and the `export_*` calls that make a class the
component's plugin.

The host creates the plugin once: `configure` is called on a fresh instance before anything
else, and the same instance serves every later call (componentize-py makes a new object of its
export class for every call, so the SDK keeps the configured plugin itself, at module level).
After any failure that traps (an uncaught exception, a limit), the host starts a fresh instance
and calls `configure` again.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Type

from .models import Models
from .types import (
    Candidate,
    InvalidConfig,
    JudgeOutcome,
    JudgeRequest,
    Message,
    OutputFormat,
    Pair,
    Parsed,
)


class _Configurable:
    def configure(self, config: Dict[str, Any]) -> None:
        """Receives the plugin's manifest table (parsed JSON, `{}` when absent); raise
        `InvalidConfig` naming the key for a bad one. The default accepts no keys."""
        if config:
            key = next(iter(config))
            raise InvalidConfig(f"unknown config key `{key}` (this plugin takes no configuration)")


class ThoughtTemplate(_Configurable):
    """A thought template: how the thought prompt reads and how an output splits."""

    def render(self, instruction: List[Message]) -> List[Message]:
        """The messages the policy model is prompted with, around the instruction."""
        raise NotImplementedError

    def parse(self, output: str) -> Parsed:
        """`Split(thought, response)`, or `ParseFailure(reason)`."""
        raise NotImplementedError

    def output_format(self) -> OutputFormat:
        """How the host shapes generation (default: no prefix, no separator)."""
        return OutputFormat()


class Judge(_Configurable):
    """A judge: scores the responses of every request."""

    def judge(self, requests: List[JudgeRequest], models: Models) -> List[JudgeOutcome]:
        """One entry per request, in order: a list of one optional score per response (same
        length and order; `None` when a response cannot be judged; finite, higher is better), or
        a `PluginFailure` for a request that cannot be judged at all. Raising a `PluginFailure`
        fails every request of the call with it."""
        raise NotImplementedError


class PairSelector(_Configurable):
    """A pair selector: makes preference pairs from every instruction's scored candidates."""

    def select(self, groups: List[List[Candidate]]) -> List[List[Pair]]:
        """At index `i`, the pairs of group `i` (possibly none)."""
        raise NotImplementedError


#: The exported plugin: (role, class), set once by an `export_*` call.
_exported: Optional[tuple] = None


def _export(role: str, base: type, cls: Type) -> Type:
    global _exported
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise TypeError(f"export_{role} takes a subclass of ponder_plugin.{base.__name__}, got {cls!r}")
    if _exported is not None and _exported != (role, cls):
        raise RuntimeError(
            f"a module exports one plugin; {_exported[1].__name__} is already exported as the {_exported[0]}"
        )
    _exported = (role, cls)
    return cls


def export_template(cls: Type[ThoughtTemplate]) -> Type[ThoughtTemplate]:
    """Makes `cls` the component's thought template (usable as a class decorator)."""
    return _export("template", ThoughtTemplate, cls)


def export_judge(cls: Type[Judge]) -> Type[Judge]:
    """Makes `cls` the component's judge (usable as a class decorator)."""
    return _export("judge", Judge, cls)


def export_selector(cls: Type[PairSelector]) -> Type[PairSelector]:
    """Makes `cls` the component's pair selector (usable as a class decorator)."""
    return _export("selector", PairSelector, cls)


def exported() -> Optional[tuple]:
    """The exported `(role, class)`, or `None` before any `export_*` call."""
    return _exported

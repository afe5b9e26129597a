"""The contract's values as plain Python: what plugins receive and return.

Field names are the WIT field names in snake_case (`wit/ponder-plugin.wit`, package
`ponder:plugin@0.2.0`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, List, Optional, Union


class PluginFailure(Exception):
    """Why a plugin call failed (WIT `plugin-error`). Raise a subclass: `InvalidConfig`,
    `InvalidInput` or `Failed`. The host reports the plugin, the call and this message."""

    #: The WIT case: `invalid-config`, `invalid-input` or `failed`.
    kind = "failed"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = str(message)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, PluginFailure)
            and other.kind == self.kind
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidConfig(PluginFailure):
    """The configuration (the JSON of the plugin's manifest table) is unusable; say which key
    and why."""

    kind = "invalid-config"


class InvalidInput(PluginFailure):
    """The input of this call is unusable (a malformed metadata field, say); say what and where."""

    kind = "invalid-input"


class Failed(PluginFailure):
    """The plugin could not do its work for another reason (a model call failed, say)."""

    kind = "failed"


@dataclass
class Message:
    """One chat message, as in the Hugging Face chat format."""

    role: str
    content: str

    @staticmethod
    def user(content: str) -> "Message":
        """A `user` message."""
        return Message("user", content)

    @staticmethod
    def system(content: str) -> "Message":
        """A `system` message."""
        return Message("system", content)

    @staticmethod
    def assistant(content: str) -> "Message":
        """An `assistant` message."""
        return Message("assistant", content)


@dataclass
class JudgeRequest:
    """All candidates for one instruction. Thoughts are withheld: a judge sees responses only."""

    instruction: List[Message]
    responses: List[str]
    reference: Optional[str] = None
    #: The dataset row's `metadata` field as JSON text (`{}` when absent).
    metadata: str = "{}"

    def metadata_json(self) -> Any:
        """The metadata parsed from JSON; malformed JSON raises `InvalidInput`."""
        try:
            return json.loads(self.metadata)
        except ValueError as error:
            raise InvalidInput(f"metadata is not valid JSON: {error}") from None


@dataclass
class Candidate:
    """One sampled output of the policy model, as a pair selector sees it."""

    #: The judge's score; `None` for a parse failure or a response the judge could not score.
    score: Optional[float] = None
    #: Whether the output parsed into thought and response.
    parsed: bool = False
    response_tokens: int = 0
    response_chars: int = 0
    thought_tokens: int = 0
    thought_chars: int = 0
    output_tokens: int = 0

    def is_scored(self) -> bool:
        """Parsed and scored: a candidate a selector can rank."""
        return self.parsed and self.score is not None


@dataclass
class Pair:
    """A preference pair, naming candidates of the same group by index. The host checks that
    `chosen != rejected`, that both are in range and that the weight is positive and finite."""

    chosen: int
    rejected: int
    weight: float = 1.0


@dataclass
class Split:
    """An output split into thought and response (what `parse` returns on success)."""

    thought: str
    response: str


@dataclass
class ParseFailure:
    """What `parse` returns when an output does not have the expected format: the reason."""

    reason: str


#: The result of `ThoughtTemplate.parse`.
Parsed = Union[Split, ParseFailure]


@dataclass
class OutputFormat:
    """How the host shapes generation for a template (WIT `output-format`): the text the assistant
    turn starts with, the response separator `parse` expects (`None` for direct answers) and the
    text the host appends when it forces the response."""

    assistant_prefix: str = ""
    response_separator: Optional[str] = None
    forced_response: str = ""

    def forced_output(self, thought: str, response: str) -> str:
        """The output the host produces when it forces the response after `thought`."""
        if self.response_separator is None:
            return self.assistant_prefix + thought + response
        return self.assistant_prefix + thought + self.forced_response + response


#: A judge's answer for one request: one optional score per response, or the failure that made
#: the whole request unjudgeable.
JudgeOutcome = Union[List[Optional[float]], PluginFailure]

__all__ = [
    "PluginFailure",
    "InvalidConfig",
    "InvalidInput",
    "Failed",
    "Message",
    "JudgeRequest",
    "Candidate",
    "Pair",
    "Split",
    "ParseFailure",
    "Parsed",
    "OutputFormat",
    "JudgeOutcome",
]

"""The `models` capability (judges only): batched calls to the models the manifest names under
`[models.NAME]`. The manifest must grant it (`grant = ["models"]`); otherwise every call raises
`ModelError` of kind `not-granted`. Send one call with the work of all requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

from .types import Failed, Message


class ModelError(Failed):
    """A model call failed (WIT `model-error`). `kind` is `not-granted`, `unknown-model`,
    `invalid-request`, `unsupported` or `failed`. It is a `Failed`: raised out of `judge`, it
    fails every request of the call with its message, like `?` on a `ModelAccessError` in Rust."""

    #: Every WIT case of `model-error`.
    KINDS = ("not-granted", "unknown-model", "invalid-request", "unsupported", "failed")

    def __init__(self, kind: str, message: str = ""):
        if kind not in self.KINDS:
            raise ValueError(f"unknown model error kind {kind!r}")
        text = {
            "not-granted": "models are not granted to this plugin (grant = [\"models\"] in the manifest)",
            "unknown-model": f"unknown model `{message}`",
        }.get(kind, f"{kind}: {message}")
        super().__init__(text)
        #: The WIT case.
        self.error_kind = kind
        #: The text the host sent (the model name for `unknown-model`).
        self.detail = message


@dataclass
class Sampling:
    """Sampling settings of one generation request; `temperature` 0 is greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    #: Seed of this request's random stream.
    seed: int = 0
    #: Generation stops after any of these strings (included in the output).
    stop: List[str] = field(default_factory=list)


@dataclass
class GenerateRequest:
    """One generation request: the conversation and how to sample the reply."""

    messages: List[Message]
    sampling: Sampling = field(default_factory=Sampling)


@dataclass
class ChoiceRequest:
    """The log-probabilities of alternative continuations after the conversation and `prefix`."""

    messages: List[Message]
    prefix: str
    choices: List[str]


@dataclass
class RewardRequest:
    """A reward model's scalar for `response` after `messages`."""

    messages: List[Message]
    response: str


class Models:
    """What a judge's `judge` receives as `models`. Subclass it for test doubles."""

    def generate(self, model: str, requests: Sequence[GenerateRequest]) -> List[str]:
        """One reply per request, in order, without the prompt."""
        raise ModelError("not-granted")

    def choice_logprobs(self, model: str, requests: Sequence[ChoiceRequest]) -> List[List[float]]:
        """Per request, the total log-probability of each choice, in the order of `choices`."""
        raise ModelError("not-granted")

    def reward(self, model: str, requests: Sequence[RewardRequest]) -> List[float]:
        """Per request, the reward model's scalar."""
        raise ModelError("not-granted")


class NoModels(Models):
    """No models at all: every call raises `ModelError("not-granted")` (for native tests)."""


__all__ = [
    "ModelError",
    "Sampling",
    "GenerateRequest",
    "ChoiceRequest",
    "RewardRequest",
    "Models",
    "NoModels",
]

"""Hostile judge in Python for the runtime's tests (host/plugin-runtime/tests/hostile_python.rs),
built with the Python SDK (`python -m ponder_plugin.build`). The configuration names its attack
(`{"attack": "loop"}`); a request whose first response is `"attack"` triggers it. Every other
request is judged like the Rust guests judge (`tests/guests/guest-support`): each response scores
its length in characters.

One module serves every attack so that the tests build and compile one 18 MB component, not one
per attack.
"""

import os
import random
import sys
import time

import ponder_plugin as pp
from ponder_plugin.models import GenerateRequest, Sampling

# Modules are imported while the component is built (componentize-py snapshots the interpreter
# then); one first imported inside a call is not found. `socket` may be missing from the WASI
# build of CPython: the attack reports that.
# `encodings.idna` is what `socket` encodes host names with.
import encodings.idna  # noqa: F401
import socket

ATTACKS = (
    "loop",
    "alloc",
    "recursion",
    "recursion-limit",
    "c-recursion",
    "output",
    "exception",
    "failure",
    "nan",
    "wrong-length",
    "read-file",
    "socket",
    "env",
    "models",
    "clock",
    "random",
)


def _recurse(depth):
    return _recurse(depth + 1) + 1


def attack(kind, request, models):
    """Runs the attack `kind` on `request`; returns its scores if it returns at all."""
    if kind == "loop":
        while True:
            pass
    if kind == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(8 << 20))
    if kind == "recursion":
        # Past Python's own guard: the interpreter's C stack overflows.
        sys.setrecursionlimit(10_000_000)
        return [float(_recurse(0))]
    if kind == "recursion-limit":
        return [float(_recurse(0))]
    if kind == "c-recursion":
        # Recursion in C (repr of a deeply nested list), past Python's guard.
        sys.setrecursionlimit(10_000_000)
        nested = []
        for _ in range(1_000_000):
            nested = [nested]
        return [float(len(repr(nested)))]
    if kind == "output":
        # 64 million scores: far more than the host accepts, and more than the memory cap lets
        # the result be lowered into.
        return [1.0] * (64 << 20)
    if kind == "exception":
        raise ValueError("hostile Python judge raised on purpose")
    if kind == "failure":
        raise pp.Failed("hostile Python judge failed on purpose")
    if kind == "nan":
        return [float("inf"), float("nan")]
    if kind == "wrong-length":
        return [1.0]
    if kind == "read-file":
        try:
            with open("/etc/passwd") as file:
                text = file.read()
        except OSError as error:
            raise RuntimeError(f"reading /etc/passwd: {error!r}") from None
        return [float(len(text))]
    if kind == "socket":
        try:
            connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            connection.connect(("127.0.0.1", 80))
        except OSError as error:
            raise RuntimeError(f"connecting to 127.0.0.1:80: {error!r}") from None
        connection.close()
        return [1.0]
    if kind == "env":
        raise RuntimeError(f"reading the environment: {dict(os.environ)!r} argv {sys.argv!r}")
    if kind == "models":
        replies = models.generate(
            "judge",
            [GenerateRequest([pp.Message.user(text)], Sampling(max_new_tokens=4)) for text in request.responses],
        )
        return [float(len(reply)) for reply in replies]
    if kind == "clock":
        return [time.time(), time.monotonic()]
    if kind == "random":
        return [random.random(), float(int.from_bytes(os.urandom(4), "little"))]
    raise pp.InvalidInput(f"no attack {kind!r}")


@pp.export_judge
class HostileJudge(pp.Judge):
    """Length scores, and the configured attack on `"attack"`."""

    def configure(self, config):
        pp.config.only_keys(config, ["attack"])
        self.attack = pp.config.get(config, "attack", str)
        if self.attack not in ATTACKS:
            raise pp.InvalidConfig(f"config key `attack`: unknown attack {self.attack!r}")

    def judge(self, requests, models):
        outcomes = []
        for request in requests:
            if request.responses[:1] == ["attack"]:
                outcomes.append(attack(self.attack, request, models))
            else:
                outcomes.append([float(len(response)) for response in request.responses])
        return outcomes

"""Logging into the host's log (`[plugin NAME] LEVEL: text`). Natively, records go to stderr.
The host drops records past 64 KiB of log text per call."""

from __future__ import annotations

import sys
from typing import Callable

#: The levels of WIT `log.level`, lowest first.
LEVELS = ("trace", "debug", "info", "warn", "error")


def _stderr(level: str, message: str) -> None:
    print(f"{level}: {message}", file=sys.stderr)


# Where records go: stderr natively; the WebAssembly glue points it at the host's `log`.
_sink: Callable[[str, str], None] = _stderr


def log(level: str, message: str) -> None:
    """Writes one record at `level` (one of `LEVELS`)."""
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
    _sink(level, str(message))


def trace(message: str) -> None:
    """A `trace` record."""
    log("trace", message)


def debug(message: str) -> None:
    """A `debug` record."""
    log("debug", message)


def info(message: str) -> None:
    """An `info` record."""
    log("info", message)


def warn(message: str) -> None:
    """A `warn` record."""
    log("warn", message)


def error(message: str) -> None:
    """An `error` record."""
    log("error", message)

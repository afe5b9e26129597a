"""Reading a plugin's configuration (the JSON of its manifest table, `{}` when absent) with errors
that name the key, as `InvalidConfig`."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, Tuple, Type, Union

from .types import InvalidConfig

_MISSING = object()


def parse(text: str) -> Dict[str, Any]:
    """The configuration JSON as a dict; anything but a JSON object raises `InvalidConfig`."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidConfig(f"the configuration is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidConfig(f"the configuration must be a table, got {type(value).__name__}")
    return value


def only_keys(config: Dict[str, Any], allowed: Iterable[str]) -> None:
    """Raises `InvalidConfig` naming the first key of `config` not in `allowed` (a typo)."""
    allowed = list(allowed)
    for key in config:
        if key not in allowed:
            expected = ", ".join(f"`{name}`" for name in allowed) or "none"
            raise InvalidConfig(f"unknown config key `{key}` (expected: {expected})")


def get(
    config: Dict[str, Any],
    key: str,
    kind: Union[Type, Tuple[Type, ...]],
    default: Any = _MISSING,
) -> Any:
    """`config[key]` checked to be of `kind` (`float` accepts integers too, never booleans or
    non-finite numbers); `default` when absent, else a missing key raises `InvalidConfig`."""
    if key not in config:
        if default is _MISSING:
            raise InvalidConfig(f"config key `{key}` is missing")
        return default
    value = config[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if ok and isinstance(value, float) and not math.isfinite(value):
        raise InvalidConfig(f"config key `{key}`: {value} is not finite")
    if not ok:
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidConfig(f"config key `{key}`: expected {names}, got {json.dumps(value)}")
    return value

"""Type and range checks of option values (``--set key=value``) before they are used.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     steps: int = 1
    ...     lr: float | None = None
    >>> check_fields(C(steps=2, lr=0.1), "demo", positive=("steps", "lr"))
    >>> check_fields(C(steps="x"), "demo")
    Traceback (most recent call last):
    ...
    metaloss.errors.ConfigError: demo: option steps must be an integer, got 'x'
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from metaloss.errors import ConfigError


def _kind(annotation: Any) -> tuple[str | None, bool]:
    """``("int" | "float" | "bool" | "str" | None, optional)`` from a field's annotation."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    parts = [p.strip() for p in str(text).split("|")]
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    kind = rest[0] if len(rest) == 1 and rest[0] in ("int", "float", "bool", "str") else None
    return kind, optional


def check_value(value: Any, kind: str, where: str) -> None:
    """Refuse a value of the wrong type, or a non-finite number (one-line ConfigError)."""
    if kind == "bool":
        if not isinstance(value, bool | np.bool_):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
    elif kind == "str" and not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {value!r}")


def check_fields(
    obj: Any, name: str, positive: Iterable[str] = (), non_negative: Iterable[str] = ()
) -> None:
    """Check every int/float/bool/str field of a dataclass instance, then ranges.

    ``positive`` fields must be > 0 and ``non_negative`` ones >= 0 (``None`` is allowed
    where the field is optional). Errors name the method and the option.
    """
    for f in dataclasses.fields(obj):
        kind, optional = _kind(f.type)
        value = getattr(obj, f.name)
        if kind is None or (optional and value is None):
            continue
        check_value(value, kind, f"{name}: option {f.name}")
    for key in positive:
        value = getattr(obj, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{name}: option {key} must be > 0, got {value!r}")
    for key in non_negative:
        value = getattr(obj, key)
        if value is not None and not value >= 0:
            raise ConfigError(f"{name}: option {key} must be >= 0, got {value!r}")

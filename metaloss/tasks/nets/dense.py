"""Fully connected models: ``linear`` (logistic / linear regression) and ``mlp``.

Example:
    >>> _mlp((4,), 3, hidden=(8,))[1]
    Linear(in_features=4, out_features=8, bias=True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from metaloss.tasks.nets.layers import ACTIVATIONS, _check_int, _fail


def _linear(in_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Logistic (or linear) regression: flatten + ``Linear``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_outputs))


def _mlp(
    in_shape: tuple[int, ...],
    num_outputs: int,
    *,
    hidden: int | Sequence[int] = (100,),
    activation: str = "relu",
) -> nn.Module:
    """Flatten + ``Linear``/activation per hidden width + ``Linear`` output layer."""
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
        raise _fail("mlp", f"hidden must be a sequence of positive integers, got {hidden!r}")
    widths = [_check_int("mlp", "hidden width", h) for h in hidden]
    if activation not in ACTIVATIONS:
        raise _fail(
            "mlp", f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in widths:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)

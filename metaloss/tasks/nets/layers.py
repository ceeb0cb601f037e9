"""Building blocks and argument checks shared by the model families: normalisation
(``batch`` / ``group`` / ``none``), activations, 3x3 / 1x1 convolutions, Kaiming init and a
global-average-pool head.

Example:
    >>> type(_norm2d("group", 64)).__name__, _group_count(64)
    ('GroupNorm', 32)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from metaloss.errors import ConfigError

NORMS = ("batch", "group", "none")

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


# --------------------------------------------------------------------------------------
# helpers


def has_batchnorm(model: nn.Module) -> bool:
    """True if any submodule of ``model`` is a BatchNorm layer (1d, 2d, 3d or sync)."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def _fail(model: str, msg: str) -> ConfigError:
    return ConfigError(f"model {model!r}: {msg}")


def _check_norm(model: str, norm: str) -> str:
    if norm not in NORMS:
        raise _fail(model, f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def _check_dropout(model: str, dropout: float) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, int | float):
        raise _fail(model, f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise _fail(model, f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def _check_int(model: str, field: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(model, f"{field} must be an integer >= {minimum}, got {value!r}")
    return value


def _image_shape(model: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise _fail(model, f"needs an image input shape (C, H, W), got {in_shape}")
    c, h, w = in_shape
    return c, h, w


def _out_size(n: int, kernel: int, stride: int = 1, pad: int = 0, ceil: bool = False) -> int:
    """Spatial size after a convolution or pooling layer (PyTorch's formula)."""
    span = n + 2 * pad - kernel
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + pad:  # last window must start inside the input
        out -= 1
    return out


def _check_spatial(model: str, in_shape: tuple[int, ...], sizes: tuple[int, int]) -> None:
    if min(sizes) < 1:
        raise _fail(model, f"input {in_shape} is too small (feature map shrinks to {sizes})")


def _group_count(channels: int) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` <= min(32, channels // 2)."""
    limit = max(1, min(32, channels // 2))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def _norm2d(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(_group_count(channels), channels)
    return nn.Identity()


def _conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def _conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)


def _kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions; unit/zero affine norm parameters."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BatchNorm | nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Head(nn.Module):
    """Global average pool + flatten + linear classifier."""

    def __init__(self, features: int, num_outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

"""A hand-made loss times a learnable positive scale: the "learned step" control.

``ScaledLoss(base)`` is ``exp(log_scale) * base(y_pred, y_true)``. With plain SGD, training
under it at learning rate ``lr`` is training under ``base`` at ``lr * scale``, so a method
that meta-learns only this scalar (see :mod:`metaloss.meta.control`) learns a step size
and nothing else. Each method's control row uses it, to separate a learned loss's *shape*
from its *step*.

Example:
    >>> import torch
    >>> from metaloss.losses.scaled import ScaledLoss
    >>> loss = ScaledLoss("cross_entropy", scale=2.0)
    >>> y, t = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    >>> base = torch.nn.functional.cross_entropy(y, t)
    >>> bool(torch.isclose(loss(y, t), 2 * base)), round(loss.scale, 6)
    (True, 2.0)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, register


@register
class ScaledLoss(Loss):
    """``exp(log_scale) * base``: a baseline loss with one learnable scale (log-parametrised)."""

    kind = "scaled"

    def __init__(self, base: str | Loss = "cross_entropy", scale: float = 1.0) -> None:
        super().__init__()
        from metaloss.losses.handcrafted import get_baseline

        if not (isinstance(scale, int | float) and scale > 0 and math.isfinite(scale)):
            raise ConfigError(f"scaled loss: scale must be positive and finite, got {scale!r}")
        if isinstance(base, str):
            from metaloss.losses.neural import RESIDUALS

            if base not in {"cross_entropy", *RESIDUALS} - {"task"}:
                raise ConfigError(
                    f"scaled loss: base must be one of cross_entropy, "
                    f"{', '.join(r for r in RESIDUALS if r != 'task')}; got {base!r}"
                )
        elif not isinstance(base, Loss):
            raise ConfigError(f"scaled loss: base must be a hand-made loss's name, got {base!r}")
        self.base = get_baseline(base) if isinstance(base, str) else base
        self.base_name = self.base.kind
        self.init_scale = float(scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale), dtype=torch.float32))

    @property
    def scale(self) -> float:
        return float(self.log_scale.detach().exp())

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.log_scale.exp() * self.base(y_pred, y_true)

    def config(self) -> dict[str, Any]:
        return {"base": self.base_name, "scale": self.init_scale}

    def describe(self) -> str:
        return f"{self.scale:.4g} * {self.base_name}"

"""TaylorGLO's loss: a 3rd-order bivariate Taylor polynomial (Gonzalez & Miikkulainen).

With target ``y``, prediction ``y_hat`` and 8 parameters ``theta``::

    L = t2 (y_hat - t1) + 1/2 t3 (y_hat - t1)^2 + 1/6 t4 (y_hat - t1)^3
        + t5 (y - t0)(y_hat - t1) + 1/2 t6 (y - t0)(y_hat - t1)^2 + 1/2 t7 (y - t0)^2 (y_hat - t1)

(terms without ``y_hat`` have no gradient and are dropped). Applied output-wise.

Example:
    >>> import torch
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> loss = TaylorLoss([0.0, 0.0, 0.0, 2.0, 0.0, -2.0, 0.0, 0.0])  # (y_hat - y)^2 + const
    >>> p, t = torch.tensor([[0.3]]), torch.tensor([[1.0]])
    >>> round(float(loss.pointwise(p, t).detach()), 4)  # y_hat^2 - 2 y y_hat
    -0.51
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import OutputWiseLoss, register

N_PARAMS = 8


@register
class TaylorLoss(OutputWiseLoss):
    """The TaylorGLO polynomial with learnable ``theta`` (8 values)."""

    kind = "taylor"

    def __init__(
        self, theta: list[float] | Tensor | None = None, class_reduction: str = "sum"
    ) -> None:
        super().__init__(class_reduction)
        if theta is None:
            theta = torch.zeros(N_PARAMS)
        theta = torch.as_tensor(theta, dtype=torch.float32).reshape(-1)
        if theta.numel() != N_PARAMS:
            raise ConfigError(f"taylor theta must have {N_PARAMS} values, got {theta.numel()}")
        self.theta = nn.Parameter(theta.clone())

    def pointwise(self, p: Tensor, t: Tensor) -> Tensor:
        return taylor_polynomial(self.theta, p, t)

    def config(self) -> dict[str, Any]:
        return {
            "theta": [float(v) for v in self.theta.detach()],
            "class_reduction": self.class_reduction,
        }

    def describe(self) -> str:
        c = [f"{float(v):.3g}" for v in self.theta.detach()]
        return (
            f"{c[2]}*d + {c[3]}/2*d^2 + {c[4]}/6*d^3 + {c[5]}*e*d + {c[6]}/2*e*d^2 + "
            f"{c[7]}/2*e^2*d  with d = y_hat - {c[1]}, e = y - {c[0]}"
        )


def taylor_polynomial(theta: Tensor, p: Tensor, t: Tensor) -> Tensor:
    """Evaluate the TaylorGLO polynomial element-wise (``theta`` may be batched: ``(..., 8)``)."""
    th = list(theta.unbind(-1))  # one op (cheaper under vmap than 8 index ops)
    if theta.dim() > 1:  # population batch: broadcast over the data dims
        th = [v.reshape(v.shape + (1,) * p.dim()) for v in th]
    d = p - th[1]
    e = t - th[0]
    return (
        th[2] * d
        + 0.5 * th[3] * d**2
        + th[4] / 6.0 * d**3
        + th[5] * e * d
        + 0.5 * th[6] * e * d**2
        + 0.5 * th[7] * e**2 * d
    )

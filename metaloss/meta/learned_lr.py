"""A learning rate meta-learned jointly with a loss, kept out of the loss (option ``learn_lr``).

A learned loss can carry the step size (``c * CE`` trains like CE at ``c * lr``). With
``learn_lr=True``, ML3 and AdaLFL meta-learn a separate scalar, ``log_scale``, and take
their inner / online steps at ``lr * exp(log_scale)``: the meta-gradient reaches it through
the same unrolled (or look-ahead) graph as the loss's parameters, with its own Adam learning
rate (``lr_meta_lr``). The learned rate is reported in ``result.info["learned_lr"]`` and is
*not* part of the saved loss: the fair protocol still tunes the learning rate at meta-test
(``ml.evaluate(..., tune="lr")``). Combined with ``normalize`` it gives the step size a
place to go other than the loss's scale.

The rate multiplies the gradient handed to the optimiser (for SGD, with or without momentum,
that is exactly a learning-rate factor; weight decay is not scaled). Adam is invariant to
that factor, so ``learn_lr`` with an Adam inner optimiser is refused.

Example:
    >>> import torch
    >>> from metaloss import functional as mf
    >>> rate = LearnedLR(0.1)
    >>> opt = rate.wrap(mf.sgd(0.1))
    >>> w = {"w": torch.ones(1)}
    >>> new, _ = opt.update(w, {"w": torch.ones(1)}, opt.init(w))
    >>> round(float(new["w"]), 4), rate.lr
    (0.9, 0.1)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metaloss import functional as mf
from metaloss.errors import ConfigError

__all__ = ["LearnedLR", "check_learn_lr"]


class LearnedLR(nn.Module):
    """``base_lr * exp(log_scale)``, with ``log_scale`` a learnable scalar (0 at the start)."""

    def __init__(self, base_lr: float, log_scale: float = 0.0) -> None:
        super().__init__()
        if not (base_lr > 0 and math.isfinite(base_lr)):
            raise ConfigError(f"learn_lr: the base learning rate must be > 0, got {base_lr}")
        self.base_lr = float(base_lr)
        self.log_scale = nn.Parameter(torch.tensor(float(log_scale)))

    @property
    def factor(self) -> float:
        """The learned multiplier of the base learning rate."""
        return float(self.log_scale.detach().exp())

    @property
    def lr(self) -> float:
        """The learned learning rate, ``base_lr * factor``."""
        return self.base_lr * self.factor

    def wrap(self, opt: mf.Optimizer) -> mf.Optimizer:
        """``opt`` with every gradient multiplied by ``exp(log_scale)`` (differentiably)."""

        def update(params: mf.Params, grads: mf.Params, state: mf.State):  # type: ignore[no-untyped-def]
            factor = self.log_scale.exp()
            scaled = {k: (None if g is None else g * factor) for k, g in grads.items()}
            return opt.update(params, scaled, state)

        return mf.Optimizer(opt.init, update, f"{opt.name}+learned-lr")


def check_learn_lr(method: str, learn_lr: bool, optimizer: str | None) -> None:
    """Refuse ``learn_lr`` with Adam (invariant to a gradient factor)."""
    if learn_lr and optimizer == "adam":
        raise ConfigError(
            f"{method}: option learn_lr needs an SGD optimiser (Adam ignores a gradient factor)"
        )

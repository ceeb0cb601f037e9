"""Gradient-normalised losses: a loss rescaled to cross-entropy's gradient norm.

A learned loss can win a comparison by changing the step size rather than the shape of
the objective: ``c * CE`` trains like CE with learning rate ``c * lr``. Wrapping a loss in
:class:`GradNormalized` and calibrating it removes that freedom: ``c`` is chosen so that
the parameter-gradient norm of ``c * loss`` equals the reference loss's (cross-entropy by
default) on a few batches at initialisation, and then stays constant. What is left to
differ is the gradient's *direction* over training, i.e. the loss's shape.

The calibrated norm is the mean over the calibration batches of the per-batch gradient
norm (the size of the steps SGD takes): after :meth:`GradNormalized.calibrate`,
``grad_norm(normalized, model, batches) == grad_norm(reference, model, batches)``.
The scale is part of the loss's JSON spec, so a saved normalised loss loads with it.

Example:
    >>> import torch, metaloss as ml
    >>> from metaloss.losses import get_baseline
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(4, 3)
    >>> batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,)))]
    >>> loss = GradNormalized(get_baseline("mae")).calibrate(model, batches)
    >>> ce = grad_norm(get_baseline("ce"), model, batches)
    >>> abs(grad_norm(loss, model, batches) / ce - 1) < 1e-5
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, build_loss, register
from metaloss.losses.handcrafted import BASELINES, get_baseline

if TYPE_CHECKING:
    from metaloss.tasks.base import Task

Batch = tuple[Tensor, Tensor]


def grad_norm(loss: nn.Module, model: nn.Module, batches: Iterable[Batch]) -> float:
    """Mean over ``batches`` of the L2 norm of ``d loss(model(x), y) / d params``.

    Batch ``i`` runs under ``torch.manual_seed(i)`` (so dropout draws the same masks for
    every loss compared); the model's parameters, ``.grad`` fields and buffers (e.g.
    batch-norm statistics) and the global random state are left as they were.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("grad_norm: the model has no trainable parameters")
    saved = {k: v.detach().clone() for k, v in model.named_buffers()}
    norms = []
    try:
        for i, (x, y) in enumerate(batches):
            cuda = list(range(torch.cuda.device_count())) if x.is_cuda else []
            with torch.random.fork_rng(devices=cuda):
                torch.manual_seed(i)
                value = loss(model(x), y)
            grads = torch.autograd.grad(value, params, allow_unused=True)
            squares = [g.detach().double().pow(2).sum() for g in grads if g is not None]
            norms.append(float(torch.stack(squares).sum().sqrt()) if squares else 0.0)
    finally:
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(saved[k])
    if not norms:
        raise ConfigError("grad_norm: no calibration batches given")
    return sum(norms) / len(norms)


@register
class GradNormalized(Loss):
    """``scale * loss``, with ``scale`` calibrated to match a reference loss's gradient norm.

    Args:
        loss: the wrapped loss (a :class:`Loss` or its JSON spec).
        reference: the baseline whose gradient norm is matched (``"ce"``: cross-entropy,
            which is MSE on regression targets).
        scale: the constant factor (1 until :meth:`calibrate` sets it).
    """

    kind = "grad_normalized"

    def __init__(
        self, loss: Loss | Mapping[str, Any], reference: str = "ce", scale: float = 1.0
    ) -> None:
        super().__init__()
        if isinstance(loss, Mapping):
            loss = build_loss(dict(loss))
        if not isinstance(loss, Loss):
            raise ConfigError(f"grad_normalized: 'loss' must be a loss or its spec, not {loss!r}")
        if reference.lower().replace("-", "_") not in BASELINES:
            known = ", ".join(sorted(BASELINES))
            raise ConfigError(f"grad_normalized: unknown reference {reference!r}; known: {known}")
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"grad_normalized: scale must be finite and > 0, got {scale}")
        self.loss = loss
        self.reference = reference
        self.scale = float(scale)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return self.scale * self.loss(y_pred, y_true)

    def calibrate(self, model: nn.Module, batches: Iterable[Batch]) -> GradNormalized:
        """Set ``scale`` so that this loss's mean gradient norm on ``batches`` equals the
        reference loss's; returns ``self``. ``model`` is left unchanged."""
        batches = list(batches)
        target = grad_norm(get_baseline(self.reference), model, batches)
        own = grad_norm(self.loss, model, batches)
        if not (math.isfinite(own) and own > 0 and math.isfinite(target) and target > 0):
            raise ConfigError(
                f"grad_normalized: cannot calibrate, gradient norms {own} (loss) and "
                f"{target} ({self.reference}) must be finite and > 0"
            )
        self.scale = target / own
        return self

    def calibrate_on_task(
        self, task: Task, seed: int = 0, batches: int = 4, batch_size: int | None = None
    ) -> GradNormalized:
        """Calibrate on ``batches`` seeded training batches of ``task``'s model at
        initialisation (``task.make_model(seed)``; batch size: the task's default)."""
        size = min(batch_size or task.defaults.batch_size, len(task.train))
        gen = torch.Generator().manual_seed(seed)
        draws = [torch.randperm(len(task.train), generator=gen)[:size] for _ in range(batches)]
        data = [(task.train.x[i.to(task.device)], task.train.y[i.to(task.device)]) for i in draws]
        return self.calibrate(task.make_model(seed), data)

    def config(self) -> dict[str, Any]:
        return {"loss": self.loss.spec(), "reference": self.reference, "scale": self.scale}

    def describe(self) -> str:
        return f"{self.scale:.4g} * ({self.loss.describe()})"

    def extra_repr(self) -> str:
        return f"reference={self.reference!r}, scale={self.scale!r}"


__all__ = ["GradNormalized", "grad_norm"]

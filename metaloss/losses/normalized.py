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

``mode="running"`` instead rescales on every batch, with no state: the scale is
``||d ref / d y_pred|| / ||d loss / d y_pred||`` on that batch (detached; gradients w.r.t.
the model's *outputs*, computed with :func:`torch.func.grad`, so it works inside ``vmap``
and inside unrolled meta-training). The output gradient is what back-propagation feeds into
the model: for a batch of one example on a linear model the parameter-gradient norms are
then equal exactly (``||dL/dW|| = ||dL/dz|| ||x||``); for larger batches and deeper models
it is a proxy of the parameter-gradient ratio that costs no extra backward pass through
the model. :func:`normalize` builds either form (the option ``normalize`` of every method).

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
        scale: the constant factor (1 until :meth:`calibrate` sets it; with
            ``mode="running"`` it multiplies the per-batch factor, normally 1).
        mode: ``"init"`` (a constant scale, calibrated once) or ``"running"`` (rescaled
            on every batch to the reference's output-gradient norm).
    """

    kind = "grad_normalized"

    def __init__(
        self,
        loss: Loss | Mapping[str, Any],
        reference: str = "ce",
        scale: float = 1.0,
        mode: str = "init",
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
        if mode not in MODES:
            raise ConfigError(f"grad_normalized: mode must be one of {MODES}, got {mode!r}")
        self.loss = loss
        self.reference = reference
        self.scale = float(scale)
        self.mode = mode
        # the reference loss, kept out of the module tree (no state in the spec or weights)
        self.__dict__["_ref"] = get_baseline(reference)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        value = self.loss(y_pred, y_true)
        if self.mode == "running":
            return self.scale * self.running_factor(y_pred, y_true) * value
        return self.scale * value

    def running_factor(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """``||d ref / d y_pred|| / ||d loss / d y_pred||`` on this batch, detached (1 when
        the loss's output gradient is 0 or not finite)."""
        z = y_pred.detach()
        own = torch.func.grad(lambda q: self.loss(q, y_true))(z)
        ref = torch.func.grad(lambda q: self._ref(q, y_true))(z)
        own_n, ref_n = own.double().norm(), ref.double().norm()
        ok = torch.isfinite(own_n) & (own_n > 0)
        factor = torch.where(ok, ref_n / torch.where(ok, own_n, 1.0), 1.0)
        return factor.to(value_dtype(y_pred)).detach()

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
        out = {"loss": self.loss.spec(), "reference": self.reference, "scale": self.scale}
        if self.mode != "init":  # specs saved before the mode existed stay identical
            out["mode"] = self.mode
        return out

    def describe(self) -> str:
        if self.mode == "running":
            return f"running-normalized({self.loss.describe()})"
        return f"{self.scale:.4g} * ({self.loss.describe()})"

    def extra_repr(self) -> str:
        return f"reference={self.reference!r}, scale={self.scale!r}, mode={self.mode!r}"


MODES = ("init", "running")
#: the values of the methods' option ``normalize``
NORMALIZE = ("none", *MODES)


def value_dtype(t: Tensor) -> torch.dtype:
    """The floating dtype of ``t`` (float32 for integer tensors)."""
    return t.dtype if t.is_floating_point() else torch.float32


def normalize(
    loss: Loss, mode: str, task: Task | None = None, seed: int = 0, batches: int = 4
) -> Loss:
    """``loss`` under the option ``normalize=mode``: ``"none"`` returns it unchanged,
    ``"init"`` wraps it in a :class:`GradNormalized` calibrated on ``task``'s model at
    initialisation (``task.make_model(seed)``, ``batches`` seeded training batches),
    ``"running"`` wraps it in the per-batch form (nothing to calibrate).

    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> ce = ml.losses.get_loss("cross_entropy")
    >>> normalize(ce, "none") is ce, round(normalize(ce, "init", task).scale, 4)
    (True, 1.0)
    """
    if mode not in NORMALIZE:
        raise ConfigError(f"option normalize must be one of {NORMALIZE}, got {mode!r}")
    if mode == "none":
        return loss
    if mode == "running":
        return GradNormalized(loss, mode="running")
    if task is None:
        raise ConfigError("normalize='init' needs a task to calibrate on")
    wrapped = GradNormalized(loss).to(task.device)
    return wrapped.calibrate_on_task(task, seed=seed, batches=batches)


__all__ = ["NORMALIZE", "GradNormalized", "grad_norm", "normalize"]

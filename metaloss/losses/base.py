"""Loss base classes, the output-wise convention and the loss registry.

Every loss in metaloss is an ``nn.Module`` with ``forward(y_pred, y_true) -> scalar``.
The task type is read from ``y_true``: integer targets mean classification (``y_pred``
are logits), floating targets mean regression (``y_pred`` are raw outputs).

Learned losses follow the *output-wise* convention of the loss-learning literature: for
classification they see softmax probabilities and one-hot targets and apply a scalar
function per class, then sum (or average) over classes and average over the batch.
That makes a loss learned on one model / number of classes usable on another.

Example:
    >>> import torch
    >>> from metaloss.losses import get_loss
    >>> ce = get_loss("cross_entropy")
    >>> round(float(ce(torch.zeros(4, 10), torch.tensor([0, 1, 2, 3]))), 4)  # log(10)
    2.3026
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.errors import ConfigError

LOSSES: dict[str, type[Loss]] = {}
# Loss kinds registered by modules that are imported on first use (sympy is slow to import).
_LAZY_KINDS = {
    "neural": "metaloss.losses.neural",
    "taylor": "metaloss.losses.taylor",
    "symbolic": "metaloss.losses.symbolic",
    "rl_step": "metaloss.rl.losses",
    "scaled": "metaloss.losses.scaled",
}


def register(cls: type[Loss]) -> type[Loss]:
    """Class decorator: make a loss constructible from its JSON spec by ``cls.kind``."""
    LOSSES[cls.kind] = cls
    return cls


def is_classification(y_true: Tensor) -> bool:
    """Integer targets are class labels; floating targets are regression targets."""
    return not torch.is_floating_point(y_true)


def outputwise(y_pred: Tensor, y_true: Tensor) -> tuple[Tensor, Tensor]:
    """Map a batch to the output-wise pair ``(prediction, target)`` of equal shape.

    Classification: ``(softmax(logits), one_hot(labels))``, shape ``(B, C)``.
    Regression: ``(y_pred, y_true)`` reshaped to ``(B, D)``.
    """
    if is_classification(y_true):
        p = torch.softmax(y_pred, dim=-1)
        t = F.one_hot(y_true.long(), num_classes=y_pred.shape[-1]).to(p.dtype)
        return p, t
    p = y_pred.reshape(y_pred.shape[0], -1)
    t = y_true.reshape(p.shape).to(p.dtype)
    return p, t


class Loss(nn.Module):
    """A loss with a JSON-serialisable configuration (its tensors go to safetensors)."""

    kind: ClassVar[str] = "loss"

    def config(self) -> dict[str, Any]:
        """Constructor keyword arguments; JSON-serialisable."""
        return {}

    def spec(self) -> dict[str, Any]:
        """The JSON spec from which :func:`build_loss` rebuilds this loss (weights aside)."""
        return {"kind": self.kind, "config": self.config()}

    def describe(self) -> str:
        """A short human-readable description (a formula where there is one)."""
        return self.kind

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())


class OutputWiseLoss(Loss):
    """A loss given by a scalar function ``f(p, t)`` applied to every output.

    Subclasses implement :meth:`pointwise`. ``class_reduction`` says how per-class values
    are combined ("sum" as in EvoMAL / TaylorGLO / ML3, "mean" as in AdaLFL); the batch is
    always averaged.
    """

    def __init__(self, class_reduction: str = "sum") -> None:
        super().__init__()
        if class_reduction not in ("sum", "mean"):
            raise ConfigError(f"class_reduction must be 'sum' or 'mean', got {class_reduction!r}")
        self.class_reduction = class_reduction

    def pointwise(self, p: Tensor, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        p, t = outputwise(y_pred, y_true)
        values = self.pointwise(p, t)
        per_sample = values.sum(-1) if self.class_reduction == "sum" else values.mean(-1)
        return per_sample.mean()

    def config(self) -> dict[str, Any]:
        return {"class_reduction": self.class_reduction}


def build_loss(spec: dict[str, Any]) -> Loss:
    """Rebuild a loss from its spec ``{"kind": ..., "config": {...}}`` (no weights).

    Only registered classes can be built: a spec can never name arbitrary code.
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError("loss spec must be a mapping with a 'kind' field")
    kind = spec["kind"]
    if kind not in LOSSES and kind in _LAZY_KINDS:
        from importlib import import_module

        import_module(_LAZY_KINDS[kind])
    if kind not in LOSSES:
        raise ConfigError(f"unknown loss kind {kind!r}; known: {', '.join(sorted(LOSSES))}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ConfigError(f"loss spec 'config' for {kind!r} must be a mapping")
    try:
        return LOSSES[kind](**config)
    except TypeError as exc:
        raise ConfigError(f"bad config for loss {kind!r}: {exc}") from None

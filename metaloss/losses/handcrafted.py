"""Hand-made baseline losses: cross-entropy, MSE, focal, label smoothing.

All follow ``forward(y_pred, y_true) -> scalar``; classification losses take logits and
integer labels. ``MSELoss`` on a classification batch is the output-wise squared error
between softmax probabilities and one-hot targets (summed over classes), the usual
"MSE for classification" baseline.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, OutputWiseLoss, is_classification, register


@register
class CrossEntropyLoss(Loss):
    """Cross-entropy on logits (classification); falls back to MSE for regression targets."""

    kind = "cross_entropy"

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if is_classification(y_true):
            return F.cross_entropy(y_pred, y_true.long())
        return F.mse_loss(y_pred.reshape(y_true.shape), y_true)

    def describe(self) -> str:
        return "-sum(y * log(y_hat))"


@register
class MSELoss(OutputWiseLoss):
    """Squared error ``(y_hat - y)^2`` per output; the regression default."""

    kind = "mse"

    def __init__(self, class_reduction: str = "sum") -> None:
        super().__init__(class_reduction)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if not is_classification(y_true):
            # Regression MSE is the mean over every output, as in torch.nn.MSELoss.
            return F.mse_loss(y_pred.reshape(y_true.shape), y_true.to(y_pred.dtype))
        return super().forward(y_pred, y_true)

    def pointwise(self, p: Tensor, t: Tensor) -> Tensor:
        return (p - t) ** 2

    def describe(self) -> str:
        return "(y_hat - y)^2"


@register
class FocalLoss(Loss):
    """Focal loss (Lin et al.): ``-(1 - p_y)^gamma log p_y``; ``gamma=0`` is cross-entropy."""

    kind = "focal"

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        if gamma < 0:
            raise ConfigError(f"focal gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if not is_classification(y_true):
            raise ConfigError("focal loss needs integer class targets")
        logp = F.log_softmax(y_pred, dim=-1).gather(-1, y_true.long().unsqueeze(-1)).squeeze(-1)
        return (-((1 - logp.exp()) ** self.gamma) * logp).mean()

    def config(self) -> dict[str, Any]:
        return {"gamma": self.gamma}


@register
class LabelSmoothingLoss(Loss):
    """Cross-entropy against targets smoothed by ``smoothing`` (Szegedy et al.)."""

    kind = "label_smoothing"

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__()
        if not 0 <= smoothing < 1:
            raise ConfigError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if not is_classification(y_true):
            raise ConfigError("label smoothing needs integer class targets")
        return F.cross_entropy(y_pred, y_true.long(), label_smoothing=self.smoothing)

    def config(self) -> dict[str, Any]:
        return {"smoothing": self.smoothing}


BASELINES = {
    "cross_entropy": CrossEntropyLoss,
    "ce": CrossEntropyLoss,
    "mse": MSELoss,
    "focal": FocalLoss,
    "label_smoothing": LabelSmoothingLoss,
}


def task_loss_for(classification: bool) -> Loss:
    """The hand-made loss a task is normally trained with: CE or MSE."""
    return CrossEntropyLoss() if classification else MSELoss()


def get_baseline(name: str) -> Loss:
    """A baseline loss by name: ``ce``, ``mse``, ``focal``, ``label_smoothing``."""
    key = name.lower().replace("-", "_")
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline loss {name!r}; known: {', '.join(sorted(BASELINES))}")
    return BASELINES[key]()


__all__ = [
    "CrossEntropyLoss",
    "MSELoss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "get_baseline",
    "task_loss_for",
]

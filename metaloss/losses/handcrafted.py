"""Hand-made baseline losses: cross-entropy, MSE, focal, label smoothing, and the robust
(noisy-label) losses MAE, generalised cross-entropy, symmetric cross-entropy, PolyLoss-1;
the long-tail losses (logit adjustment, class-balanced) are in :mod:`metaloss.losses.longtail`.

All follow ``forward(y_pred, y_true) -> scalar``; classification losses take logits and
integer labels. ``MSELoss`` on a classification batch is the output-wise squared error
between softmax probabilities and one-hot targets (summed over classes), the usual
"MSE for classification" baseline; ``MAELoss`` is its absolute-error counterpart.
Below ``p_y`` is the softmax probability of the labelled class; the batch is averaged.

Example:
    >>> import torch
    >>> from metaloss.losses import get_baseline
    >>> logits, labels = torch.zeros(2, 4), torch.tensor([0, 1])  # p_y = 1/4
    >>> round(float(get_baseline("mae")(logits, labels)), 4)  # 2 * (1 - 1/4)
    1.5
    >>> round(float(get_baseline("gce")(logits, labels)), 4)  # (1 - 0.25**0.7) / 0.7
    0.8872
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, OutputWiseLoss, is_classification, register
from metaloss.losses.longtail import ClassBalancedLoss, LogitAdjustedLoss, class_counts


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


def _log_p_y(y_pred: Tensor, y_true: Tensor, name: str) -> Tensor:
    """``log p_y`` per sample (log-softmax of the labelled class); needs integer labels."""
    if not is_classification(y_true):
        raise ConfigError(f"{name} loss needs integer class targets")
    logp = F.log_softmax(y_pred, dim=-1)
    return logp.gather(-1, y_true.long().unsqueeze(-1)).squeeze(-1)


@register
class MAELoss(OutputWiseLoss):
    """Mean absolute error (Ghosh et al. 2017), robust to symmetric label noise.

    Classification: ``sum_k |p_k - y_k| = 2 (1 - p_y)`` per sample (softmax probabilities
    against one-hot targets, summed over classes like :class:`MSELoss`). Regression: the
    plain mean of ``|y_hat - y|`` over every output.
    """

    kind = "mae"

    def __init__(self, class_reduction: str = "sum") -> None:
        super().__init__(class_reduction)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        if not is_classification(y_true):
            return F.l1_loss(y_pred.reshape(y_true.shape), y_true.to(y_pred.dtype))
        return super().forward(y_pred, y_true)

    def pointwise(self, p: Tensor, t: Tensor) -> Tensor:
        return (p - t).abs()

    def describe(self) -> str:
        return "|y_hat - y|"


@register
class GeneralizedCrossEntropyLoss(Loss):
    """Generalised cross-entropy (Zhang & Sabuncu 2018): ``(1 - p_y^q) / q``.

    ``q -> 0`` is cross-entropy, ``q = 1`` is MAE up to a factor 2; the paper's default
    is ``q = 0.7``.
    """

    kind = "gce"

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0 < q <= 1:
            raise ConfigError(f"gce q must be in (0, 1], got {q}")
        self.q = float(q)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        logp = _log_p_y(y_pred, y_true, "generalised cross-entropy")
        return ((1 - torch.exp(self.q * logp)) / self.q).mean()

    def config(self) -> dict[str, Any]:
        return {"q": self.q}

    def describe(self) -> str:
        return f"(1 - y_hat_y^{self.q:g}) / {self.q:g}"


@register
class SymmetricCrossEntropyLoss(Loss):
    """Symmetric cross-entropy (Wang et al. 2019): ``alpha * CE + beta * RCE``.

    The reverse cross-entropy ``RCE = -sum_k p_k log y_k`` takes ``log 0 = A``
    (``log_zero``), so ``RCE = -A (1 - p_y)``. Defaults ``alpha = 0.1, beta = 1.0,
    A = -4`` are the paper's CIFAR-10 setting (the authors' code clamps the one-hot
    target at 1e-4 instead, i.e. ``A = log 1e-4 ~ -9.21``).
    """

    kind = "sce"

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0) -> None:
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ConfigError(f"sce alpha and beta must be >= 0, not both 0; got {alpha}, {beta}")
        if log_zero >= 0:
            raise ConfigError(f"sce log_zero (A, the value of log 0) must be < 0, got {log_zero}")
        self.alpha, self.beta, self.log_zero = float(alpha), float(beta), float(log_zero)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        logp = _log_p_y(y_pred, y_true, "symmetric cross-entropy")
        rce = -self.log_zero * (1 - logp.exp())
        return (self.alpha * -logp + self.beta * rce).mean()

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "log_zero": self.log_zero}

    def describe(self) -> str:
        return f"{self.alpha:g} * -log(y_hat_y) + {self.beta * -self.log_zero:g} * (1 - y_hat_y)"


@register
class Poly1Loss(Loss):
    """PolyLoss-1 (Leng et al. 2022): ``CE + epsilon * (1 - p_y)``; ``epsilon = 0`` is CE."""

    kind = "poly1"

    def __init__(self, epsilon: float = 1.0) -> None:
        super().__init__()
        if not math.isfinite(epsilon) or epsilon < -1:
            raise ConfigError(f"poly1 epsilon must be finite and >= -1, got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        logp = _log_p_y(y_pred, y_true, "PolyLoss-1")
        return (-logp + self.epsilon * (1 - logp.exp())).mean()

    def config(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def describe(self) -> str:
        return f"-log(y_hat_y) + {self.epsilon:g} * (1 - y_hat_y)"


BASELINES = {
    "cross_entropy": CrossEntropyLoss,
    "ce": CrossEntropyLoss,
    "mse": MSELoss,
    "focal": FocalLoss,
    "label_smoothing": LabelSmoothingLoss,
    "mae": MAELoss,
    "gce": GeneralizedCrossEntropyLoss,
    "sce": SymmetricCrossEntropyLoss,
    "poly1": Poly1Loss,
    "logit_adjusted": LogitAdjustedLoss,
    "class_balanced": ClassBalancedLoss,
}


def task_loss_for(classification: bool) -> Loss:
    """The hand-made loss a task is normally trained with: CE or MSE."""
    return CrossEntropyLoss() if classification else MSELoss()


def get_baseline(name: str, task: Any = None) -> Loss:
    """A baseline loss by name (default settings): ``ce``, ``mse``, ``focal``,
    ``label_smoothing``, ``mae``, ``gce``, ``sce``, ``poly1``, ``logit_adjusted``,
    ``class_balanced``.

    The long-tail losses (``logit_adjusted``, ``class_balanced``) read ``task``'s training
    class counts; without a task they refuse to run until given ``class_counts``.
    """
    key = name.lower().replace("-", "_")
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline loss {name!r}; known: {', '.join(sorted(BASELINES))}")
    cls = BASELINES[key]
    if task is not None and getattr(cls, "needs_class_counts", False):
        return cls(class_counts=class_counts(task))
    return cls()


__all__ = [
    "CrossEntropyLoss",
    "MSELoss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "MAELoss",
    "GeneralizedCrossEntropyLoss",
    "SymmetricCrossEntropyLoss",
    "Poly1Loss",
    "get_baseline",
    "task_loss_for",
]

"""Long-tail baselines: losses that use the training split's class counts.

- :class:`LogitAdjustedLoss` (Menon et al. 2021, "Long-tail learning via logit
  adjustment"): cross-entropy on ``f(x) + tau * log pi``, ``pi`` the training-set class
  prior. The model's own logits ``f(x)`` are then read at test time unchanged, and are
  calibrated for a *balanced* test set. ``tau = 1`` is also Balanced Softmax (Ren et al.
  2020).
- :class:`ClassBalancedLoss` (Cui et al. 2019, "Class-balanced loss based on effective
  number of samples"): cross-entropy with per-class weights ``(1 - beta) / (1 - beta^n_k)``
  normalised to sum to the number of classes, averaged over the batch.

Both need the counts of the (possibly noisy) training labels: build them from a task with
``get_baseline(name, task=task)`` (what ``metaloss bench``, ``evaluate`` and ``train`` do),
or pass ``class_counts``. On a balanced training set both are exactly cross-entropy. A
class with no training sample counts as one, so the prior stays finite.

Example:
    >>> import torch
    >>> la = LogitAdjustedLoss(class_counts=[90, 10])
    >>> logits, labels = torch.zeros(1, 2), torch.tensor([1])
    >>> round(float(la(logits, labels)), 4)  # -log(0.1 / (0.9 + 0.1))
    2.3026
    >>> cb = ClassBalancedLoss(class_counts=[90, 10], beta=0.0)  # beta 0: plain CE
    >>> round(float(cb(logits, labels)), 4)  # log 2
    0.6931
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, is_classification, register


def class_counts(task: Any) -> list[int]:
    """Samples per class in a classification task's training split (its labels as given,
    noisy ones included), ``task.num_outputs`` entries.

    Example:
        >>> import metaloss as ml
        >>> class_counts(ml.tasks.get("digits-mlp+imb10"))[:3]
        [125, 97, 75]
    """
    if not task.classification:
        raise ConfigError(f"task {task.name!r} is a regression task: class counts need classes")
    y = task.train.y.detach().long().cpu()
    return torch.bincount(y, minlength=task.num_outputs).tolist()


def _is_int(c: Any) -> bool:
    return isinstance(c, numbers.Integral) and not isinstance(c, bool)


class _ClassCountLoss(Loss):
    """A loss built on the training split's class counts (``needs_class_counts``)."""

    needs_class_counts: ClassVar[bool] = True

    def __init__(self, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        counts = None
        if class_counts is not None:
            bad = ConfigError(
                f"{self.kind} class_counts must be a list of two or more integers in "
                f"[0, 2**53], got {class_counts!r:.200}"
            )
            if isinstance(class_counts, str | bytes) or not isinstance(class_counts, Sequence):
                raise bad
            ok = all(_is_int(c) for c in class_counts)
            if not ok or len(class_counts) < 2 or not all(0 <= c <= 2**53 for c in class_counts):
                raise bad
            counts = [int(c) for c in class_counts]
        self.class_counts = counts
        self._cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def _from_counts(self, counts: Tensor) -> Tensor:
        """The per-class vector the loss uses, from the counts (float64, zeros as one)."""
        raise NotImplementedError

    def _per_class(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """:meth:`_from_counts` on ``y_pred``'s device and dtype, computed once per device
        and dtype (not on every training step)."""
        if not is_classification(y_true):
            raise ConfigError(f"{self.kind} loss needs integer class targets")
        if self.class_counts is None:
            raise ConfigError(
                f"{self.kind} needs the training set's class counts: build it with "
                f"get_baseline({self.kind!r}, task=task) or pass class_counts"
            )
        if len(self.class_counts) != y_pred.shape[-1]:
            raise ConfigError(
                f"{self.kind} has {len(self.class_counts)} class counts but the model "
                f"outputs {y_pred.shape[-1]} classes"
            )
        key = (y_pred.device, y_pred.dtype)
        if key not in self._cache:
            counts = torch.tensor(self.class_counts, dtype=torch.float64).clamp_min(1)
            self._cache[key] = self._from_counts(counts).to(y_pred.device, y_pred.dtype)
        return self._cache[key]

    def config(self) -> dict[str, Any]:
        return {"class_counts": self.class_counts}


@register
class LogitAdjustedLoss(_ClassCountLoss):
    """Logit-adjusted cross-entropy (Menon et al. 2021): ``CE(f(x) + tau log pi, y)``.

    ``pi`` is the training-set class prior; ``tau = 0`` is cross-entropy.
    """

    kind = "logit_adjusted"

    def __init__(self, class_counts: Sequence[int] | None = None, tau: float = 1.0) -> None:
        super().__init__(class_counts)
        if not (math.isfinite(tau) and tau >= 0):
            raise ConfigError(f"logit_adjusted tau must be finite and >= 0, got {tau}")
        self.tau = float(tau)

    def _from_counts(self, counts: Tensor) -> Tensor:
        return self.tau * torch.log(counts / counts.sum())  # tau * log prior

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        return F.cross_entropy(y_pred + self._per_class(y_pred, y_true), y_true.long())

    def config(self) -> dict[str, Any]:
        return {**super().config(), "tau": self.tau}

    def describe(self) -> str:
        return f"-log softmax(y_hat + {self.tau:g} * log(prior))_y"


@register
class ClassBalancedLoss(_ClassCountLoss):
    """Class-balanced cross-entropy (Cui et al. 2019): ``w_y * CE``, batch-averaged.

    ``w_k = (1 - beta) / (1 - beta^n_k)``, normalised so that ``sum_k w_k = K``;
    ``beta = 0`` is cross-entropy, ``beta -> 1`` inverse-frequency weighting. The default
    ``beta = 0.9999`` is the paper's.
    """

    kind = "class_balanced"

    def __init__(self, class_counts: Sequence[int] | None = None, beta: float = 0.9999) -> None:
        super().__init__(class_counts)
        if not 0 <= beta < 1:
            raise ConfigError(f"class_balanced beta must be in [0, 1), got {beta}")
        self.beta = float(beta)

    def _from_counts(self, counts: Tensor) -> Tensor:
        # 1 - beta^n = -expm1(n log beta), accurate when beta is close to 1
        if self.beta == 0:
            w = torch.ones_like(counts)
        else:
            w = (1 - self.beta) / -torch.expm1(counts * math.log(self.beta))
        return w * len(w) / w.sum()

    def weights(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """The per-class weights ``w_k`` (summing to the number of classes)."""
        return self._per_class(y_pred, y_true)

    def forward(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        w = self.weights(y_pred, y_true)
        ce = F.cross_entropy(y_pred, y_true.long(), reduction="none")
        return (w[y_true.long()] * ce).mean()

    def config(self) -> dict[str, Any]:
        return {**super().config(), "beta": self.beta}

    def describe(self) -> str:
        return f"w_y * -log(y_hat_y), w from effective numbers (beta {self.beta:g})"


__all__ = ["LogitAdjustedLoss", "ClassBalancedLoss", "class_counts"]

"""Loss representations: hand-made baselines, neural (ML3/AdaLFL), Taylor, symbolic."""

from __future__ import annotations

from metaloss.losses.base import LOSSES, Loss, OutputWiseLoss, build_loss, outputwise, register
from metaloss.losses.handcrafted import (
    CrossEntropyLoss,
    FocalLoss,
    GeneralizedCrossEntropyLoss,
    LabelSmoothingLoss,
    MAELoss,
    MSELoss,
    Poly1Loss,
    SymmetricCrossEntropyLoss,
    get_baseline,
    task_loss_for,
)
from metaloss.losses.longtail import ClassBalancedLoss, LogitAdjustedLoss, class_counts
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.normalized import GradNormalized, grad_norm
from metaloss.losses.scaled import ScaledLoss
from metaloss.losses.taylor import TaylorLoss


def get_loss(name: str) -> Loss:
    """A loss by baseline name, e.g. ``get_loss("cross_entropy")``."""
    return get_baseline(name)


__all__ = [
    "LOSSES",
    "Loss",
    "OutputWiseLoss",
    "build_loss",
    "outputwise",
    "register",
    "CrossEntropyLoss",
    "FocalLoss",
    "LabelSmoothingLoss",
    "MSELoss",
    "MAELoss",
    "GeneralizedCrossEntropyLoss",
    "SymmetricCrossEntropyLoss",
    "Poly1Loss",
    "LogitAdjustedLoss",
    "ClassBalancedLoss",
    "class_counts",
    "NeuralLoss",
    "ScaledLoss",
    "GradNormalized",
    "grad_norm",
    "TaylorLoss",
    "get_baseline",
    "get_loss",
    "task_loss_for",
]

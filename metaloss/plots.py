"""Figures (matplotlib, PNG): learned loss vs cross-entropy, meta-training and fitness curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def loss_curve(loss: nn.Module, num_classes: int = 10, points: int = 200) -> tuple[Any, Any]:
    """Loss value as a function of the predicted probability of the true class.

    The remaining probability mass is spread evenly over the other classes, so the curve
    is comparable across output-wise losses and cross-entropy.
    """
    p = torch.linspace(0.005, 0.995, points)
    rest = (1 - p) / (num_classes - 1)
    probs = torch.cat([p[:, None], rest[:, None].expand(points, num_classes - 1)], dim=1)
    logits = probs.log()
    y = torch.zeros(points, dtype=torch.long)
    with torch.no_grad():
        values = torch.stack([loss(logits[i : i + 1], y[i : i + 1]) for i in range(points)])
    return p.numpy(), values.numpy()


def plot_losses(
    losses: Mapping[str, nn.Module], path: str | Path, num_classes: int = 10, title: str = ""
) -> Path:
    """Plot losses against the predicted probability of the true class (raw and min-max scaled)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, loss in losses.items():
        p, v = loss_curve(loss, num_classes)
        axes[0].plot(p, v, label=name)
        span = np.ptp(v) if np.isfinite(v).all() and np.ptp(v) > 0 else 1.0
        axes[1].plot(p, (v - np.min(v)) / span, label=name)
    axes[0].set(xlabel="predicted probability of the true class", ylabel="loss", title="raw")
    axes[1].set(
        xlabel="predicted probability of the true class",
        ylabel="scaled loss",
        title="min-max scaled",
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
) -> Path:
    """Line plot of named ``(x, y)`` series (learning curves, meta-training, fitness)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path

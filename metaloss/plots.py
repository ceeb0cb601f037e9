"""Figures (matplotlib, PNG): learned loss vs cross-entropy (classification) or MSE
(regression), meta-training and search curves.

The ``figure_*`` functions return the matplotlib figure (for notebooks and tests); the
``plot_*`` functions write it as a PNG and return the path.

Example:
    >>> from metaloss.losses import get_baseline
    >>> fig = figure_losses({"mse": get_baseline("mse")}, regression=True, title="ml3 · sine")
    >>> fig.axes[0].get_xlabel(), fig._suptitle.get_text()
    ('prediction', 'ml3 · sine')
    >>> plt.close(fig)
"""

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


def regression_curve(loss: nn.Module, target: float = 0.0, points: int = 200) -> tuple[Any, Any]:
    """Loss value as a function of a scalar prediction for one (standardised) ``target``."""
    x = torch.linspace(target - 3.0, target + 3.0, points)
    y = torch.tensor([float(target)])
    with torch.no_grad():
        values = torch.stack([loss(x[i].view(1, 1), y).reshape(()) for i in range(points)])
    return x.numpy(), values.numpy()


def _scaled(v: Any) -> Any:
    span = np.ptp(v) if np.isfinite(v).all() and np.ptp(v) > 0 else 1.0
    return (v - np.min(v)) / span


def figure_losses(
    losses: Mapping[str, nn.Module],
    num_classes: int = 10,
    title: str = "",
    regression: bool = False,
) -> Any:
    """A figure of ``losses``: for classification against the predicted probability of the true
    class (``num_classes`` classes, the rest of the mass spread evenly), for regression against
    the prediction for target 0; raw (left) and min-max scaled (right)."""
    if not regression and num_classes < 2:
        raise ValueError(f"figure_losses: num_classes must be >= 2, got {num_classes}")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xlabel = "prediction" if regression else "predicted probability of the true class"
    for name, loss in losses.items():
        x, v = regression_curve(loss) if regression else loss_curve(loss, num_classes)
        axes[0].plot(x, v, label=name)
        axes[1].plot(x, _scaled(v), label=name)
    raw = "raw (target 0)" if regression else f"raw ({num_classes} classes)"
    axes[0].set(xlabel=xlabel, ylabel="loss", title=raw)
    axes[1].set(xlabel=xlabel, ylabel="scaled loss", title="min-max scaled")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def plot_losses(
    losses: Mapping[str, nn.Module],
    path: str | Path,
    num_classes: int = 10,
    title: str = "",
    regression: bool = False,
) -> Path:
    """Write :func:`figure_losses` as a PNG (raw and min-max scaled loss curves)."""
    return _save(figure_losses(losses, num_classes, title, regression), path)


def baseline_for(regression: bool) -> tuple[str, nn.Module]:
    """The reference loss a learned loss is drawn against: MSE (regression) or cross-entropy."""
    from metaloss.losses import get_baseline

    return ("mse", get_baseline("mse")) if regression else ("cross_entropy", get_baseline("ce"))


def _floats(values: Sequence[Any]) -> Any:
    """Numbers as a float array; ``None`` and non-numbers become NaN."""
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(float("nan"))
    return np.asarray(out, dtype=float)


def figure_search(
    generations: Sequence[float],
    best: Sequence[float],
    title: str = "",
    logy: bool = False,
    median: Sequence[float] | None = None,
) -> Any:
    """A search curve: the best fitness so far (lower is better) per generation, with each
    generation's own best (and, if given, its median) as faint lines."""
    g = _floats(generations)
    b = _floats(best)
    so_far = np.fmin.accumulate(b) if len(b) else b  # fmin skips NaN (failed generations)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(g, b, color="C0", alpha=0.3, lw=1, label="best of generation")
    if median is not None:
        m = _floats(median)
        ax.plot(g, m, color="C1", alpha=0.3, lw=1, ls="--", label="median of generation")
    ax.plot(g, so_far, color="C0", lw=2, drawstyle="steps-post", label="best so far")
    ax.set(xlabel="generation", ylabel="fitness (lower is better)", title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_search(
    generations: Sequence[float],
    best: Sequence[float],
    path: str | Path,
    title: str = "",
    logy: bool = False,
    median: Sequence[float] | None = None,
) -> Path:
    """Write :func:`figure_search` as a PNG."""
    return _save(figure_search(generations, best, title, logy, median), path)


_SOURCE_CLASSES = {
    "sklearn:digits": 10,
    "sklearn:iris": 3,
    "sklearn:wine": 3,
    "sklearn:breast_cancer": 2,
    "mnist1d": 10,
    "cifar10": 10,
}


def run_task_shape(spec: Mapping[str, Any]) -> tuple[bool, int | None]:
    """``(regression?, number of classes)`` of the task a run was learned on, from its spec.

    Read from a task summary saved with the run (``kind`` and ``num_outputs``) when there is
    one, else from the task registry (``sine``, ``diabetes`` and the UCI tasks are regression;
    the class counts of the built-in data sets are known), else from the method config's
    ``classes`` (MLN's generated tasks). ``None`` classes: unknown (a user's own data).

    Example:
        >>> run_task_shape({"task": "iris-linear"}), run_task_shape({"task": "sine"})
        ((False, 3), (True, None))
    """
    info = spec.get("info") if isinstance(spec.get("info"), Mapping) else {}
    for cand in (
        spec.get("task_summary"),
        spec.get("task_info"),
        spec.get("data"),
        info.get("task"),
    ):
        if isinstance(cand, Mapping) and "kind" in cand and "num_outputs" in cand:
            regression = cand["kind"] == "regression"
            return regression, None if regression else int(cand["num_outputs"])
    from metaloss.tasks.registry import TASKS

    task = TASKS.get(str(spec.get("task")).partition("+")[0])  # a variant keeps its classes
    config = spec.get("config") if isinstance(spec.get("config"), Mapping) else {}
    if task is None:
        classes = config.get("classes") or config.get("num_classes")
        return False, int(classes) if classes else None
    src = task.data
    if src in ("sine", "sklearn:diabetes") or src.startswith("uci:"):
        return True, None
    if src.startswith("idx:"):
        return False, 10  # MNIST, Fashion-MNIST, KMNIST
    return False, _SOURCE_CLASSES.get(src)


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

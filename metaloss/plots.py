"""Every figure of metaloss (matplotlib, PNG): learned loss vs cross-entropy (classification)
or MSE (regression), meta-training and search curves, typeset formulas, bench bar charts.

The ``figure_*`` functions return a :class:`matplotlib.figure.Figure` (for notebooks and
tests); :func:`png_bytes` renders one to PNG bytes; the ``plot_*`` functions write it to the
path the caller gives and return that path. Figures are built with the object-oriented API
(``Figure`` + ``FigureCanvasAgg``): no pyplot global state, no backend is selected, nothing
is written unless a path is given.

Example:
    >>> from metaloss.losses import get_baseline
    >>> fig = figure_losses({"mse": get_baseline("mse")}, regression=True, title="ml3 · sine")
    >>> fig.axes[0].get_xlabel(), fig._suptitle.get_text()
    ('prediction', 'ml3 · sine')
    >>> png_bytes(fig)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty figure drawn by the Agg canvas (no pyplot, no backend selection).

    Example:
        >>> type(new_figure((2, 2)).canvas).__name__
        'FigureCanvasAgg'
    """
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, dpi: int = 100, tight: bool = True, **savefig: Any) -> bytes:
    """The figure as PNG bytes (``tight``: ``tight_layout`` first)."""
    buf = BytesIO()
    if tight:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi, **savefig)
    return buf.getvalue()


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
) -> Figure:
    """A figure of ``losses``: for classification against the predicted probability of the true
    class (``num_classes`` classes, the rest of the mass spread evenly), for regression against
    the prediction for target 0; raw (left) and min-max scaled (right)."""
    if not regression and num_classes < 2:
        raise ValueError(f"figure_losses: num_classes must be >= 2, got {num_classes}")
    fig = new_figure((10, 4))
    axes = fig.subplots(1, 2)
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
) -> Figure:
    """A search curve: the best fitness so far (lower is better) per generation, with each
    generation's own best (and, if given, its median) as faint lines."""
    g = _floats(generations)
    b = _floats(best)
    so_far = np.fmin.accumulate(b) if len(b) else b  # fmin skips NaN (failed generations)
    fig = new_figure((6, 4))
    ax = fig.subplots()
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


def figure_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool | None = False,
) -> Figure:
    """Line plot of named ``(x, y)`` series (learning curves, meta-training, fitness).

    ``logy=None``: a log y axis when every value is positive and they span over 50x.

    Example:
        >>> figure_curves({"a": ([0, 1], [1.0, 1000.0])}, "x", "y", logy=None).axes[0].get_yscale()
        'log'
    """
    if logy is None:
        ys = np.asarray([v for _, y in series.values() for v in y], dtype=float)
        ys = ys[np.isfinite(ys)]
        logy = bool(len(ys)) and bool((ys > 0).all()) and ys.max() / ys.min() > 50
    fig = new_figure((6, 4))
    ax = fig.subplots()
    for name, (x, y) in series.items():
        ax.plot(list(x), list(y), label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return fig


def plot_curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool | None = False,
) -> Path:
    """Write :func:`figure_curves` as a PNG."""
    return _save(figure_curves(series, xlabel, ylabel, title, logy), path)


def figure_regression_landscape(losses: Mapping[str, nn.Module], title: str = "") -> Figure:
    """Loss against the prediction for targets 0 and 1 (standardised regression targets);
    the second row min-max scales every curve so that shapes of any magnitude compare."""
    x = torch.linspace(-3.0, 4.0, 200)
    fig = new_figure((10, 7))
    axes = fig.subplots(2, 2, sharex=True)
    for col, target in enumerate((0.0, 1.0)):
        y = torch.tensor([target])
        for name, loss in losses.items():
            with torch.no_grad():
                v = np.array([float(loss(x[i].view(1, 1), y)) for i in range(len(x))])
            axes[0, col].plot(x.numpy(), v, label=name)
            axes[1, col].plot(x.numpy(), _scaled(v), label=name)
        axes[0, col].set(ylabel="loss", title=f"target y = {target:g}")
        axes[1, col].set(xlabel="prediction", ylabel="scaled loss", title="min-max scaled")
    for ax, target in zip(axes.flat, (0.0, 1.0, 0.0, 1.0)):
        ax.axvline(target, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def figure_landscape(
    losses: Mapping[str, nn.Module], classification: bool, num_classes: int, title: str = ""
) -> Figure:
    """``losses`` drawn with their reference: against cross-entropy over the probability of
    the true class (classification) or against MSE for targets 0 and 1 (regression)."""
    from metaloss.losses import get_baseline

    if classification:
        named = {**losses, "cross_entropy": get_baseline("ce")}
        return figure_losses(named, num_classes=num_classes, title=title)
    return figure_regression_landscape({**losses, "mse": get_baseline("mse")}, title)


def latex_png(latex: str) -> bytes | None:
    """A formula typeset by matplotlib's mathtext as PNG bytes (``None`` when mathtext cannot
    parse it or it is empty / over 600 characters).

    Example:
        >>> latex_png(r"x^2")[:4], latex_png("")
        (b'\\x89PNG', None)
    """
    if not latex or len(latex) > 600:
        return None
    fig = new_figure((10, 0.9))
    try:
        fig.text(0.02, 0.5, f"${latex}$", fontsize=16, va="center")
        return png_bytes(fig, tight=False, bbox_inches="tight", pad_inches=0.1)
    except Exception:  # noqa: BLE001 - mathtext raises several types on unsupported LaTeX
        return None


def figure_bench_bars(
    task: str, rows: Mapping[str, Mapping[str, Any]], baseline: str | None = None
) -> Figure:
    """Bar chart of one bench task: each method's mean test metric with its std over seeds
    (the ``baseline`` grey, its mean a dashed line). ``rows``: method -> summary row with
    ``mean``, ``std`` and ``metric`` (as :func:`metaloss.suite.summarise` writes them)."""
    names = list(rows)
    means = [_floats([rows[m].get("mean")])[0] for m in names]
    stds = [_floats([rows[m].get("std")])[0] for m in names]
    metric = next(iter(rows.values())).get("metric", "metric")
    colors = ["#9aa5b1" if m == baseline else "#3b7dd8" for m in names]
    fig = new_figure((max(5.0, 0.9 * len(names) + 2), 3.8))
    ax = fig.subplots()
    bars = ax.bar(names, means, yerr=stds, capsize=4, color=colors)
    ax.bar_label(bars, labels=[f"{m:.4f}" for m in means], padding=2, fontsize=8)
    if baseline in rows:
        ax.axhline(_floats([rows[baseline].get("mean")])[0], color="#555", lw=0.8, ls="--")
    ax.set(ylabel=f"test {metric} (mean ± std)", title=task)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="x", rotation=20 if len(names) > 5 else 0)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    tmp.write_bytes(png_bytes(fig, dpi=110))
    tmp.replace(path)
    return path

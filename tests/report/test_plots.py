"""Plots that are right: MSE for regression, the run's class count, best-so-far search curves,
"method · task" titles (figures inspected through their lines and labels)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metaloss import plots
from metaloss.io import save_loss
from metaloss.losses import get_baseline
from metaloss.losses.taylor import TaylorLoss


class ClassCount(torch.nn.Module):
    """A 'loss' that records how many classes the plotted predictions have."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def forward(self, y_pred, y_true):
        self.seen.add(int(y_pred.shape[-1]))
        return y_pred.sum() * 0


def lines_by_label(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_regression_losses_are_drawn_against_mse():
    fig = plots.figure_losses(dict([plots.baseline_for(regression=True)]), regression=True,
                              title="ml3 · sine")  # fmt: skip
    try:
        mse = lines_by_label(fig.axes[0])["mse"]
        x, y = mse.get_xdata(), mse.get_ydata()
        assert np.allclose(y, x**2, atol=1e-5)  # MSE at target 0 is the squared prediction
        assert fig.axes[0].get_xlabel() == "prediction"
        assert fig._suptitle.get_text() == "ml3 · sine"
    finally:
        plt.close(fig)
    assert plots.baseline_for(regression=False)[0] == "cross_entropy"


@pytest.mark.parametrize("k", [3, 4])
def test_class_count_reaches_the_loss(k):
    rec = ClassCount()
    fig = plots.figure_losses({"rec": rec, "ce": get_baseline("ce")}, num_classes=k)
    try:
        assert rec.seen == {k}
        ce = lines_by_label(fig.axes[0])["ce"]
        # cross-entropy of the plotted logits is -log p of the true class
        assert np.allclose(ce.get_ydata(), -np.log(ce.get_xdata()), atol=1e-4)
        assert f"{k} classes" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_search_curve_is_best_so_far_with_faint_generation_best():
    best = [5.0, 3.0, 4.0, 2.0, None, 2.5]  # None: a generation without a finite fitness
    fig = plots.figure_search(range(6), best, title="evomal · digits-mlp")
    try:
        ax = fig.axes[0]
        lines = lines_by_label(ax)
        assert list(lines["best so far"].get_ydata()) == [5.0, 3.0, 3.0, 2.0, 2.0, 2.0]
        faint = lines["best of generation"]
        assert faint.get_alpha() < 0.5 and lines["best so far"].get_alpha() in (None, 1)
        assert np.array_equal(faint.get_ydata(), [5, 3, 4, 2, math.nan, 2.5], equal_nan=True)
        assert ax.get_title() == "evomal · digits-mlp"
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"task": "iris-linear"}, (False, 3)),
        ({"task": "breast_cancer-mlp"}, (False, 2)),
        ({"task": "digits-mlp"}, (False, 10)),
        ({"task": "fashion-lenet5"}, (False, 10)),
        ({"task": "sine"}, (True, None)),
        ({"task": "diabetes-mlp"}, (True, None)),
        ({"task": "concrete-mlp"}, (True, None)),
        ({"task": "arrays-mlp"}, (False, None)),  # a user's file: unknown
        ({"task": "mln-generated", "config": {"classes": 4}}, (False, 4)),
        ({"task": "arrays-mlp", "task_summary": {"kind": "classification", "num_outputs": 4}},
         (False, 4)),
    ],
)  # fmt: skip
def test_run_task_shape(spec, expected):
    assert plots.run_task_shape(spec) == expected


def _show(run, monkeypatch):
    """Run `metaloss show RUN` in-process, capturing plot_losses' arguments."""
    from metaloss import cli

    calls = []
    real = plots.plot_losses

    def spy(losses, path, num_classes=10, title="", regression=False):
        calls.append({"names": list(losses), "k": num_classes, "title": title, "reg": regression})
        return real(losses, path, num_classes, title, regression)

    monkeypatch.setattr(plots, "plot_losses", spy)
    result = CliRunner().invoke(cli.app, ["show", str(run)])
    assert result.exit_code == 0, result.output
    return calls[0], result.output


def test_show_uses_the_runs_task(tmp_path, monkeypatch):
    iris = tmp_path / "iris"
    save_loss(iris, TaylorLoss(), meta={"method": "taylorglo", "task": "iris-linear"},
              history=[{"generation": 0, "best": 0.5, "median": 0.9},
                       {"generation": 1, "best": 0.7, "median": 0.8}])  # fmt: skip
    call, out = _show(iris, monkeypatch)
    assert call == {"names": ["learned", "cross_entropy"], "k": 3,
                    "title": "taylorglo · iris-linear", "reg": False}  # fmt: skip
    assert (iris / "loss.png").exists() and (iris / "loss-search.png").exists()
    sine = tmp_path / "sine"
    save_loss(sine, TaylorLoss(), meta={"method": "ml3", "task": "sine"})
    call, _ = _show(sine, monkeypatch)
    assert call["names"] == ["learned", "mse"] and call["reg"] and call["title"] == "ml3 · sine"
    assert not (sine / "loss-search.png").exists()


def test_importing_plots_and_report_selects_no_backend_and_no_pyplot():
    """The object-oriented API needs no backend: importing metaloss's figure code neither
    imports pyplot nor calls matplotlib.use (the user's backend choice stays theirs)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, matplotlib\n"
        "import metaloss.plots, metaloss.report\n"
        "fig = metaloss.plots.figure_curves({'a': ([0, 1], [1, 2])}, 'x', 'y')\n"
        "png = metaloss.plots.png_bytes(fig)\n"
        "print('matplotlib.pyplot' in sys.modules, matplotlib.rcParams._get_backend_or_none(),"
        " png[:4] == b'\\x89PNG')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120, check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "None", "True"]
    source = Path(plots.__file__).read_text()
    assert "matplotlib.use(" not in source and "import matplotlib.pyplot" not in source


def test_plot_writes_only_the_given_path(tmp_path):
    path = tmp_path / "sub" / "curve.png"
    out = plots.plot_curves({"a": ([0, 1, 2], [3.0, 2.0, 1.0])}, path, "step", "loss")
    assert out == path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["curve.png", "sub"]


def test_bench_bars_are_the_means_with_the_baseline_grey():
    rows = {
        "ce": {"mean": 0.30, "std": 0.01, "metric": "error"},
        "ml3": {"mean": 0.25, "std": 0.02, "metric": "error"},
    }
    fig = plots.figure_bench_bars("iris", rows, baseline="ce")
    ax = fig.axes[0]
    bars = ax.patches
    assert [round(b.get_height(), 6) for b in bars] == [0.30, 0.25]
    assert bars[0].get_facecolor() != bars[1].get_facecolor()
    assert ax.get_ylabel() == "test error (mean ± std)" and ax.get_title() == "iris"
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [0.30, 0.30]


@pytest.mark.parametrize(
    ("ys", "log"), [([1.0, 100.0], True), ([1.0, 10.0], False), ([-1.0, 100.0], False)]
)
def test_curves_choose_a_log_axis_over_a_50x_positive_span(ys, log):
    fig = plots.figure_curves({"a": ([0, 1], ys)}, "x", "y", logy=None)
    assert (fig.axes[0].get_yscale() == "log") is log


def test_latex_png_is_none_for_unparsable_or_empty_formulas():
    assert plots.latex_png(r"\frac{x}{2}")[:4] == b"\x89PNG"
    assert plots.latex_png("") is None and plots.latex_png("x" * 601) is None
    assert plots.latex_png(r"\notacommand{") is None

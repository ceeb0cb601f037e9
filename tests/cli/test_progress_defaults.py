"""Progress everywhere: the API shows progress by default on a terminal; bench passes it on;
no raw numpy/scipy RuntimeWarning escapes the statistics."""

from __future__ import annotations

import io
import sys
import warnings
from contextlib import contextmanager

import pytest

import metaloss as ml
from metaloss.losses import get_baseline
from metaloss.results import LearnResult, welch_ci, welch_p


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def learned(monkeypatch):
    """Replace the method behind ``ml.learn``; record the options it receives."""
    calls: list[dict] = []

    def fake(task, **options):
        calls.append(options)
        return LearnResult("fake", getattr(task, "name", "none"), get_baseline("ce"), 0.0)

    monkeypatch.setattr("metaloss.api.method_fn", lambda name: fake)
    return calls


@pytest.mark.parametrize("tty", [True, False])
def test_learn_progress_follows_the_terminal(monkeypatch, learned, iris, tty):
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    ml.learn("ml3", iris)
    ml.learn("ml3", iris, progress=not tty)  # an explicit choice wins
    assert [c["progress"] for c in learned] == [tty, not tty]


@pytest.mark.parametrize("tty", [True, False])
def test_evaluate_progress_follows_the_terminal(monkeypatch, iris, tty):
    seen = []

    @contextmanager
    def bar(total, description, enabled=True):
        if description.startswith("evaluate"):  # not the per-run training bars
            seen.append(enabled)
        yield lambda n=1, **_: None

    monkeypatch.setattr("metaloss.progress.progress_bar", bar)
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    ml.evaluate(["ce"], iris, seeds=1, steps=2, tune=None)
    ml.evaluate(["ce"], iris, seeds=1, steps=2, tune=None, progress=False)
    assert seen == [tty, False]


def test_suite_passes_progress_to_meta_training(monkeypatch, learned, iris):
    from metaloss import suite

    suite._learn("ml3", iris, 0, {}, progress=True)
    suite._learn("ml3", iris, 0, {})
    assert [c["progress"] for c in learned] == [True, False]


def test_bench_cli_shows_progress(monkeypatch, capsys, tmp_path):
    from metaloss import cli, suite

    got = {}

    def fake_suite(name, out, **kw):
        got.update(kw)
        return {}

    monkeypatch.setattr(suite, "run_suite", fake_suite)
    monkeypatch.setattr(suite, "markdown", lambda summary: "")
    monkeypatch.setattr(sys, "argv", ["metaloss", "bench", "quick", "--out", str(tmp_path / "b")])
    cli.main()
    assert got["progress"] is True


@pytest.mark.parametrize(
    "a, b",
    [
        ([1e300, -1e300], [1.0, 2.0]),  # overflow in the variance
        ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0 + 1e-15]),  # near-identical samples
        ([0.0, 0.0], [0.0, 1e-300]),
    ],
)
def test_statistics_leak_no_runtime_warning(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = welch_p(a, b)
        lo, hi = welch_ci(a, b)
    assert 0 <= p <= 1 or p != p
    assert (lo <= hi) or (lo != lo and hi != hi)


def test_progress_total_grows_past_an_estimate(monkeypatch):
    """A widened lr grid does more runs than its bar's estimate: the total follows the count."""
    from metaloss import progress

    updates: list[dict] = []

    class Recorder:
        def __init__(self, *columns, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def add_task(self, description, total, **fields):
            updates.append({"total": total})
            return 0

        def update(self, tid, **kw):
            updates.append(kw)

    monkeypatch.setattr(progress, "Progress", Recorder)
    with progress.progress_bar(3, "grid") as advance:
        for _ in range(5):
            advance(1)
    totals = [u["total"] for u in updates if "total" in u]
    completed = [u["completed"] for u in updates if "completed" in u]
    assert totals == [3, 4, 5]
    assert completed[-1] == 5 and all(c <= t for c, t in zip(completed[-2:], totals[-2:]))

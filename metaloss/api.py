"""The two verbs of the public API: :func:`learn` a loss, :func:`evaluate` losses.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> report = ml.evaluate(["cross_entropy", "mse"], task, seeds=2, steps=100)
    >>> [r.name for r in report.rows]
    ['cross_entropy', 'mse']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss
from metaloss.results import EvalReport, EvalRow, LearnResult
from metaloss.tasks.base import Task, TrainConfig
from metaloss.threads import accepts_threads

METHODS: dict[str, str] = {
    "ml3": "metaloss.meta.unrolled:learn_ml3",
    "adalfl": "metaloss.meta.online:learn_adalfl",
    "taylorglo": "metaloss.meta.taylorglo:learn_taylorglo",
    "mln": "metaloss.meta.mln:learn_mln",
    "evomal": "metaloss.meta.gp:learn_evomal",
    "gplfl": "metaloss.meta.gp:learn_gplfl",
}


def method_fn(name: str) -> Callable[..., LearnResult]:
    """The learner function of a method name (imported on demand)."""
    from importlib import import_module

    key = name.lower().replace("-", "").replace("_", "")
    if key not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    module, fn = METHODS[key].split(":")
    return getattr(import_module(module), fn)


@accepts_threads  # threads= keyword (metaloss.threads)
def learn(method: str, task: Task | str, **options: Any) -> LearnResult:
    """Meta-learn a loss for ``task`` with ``method`` (ml3, adalfl, taylorglo, mln, evomal, gplfl).

    ``task`` may be a :class:`Task` or a registered name; ``options`` go to the method
    (``seed``, ``progress``, budgets such as ``meta_steps`` or ``generations``).
    """
    from metaloss import tasks

    if isinstance(task, str):
        task = tasks.get(task, device=options.pop("device", "cpu"))
    else:
        options.pop("device", None)
    return method_fn(method)(task, **options)


def resolve_loss(spec: str | Loss | Path) -> tuple[str, Loss]:
    """A loss and its display name from a baseline name, a run directory or a module."""
    from metaloss import io
    from metaloss.losses import get_baseline
    from metaloss.losses.handcrafted import BASELINES

    if isinstance(spec, Loss):
        return spec.kind, spec
    text = str(spec)
    if text.lower().replace("-", "_") in BASELINES:
        return text, get_baseline(text)
    if Path(text).exists():
        return Path(text).name, io.load(text)
    raise ConfigError(
        f"loss {text!r} is neither a baseline ({', '.join(sorted(BASELINES))}) "
        "nor an existing run directory"
    )


@accepts_threads  # threads= keyword (metaloss.threads)
def evaluate(
    losses: Sequence[str | Loss | Path] | str | Loss,
    task: Task,
    seeds: int | Sequence[int] = 5,
    baselines: Sequence[str] = (),
    config: TrainConfig | None = None,
    progress: bool = False,
    **overrides: Any,
) -> EvalReport:
    """Train a fresh model per seed with every loss; mean +- std of the test metric.

    Baselines come first; every row is compared with the first one (Welch's t-test).
    """
    from metaloss.training import train

    if isinstance(losses, str | Loss | Path):
        losses = [losses]
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("evaluate: at least one seed is needed")
    config = (config or task.defaults).with_(**overrides)
    named = [resolve_loss(b) for b in baselines] + [resolve_loss(x) for x in losses]
    rows = []
    for name, loss in named:
        vals, val_vals = [], []
        start = time.perf_counter()
        for s in seed_list:
            res = train(task, loss, config, seed=s, progress=progress)
            vals.append(res.test_metric)
            val_vals.append(res.val_metric)
        rows.append(EvalRow(name, vals, val_vals, time.perf_counter() - start))
    report = EvalReport(task.name, task.metric_name, config.steps, seed_list, rows)
    report.compare()
    return report

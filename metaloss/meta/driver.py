"""The one driver of population searches: ``run(search, evaluator, budget, callbacks)``.

Every population method (TaylorGLO, MLN, GP-LFL, EvoMAL) is an ask/tell search run by
:func:`run`, which wraps the resumable loop :func:`~metaloss.meta.search.run_search`
(checkpoint, replay on resume, early stopping) and turns the search's outcome into a
:class:`~metaloss.results.LearnResult`. A user plugs in their own search (any object
with ``ask() -> list[Candidate]`` and ``tell(candidates, fitnesses)``, plus ``result()``
or ``best_loss()``) or their own evaluator (``evaluate(candidates) -> list[Fitness]``).

A search reports its outcome with ``result() -> Outcome`` (the loss found, hall-of-fame
rows, info); a search with only ``best_loss()`` gets ``Outcome(best_loss())``. Methods
that post-process the outcome (MLN scores the ES mean and best sample on held-out tasks)
edit the returned result.

Example (a random search over Taylor losses, scored by a training run):
    >>> import numpy as np
    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, SerialEvaluator, TrainFitness
    >>> from metaloss.losses.taylor import TaylorLoss
    >>> class RandomTaylor:
    ...     def __init__(self, seed):
    ...         self.rng, self.best = np.random.default_rng(seed), (float("inf"), None)
    ...     def ask(self):
    ...         return [Candidate.from_loss(i, TaylorLoss(self.rng.normal(size=8).tolist()))
    ...                 for i in range(3)]
    ...     def tell(self, cands, fits):
    ...         self.best = min([self.best] + [(f.value, c) for c, f in zip(cands, fits)
    ...                                        if f.ok], key=lambda p: p[0])
    ...     def best_loss(self):
    ...         return self.best[1].build()
    >>> ev = SerialEvaluator(TrainFitness(ml.tasks.get("iris-linear"), steps=20))
    >>> res = run(RandomTaylor(0), ev, Budget(generations=2), method="random-taylor")
    >>> res.method, len(res.history), res.loss.kind
    ('random-taylor', 2, 'taylor')
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Evaluator, Fitness
from metaloss.losses.base import Loss
from metaloss.meta.early_stop import EarlyStop
from metaloss.meta.search import Search, run_search
from metaloss.results import LearnResult

__all__ = ["Budget", "Callback", "Outcome", "identity", "run", "task_identity"]

Callback = Callable[[int, list[Candidate], list[Fitness]], None]
"""Called after every generation (replayed ones too) with its candidates and fitness."""


@dataclass(frozen=True)
class Budget:
    """How long a search runs: ``generations`` ask/evaluate/tell rounds, with optional
    early stopping of hopeless candidates (:class:`~metaloss.meta.early_stop.EarlyStop`).

    >>> Budget(3).generations, Budget(3).early_stop is None
    (3, True)
    """

    generations: int
    early_stop: EarlyStop | None = None

    def __post_init__(self) -> None:
        if int(self.generations) < 1:
            raise ConfigError(f"budget: generations must be >= 1, got {self.generations}")


@dataclass
class Outcome:
    """What a search found: the loss, hall-of-fame rows (dicts, best first) and info."""

    loss: Loss
    hall_of_fame: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def outcome_of(search: Search) -> Outcome:
    """``search.result()``, else ``Outcome(search.best_loss())``."""
    result = getattr(search, "result", None)
    if result is not None:
        return result()
    best = getattr(search, "best_loss", None)
    if best is None:
        raise ConfigError(
            f"search {type(search).__name__} has neither result() nor best_loss(): "
            "the driver cannot tell which loss it found"
        )
    return Outcome(best())


#: Settings a search run may change on resume: they leave every recorded fitness valid.
RESUMABLE = ("generations", "evaluator")


def task_identity(task: Any) -> dict[str, Any]:
    """What a fitness run depends on besides the search's settings: the sizes of the task's
    splits, its outputs and its training protocol (``task.defaults``: a changed default lr
    changes every fitness). Stable across processes: no paths, no cache state.

    >>> import metaloss as ml
    >>> d = task_identity(ml.tasks.get("iris-linear"))
    >>> d["splits"], d["outputs"], d["train"]["lr"]
    ([108, 12, 30], 3, 0.05)
    """
    return {
        "splits": [len(task.train), len(task.val), len(task.test)],
        "outputs": task.num_outputs,
        "train": task.defaults.to_dict(),
    }


def identity(method: str, task: str, config: dict[str, Any], data: Any = "") -> dict[str, Any]:
    """What a resumed search must match: method, task, data (:func:`task_identity`) and
    settings (not :data:`RESUMABLE`).

    >>> identity("taylorglo", "iris-linear", {"seed": 0, "generations": 4}, "sklearn")
    {'method': 'taylorglo', 'task': 'iris-linear', 'data': 'sklearn', 'config.seed': 0}
    """
    out: dict[str, Any] = {"method": method, "task": task, "data": data}
    out.update({f"config.{k}": v for k, v in config.items() if k not in RESUMABLE})
    return out


def run(
    search: Search,
    evaluator: Evaluator,
    budget: Budget,
    callbacks: Sequence[Callback] = (),
    *,
    method: str = "search",
    task: str = "",
    config: dict[str, Any] | None = None,
    run_dir: str | Path | None = None,
    progress: bool = False,
    name: str | None = None,
    data: Any = "",
) -> LearnResult:
    """Run ``search`` for ``budget`` with ``evaluator``; its outcome as a LearnResult.

    ``run_dir`` makes the run resumable (recorded generations are replayed, see
    :func:`~metaloss.meta.search.run_search`); ``callbacks`` see every generation.
    ``LearnResult.history`` holds one summary per generation (best, median, rejects,
    stopped, train_steps, seconds). A resume must match the run's :func:`identity`
    (``method``, ``task``, ``data`` - :func:`task_identity` - and ``config`` less its
    ``generations`` and ``evaluator``), so a run may be extended or moved to another
    evaluator, never continued under other settings.
    """

    def each(gen: int, cands: list[Candidate], fits: list[Fitness]) -> None:
        for cb in callbacks:
            cb(gen, cands, fits)

    start = time.perf_counter()
    try:
        history = run_search(
            search,
            evaluator,
            int(budget.generations),
            run_dir,
            progress,
            name or f"{method} {task}".strip(),
            each if callbacks else None,
            early_stop=budget.early_stop,
            identity=identity(method, task, config or {}, data),
        )
    finally:  # an evaluator chosen by "auto" belongs to this run: stop its workers
        if getattr(evaluator, "choice", None) and hasattr(evaluator, "close"):
            evaluator.close()
    out = outcome_of(search)
    info = dict(out.info)
    if getattr(evaluator, "choice", None):  # evaluator="auto": what it chose and why
        info.setdefault("evaluator", dict(evaluator.choice))
    return LearnResult(
        method=method,
        task=task,
        loss=out.loss,
        seconds=time.perf_counter() - start,
        history=history,
        config=dict(config or {}),
        hall_of_fame=list(out.hall_of_fame),
        info=info,
    )

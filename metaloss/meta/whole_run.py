"""One whole run of a method as a fitness: a point of an online method's learning-rate grid.

AdaLFL (and its learned-step control) trains the model while the loss adapts, so its
learning rate is tuned on whole runs (:func:`metaloss.tuning.tune_whole_runs`).
:class:`WholeRunFitness` describes one such run as data (method name, seed, options), so
that the grid's runs can go to worker processes
(:class:`~metaloss.evaluators.run_pool.RunPool`). Its value is the run's validation
metric; the run sees the task with its test split replaced by the validation split, as in
the serial grid, so tuning never reads test data. Registered as the fitness kind
``"whole_run"``.

Example:
    >>> from metaloss import tasks
    >>> from metaloss.evaluators import Candidate
    >>> fit = WholeRunFitness(tasks.get("iris-linear"), "adalfl", 0,
    ...                       {"steps": 20, "init_steps": 5, "snapshots": 0})
    >>> WholeRunFitness.from_options(fit.task, fit.to_options()) == fit
    True
    >>> 0.0 <= fit(Candidate(0, {"kind": "cross_entropy"})).value <= 1.0
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.evaluators.fitness import register
from metaloss.tasks.base import Task, TrainConfig

__all__ = ["ContinuedRunFitness", "WholeRunFitness"]


def _seed(options: dict[str, Any], what: str) -> int:
    seed = options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{what} fitness: 'seed' must be an integer, got {seed!r}")
    return seed


@dataclass
class WholeRunFitness:
    """The validation metric of ``metaloss.learn(method, task, seed=seed, **options)``.

    The candidate is ignored: the method's run learns its own loss.
    """

    kind: ClassVar[str] = "whole_run"

    task: Task
    method: str
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def to_options(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "options": dict(self.options)}

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> WholeRunFitness:
        opts = dict(options)
        unknown = set(opts) - {"method", "seed", "options"}
        if unknown or not isinstance(opts.get("method"), str):
            raise ConfigError(f"whole-run fitness: needs 'method'; unknown {sorted(unknown)}")
        if not isinstance(opts.get("options", {}), dict):
            raise ConfigError("whole-run fitness: 'options' must be a JSON object")
        seed = _seed(opts, "whole-run")
        return cls(task, opts["method"], seed, json.loads(json.dumps(opts.get("options", {}))))

    def __call__(self, candidate: Candidate) -> Fitness:
        import metaloss as ml

        hidden = replace(self.task, test=self.task.val)  # tuning never reads test data
        res = ml.learn(self.method, hidden, seed=self.seed, progress=False, **self.options)
        return Fitness(float(res.info["val_metric"]), seconds=res.seconds)


@dataclass
class ContinuedRunFitness:
    """The validation metric of :func:`~metaloss.meta.online_eval.continue_online` from the
    AdaLFL run directory ``run`` (its saved loss keeps adapting online) under ``config``:
    a point of the grid of ``metaloss evaluate RUN_DIR`` for a saved AdaLFL run. Registered
    as the fitness kind ``"continued_run"``."""

    kind: ClassVar[str] = "continued_run"

    task: Task
    run: str
    seed: int = 0
    config: TrainConfig | None = None

    def to_options(self) -> dict[str, Any]:
        config = self.config.to_dict() if self.config is not None else None
        return {"run": self.run, "seed": self.seed, "config": config}

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> ContinuedRunFitness:
        opts = dict(options)
        unknown = set(opts) - {"run", "seed", "config"}
        if unknown or not isinstance(opts.get("run"), str):
            raise ConfigError(f"continued-run fitness: needs 'run'; unknown {sorted(unknown)}")
        seed, config = _seed(opts, "continued-run"), opts.get("config")
        return cls(task, opts["run"], seed, TrainConfig(**config) if config is not None else None)

    def __call__(self, candidate: Candidate) -> Fitness:
        from metaloss.meta.online_eval import continue_online

        hidden = replace(self.task, test=self.task.val)  # tuning never reads test data
        res = continue_online(self.run, hidden, seed=self.seed, config=self.config)
        return Fitness(float(res.val_metric), seconds=res.seconds)


register("whole_run", "metaloss.meta.whole_run:WholeRunFitness")
register("continued_run", "metaloss.meta.whole_run:ContinuedRunFitness")

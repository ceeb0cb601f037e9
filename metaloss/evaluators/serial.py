"""The serial evaluator (the reference) and the standard fitness: a short training run.

Example:
    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, SerialEvaluator, TrainFitness
    >>> task = ml.tasks.get("iris-linear")
    >>> ev = SerialEvaluator(TrainFitness(task, steps=50))
    >>> [f.ok for f in ev.evaluate([Candidate(0, {"kind": "cross_entropy"})])]
    [True]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metaloss.errors import ConfigError
from metaloss.evaluators.base import (
    Candidate,
    Fitness,
    FitnessFunction,
    guarded,
    stop_steps,
    stopped_info,
)
from metaloss.tasks.base import Task, TrainConfig
from metaloss.training import train


@dataclass
class TrainFitness:
    """Fitness = validation metric after training a fresh, identically seeded model.

    The EvoMAL/TaylorGLO protocol: 500 SGD steps (lr 0.01, batch 128) by default; the
    seed is the same for every candidate so that only the loss differs. The test split is
    never read (selection uses validation only); searches pass a seed of their search
    stream (:func:`metaloss.seeds.search_seed`), never a meta-test seed.
    """

    kind: ClassVar[str] = "train"  # its registered fitness kind (metaloss.evaluators.fitness)

    task: Task
    steps: int = 500
    seed: int = 0
    config: TrainConfig | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def train_config(self) -> TrainConfig:
        return (self.config or self.task.defaults).with_(steps=self.steps, **self.overrides)

    def train_fitness(self) -> TrainFitness:
        """The training stage: this fitness itself (it has no prepare stage)."""
        return self

    def to_options(self) -> dict[str, Any]:
        """Everything but the task, as JSON-able data (see :func:`from_options`)."""
        config = self.config.to_dict() if self.config is not None else None
        return {
            "steps": self.steps,
            "seed": self.seed,
            "config": config,
            "overrides": dict(self.overrides),
        }

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> TrainFitness:
        """The fitness of :meth:`to_options`'s data on ``task``.

        >>> from metaloss import tasks
        >>> fit = TrainFitness(tasks.get("iris-linear"), steps=20, seed=3)
        >>> TrainFitness.from_options(fit.task, fit.to_options()) == fit
        True
        """
        opts = dict(options)
        config = opts.pop("config", None)
        unknown = set(opts) - {"steps", "seed", "overrides"}
        if unknown:
            raise ConfigError(f"train fitness: unknown options {sorted(unknown)}")
        return cls(
            task,
            int(opts.get("steps", 500)),
            int(opts.get("seed", 0)),
            TrainConfig(**config) if config is not None else None,
            dict(opts.get("overrides", {})),
        )

    def __call__(self, candidate: Candidate) -> Fitness:
        """Train and score; with ``candidate.early_stop`` checkpoints, a run whose metric
        exceeds a threshold stops there, its partial metric its value (``info``:
        ``checkpoints``, ``stopped_at``; ``train_steps`` always)."""
        loss = candidate.build()
        config = self.train_config()
        marks = stop_steps(candidate, config.steps)
        stop_at = {s: t for s, (_, t) in marks.items()}
        res = train(
            self.task,
            loss,
            config,
            seed=self.seed,
            test=False,
            stop_at=stop_at,
            stop_examples=candidate.early_stop_examples,
        )
        info = stopped_info(config.steps, marks, res.checkpoints, res.stopped_at)
        if res.diverged or not math.isfinite(res.val_metric):
            fail = Fitness.failure("training diverged (non-finite loss or weights)", res.seconds)
            fail.info = {"train_steps": config.steps}
            return fail
        return Fitness(res.val_metric, seconds=res.seconds, info=info)


@dataclass
class ValMetricFitness(TrainFitness):
    """The validation metric of one training run, exactly as :func:`~metaloss.training.train`
    reports it: one point of a learning-rate grid (:func:`metaloss.tuning.tune_lr`) run in
    a worker process. Unlike :class:`TrainFitness`, a diverged run is no failure but its
    recorded metric (error 1.0; MSE inf), as in the serial grid.

    >>> from metaloss import tasks
    >>> from metaloss.evaluators import Candidate
    >>> task = tasks.get("iris-linear")
    >>> fit = ValMetricFitness(task, steps=20, config=task.defaults.with_(lr=0.1))
    >>> value = fit(Candidate(0, {"kind": "cross_entropy"})).value
    >>> config = task.defaults.with_(steps=20, lr=0.1)
    >>> value == train(task, task.task_loss(), config, test=False).val_metric
    True
    """

    kind: ClassVar[str] = "val_metric"

    def __call__(self, candidate: Candidate) -> Fitness:
        res = train(self.task, candidate.build(), self.train_config(), seed=self.seed, test=False)
        return Fitness(res.val_metric, seconds=res.seconds)


class SerialEvaluator:
    """Evaluate candidates one after another in this process (the reference evaluator)."""

    def __init__(self, fitness: FitnessFunction, on_result: Callable[..., None] | None = None):
        self.fitness = fitness
        self.on_result = on_result

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]:
        out = []
        for c in candidates:
            out.append(guarded(self.fitness, c))
            if self.on_result is not None:
                self.on_result(c, out[-1])
        return out

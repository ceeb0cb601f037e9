"""Scale-free fitness: the best validation metric over a learning-rate grid, of a normalised loss.

A search rewarded by a training run at one learning rate is rewarded for changing the step
size (``c * CE`` at ``lr`` is CE at ``c * lr``). :class:`ScaleFreeFitness` wraps any fitness
with a training stage (:class:`~metaloss.evaluators.serial.TrainFitness`, or a staged one
such as EvoMAL's) and removes that reward in two ways, each optional:

* ``lrs`` (option ``fitness_lrs``): the candidate is trained at every multiple of the
  training stage's learning rate in ``lrs`` as one vmapped population
  (:func:`~metaloss.evaluators.stacked.train_lr_grid`, the serial trainer when ``vmap``
  cannot run the model) and scored by its best validation metric; ``Fitness.info`` records
  the winning ``lr`` and ``lr_factor``.
* ``normalize`` (option ``normalize``): the candidate's loss is wrapped in
  :class:`~metaloss.losses.normalized.GradNormalized` (``"init"``: calibrated on the
  fitness run's initial model; ``"running"``: per batch) before it trains.

The prepare stage of the wrapped fitness (a filter, a local search) runs first, unchanged.
Registered as the fitness kind ``"scale_free"``, so it travels to pool / Ray workers. It
has no single training stage, so the batched evaluator evaluates candidates one by one
(each candidate's grid is still one batched population).

Example:
    >>> from metaloss import tasks
    >>> from metaloss.evaluators import Candidate, TrainFitness
    >>> task = tasks.get("iris-linear")
    >>> fit = ScaleFreeFitness(TrainFitness(task, steps=20), lrs=(0.25, 1.0, 4.0))
    >>> res = fit(Candidate(0, {"kind": "cross_entropy"}))
    >>> res.ok, res.info["lr_factor"] in (0.25, 1.0, 4.0)
    (True, True)
    >>> with_scale_free(fit.inner, (), "none") is fit.inner
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from metaloss.errors import ConfigError
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction
from metaloss.losses.normalized import NORMALIZE, normalize
from metaloss.tasks.base import Task

__all__ = ["ScaleFreeFitness", "with_scale_free"]


@dataclass
class ScaleFreeFitness:
    """``inner``'s fitness, trained over a learning-rate grid and/or gradient-normalised.

    Args:
        inner: a fitness with a training stage (``train_fitness()``).
        lrs: multiples of the training stage's learning rate (empty: its own rate only).
        normalize: ``"none"``, ``"init"`` or ``"running"``
            (:func:`metaloss.losses.normalized.normalize`).
    """

    kind: ClassVar[str] = "scale_free"

    inner: FitnessFunction
    lrs: tuple[float, ...] = ()
    normalize: str = "none"

    def __post_init__(self) -> None:
        self.lrs = tuple(float(f) for f in self.lrs)
        if any(not (f > 0 and math.isfinite(f)) for f in self.lrs):
            raise ConfigError(f"option fitness_lrs: factors must be > 0, got {list(self.lrs)}")
        if self.normalize not in NORMALIZE:
            raise ConfigError(
                f"option normalize must be one of {NORMALIZE}, got {self.normalize!r}"
            )
        if fitness_kinds.training_stage(self.inner) is None:
            raise ConfigError(
                f"scale-free fitness: {type(self.inner).__name__} has no training stage"
            )

    @property
    def task(self) -> Task:
        stage = fitness_kinds.training_stage(self.inner)
        assert stage is not None
        return stage.task

    def prepare(self, candidate: Candidate) -> tuple[Candidate, dict[str, Any]] | Fitness:
        """The wrapped fitness's prepare stage (the identity when it has none)."""
        return fitness_kinds.prepare(self.inner, candidate)

    def __call__(self, candidate: Candidate) -> Fitness:
        from metaloss.evaluators.stacked import VmapError, train_lr_grid
        from metaloss.training import train, worst_metric

        prepared = self.prepare(candidate)
        if isinstance(prepared, Fitness):
            return prepared
        cand, tensors = prepared
        stage = fitness_kinds.training_stage(self.inner)
        assert stage is not None
        task, config, seed = stage.task, stage.train_config(), stage.seed
        start = time.perf_counter()
        loss = normalize(cand.build().to(task.device), self.normalize, task, seed)
        factors = self.lrs or (1.0,)
        lrs = [config.lr * f for f in factors]
        try:
            if len(lrs) == 1:  # no grid: the serial trainer is faster than a stack of one
                raise VmapError("one learning rate")
            values = train_lr_grid(task, loss, config, seed, lrs)
        except VmapError:  # the serial trainer, one rate after another
            values = []
            for lr in lrs:
                res = train(task, loss, config.with_(lr=lr), seed=seed, test=False)
                ok = not res.diverged and math.isfinite(res.val_metric)
                values.append(res.val_metric if ok else worst_metric(task))
        seconds = time.perf_counter() - start
        worst = worst_metric(task)
        finite = [v for v in values if math.isfinite(v)]
        if not finite or all(v >= worst for v in values):
            return Fitness.failure("training diverged at every learning rate of the grid", seconds)
        best = min(range(len(values)), key=lambda i: values[i])
        info = {"lr": lrs[best], "lr_factor": factors[best]}
        return Fitness(values[best], seconds=seconds, info=info, tensors=dict(tensors))

    def to_options(self) -> dict[str, Any]:
        """The wrapped fitness (as kind, module, options), the grid and the normalisation."""
        kind, module, options = fitness_kinds.describe(self.inner)
        inner = {"kind": kind, "module": module, "options": options}
        return {"inner": inner, "lrs": list(self.lrs), "normalize": self.normalize}

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> ScaleFreeFitness:
        """The fitness of :meth:`to_options`'s data on ``task``.

        >>> from metaloss import tasks
        >>> from metaloss.evaluators import TrainFitness
        >>> fit = ScaleFreeFitness(TrainFitness(tasks.get("iris-linear"), steps=20), (1.0, 2.0))
        >>> ScaleFreeFitness.from_options(fit.task, fit.to_options()) == fit
        True
        """
        unknown = set(options) - {"inner", "lrs", "normalize"}
        if unknown:
            raise ConfigError(f"scale-free fitness: unknown options {sorted(unknown)}")
        spec = options["inner"]
        inner = fitness_kinds.build(spec["kind"], task, spec["options"], spec.get("module"))
        return cls(inner, tuple(options.get("lrs", ())), options.get("normalize", "none"))


def with_scale_free(
    fitness: FitnessFunction, lrs: Sequence[float] = (), normalize: str = "none"
) -> FitnessFunction:
    """``fitness`` under the options ``fitness_lrs`` and ``normalize``: unchanged when both
    are off, else a :class:`ScaleFreeFitness` (what the search methods construct)."""
    if not lrs and normalize == "none":
        return fitness
    return ScaleFreeFitness(fitness, tuple(lrs), normalize)


fitness_kinds.register(ScaleFreeFitness.kind, ScaleFreeFitness)

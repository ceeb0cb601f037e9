"""Population evaluators: serial (reference), batched (vmap), process pool, Ray.

Modules: :mod:`~metaloss.evaluators.base` (candidates, fitness records),
:mod:`~metaloss.evaluators.fitness` (the fitness protocol and the registry of fitness
kinds), :mod:`~metaloss.evaluators.serial` (the reference evaluator, ``TrainFitness``),
:mod:`~metaloss.evaluators.batched` (population evaluation) on
:mod:`~metaloss.evaluators.stacked` (vmapped training of stacked models and losses) and
:mod:`~metaloss.evaluators.memory` (chunk sizes), :mod:`~metaloss.evaluators.spec`
(fitness specs and the JSON wire format), :mod:`~metaloss.evaluators.pool` and
:mod:`~metaloss.evaluators.ray`; :mod:`~metaloss.evaluators.run_pool` (independent runs,
e.g. a learning-rate grid's, in worker processes). No evaluator imports a method: methods
register their fitness kinds.
"""

from __future__ import annotations

from metaloss.evaluators.base import (
    WORST,
    Candidate,
    Evaluator,
    Fitness,
    FitnessFunction,
    guarded,
)
from metaloss.evaluators.serial import SerialEvaluator, TrainFitness

__all__ = [
    "WORST",
    "Candidate",
    "Evaluator",
    "Fitness",
    "FitnessFunction",
    "SerialEvaluator",
    "TrainFitness",
    "guarded",
    "make_evaluator",
]


def make_evaluator(name: str, fitness: FitnessFunction, **options) -> Evaluator:
    """An evaluator by name: ``serial`` (reference), ``batched`` (alias ``vmap``), ``pool``,
    ``ray``, or ``auto`` (the rule of :func:`metaloss.evaluators.auto.choose_evaluator`:
    batched on a GPU or for small dense models, else a process pool on several CPUs, else
    serial; ``options`` go to the chosen one when it takes them).

    ``pool`` (:class:`~metaloss.evaluators.pool.ProcessPoolEvaluator`) uses one worker
    process per available CPU (``num_workers`` / ``workers`` to change it), without Ray.
    Each method's ``evaluator`` argument names one (default ``auto``); an evaluator built
    by ``auto`` records what it chose and why in its ``choice`` attribute, and the search's
    result in ``info["evaluator"]``.

    >>> from metaloss import tasks
    >>> ev = make_evaluator("pool", TrainFitness(tasks.get("iris-linear")), num_workers=2)
    >>> ev.workers
    2
    """
    from metaloss.errors import ConfigError

    if name == "auto":
        from metaloss.evaluators.auto import choose_evaluator

        name, reason = choose_evaluator(fitness)
        takes = {
            "batched": {"chunk_size", "check_every"},
            "pool": {"workers", "num_workers", "threads_per_worker", "max_retries"},
        }
        options = {k: v for k, v in options.items() if k in takes.get(name, set())}
        ev = make_evaluator(name, fitness, **options)
        ev.choice = {"evaluator": name, "reason": reason}
        return ev
    if name == "serial":
        return SerialEvaluator(fitness)
    if name in ("batched", "vmap"):
        from metaloss.evaluators.batched import BatchedEvaluator

        return BatchedEvaluator(fitness, **options)
    if name == "pool":
        from metaloss.evaluators.pool import ProcessPoolEvaluator, _options

        return ProcessPoolEvaluator(fitness, **_options(options))
    if name == "ray":
        from metaloss.evaluators.ray import RayEvaluator

        return RayEvaluator(fitness, **options)
    raise ConfigError(f"evaluator must be serial, batched, pool or ray (or auto), got {name!r}")

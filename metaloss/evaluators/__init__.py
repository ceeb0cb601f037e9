"""Population evaluators: serial (reference), batched (vmap), Ray."""

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
    """An evaluator by name: ``serial`` (reference), ``batched`` (alias ``vmap``) or ``ray``."""
    from metaloss.errors import ConfigError

    if name == "serial":
        return SerialEvaluator(fitness)
    if name in ("batched", "vmap"):
        from metaloss.evaluators.batched import BatchedEvaluator

        return BatchedEvaluator(fitness, **options)
    if name == "ray":
        from metaloss.evaluators.ray import RayEvaluator

        return RayEvaluator(fitness, **options)
    raise ConfigError(f"evaluator must be serial, batched or ray, got {name!r}")

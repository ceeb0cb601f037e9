"""A test-only fitness kind, ``"crash_test"``: a :class:`TrainFitness` whose worker process
exits (``os._exit``) on chosen candidates. Never build it in a process you want to keep.

Options: the :class:`TrainFitness` options, plus ``crash_ids`` (exit the first time such a
candidate is seen; ``marker_dir`` records which ones already crashed) and ``always_ids``
(exit every time). Registered when this module is imported; pool and Ray workers import it
by its module path (``FitnessSpec.module``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.base import Candidate, Fitness
from metaloss.evaluators.serial import TrainFitness
from metaloss.tasks.base import Task

CRASH_KEYS = ("crash_ids", "always_ids", "marker_dir")


@dataclass
class CrashingFitness(TrainFitness):
    kind: ClassVar[str] = "crash_test"

    crash: dict[str, Any] = field(default_factory=dict)

    def __call__(self, candidate: Candidate) -> Fitness:
        if candidate.id in self.crash.get("always_ids", []):
            os._exit(17)
        if candidate.id in self.crash.get("crash_ids", []):
            marker = Path(self.crash.get("marker_dir", ".")) / f"crashed-{candidate.id}"
            if not marker.exists():
                marker.touch()
                os._exit(17)
        return super().__call__(candidate)

    def train_fitness(self) -> TrainFitness:
        return self

    def to_options(self) -> dict[str, Any]:
        return super().to_options() | dict(self.crash)

    @classmethod
    def from_options(cls, task: Task, options: dict[str, Any]) -> CrashingFitness:
        crash = {k: options[k] for k in CRASH_KEYS if k in options}
        base = TrainFitness.from_options(
            task, {k: v for k, v in options.items() if k not in CRASH_KEYS}
        )
        return cls(base.task, base.steps, base.seed, base.config, base.overrides, crash)


def crashing(fit: TrainFitness, **crash: Any) -> CrashingFitness:
    """``fit`` with the crash options ``crash``."""
    return CrashingFitness(fit.task, fit.steps, fit.seed, fit.config, fit.overrides, crash)


fitness_kinds.register(CrashingFitness.kind, CrashingFitness)

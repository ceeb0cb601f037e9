"""Early stopping of hopeless candidates in population searches (a median rule at fixed
checkpoints of the fitness run), deterministic and exact on resume.

Every candidate's fitness run measures its validation metric at fixed fractions of its
steps (``at``, e.g. 25 % and 50 %) and records them in ``Fitness.info["checkpoints"]``.
The thresholds of generation ``g`` are computed **only from generation ``g - 1``'s
recorded checkpoint metrics**: at each checkpoint, the ``quantile`` (0.5: the median) of
the metrics of the previous generation's candidates that reached it, plus ``margin``. A
candidate whose metric is above the threshold at a checkpoint stops there; its fitness
is its partial metric (``ok``, ``info["stopped_at"]`` the fraction), so it ranks behind
the candidates that would have beaten the previous generation's median there.

Why this design: thresholds depend on recorded history alone, never on the order or
timing in which the members of a generation finish, so the serial, batched and pool
evaluators give the same values, and a resumed run (which replays the recorded
generations) computes the same thresholds. Generation 0 records checkpoints but stops
nothing. A synchronous rung scheme (successive halving inside a generation) would need
every evaluator to pause and resume training runs; this rule needs one comparison per
checkpoint inside an ordinary training run.

Example:
    >>> from metaloss.evaluators.base import Fitness
    >>> rule = EarlyStop(at=(0.25, 0.5), margin=0.0)
    >>> prev = [Fitness(0.2, info={"checkpoints": {"0.25": v, "0.5": v / 2}})
    ...         for v in (0.3, 0.5, 0.9)]
    >>> rule.thresholds(prev)
    ((0.25, 0.5), (0.5, 0.25))
    >>> rule.thresholds([])  # the first generation: record, never stop
    ((0.25, inf), (0.5, inf))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness

__all__ = ["EarlyStop", "early_stop_of"]


@dataclass(frozen=True)
class EarlyStop:
    """The stopping rule: checkpoints ``at`` (fractions in (0, 1)), a ``quantile`` of the
    previous generation's metrics there, plus ``margin`` (in the metric's units)."""

    at: tuple[float, ...] = (0.25, 0.5)
    quantile: float = 0.5
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not self.at or any(not 0 < f < 1 for f in self.at):
            raise ConfigError(f"early_stop_at: fractions must be in (0, 1), got {self.at!r}")
        if len(set(self.at)) != len(self.at):
            raise ConfigError(f"early_stop_at: fractions must differ, got {self.at!r}")
        if not 0 < self.quantile <= 1:
            raise ConfigError(f"early_stop_quantile must be in (0, 1], got {self.quantile}")
        if not math.isfinite(self.margin):
            raise ConfigError(f"early_stop_margin must be finite, got {self.margin}")

    def thresholds(self, previous: Sequence[Fitness]) -> tuple[tuple[float, float], ...]:
        """``(fraction, threshold)`` per checkpoint from the previous generation's records
        (``inf`` where none of them reached it)."""
        out = []
        for f in sorted(self.at):
            label = f"{f:g}"
            vals = [
                float(fit.info["checkpoints"][label])
                for fit in previous
                if fit.ok and label in fit.info.get("checkpoints", {})
            ]
            vals = [v for v in vals if math.isfinite(v)]
            t = float(np.quantile(vals, self.quantile)) + self.margin if vals else math.inf
            out.append((f, t))
        return tuple(out)

    def apply(self, candidates: Sequence[Candidate], previous: Sequence[Fitness]) -> None:
        """Give every candidate this generation's checkpoints and thresholds."""
        stop = self.thresholds(previous)
        for c in candidates:
            c.early_stop = stop


def early_stop_of(cfg: object) -> EarlyStop | None:
    """The rule of a method config with ``early_stop`` fields (None when off).

    >>> from metaloss.meta.configs import TaylorGLOConfig
    >>> early_stop_of(TaylorGLOConfig(early_stop=False)) is None
    True
    """
    if not getattr(cfg, "early_stop", False):
        return None
    return EarlyStop(
        tuple(cfg.early_stop_at),  # type: ignore[attr-defined]
        float(cfg.early_stop_quantile),  # type: ignore[attr-defined]
        float(cfg.early_stop_margin),  # type: ignore[attr-defined]
    )

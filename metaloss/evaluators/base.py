"""Candidates, fitness records and the evaluator interface of population searches.

A search proposes :class:`Candidate` losses (``ask``), an evaluator scores them, the
search is told the scores (``tell``). A candidate is plain data: a loss spec (JSON) plus
optional tensors, so it can travel to another process or machine without pickling code.
Evaluation failures (NaN, inf, exceptions) become :class:`Fitness` records with
``ok=False``, the worst value and a reason; they never stop a search.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor

from metaloss.losses.base import Loss, build_loss

WORST = math.inf  # fitness is minimised; failures get +inf


@dataclass
class Candidate:
    """A loss to evaluate: ``spec`` is ``{"kind", "config"}``; ``tensors`` its weights."""

    id: int
    spec: dict[str, Any]
    tensors: dict[str, Tensor] = field(default_factory=dict)

    def build(self) -> Loss:
        """Instantiate the loss (no code from the candidate is executed)."""
        loss = build_loss(self.spec)
        if self.tensors:
            loss.load_state_dict(self.tensors, strict=False)
        return loss

    @staticmethod
    def from_loss(id: int, loss: Loss) -> Candidate:
        """The candidate of a loss module: its spec and a copy of its tensors."""
        tensors = {k: v.detach().cpu().clone() for k, v in loss.state_dict().items()}
        return Candidate(id, loss.spec(), tensors)


@dataclass
class Fitness:
    """The score of one candidate (lower is better) or why it failed."""

    value: float
    ok: bool = True
    reason: str = ""
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)  # e.g. tuned weights

    @staticmethod
    def failure(reason: str, seconds: float = 0.0) -> Fitness:
        return Fitness(WORST, ok=False, reason=reason, seconds=seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value if math.isfinite(self.value) else None,
            "ok": self.ok,
            "reason": self.reason,
            "seconds": round(self.seconds, 4),
            **({"info": self.info} if self.info else {}),
        }


class FitnessFunction(Protocol):
    """Scores one candidate. Must be deterministic for a candidate (fixed seeds)."""

    def __call__(self, candidate: Candidate) -> Fitness: ...


class Evaluator(Protocol):
    """Scores a list of candidates; serial, batched and Ray evaluators must agree."""

    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]: ...


def guarded(fn: FitnessFunction, candidate: Candidate) -> Fitness:
    """Call ``fn`` and turn NaN / inf / exceptions into failure records."""
    start = time.perf_counter()
    try:
        fit = fn(candidate)
    except Exception as exc:  # noqa: BLE001 - invalid candidates are data, not crashes
        return Fitness.failure(failure_reason(exc), time.perf_counter() - start)
    fit.seconds = fit.seconds or time.perf_counter() - start
    if fit.ok and not math.isfinite(fit.value):
        return Fitness.failure("non-finite fitness", fit.seconds)
    return fit


def failure_reason(exc: BaseException) -> str:
    """One line for a failure record: the exception and the function that raised it.

    >>> failure_reason(ValueError("bad"))
    'ValueError: bad'
    """
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].name}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"

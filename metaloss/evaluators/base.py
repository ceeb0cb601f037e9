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
    # early stopping: ``(fraction of the fitness run, threshold)`` pairs set by the search
    # driver (the early-stopping rule of the searches); not part of the identity
    early_stop: tuple[tuple[float, float], ...] = ()
    # validation examples measured at those checkpoints (0: all; see
    # :func:`metaloss.training.checkpoint_split`)
    early_stop_examples: int = 0

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


def checkpoint_step(fraction: float, steps: int) -> int:
    """The training step of an early-stopping checkpoint at ``fraction`` of ``steps``.

    >>> checkpoint_step(0.25, 500), checkpoint_step(0.001, 500), checkpoint_step(1.0, 20)
    (125, 1, 20)
    """
    return min(steps, max(1, int(round(fraction * steps))))


def stop_steps(candidate: Candidate, steps: int) -> dict[int, tuple[str, float]]:
    """``{step: (fraction label, threshold)}`` of a candidate's early-stopping checkpoints
    (the label, ``f"{fraction:g}"``, keys the metrics recorded in ``Fitness.info``).

    >>> c = Candidate(0, {}, early_stop=((0.25, 0.5), (0.5, float("inf"))))
    >>> stop_steps(c, 100)
    {25: ('0.25', 0.5), 50: ('0.5', inf)}
    """
    return {checkpoint_step(f, steps): (f"{f:g}", float(t)) for f, t in candidate.early_stop}


def stopped_info(
    steps: int, marks: dict[int, tuple[str, float]], metrics: dict[int, float], stopped: int | None
) -> dict[str, Any]:
    """``Fitness.info`` of a training-stage run: its nominal training steps (the stop
    step, else ``steps``), and with checkpoints their metrics and where it stopped.

    >>> stopped_info(100, {25: ("0.25", 0.5)}, {25: 0.9}, 25)
    {'train_steps': 25, 'checkpoints': {'0.25': 0.9}, 'stopped_at': 0.25}
    """
    info: dict[str, Any] = {"train_steps": stopped if stopped is not None else steps}
    if marks:
        info["checkpoints"] = {marks[s][0]: v for s, v in sorted(metrics.items())}
    if stopped is not None:
        info["stopped_at"] = float(marks[stopped][0])
    return info


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

"""Early stopping of hopeless candidates in population searches (a median rule at fixed
checkpoints of the fitness run), deterministic and exact on resume.

Every candidate's fitness run measures its validation metric at fixed fractions of its
steps (``at``, e.g. 10, 20 and 40 %) and records them in ``Fitness.info["checkpoints"]``.
The thresholds of generation ``g`` are computed **only from the recorded checkpoint
metrics of earlier generations**: at each checkpoint, the ``quantile`` (0.5: the median),
plus ``margin``, of the reference metrics there. ``reference="previous"``: the metrics of
generation ``g - 1``'s candidates that reached the checkpoint; ``reference="elite"`` (the
searches' default): the best ``n`` metrics recorded there in all earlier generations, ``n``
the previous generation's size, so the thresholds tighten as the search improves.
``floor`` > 0 keeps a threshold from falling below that quantile of the previous
generation's metrics at the checkpoint: the best records so far are the luckiest draws of
a noisy early metric, and without a floor the elite thresholds can fall below every new
candidate, so whole generations stop at the first checkpoint and the search from then on
ranks candidates by their early metric alone (measured: docs/benchmarks.md). A
candidate whose metric is above the threshold at a checkpoint stops there; its fitness
is its partial metric (``ok``, ``info["stopped_at"]`` the fraction), so it ranks behind
the candidates that beat the reference there.

Why this design: thresholds depend on recorded history alone, never on the order or
timing in which the members of a generation finish, so the serial, batched and pool
evaluators give the same values, and a resumed run (which replays the recorded
generations) computes the same thresholds. Generation 0 records checkpoints but stops
nothing. ``examples`` > 0 measures the checkpoints on that many validation examples (a
fixed subset, :func:`metaloss.training.checkpoint_split`): on a larger model a full
validation pass costs as much as dozens of training steps, so full passes at three
checkpoints would eat most of the time that stopping saves. A stopped candidate's
fitness is that subset metric. A synchronous rung scheme (successive halving inside a
generation) would need every evaluator to pause and resume training runs; this rule
needs one comparison per checkpoint inside an ordinary training run.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness

__all__ = ["REFERENCES", "EarlyStop", "early_stop_of", "rescue_generation"]


REFERENCES = ("previous", "elite")


@dataclass(frozen=True)
class EarlyStop:
    """The stopping rule: checkpoints ``at`` (fractions in (0, 1)), a ``quantile`` of the
    reference metrics there, plus ``margin`` (in the metric's units), measured on
    ``examples`` validation examples (0: all).

    ``reference="previous"``: the previous generation's metrics at the checkpoint.
    ``reference="elite"``: the best ``n`` metrics ever recorded at the checkpoint, over all
    earlier generations, where ``n`` is the previous generation's size; it tightens as the
    search improves (never looser than ``previous``'s threshold for the same quantile).
    ``floor`` (0: none): a threshold is never below this quantile (plus ``margin``) of the
    previous generation's metrics at the checkpoint, so that, while the candidates' early
    metrics stay as they were, about ``1 - floor`` of them pass each checkpoint; where no
    candidate of the previous generation reached a checkpoint, nobody stops there.
    ``rescue`` (0: none): when fewer than this many candidates of a generation ran to the
    end, the stopped ones that went furthest run again without stopping
    (:func:`rescue_generation`), so no generation is ranked by early metrics alone.

    >>> from metaloss.evaluators.base import Fitness
    >>> old = [Fitness(0.1, info={"checkpoints": {"0.5": v}}) for v in (0.1, 0.2)]
    >>> new = [Fitness(0.3, info={"checkpoints": {"0.5": v}}) for v in (0.4, 0.6)]
    >>> EarlyStop(at=(0.5,)).thresholds(new, old + new)  # previous: median of 0.4, 0.6
    ((0.5, 0.5),)
    >>> EarlyStop(at=(0.5,), reference="elite").thresholds(new, old + new)  # of 0.1, 0.2
    ((0.5, 0.15000000000000002),)
    >>> EarlyStop(at=(0.5,), reference="elite", floor=0.25).thresholds(new, old + new)
    ((0.5, 0.45),)
    """

    at: tuple[float, ...] = (0.25, 0.5)
    quantile: float = 0.5
    margin: float = 0.0
    reference: str = "previous"
    examples: int = 0
    floor: float = 0.0
    rescue: int = 0

    def __post_init__(self) -> None:
        if not self.at or any(not 0 < f < 1 for f in self.at):
            raise ConfigError(f"early_stop_at: fractions must be in (0, 1), got {self.at!r}")
        if len(set(self.at)) != len(self.at):
            raise ConfigError(f"early_stop_at: fractions must differ, got {self.at!r}")
        if not 0 < self.quantile <= 1:
            raise ConfigError(f"early_stop_quantile must be in (0, 1], got {self.quantile}")
        if not math.isfinite(self.margin):
            raise ConfigError(f"early_stop_margin must be finite, got {self.margin}")
        if not 0 <= self.floor <= 1:
            raise ConfigError(f"early_stop_floor must be in [0, 1], got {self.floor}")
        if self.rescue < 0:
            raise ConfigError(f"early_stop_rescue must be >= 0, got {self.rescue}")
        if self.examples < 0:
            raise ConfigError(f"early_stop_examples must be >= 0, got {self.examples}")
        if self.reference not in REFERENCES:
            raise ConfigError(
                f"early_stop_reference must be one of {', '.join(REFERENCES)}, "
                f"got {self.reference!r}"
            )

    def thresholds(
        self, previous: Sequence[Fitness], history: Sequence[Fitness] | None = None
    ) -> tuple[tuple[float, float], ...]:
        """``(fraction, threshold)`` per checkpoint from the previous generation's records
        (``reference="elite"``: the best ``len(previous)`` of ``history``, every earlier
        generation's records); ``inf`` where none of them reached it. With ``floor`` > 0 a
        threshold is at least that quantile of ``previous``'s metrics there, and ``inf``
        where none of ``previous`` reached the checkpoint (after a generation that stopped
        every candidate at 10 %, its successors are not judged at 20 or 40 %)."""
        pool = previous if self.reference == "previous" else (history or previous)
        out = []
        for f in sorted(self.at):
            label = f"{f:g}"
            vals = _metrics(pool, label)
            if self.reference == "elite":
                vals = sorted(vals)[: len(previous)]
            t = float(np.quantile(vals, self.quantile)) + self.margin if vals else math.inf
            if self.floor > 0:  # no previous record there: no floor known, no stopping
                last = _metrics(previous, label)
                t = max(t, float(np.quantile(last, self.floor)) + self.margin) if last else math.inf
            out.append((f, t))
        return tuple(out)

    def apply(
        self,
        candidates: Sequence[Candidate],
        previous: Sequence[Fitness],
        history: Sequence[Fitness] | None = None,
    ) -> None:
        """Give every candidate this generation's checkpoints and thresholds."""
        stop = self.thresholds(previous, history)
        for c in candidates:
            c.early_stop = stop
            c.early_stop_examples = self.examples


def rescue_generation(
    rule: EarlyStop,
    candidates: Sequence[Candidate],
    fits: list[Fitness],
    evaluate: Callable[[list[Candidate]], list[Fitness]],
) -> list[Fitness]:
    """Make at least ``rule.rescue`` candidates of a generation run to the end.

    When fewer ran to the end (neither stopped nor failed), the stopped candidates that
    went furthest (latest stop, then lowest partial metric, then lowest index) run again
    without stopping: the same checkpoints with infinite thresholds, so the rerun is
    exactly the run without early stopping. Their fitness replaces the partial one, with
    ``info["rescued"]`` = the fraction where they had stopped and ``train_steps`` counting
    both runs. Deterministic: the choice depends on the generation's recorded values only.
    Without it, a generation whose every candidate stops is ranked by early metrics alone
    and none of its candidates can become the search's best.

    >>> from metaloss.evaluators.base import Candidate, Fitness
    >>> cands = [Candidate(i, {"kind": "cross_entropy"}, early_stop=((0.5, 0.1),))
    ...          for i in range(2)]
    >>> fits = [Fitness(v, info={"stopped_at": 0.5, "train_steps": 5}) for v in (0.4, 0.3)]
    >>> full = lambda cs: [Fitness(0.2, info={"train_steps": 10}) for c in cs]
    >>> out = rescue_generation(EarlyStop((0.5,), rescue=1), cands, fits, full)
    >>> [(f.value, f.info.get("rescued"), f.info["train_steps"]) for f in out]
    [(0.4, None, 5), (0.2, 0.5, 15)]
    """
    complete = sum(1 for f in fits if f.ok and "stopped_at" not in f.info)
    stopped = [i for i, f in enumerate(fits) if f.ok and "stopped_at" in f.info]
    stopped.sort(key=lambda i: (-float(fits[i].info["stopped_at"]), fits[i].value, i))
    pick = stopped[: max(0, rule.rescue - complete)]
    if not pick:
        return fits
    again = [
        replace(candidates[i], early_stop=tuple((f, math.inf) for f, _ in candidates[i].early_stop))
        for i in pick
    ]
    out = list(fits)
    for i, fit in zip(pick, evaluate(again)):
        info = dict(fit.info)
        info["rescued"] = fits[i].info["stopped_at"]
        info["train_steps"] = int(info.get("train_steps", 0)) + int(
            fits[i].info.get("train_steps", 0)
        )
        fit.seconds += fits[i].seconds
        fit.info = info
        out[i] = fit
    return out


def _metrics(fits: Sequence[Fitness], label: str) -> list[float]:
    """The finite metrics recorded at checkpoint ``label`` by the runs that reached it."""
    vals = [float(f.info["checkpoints"][label]) for f in fits
            if f.ok and label in f.info.get("checkpoints", {})]  # fmt: skip
    return [v for v in vals if math.isfinite(v)]


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
        str(getattr(cfg, "early_stop_reference", "previous")),
        int(getattr(cfg, "early_stop_examples", 0)),
        float(getattr(cfg, "early_stop_floor", 0.0)),
        int(getattr(cfg, "early_stop_rescue", 0)),
    )

"""Learning-rate tuning: the same budget for every loss in a comparison, chosen on validation.

A learned loss that scales cross-entropy's gradient by 20 is a learned step size, not a
better loss. So every loss in a table - baselines and learned ones alike - is trained at
every learning rate of a log-spaced grid around the task default (x1/4 ... x64 in factors
of 2 by default) on *tuning seeds* (:func:`metaloss.seeds.tuning_seeds`, disjoint from
every reporting seed), and the learning rate with the lowest mean validation metric wins.
The grid widens by one factor of 2 at a time while the winner lies on an edge (at most
``max_widen`` points per side). The test split is never read while tuning.

Tie rule: grid points whose mean validation metrics are equal (within 1e-12) are decided in
favour of the smaller learning rate. When the best two points differ by less than one
validation sample (classification), the result carries a note: the validation split is too
small to separate them.

A loss's grid on one seed is one population of one architecture: it trains as one vmapped
batch with a per-member learning rate (:func:`metaloss.evaluators.batched.train_lr_grid`),
and falls back to serial runs for models ``vmap`` cannot batch (dropout).

A grid's unbatched runs (serial, in worker processes, or whole online runs) can be recorded
one by one in a :class:`~metaloss.grid_log.GridLog` (``runs=``), so that a stopped tuning
resumes where it stopped, with the values of an uninterrupted one; ``metaloss bench`` does
this in its folder's ``tuning-runs.jsonl``.

Example:
    >>> import metaloss as ml
    >>> from metaloss.tuning import TuneConfig, tune_lr
    >>> task = ml.tasks.get("iris-linear")
    >>> config = task.defaults.with_(steps=50, lr=0.01)
    >>> res = tune_lr(task, ml.losses.get_loss("ce"), config,
    ...               TuneConfig(factors=(1, 4, 16), seeds=1, max_widen=0))
    >>> [p.lr for p in res.points] == [0.01, 0.04, 0.16] and res.lr in (0.01, 0.04, 0.16)
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from metaloss.errors import ArtifactError, ConfigError
from metaloss.grid_log import run_pairs
from metaloss.seeds import tuning_seeds
from metaloss.tasks.base import Task, TrainConfig

if TYPE_CHECKING:
    from metaloss.evaluators.run_pool import RunPool
    from metaloss.grid_log import GridLog

__all__ = ["TuneConfig", "GridPoint", "LrTuning", "tune_lr", "tune_whole_runs", "DEFAULT_FACTORS"]

DEFAULT_FACTORS: tuple[float, ...] = tuple(2.0**k for k in range(-2, 7))  # x1/4 ... x64
TIE = 1e-12


@dataclass(frozen=True)
class TuneConfig:
    """How a loss's learning rate is tuned.

    Attributes:
        factors: grid of multipliers of the task's default learning rate (log-spaced).
        seeds: number of tuning seeds (``2**30 + i``, disjoint from reporting seeds).
        max_widen: grid points added per side while the winner lies on an edge.
        batched: train each seed's grid as one vmapped population (``None``: when possible).
    """

    factors: tuple[float, ...] = DEFAULT_FACTORS
    seeds: int = 2
    max_widen: int = 3
    batched: bool | None = None

    def __post_init__(self) -> None:
        factors = tuple(float(f) for f in self.factors)
        if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors):
            raise ConfigError(f"tune: factors must be positive and finite, got {self.factors}")
        if len(set(factors)) != len(factors):
            raise ConfigError(f"tune: factors must be distinct, got {self.factors}")
        object.__setattr__(self, "factors", tuple(sorted(factors)))
        if self.seeds < 1:
            raise ConfigError(f"tune: seeds must be >= 1, got {self.seeds}")
        if self.max_widen < 0:
            raise ConfigError(f"tune: max_widen must be >= 0, got {self.max_widen}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "factors": list(self.factors),
            "seeds": self.seeds,
            "max_widen": self.max_widen,
            "batched": self.batched,
        }


@dataclass
class GridPoint:
    """Validation metric of one learning rate on every tuning seed."""

    lr: float
    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "mean_val": _num(self.mean), "val": [_num(v) for v in self.values]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "grid point") -> GridPoint:
        """Inverse of :meth:`to_dict` (``None`` values are non-finite metrics)."""
        if not isinstance(d, dict) or not isinstance(d.get("val"), list) or not d["val"]:
            raise ArtifactError(f"{where}: expected {{'lr': ..., 'val': [...]}}")
        values = []
        for v in d["val"]:
            if v is None:
                values.append(math.nan)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                values.append(float(v))
            else:
                raise ArtifactError(f"{where}: 'val' holds {v!r}, not a number")
        return cls(_positive(d.get("lr"), f"{where}: 'lr'"), values)


@dataclass
class LrTuning:
    """The outcome of :func:`tune_lr`: the chosen learning rate and the whole grid."""

    lr: float
    points: list[GridPoint]
    seeds: list[int]
    widened: int = 0
    note: str = ""
    seconds: float = 0.0
    batched: bool = False
    rule: str = "lowest mean validation metric over tuning seeds; ties -> smaller lr"
    config: dict[str, Any] = field(default_factory=dict)
    workers: int = 1  # processes that ran the grid's runs (RunPool), 1: this one

    @property
    def best(self) -> GridPoint:
        return next(p for p in self.points if p.lr == self.lr)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "best_mean_val": _num(self.best.mean),
            "seeds": self.seeds,
            "widened": self.widened,
            "note": self.note,
            "seconds": round(self.seconds, 3),
            "batched": self.batched,
            "rule": self.rule,
            "grid": [p.to_dict() for p in self.points],
            "config": self.config,
            **({"workers": self.workers} if self.workers > 1 else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "tuning") -> LrTuning:
        """Inverse of :meth:`to_dict`, checked: the recorded lr must be the grid's winner
        under :func:`choose`, so a resumed suite cannot run at an lr its grid did not pick."""
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: expected a JSON object")
        grid, seeds = d.get("grid"), d.get("seeds")
        if not isinstance(grid, list) or not grid:
            raise ArtifactError(f"{where}: 'grid' must be a non-empty list")
        if not isinstance(seeds, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds
        ):
            raise ArtifactError(f"{where}: 'seeds' must be a list of integers")
        points = [GridPoint.from_dict(p, f"{where}, grid[{i}]") for i, p in enumerate(grid)]
        if any(len(p.values) != len(seeds) for p in points):
            raise ArtifactError(f"{where}: every grid point needs one value per tuning seed")
        lr = _positive(d.get("lr"), f"{where}: 'lr'")
        if choose(points).lr != lr:
            raise ArtifactError(f"{where}: lr {lr:g} is not the winner of its own grid")
        config = d.get("config", {})
        extra = {k: d.get(k) for k in ("note", "rule") if isinstance(d.get(k), str)}
        return cls(
            lr=lr,
            points=sorted(points, key=lambda p: p.lr),
            seeds=list(seeds),
            widened=int(d["widened"]) if isinstance(d.get("widened"), int) else 0,
            seconds=float(d["seconds"]) if isinstance(d.get("seconds"), (int, float)) else 0.0,
            batched=bool(d.get("batched", False)),
            config=config if isinstance(config, dict) else {},
            workers=int(d["workers"]) if type(d.get("workers")) is int and d["workers"] > 1 else 1,
            **extra,
        )


def _positive(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
        raise ArtifactError(f"{where} must be a positive finite number, got {v!r}")
    return float(v)


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def score_of(p: GridPoint) -> float:
    """A grid point's rank key: its mean validation metric, +inf when not finite."""
    m = p.mean
    return m if math.isfinite(m) else math.inf


def choose(points: Sequence[GridPoint]) -> GridPoint:
    """The winning grid point: lowest mean validation metric; ties -> smaller lr. A point
    with a non-finite mean (a diverged run) ranks last, wherever it lies on the grid."""
    if not points:
        raise ConfigError("tune: empty grid")

    ordered = sorted(points, key=lambda p: p.lr)
    best = ordered[0]
    for p in ordered[1:]:
        if score_of(p) < score_of(best) - TIE:  # strictly better (a tie keeps the smaller lr)
            best = p
    return best


Runner = Callable[[list[int], list[float]], list[list[float]]]  # (seeds, lrs) -> [seed][lr]


def _grid_runner(
    task: Task,
    loss: Callable,
    config: TrainConfig,
    batched: bool,
    pool: RunPool | None,
    runs: GridLog | None = None,
) -> tuple[Runner, bool]:
    """A function ``(seeds, lrs) -> validation metrics per seed and lr``, and whether it
    batches. Unbatched runs go to ``pool`` when the loss can travel (a metaloss Loss), and
    are taken from / recorded in ``runs``."""
    from metaloss.evaluators.base import Candidate
    from metaloss.evaluators.serial import ValMetricFitness
    from metaloss.losses.base import Loss
    from metaloss.training import train

    def one(seed: int, lr: float) -> float:
        return train(task, loss, config, seed=seed, lr=lr, test=False).val_metric

    as_loss = loss if loss is not None else task.task_loss()

    job = None
    if isinstance(as_loss, Loss) and pool is not None:
        cand = Candidate.from_loss(0, as_loss)

        def job(s: int, lr: float) -> tuple[Any, Any]:
            return ValMetricFitness(task, config.steps, s, config.with_(lr=lr)), cand

    def serial(seeds: list[int], lrs: list[float]) -> list[list[float]]:
        flat = run_pairs([(s, lr) for s in seeds for lr in lrs], one, pool, job, runs)
        return [flat[i * len(lrs) : (i + 1) * len(lrs)] for i in range(len(seeds))]

    if not batched:
        return serial, False
    from metaloss.evaluators.batched import _VmapError, train_lr_grid

    state = {"batched": True}

    def run(seeds: list[int], lrs: list[float]) -> list[list[float]]:
        if state["batched"]:
            try:
                return [train_lr_grid(task, loss, config, s, lrs) for s in seeds]  # type: ignore[arg-type]
            except _VmapError:
                state["batched"] = False
        return serial(seeds, lrs)

    return run, True


def _widen(
    points: dict[float, GridPoint], evaluate: Callable[[list[float]], None], tune: TuneConfig
) -> int:
    """Add one grid point at a time beyond the edge the winner lies on, up to
    ``tune.max_widen`` per side, in the grid's own factor; returns how many were added."""
    step_up = tune.factors[-1] / tune.factors[-2] if len(tune.factors) > 1 else 2.0
    step_down = tune.factors[1] / tune.factors[0] if len(tune.factors) > 1 else 2.0
    up = down = 0
    while True:
        best = choose(list(points.values()))
        lrs = sorted(points)
        if best.lr == lrs[-1] and up < tune.max_widen:
            up += 1
            evaluate([lrs[-1] * step_up])
        elif best.lr == lrs[0] and down < tune.max_widen and len(lrs) > 1:
            down += 1
            evaluate([lrs[0] / step_down])
        else:
            return up + down


def tune_lr(
    task: Task,
    loss: Callable,
    config: TrainConfig | None = None,
    tune: TuneConfig | None = None,
    progress: Callable[[int], None] | None = None,
    pool: RunPool | None = None,
    runs: GridLog | None = None,
) -> LrTuning:
    """Choose ``loss``'s learning rate on validation over tuning seeds (see the module doc).

    ``config`` is the training protocol (default: the task's); its ``lr`` is the grid's
    centre. ``progress(n)`` is called after every ``n`` finished training runs.

    ``pool`` (a :class:`~metaloss.evaluators.run_pool.RunPool`) runs the grid's unbatched
    runs side by side in worker processes, with the values of the same runs made here.
    With a pool of more than one worker and ``tune.batched`` unset, a convolutional model
    on a CPU trains its grid as such runs, not as one vmapped batch (which gains nothing
    there: LeNet-5 0.95x serial); the two differ in float rounding, so the tuning records
    ``batched`` and ``workers``.

    ``runs`` (a :class:`~metaloss.grid_log.GridLog` of this grid) supplies the unbatched
    runs it recorded and records the others as they end, so that a stopped tuning resumes
    run by run (a batched grid is not recorded).
    """
    from metaloss.evaluators.auto import _has_conv
    from metaloss.evaluators.batched import _has_dropout
    from metaloss.losses.base import Loss

    config = config or task.defaults
    tune = tune or TuneConfig()
    seeds = tuning_seeds(tune.seeds)
    batched = tune.batched
    if batched is None:
        model = task.make_model(seeds[0])
        batched = isinstance(loss, Loss) and not _has_dropout(model)
        if pool is not None and pool.workers > 1 and torch.device(task.device).type == "cpu":
            batched = batched and not _has_conv(model)
    if batched and not isinstance(loss, Loss):
        raise ConfigError("tune: the batched grid needs a metaloss Loss module")
    run, batched = _grid_runner(task, loss, config, bool(batched), pool, runs)
    start = time.perf_counter()
    points: dict[float, GridPoint] = {}

    def evaluate(lrs: list[float]) -> None:
        lrs = [lr for lr in lrs if lr not in points]
        if not lrs:
            return
        per_seed = run(seeds, lrs)
        for i, lr in enumerate(lrs):
            points[lr] = GridPoint(lr, [float(v[i]) for v in per_seed])
        if progress is not None:
            progress(len(lrs) * len(seeds))

    evaluate([config.lr * f for f in tune.factors])
    widened = _widen(points, evaluate, tune)
    ordered = sorted(points.values(), key=lambda p: p.lr)
    best = choose(ordered)
    notes = []
    if best.lr in (ordered[0].lr, ordered[-1].lr) and len(ordered) > 1:
        notes.append(f"the best lr {best.lr:g} is still on the grid's edge")
    if task.classification and len(ordered) > 1:
        runner = min((p for p in ordered if p is not best), key=score_of)
        if abs(runner.mean - best.mean) < 1.0 / len(task.val):
            notes.append(
                f"the validation split ({len(task.val)} samples) is too small to separate "
                f"lr {best.lr:g} from lr {runner.lr:g} (mean val {best.mean:.4f} vs "
                f"{runner.mean:.4f}, less than one sample apart)"
            )
    return LrTuning(
        lr=best.lr,
        points=ordered,
        seeds=seeds,
        widened=widened,
        note="; ".join(notes),
        seconds=time.perf_counter() - start,
        batched=batched,
        config=tune.to_dict(),
        workers=_workers(pool, batched),
    )


def _workers(pool: RunPool | None, batched: bool) -> int:
    """The processes that ran a grid: the pool's, unless it batched or fell back."""
    if pool is None or batched or pool.fallback_reason is not None:
        return 1
    return pool.workers


def tune_whole_runs(
    task: Task,
    run: Callable[[Task, int, float], float] | None,
    base_lr: float,
    tune: TuneConfig,
    progress: Callable[[int], None] | None = None,
    pool: RunPool | None = None,
    describe: Callable[[int, float], Any] | None = None,
    runs: GridLog | None = None,
) -> LrTuning:
    """The grid for methods whose meta-test run is their own run (AdaLFL online).

    ``run(task, seed, lr)`` trains once and returns the validation metric. Each grid point is
    a whole run on every tuning seed. The grid widens exactly as :func:`tune_lr`'s does (one
    factor at a time while the winner lies on an edge, ``max_widen`` per side), so an online
    method gets the same tuning rule as every other loss in its table. The runs get ``task``
    with its test split replaced by the validation split: tuning never reads test data.

    With ``pool`` and ``describe(seed, lr)`` (the run as a registered fitness on ``task``,
    e.g. :class:`~metaloss.meta.whole_run.WholeRunFitness`, which hides test itself), the
    runs of each grid step go to the pool's workers side by side. ``run`` may then be
    ``None``: a run made here is ``describe(seed, lr)``'s value.

    ``runs`` (a :class:`~metaloss.grid_log.GridLog` of this grid) supplies the runs it
    recorded and records each other run as it ends, so that a stopped grid resumes run by run.
    """
    from dataclasses import replace

    from metaloss.evaluators.base import Candidate

    if run is None and describe is None:
        raise ConfigError("tune_whole_runs: give run or describe")
    start = time.perf_counter()
    hidden = replace(task, test=task.val)
    seeds = tuning_seeds(tune.seeds)
    points: dict[float, GridPoint] = {}
    no_loss = Candidate(0, {"kind": "cross_entropy"})  # a whole run learns its own loss

    def here(seed: int, lr: float) -> float:
        if run is not None:
            return float(run(hidden, seed, lr))
        return float(describe(seed, lr)(no_loss).value)  # type: ignore[misc]

    def evaluate(lrs: list[float]) -> None:
        lrs = [lr for lr in dict.fromkeys(lrs) if lr not in points]
        pairs = [(s, lr) for lr in lrs for s in seeds]
        job = None if describe is None else lambda s, lr: (describe(s, lr), no_loss)
        flat = run_pairs(pairs, here, pool, job, runs)
        for i, lr in enumerate(lrs):
            points[lr] = GridPoint(lr, flat[i * len(seeds) : (i + 1) * len(seeds)])
        if progress is not None and lrs:
            progress(len(pairs))

    evaluate([base_lr * f for f in tune.factors])
    widened = _widen(points, evaluate, tune)
    ordered = sorted(points.values(), key=lambda p: p.lr)
    best = choose(ordered)
    edge = best.lr in (ordered[0].lr, ordered[-1].lr) and len(ordered) > 1
    return LrTuning(
        best.lr,
        ordered,
        seeds,
        widened=widened,
        note=f"the best lr {best.lr:g} is still on the grid's edge" if edge else "",
        seconds=time.perf_counter() - start,
        rule="lowest mean validation metric over tuning seeds; ties -> smaller lr "
        "(whole online runs)",
        config=tune.to_dict(),
        workers=_workers(pool, False) if describe is not None else 1,
    )

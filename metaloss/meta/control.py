"""The "cross-entropy with a learned step" controls: each meta-optimiser, one scalar.

A learned loss can beat cross-entropy at the task's default learning rate by being a
larger step. The control for a method spends the same meta-optimiser and budget on
:class:`~metaloss.losses.scaled.ScaledLoss`, the task loss (cross-entropy, MSE for
regression) times one learnable scale, so it can learn the step and nothing else:

- ``meta="unrolled"`` (the ML3 control): the scale is meta-learned offline through
  unrolled training, exactly as ML3 trains its network (same ``ML3Config`` options);
- ``meta="online"`` (the AdaLFL control): the scale adapts online during the meta-test
  run, as in AdaLFL (an online learned learning-rate schedule; same ``AdaLFLConfig``);
- ``meta="search"`` (the EvoMAL / GP-LFL / TaylorGLO control): ``candidates`` scales,
  log-spaced over ``[min_scale, max_scale]``, scored by the same fitness protocol (a short
  training run on the search stream, validation metric); the best one is kept.

A method row that does not beat its control is not a better loss shape.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> res = ml.learn("ce-step", task, meta="search", candidates=4, fitness_steps=30)
    >>> res.loss.kind, len(res.hall_of_fame)
    ('scaled', 4)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from metaloss.errors import ConfigError
from metaloss.losses.neural import check_residual
from metaloss.losses.scaled import ScaledLoss
from metaloss.meta.config import EvaluatorSpec, build_evaluator, evaluator_name
from metaloss.meta.configs import CEStepConfig
from metaloss.results import LearnResult
from metaloss.tasks.base import Task

__all__ = ["learn_ce_step", "CONTROL_OF"]

# method -> (meta-optimiser of its control)
CONTROL_OF = {
    "ml3": "unrolled",
    "adalfl": "online",
    "evomal": "search",
    "gplfl": "search",
    "taylorglo": "search",
}


def learn_ce_step(
    task: Task,
    config: CEStepConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    evaluator: EvaluatorSpec = "auto",
    evaluator_options: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("ce-step", task, meta=...)``: learn only a scale on the task loss.

    ``config`` is a :class:`~metaloss.meta.configs.CEStepConfig`; ``overrides`` its fields
    (``meta`` and the options of that meta-optimiser). ``evaluator`` applies to
    ``meta="search"``.

    Example:
        >>> import metaloss as ml
        >>> res = learn_ce_step(ml.tasks.get("iris-linear"), meta="unrolled", meta_steps=3)
        >>> res.config["meta"], res.loss.kind
        ('unrolled', 'scaled')
    """
    cfg = CEStepConfig.resolve(config, overrides)
    check_residual(cfg.base, task, "ce-step: base")
    meta, options = cfg.meta, cfg.mode_options()
    if meta != "search" and (evaluator not in ("serial", "auto") or evaluator_options):
        raise ConfigError(f"ce-step: evaluator applies to meta=search, not meta={meta}")
    if meta == "unrolled":
        from metaloss.meta.unrolled import learn_ml3

        res = learn_ml3(task, seed=seed, progress=progress, loss=_scaled(cfg), run_dir=run_dir,
                        **options)  # fmt: skip
    elif meta == "online":
        from metaloss.meta.online import learn_adalfl

        res = learn_adalfl(task, seed=seed, progress=progress, loss=_scaled(cfg),
                           run_dir=run_dir, **options)  # fmt: skip
    else:
        res = _search(task, seed, cfg, evaluator, evaluator_options)
    res.method = "ce-step"
    res.config = {**res.config, "meta": meta, **({"base": cfg.base} if cfg.base != "task" else {})}
    res.info = {**res.info, "scale": res.loss.scale}
    return res


def _scaled(cfg: CEStepConfig, scale: float = 1.0) -> ScaledLoss:
    """The control's loss: the task loss (or ``cfg.base``) times a learnable scale."""
    return ScaledLoss(scale=scale) if cfg.base == "task" else ScaledLoss(cfg.base, scale=scale)


def _search(
    task: Task,
    seed: int,
    cfg: CEStepConfig,
    evaluator: EvaluatorSpec,
    evaluator_options: Mapping[str, Any] | None,
) -> LearnResult:
    from metaloss.evaluators import Candidate
    from metaloss.evaluators.serial import TrainFitness
    from metaloss.seeds import search_seed

    candidates, min_scale, max_scale = cfg.candidates, cfg.min_scale, cfg.max_scale
    fitness_steps = cfg.fitness_steps
    base = _scaled(cfg).base_name
    start = time.perf_counter()
    scales = np.geomspace(min_scale, max_scale, candidates).tolist()
    fitness = TrainFitness(task, steps=fitness_steps, seed=search_seed(seed, "fitness"))
    ev = build_evaluator(evaluator, fitness, evaluator_options, "ce-step")
    cands = [Candidate.from_loss(i, _scaled(cfg, s)) for i, s in enumerate(scales)]
    try:
        fits = ev.evaluate(cands)
    finally:  # an evaluator chosen by "auto" belongs to this run: stop its workers
        if getattr(ev, "choice", None) and hasattr(ev, "close"):
            ev.close()
    ok = [(f.value, s) for f, s in zip(fits, scales) if f.ok]
    if not ok:
        raise ConfigError("ce-step: every candidate scale failed (diverged)")
    best_value, best_scale = min(ok)  # ties -> the smaller scale
    hof = sorted(
        (
            {"fitness": f.value if f.ok else None, "formula": f"{s:.4g} * {base}", "scale": s}
            for f, s in zip(fits, scales)
        ),
        key=lambda r: math.inf if r["fitness"] is None else r["fitness"],
    )  # fmt: skip
    return LearnResult(
        method="ce-step",
        task=task.name,
        loss=_scaled(cfg, best_scale),
        seconds=time.perf_counter() - start,
        history=[{"scale": s, "fitness": f.value if f.ok else None} for f, s in zip(fits, scales)],
        config={
            "candidates": candidates,
            "min_scale": min_scale,
            "max_scale": max_scale,
            "fitness_steps": fitness_steps,
            "evaluator": evaluator_name(evaluator),
            "seed": seed,
        },  # fmt: skip
        hall_of_fame=hof,
        info={"best_fitness": best_value,
              **({"evaluator": dict(ev.choice)} if getattr(ev, "choice", None) else {})},
    )  # fmt: skip

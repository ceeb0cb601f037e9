"""TaylorGLO (Gonzalez & Miikkulainen): CMA-ES over the 8 Taylor-polynomial parameters.

Fitness is the validation metric after a short training run (500 steps by default) of a
fresh, identically seeded base model under the candidate loss.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> res = ml.learn("taylorglo", task, generations=2, popsize=4, fitness_steps=20)
    >>> res.method, len(res.history)
    ('taylorglo', 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from metaloss.evaluators.lr_grid import with_scale_free
from metaloss.evaluators.serial import TrainFitness
from metaloss.losses.normalized import normalize
from metaloss.meta.config import EvaluatorSpec, build_evaluator, evaluator_name
from metaloss.meta.configs import TaylorGLOConfig
from metaloss.meta.driver import Budget, run, task_identity
from metaloss.meta.early_stop import early_stop_of
from metaloss.meta.evolution import taylorglo_search
from metaloss.results import LearnResult  # noqa: TC001 (the documented return type)
from metaloss.seeds import search_seed
from metaloss.tasks.base import Task


def learn_taylorglo(
    task: Task,
    config: TaylorGLOConfig | None = None,
    *,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    evaluator: EvaluatorSpec = "auto",
    evaluator_options: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("taylorglo", task)``: CMA-ES search of a Taylor loss.

    ``config`` is a :class:`~metaloss.meta.configs.TaylorGLOConfig` (default: the reference
    budget); ``overrides`` are its fields. ``evaluator`` scores each generation (a name,
    built with ``evaluator_options``, or a factory of the fitness function).

    Example:
        >>> import metaloss as ml
        >>> res = learn_taylorglo(ml.tasks.get("iris-linear"), TaylorGLOConfig.fast())
        >>> res.config["generations"], len(res.history)
        (2, 2)
    """
    cfg = TaylorGLOConfig.resolve(config, overrides)
    stop = early_stop_of(cfg)  # checked before any work
    search = taylorglo_search(cfg.popsize, cfg.sigma, seed, cfg.theta0)
    # The fitness run draws from the search stream: never the meta-test run of ``seed``.
    fitness = TrainFitness(task, steps=cfg.fitness_steps, seed=search_seed(seed, "fitness"))
    fitness = with_scale_free(fitness, cfg.fitness_lrs, cfg.normalize)  # scale-free options
    ev = build_evaluator(evaluator, fitness, evaluator_options, "taylorglo")
    hof: dict[str, dict[str, Any]] = {}

    def record(gen: int, cands, fits) -> None:
        for c, f in zip(cands, fits):
            if f.ok:
                loss = c.build()
                hof[loss.describe()] = {
                    "fitness": f.value,
                    "formula": loss.describe(),
                    "theta": [float(v) for v in c.tensors["theta"]],
                    "generation": gen,
                }

    res = run(
        search,
        ev,
        Budget(cfg.generations, stop),
        [record],
        method="taylorglo",
        task=task.name,
        config={**cfg.to_dict(), "evaluator": evaluator_name(evaluator), "seed": seed},
        run_dir=run_dir,
        progress=progress,
        data=task_identity(task),
    )
    res.hall_of_fame = sorted(hof.values(), key=lambda r: r["fitness"])[:10]
    res.loss = normalize(res.loss, cfg.normalize, task, seed)  # as its fitness saw it
    return res

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

import time
from pathlib import Path
from typing import Any

from metaloss.errors import ConfigError
from metaloss.evaluators import make_evaluator
from metaloss.evaluators.serial import TrainFitness
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.evolution import CMAES, VectorFamily
from metaloss.meta.search import run_search
from metaloss.results import LearnResult
from metaloss.seeds import search_seed
from metaloss.tasks.base import Task
from metaloss.validate import check_value, typed_options


@typed_options
def learn_taylorglo(
    task: Task,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    generations: int = 50,
    popsize: int = 25,
    sigma: float = 1.2,
    fitness_steps: int = 500,
    evaluator: str = "serial",
    theta0: list[float] | None = None,
    **evaluator_options: Any,
) -> LearnResult:
    """``metaloss.learn("taylorglo", task)``: CMA-ES search of a Taylor loss."""
    for key, value, kind in (
        ("generations", generations, "int"),
        ("popsize", popsize, "int"),
        ("sigma", sigma, "float"),
        ("fitness_steps", fitness_steps, "int"),
    ):
        check_value(value, kind, f"taylorglo: option {key}")
    if generations < 1:
        raise ConfigError("taylorglo: generations must be >= 1")
    if not sigma > 0:
        raise ConfigError(f"taylorglo: option sigma must be > 0, got {sigma!r}")
    if popsize < 2 or fitness_steps < 1:
        raise ConfigError("taylorglo: option popsize must be >= 2 and fitness_steps >= 1")
    family = VectorFamily(TaylorLoss(theta0))
    search = CMAES(family, sigma=sigma, popsize=popsize, seed=seed)
    # The fitness run draws from the search stream: never the meta-test run of ``seed``.
    fitness = TrainFitness(task, steps=fitness_steps, seed=search_seed(seed, "fitness"))
    ev = make_evaluator(evaluator, fitness, **evaluator_options)
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

    start = time.perf_counter()
    history = run_search(
        search, ev, generations, run_dir, progress, f"taylorglo {task.name}", record
    )
    best = search.best_loss()
    top = sorted(hof.values(), key=lambda r: r["fitness"])[:10]
    return LearnResult(
        method="taylorglo",
        task=task.name,
        loss=best,
        seconds=time.perf_counter() - start,
        history=history,
        config={
            "generations": generations,
            "popsize": popsize,
            "sigma": sigma,
            "fitness_steps": fitness_steps,
            "evaluator": evaluator,
            "seed": seed,
        },
        hall_of_fame=top,
        info={"best_fitness": search.best_fitness},
    )

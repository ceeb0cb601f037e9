"""The automatic evaluator choice (``evaluator="auto"``): serial, batched or pool, from the
fitness, the model and the device.

The rule, from the measurements in docs/benchmarks.md ("Automatic evaluator choice"):

1. A fitness without a training stage (e.g. MLN's, which trains on generated tasks) is
   evaluated **serially** (the batched evaluator would fall back to serial anyway).
2. On a GPU, **batched**: one vmapped model per population fills the device (unless the
   model has dropout, whose per-member randomness cannot be batched).
3. On a CPU, **batched** for models without convolutions and with at most
   ``BATCHED_MAX_PARAMS`` parameters (digits-mlp, 25 x 500 steps: 5.7x faster than serial,
   measured); convolutional models gain nothing from vmap on a CPU (LeNet-5: 0.95x).
4. Otherwise the **process pool** when more than one CPU is available to this process
   and at least ``POOL_MIN_IDLE`` of them are idle (CPUs minus the 1-minute load
   average), else **serial**. The pool (one worker per CPU, one torch thread each) is
   bitwise equal to serial, so the load never changes a result, only the speed; on a
   machine whose cores other sessions keep busy the pool measured 0.75-0.92x of serial.
   A fitness the workers cannot rebuild (not describable as a
   :class:`~metaloss.evaluators.spec.FitnessSpec`, e.g. an unregistered task) stays serial.

``auto`` is every population search's default evaluator.

Example:
    >>> from metaloss import tasks
    >>> from metaloss.evaluators import TrainFitness
    >>> choose_evaluator(TrainFitness(tasks.get("iris-linear")))[0]
    'batched'
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from metaloss.evaluators import fitness as fitness_kinds

__all__ = ["BATCHED_MAX_PARAMS", "POOL_MIN_IDLE", "choose_evaluator", "idle_cpus"]

BATCHED_MAX_PARAMS = 2_000_000  # CPU: larger dense models are compute-bound per member
POOL_MIN_IDLE = 1.5  # idle CPUs (CPUs - 1-minute load average) for the pool to pay


def idle_cpus(cpus: int) -> float:
    """``cpus`` minus the 1-minute load average (``cpus`` where the OS has none)."""
    try:
        return cpus - os.getloadavg()[0]
    except (OSError, AttributeError):
        return float(cpus)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def choose_evaluator(
    fitness: Any,
    cpus: int | None = None,
    device: str | torch.device | None = None,
    idle: float | None = None,
) -> tuple[str, str]:
    """``(name, reason)``: the evaluator the rule picks for ``fitness``.

    ``cpus`` (default: the CPUs available to this process), ``device`` (default: the
    task's) and ``idle`` (idle CPUs; default: :func:`idle_cpus`) can be given to ask about
    another machine.

    >>> from metaloss import tasks
    >>> from metaloss.evaluators import TrainFitness
    >>> choose_evaluator(TrainFitness(tasks.get("iris-linear")), device="cuda")
    ('batched', 'GPU: one vmapped population')
    """
    from metaloss.evaluators.pool import available_cpus
    from metaloss.evaluators.stacked import has_dropout

    cpus = available_cpus() if cpus is None else int(cpus)
    stage = fitness_kinds.training_stage(fitness)
    if stage is None:
        return "serial", f"fitness {type(fitness).__name__} has no training stage"
    model = stage.task.make_model(stage.seed)
    kind = torch.device(device if device is not None else stage.task.device).type
    dropout = has_dropout(model)
    if kind == "cuda" and not dropout:
        return "batched", "GPU: one vmapped population"
    params = sum(p.numel() for p in model.parameters())
    if kind == "cpu" and not dropout and not _has_conv(model) and params <= BATCHED_MAX_PARAMS:
        return "batched", f"CPU, dense model of {params} parameters"
    why = "dropout" if dropout else ("convolutions" if _has_conv(model) else "large model")
    idle = idle_cpus(cpus) if idle is None else float(idle)
    if cpus > 1 and idle >= POOL_MIN_IDLE:
        from metaloss.errors import ConfigError
        from metaloss.evaluators.spec import FitnessSpec

        try:  # workers rebuild the fitness from its JSON description
            FitnessSpec.from_fitness(fitness)
        except ConfigError as exc:
            return "serial", f"{why}; the workers cannot rebuild the fitness ({exc})"
        return "pool", f"{why}, {cpus} CPUs: one worker each"
    return "serial", f"{why}, {cpus} CPUs of which {max(0.0, idle):.1f} idle"

"""ML3 for reinforcement learning: differentiable simulators, learned per-step policy losses.

RL tasks are registered tasks of kind ``"rl"`` (:class:`~metaloss.rl.task.RLTask`):
``metaloss.tasks.get("rl-cartpole")`` returns one and ``metaloss.learn("ml3", "rl-cartpole")``
meta-learns its loss with :func:`learn_rl`, on the unrolled meta step of
:mod:`metaloss.meta.unrolled`.

* :mod:`metaloss.rl.task`: the RL task kind, its registry entries, the policy networks
  (the model zoo's MLP).
* :mod:`metaloss.rl.learner`: ML3's meta-training loop for policies and meta-test training.
* :mod:`metaloss.rl.envs`: batched differentiable Mountain Car (gym's and the ML3 paper's
  friction variant), 2-link reacher, CartPole, Pendulum.
* :mod:`metaloss.rl.losses`: :class:`~metaloss.rl.losses.StepLoss` (registered kind
  ``rl_step``, called as ``loss(features)``: see its module for the contract).
* :mod:`metaloss.rl.mountaincar`: policy through the simulator, plain vs shaped
  (privileged intermediate goal) meta-objective, random starts and fresh policies.
* :mod:`metaloss.rl.mountaincar_paper`: the same comparison under the ML3 paper's protocol
  (friction car, one start, one fixed linear policy initialisation).
* :mod:`metaloss.rl.reacher`: model-based RL through a learned dynamics ensemble.
* :mod:`metaloss.rl.policy_gradient`: model-free, a learned loss replacing REINFORCE.

Example:
    >>> import metaloss as ml
    >>> res = ml.learn("ml3", "rl-cartpole", seed=0, meta_steps=2, batch=4, horizon=20)
    >>> res.method, res.task, len(res.history)
    ('ml3', 'rl-cartpole', 2)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from metaloss.rl.losses import StepLoss
from metaloss.rl.task import RLTask, get, names

TASKS = tuple(names())


def learn_rl(
    task: RLTask | str,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    loss: nn.Module | None = None,
    **options: Any,
) -> Any:
    """Meta-train an RL loss with ML3; returns a :class:`~metaloss.results.LearnResult`.

    ``metaloss.learn("ml3", "rl-...")`` lands here. Tasks: ``rl-mountaincar`` and
    ``rl-mountaincar-paper`` (option ``variant="shaped"`` or ``"plain"``; the seed also
    fixes the paper protocol's policy initialisation), ``rl-reacher`` (fits the dynamics
    ensemble first), ``rl-cartpole`` and ``rl-pendulum``. Other ``options`` are fields of
    the task's settings (``task.settings``: ``meta_steps``, ``inner_lr``, ...); ``loss``
    is a :class:`~metaloss.rl.losses.StepLoss` to start from (default: a fresh one). With
    ``run_dir`` the result is also saved there.

    Example:
        >>> res = learn_rl("rl-mountaincar", meta_steps=1, batch=2, horizon=10)
        >>> res.info["variant"]
        'shaped'
    """
    from metaloss.results import LearnResult

    task = task if isinstance(task, RLTask) else get(task)
    start = time.perf_counter()
    extra = {k: options.pop(k, v) for k, v in task.extra_options.items()}
    cfg = task.config(**options)
    loss, history, info = task.meta_learner(cfg, seed, progress, loss, **extra)
    seconds = time.perf_counter() - start
    info["meta_steps_per_s"] = f"{len(history) / max(seconds, 1e-9):.2f}"
    result = LearnResult(
        method="ml3",
        task=task.name,
        loss=loss.cpu(),
        seconds=seconds,
        history=history,
        config={**cfg.to_dict(), "seed": seed, **extra},
        info=info,
    )
    if run_dir is not None:
        result.save(run_dir)
    return result


__all__ = ["RLTask", "StepLoss", "TASKS", "learn_rl"]

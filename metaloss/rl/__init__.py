"""ML3 for reinforcement learning: differentiable simulators, learned per-step policy losses.

* :mod:`metaloss.rl.envs`: batched differentiable Mountain Car (gym's and the ML3 paper's
  friction variant), 2-link reacher, CartPole, Pendulum.
* :mod:`metaloss.rl.losses`: :class:`~metaloss.rl.losses.StepLoss` (registered kind
  ``rl_step``) and the ML3 meta-training loop for policies.
* :mod:`metaloss.rl.mountaincar`: policy through the simulator, plain vs shaped
  (privileged intermediate goal) meta-objective, random starts and fresh policies.
* :mod:`metaloss.rl.mountaincar_paper`: the same comparison under the ML3 paper's protocol
  (friction car, one start, one fixed linear policy initialisation).
* :mod:`metaloss.rl.reacher`: model-based RL through a learned dynamics ensemble.
* :mod:`metaloss.rl.policy_gradient`: model-free, a learned loss replacing REINFORCE.

:func:`learn_rl` is the entry point behind ``metaloss learn ml3 --task rl-...``.

Example:
    >>> from metaloss.rl import learn_rl
    >>> res = learn_rl("rl-cartpole", seed=0, meta_steps=2, batch=4, horizon=20)
    >>> res.method, res.task, len(res.history)
    ('ml3', 'rl-cartpole', 2)
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from metaloss.errors import ConfigError
from metaloss.rl.losses import StepLoss

TASKS = ("rl-mountaincar", "rl-mountaincar-paper", "rl-reacher", "rl-cartpole", "rl-pendulum")


def _config(cls: type, options: dict[str, Any], task: str) -> Any:
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f"{task}: unknown options {unknown}; known: {sorted(fields)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return cls(**kw)


def learn_rl(
    task_name: str,
    seed: int = 0,
    progress: bool = False,
    run_dir: str | Path | None = None,
    **options: Any,
) -> Any:
    """Meta-train an RL loss with ML3; returns a :class:`~metaloss.results.LearnResult`.

    Tasks: ``rl-mountaincar`` and ``rl-mountaincar-paper`` (option ``variant="shaped"`` or
    ``"plain"``; the seed also fixes the paper protocol's policy initialisation), ``rl-reacher``
    (fits the dynamics ensemble first), ``rl-cartpole`` and ``rl-pendulum``. Other
    ``options`` are fields of the task's config dataclass (``meta_steps``, ``inner_lr``,
    ...). With ``run_dir`` the result is also saved there (load it with
    :func:`metaloss.io.load` after importing :mod:`metaloss.rl`).

    Example:
        >>> res = learn_rl("rl-mountaincar", meta_steps=1, batch=2, horizon=10)
        >>> res.info["variant"]
        'shaped'
    """
    from metaloss.results import LearnResult

    start = time.perf_counter()
    info: dict[str, Any] = {}
    if task_name == "rl-mountaincar":
        from metaloss.rl import mountaincar as mc

        variant = options.pop("variant", "shaped")
        cfg = _config(mc.MCConfig, options, task_name)
        loss, history = mc.meta_train_loss(cfg, variant, seed, progress)
        info["variant"] = variant
    elif task_name == "rl-mountaincar-paper":
        from metaloss.rl import mountaincar_paper as mcp

        variant = options.pop("variant", "shaped")
        cfg = _config(mcp.PaperMCConfig, options, task_name)
        loss, history = mcp.meta_train_loss(cfg, variant, seed, progress)
        info["variant"] = variant
        info["reaches_goal_after_inner_steps"] = str(mcp.train_and_eval(loss, cfg, seed)["success"])
    elif task_name == "rl-reacher":
        from metaloss.rl import reacher

        cfg = _config(reacher.ReacherConfig, options, task_name)
        model = reacher.fit_dynamics(cfg, seed)
        info["model_one_step_nmse"] = f"{reacher.model_error(model, cfg):.4f}"
        loss, history = reacher.meta_train_loss(model, cfg, seed, progress)
    elif task_name in ("rl-cartpole", "rl-pendulum"):
        from metaloss.rl import policy_gradient as pg

        options.setdefault("env", task_name.removeprefix("rl-"))
        cfg = _config(pg.PGConfig, options, task_name)
        loss, history = pg.meta_train_loss(cfg, seed, progress)
    else:
        raise ConfigError(f"unknown RL task {task_name!r}; known: {', '.join(TASKS)}")
    seconds = time.perf_counter() - start
    info["meta_steps_per_s"] = f"{len(history) / max(seconds, 1e-9):.2f}"
    result = LearnResult(
        method="ml3",
        task=task_name,
        loss=loss.cpu(),
        seconds=seconds,
        history=history,
        config={**cfg.to_dict(), "seed": seed, **{k: v for k, v in info.items() if k == "variant"}},
        info=info,
    )
    if run_dir is not None:
        result.save(run_dir)
    return result


__all__ = ["TASKS", "StepLoss", "learn_rl"]

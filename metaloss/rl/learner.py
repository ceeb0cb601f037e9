"""ML³ for policies: the unrolled meta step of :mod:`metaloss.meta.unrolled` on RL tasks.

:func:`meta_train_rl` is ML³'s offline meta-training for a policy: each meta step takes
fresh (or persistent) policy parameters, ``inner_steps`` differentiable clipped-SGD steps
(:func:`metaloss.functional.sgd` under :func:`metaloss.functional.clip_grad_norm`) on the
learned loss, evaluates a meta-objective of the updated policy and back-propagates into
the loss's parameters (Adam) - one :func:`metaloss.meta.unrolled.unrolled_meta_step`,
the same step the supervised ML³ takes. The RL experiments (:mod:`metaloss.rl.mountaincar`,
...) only supply the inner loss (the learned loss on a rollout) and the meta-objective.
:func:`train_policy` is meta-test training with the same functional optimisers.

Example:
    >>> import torch
    >>> from metaloss.rl.losses import StepLoss
    >>> loss = StepLoss(features=["w"], hidden=[4])
    >>> hist = meta_train_rl(
    ...     loss,
    ...     lambda s: {"w": torch.zeros(1, requires_grad=True)},
    ...     lambda p, s, k: loss(p["w"].reshape(1, 1, 1)),
    ...     lambda p, s: (p["w"] - 1).pow(2).sum(),
    ...     meta_steps=3,
    ... )
    >>> len(hist), sorted(hist[0])
    (3, ['meta_loss', 'meta_step', 'seconds'])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.meta.unrolled import unrolled_meta_step
from metaloss.progress import progress_bar


def policy_optimizer(name: str, lr: float, max_norm: float) -> mf.Optimizer:
    """``sgd`` or ``adam`` with the gradient norm clipped to ``max_norm`` (0: off).

    Example:
        >>> policy_optimizer("sgd", 0.1, 1.0).name
        'sgd+clip'
    """
    if name not in ("sgd", "adam"):
        raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {name!r}")
    return mf.clip_grad_norm(mf.make_optimizer(name, lr), max_norm)


def train_policy(
    params: mf.Params,
    loss_fn: Callable[[mf.Params, int], Tensor],
    steps: int,
    lr: float,
    max_norm: float = 1.0,
    optimizer: str = "sgd",
) -> tuple[mf.Params, list[float]]:
    """Train policy parameters for ``steps`` steps on ``loss_fn(params, step)`` (no meta-graph).

    ``optimizer``: ``sgd`` (clipped, as in the meta-training inner loop) or ``adam``
    (clipped too). Stops early at a non-finite loss. Returns the final (detached)
    parameters and the loss per step.

    Example:
        >>> w = {"w": torch.tensor([3.0], requires_grad=True)}
        >>> p, values = train_policy(w, lambda p, i: (p["w"] ** 2).sum(), 2, 0.25, 0.0)
        >>> float(p["w"].detach()), values  # w <- w - 0.25 * 2 w
        (0.75, [9.0, 2.25])
    """
    opt = policy_optimizer(optimizer, lr, max_norm)
    params = mf.detach(params)
    state = opt.init(params)
    values: list[float] = []
    for i in range(steps):
        loss = loss_fn(params, i)
        values.append(float(loss.detach()))
        if not torch.isfinite(loss):
            break
        params, state = opt.update(params, mf.grad(loss, params), state)
        params = mf.detach(params)
    return params, values


def _snapshot(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def meta_train_rl(
    loss: nn.Module,
    fresh_params: Callable[[int], mf.Params],
    inner_loss: Callable[[mf.Params, int, int], Tensor],
    objective: Callable[[mf.Params, int], Tensor],
    meta_steps: int,
    inner_steps: int = 1,
    inner_lr: float = 0.1,
    max_norm: float = 1.0,
    meta_lr: float = 1e-3,
    meta_clip: float = 10.0,
    reset_every: int = 1,
    progress: bool = False,
    name: str = "ml3-rl",
    log_every: int = 10,
    keep_best: bool = False,
    on_step: Callable[[int, mf.Params], None] | None = None,
) -> list[dict[str, float]]:
    """ML³ meta-training of a policy loss, in place; returns one history row per meta step.

    :func:`meta_train_rl_with` takes the schedule (meta_steps, inner_steps, ...) from a config.

    Args:
        loss: the learned loss (its parameters are meta-trained with Adam at ``meta_lr``,
            meta-gradient norm clipped to ``meta_clip``, 0: off).
        fresh_params: ``step -> policy parameters``, called every ``reset_every`` meta
            steps (1: a fresh initialisation every step); in between the policy persists.
        inner_loss: ``(params, step, k) -> learned-loss value`` of the k-th inner step.
        objective: ``(updated params, step) -> meta-objective`` (task loss, possibly shaped
            with privileged information).
        inner_steps, inner_lr, max_norm: the inner loop, clipped SGD (``max_norm`` 0: off).
        keep_best: end with the loss parameters that gave the lowest meta-objective (the
            value recorded for a step belongs to the parameters before its update).
        on_step: ``(step, updated params) -> None``, called after every meta step with the
            (detached) policy its inner steps produced (the reacher refits its dynamics
            model on rollouts of it).
    """
    meta_params = [p for p in loss.parameters() if p.requires_grad]
    meta_opt = torch.optim.Adam(meta_params, lr=meta_lr)
    inner_opt = policy_optimizer("sgd", inner_lr, max_norm)
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, Tensor] | None] = (float("inf"), None)
    start = time.perf_counter()
    with progress_bar(meta_steps, name, enabled=progress) as advance:
        params: mf.Params | None = None
        for step in range(meta_steps):
            if params is None or reset_every <= 1 or step % reset_every == 0:
                params = fresh_params(step)
            before = _snapshot(loss) if keep_best else None
            meta, params, _ = unrolled_meta_step(
                params, inner_opt.init(params), inner_opt,
                lambda p, k, s=step: inner_loss(p, s, k), lambda p, s=step: objective(p, s),
                inner_steps, meta_opt, meta_params, meta_clip,
            )  # fmt: skip
            value = float(meta.detach())
            if keep_best and value < best[0]:
                best = (value, before)
            params = mf.detach(params)
            if on_step is not None:
                on_step(step, params)
            history.append(
                {"meta_step": step + 1, "meta_loss": value, "seconds": time.perf_counter() - start}
            )
            advance(1, info=f"meta {value:.4f}" if (step + 1) % log_every == 0 else None)
    if keep_best and best[1] is not None:
        loss.load_state_dict(best[1])
    return history


SCHEDULE_FIELDS = (
    "meta_steps", "inner_steps", "inner_lr", "max_norm", "meta_lr", "reset_every",
)  # fmt: skip


def meta_train_rl_with(
    cfg: Any,
    loss: nn.Module,
    fresh_params: Callable[[int], mf.Params],
    inner_loss: Callable[[mf.Params, int, int], Tensor],
    objective: Callable[[mf.Params, int], Tensor],
    progress: bool = False,
    name: str = "ml3-rl",
    on_step: Callable[[int, mf.Params], None] | None = None,
) -> list[dict[str, float]]:
    """:func:`meta_train_rl` with the schedule read from ``cfg`` (any experiment config)."""
    schedule = {f: getattr(cfg, f) for f in SCHEDULE_FIELDS}
    return meta_train_rl(
        loss, fresh_params, inner_loss, objective, progress=progress, name=name,
        on_step=on_step, **schedule,
    )  # fmt: skip


def smooth(values: Sequence[float], window: int = 10) -> list[float]:
    """Trailing moving average (for meta-training curves).

    Example:
        >>> smooth([1.0, 3.0, 5.0], window=2)
        [1.0, 2.0, 4.0]
    """
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


__all__ = [
    "SCHEDULE_FIELDS",
    "meta_train_rl",
    "meta_train_rl_with",
    "policy_optimizer",
    "smooth",
    "train_policy",
]

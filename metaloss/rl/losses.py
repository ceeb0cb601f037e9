"""Learned per-time-step losses for reinforcement learning and the ML3 loop that trains them.

A :class:`StepLoss` is an MLP ``f_phi(features_t)`` applied to every time step of a
trajectory (features such as state, action, distance to the goal, log-probability,
return-to-go) and summed (or averaged) over time, averaged over the batch. It is a
registered :class:`~metaloss.losses.base.Loss`, so :func:`metaloss.io.save_loss` /
:func:`metaloss.io.load` store and restore it (import :mod:`metaloss.rl` before loading).

:func:`meta_train_rl` is ML3's offline meta-training for a policy: each meta step takes
fresh policy parameters, ``inner_steps`` differentiable (clipped) SGD steps on the
learned loss, evaluates a meta-objective of the updated policy and back-propagates into
``phi`` (Adam).

Example:
    >>> import torch
    >>> from metaloss.rl.losses import StepLoss
    >>> loss = StepLoss(features=["x", "v", "a"], hidden=[8])
    >>> float(loss(torch.zeros(2, 5, 3)).detach()) == 0.0  # zero features, no bias: f = 0
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, register
from metaloss.progress import progress_bar

_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "softplus": F.softplus,
}


@register
class StepLoss(Loss):
    """An MLP loss over per-time-step features, reduced over time and batch.

    Args:
        features: names of the input features, in order (documentation and a size check).
        hidden: hidden layer widths.
        activation: ``tanh`` (default, smooth), ``relu``, ``elu`` or ``softplus``.
        output: ``none`` or ``softplus`` (non-negative loss).
        bias: use biases.
        time_reduction: ``sum`` or ``mean`` over the time axis.
        seed: initialisation seed.

    ``forward(features)`` takes ``(B, T, F)`` (or ``(B, F)``, one step) and returns a scalar.

    Example:
        >>> import torch
        >>> loss = StepLoss(features=["d", "a"], hidden=[16, 16], seed=1)
        >>> loss(torch.randn(4, 10, 2)).shape
        torch.Size([])
    """

    kind = "rl_step"

    def __init__(
        self,
        features: Sequence[str] = ("x", "a"),
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        output: str = "none",
        bias: bool = True,
        time_reduction: str = "sum",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if activation not in _ACTS:
            raise ConfigError(f"rl_step activation must be one of {sorted(_ACTS)}")
        if output not in ("none", "softplus"):
            raise ConfigError(f"rl_step output must be 'none' or 'softplus', got {output!r}")
        if time_reduction not in ("sum", "mean"):
            raise ConfigError("rl_step time_reduction must be 'sum' or 'mean'")
        if not features or any(int(h) <= 0 for h in hidden):
            raise ConfigError("rl_step needs >= 1 feature and hidden widths > 0")
        self.features = [str(f) for f in features]
        self.hidden = [int(h) for h in hidden]
        self.activation, self.output, self.bias = activation, output, bool(bias)
        self.time_reduction, self.seed = time_reduction, int(seed)
        widths = [len(self.features), *self.hidden, 1]
        gen = torch.Generator().manual_seed(self.seed)
        self.layers = nn.ModuleList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b, bias=self.bias)
            bound = 1.0 / a**0.5
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                if self.bias:
                    lin.bias.zero_()
            self.layers.append(lin)

    @staticmethod
    def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The state-dict shapes of ``StepLoss(**config)``, computed without allocating."""
        hidden, features = config.get("hidden", (32, 32)), config.get("features", ("x", "a"))
        if not isinstance(hidden, list | tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ConfigError("rl_step 'hidden' must be a list of positive integers")
        if not isinstance(features, list | tuple) or not features:
            raise ConfigError("rl_step 'features' must be a non-empty list")
        widths = [len(features), *hidden, 1]
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            shapes[f"layers.{i}.weight"] = (b, a)
            if config.get("bias", True):
                shapes[f"layers.{i}.bias"] = (b,)
        return shapes

    def per_step(self, feats: Tensor) -> Tensor:
        """``f_phi`` per time step: ``(..., F) -> (...)``."""
        if feats.shape[-1] != len(self.features):
            raise ConfigError(
                f"rl_step loss expects {len(self.features)} features {self.features}, "
                f"got {feats.shape[-1]}"
            )
        act = _ACTS[self.activation]
        h = feats.to(self.layers[0].weight.dtype)
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = act(h)
        h = h.squeeze(-1)
        return F.softplus(h) if self.output == "softplus" else h

    def forward(self, feats: Tensor) -> Tensor:  # type: ignore[override]
        values = self.per_step(feats)
        if values.dim() == 1:
            return values.mean()
        per_traj = values.sum(1) if self.time_reduction == "sum" else values.mean(1)
        return per_traj.mean()

    def config(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "output": self.output,
            "bias": self.bias,
            "time_reduction": self.time_reduction,
            "seed": self.seed,
        }

    def describe(self) -> str:
        widths = "-".join(str(w) for w in (len(self.features), *self.hidden, 1))
        return f"per-step MLP {widths} over ({', '.join(self.features)}), {self.time_reduction}"


# ----------------------------------------------------------------------------- policies


def mlp_init(
    sizes: Sequence[int],
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    out_scale: float = 1.0,
) -> mf.Params:
    """Parameters of an MLP (PyTorch's default uniform init) as a leaf dict.

    Example:
        >>> p = mlp_init([2, 8, 1], torch.Generator().manual_seed(0))
        >>> sorted(p), tuple(p["w0"].shape)
        (['b0', 'b1', 'w0', 'w1'], (8, 2))
    """
    params: mf.Params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / a**0.5
        scale = out_scale if i == len(sizes) - 2 else 1.0
        w = (torch.rand(b, a, generator=generator, dtype=dtype) * 2 - 1) * bound * scale
        bb = (torch.rand(b, generator=generator, dtype=dtype) * 2 - 1) * bound * scale
        params[f"w{i}"] = w.requires_grad_(True)
        params[f"b{i}"] = bb.requires_grad_(True)
    return params


def mlp_apply(params: mf.Params, x: Tensor, activation: str = "tanh") -> Tensor:
    """Evaluate an :func:`mlp_init` MLP (no output activation; other keys are ignored)."""
    n = sum(1 for k in params if k[0] == "w" and k[1:].isdigit())
    act = _ACTS[activation]
    for i in range(n):
        x = F.linear(x, params[f"w{i}"], params[f"b{i}"])
        if i < n - 1:
            x = act(x)
    return x


def clip_grads(grads: mf.Params, max_norm: float) -> mf.Params:
    """Scale gradients to global norm ``<= max_norm`` (differentiable; 0 disables)."""
    if not max_norm:
        return grads
    norm = torch.sqrt(sum((g * g).sum() for g in grads.values()) + 1e-12)
    scale = torch.clamp(max_norm / norm, max=1.0)
    return {k: g * scale for k, g in grads.items()}


def sgd_step(
    params: mf.Params, loss: Tensor, lr: float, max_norm: float, create_graph: bool
) -> mf.Params:
    """One (clipped) SGD step on ``loss``; differentiable when ``create_graph``."""
    g = clip_grads(mf.grad(loss, params, create_graph=create_graph), max_norm)
    new = {k: p - lr * g[k] for k, p in params.items()}
    return new if create_graph else mf.detach(new)


def train_policy(
    params: mf.Params,
    loss_fn: Callable[[mf.Params, int], Tensor],
    steps: int,
    lr: float,
    max_norm: float = 1.0,
    optimizer: str = "sgd",
) -> tuple[mf.Params, list[float]]:
    """Train policy parameters for ``steps`` steps on ``loss_fn(params, step)`` (no meta-graph).

    ``optimizer``: ``sgd`` (clipped, as in the meta-training inner loop) or ``adam``.
    Returns the final (detached) parameters and the loss per step.
    """
    params = mf.detach(params)
    values: list[float] = []
    if optimizer == "adam":
        opt = mf.adam(lr)
        state = opt.init(params)
    elif optimizer != "sgd":
        raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    for i in range(steps):
        loss = loss_fn(params, i)
        values.append(float(loss.detach()))
        if not torch.isfinite(loss):
            break
        if optimizer == "adam":
            g = clip_grads(mf.grad(loss, params), max_norm)
            params, state = opt.update(params, g, state)
            params = mf.detach(params)
        else:
            params = sgd_step(params, loss, lr, max_norm, create_graph=False)
    return params, values


# ----------------------------------------------------------------------------- ML3 loop


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
    on_meta_value: Callable[[int, float], None] | None = None,
) -> list[dict[str, float]]:
    """ML3 meta-training of a policy loss, in place; returns one history row per meta step.

    :func:`meta_train_rl_with` takes the schedule (meta_steps, inner_steps, ...) from a config.

    Args:
        loss: the learned loss (its parameters are meta-trained with Adam).
        fresh_params: ``step -> policy parameters`` (a fresh initialisation per meta step).
        inner_loss: ``(params, step, k) -> learned-loss value`` of the k-th inner step.
        objective: ``(updated params, step) -> meta-objective`` (task loss, possibly shaped
            with privileged information).
        on_meta_value: called as ``(step, value)`` with each meta-objective value before the
            loss's parameters are updated (the value belongs to the current parameters; used
            to keep the best loss seen).

    Example:
        >>> import torch
        >>> from metaloss import functional as mf
        >>> loss = StepLoss(features=["w"], hidden=[4])
        >>> hist = meta_train_rl(
        ...     loss,
        ...     lambda s: {"w": torch.zeros(1, requires_grad=True)},
        ...     lambda p, s, k: loss(p["w"].reshape(1, 1, 1)),
        ...     lambda p, s: (p["w"] - 1).pow(2).sum(),
        ...     meta_steps=3,
        ... )
        >>> len(hist)
        3
    """
    meta_params = [p for p in loss.parameters() if p.requires_grad]
    opt = torch.optim.Adam(meta_params, lr=meta_lr)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    with progress_bar(meta_steps, name, enabled=progress) as advance:
        params = None
        for step in range(meta_steps):
            if params is None or reset_every <= 1 or step % reset_every == 0:
                params = fresh_params(step)
            for k in range(inner_steps):
                value = inner_loss(params, step, k)
                params = sgd_step(params, value, inner_lr, max_norm, create_graph=True)
            meta = objective(params, step)
            if on_meta_value is not None:
                on_meta_value(step, float(meta.detach()))
            opt.zero_grad(set_to_none=True)
            meta.backward()
            if meta_clip:
                torch.nn.utils.clip_grad_norm_(meta_params, meta_clip)
            finite = all(p.grad is None or torch.isfinite(p.grad).all() for p in meta_params)
            if finite and math.isfinite(float(meta.detach())):
                opt.step()
            params = mf.detach(params)
            row = {
                "meta_step": step + 1,
                "meta_loss": float(meta.detach()),
                "seconds": time.perf_counter() - start,
            }
            history.append(row)
            advance(1, info=f"meta {row['meta_loss']:.4f}" if (step + 1) % log_every == 0 else None)
    return history


def smooth(values: Sequence[float], window: int = 10) -> list[float]:
    """Trailing moving average (for meta-training curves)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


__all__ = [
    "StepLoss",
    "clip_grads",
    "meta_train_rl",
    "mlp_apply",
    "mlp_init",
    "sgd_step",
    "smooth",
    "train_policy",
]


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
) -> list[dict[str, float]]:
    """:func:`meta_train_rl` with the schedule read from ``cfg`` (any experiment config)."""
    schedule = {f: getattr(cfg, f) for f in SCHEDULE_FIELDS}
    return meta_train_rl(
        loss, fresh_params, inner_loss, objective, progress=progress, name=name, **schedule
    )

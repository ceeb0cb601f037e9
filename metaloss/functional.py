"""Differentiable, pure inner-loop optimisers on parameter dicts.

Parameters are ``dict[str, Tensor]``; an update returns *new* tensors and never mutates
a module, so meta-gradients flow through any number of steps (``create_graph=True``)
and truncation is explicit (:func:`detach`). Works with :func:`torch.func.functional_call`.

Example:
    >>> import torch
    >>> from metaloss import functional as mf
    >>> opt = mf.sgd(lr=0.1)
    >>> params = {"w": torch.tensor([1.0], requires_grad=True)}
    >>> state = opt.init(params)
    >>> new, state = opt.update(params, {"w": torch.tensor([2.0])}, state)
    >>> round(float(new["w"].detach()), 6)
    0.8
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metaloss.errors import ConfigError

Params = dict[str, Tensor]
State = dict[str, Any]


@dataclass(frozen=True)
class Optimizer:
    """A pure optimiser.

    ``state = init(params)``; ``params, state = update(params, grads, state)``.
    """

    init: Callable[[Params], State]
    update: Callable[[Params, Params, State], tuple[Params, State]]
    name: str = "optimizer"
    # For updates affine in the gradient with a scalar slope: d new_params / d grads, given
    # the state before the update (lets meta-gradients skip a vector-Jacobian product).
    grad_slope: Callable[[State], Any] | None = None


def _rate(rate: float | Tensor, p: Tensor) -> float | Tensor:
    """A learning rate shaped for ``p``: a 1-d tensor holds one rate per leading index
    (population member) of a stacked parameter."""
    if isinstance(rate, Tensor) and rate.dim() == 1 and p.dim() > 1:
        return rate.view(-1, *([1] * (p.dim() - 1)))
    return rate


def _descend(p: Tensor, d: Tensor, rate: float | Tensor) -> Tensor:
    """``p - rate * d`` with ``torch.optim``'s rounding (``p.add(d, alpha=-rate)``) for a
    number ``rate``; a tensor ``rate`` (learnable, per member) is applied as a product."""
    if isinstance(rate, Tensor):
        return p - d * _rate(rate, p)
    return p.add(d, alpha=-rate)


def _sqrt(v: Tensor) -> Tensor:
    """``v.sqrt()``; under autograd with a derivative that stays finite at ``v = 0`` (where
    it is 0), so meta-gradients through Adam never become NaN. Same values either way."""
    if not (torch.is_grad_enabled() and v.requires_grad):
        return v.sqrt()
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, 1.0).sqrt(), 0.0)


def milestone_scale(step: int, milestones: Sequence[int], gamma: float) -> float:
    """The learning-rate factor of 1-based ``step`` under ``MultiStepLR(milestones, gamma)``
    stepped once after every optimiser step: ``gamma`` to the number of milestones
    ``< step`` (a milestone 0 counts from the start, as in ``torch``).

    >>> milestone_scale(1, [0, 2], 0.1), milestone_scale(3, [0, 2], 0.1)
    (0.1, 0.010000000000000002)
    """
    scale = 1.0
    for m in sorted(milestones):
        if m < step:
            scale = scale * gamma
    return scale


def sgd(
    lr: float | Tensor,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> Optimizer:
    """SGD with optional (Nesterov) momentum and L2 weight decay: ``torch.optim.SGD``'s
    single-tensor math, operation for operation (bitwise equal for a number ``lr``).

    ``lr`` may be a tensor (a learnable or scheduled learning rate; a 1-d tensor gives one
    rate per population member of stacked parameters); ``state["lr_scale"]`` multiplies
    it (used by learning-rate milestones, :func:`milestone_scale`). Differentiable: with
    ``create_graph`` the update carries meta-gradients.
    """
    if momentum < 0 or weight_decay < 0:
        raise ConfigError("sgd: momentum and weight_decay must be >= 0")
    if nesterov and momentum <= 0:
        raise ConfigError("sgd: nesterov needs momentum > 0")

    def init(params: Params) -> State:
        state: State = {"step": 0, "lr_scale": 1.0}
        if momentum:
            state["buf"] = {k: None for k in params}
        return state

    def update(params: Params, grads: Params, state: State) -> tuple[Params, State]:
        rate = lr * state.get("lr_scale", 1.0)
        new: Params = {}
        bufs = dict(state.get("buf", {}))
        for k, p in params.items():
            g = grads[k]
            if g is None:
                new[k] = p
                continue
            if weight_decay:
                g = g.add(p, alpha=weight_decay)
            if momentum:
                b = g if bufs[k] is None else bufs[k].mul(momentum).add(g)
                bufs[k] = b
                g = g.add(b, alpha=momentum) if nesterov else b
            new[k] = _descend(p, g, rate)
        out = dict(state, step=state["step"] + 1)
        if momentum:
            out["buf"] = bufs
        return new, out

    def grad_slope(state: State) -> Any:
        return -lr * state.get("lr_scale", 1.0) * ((1 + momentum) if nesterov else 1.0)

    return Optimizer(init, update, "sgd", grad_slope)


def adam(
    lr: float | Tensor,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Adam (Kingma & Ba) with L2 weight decay: ``torch.optim.Adam``'s single-tensor math,
    operation for operation (bitwise equal for a number ``lr``).

    ``lr`` and ``state["lr_scale"]`` as for :func:`sgd`. Differentiable; the square root
    has a finite derivative at 0, so second derivatives stay finite.

    >>> import torch
    >>> opt = adam(0.1)
    >>> p = {"w": torch.tensor([1.0])}
    >>> new, _ = opt.update(p, {"w": torch.tensor([3.0])}, opt.init(p))
    >>> round(float(new["w"]), 6)  # the first Adam step moves by lr
    0.9
    """
    b1, b2 = betas
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ConfigError(f"adam: betas must be in [0, 1), got {betas}")

    def init(params: Params) -> State:
        zeros = {k: torch.zeros_like(p, requires_grad=False) for k, p in params.items()}
        return {"step": 0, "lr_scale": 1.0, "m": zeros, "v": dict(zeros)}

    def update(params: Params, grads: Params, state: State) -> tuple[Params, State]:
        step = state["step"] + 1
        rate = lr * state.get("lr_scale", 1.0)
        bc1, bc2 = 1 - b1**step, 1 - b2**step
        m, v, new = {}, {}, {}
        for k, p in params.items():
            g = grads[k]
            if g is None:
                new[k], m[k], v[k] = p, state["m"][k], state["v"][k]
                continue
            if weight_decay:
                g = g.add(p, alpha=weight_decay)
            m[k] = state["m"][k].lerp(g, 1 - b1)
            v[k] = state["v"][k].mul(b2).addcmul(g, g, value=1 - b2)
            denom = (_sqrt(v[k]) / bc2**0.5).add(eps)
            if isinstance(rate, Tensor):
                new[k] = p - m[k] / denom * _rate(rate / bc1, p)
            else:
                new[k] = p.addcdiv(m[k], denom, value=-(rate / bc1))
        return new, dict(state, step=step, m=m, v=v)

    return Optimizer(init, update, "adam")


def clip_grad_norm(opt: Optimizer, max_norm: float) -> Optimizer:
    """``opt`` applied to gradients rescaled to a global L2 norm of at most ``max_norm``.

    The rescaling is differentiable, so meta-gradients see the update actually taken.
    ``max_norm <= 0`` returns ``opt`` unchanged.
    """
    if max_norm <= 0:
        return opt

    def update(params: Params, grads: Params, state: State) -> tuple[Params, State]:
        present = [g for g in grads.values() if g is not None]
        norm = torch.sqrt(sum((g * g).sum() for g in present) + 1e-24)
        scale = torch.clamp(max_norm / norm, max=1.0)
        clipped = {k: (None if g is None else g * scale) for k, g in grads.items()}
        return opt.update(params, clipped, state)

    return Optimizer(opt.init, update, f"{opt.name}+clip")


def make_optimizer(
    name: str,
    lr: float | Tensor,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> Optimizer:
    """Build ``sgd`` or ``adam`` by name (the trainer's configuration vocabulary)."""
    if name == "sgd":
        return sgd(lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adam":
        return adam(lr, weight_decay=weight_decay)
    raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


def params_of(module: nn.Module, requires_grad: bool = True) -> Params:
    """A detached copy of a module's parameters, as leaves ready for differentiation."""
    return {
        k: v.detach().clone().requires_grad_(requires_grad) for k, v in module.named_parameters()
    }


def buffers_of(module: nn.Module) -> Params:
    """A module's buffers (e.g. BatchNorm statistics) as a dict."""
    return dict(module.named_buffers())


def detach(params: Params, requires_grad: bool = True) -> Params:
    """Truncate the graph: fresh leaves with the same values."""
    return {k: v.detach().requires_grad_(requires_grad) for k, v in params.items()}


def detach_state(state: State) -> State:
    """Detach every tensor in an optimiser state (truncation of momentum / Adam moments)."""

    def _d(x: Any) -> Any:
        if isinstance(x, Tensor):
            return x.detach()
        if isinstance(x, dict):
            return {k: _d(v) for k, v in x.items()}
        return x

    return _d(state)


def grad(
    loss: Tensor, params: Params, create_graph: bool = False, allow_unused: bool = True
) -> Params:
    """Gradients of a scalar w.r.t. a parameter dict (``create_graph`` for meta-gradients)."""
    keys = list(params)
    gs = torch.autograd.grad(
        loss, [params[k] for k in keys], create_graph=create_graph, allow_unused=allow_unused
    )
    return {k: (g if g is not None else torch.zeros_like(params[k])) for k, g in zip(keys, gs)}


def forward(model: nn.Module, params: Params, x: Tensor, buffers: Params | None = None) -> Tensor:
    """``model(x)`` with the given parameters (and buffers) via ``functional_call``."""
    tensors = dict(params) if buffers is None else {**buffers, **params}
    return functional_call(model, tensors, (x,))


def inner_step(
    model: nn.Module,
    params: Params,
    state: State,
    opt: Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    create_graph: bool = True,
    buffers: Params | None = None,
) -> tuple[Params, State, Tensor]:
    """One differentiable training step: returns updated params, state and the step's loss."""
    loss = loss_fn(forward(model, params, x, buffers), y)
    g = grad(loss, params, create_graph=create_graph)
    new, state = opt.update(params, g, state)
    return new, state, loss


def unroll(
    model: nn.Module,
    params: Params,
    state: State,
    opt: Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    create_graph: bool = True,
    buffers: Params | None = None,
) -> tuple[Params, State]:
    """K differentiable steps, one per batch; the result depends on ``loss_fn``'s parameters."""
    for x, y in batches:
        params, state, _ = inner_step(
            model, params, state, opt, loss_fn, x, y, create_graph=create_graph, buffers=buffers
        )
    return params, state


__all__ = [
    "Optimizer",
    "Params",
    "State",
    "adam",
    "buffers_of",
    "clip_grad_norm",
    "detach",
    "detach_state",
    "forward",
    "grad",
    "inner_step",
    "make_optimizer",
    "milestone_scale",
    "params_of",
    "sgd",
    "unroll",
]

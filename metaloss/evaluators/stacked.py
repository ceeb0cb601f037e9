"""Training of stacked base models: ``P`` identically seeded copies trained as one vmapped
model, each with its own loss (the engine of the batched evaluator and of batched
learning-rate grids).

Model: ``P`` copies of the initial parameters are stacked (``torch.func.stack_module_state``)
and the forward pass of all members is one ``vmap(functional_call)`` on the shared batch.

Losses: members whose losses have the same structure (same class, same parameter and
buffer shapes, the same spec once their tensors are zeroed - e.g. TaylorGLO polynomials,
neural losses of one architecture and spec, symbolic losses of one tree) form a *loss stack*: their
parameters and buffers are stacked too (``stack_module_state``) and the losses of the
whole group are one ``vmap`` of the group's first loss called with the stacked tensors
swapped in (``functional_call``'s semantics) on the members' outputs. Members with a loss
of their own structure, and groups whose loss cannot run under ``vmap``, are evaluated one
member at a time (the serial path). The losses are summed and the gradients w.r.t. the
stacked parameters taken with one ``torch.autograd.grad``: members are independent inside
``vmap``, so a member that goes NaN cannot change another member's numbers.

Optimiser: :func:`metaloss.functional.make_optimizer` (the trainer's own, ``torch.optim``
math) on the stacked tensors; a per-member learning rate is a 1-d ``lr``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.evaluators.base import Fitness, failure_reason, stopped_info
from metaloss.losses.base import Loss
from metaloss.tasks.base import Task, TrainConfig
from metaloss.training import Batcher, checkpoint_split, worst_metric

__all__ = ["DIVERGED", "VmapError", "has_dropout", "train_lr_grid", "train_stack"]

DIVERGED = "training diverged (non-finite loss or weights)"  # the serial reason


class VmapError(RuntimeError):
    """The model itself cannot be run under vmap (not a problem of one candidate)."""


def has_dropout(model: nn.Module) -> bool:
    """True when ``model`` has active dropout (per-member randomness cannot be batched).

    >>> has_dropout(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
    True
    """
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


# --------------------------------------------------------------------------------------
# loss stacks


def structure_key(loss: Loss) -> tuple[Any, ...]:
    """Losses with equal keys compute the same function of their tensors, so one of them
    with another's tensors (``functional_call``) is the other.

    >>> from metaloss.losses.taylor import TaylorLoss
    >>> structure_key(TaylorLoss([1.0] * 8)) == structure_key(TaylorLoss([2.0] * 8))
    True
    >>> structure_key(TaylorLoss()) == structure_key(TaylorLoss(class_reduction="mean"))
    False
    """
    state = loss.state_dict()
    shapes = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in state.items())
    probe = copy.deepcopy(loss)
    with torch.no_grad():
        for t in probe.state_dict().values():
            t.zero_()
    spec = json.dumps(probe.spec(), sort_keys=True, default=str)
    return (type(loss), shapes, spec)


@dataclass
class _LossStack:
    """Members (stack rows) whose losses are evaluated together."""

    rows: list[int]
    losses: list[Loss]
    tensors: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None  # stacked
    vmapped: bool = True
    call: Callable[..., Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.rows) > 1 and self.vmapped:
            params, buffers = stack_module_state(self.losses)  # type: ignore[arg-type]
            self.tensors = (
                {k: v.detach() for k, v in params.items()},
                {k: v.detach() for k, v in buffers.items()},
            )
            template = self.losses[0]
            slots = _slots(template)

            def one(p: dict[str, Tensor], b: dict[str, Tensor], out: Tensor, y: Tensor) -> Tensor:
                # functional_call(template, (p, b), (out, y)) without its (costly) checks
                saved = []
                try:
                    for k, v in (*p.items(), *b.items()):
                        table, name = slots[k]
                        saved.append((table, name, table[name]))
                        table[name] = v
                    return template(out, y)
                finally:
                    for table, name, v in reversed(saved):
                        table[name] = v

            self.call = vmap(one, in_dims=(0, 0, 0, None))

    def values(
        self, out: Tensor, y: Tensor, everyone: bool
    ) -> tuple[list[int], Tensor | None, dict[int, str]]:
        """``(rows, losses, failures)``: the loss of every member that has one (a tensor
        in ``rows`` order) and, per failing member, why not."""
        if self.call is not None and self.vmapped:
            sub = out if everyone else out[self.rows]
            try:
                assert self.tensors is not None
                return self.rows, self.call(*self.tensors, sub, y), {}
            except Exception:  # noqa: BLE001 - not vmappable, or a member raises: serially
                self.vmapped = False
        rows, values, failed = [], [], {}
        for r, loss in zip(self.rows, self.losses):
            try:
                values.append(loss(out[r], y).reshape(1))
                rows.append(r)
            except Exception as exc:  # noqa: BLE001 - one member's loss is broken
                failed[r] = failure_reason(exc)
        return rows, (torch.cat(values) if values else None), failed


def _slots(module: nn.Module) -> dict[str, tuple[dict[str, Any], str]]:
    """Where each named parameter / buffer of ``module`` lives: ``(table, name)`` with
    ``table`` the owning submodule's ``_parameters`` or ``_buffers``."""
    slots: dict[str, tuple[dict[str, Any], str]] = {}
    for prefix, mod in module.named_modules():
        for table in (mod._parameters, mod._buffers):
            for name, value in table.items():
                if value is not None:
                    slots.setdefault(f"{prefix}.{name}" if prefix else name, (table, name))
    return slots


def _stacks(losses: Sequence[Loss], keys: Sequence[Any], serial: set[Any]) -> list[_LossStack]:
    groups: dict[Any, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    return [
        _LossStack(rows, [losses[r] for r in rows], vmapped=key not in serial)
        for key, rows in groups.items()
    ]


# --------------------------------------------------------------------------------------
# training


def _select(state: Any, keep: Tensor) -> Any:
    """An optimiser state restricted to the stack rows ``keep``."""
    if isinstance(state, Tensor):
        return state[keep] if state.dim() > 0 else state
    if isinstance(state, dict):
        return {k: _select(v, keep) for k, v in state.items()}
    return state


def train_stack(
    task: Task,
    config: TrainConfig,
    seed: int,
    losses: list[Loss],
    check_every: int,
    lr_scale: Tensor | None = None,
    marks: Sequence[dict[int, tuple[str, float]]] | None = None,
    final_params: dict[int, dict[str, Tensor]] | None = None,
    stop_examples: int = 0,
) -> list[Fitness]:
    """Train ``len(losses)`` identically seeded models together; one Fitness per loss.

    ``final_params``, when given, receives every member's trained parameters (by member
    index, members that finished the run only): the oracle tests compare them with serial
    training directly.

    ``lr_scale`` (one factor per member) multiplies each member's learning rate. ``marks``
    (one per member, :func:`~metaloss.evaluators.base.stop_steps`) are early-stopping
    checkpoints: at such a step the members' validation metrics are measured, recorded,
    and a member above its threshold stops with that partial metric (as the serial
    trainer does; ``Fitness.info`` as :class:`~metaloss.evaluators.serial.TrainFitness`'s),
    measured on ``stop_examples`` validation examples (0: all) as in the serial trainer.
    Raises :class:`VmapError` when the model cannot run under ``vmap``.
    """
    n = len(losses)
    model = task.make_model(seed)
    model.train()
    stacked, buffers = stack_module_state([model] * n)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in stacked.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}

    def one(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, (p, b), (x,))

    forward: Callable[..., Tensor] = vmap(one, in_dims=(0, 0, None))
    lr: Any = config.lr
    if lr_scale is not None:
        lr = config.lr * lr_scale.to(task.device, torch.float32)

    def optimizer(rate: Any) -> mf.Optimizer:
        return mf.make_optimizer(
            config.optimizer, rate, config.momentum, config.nesterov, config.weight_decay
        )

    opt = optimizer(lr)
    opt_state = opt.init(params)
    batcher = Batcher(len(task.train), config.batch_size, seed, task.device)
    aug_gen = torch.Generator(device=task.device).manual_seed(seed + 1)
    augment = config.augment and task.augment is not None
    check_loss = config.eval_every > 0  # the serial trainer only checks the loss then

    rows = list(range(n))  # loss index of each stack row
    alive = list(losses)
    keys = [structure_key(loss) for loss in losses]
    serial: set[Any] = set()  # structures that do not run under vmap
    stacks = _stacks(alive, keys, serial)
    results: list[Fitness | None] = [None] * n
    marks = list(marks) if marks is not None else [{} for _ in range(n)]
    metrics: list[dict[int, float]] = [{} for _ in range(n)]
    mark_steps = set().union(*marks) if marks else set()
    stop_split = checkpoint_split(task.val, stop_examples) if mark_steps else task.val
    bad_loss = torch.zeros(n, dtype=torch.bool, device=task.device)

    def drop(keep_rows: list[int]) -> None:
        nonlocal params, buffers, stacks, bad_loss, rows, alive, keys, opt, opt_state, lr
        keep = torch.tensor(keep_rows, dtype=torch.long, device=task.device)
        params = {k: v.detach()[keep].requires_grad_(True) for k, v in params.items()}
        buffers = {k: v[keep] for k, v in buffers.items()}
        opt_state = _select(opt_state, keep)
        if isinstance(lr, Tensor):
            lr = lr[keep]
            opt = optimizer(lr)
        bad_loss = bad_loss[keep]
        rows = [rows[r] for r in keep_rows]
        alive = [alive[r] for r in keep_rows]
        keys = [keys[r] for r in keep_rows]
        stacks = _stacks(alive, keys, serial)

    def check() -> None:
        """Drop members with non-finite weights (or losses, when the serial run checks)."""
        with torch.no_grad():
            ok = torch.ones(len(rows), dtype=torch.bool, device=task.device)
            for v in params.values():
                ok &= torch.isfinite(v).flatten(1).all(1)
            if check_loss:
                ok &= ~bad_loss
        flags = ok.tolist()
        if all(flags):
            return
        for r, good in enumerate(flags):
            if not good:
                results[rows[r]] = _diverged(config.steps)
        drop([r for r, good in enumerate(flags) if good])

    def checkpoint(step: int) -> None:
        """Record the members' validation metrics at ``step``; stop those above."""
        check()  # non-finite weights at a checkpoint: diverged, as in the serial trainer
        if not rows:
            return
        vals = _metrics(task, model, params, buffers, stop_split, config.eval_batch_size)
        keep = []
        for r, (i, v) in enumerate(zip(rows, vals)):
            if step in marks[i]:
                metrics[i][step] = v
                if v > marks[i][step][1]:
                    fit = Fitness(v, info=stopped_info(config.steps, marks[i], metrics[i], step))
                    results[i] = fit if math.isfinite(v) else _diverged(config.steps)
                    continue
            keep.append(r)
        if len(keep) < len(rows):
            drop(keep)

    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        if not rows:
            break
        idx = batcher.next()
        x, y = task.train.x[idx], task.train.y[idx]
        if augment:
            x = task.augment_batch(x, aug_gen)
        try:
            out = forward(params, buffers, x)
        except Exception as exc:
            raise VmapError(failure_reason(exc)) from exc
        values, failed = [], {}
        for s in stacks:
            ok_rows, v, why = s.values(out, y, everyone=len(s.rows) == len(rows))
            if not s.vmapped and not why:  # vmap failed, yet every member works: serially
                serial.add(keys[s.rows[0]])
            failed.update(why)
            if v is not None:
                values.append((ok_rows, v))
        if values:
            total = torch.cat([v for _, v in values]).sum()
            grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
            if config.milestones:
                opt_state["lr_scale"] = mf.milestone_scale(step, config.milestones, config.gamma)
            with torch.no_grad():
                new, opt_state = opt.update(params, dict(zip(params, grads)), opt_state)
            params = {k: v.requires_grad_(True) for k, v in new.items()}
            if check_loss:
                with torch.no_grad():
                    for s_rows, v in values:
                        bad_loss[s_rows] |= ~torch.isfinite(v.detach())
        if failed:
            for r, why in failed.items():
                results[rows[r]] = Fitness.failure(why)
            drop([r for r in range(len(rows)) if r not in failed])
        if step % check_every == 0 or step == config.steps:
            check()
        if step in mark_steps and rows:
            checkpoint(step)
    seconds = (time.perf_counter() - start) / n

    if rows and final_params is not None:
        for i, r in enumerate(rows):
            final_params[r] = {k: v[i].detach().clone() for k, v in params.items()}
    if rows:
        val = _metrics(task, model, params, buffers, task.val, config.eval_batch_size)
        for r, v in zip(rows, val):
            info = stopped_info(config.steps, marks[r], metrics[r], None)
            results[r] = _diverged(config.steps) if not math.isfinite(v) else Fitness(v, info=info)
    for fit in results:
        if fit is not None:
            fit.seconds = seconds
    return [f if f is not None else Fitness.failure("not evaluated") for f in results]


def _diverged(steps: int) -> Fitness:
    """The serial trainer's failure record of a diverged run (nominal ``train_steps``)."""
    fail = Fitness.failure(DIVERGED)
    fail.info = {"train_steps": steps}
    return fail


@torch.no_grad()
def _metrics(
    task: Task,
    model: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    split: Any,
    batch_size: int,
) -> list[float]:
    """Each member's task metric on ``split`` (eval mode; worst value if not finite).

    Members x rows per vmapped forward stay near ``batch_size`` (the serial evaluation
    batch), so activation memory does not grow with the population.
    """
    rows = max(1, batch_size // max(1, next(iter(params.values())).shape[0]))
    was_training = model.training
    model.eval()

    def one(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, (p, b), (x,))

    forward = vmap(one, in_dims=(0, 0, None))
    plain = {k: v.detach() for k, v in params.items()}
    try:
        outs = [forward(plain, buffers, split.x[i : i + rows]) for i in range(0, len(split), rows)]
    finally:
        model.train(was_training)
    out = torch.cat(outs, dim=1)
    finite = torch.isfinite(out).flatten(1).all(1).tolist()
    values = []
    for r, good in enumerate(finite):
        values.append(float(task.metric(out[r], split.y)) if good else worst_metric(task))
    return values


def train_lr_grid(
    task: Task, loss: Loss, config: TrainConfig, seed: int, lrs: Sequence[float]
) -> list[float]:
    """Validation metric of ``loss`` trained at every learning rate in ``lrs``, batched.

    All members start from ``task.make_model(seed)`` and see the same batches; member ``i``
    uses ``lrs[i]`` (milestone decay applies to each). A diverged member gets the worst
    metric (error 1.0, MSE inf). Equal to :func:`metaloss.training.train` with
    ``lr=lrs[i]`` up to float summation order; the test split is never read.

    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> ce = ml.losses.get_loss("cross_entropy")
    >>> vals = train_lr_grid(task, ce, task.defaults.with_(steps=50), 0, [0.01, 0.1, 1.0])
    >>> len(vals), vals[0] >= vals[2]
    (3, True)
    """
    if not lrs:
        return []
    if any(not (lr > 0 and math.isfinite(lr)) for lr in lrs):
        raise ConfigError(f"learning rates must be positive and finite, got {list(lrs)}")
    loss = loss.to(task.device)
    frozen = [p for p in loss.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    scale = torch.tensor([lr / config.lr for lr in lrs], dtype=torch.float64)
    try:
        fits = train_stack(task, config, seed, [loss] * len(lrs), 50, lr_scale=scale)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return [f.value if f.ok else worst_metric(task) for f in fits]

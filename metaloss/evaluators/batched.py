"""The batched evaluator: train a population's base models together with ``torch.func.vmap``.

Every member of a population is trained from the *same* seeded initial model on the *same*
batch sequence (that is what makes fitness comparable), so the members differ only in
their loss. :class:`BatchedEvaluator` stacks ``P`` copies of the initial parameters
(``torch.func.stack_module_state``), runs the forward pass of all members as one
``vmap(functional_call)`` over the stacked parameters on the shared batch, evaluates each
member's loss on its own output slice (Taylor losses of a chunk in one vectorised call,
every other loss - neural, symbolic, hand-made - in a short Python loop), sums the losses
and takes the gradients w.r.t. the stacked parameters with one ``torch.autograd.grad``.
Members are independent inside ``vmap``: the gradient of the sum w.r.t. member ``i``'s
parameters is the gradient of member ``i``'s loss alone, so a member that goes NaN cannot
change another member's numbers. The optimiser (SGD with momentum / Nesterov / weight
decay, Adam, milestone learning rates) is the same element-wise math as
``torch.optim.SGD`` / ``torch.optim.Adam``, applied to the stacked tensors.

Agreement with :class:`~metaloss.evaluators.serial.SerialEvaluator`:
    Same seeds, same initial model, same batches (``Batcher(len(task.train), batch_size,
    seed, device)``), same augmentation stream, same optimiser math, same failure rule (a
    member fails when its weights, or - with ``eval_every > 0`` - its training loss, become
    non-finite; a classification member whose weights are finite but whose outputs are not
    gets error 1.0, as in :func:`metaloss.training.evaluate_model`). The only difference is
    float summation order inside batched matrix products (about 1e-8 relative per step on
    CPU). Tolerance: ``ok`` flags are equal, and ``|value_batched - value_serial| <=
    2 / len(task.val)`` for error rates (two validation samples may flip their argmax after a
    few hundred steps), ``<= 1e-3 * max(1, |value|)`` for MSE. The test split is never read
    (selection uses validation only). On digits-mlp with 100-500 SGD steps the errors are
    identical in practice.

Learning-rate grids: :func:`train_lr_grid` trains one loss at several learning rates as
one vmapped population (same initial model and batches, a per-member learning rate), the
batched form of the learning-rate tuning in :mod:`metaloss.tuning`.

Failure handling: loss exceptions mark only the member that raised; non-finite weights are
detected every ``check_every`` steps (one host sync) and at the end, and such members are
dropped from the stack (their updates stop), so the survivors never pay for them.

Chunking: ``chunk_size=None`` picks the largest chunk that fits a memory estimate
(:func:`auto_chunk_size`): per member, 4 bytes x (parameters x (3 + optimiser states) +
3 x training activations of one batch), measured with forward hooks on one batch; plus a
fixed 2 x the largest activation at ``eval_batch_size`` rows (evaluation runs members x
rows ~ ``eval_batch_size`` per forward). The budget is 60 % of the free GPU memory
(``torch.cuda.mem_get_info``) or, on CPU, 40 % of ``MemAvailable`` in ``/proc/meminfo``
(4 GiB when that file is missing).

Unsupported (falls back to the serial evaluator, with the reason in
:attr:`BatchedEvaluator.fallback_reason` and a warning): models with active dropout
(per-member randomness cannot reproduce the serial run), fitness functions other than
:class:`TrainFitness` / ``EvoMALFitness``, and models that ``vmap`` cannot trace. BatchNorm
works (its running statistics are stacked buffers, updated per member).

``EvoMALFitness`` (rejection filter -> local search -> training): the filter and the local
search run per candidate, serially, in this process; only the final training runs of the
survivors are batched. ``Fitness.tensors`` carries the tuned weights as in the serial path.

Example:
    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, TrainFitness
    >>> from metaloss.evaluators.batched import BatchedEvaluator
    >>> task = ml.tasks.get("iris-linear")
    >>> ev = BatchedEvaluator(TrainFitness(task, steps=50))
    >>> cands = [Candidate(i, {"kind": k}) for i, k in enumerate(["cross_entropy", "mse"])]
    >>> [f.ok for f in ev.evaluate(cands)]
    [True, True]
"""

from __future__ import annotations

import math
import sys
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction
from metaloss.evaluators.serial import SerialEvaluator, TrainFitness
from metaloss.losses.base import Loss, is_classification
from metaloss.losses.taylor import TaylorLoss
from metaloss.tasks.base import Task, TrainConfig
from metaloss.training import Batcher, worst_metric

__all__ = [
    "BatchedEvaluator",
    "auto_chunk_size",
    "available_memory",
    "member_bytes",
    "train_lr_grid",
]

DIVERGED = "training diverged (non-finite loss or weights)"  # the serial reason


def _is_evomal(fitness: object) -> bool:
    """True for an ``EvoMALFitness`` (checked without importing sympy-heavy modules)."""
    gp = sys.modules.get("metaloss.meta.gp")
    return gp is not None and isinstance(fitness, gp.EvoMALFitness)


def _reason(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].name}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _has_dropout(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


# --------------------------------------------------------------------------------------
# memory estimate


def available_memory(device: torch.device | str) -> int:
    """Bytes the batched evaluator may use on ``device`` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.6 * free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(0.4 * int(line.split()[1]) * 1024)
    except OSError:
        pass
    return 4 << 30


def member_bytes(task: Task, config: TrainConfig, model: nn.Module | None = None) -> int:
    """Estimated bytes one population member needs (parameters, optimiser, activations)."""
    return _footprint(task, config, model)[0]


def _footprint(task: Task, config: TrainConfig, model: nn.Module | None) -> tuple[int, int]:
    """(bytes per member, fixed bytes of the evaluation forward), 4-byte floats."""
    model = model if model is not None else task.make_model(0)
    n_params = sum(p.numel() for p in model.parameters())
    states = 2 if config.optimizer == "adam" else (1 if config.momentum else 0)
    sizes: list[int] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            sizes.append(out.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    bs = min(config.batch_size, len(task.train))
    try:
        with torch.no_grad():
            model(task.train.x[:bs])
    except Exception:  # noqa: BLE001 - a broken model fails later, with a reason
        sizes = [task.train.x[:bs].numel()]
    finally:
        for h in handles:
            h.remove()
    act_train = sum(sizes) + task.train.x[:bs].numel()
    act_eval = 2 * max(sizes, default=0) * config.eval_batch_size // max(bs, 1)
    return 4 * (n_params * (3 + states) + 3 * act_train), 4 * act_eval


def auto_chunk_size(
    task: Task, config: TrainConfig, population: int, model: nn.Module | None = None
) -> int:
    """The largest number of members (<= ``population``) that fits the memory budget.

    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> auto_chunk_size(task, task.defaults, 25)
    25
    """
    per, fixed = _footprint(task, config, model)
    budget = available_memory(task.device) - fixed
    return max(1, min(population, budget // max(per, 1)))


# --------------------------------------------------------------------------------------
# optimiser math on stacked tensors (mirrors torch.optim's single-tensor implementations)


class _StackedOptimizer:
    """``torch.optim.SGD`` / ``Adam`` math on stacked ``(P, ...)`` tensors, in place."""

    def __init__(self, config: TrainConfig, lr_scale: Tensor | None = None) -> None:
        self.config = config
        self.lr = config.lr
        self.lr_scale = lr_scale  # (P,) per-member factor on the learning rate, or None
        self.milestones = Counter(config.milestones)
        if self.milestones[0]:  # MultiStepLR's constructor step (last_epoch = 0)
            self.lr = self.lr * config.gamma ** self.milestones[0]
        self.steps = 0
        self.state: dict[str, dict[str, Tensor]] = {}

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor]) -> None:
        c = self.config
        self.steps += 1
        for k, p in params.items():
            g = grads[k]
            if c.weight_decay:
                g = g.add(p, alpha=c.weight_decay)
            st = self.state.setdefault(k, {})
            if c.optimizer == "adam":
                b1, b2, eps = 0.9, 0.999, 1e-8
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"].lerp_(g, 1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                step = float(self.steps)
                bc1, bc2 = 1 - b1**step, 1 - b2**step
                denom = (st["v"].sqrt() / bc2**0.5).add_(eps)
                if self.lr_scale is None:
                    p.addcdiv_(st["m"], denom, value=-(self.lr / bc1))
                else:
                    p.sub_(st["m"] / denom * self._scale(p, self.lr / bc1))
                continue
            if c.momentum:
                if "buf" not in st:
                    st["buf"] = g.detach().clone()
                else:
                    st["buf"].mul_(c.momentum).add_(g, alpha=1)
                g = g.add(st["buf"], alpha=c.momentum) if c.nesterov else st["buf"]
            if self.lr_scale is None:
                p.add_(g, alpha=-self.lr)
            else:
                p.sub_(g * self._scale(p, self.lr))
        if self.steps in self.milestones:  # MultiStepLR.step() after optimizer.step()
            self.lr = self.lr * c.gamma ** self.milestones[self.steps]

    def _scale(self, p: Tensor, lr: float) -> Tensor:
        """Per-member learning rates ``lr * lr_scale``, shaped to broadcast over ``p``."""
        assert self.lr_scale is not None
        return (lr * self.lr_scale).view(-1, *([1] * (p.dim() - 1)))

    def select(self, keep: Tensor) -> None:
        self.state = {k: {n: t[keep] for n, t in st.items()} for k, st in self.state.items()}
        if self.lr_scale is not None:
            self.lr_scale = self.lr_scale[keep]


# --------------------------------------------------------------------------------------
# member losses


def _outputwise_batched(out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`metaloss.losses.base.outputwise` for stacked outputs ``(G, B, ...)``."""
    if is_classification(y):
        return torch.softmax(out, dim=-1), F.one_hot(y.long(), out.shape[-1]).to(out.dtype)
    p = out.reshape(out.shape[0], out.shape[1], -1)
    return p, y.reshape(p.shape[1:]).to(p.dtype)


def _taylor_values(theta: Tensor, reduction: str, out: Tensor, y: Tensor) -> Tensor:
    """Per-member TaylorGLO losses for stacked ``theta (G, 8)`` and outputs ``(G, B, C)``.

    The element-wise math is the one of :func:`metaloss.losses.taylor.taylor_polynomial`
    (same operations, same order), so the gradients equal the per-member ones.
    """
    p, t = _outputwise_batched(out, y)
    th = [theta[:, i].reshape(-1, 1, 1) for i in range(theta.shape[1])]
    d = p - th[1]
    e = t - th[0]
    values = (
        th[2] * d
        + 0.5 * th[3] * d**2
        + th[4] / 6.0 * d**3
        + th[5] * e * d
        + 0.5 * th[6] * e * d**2
        + 0.5 * th[7] * e**2 * d
    )
    per_sample = values.sum(-1) if reduction == "sum" else values.mean(-1)
    return per_sample.mean(-1)


@dataclass
class _Group:
    """Members whose losses are computed together: Taylor (vectorised) or a single loss."""

    rows: list[int]  # positions in the current stack
    loss: Loss | None = None  # a single member's loss module
    theta: Tensor | None = None  # stacked Taylor parameters
    reduction: str = "sum"


def _groups(losses: Sequence[Loss], device: torch.device) -> list[_Group]:
    taylor: dict[str, list[int]] = {}
    groups: list[_Group] = []
    for row, loss in enumerate(losses):
        if type(loss) is TaylorLoss:
            taylor.setdefault(loss.class_reduction, []).append(row)
        else:
            groups.append(_Group([row], loss=loss))
    for reduction, rows in taylor.items():
        theta = torch.stack([losses[r].theta.detach() for r in rows]).to(device)
        groups.append(_Group(rows, theta=theta, reduction=reduction))
    return groups


# --------------------------------------------------------------------------------------
# the evaluator


class BatchedEvaluator:
    """Evaluate a population by training all members' base models as one vmapped model.

    Args:
        fitness: a :class:`TrainFitness` (or an ``EvoMALFitness``: its filter and local
            search run per candidate, its training runs are batched). Anything else is
            evaluated serially (see :attr:`fallback_reason`).
        chunk_size: members trained together; ``None`` chooses it from a memory estimate
            (:func:`auto_chunk_size`).
        check_every: steps between checks for non-finite weights (each check syncs).

    Fitness equals the serial evaluator's within the tolerance stated in the module
    docstring (error rates within ``2 / len(task.val)``; ``ok`` flags equal).
    ``Fitness.seconds`` is the chunk's training time divided by its size.

    >>> import metaloss as ml
    >>> from metaloss.evaluators import Candidate, TrainFitness
    >>> ev = BatchedEvaluator(TrainFitness(ml.tasks.get("iris-linear"), steps=20))
    >>> ev.fallback_reason is None, ev.evaluate([Candidate(0, {"kind": "cross_entropy"})])[0].ok
    (True, True)
    """

    def __init__(
        self, fitness: FitnessFunction, chunk_size: int | None = None, check_every: int = 50
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ConfigError(f"batched evaluator: chunk_size must be >= 1, got {chunk_size}")
        self.fitness = fitness
        self.chunk_size = chunk_size
        self.check_every = max(1, int(check_every))
        self.fallback_reason: str | None = None
        self.train_fitness: TrainFitness | None = None
        if isinstance(fitness, TrainFitness):
            self.train_fitness = fitness
        elif _is_evomal(fitness):
            self.train_fitness = fitness.train_fitness()  # type: ignore[attr-defined]
        else:
            self._fall_back(f"fitness {type(fitness).__name__} is not a TrainFitness")
        if self.train_fitness is not None:
            model = self.train_fitness.task.make_model(self.train_fitness.seed)
            if _has_dropout(model):
                self._fall_back("the model has dropout (per-member randomness)")

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        warnings.warn(f"batched evaluator: {reason}; evaluating serially", stacklevel=3)

    # -- public ----------------------------------------------------------------------------
    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]:
        """Fitness of every candidate, in order (failures are records, never exceptions)."""
        if self.fallback_reason is not None or self.train_fitness is None:
            return SerialEvaluator(self.fitness).evaluate(candidates)
        out: list[Fitness | None] = [None] * len(candidates)
        todo: list[tuple[int, Candidate, dict[str, Tensor], float]] = []
        for i, cand in enumerate(candidates):
            if _is_evomal(self.fitness):
                start = time.perf_counter()
                prepared = self._evomal_prepare(cand)
                if isinstance(prepared, Fitness):
                    out[i] = prepared
                    continue
                todo.append((i, prepared[0], prepared[1], time.perf_counter() - start))
            else:
                todo.append((i, cand, {}, 0.0))
        if todo:
            config = self.train_fitness.train_config()
            size = self.chunk_size or auto_chunk_size(self.train_fitness.task, config, len(todo))
            for lo in range(0, len(todo), size):
                chunk = todo[lo : lo + size]
                fits = self._train_chunk([c for _, c, _, _ in chunk])
                for (i, _, tensors, extra), fit in zip(chunk, fits):
                    fit.seconds += extra
                    if _is_evomal(self.fitness):
                        fit.tensors = tensors
                    out[i] = fit
        return [f if f is not None else Fitness.failure("not evaluated") for f in out]

    # -- EvoMAL: filter and local search per candidate (as EvoMALFitness.__call__) ---------
    def _evomal_prepare(self, cand: Candidate) -> tuple[Candidate, dict[str, Tensor]] | Fitness:
        try:
            return self.fitness.prepare(cand)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - invalid candidates are data, not crashes
            return Fitness.failure(_reason(exc))

    # -- one chunk of members trained together ---------------------------------------------
    def _train_chunk(self, cands: Sequence[Candidate]) -> list[Fitness]:
        assert self.train_fitness is not None
        tf = self.train_fitness
        task, config, seed = tf.task, tf.train_config(), tf.seed
        results: list[Fitness | None] = [None] * len(cands)
        losses: list[Loss] = []
        members: list[int] = []  # candidate index of each stack row
        for i, cand in enumerate(cands):
            try:
                loss = cand.build().to(task.device)
            except Exception as exc:  # noqa: BLE001
                results[i] = Fitness.failure(_reason(exc))
                continue
            for p in loss.parameters():
                p.requires_grad_(False)
            losses.append(loss)
            members.append(i)
        if not members:
            return [r or Fitness.failure("not evaluated") for r in results]
        try:
            if self.fallback_reason is not None:  # an earlier chunk found vmap unusable
                raise _VmapError(self.fallback_reason)
            trained = _train_stack(task, config, seed, losses, self.check_every)
        except _VmapError as exc:
            if self.fallback_reason is None:
                self._fall_back(f"vmap cannot run this model ({exc})")
            serial = SerialEvaluator(tf).evaluate([cands[i] for i in members])
            for i, fit in zip(members, serial):
                results[i] = fit
            return [r or Fitness.failure("not evaluated") for r in results]
        for row, i in enumerate(members):
            results[i] = trained[row]
        return [r or Fitness.failure("not evaluated") for r in results]


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
        fits = _train_stack(task, config, seed, [loss] * len(lrs), 50, lr_scale=scale)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return [f.value if f.ok else worst_metric(task) for f in fits]


class _VmapError(RuntimeError):
    """The model itself cannot be run under vmap (not a problem of one candidate)."""


def _train_stack(
    task: Task,
    config: TrainConfig,
    seed: int,
    losses: list[Loss],
    check_every: int,
    lr_scale: Tensor | None = None,
) -> list[Fitness]:
    """Train ``len(losses)`` identically seeded models together; one Fitness per loss.

    ``lr_scale`` (one factor per member) multiplies each member's learning rate.
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
    scale = None if lr_scale is None else lr_scale.to(task.device, torch.float32)
    opt = _StackedOptimizer(config, scale)
    batcher = Batcher(len(task.train), config.batch_size, seed, task.device)
    aug_gen = torch.Generator(device=task.device).manual_seed(seed + 1)
    augment = config.augment and task.augment is not None
    check_loss = config.eval_every > 0  # the serial trainer only checks the loss then

    rows = list(range(n))  # loss index of each stack row
    alive_losses = list(losses)
    groups = _groups(alive_losses, task.device)
    results: list[Fitness | None] = [None] * n
    bad_loss = torch.zeros(n, dtype=torch.bool, device=task.device)

    def drop(keep_rows: list[int]) -> None:
        nonlocal params, buffers, groups, bad_loss, rows, alive_losses
        keep = torch.tensor(keep_rows, dtype=torch.long, device=task.device)
        params = {k: v.detach()[keep].requires_grad_(True) for k, v in params.items()}
        buffers = {k: v[keep] for k, v in buffers.items()}
        opt.select(keep)
        bad_loss = bad_loss[keep]
        rows = [rows[r] for r in keep_rows]
        alive_losses = [alive_losses[r] for r in keep_rows]
        groups = _groups(alive_losses, task.device)

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
                results[rows[r]] = Fitness.failure(DIVERGED)
        drop([r for r, good in enumerate(flags) if good])

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
            raise _VmapError(_reason(exc)) from exc
        values, failed = [], {}
        for g in groups:
            try:
                if g.theta is not None:
                    sub = out if len(g.rows) == len(rows) else out[g.rows]
                    v = _taylor_values(g.theta, g.reduction, sub, y)
                else:
                    assert g.loss is not None
                    v = g.loss(out[g.rows[0]], y).reshape(1)
            except Exception as exc:  # noqa: BLE001 - one member's loss is broken
                failed.update({r: _reason(exc) for r in g.rows})
                continue
            values.append((g.rows, v))
        if values:
            total = torch.cat([v for _, v in values]).sum()
            grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
            opt.step(
                params,
                {
                    k: gr if gr is not None else torch.zeros_like(p)
                    for (k, p), gr in zip(params.items(), grads)
                },
            )
            if check_loss:
                with torch.no_grad():
                    for g_rows, v in values:
                        bad_loss[g_rows] |= ~torch.isfinite(v.detach())
        if failed:
            for r, why in failed.items():
                results[rows[r]] = Fitness.failure(why)
            drop([r for r in range(len(rows)) if r not in failed])
        if step % check_every == 0 or step == config.steps:
            check()
    seconds = (time.perf_counter() - start) / n

    if rows:
        val = _metrics(task, model, params, buffers, task.val, config.eval_batch_size)
        for r, v in zip(rows, val):
            if not math.isfinite(v):
                results[r] = Fitness.failure(DIVERGED)
            else:
                results[r] = Fitness(v)
    for fit in results:
        if fit is not None:
            fit.seconds = seconds
    return [f if f is not None else Fitness.failure("not evaluated") for f in results]


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

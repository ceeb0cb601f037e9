"""ML3 (Bechtle et al.): meta-learn a loss offline by differentiating through unrolled training.

Each meta step starts from a freshly initialised base model (or continues a persistent
one), takes ``inner_steps`` differentiable optimiser steps under the learned loss on
support batches, evaluates the meta-objective of the updated model on a query batch and
back-propagates into the loss parameters (Adam). The meta-objective defaults to the
task loss (cross-entropy / MSE); any callable can replace it, including a *privileged*
one that uses information unavailable at test time ("shaped" losses).

Example:
    >>> import metaloss as ml
    >>> from metaloss.meta.unrolled import ML3Config, meta_train
    >>> task = ml.tasks.get("iris-linear")
    >>> loss = ml.losses.NeuralLoss.ml3()
    >>> hist = meta_train(loss, task, ML3Config(meta_steps=5, inner_lr=0.1))
    >>> len(hist)
    5
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss import rundir
from metaloss.checkpoint import load_checkpoint, save_checkpoint
from metaloss.errors import ArtifactError, ConfigError
from metaloss.losses.normalized import NORMALIZE, GradNormalized
from metaloss.losses.normalized import normalize as normalize_loss
from metaloss.meta.learned_lr import LearnedLR, check_learn_lr
from metaloss.progress import progress_bar
from metaloss.seeds import search_seed
from metaloss.tasks.base import Task
from metaloss.training import Batcher
from metaloss.validate import check_fields

# objective(model, params, x, y) -> scalar meta-loss of the updated parameters.
Objective = Callable[[nn.Module, mf.Params, Tensor, Tensor], Tensor]


@dataclass
class ML3Config:
    """Settings of offline ML3 meta-training (defaults from the reference code).

    Attributes:
        meta_steps: number of meta (outer) steps.
        inner_steps: K, differentiable base-model steps per meta step.
        inner_lr: base-model learning rate (``None``: the task's default).
        inner_optimizer: ``sgd`` or ``adam`` (pure, differentiable versions).
        inner_momentum: SGD momentum in the inner loop.
        inner_nesterov: Nesterov momentum in the inner loop (needs ``inner_momentum > 0``).
        inner_weight_decay: L2 weight decay in the inner loop.
        meta_lr: Adam learning rate of the loss parameters.
        batch_size: support / query batch size (``None``: the task's default).
        reinit: re-initialise the base model every meta step (else it persists).
        reset_every: with ``reinit=False``, re-initialise every N meta steps (0: never).
        query: where the query batch comes from: ``next`` (another training batch),
            ``same`` (the last support batch) or ``val`` (the validation split).
        grad_clip: clip the meta-gradient norm (0: off).
        inner_max_norm: clip the base model's gradient norm in the inner steps (0: off),
            differentiably (AdaLFL's stabiliser).
        normalize: ``none``, ``init`` (the learned loss is rescaled at the start of every
            meta step so that its parameter-gradient norm on the first support batch equals
            the task loss's; the factor is detached) or ``running`` (rescaled on every
            batch to the task loss's output-gradient norm,
            :class:`~metaloss.losses.normalized.GradNormalized`).
        learn_lr: meta-learn a learning-rate factor jointly, kept out of the loss
            (:mod:`metaloss.meta.learned_lr`); SGD inner optimiser only.
        lr_meta_lr: Adam learning rate of the log learning-rate factor.
    """

    meta_steps: int = 250
    inner_steps: int = 1
    inner_lr: float | None = None
    inner_optimizer: str = "sgd"
    inner_momentum: float = 0.0
    inner_nesterov: bool = False
    inner_weight_decay: float = 0.0
    meta_lr: float = 1e-3
    batch_size: int | None = None
    reinit: bool = True
    reset_every: int = 0
    query: str = "next"
    grad_clip: float = 0.0
    inner_max_norm: float = 0.0
    normalize: str = "none"
    learn_lr: bool = False
    lr_meta_lr: float = 0.01
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(
            self,
            "ml3",
            positive=("inner_steps", "meta_lr", "inner_lr", "batch_size"),
            non_negative=("meta_steps", "inner_momentum", "reset_every", "grad_clip",
                          "inner_max_norm"),
        )  # fmt: skip
        if self.meta_steps < 0 or self.inner_steps < 1:
            raise ConfigError("ml3: meta_steps must be >= 0 and inner_steps >= 1")
        if self.query not in ("next", "same", "val"):
            raise ConfigError(f"ml3: query must be next, same or val, got {self.query!r}")
        if self.meta_lr <= 0 or (self.inner_lr is not None and self.inner_lr <= 0):
            raise ConfigError("ml3: learning rates must be > 0")
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"ml3: normalize must be one of {NORMALIZE}, got {self.normalize!r}")
        if not self.lr_meta_lr > 0:
            raise ConfigError(f"ml3: lr_meta_lr must be > 0, got {self.lr_meta_lr}")
        check_learn_lr("ml3", self.learn_lr, self.inner_optimizer)


def task_objective(task: Task, loss: nn.Module | None = None) -> Objective:
    """The default meta-objective: the task loss (or ``loss``) of the updated model on the
    query batch."""
    task_loss = task.task_loss() if loss is None else loss

    def objective(model: nn.Module, params: mf.Params, x: Tensor, y: Tensor) -> Tensor:
        return task_loss(mf.forward(model, params, x), y)

    return objective


def unrolled_meta_step(
    params: mf.Params,
    state: mf.State,
    inner_opt: mf.Optimizer,
    inner_loss: Callable[[mf.Params, int], Tensor],
    objective: Callable[[mf.Params], Tensor],
    inner_steps: int,
    meta_opt: torch.optim.Optimizer,
    meta_params: list[Tensor],
    grad_clip: float = 0.0,
) -> tuple[Tensor, mf.Params, mf.State]:
    """The core of ML3, for any base model and loss: one meta step.

    ``inner_steps`` differentiable steps of ``inner_opt`` on ``inner_loss(params, k)``
    (the learned loss of the k-th step), then ``objective(updated params)`` is
    back-propagated into ``meta_params`` (the learned loss's parameters) and ``meta_opt``
    steps, unless the meta-objective or a meta-gradient is not finite. The meta-gradient
    norm is clipped to ``grad_clip`` (0: off). Returns the meta-objective (before the
    update) and the updated base parameters and optimiser state (still in the graph:
    :func:`metaloss.functional.detach` them to continue from there). Used by
    :class:`MetaStepper` (supervised tasks) and :mod:`metaloss.rl` (policies).

    Example:
        >>> import torch
        >>> from metaloss import functional as mf
        >>> phi = torch.tensor([1.0], requires_grad=True)  # a one-parameter "loss"
        >>> w = {"w": torch.zeros(1, requires_grad=True)}
        >>> meta_opt, opt = torch.optim.SGD([phi], lr=0.1), mf.sgd(0.5)
        >>> value, new, _ = unrolled_meta_step(
        ...     w, opt.init(w), opt, lambda p, k: -(phi * p["w"]).sum(),
        ...     lambda p: (p["w"] - 1).pow(2).sum(), 1, meta_opt, [phi])
        >>> float(value.detach()), round(float(new["w"].detach()), 3), round(float(phi.detach()), 3)
        (0.25, 0.5, 1.05)
    """
    for k in range(inner_steps):
        grads = mf.grad(inner_loss(params, k), params, create_graph=True)
        params, state = inner_opt.update(params, grads, state)
    meta_value = objective(params)
    meta_opt.zero_grad(set_to_none=True)
    if meta_params:
        meta_value.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(meta_params, grad_clip)
        finite = all(p.grad is None or torch.isfinite(p.grad).all() for p in meta_params)
        if finite and math.isfinite(float(meta_value.detach())):
            meta_opt.step()
    return meta_value, params, state


class MetaStepper:
    """The ML3 meta step as an object, reusable by ML3, AdaLFL and EvoMAL's local search.

    With ``config.learn_lr`` the learning-rate factor is :attr:`rate` (a given ``rate`` is
    shared, e.g. with AdaLFL's online phase); ``config.normalize`` rescales the learned
    loss in the inner steps (see :class:`ML3Config`).
    """

    def __init__(
        self,
        loss: nn.Module,
        task: Task,
        config: ML3Config,
        seed: int = 0,
        objective: Objective | None = None,
        rate: LearnedLR | None = None,
    ) -> None:
        self.loss, self.task, self.config, self.seed = loss.to(task.device), task, config, seed
        self.objective = objective or task_objective(task)
        bs = config.batch_size or task.defaults.batch_size
        # Search streams: never the initialisation or batch order of a meta-test run.
        self.batches = Batcher(len(task.train), bs, search_seed(seed, "meta-batches"), task.device)
        self.val_batches = Batcher(len(task.val), bs, search_seed(seed, "meta-val"), task.device)
        lr = config.inner_lr if config.inner_lr is not None else task.defaults.lr
        base = mf.make_optimizer(
            config.inner_optimizer,
            lr,
            momentum=config.inner_momentum,
            nesterov=config.inner_nesterov,
            weight_decay=config.inner_weight_decay,
        )
        self.rate = (rate or LearnedLR(lr)).to(task.device) if config.learn_lr else None
        if self.rate is not None:
            base = self.rate.wrap(base)
        self.inner_opt = mf.clip_grad_norm(base, config.inner_max_norm)
        self.meta_params = [p for p in self.loss.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": self.meta_params}]
        if self.rate is not None:
            groups.append({"params": [self.rate.log_scale], "lr": config.lr_meta_lr})
            self.meta_params = [*self.meta_params, self.rate.log_scale]
        self.meta_opt = torch.optim.Adam(groups, lr=config.meta_lr)
        self.step_loss: nn.Module = self.loss
        if config.normalize == "running":
            self.step_loss = GradNormalized(self.loss, mode="running")  # type: ignore[arg-type]
        self.reference = task.task_loss()
        self.norm_scale: Tensor | float = 1.0  # the factor of normalize="init"
        self.model = task.make_model(search_seed(seed, "meta-init"))
        self.buffers = mf.buffers_of(self.model)
        self.step_count = 0
        self._fresh()

    def _fresh(self) -> None:
        model = self.task.make_model(search_seed(self.seed, "meta-fresh", self.step_count))
        self.params = mf.params_of(model)
        self.state = self.inner_opt.init(self.params)

    def _batch(self, which: str) -> tuple[Tensor, Tensor]:
        split = self.task.val if which == "val" else self.task.train
        idx = (self.val_batches if which == "val" else self.batches).next()
        return split.x[idx], split.y[idx]

    def step(self) -> float:
        """One meta step; returns the meta-objective value (before the update of phi)."""
        cfg = self.config
        if cfg.reinit or (cfg.reset_every and self.step_count % cfg.reset_every == 0):
            self._fresh()
        last: list[Tensor] = []  # the last support batch (the query of query="same")

        def inner_loss(params: mf.Params, k: int) -> Tensor:
            last[:] = self._batch("train")
            if cfg.normalize == "init" and k == 0:
                self.norm_scale = self.init_scale(params, *last)
            value = self.step_loss(mf.forward(self.model, params, last[0], self.buffers), last[1])
            return value * self.norm_scale if cfg.normalize == "init" else value

        def objective(params: mf.Params) -> Tensor:
            if cfg.query == "same":
                return self.objective(self.model, params, *last)
            x, y = self._batch("val" if cfg.query == "val" else "train")
            return self.objective(self.model, params, x, y)

        meta_value, params, state = unrolled_meta_step(
            self.params, self.state, self.inner_opt, inner_loss, objective, cfg.inner_steps,
            self.meta_opt, self.meta_params, cfg.grad_clip,
        )  # fmt: skip
        if not cfg.reinit:
            self.params = mf.detach(params)
            self.state = mf.detach_state(state)
        self.step_count += 1
        return float(meta_value.detach())

    def init_scale(self, params: mf.Params, x: Tensor, y: Tensor) -> Tensor:
        """``||d task_loss / d params|| / ||d loss / d params||`` on ``(x, y)`` at ``params``,
        detached (1 when the loss's gradient is 0 or not finite)."""
        p = mf.detach(params)
        out = mf.forward(self.model, p, x, self.buffers)
        leaves = list(p.values())

        def norm(value: Tensor, keep: bool) -> Tensor:
            grads = torch.autograd.grad(value, leaves, retain_graph=keep, allow_unused=True)
            return torch.stack([g.double().pow(2).sum() for g in grads if g is not None]).sum()

        ref = norm(self.reference(out, y), True).sqrt()
        own = norm(self.loss(out, y), False).sqrt()
        ok = torch.isfinite(own) & (own > 0) & torch.isfinite(ref)
        return torch.where(ok, ref / torch.where(ok, own, 1.0), 1.0).float().detach()

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue meta-training exactly (for checkpoints)."""
        return {
            "step": self.step_count,
            "loss": dict(self.loss.state_dict()),
            "meta_opt": self.meta_opt.state_dict(),
            "batches": self.batches.state_dict(),
            "val_batches": self.val_batches.state_dict(),
            "params": self.params,
            "state": self.state,
            **({"log_lr": self.rate.log_scale.detach().clone()} if self.rate is not None else {}),
        }

    def load_state_dict(self, ck: dict[str, Any]) -> None:
        self.step_count = int(ck["step"])
        self.loss.load_state_dict(ck["loss"])
        self.meta_opt.load_state_dict(ck["meta_opt"])
        self.batches.load_state_dict(ck["batches"])
        self.val_batches.load_state_dict(ck["val_batches"])
        self.params = {k: v.requires_grad_() for k, v in ck["params"].items()}
        self.state = ck["state"]
        if self.rate is not None:
            with torch.no_grad():
                self.rate.log_scale.copy_(ck["log_lr"])


def meta_train(
    loss: nn.Module,
    task: Task,
    config: ML3Config | None = None,
    seed: int = 0,
    objective: Objective | None = None,
    progress: bool = False,
    log_every: int = 10,
    run_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    identity: dict[str, Any] | None = None,
    rate: LearnedLR | None = None,
) -> list[dict[str, float]]:
    """Meta-train ``loss`` in place with ML3; returns the history (one row per meta step).

    With ``run_dir`` and ``checkpoint_every`` a checkpoint is saved periodically and an
    existing one is resumed, continuing exactly where it stopped. ``identity`` (the config
    and task the run belongs to) is stored in the checkpoint; resuming with another
    identity is refused (:class:`~metaloss.errors.ArtifactError` naming the fields).
    With ``config.learn_lr``, ``rate`` (if given) is the learning-rate factor trained.
    """
    config = config or ML3Config()
    stepper = MetaStepper(loss, task, config, seed, objective, rate=rate)
    history: list[dict[str, float]] = []
    if identity is None:
        identity = run_identity("ml3", task, seed, config.__dict__, loss)
    if run_dir is not None and checkpoint_every:
        ck = load_checkpoint(run_dir, task.device, identity=identity)
        if ck is not None:
            try:
                stepper.load_state_dict(ck["stepper"])
                history = list(ck["history"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise ArtifactError(
                    f"{Path(run_dir) / rundir.CHECKPOINT}: state does not fit this run "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                ) from None
    start = time.perf_counter()
    remaining = config.meta_steps - stepper.step_count
    with progress_bar(remaining, f"ml3 {task.name}", enabled=progress) as advance:
        for i in range(stepper.step_count, config.meta_steps):
            value = stepper.step()
            history.append(
                {"meta_step": i + 1, "meta_loss": value, "seconds": time.perf_counter() - start}
            )
            if stepper.rate is not None:
                history[-1]["lr"] = stepper.rate.lr
            info = f"meta-loss {value:.4f}" if (i + 1) % log_every == 0 else None
            advance(1, info=info)
            if not math.isfinite(value):
                history[-1]["diverged"] = 1.0
            if run_dir is not None and checkpoint_every and (i + 1) % checkpoint_every == 0:
                save_checkpoint(
                    run_dir, {"stepper": stepper.state_dict(), "history": history}, identity
                )
    return history


def run_identity(
    method: str, task: Task, seed: int, config: dict[str, Any], loss: nn.Module
) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: method, task (name, data, outputs), seed,
    the settings and the loss's spec. The run length (``meta_steps`` / ``steps``) and
    ``checkpoint_every`` are left out: a run may be resumed to be extended."""
    spec = loss.spec() if hasattr(loss, "spec") else {"kind": type(loss).__name__}
    return {
        "method": method,
        "task": task.name,
        "data": task.source,
        "outputs": task.num_outputs,
        "seed": seed,
        **{
            f"config.{k}": v
            for k, v in config.items()
            if k not in ("checkpoint_every", "meta_steps", "steps")
        },
        "loss.kind": spec.get("kind"),
        # a normalised loss's calibrated scale is state (checkpointed), not identity
        **{f"loss.{k}": v for k, v in (spec.get("config") or {}).items() if k != "scale"},
    }


def learn_ml3(
    task: Task,
    config: Any = None,
    *,
    seed: int = 0,
    progress: bool = False,
    loss: nn.Module | None = None,
    objective: Objective | None = None,
    run_dir: str | Path | None = None,
    **overrides: Any,
) -> Any:
    """``metaloss.learn("ml3", task)``: meta-train a neural loss offline; a LearnResult.

    ``config`` is an :class:`~metaloss.meta.configs.ML3MethodConfig` (default: its
    defaults); ``overrides`` are its fields (``meta_steps``, ``inner_lr``, ``hidden``...).
    ``loss`` replaces the neural loss the config describes (its architecture fields are
    then unused); ``objective`` replaces the task-loss meta-objective.

    Example:
        >>> import metaloss as ml
        >>> from metaloss.meta.configs import ML3MethodConfig
        >>> res = learn_ml3(ml.tasks.get("iris-linear"), ML3MethodConfig.fast(), inner_lr=0.1)
        >>> res.config["meta_steps"], len(res.history)
        (5, 5)
    """
    if getattr(task, "kind", None) == "rl":  # an RLTask: ML3 for policies (metaloss.rl)
        from metaloss.rl import learn_rl

        if config is not None:
            raise ConfigError(f"{task.name}: RL tasks take their settings as options, not a config")
        return learn_rl(task, seed=seed, progress=progress, run_dir=run_dir, loss=loss, **overrides)
    from metaloss.losses.neural import NeuralLoss
    from metaloss.meta.configs import ML3MethodConfig
    from metaloss.results import LearnResult

    method_cfg = ML3MethodConfig.resolve(config, overrides)
    cfg = ML3Config(**method_cfg.meta_options())
    checkpoint_every = method_cfg.checkpoint_every
    loss_given = loss is not None
    if loss is None:
        loss = NeuralLoss(**method_cfg.loss_options(), seed=seed)
    if isinstance(loss, NeuralLoss):  # a residual that needs labels, on a regression task
        loss.check_task(task)
    rate = LearnedLR(cfg.inner_lr or task.defaults.lr) if cfg.learn_lr else None
    start = time.perf_counter()
    history = meta_train(
        loss,
        task,
        cfg,
        seed=seed,
        objective=objective,
        progress=progress,
        run_dir=run_dir,
        checkpoint_every=checkpoint_every if run_dir is not None else 0,
        rate=rate,
    )
    seconds = time.perf_counter() - start
    cfg_dict = {k: v for k, v in cfg.__dict__.items() if k != "extra"}
    if not loss_given:  # the loss the config describes: record its architecture too
        cfg_dict = method_cfg.to_dict()
    info: dict[str, Any] = {"meta_steps_per_s": f"{cfg.meta_steps / max(seconds, 1e-9):.1f}"}
    if rate is not None:  # reported, not in the loss: meta-test still tunes the lr
        info.update(learned_lr=rate.lr, learned_lr_factor=rate.factor)
    # the returned loss carries the normalisation of meta-training (saved in its spec)
    loss = normalize_loss(loss, cfg.normalize, task, seed)
    return LearnResult(
        method="ml3",
        task=task.name,
        loss=loss.cpu(),
        seconds=seconds,
        history=history,
        config={**cfg_dict, "seed": seed},
        info=info,
    )

"""AdaLFL (Raymond et al.): the loss keeps adapting online during the whole training run.

After an ML3-style offline initialisation, every ``adapt_every`` base-model steps:
(1) update the base model with the current learned loss, keeping the graph;
(2) compute the task loss of the updated model on a query batch (train or validation);
(3) update the loss parameters through that one-step look-ahead;
and training continues from the updated model. The base optimiser is a pure functional
SGD (momentum, Nesterov, weight decay, lr milestones) or Adam, so the look-ahead is exact.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> res = ml.learn("adalfl", task, init_steps=5, steps=50, seed=0)
    >>> res.info["test_metric"] <= 1.0
    True
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metaloss import functional as mf
from metaloss import rundir
from metaloss.checkpoint import load_checkpoint, save_checkpoint
from metaloss.errors import ArtifactError, ConfigError
from metaloss.losses.handcrafted import get_baseline
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.normalized import NORMALIZE, GradNormalized
from metaloss.losses.normalized import normalize as normalize_loss
from metaloss.meta.configs import META_OBJECTIVES
from metaloss.meta.learned_lr import LearnedLR, check_learn_lr
from metaloss.meta.online_step import (
    online_step,
    resolve_meta_grad,
)
from metaloss.meta.unrolled import ML3Config, meta_train, run_identity, task_objective
from metaloss.progress import progress_bar
from metaloss.results import LearnResult
from metaloss.tasks.base import Task, TrainConfig
from metaloss.training import Batcher, evaluate_model, worst_metric
from metaloss.validate import check_fields


@dataclass
class AdaLFLConfig:
    """AdaLFL settings. ``steps=None`` etc. take the task's meta-test protocol."""

    init_steps: int = 2500
    adapt_every: int = 1
    meta_lr: float = 1e-3
    query: str = "train"  # "train" or "val"
    meta_objective: str = "task"  # "task" or a hand-made baseline's name (meta_objective_loss)
    meta_grad: str = "auto"  # "jvp", "exact" (double backward) or "auto"
    max_grad_norm: float = 0.0  # clip the base model's gradient norm (0: off)
    snapshots: int = 5
    checkpoint_every: int = 0
    steps: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    normalize: str = "none"  # "none", "init" or "running" (metaloss.losses.normalized)
    learn_lr: bool = False  # meta-learn a learning-rate factor (metaloss.meta.learned_lr)
    lr_meta_lr: float = 0.01

    def __post_init__(self) -> None:
        check_fields(
            self,
            "adalfl",
            positive=("adapt_every", "steps", "lr", "batch_size"),
            non_negative=("init_steps", "max_grad_norm", "snapshots", "checkpoint_every",
                          "momentum", "weight_decay", "meta_lr"),  # meta_lr 0: no adaptation
        )  # fmt: skip
        if self.init_steps < 0 or self.adapt_every < 1 or self.snapshots < 0:
            raise ConfigError("adalfl: init_steps >= 0, adapt_every >= 1, snapshots >= 0")
        if self.query not in ("train", "val"):
            raise ConfigError(f"adalfl: query must be 'train' or 'val', got {self.query!r}")
        if self.meta_objective not in META_OBJECTIVES:
            raise ConfigError(
                f"adalfl: meta_objective must be one of {', '.join(META_OBJECTIVES)}, "
                f"got {self.meta_objective!r}"
            )
        if self.meta_grad not in ("auto", "jvp", "exact"):
            raise ConfigError(
                f"adalfl: meta_grad must be 'auto', 'jvp' or 'exact', got {self.meta_grad!r}"
            )
        if self.normalize not in NORMALIZE:
            raise ConfigError(
                f"adalfl: normalize must be one of {NORMALIZE}, got {self.normalize!r}"
            )
        check_learn_lr("adalfl", self.learn_lr, self.optimizer)

    def train_config(self, task: Task) -> TrainConfig:
        return task.defaults.with_(
            steps=self.steps,
            lr=self.lr,
            optimizer=self.optimizer,
            momentum=self.momentum,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
        )


def meta_objective_loss(name: str, task: Task) -> nn.Module:
    """The loss AdaLFL's meta-objective evaluates the look-ahead model with: the task loss
    (``"task"``, the paper) or a hand-made baseline, e.g. symmetric CE under label noise.

    Example:
        >>> import metaloss as ml
        >>> type(meta_objective_loss("sce", ml.tasks.get("iris-linear"))).__name__
        'SymmetricCrossEntropyLoss'
    """
    if name == "task":
        return task.task_loss()
    if not task.classification and name != "mse":
        raise ConfigError(
            f"adalfl: meta_objective {name!r} needs a classification task; {task.name} is a "
            "regression task (use task or mse)"
        )
    return get_baseline(name, task=task).to(task.device)


def _identity_config(config: AdaLFLConfig) -> dict[str, Any]:
    """The settings a checkpoint's identity records (the default meta-objective is left out,
    so checkpoints written before the option existed still resume)."""
    out = dict(config.__dict__)
    if out.get("meta_objective") == "task":
        del out["meta_objective"]
    return out


def _lr_scale(cfg: TrainConfig, step: int) -> float:
    return cfg.gamma ** sum(step >= m for m in cfg.milestones)


def online_train(
    loss: nn.Module,
    task: Task,
    config: AdaLFLConfig,
    seed: int = 0,
    run_dir: str | Path | None = None,
    progress: bool = False,
    identity: dict[str, Any] | None = None,
    rate: LearnedLR | None = None,
) -> dict[str, Any]:
    """Train a base model of ``task`` while adapting ``loss`` online (in place).

    With ``run_dir`` and ``checkpoint_every`` a checkpoint is written periodically and an
    existing one is resumed. Returns model, metrics, history and loss snapshots. With
    ``rate`` (option ``learn_lr``) the base steps are taken at ``lr * rate.factor`` and the
    factor is adapted by the same look-ahead as the loss (the exact meta-gradient).
    """
    tcfg = config.train_config(task)
    loss = loss.to(task.device)
    model = task.make_model(seed)
    buffers = mf.buffers_of(model)
    base = mf.make_optimizer(
        tcfg.optimizer,
        tcfg.lr,
        momentum=tcfg.momentum,
        nesterov=tcfg.nesterov,
        weight_decay=tcfg.weight_decay,
    )
    if rate is not None:
        rate = rate.to(task.device)
        base = rate.wrap(base)
    opt = mf.clip_grad_norm(base, config.max_grad_norm)
    params = mf.params_of(model)
    state = opt.init(params)
    meta_params = [p for p in loss.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": meta_params}] if meta_params else []
    if rate is not None and meta_params:
        groups.append({"params": [rate.log_scale], "lr": config.lr_meta_lr})
    # a frozen loss (no trainable parameters) trains without look-ahead
    meta_opt = torch.optim.Adam(groups, lr=config.meta_lr) if meta_params else None
    batches = Batcher(len(task.train), tcfg.batch_size, seed, task.device)
    queries = Batcher(
        len(task.val if config.query == "val" else task.train),
        tcfg.batch_size,
        seed + 1,
        task.device,
    )
    task_loss = meta_objective_loss(config.meta_objective, task)
    method = resolve_meta_grad(config.meta_grad, model)
    if rate is not None:  # the jvp meta-gradient reaches the loss only
        method = "exact"
    snap_at = {
        max(1, round(tcfg.steps * (i + 1) / config.snapshots)) for i in range(config.snapshots)
    }
    snapshots: dict[str, dict[str, torch.Tensor]] = {"0": _snapshot(loss)}
    history: list[dict[str, float]] = []
    start_step, diverged = 0, False
    if identity is None:
        identity = run_identity("adalfl", task, seed, _identity_config(config), loss)
    if run_dir is not None and config.checkpoint_every:
        ck = load_checkpoint(run_dir, task.device, identity=identity)
        if ck is not None:
            try:
                params = {k: v.requires_grad_() for k, v in ck["params"].items()}
                state = ck["opt_state"]
                loss.load_state_dict(ck["loss"])
                if meta_opt is not None:
                    meta_opt.load_state_dict(ck["meta_opt"])
                batches.load_state_dict(ck["batches"])
                queries.load_state_dict(ck["queries"])
                snapshots, history, start_step = ck["snapshots"], ck["history"], int(ck["step"])
                if rate is not None:
                    with torch.no_grad():
                        rate.log_scale.copy_(ck["log_lr"])
                if "norm_scale" in ck:  # normalize="init": the factor calibrated before
                    loss.scale = float(ck["norm_scale"])
            except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
                raise ArtifactError(
                    f"{Path(run_dir) / rundir.CHECKPOINT}: state does not fit this run "
                    f"({type(exc).__name__})"
                ) from None
    qsplit = task.val if config.query == "val" else task.train
    start = time.perf_counter()
    running, since = torch.zeros((), device=task.device), 0
    ahead, n_ahead = torch.zeros((), device=task.device), 0
    with progress_bar(tcfg.steps - start_step, f"adalfl {task.name}", enabled=progress) as adv:
        for step in range(start_step + 1, tcfg.steps + 1):
            state["lr_scale"] = _lr_scale(tcfg, step - 1)
            idx = batches.next()
            x, y = task.train.x[idx], task.train.y[idx]
            if tcfg.augment and task.augment:
                x = task.augment_batch(x)
            adapt = bool(meta_params) and step % config.adapt_every == 0
            query = None
            if adapt:
                q = queries.next()
                query = (qsplit.x[q], qsplit.y[q])
            params, state, value, look = online_step(
                model,
                params,
                state,
                opt,
                loss,
                (x, y),
                query,
                meta_opt,
                task_loss,
                buffers,
                method=method,
            )
            running = running + value
            since += 1
            if look is not None:
                ahead, n_ahead = ahead + look, n_ahead + 1
            adv(1)
            if step in snap_at:
                snapshots[str(step)] = _snapshot(loss)
            every = tcfg.eval_every or max(1, tcfg.steps // 20)
            if step % every == 0 or step == tcfg.steps:
                mean = float(running) / max(since, 1)
                running, since = torch.zeros((), device=task.device), 0
                if not math.isfinite(mean):
                    diverged = True
                    break
                row = {"step": step, "train_loss": mean}
                if n_ahead:
                    row["look_ahead"] = float(ahead) / n_ahead
                    ahead, n_ahead = torch.zeros((), device=task.device), 0
                history.append(row)
            if (
                run_dir is not None
                and config.checkpoint_every
                and (step % config.checkpoint_every == 0)
            ):
                save_checkpoint(
                    run_dir,
                    {
                        "step": step,
                        "params": params,
                        "opt_state": state,
                        "loss": dict(loss.state_dict()),
                        "meta_opt": meta_opt.state_dict() if meta_opt else {},
                        "batches": batches.state_dict(),
                        "queries": queries.state_dict(),
                        "snapshots": snapshots,
                        "history": history,
                        **({"log_lr": rate.log_scale.detach()} if rate is not None else {}),
                        **(
                            {"norm_scale": torch.tensor(loss.scale, dtype=torch.float64)}
                            if isinstance(loss, GradNormalized) and loss.mode == "init"
                            else {}
                        ),
                    },
                    identity,
                )
    seconds = time.perf_counter() - start
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(params[k])
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    if diverged or not finite:
        val = test = worst_metric(task)
    else:
        val = evaluate_model(task, model, task.val)
        test = evaluate_model(task, model, task.test)
    return {
        "model": model,
        "val_metric": val,
        "test_metric": test,
        "seconds": seconds,
        "history": history,
        "snapshots": snapshots,
        "diverged": diverged or not finite,
    }


def _snapshot(loss: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in loss.state_dict().items()}


def offline_config(config: AdaLFLConfig, task: Task, init_lr: float | None = None) -> ML3Config:
    """The ML3 settings of AdaLFL's offline initialisation: ``init_steps`` one-step unrolls
    with the task's optimiser (SGD momentum, Nesterov, weight decay, or Adam, as in the
    online phase; learning-rate milestones do not apply), at ``init_lr`` or the task's lr.

    Example:
        >>> import metaloss as ml
        >>> task = ml.tasks.get("iris-linear")
        >>> offline_config(AdaLFLConfig(init_steps=5, momentum=0.9), task).inner_momentum
        0.9
    """
    tcfg = config.train_config(task)
    return ML3Config(
        meta_steps=config.init_steps,
        inner_lr=init_lr or tcfg.lr,
        inner_optimizer=tcfg.optimizer,
        inner_momentum=tcfg.momentum,
        inner_nesterov=tcfg.nesterov,
        inner_weight_decay=tcfg.weight_decay,
        meta_lr=config.meta_lr,
        batch_size=tcfg.batch_size,
        inner_max_norm=config.max_grad_norm,
        normalize=config.normalize,
        learn_lr=config.learn_lr,
        lr_meta_lr=config.lr_meta_lr,
    )


def learn_adalfl(
    task: Task,
    config: Any = None,
    *,
    seed: int = 0,
    progress: bool = False,
    loss: nn.Module | None = None,
    run_dir: str | Path | None = None,
    **overrides: Any,
) -> LearnResult:
    """``metaloss.learn("adalfl", task)``: offline init + online adaptation over a full run.

    ``config`` is an :class:`~metaloss.meta.configs.AdaLFLMethodConfig` (default: its
    defaults); ``overrides`` are its fields (``init_steps``, ``steps``, ``lr``, ``hidden``...).
    ``loss`` replaces the neural loss the config describes.

    Example:
        >>> import metaloss as ml
        >>> from metaloss.meta.configs import AdaLFLMethodConfig
        >>> res = learn_adalfl(ml.tasks.get("iris-linear"), AdaLFLMethodConfig.fast())
        >>> res.config["init_steps"], 0.0 <= res.info["test_metric"] <= 1.0
        (5, True)
    """
    from metaloss.meta.configs import AdaLFLMethodConfig

    method_cfg = AdaLFLMethodConfig.resolve(config, overrides)
    cfg = AdaLFLConfig(**method_cfg.online_options(run_dir))
    init_lr = method_cfg.init_lr
    if loss is None:
        loss = NeuralLoss(**method_cfg.loss_options(), seed=seed)
    if isinstance(loss, NeuralLoss):  # a residual that needs labels, on a regression task
        loss.check_task(task)
    start = time.perf_counter()
    init_hist: list[dict[str, float]] = []
    resuming = run_dir is not None and (Path(run_dir) / rundir.CHECKPOINT).exists()
    tcfg = cfg.train_config(task)
    rate = LearnedLR(init_lr or tcfg.lr) if cfg.learn_lr else None
    if cfg.init_steps and not resuming:
        ml3 = offline_config(cfg, task, init_lr)
        objective = task_objective(task, meta_objective_loss(cfg.meta_objective, task))
        init_hist = meta_train(
            loss, task, ml3, seed=seed, objective=objective, progress=progress, rate=rate
        )
    # the online phase and the returned loss use the normalisation of the offline phase
    if cfg.normalize == "init" and resuming:  # its factor comes from the checkpoint
        loss = GradNormalized(loss.to(task.device))
    else:
        loss = normalize_loss(loss.to(task.device), cfg.normalize, task, seed)
    out = online_train(loss, task, cfg, seed=seed, run_dir=run_dir, progress=progress, rate=rate)
    seconds = time.perf_counter() - start
    history = [{"phase": "offline", **r} for r in init_hist] + [
        {"phase": "online", **r} for r in out["history"]
    ]
    return LearnResult(
        method="adalfl",
        task=task.name,
        loss=loss.cpu(),
        seconds=seconds,
        history=history,
        config={**cfg.__dict__, "seed": seed},
        info={
            "val_metric": out["val_metric"],
            "test_metric": out["test_metric"],
            "online_seconds": out["seconds"],
            "diverged": out["diverged"],
            **(
                {"learned_lr": tcfg.lr * rate.factor, "learned_lr_factor": rate.factor}
                if rate is not None
                else {}
            ),
        },
        tensors={
            f"snapshot.{step}.{k}": v
            for step, snap in out["snapshots"].items()
            for k, v in snap.items()
        },
    )


def __getattr__(name: str) -> Any:
    """The meta-test side lives in :mod:`metaloss.meta.online_eval` (kept importable here)."""
    if name in ("ONLINE_FIELDS", "OnlineTrainResult", "continue_online", "is_online_loss"):
        from metaloss.meta import online_eval

        return getattr(online_eval, name)
    raise AttributeError(name)

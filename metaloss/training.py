"""Train any model with any loss callable ``(y_pred, y_true) -> scalar``; evaluate the metric.

Data stays on the task's device; batches are index draws from a seeded per-epoch
permutation (no DataLoader), so a run is deterministic on CPU for a seed.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> result = ml.train(task, ml.losses.get_loss("cross_entropy"), steps=200, seed=0)
    >>> result.test_metric < 0.2
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.progress import progress_bar
from metaloss.tasks.base import Split, Task, TrainConfig
from metaloss.threads import accepts_threads


class Batcher:
    """Seeded mini-batch indices: a fresh permutation every epoch, drawn on the CPU."""

    def __init__(self, n: int, batch_size: int, seed: int, device: torch.device | str) -> None:
        self.n, self.batch_size, self.device = n, min(batch_size, n), device
        self.gen = torch.Generator().manual_seed(seed)
        self._perm = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> Tensor:
        if self._pos + self.batch_size > self._perm.numel():
            self._perm = torch.randperm(self.n, generator=self.gen).to(self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Tensor]:
        """RNG state, current permutation and position (for checkpoints)."""
        return {
            "gen": self.gen.get_state(),
            "perm": self._perm.cpu(),
            "pos": torch.tensor(self._pos),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.gen.set_state(state["gen"])
        self._perm = state["perm"].to(self.device)
        self._pos = int(state["pos"])


@dataclass
class TrainResult:
    """Outcome of one training run."""

    model: nn.Module
    val_metric: float
    test_metric: float
    metric: str
    steps: int
    seconds: float
    diverged: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    collapsed: bool = False  # finite, but no better than a constant predictor on validation
    checkpoints: dict[int, float] = field(default_factory=dict)  # step -> val metric (stop_at)
    stopped_at: int | None = None  # the step where early stopping ended the run

    def to_dict(self) -> dict[str, Any]:
        return {
            "val_metric": self.val_metric,
            "test_metric": self.test_metric,
            "metric": self.metric,
            "steps": self.steps,
            "seconds": self.seconds,
            "diverged": self.diverged,
            "collapsed": self.collapsed,
            "history": self.history,
        }


def make_functional_optimizer(config: TrainConfig) -> mf.Optimizer:
    """The functional optimiser (:mod:`metaloss.functional`) of a :class:`TrainConfig`:
    ``torch.optim.SGD`` / ``Adam`` math (milestones via ``state["lr_scale"]``, see
    :func:`~metaloss.functional.milestone_scale`).

    >>> from metaloss.tasks.base import TrainConfig
    >>> make_functional_optimizer(TrainConfig(optimizer="adam")).name
    'adam'
    """
    return mf.make_optimizer(
        config.optimizer,
        config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov,
        weight_decay=config.weight_decay,
    )


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 2000) -> Tensor:
    """Model outputs for every row of ``x`` in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    outs = [model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate_model(task: Task, model: nn.Module, split: Split, batch_size: int = 2000) -> float:
    """The task metric of ``model`` on ``split``; the worst value if outputs are not finite."""
    out = predict(model, split.x, batch_size)
    if not torch.isfinite(out).all():
        return worst_metric(task)
    return float(task.metric(out, split.y))


def chance_metric(task: Task, split: Split) -> float:
    """The metric of a constant predictor on ``split``: the majority class's error rate
    (classification) or the MSE of the training targets' mean (regression)."""
    if task.classification:
        counts = torch.bincount(split.y.long().flatten().cpu(), minlength=task.num_outputs)
        return 1.0 - float(counts.max()) / max(1, len(split))
    mean = task.train.y.float().mean(0)
    return float(((split.y.float() - mean) ** 2).mean())


def is_collapsed(task: Task, val_metric: float) -> bool:
    """True when a finite validation metric is at chance level.

    Classification: the error is within three binomial standard deviations of the
    majority class's error ``e`` on the validation split (``e - min(3 sqrt(e (1 - e) / n),
    e / 2)``), i.e. not distinguishable from guessing. Regression: the MSE is no better than
    predicting the training targets' mean. A run that collapsed with finite outputs is not
    "diverged", but it is no result either: results and reports flag it.

    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> is_collapsed(task, 0.9), is_collapsed(task, 0.1)
    (True, False)
    """
    if not math.isfinite(val_metric):
        return False
    chance = chance_metric(task, task.val)
    if not task.classification:
        return val_metric >= chance
    margin = min(3 * math.sqrt(chance * (1 - chance) / max(1, len(task.val))), chance / 2)
    return val_metric >= chance - margin - 1e-9


def worst_metric(task: Task) -> float:
    """The value recorded for a diverged run: error 1.0 or MSE inf."""
    return 1.0 if task.classification else math.inf


def checkpoint_split(split: Split, examples: int) -> Split:
    """The validation examples measured at early-stopping checkpoints: ``examples`` of
    ``split``, a fixed random subset (seed 0, kept in the split's order), or all of it
    when ``examples`` is 0 or not below its size. The same rows in every run, evaluator
    and process, so the checkpoint metrics of a search stay comparable.

    >>> import torch
    >>> s = Split(torch.arange(10.0)[:, None], torch.arange(10))
    >>> checkpoint_split(s, 4).y.tolist(), checkpoint_split(s, 0) is s
    ([1, 4, 5, 7], True)
    """
    if examples <= 0 or examples >= len(split):
        return split
    gen = torch.Generator().manual_seed(0)
    rows = torch.randperm(len(split), generator=gen)[:examples].sort().values
    rows = rows.to(split.x.device)
    return Split(split.x[rows], split.y[rows])


@accepts_threads  # threads= keyword (metaloss.threads)
def train(
    task: Task,
    loss: Callable[[Tensor, Tensor], Tensor],
    config: TrainConfig | None = None,
    seed: int = 0,
    model: nn.Module | None = None,
    progress: bool = False,
    on_eval: Callable[[int, nn.Module], None] | None = None,
    test: bool = True,
    stop_at: Mapping[int, float] | None = None,
    stop_examples: int = 0,
    **overrides: Any,
) -> TrainResult:
    """Train a fresh (or given) model of ``task`` with ``loss``; report val/test metrics.

    ``overrides`` change fields of the config (``steps=500, lr=0.1``). The loss's own
    parameters are never updated here. ``test=False`` never reads the test split
    (``test_metric`` is then NaN): searches and tuning runs select on validation only.

    ``stop_at`` (early stopping of search candidates): ``{step: threshold}``; after each of
    these steps the validation metric is measured (in eval mode, without touching the
    training stream, so the run is otherwise unchanged) and recorded in
    ``TrainResult.checkpoints``; a run whose metric exceeds the threshold stops there
    (``stopped_at``; ``val_metric`` is that partial metric, not measured again). Non-finite
    weights at a checkpoint end the run as diverged. ``stop_examples`` > 0 measures the
    checkpoints on that many validation examples (:func:`checkpoint_split`), so that a
    checkpoint costs a fraction of a full validation pass.
    """
    config = (config or task.defaults).with_(**overrides)
    model = model if model is not None else task.make_model(seed)
    model.train()
    if isinstance(loss, nn.Module):
        loss = loss.to(task.device)
        frozen = [p for p in loss.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
    else:
        frozen = []
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    opt = make_functional_optimizer(config)
    opt_state = opt.init(params)
    batcher = Batcher(len(task.train), config.batch_size, seed, task.device)
    aug_gen = torch.Generator(device=task.device).manual_seed(seed + 1)
    augment = config.augment and task.augment is not None
    history: list[dict[str, float]] = []
    running = torch.zeros((), device=task.device)
    since = 0
    diverged = False
    stop_at = dict(stop_at or {})
    stop_split = checkpoint_split(task.val, stop_examples) if stop_at else task.val
    checkpoints: dict[int, float] = {}
    stopped_at: int | None = None
    start = time.perf_counter()
    try:
        with progress_bar(config.steps, f"train {task.name}", enabled=progress) as advance:
            for step in range(1, config.steps + 1):
                idx = batcher.next()
                x, y = task.train.x[idx], task.train.y[idx]
                if augment:
                    x = task.augment_batch(x, aug_gen)
                value = loss(model(x), y)
                grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
                if config.milestones:
                    opt_state["lr_scale"] = mf.milestone_scale(
                        step, config.milestones, config.gamma
                    )
                with torch.no_grad():
                    new, opt_state = opt.update(params, dict(zip(params, grads)), opt_state)
                    for k, p in params.items():
                        if new[k] is not p:
                            p.copy_(new[k])
                running = running + value.detach()
                since += 1
                advance(1)
                if config.eval_every and (step % config.eval_every == 0 or step == config.steps):
                    mean_loss = float(running) / since
                    running.zero_()
                    since = 0
                    if not math.isfinite(mean_loss):
                        diverged = True
                        break
                    val = evaluate_model(task, model, task.val, config.eval_batch_size)
                    history.append({"step": step, "train_loss": mean_loss, "val_metric": val})
                    if on_eval is not None:
                        on_eval(step, model)
                if step in stop_at:
                    if not all(torch.isfinite(p).all() for p in params.values()):
                        diverged = True
                        break
                    val = evaluate_model(task, model, stop_split, config.eval_batch_size)
                    checkpoints[step] = val
                    if val > stop_at[step]:
                        stopped_at = step
                        break
    finally:
        for p in frozen:
            p.requires_grad_(True)
    seconds = time.perf_counter() - start
    finite = all(torch.isfinite(p).all() for p in model.parameters())
    diverged = diverged or not finite
    if diverged:
        val = worst_metric(task)
        test = worst_metric(task) if test else math.nan
    else:  # a stopped run's metric is the one measured at its stop
        val = (
            checkpoints[stopped_at]
            if stopped_at is not None
            else evaluate_model(task, model, task.val, config.eval_batch_size)
        )
        test = evaluate_model(task, model, task.test, config.eval_batch_size) if test else math.nan
    return TrainResult(
        model=model,
        val_metric=val,
        test_metric=test,
        metric=task.metric_name,
        steps=config.steps,
        seconds=seconds,
        diverged=diverged,
        history=history,
        collapsed=not diverged and is_collapsed(task, val),
        checkpoints=checkpoints,
        stopped_at=stopped_at,
    )

"""A task: data splits on a device, a seeded model factory, the metric and the task type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.handcrafted import task_loss_for
from metaloss.threads import apply_auto

if TYPE_CHECKING:
    from metaloss.tasks.variants import Variant


@dataclass
class Split:
    """Inputs and targets of one partition, as tensors (on the task's device)."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: str | torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class TrainConfig:
    """How a base model is trained (the meta-test protocol of a task).

    Defaults follow the loss-learning papers: SGD, lr 0.01, batch 128.
    """

    steps: int = 1000
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    eval_every: int = 0
    eval_batch_size: int = 2000
    augment: bool = True

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        checks = {
            "steps": self.steps >= 0,
            "batch_size": self.batch_size > 0,
            "optimizer": self.optimizer in ("sgd", "adam"),
            "lr": self.lr > 0,
            "momentum": self.momentum >= 0,
            "nesterov": not (self.nesterov and self.momentum <= 0),
            "weight_decay": self.weight_decay >= 0,
            "gamma": self.gamma > 0,
            "eval_every": self.eval_every >= 0,
            "eval_batch_size": self.eval_batch_size > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"train config: invalid {name}={getattr(self, name)!r}")

    def with_(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["milestones"] = list(self.milestones)
        return d


@dataclass
class Task:
    """Everything needed to train and evaluate a base model on one problem."""

    name: str
    kind: str  # "classification" or "regression"
    train: Split
    val: Split
    test: Split
    in_shape: tuple[int, ...]
    num_outputs: int
    model_factory: Callable[[], nn.Module]
    source: str = ""
    model_name: str = ""
    defaults: TrainConfig = field(default_factory=TrainConfig)
    augment: str | None = None  # "crop_flip" for CIFAR-style augmentation
    target_scale: float = 1.0  # std of the raw regression target (MSE is reported standardised)
    variant: Variant | None = None  # label noise / imbalance / fraction (tasks.variants)
    data_files: tuple[str, ...] = ()  # the file or folder the data was read from, if any

    def __repr__(self) -> str:
        """One line: name, kind, classes/targets, split sizes, model (no tensors).

        Example:
            >>> import metaloss as ml
            >>> ml.tasks.get("iris-linear")  # doctest: +ELLIPSIS
            Task('iris-linear', classification, 3 classes, train 108 / val 12 / test 30, ...)
        """
        outs = f"{self.num_outputs} {'classes' if self.classification else 'targets'}"
        if not self.classification and self.num_outputs == 1:
            outs = "1 target"
        dev = "" if self.device.type == "cpu" else f", {self.device}"
        return (
            f"Task({self.name!r}, {self.kind}, {outs}, train {len(self.train)} / val "
            f"{len(self.val)} / test {len(self.test)}, model {self.model_name or '?'}{dev})"
        )

    @property
    def classification(self) -> bool:
        return self.kind == "classification"

    @property
    def device(self) -> torch.device:
        return self.train.x.device

    @property
    def metric_name(self) -> str:
        return "error" if self.classification else "mse"

    def to(self, device: str | torch.device) -> Task:
        """The same task with its data moved to ``device``."""
        return replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    def make_model(self, seed: int = 0) -> nn.Module:
        """A freshly initialised base model, deterministic for ``seed``, on the task's device."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.model_factory()
        apply_auto(model)  # one torch thread for small models (metaloss.threads)
        return model.to(self.device)

    def task_loss(self) -> nn.Module:
        """The hand-made loss of the task: cross-entropy or MSE."""
        return task_loss_for(self.classification)

    def metric(self, y_pred: Tensor, y_true: Tensor) -> Tensor:
        """Error rate (classification) or mean squared error (regression), as a 0-d tensor."""
        if self.classification:
            return (y_pred.argmax(-1) != y_true).float().mean()
        return F.mse_loss(y_pred.reshape(y_true.shape), y_true)

    def augment_batch(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Apply the task's training augmentation to a batch (no-op when it has none)."""
        if self.augment == "crop_flip":
            return random_crop_flip(x, pad=4, generator=generator)
        return x

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "model": self.model_name,
            "in_shape": list(self.in_shape),
            "num_outputs": self.num_outputs,
            "train": len(self.train),
            "val": len(self.val),
            "test": len(self.test),
            "source": self.source,
            "variant": self.variant.to_dict() if self.variant is not None else None,
        }


def random_crop_flip(x: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip, on ``x``'s device."""
    if x.dim() != 4:
        raise ConfigError(f"crop/flip augmentation needs (B, C, H, W) images, got {tuple(x.shape)}")
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=dev)
    rows = (off[0][:, None] + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (off[1][:, None] + torch.arange(w, device=dev)).view(b, 1, 1, w)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    cols = torch.where(flip.view(b, 1, 1, 1), cols.flip(-1), cols)
    idx = torch.arange(b, device=dev).view(b, 1, 1, 1)
    ch = torch.arange(x.shape[1], device=dev).view(1, -1, 1, 1)
    return padded[idx, ch, rows, cols]

"""Task variants: label noise, long-tailed class imbalance, a fraction of the training set.

A :class:`Variant` turns any task built from data into a harder setting where the shape
of a loss matters. It is applied after the validation split is carved, in this order:

1. ``train_fraction``: keep a stratified fraction of the training split (exact size
   ``round(fraction * N)``; any task, also regression);
2. ``imbalance`` ``r``: a long-tailed training split (Cao et al. 2019): class ``k`` keeps
   ``round(n_max * r ** (-k / (K - 1)))`` samples, ``n_max`` being the smallest class count
   available, so ``n_0 / n_{K-1} = r`` up to rounding;
3. ``label_noise`` at rate ``rho`` on the training *and* validation labels (the test set
   stays clean): ``symmetric`` flips a label with probability ``rho`` to a uniformly drawn
   *other* class; ``pairflip`` flips class ``c`` to ``(c + 1) mod K`` with probability ``rho``.

The validation split keeps its size and class balance (only its labels get noisy), like
the balanced test set. Every draw is deterministic for ``seed`` and independent of the
training seed, so every run of a setting sees the same corrupted data. The task's name
records the variant (``digits-mlp+noise0.2sym+imb100``), and :func:`metaloss.tasks.get`
parses such names, so a variant is usable wherever a task name is.

Example:
    >>> from metaloss import tasks
    >>> task = tasks.get("iris-linear", label_noise=0.2, noise_kind="pairflip")
    >>> task.name, task.variant.label_noise
    ('iris-linear+noise0.2pair', 0.2)
    >>> tasks.get("iris-linear+noise0.2pair").summary()["variant"]["noise_kind"]
    'pairflip'
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from metaloss.errors import ConfigError
from metaloss.tasks.base import Split, Task
from metaloss.tasks.data.splits import stratified_split

NOISE_KINDS = ("symmetric", "pairflip")
_NOISE_ALIASES = {"sym": "symmetric", "pair": "pairflip", "pair_flip": "pairflip"}
_NOISE_TAGS = {"symmetric": "sym", "pairflip": "pair"}
_NUMBER = r"(\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
_PARTS = {
    "noise": re.compile(rf"noise{_NUMBER}(sym|pair)"),
    "imb": re.compile(rf"imb{_NUMBER}"),
    "frac": re.compile(rf"frac{_NUMBER}"),
    "vseed": re.compile(r"vseed(\d+)"),
}
# Independent random streams of one variant seed.
_IMBALANCE_STREAM, _TRAIN_NOISE_STREAM, _VAL_NOISE_STREAM = 1, 2, 3


def _num(x: float) -> str:
    """A float as it round-trips through a task name: 0.2 -> '0.2', 100.0 -> '100'."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Variant:
    """How a task's training data is corrupted or reduced (the identity by default).

    Attributes:
        label_noise: probability that a training / validation label is flipped, in [0, 1).
        noise_kind: ``"symmetric"`` (to a uniform other class) or ``"pairflip"`` (c -> c+1).
        imbalance: ratio ``r >= 1`` of the largest to the smallest class (1: untouched).
        train_fraction: fraction of the training split kept, in (0, 1].
        seed: seed of every draw (noise, imbalance subset, fraction subset).

    Example:
        >>> v = Variant(label_noise=0.4, imbalance=100)
        >>> v.suffix()
        '+noise0.4sym+imb100'
        >>> Variant.parse(v.suffix()) == v
        True
    """

    label_noise: float = 0.0
    noise_kind: str = "symmetric"
    imbalance: float = 1.0
    train_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        kind = str(self.noise_kind).lower().replace("-", "_")
        kind = _NOISE_ALIASES.get(kind, kind)
        if kind not in NOISE_KINDS:
            raise ConfigError(
                f"noise_kind must be one of {', '.join(NOISE_KINDS)}, got {self.noise_kind!r}"
            )
        object.__setattr__(self, "noise_kind", kind)
        for name in ("label_noise", "imbalance", "train_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0 <= self.label_noise < 1:
            raise ConfigError(f"label_noise must be in [0, 1), got {self.label_noise}")
        if not (math.isfinite(self.imbalance) and self.imbalance >= 1):
            raise ConfigError(f"imbalance must be a finite ratio >= 1, got {self.imbalance}")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"train_fraction must be in (0, 1], got {self.train_fraction}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"variant seed must be an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        if self.seed < 0:
            raise ConfigError(f"variant seed must be an integer >= 0, got {self.seed!r}")

    @property
    def active(self) -> bool:
        """Whether the variant changes anything."""
        return self.label_noise > 0 or self.imbalance > 1 or self.train_fraction < 1

    def with_(self, **changes: Any) -> Variant:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def suffix(self) -> str:
        """The part appended to a task name, e.g. ``+noise0.2sym+imb100+frac0.1``."""
        parts = []
        if self.label_noise > 0:
            parts.append(f"noise{_num(self.label_noise)}{_NOISE_TAGS[self.noise_kind]}")
        if self.imbalance > 1:
            parts.append(f"imb{_num(self.imbalance)}")
        if self.train_fraction < 1:
            parts.append(f"frac{_num(self.train_fraction)}")
        if parts and self.seed:
            parts.append(f"vseed{self.seed}")
        return "".join(f"+{p}" for p in parts)

    @classmethod
    def parse(cls, suffix: str) -> Variant:
        """The variant of a name suffix such as ``+noise0.2pair+frac0.5`` (``""``: identity)."""
        values: dict[str, Any] = {}
        for part in [p for p in suffix.split("+") if p]:
            for key, pattern in _PARTS.items():
                match = pattern.fullmatch(part)
                if match is None:
                    continue
                if key in values:
                    raise ConfigError(f"task variant {suffix!r}: {key} given twice")
                values[key] = match.groups()
                break
            else:
                raise ConfigError(
                    f"task variant {part!r} in {suffix!r} not understood; variants look like "
                    "+noise0.2sym, +noise0.2pair, +imb100, +frac0.1, +vseed1"
                )
        kw: dict[str, Any] = {}
        if "noise" in values:
            kw["label_noise"] = float(values["noise"][0])
            kw["noise_kind"] = values["noise"][1]
        if "imb" in values:
            kw["imbalance"] = float(values["imb"][0])
        if "frac" in values:
            kw["train_fraction"] = float(values["frac"][0])
        if "vseed" in values:
            kw["seed"] = int(values["vseed"][0])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The variant's fields, JSON-serialisable."""
        return asdict(self)

    def apply(self, task: Task) -> Task:
        """``task`` with this variant applied (the same task when the variant is inactive)."""
        if not self.active:
            return task
        if task.variant is not None:
            raise ConfigError(
                f"task {task.name!r} already has a variant; build it from the base task"
            )
        if not task.classification and (self.label_noise > 0 or self.imbalance > 1):
            raise ConfigError(
                f"task {task.name!r} is a regression task: label noise and imbalance need classes"
            )
        k = task.num_outputs
        train, val = task.train, task.val
        if self.train_fraction < 1:
            y = train.y.cpu().numpy()
            train = _subset(train, fraction_indices(y, self.train_fraction, self.seed))
        if self.imbalance > 1:
            rng = np.random.default_rng([self.seed, _IMBALANCE_STREAM])
            keep = long_tail_indices(train.y.cpu().numpy(), k, self.imbalance, rng, task.name)
            train = _subset(train, keep)
        if self.label_noise > 0:
            train = self._noisy(train, k, _TRAIN_NOISE_STREAM)
            val = self._noisy(val, k, _VAL_NOISE_STREAM)
        return replace(task, name=task.name + self.suffix(), train=train, val=val, variant=self)

    def _noisy(self, split: Split, num_classes: int, stream: int) -> Split:
        """``split`` with its labels flipped by this variant's noise (its own random stream)."""
        flip = symmetric_noise if self.noise_kind == "symmetric" else pairflip_noise
        rng = np.random.default_rng([self.seed, stream])
        y = flip(split.y.cpu().numpy(), self.label_noise, num_classes, rng)
        return Split(split.x, torch.as_tensor(y, dtype=split.y.dtype, device=split.y.device))


def split_name(name: str) -> tuple[str, Variant]:
    """A task name split into the registered name and its variant.

    Example:
        >>> split_name("digits-mlp+imb10+vseed2")
        ('digits-mlp', Variant(label_noise=0.0, noise_kind='symmetric', imbalance=10.0, train_fraction=1.0, seed=2))
    """  # noqa: E501
    base, _, suffix = name.partition("+")
    return base, Variant.parse(suffix)


def symmetric_noise(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip each label with probability ``rate`` to a uniformly drawn *other* class.

    Example:
        >>> y = np.zeros(10_000, dtype=np.int64)
        >>> noisy = symmetric_noise(y, 0.3, 4, np.random.default_rng(0))
        >>> round(float((noisy != y).mean()), 2), sorted(set(noisy.tolist()))
        (0.3, [0, 1, 2, 3])
    """
    y = np.asarray(y, dtype=np.int64)
    flip = rng.random(len(y)) < rate
    offset = rng.integers(1, num_classes, size=len(y))  # 1..K-1: never the same class
    return np.where(flip, (y + offset) % num_classes, y)


def pairflip_noise(
    y: np.ndarray, rate: float, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Flip each label ``c`` with probability ``rate`` to ``(c + 1) mod num_classes``.

    Example:
        >>> pairflip_noise(np.array([0, 1, 2]), 0.999999, 3, np.random.default_rng(0)).tolist()
        [1, 2, 0]
    """
    y = np.asarray(y, dtype=np.int64)
    flip = rng.random(len(y)) < rate
    return np.where(flip, (y + 1) % num_classes, y)


def long_tail_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Samples kept per class under an exponential profile: ``round(n_max * r^(-k/(K-1)))``.

    Example:
        >>> long_tail_counts(500, 3, 100.0)
        [500, 50, 5]
    """
    if num_classes < 2:
        return [n_max] * num_classes
    return [round(n_max * ratio ** (-k / (num_classes - 1))) for k in range(num_classes)]


def long_tail_indices(
    y: np.ndarray, num_classes: int, ratio: float, rng: np.random.Generator, name: str = "task"
) -> np.ndarray:
    """Sorted indices of a long-tailed subset of labels ``y`` (class 0 the head, K-1 the tail).

    ``n_max`` is the smallest class count, so every class can supply its quota exactly.
    """
    y = np.asarray(y)
    counts = np.bincount(y, minlength=num_classes)
    n_max = int(counts.min())
    quotas = long_tail_counts(n_max, num_classes, ratio)
    if quotas[-1] < 1:
        raise ConfigError(
            f"imbalance {_num(ratio)} leaves {name!r} no training sample of class "
            f"{num_classes - 1} (the smallest class has {n_max}); use a smaller ratio"
        )
    keep = [rng.choice(np.flatnonzero(y == k), size=q, replace=False) for k, q in enumerate(quotas)]
    return np.sort(np.concatenate(keep))


def fraction_indices(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified subset of exactly ``round(fraction * len(y))`` samples."""
    if fraction >= 1:
        return np.arange(len(y))
    _, kept = stratified_split(np.asarray(y), fraction, seed)
    if len(kept) == 0:
        raise ConfigError(f"train_fraction {fraction} keeps no sample of {len(y)}")
    return kept


def _subset(split: Split, idx: np.ndarray) -> Split:
    index = torch.as_tensor(idx, dtype=torch.long, device=split.x.device)
    return Split(split.x[index], split.y[index])


__all__ = [
    "NOISE_KINDS",
    "Variant",
    "fraction_indices",
    "long_tail_counts",
    "long_tail_indices",
    "pairflip_noise",
    "split_name",
    "symmetric_noise",
]

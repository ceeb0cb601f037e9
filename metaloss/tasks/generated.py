"""Generated classification tasks with a known ground-truth classifier (MLN's meta-training data).

``make_linear_task`` draws inputs ``x ~ N(0, I_d)`` and labels them with a random linear
classifier ``y = argmax(W* x + b*)``; ``make_nonlinear_task`` labels them with a random
one-hidden-layer tanh MLP. Both return a :class:`GeneratedTask`: a metaloss
:class:`~metaloss.tasks.base.Task` (train / val / test splits, a seeded model factory) plus
the ground truth, so that a learned classifier can be compared with the true one directly
(MLN's meta-objective) instead of through validation accuracy only.

Conventions:

* The rows of ``W*`` are random unit vectors (uniform directions), so every true logit
  ``w*_c . x`` is standard normal whatever the dimension and no class is favoured by a longer
  row; ``b*`` has i.i.d. ``N(0, bias_scale^2)`` entries (``bias_scale`` 0.25 by default).
  ``margin`` is measured in those logit units: points whose top-2 true-logit gap is below it
  are dropped and redrawn (in every split), which leaves a gap of at least ``margin``
  between the classes.
* ``label_noise`` flips exactly ``round(label_noise * n_train)`` training labels, each to a
  uniformly drawn *other* class; validation and test labels stay clean.
* Everything is drawn from ``numpy.random.default_rng(seed)``: a seed gives the same task.
* Inputs are not standardised (they are already standard normal).

Example:
    >>> from metaloss.tasks.generated import make_linear_task
    >>> g = make_linear_task(dim=5, classes=3, n_train=200, n_val=50, n_test=50, seed=0)
    >>> g.task.kind, tuple(g.w.shape), g.accuracy(g.task.train)
    ('classification', (3, 5), 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.tasks.base import Split, Task, TrainConfig
from metaloss.tasks.models import build_model

__all__ = [
    "LINEAR_DEFAULTS",
    "NONLINEAR_DEFAULTS",
    "GeneratedTask",
    "cosine_distance",
    "make_linear_task",
    "make_nonlinear_task",
]

#: Training protocol of generated linear tasks (logistic regression on standard-normal inputs).
LINEAR_DEFAULTS = TrainConfig(steps=300, lr=0.1, batch_size=64)
#: Training protocol of generated nonlinear tasks (an MLP student).
NONLINEAR_DEFAULTS = TrainConfig(steps=1000, lr=0.1, batch_size=64)


@dataclass
class GeneratedTask:
    """A generated task and its ground truth.

    Attributes:
        task: the metaloss task (kind ``classification``); train labels may be noisy.
        w: ground-truth weights ``W*`` of shape ``(classes, dim)`` (``None`` if nonlinear).
        b: ground-truth biases ``b*`` of shape ``(classes,)`` (``None`` if nonlinear).
        teacher: the labelling network: ``nn.Linear`` holding ``W*, b*`` or the tanh MLP.
        clean_train_y: the training labels before label noise.
        noisy: boolean mask of the training labels that were flipped.
        margin, label_noise, seed: the generation settings.
    """

    task: Task
    w: Tensor | None
    b: Tensor | None
    teacher: nn.Module
    clean_train_y: Tensor
    noisy: Tensor
    margin: float
    label_noise: float
    seed: int

    @property
    def linear(self) -> bool:
        """True for a task labelled by a linear classifier."""
        return self.w is not None

    @torch.no_grad()
    def true_logits(self, x: Tensor) -> Tensor:
        """Logits of the ground-truth classifier for inputs ``x`` (shape ``(N, dim)``)."""
        teacher = self.teacher.to(x.device)
        return teacher(x.to(torch.float32))

    def true_labels(self, x: Tensor) -> Tensor:
        """Labels the ground truth assigns to ``x``."""
        return self.true_logits(x).argmax(-1)

    def accuracy(self, split: Split) -> float:
        """Accuracy of the ground-truth classifier on ``split`` (1.0 unless labels are noisy)."""
        return float((self.true_labels(split.x) == split.y).float().mean())

    def to(self, device: str | torch.device) -> GeneratedTask:
        """The same generated task with its data on ``device``."""
        return GeneratedTask(
            self.task.to(device),
            self.w,
            self.b,
            self.teacher,
            self.clean_train_y,
            self.noisy,
            self.margin,
            self.label_noise,
            self.seed,
        )


def cosine_distance(w: Tensor, w_star: Tensor, centre: bool = True, eps: float = 1e-12) -> Tensor:
    """``1 - cos(w_c, w*_c)`` averaged over the classes (rows) of two weight matrices.

    With ``centre`` both matrices are first centred over classes: softmax is invariant to
    adding the same vector to every class row, so only the centred rows are identifiable.
    A zero row counts as cosine 0 (distance 1). Lies in ``[0, 2]``.

    Example:
        >>> import torch
        >>> w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> round(float(cosine_distance(3 * w + 5, w)), 6), round(float(cosine_distance(-w, w)), 6)
        (0.0, 2.0)
    """
    if w.shape != w_star.shape:
        raise ConfigError(f"cosine distance: shapes differ, {tuple(w.shape)} vs {w_star.shape}")
    a = w.reshape(w.shape[0], -1).double()
    b = w_star.reshape(w_star.shape[0], -1).to(a)
    if centre:
        a, b = a - a.mean(0, keepdim=True), b - b.mean(0, keepdim=True)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)
    return (1 - cos).mean()


# --------------------------------------------------------------------------------------
# generation


def _check(
    dim: int, classes: int, n_train: int, n_val: int, n_test: int, margin: float, noise: float
) -> None:
    for name, value, least in (
        ("dim", dim, 1),
        ("classes", classes, 2),
        ("n_train", n_train, 1),
        ("n_val", n_val, 1),
        ("n_test", n_test, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ConfigError(
                f"generated task: {name} must be an integer >= {least}, got {value!r}"
            )
    if not margin >= 0:
        raise ConfigError(f"generated task: margin must be >= 0, got {margin!r}")
    if not 0 <= noise <= 1:
        raise ConfigError(f"generated task: label_noise must be in [0, 1], got {noise!r}")


def _draw(
    rng: np.random.Generator,
    n: int,
    dim: int,
    logits_fn: Callable[[np.ndarray], np.ndarray],
    margin: float,
    max_tries: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal inputs whose top-2 true-logit gap is >= ``margin``, and labels."""
    xs: list[np.ndarray] = []
    have = 0
    for _ in range(max_tries):
        x = rng.standard_normal((max(2 * (n - have), 64), dim)).astype(np.float32)
        if margin > 0:
            top2 = np.sort(logits_fn(x), axis=1)[:, -2:]
            x = x[top2[:, 1] - top2[:, 0] >= margin]
        xs.append(x[: n - have])
        have += len(xs[-1])
        if have >= n:
            break
    else:
        raise ConfigError(
            f"generated task: could not draw {n} points with margin {margin} "
            f"(only {have} after {max_tries} rounds); use a smaller margin"
        )
    x = np.concatenate(xs)
    return x, logits_fn(x).argmax(1)


def _flip(rng: np.random.Generator, y: np.ndarray, classes: int, fraction: float) -> np.ndarray:
    """Mask of exactly ``round(fraction * n)`` labels flipped (in place) to another class."""
    noisy = np.zeros(len(y), dtype=bool)
    k = int(round(fraction * len(y)))
    if k:
        idx = rng.choice(len(y), size=k, replace=False)
        shift = rng.integers(1, classes, size=k)  # never 0 -> always a different class
        y[idx] = (y[idx] + shift) % classes
        noisy[idx] = True
    return noisy


def _build(
    name: str,
    rng: np.random.Generator,
    teacher: nn.Module,
    w: Tensor | None,
    b: Tensor | None,
    dim: int,
    classes: int,
    sizes: tuple[int, int, int],
    margin: float,
    label_noise: float,
    seed: int,
    model: str,
    model_kwargs: dict[str, Any],
    defaults: TrainConfig,
    source: str,
) -> GeneratedTask:
    def logits_fn(x: np.ndarray) -> np.ndarray:
        # Labels come from the torch teacher, so that they always agree with true_logits.
        with torch.no_grad():
            return teacher(torch.as_tensor(x)).numpy()

    splits = [_draw(rng, n, dim, logits_fn, margin) for n in sizes]
    clean = splits[0][1].copy()
    y_train = splits[0][1].copy()
    noisy = _flip(rng, y_train, classes, label_noise)

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.as_tensor(x), torch.as_tensor(y.astype(np.int64)))

    def factory() -> nn.Module:
        return build_model(model, (dim,), classes, **model_kwargs)

    task = Task(
        name=name,
        kind="classification",
        train=split(splits[0][0], y_train),
        val=split(*splits[1]),
        test=split(*splits[2]),
        in_shape=(dim,),
        num_outputs=classes,
        model_factory=factory,
        source=source,
        model_name=model,
        defaults=defaults,
    )
    return GeneratedTask(
        task=task,
        w=w,
        b=b,
        teacher=teacher,
        clean_train_y=torch.as_tensor(clean.astype(np.int64)),
        noisy=torch.as_tensor(noisy),
        margin=float(margin),
        label_noise=float(label_noise),
        seed=int(seed),
    )


def make_linear_task(
    dim: int = 10,
    classes: int = 5,
    n_train: int = 500,
    n_val: int = 200,
    n_test: int = 1000,
    margin: float = 0.0,
    label_noise: float = 0.0,
    seed: int = 0,
    bias_scale: float = 0.25,
    defaults: TrainConfig | None = None,
) -> GeneratedTask:
    """A classification task labelled by a random linear classifier ``argmax(W* x + b*)``.

    The model of the task is logistic regression (``build_model("linear", (dim,), classes)``).

    Example:
        >>> g = make_linear_task(dim=4, classes=2, n_train=100, n_val=20, n_test=20,
        ...                      margin=0.5, label_noise=0.1, seed=1)
        >>> int(g.noisy.sum()), g.task.model_name
        (10, 'linear')
    """
    _check(dim, classes, n_train, n_val, n_test, margin, label_noise)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((classes, dim))
    w = (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)
    b = (rng.standard_normal(classes) * bias_scale).astype(np.float32)
    teacher = nn.Linear(dim, classes)
    with torch.no_grad():
        teacher.weight.copy_(torch.as_tensor(w))
        teacher.bias.copy_(torch.as_tensor(b))
    teacher.requires_grad_(False)

    return _build(
        f"linear-d{dim}-c{classes}-s{seed}",
        rng,
        teacher,
        torch.as_tensor(w),
        torch.as_tensor(b),
        dim,
        classes,
        (n_train, n_val, n_test),
        margin,
        label_noise,
        seed,
        "linear",
        {},
        defaults or LINEAR_DEFAULTS,
        f"generated: x ~ N(0, I_{dim}), y = argmax(W* x + b*), margin {margin}, "
        f"label noise {label_noise}, seed {seed}",
    )


def make_nonlinear_task(
    dim: int = 10,
    classes: int = 5,
    n_train: int = 1000,
    n_val: int = 200,
    n_test: int = 1000,
    margin: float = 0.0,
    label_noise: float = 0.0,
    seed: int = 0,
    teacher_hidden: int = 16,
    teacher_scale: float = 2.0,
    student_hidden: tuple[int, ...] = (64,),
    defaults: TrainConfig | None = None,
) -> GeneratedTask:
    """A classification task labelled by a random tanh MLP ``argmax(V tanh(U x + c) + b)``.

    ``U`` has ``N(0, teacher_scale^2 / d)`` entries (a larger scale saturates the tanh
    units: a less linear boundary); ``c`` is ``N(0, 1)``; ``V`` is ``N(0, 1/h)``; the output
    bias ``b`` centres the class logits on a reference sample so that no class is empty.
    The model of the task is an MLP with ``student_hidden`` ReLU layers.

    Example:
        >>> g = make_nonlinear_task(dim=4, classes=3, n_train=100, n_val=20, n_test=20, seed=0)
        >>> g.w is None, g.task.model_name, g.accuracy(g.task.test)
        (True, 'mlp', 1.0)
    """
    _check(dim, classes, n_train, n_val, n_test, margin, label_noise)
    if teacher_hidden < 1 or teacher_scale <= 0:
        raise ConfigError("nonlinear task: teacher_hidden must be >= 1 and teacher_scale > 0")
    rng = np.random.default_rng(seed)
    u = (rng.standard_normal((teacher_hidden, dim)) * teacher_scale / np.sqrt(dim)).astype(
        np.float32
    )
    c = rng.standard_normal(teacher_hidden).astype(np.float32)
    v = (rng.standard_normal((classes, teacher_hidden)) / np.sqrt(teacher_hidden)).astype(
        np.float32
    )
    ref = rng.standard_normal((4096, dim)).astype(np.float32)
    b = -(np.tanh(ref @ u.T + c) @ v.T).mean(0).astype(np.float32)
    teacher = nn.Sequential(
        nn.Linear(dim, teacher_hidden), nn.Tanh(), nn.Linear(teacher_hidden, classes)
    )
    with torch.no_grad():
        teacher[0].weight.copy_(torch.as_tensor(u))
        teacher[0].bias.copy_(torch.as_tensor(c))
        teacher[2].weight.copy_(torch.as_tensor(v))
        teacher[2].bias.copy_(torch.as_tensor(b))
    teacher.requires_grad_(False)

    return _build(
        f"nonlinear-d{dim}-c{classes}-s{seed}",
        rng,
        teacher,
        None,
        None,
        dim,
        classes,
        (n_train, n_val, n_test),
        margin,
        label_noise,
        seed,
        "mlp",
        {"hidden": tuple(int(h) for h in student_hidden)},
        defaults or NONLINEAR_DEFAULTS,
        f"generated: x ~ N(0, I_{dim}), y = argmax(tanh-MLP_{teacher_hidden}(x)), "
        f"margin {margin}, label noise {label_noise}, seed {seed}",
    )

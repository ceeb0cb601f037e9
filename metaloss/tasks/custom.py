"""Your own data and model as a :class:`~metaloss.tasks.Task`, in one call.

:func:`from_arrays` (numpy arrays or tensors), :func:`from_file` (``.csv`` / ``.npz``) and
:func:`from_folder` (``train/<class>/*.png`` and ``test/<class>/...``) split, standardise and
stratify exactly as the registered tasks do (:func:`metaloss.tasks.build_task`), and print one
line saying what was inferred. ``model`` is a model-zoo name (``"mlp"``, ``"lenet5"``, ...) or a
callable returning an ``nn.Module``: with no arguments, or with ``(in_shape, num_outputs)``.

Example:
    >>> import numpy as np, torch
    >>> import metaloss as ml
    >>> X = np.random.default_rng(0).normal(size=(200, 5)).astype("float32")
    >>> y = (X[:, 0] > 0).astype(int)
    >>> task = ml.tasks.from_arrays(X, y, model=lambda: torch.nn.Linear(5, 2), verbose=False)
    >>> task
    Task('arrays', classification, 2 classes, train 144 / val 16 / test 40, model Linear)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metaloss.errors import ConfigError, DataError
from metaloss.tasks import data as ds
from metaloss.tasks.base import Task, TrainConfig
from metaloss.tasks.data.arrays import _finite_inputs
from metaloss.tasks.models import MODELS
from metaloss.tasks.registry import TaskSpec, build_task

ModelArg = str | Callable[..., nn.Module]
KINDS = ("classification", "regression")


def _as_numpy(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as e:
        raise DataError(f"from_arrays: {name} is not array-like ({e})") from None


def _infer_kind(y: np.ndarray) -> str:
    """Integer, bool or string 1-D labels are classes; anything else is a regression target."""
    return "classification" if y.ndim == 1 and y.dtype.kind in "biuUSO" else "regression"


def _labels(y: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Class values -> labels ``0..K-1`` (sorted values) and their names."""
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataError("from_arrays: kind='classification' needs integer-valued labels in y")
        y = y.astype(np.int64)
    if y.dtype.kind == "O":
        y = y.astype(str)
    values, labels = np.unique(y, return_inverse=True)
    if len(values) < 2:
        raise DataError(f"from_arrays: y has a single class ({values[0]!r}); need at least 2")
    return labels.astype(np.int64).reshape(-1), [str(v) for v in values]


def _model_factory(
    model: Callable[..., nn.Module], in_shape: tuple[int, ...], out: int
) -> Callable[[], nn.Module]:
    """A no-argument factory from a callable taking no arguments or ``(in_shape, num_outputs)``."""
    if not callable(model):
        raise ConfigError(f"model: expected a model-zoo name or a callable, got {model!r}")
    try:
        required = [
            p
            for p in inspect.signature(model).parameters.values()
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):  # builtins without a signature
        required = []
    if len(required) == 0:
        return model
    if len(required) == 2:
        return lambda: model(in_shape, out)
    raise ConfigError(
        "model: a callable must take no arguments or (in_shape, num_outputs); "
        f"{getattr(model, '__name__', model)!r} takes {len(required)}"
    )


def _check_model(task: Task) -> nn.Module:
    """Build the model once and check it maps a batch to ``(batch, num_outputs)``."""
    net = task.make_model(0)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"model: the factory returned {type(net).__name__}, not an nn.Module")
    x = task.train.x[:2]
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as e:  # noqa: BLE001 - report any shape error of the user's model
        raise ConfigError(
            f"model: fails on a batch of inputs shaped {tuple(x.shape)} ({type(e).__name__}: {e})"
        ) from None
    want = (len(x), task.num_outputs)
    ok = tuple(out.shape) == want or (
        not task.classification and task.num_outputs == 1 and tuple(out.shape) == want[:1]
    )
    if not ok:
        raise ConfigError(
            f"model: outputs shaped {tuple(out.shape)} for a batch of {len(x)}, expected {want} "
            f"({task.num_outputs} {'classes' if task.classification else 'targets'})"
        )
    return net


def _finish(
    data: ds.ArrayData,
    model: ModelArg,
    name: str,
    seed: int,
    val_fraction: float,
    device: str | torch.device,
    defaults: TrainConfig | None,
    model_kwargs: dict[str, Any] | None,
    inferred: str,
    verbose: bool,
) -> Task:
    zoo = isinstance(model, str)
    if zoo and model not in MODELS:
        raise ConfigError(f"model: unknown model-zoo name {model!r}; known: {', '.join(MODELS)}")
    if model_kwargs and not zoo:
        raise ConfigError("model_kwargs: only for a model-zoo name, not a callable model")
    if not zoo and not callable(model):
        raise ConfigError(f"model: expected a model-zoo name or a callable, got {model!r}")
    if model_kwargs is None and model == "mlp":
        model_kwargs = {"hidden": (100,)}  # as the registry's arrays-mlp
    spec = TaskSpec(
        name=name,
        data="custom",
        model=model if zoo else "custom",
        description=data.source,
        model_kwargs=dict(model_kwargs or {}),
        defaults=defaults or TrainConfig(),
    )
    task = build_task(spec, data, seed=seed, val_fraction=val_fraction, device=device)
    if not zoo:
        factory = _model_factory(model, task.in_shape, task.num_outputs)
        task = replace(task, model_factory=factory)
    net = _check_model(task)
    if not zoo:
        task.model_name = type(net).__name__
    if verbose:
        classes = ""
        if task.classification:
            shown = ", ".join((data.classes or [])[:6])
            more = ", ..." if len(data.classes or []) > 6 else ""
            classes = f", {task.num_outputs} classes [{shown}{more}]"
        else:
            classes = f", {task.num_outputs} target" + ("s" if task.num_outputs > 1 else "")
        print(
            f"{name}: {task.kind}{classes}{inferred}; train {len(task.train)} / val "
            f"{len(task.val)} / test {len(task.test)}; inputs {task.in_shape}; "
            f"model {task.model_name}"
        )
    return task


def from_arrays(
    X: Any,
    y: Any,
    model: ModelArg = "mlp",
    kind: str | None = None,
    name: str = "arrays",
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    defaults: TrainConfig | None = None,
    model_kwargs: dict[str, Any] | None = None,
    verbose: bool = True,
) -> Task:
    """A task from arrays ``X`` (``(N, D)`` features or ``(N, C, H, W)`` images) and ``y``.

    ``kind`` is inferred when ``None``: integer, bool or string 1-D labels give classification
    (classes are the sorted distinct values), float targets regression. A seeded
    ``test_fraction`` test split (stratified for classes) is held out, then ``val_fraction`` of
    the rest becomes the validation split; inputs (and regression targets) are standardised with
    training statistics, as for the registered tasks. Prints one line of what was inferred
    unless ``verbose=False``.

    Example:
        >>> import numpy as np
        >>> X = np.arange(40, dtype="float32").reshape(20, 2); y = np.arange(20) % 2
        >>> t = from_arrays(X, y, model="linear", verbose=False)
        >>> t.kind, t.num_outputs, len(t.train), len(t.val), len(t.test)
        ('classification', 2, 14, 2, 4)
    """
    x_arr, y_arr = _as_numpy(X, "X"), _as_numpy(y, "y")
    if x_arr.ndim < 2:
        raise DataError(f"from_arrays: X must be at least 2-D (examples, ...), got {x_arr.shape}")
    if len(x_arr) != len(y_arr):
        raise DataError(f"from_arrays: X has {len(x_arr)} rows but y has {len(y_arr)}")
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction: must be in (0, 1), got {test_fraction!r}")
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind: expected one of {KINDS} or None, got {kind!r}")
    guessed = kind is None
    kind = kind or _infer_kind(y_arr)
    x_arr = _finite_inputs(Path("from_arrays"), "X", x_arr)
    classes: list[str] | None = None
    if kind == "classification":
        if y_arr.ndim != 1:
            raise DataError(f"from_arrays: class labels y must be 1-D, got shape {y_arr.shape}")
        y_arr, classes = _labels(y_arr)
    else:
        y_arr = _finite_inputs(Path("from_arrays"), "y", y_arr)
    tr, te = ds.stratified_split(y_arr, test_fraction, seed)
    data = ds.ArrayData(
        x_arr[tr], y_arr[tr], x_arr[te], y_arr[te], classes, f"arrays X {x_arr.shape}"
    )
    how = " (inferred from y)" if guessed else ""
    return _finish(
        data, model, name, seed, val_fraction, device, defaults, model_kwargs,
        f"{how}, {int(test_fraction * 100)}% test split", verbose,
    )  # fmt: skip


def from_file(
    path: str | Path,
    model: ModelArg = "mlp",
    name: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    defaults: TrainConfig | None = None,
    model_kwargs: dict[str, Any] | None = None,
    verbose: bool = True,
) -> Task:
    """A task from a ``.csv`` or ``.npz`` file (see :func:`metaloss.tasks.data.load_arrays`
    for the formats; the CSV target is the last column other than ``split``).

    Example:
        >>> task = from_file("my_data.csv", model="mlp")  # doctest: +SKIP
        my_data: classification, 3 classes [0, 1, 2]; label column 'species' ...
    """
    data = replace(ds.load_arrays(path), files=(str(Path(path).resolve()),))
    inferred = "" if data.source.startswith("arrays") else f" ({data.source})"
    return _finish(
        data, model, name or Path(path).stem, seed, val_fraction, device, defaults,
        model_kwargs, inferred, verbose,
    )  # fmt: skip


def from_folder(
    path: str | Path,
    model: ModelArg = "lenet5",
    name: str | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    defaults: TrainConfig | None = None,
    model_kwargs: dict[str, Any] | None = None,
    verbose: bool = True,
) -> Task:
    """A task from an image folder or zip with ``train/<class>/*.png|jpg`` and
    ``test/<class>/...`` (classes are the folder names, sorted; see
    :func:`metaloss.tasks.data.load_image_folder`).

    Example:
        >>> task = from_folder("my_images", model="lenet5")  # doctest: +SKIP
        my_images: classification, 2 classes [cat, dog]; train 900 / val 100 / test 200; ...
    """
    data = replace(ds.load_image_folder(path), files=(str(Path(path).resolve()),))
    return _finish(
        data, model, name or Path(path).stem, seed, val_fraction, device, defaults,
        model_kwargs, "", verbose,
    )  # fmt: skip

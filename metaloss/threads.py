"""How many CPU threads torch uses: a fixed count, or an automatic choice by model size.

The automatic rule (the default): when a task builds a model with at most
:data:`SMALL_MODEL_PARAMS` parameters (every MLP, linear model and LeNet-5 of the registry), torch
uses **one** thread; a larger model (ResNet-18, VGG-16, WRN-16-8, All-CNN-C) uses torch's default
count. Small models spend their time in many tiny kernels whose thread hand-off costs more than
it saves, and a second thread fights with other processes on a busy machine; see
``docs/benchmarks.md`` ("Threads (issue 18)") for the measurement.

The rule leaves torch alone when the user chose a count: :func:`set_threads`, the CLI's
``--threads N``, a ``threads=`` argument, an ``OMP_NUM_THREADS`` environment variable, or a
``torch.set_num_threads`` call made after metaloss first applied the rule.

Example:
    >>> import metaloss as ml
    >>> ml.set_threads(1)
    >>> ml.threads.get_threads()
    1
    >>> ml.set_threads("auto")
    >>> ml.threads.auto_threads(10_000)
    1
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch
from torch import nn

from metaloss.errors import ConfigError

#: Models with at most this many parameters train with one torch thread (automatic rule).
SMALL_MODEL_PARAMS = 1_000_000

_DEFAULT = torch.get_num_threads()  # torch's own choice, read when metaloss.threads is imported
_state: dict[str, Any] = {"setting": "auto", "last_auto": None}

F = TypeVar("F", bound=Callable[..., Any])


def _check(n: int | str) -> int | str:
    if isinstance(n, str) and n.strip().lower() == "auto":
        return "auto"
    try:
        value = int(n)
    except (TypeError, ValueError):
        raise ConfigError(f"threads: expected a count >= 0 or 'auto', got {n!r}") from None
    if value < 0 or (not isinstance(n, int) and str(n).strip() != str(value)):
        raise ConfigError(f"threads: expected a count >= 0 or 'auto', got {n!r}")
    return value


def set_threads(n: int | str) -> None:
    """Set torch's CPU thread count for metaloss: ``n >= 1`` threads, ``0`` for torch's
    default count, ``"auto"`` for the automatic rule by model size (the default).

    Example:
        >>> import metaloss as ml
        >>> ml.set_threads(2); ml.threads.get_threads()
        2
        >>> ml.set_threads("auto"); ml.threads.get_threads()
        'auto'
    """
    value = _check(n)
    _state["setting"] = value
    _state["last_auto"] = None
    if value != "auto":
        _set_torch(value or _DEFAULT)


def get_threads() -> int | str:
    """The current setting: a count (``0``: torch's default) or ``"auto"``."""
    return _state["setting"]


def auto_threads(num_params: int) -> int:
    """The thread count the automatic rule picks for a model with ``num_params`` parameters.

    Example:
        >>> auto_threads(60_000), auto_threads(11_000_000) == torch_default_threads()
        (1, True)
    """
    return 1 if num_params <= SMALL_MODEL_PARAMS else _DEFAULT


def torch_default_threads() -> int:
    """torch's default CPU thread count on this machine (read at import)."""
    return _DEFAULT


def apply_auto(model: nn.Module) -> None:
    """Apply the automatic rule for ``model`` (no-op unless the setting is ``"auto"``).

    Called by :meth:`metaloss.tasks.Task.make_model`, so every training and meta-training run
    built from a task gets it.
    """
    if _state["setting"] != "auto" or os.environ.get("OMP_NUM_THREADS"):
        return
    current = torch.get_num_threads()
    last = _state["last_auto"]
    if current != _DEFAULT and current != last:
        return  # the user called torch.set_num_threads: keep their choice
    want = auto_threads(sum(p.numel() for p in model.parameters()))
    if want != current:
        _set_torch(want)
    _state["last_auto"] = want


def _set_torch(n: int) -> None:
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@contextmanager
def using_threads(n: int | str) -> Iterator[None]:
    """Use the setting ``n`` (as for :func:`set_threads`) inside the block, then restore.

    Example:
        >>> with using_threads(1):
        ...     torch.get_num_threads()
        1
    """
    saved = (dict(_state), torch.get_num_threads())
    set_threads(n)
    try:
        yield
    finally:
        _state.update(saved[0])
        _set_torch(saved[1])


def accepts_threads(fn: F) -> F:
    """Decorator: ``fn`` gains a keyword-only ``threads=None`` argument that runs the call under
    :func:`using_threads` (``None`` keeps the current setting)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, threads: int | str | None = None, **kwargs: Any) -> Any:
        if threads is None:
            return fn(*args, **kwargs)
        with using_threads(threads):
            return fn(*args, **kwargs)

    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    extra = inspect.Parameter(
        "threads", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | str | None"
    )
    at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
    params.insert(at, extra)
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]

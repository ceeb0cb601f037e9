"""metaloss: meta-learn loss functions for neural networks.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("iris-linear")
    >>> ce = ml.losses.get_loss("cross_entropy")
    >>> ml.train(task, ce, steps=100).metric
    'error'
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "losses": "metaloss.losses",
    "tasks": "metaloss.tasks",
    "functional": "metaloss.functional",
    "io": "metaloss.io",
    "meta": "metaloss.meta",
    "configs": "metaloss.meta.configs",
    "config_class": ("metaloss.meta.configs", "config_class"),
    "evaluators": "metaloss.evaluators",
    "plots": "metaloss.plots",
    "train": ("metaloss.training", "train"),
    "TrainResult": ("metaloss.training", "TrainResult"),
    "TrainConfig": ("metaloss.tasks.base", "TrainConfig"),
    "load": ("metaloss.io", "load"),
    "save_loss": ("metaloss.io", "save_loss"),
    "learn": ("metaloss.api", "learn"),
    "evaluate": ("metaloss.api", "evaluate"),
    "MetalossError": ("metaloss.errors", "MetalossError"),
    "threads": "metaloss.threads",
    "set_threads": ("metaloss.threads", "set_threads"),
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    """Import submodules and functions on first use (``import metaloss`` stays cheap)."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'metaloss' has no attribute {name!r}")
    if isinstance(target, str):
        value = import_module(target)
    else:
        value = getattr(import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public API (lazy names included), for ``dir(metaloss)`` and tab completion."""
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})

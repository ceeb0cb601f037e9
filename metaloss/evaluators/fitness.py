"""Fitness kinds: the protocol evaluators rely on, and the registry that rebuilds a fitness
from data in another process.

A fitness function scores one :class:`~metaloss.evaluators.base.Candidate`. Evaluators
need nothing more, but two optional parts let them do better:

* **stages**: ``prepare(candidate)`` (optional; e.g. a rejection filter or a local search
  of a loss's weights) returns ``(candidate_to_train, tensors_to_report)`` or a failure
  :class:`~metaloss.evaluators.base.Fitness`; ``train_fitness()`` returns the training
  stage, a :class:`~metaloss.evaluators.serial.TrainFitness`. The fitness of a candidate
  is then ``train_fitness()(prepared)`` with ``Fitness.tensors = tensors_to_report``
  (:func:`staged_call`), and the batched evaluator trains the prepared candidates of a
  population together.
* **a kind**: a class attribute ``kind``, ``to_options()`` (JSON-able) and a classmethod
  ``from_options(task, options)``. Registered with :func:`register`, the fitness travels
  to pool / Ray workers as ``(kind, module, options)`` and is rebuilt there by
  :func:`build`; ``module`` (the defining module, imported by the worker when the kind is
  not registered there yet) lets any importable module - a method, a test helper -
  register kinds without the evaluators naming it.

Example:
    >>> from metaloss import tasks
    >>> from metaloss.evaluators.serial import TrainFitness
    >>> fit = TrainFitness(tasks.get("iris-linear"), steps=20)
    >>> kind, module, options = describe(fit)
    >>> kind, options["steps"]
    ('train', 20)
    >>> build(kind, fit.task, options, module) == fit
    True
"""

from __future__ import annotations

import copy
import importlib
from typing import TYPE_CHECKING, Any

from metaloss.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

    from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction
    from metaloss.evaluators.serial import TrainFitness
    from metaloss.tasks.base import Task

__all__ = [
    "build",
    "describe",
    "get",
    "kinds",
    "prepare",
    "register",
    "staged_call",
    "training_stage",
]

_KINDS: dict[str, type | str] = {}  # kind -> class, or "module:Class" imported on first use


def register(kind: str, cls: type | str) -> None:
    """Register a fitness class (or a lazy ``"module.path:ClassName"``) under ``kind``.

    Methods call it when their module is imported; re-registering the same class is a
    no-op, another class under a taken kind is an error.

    >>> register("train", "metaloss.evaluators.serial:TrainFitness")  # already there
    """
    if not kind or not isinstance(kind, str):
        raise ConfigError(f"fitness kind must be a non-empty string, got {kind!r}")
    old = _KINDS.get(kind)
    if isinstance(cls, str):  # a lazy entry never replaces a class
        _KINDS.setdefault(kind, cls)
        return
    if isinstance(old, type) and _name(old) != _name(cls):
        raise ConfigError(f"fitness kind {kind!r} is already registered to {_name(old)}")
    _KINDS[kind] = cls


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def get(kind: str, module: str | None = None) -> type:
    """The class registered as ``kind``; imports ``module`` first if ``kind`` is unknown.

    >>> get("train").__name__
    'TrainFitness'
    """
    if kind not in _KINDS and module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"fitness kind {kind!r}: cannot import {module!r}: {exc}") from None
    entry = _KINDS.get(kind)
    if entry is None:
        raise ConfigError(
            f"unknown fitness kind {kind!r} (registered: {', '.join(kinds())}); "
            "import the module that registers it or give its module path"
        )
    if isinstance(entry, str):
        mod, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(mod), name)
        _KINDS[kind] = entry
    return entry


def kinds() -> list[str]:
    """The registered kinds, sorted.

    >>> "train" in kinds()
    True
    """
    return sorted(_KINDS)


def describe(fitness: FitnessFunction) -> tuple[str, str, dict[str, Any]]:
    """``(kind, module, options)`` of a registered fitness; :class:`ConfigError` if it
    cannot be described as data."""
    kind = getattr(type(fitness), "kind", None)
    if not isinstance(kind, str) or not hasattr(fitness, "to_options"):
        raise ConfigError(
            f"cannot describe a {type(fitness).__name__} as data: it has no registered "
            "fitness kind (kind / to_options / from_options, see metaloss.evaluators.fitness)"
        )
    if get(kind, type(fitness).__module__) is not type(fitness):
        raise ConfigError(f"fitness kind {kind!r} is not registered to {type(fitness).__name__}")
    return kind, type(fitness).__module__, fitness.to_options()  # type: ignore[attr-defined]


def build(kind: str, task: Task, options: dict[str, Any], module: str | None = None) -> Any:
    """Rebuild a fitness of ``kind`` on ``task`` from its options."""
    return get(kind, module).from_options(task, dict(options))  # type: ignore[attr-defined]


def training_stage(fitness: FitnessFunction) -> TrainFitness | None:
    """The training stage of a staged fitness (``fitness.train_fitness()``), else ``None``.

    >>> from metaloss import tasks
    >>> from metaloss.evaluators.serial import TrainFitness
    >>> fit = TrainFitness(tasks.get("iris-linear"))
    >>> training_stage(fit) is fit, training_stage(lambda c: None)
    (True, None)
    """
    from metaloss.evaluators.serial import TrainFitness

    make = getattr(fitness, "train_fitness", None)
    if make is None:
        return None
    stage = make()
    return stage if isinstance(stage, TrainFitness) else None


def prepare(
    fitness: FitnessFunction, candidate: Candidate
) -> tuple[Candidate, dict[str, Tensor]] | Fitness:
    """A staged fitness's prepare stage (the identity when it has none); the prepared
    candidate keeps ``candidate.early_stop``."""
    step = getattr(fitness, "prepare", None)
    if step is None:
        return candidate, {}
    out = step(candidate)
    if not isinstance(out, tuple) or (
        out[0].early_stop == candidate.early_stop
        and out[0].early_stop_examples == candidate.early_stop_examples
    ):
        return out
    tuned = copy.copy(out[0])  # the prepared candidate keeps the early-stopping checkpoints
    tuned.early_stop = candidate.early_stop
    tuned.early_stop_examples = candidate.early_stop_examples
    return tuned, out[1]


def staged_call(fitness: FitnessFunction, candidate: Candidate) -> Fitness:
    """``prepare`` then the training stage: what a staged fitness's ``__call__`` does."""
    from metaloss.evaluators.base import Fitness

    prepared = prepare(fitness, candidate)
    if isinstance(prepared, Fitness):
        return prepared
    tuned, tensors = prepared
    stage = training_stage(fitness)
    assert stage is not None, "staged_call needs a fitness with train_fitness()"
    fit = stage(tuned)
    fit.tensors = tensors or fit.tensors
    return fit


register("train", "metaloss.evaluators.serial:TrainFitness")
register("val_metric", "metaloss.evaluators.serial:ValMetricFitness")

"""Evaluation as data: a fitness function (:class:`FitnessSpec`) and candidates / results
(JSON text) that any process can rebuild, without pickling code.

A :class:`FitnessSpec` names the task (rebuilt from the task registry) and the fitness as
``(kind, module, options)`` (:mod:`metaloss.evaluators.fitness`); candidates travel as
JSON (loss spec + tensors as nested lists), results too. Used by the process-pool and Ray
evaluators.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from metaloss.errors import ConfigError
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction
from metaloss.tasks.base import Task

__all__ = [
    "FitnessSpec",
    "candidate_from_json",
    "candidate_to_json",
    "fitness_from_json",
    "fitness_to_json",
    "task_fingerprint",
]


@dataclass
class FitnessSpec:
    """A JSON description of a fitness function that any process can rebuild.

    The task is ``metaloss.tasks.get(task, data_dir, device, task_seed, val_fraction)``;
    ``fingerprint`` (see :func:`task_fingerprint`) lets a worker check that it rebuilt the
    driver's task. The fitness is the registered fitness ``kind`` built from ``options``
    (:func:`metaloss.evaluators.fitness.build`); ``module`` is imported first when ``kind``
    is not registered in the worker yet (:meth:`from_fitness` fills it in: the module that
    defines the fitness class). Kind ``"train"``
    (:class:`~metaloss.evaluators.serial.TrainFitness`) takes the options ``steps``,
    ``seed``, ``config`` and ``overrides``.

    >>> spec = FitnessSpec(task="iris-linear", options={"steps": 20})
    >>> FitnessSpec.from_json(spec.to_json()) == spec
    True
    >>> spec.build()  # doctest: +ELLIPSIS
    TrainFitness(task=Task('iris-linear', ...), steps=20, seed=0, ...)
    """

    task: str
    kind: str = "train"
    module: str | None = None
    data_dir: str | None = None
    task_seed: int = 0
    val_fraction: float = 0.1
    device: str = "cpu"
    fingerprint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fitness_kinds.get(self.kind, self.module)  # an unknown kind fails here, clearly
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)
        self.device = str(self.device)
        try:  # plain JSON values only (tuples become lists, as after a round trip)
            self.options = json.loads(json.dumps(self.options))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"fitness spec: options not JSON: {exc}") from None

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # fails loudly on non-JSON values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitnessSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown or "task" not in data:
            raise ConfigError(f"fitness spec: unknown fields {sorted(unknown)} or no 'task'")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> FitnessSpec:
        return cls.from_dict(json.loads(text))

    # -- from / to live objects ------------------------------------------------------------
    @classmethod
    def from_fitness(
        cls,
        fitness: FitnessFunction,
        data_dir: str | None = None,
        task_seed: int = 0,
        val_fraction: float = 0.1,
    ) -> FitnessSpec:
        """The spec of a registered fitness kind on a registered task.

        A :class:`Task` does not remember how it was built, so ``data_dir``, ``task_seed``
        and ``val_fraction`` are the ones given here (``tasks.get``'s defaults); the
        fingerprint makes workers refuse a task that came out different.
        """
        from metaloss.tasks.registry import TASKS

        kind, module, options = fitness_kinds.describe(fitness)
        task: Task | None = getattr(fitness, "task", None)
        if not isinstance(task, Task):
            raise ConfigError(f"cannot describe a {type(fitness).__name__} without a task")
        if task.name.partition("+")[0] not in TASKS:  # "+...": a variant, rebuilt from its name
            raise ConfigError(
                f"task {task.name!r} is not in the task registry, so workers cannot rebuild "
                "it; register it (tasks.register_task) or pass a FitnessSpec"
            )
        return cls(
            task=task.name,
            kind=kind,
            module=module,
            data_dir=data_dir,
            task_seed=task_seed,
            val_fraction=val_fraction,
            device=str(task.device),
            fingerprint=task_fingerprint(task),
            options=options,
        )

    def build_task(self) -> Task:
        """The task, rebuilt from the registry (checked against ``fingerprint``)."""
        from metaloss import tasks

        device = "cuda" if self.device.startswith("cuda") else self.device
        task = tasks.get(self.task, self.data_dir, device, self.task_seed, self.val_fraction)
        if self.fingerprint is not None and task_fingerprint(task) != self.fingerprint:
            raise ConfigError(
                f"fitness spec: task {self.task!r} rebuilt here differs from the driver's "
                f"({task_fingerprint(task)} != {self.fingerprint}); pass a "
                "FitnessSpec with the right data_dir / task_seed / val_fraction"
            )
        return task

    def build(self, task: Task | None = None) -> FitnessFunction:
        """The fitness callable this spec describes (``task`` skips rebuilding it)."""
        task = task if task is not None else self.build_task()
        return fitness_kinds.build(self.kind, task, self.options, self.module)


def task_fingerprint(task: Task, seed: int = 0) -> str:
    """A short summary of a task's data and initial model, to check a rebuilt task.

    >>> from metaloss import tasks
    >>> task_fingerprint(tasks.get("iris-linear")) == task_fingerprint(tasks.get("iris-linear"))
    True
    """
    model = task.make_model(seed)
    n_params = sum(p.numel() for p in model.parameters())
    init = sum(float(p.detach().cpu().double().sum()) for p in model.parameters())
    val = task.val.x.detach().cpu().double().sum()
    ys = task.val.y.detach().cpu().double().sum() + task.train.y.detach().cpu().double().sum()
    return (
        f"{task.kind}:{len(task.train)}/{len(task.val)}/{len(task.test)}:"
        f"{list(task.in_shape)}->{task.num_outputs}:{n_params}:"
        f"{init:.5e}:{float(val):.5e}:{float(ys):.5e}"
    )


def _tensor_to_json(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach().cpu()
    dtype = str(t.dtype).removeprefix("torch.")
    return {"dtype": dtype, "shape": list(t.shape), "data": t.reshape(-1).tolist()}


def _tensor_from_json(d: dict[str, Any]) -> torch.Tensor:
    dtype = getattr(torch, d["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"unknown tensor dtype {d['dtype']!r}")
    return torch.tensor(d["data"], dtype=dtype).reshape(d["shape"])


def candidate_to_json(c: Candidate) -> str:
    """A candidate as JSON text (tensors as nested lists; float32 round-trips exactly).

    >>> c = Candidate(3, {"kind": "taylor", "config": {}}, {"theta": torch.ones(8)})
    >>> back = candidate_from_json(candidate_to_json(c))
    >>> back.id, back.spec == c.spec, torch.equal(back.tensors["theta"], c.tensors["theta"])
    (3, True, True)
    """
    tensors = {k: _tensor_to_json(v) for k, v in c.tensors.items()}
    stop = [[f, t if math.isfinite(t) else None] for f, t in c.early_stop]
    return json.dumps(
        {
            "id": c.id,
            "spec": c.spec,
            "tensors": tensors,
            "early_stop": stop,
            "early_stop_examples": c.early_stop_examples,
        }
    )


def candidate_from_json(text: str) -> Candidate:
    d = json.loads(text)
    tensors = {k: _tensor_from_json(v) for k, v in d.get("tensors", {}).items()}
    stop = tuple(
        (float(f), math.inf if t is None else float(t)) for f, t in d.get("early_stop", [])
    )
    return Candidate(int(d["id"]), d["spec"], tensors, stop, int(d.get("early_stop_examples", 0)))


def fitness_to_json(f: Fitness) -> str:
    """A fitness record as JSON text (``inf`` travels as ``null``)."""
    return json.dumps(
        {
            "value": f.value if math.isfinite(f.value) else None,
            "ok": f.ok,
            "reason": f.reason,
            "seconds": f.seconds,
            "info": f.info,
            "tensors": {k: _tensor_to_json(v) for k, v in f.tensors.items()},
        }
    )


def fitness_from_json(text: str) -> Fitness:
    d = json.loads(text)
    return Fitness(
        math.inf if d["value"] is None else float(d["value"]),
        ok=bool(d["ok"]),
        reason=d.get("reason", ""),
        seconds=float(d.get("seconds", 0.0)),
        info=d.get("info", {}),
        tensors={k: _tensor_from_json(v) for k, v in d.get("tensors", {}).items()},
    )

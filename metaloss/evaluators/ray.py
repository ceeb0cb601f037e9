"""The Ray evaluator: score candidates on a pool of Ray actors, one per CPU slot or GPU.

Nothing executable travels: each actor rebuilds the task and the fitness function from a
JSON :class:`FitnessSpec` (task name, data folder, seeds, device, training budget), and
candidates travel as JSON (loss spec + tensors as nested lists); results come back as JSON
too. An actor that dies (a segfault, ``os._exit``, OOM kill, ``ray.kill``) is replaced and
its candidate re-run on the new actor, up to ``max_retries`` times; after that the
candidate is a failure record and the search goes on.

Results equal :class:`~metaloss.evaluators.serial.SerialEvaluator`'s: every evaluation is
an independent, seeded training run. They are bitwise equal when the workers use the
same device and torch thread count as the reference run (actors use ``threads_per_worker``
threads, 1 by default); otherwise within the batched evaluator's tolerance.

Example (not run as a doctest: it starts Ray)::

    import metaloss as ml
    from metaloss.evaluators import Candidate, TrainFitness
    from metaloss.evaluators.ray import RayEvaluator

    task = ml.tasks.get("digits-mlp")
    with RayEvaluator(TrainFitness(task, steps=500), num_workers=2) as ev:
        fits = ev.evaluate([Candidate(0, {"kind": "cross_entropy"})])

    # or on a running cluster, from a spec (its workers read data_dir themselves):
    spec = FitnessSpec(task="mnist-lenet5", data_dir="/data/mnist", steps=500, device="cuda")
    ev = RayEvaluator(spec, address="auto")
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction, guarded
from metaloss.evaluators.serial import TrainFitness
from metaloss.tasks.base import Task, TrainConfig

__all__ = [
    "FitnessSpec",
    "RayEvaluator",
    "candidate_from_json",
    "candidate_to_json",
    "fitness_from_json",
    "fitness_to_json",
    "task_fingerprint",
]

FITNESS_KINDS = ("train", "evomal", "crash_test")


# --------------------------------------------------------------------------------------
# the fitness as data


@dataclass
class FitnessSpec:
    """A JSON description of a fitness function that any process can rebuild.

    ``kind``: ``"train"`` (:class:`TrainFitness`: ``steps``, ``seed``, ``config``,
    ``overrides``), ``"evomal"`` (``EvoMALFitness``: also ``local_steps``, ``local_lr``,
    ``filter_steps``; ``steps`` is its ``fitness_steps``) or ``"crash_test"`` (test only:
    like ``"train"``, but the worker process exits via ``os._exit`` the first time it sees a
    candidate whose id is in ``options["crash_ids"]`` (``options["marker_dir"]`` records
    which ones already crashed), and every time for ids in ``options["always_ids"]``. Never
    build it in a process you want to keep). The task is ``metaloss.tasks.get(task,
    data_dir, device, task_seed, val_fraction)``; ``fingerprint`` (see
    :func:`task_fingerprint`) lets a worker check that it rebuilt the driver's task.

    >>> spec = FitnessSpec(task="iris-linear", steps=20)
    >>> FitnessSpec.from_json(spec.to_json()) == spec
    True
    >>> spec.build()  # doctest: +ELLIPSIS
    TrainFitness(task=Task(name='iris-linear', ...), steps=20, seed=0, ...)
    """

    task: str
    kind: str = "train"
    data_dir: str | None = None
    task_seed: int = 0
    val_fraction: float = 0.1
    device: str = "cpu"
    steps: int = 500
    seed: int = 0
    config: dict[str, Any] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    local_steps: int = 250
    local_lr: float = 1e-3
    filter_steps: int = 50
    fingerprint: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FITNESS_KINDS:
            raise ConfigError(
                f"fitness spec kind must be one of {FITNESS_KINDS}, got {self.kind!r}"
            )
        if self.data_dir is not None:
            self.data_dir = str(self.data_dir)
        self.device = str(self.device)
        try:  # plain JSON values only (tuples become lists, as after a round trip)
            self.config, self.overrides, self.options = json.loads(
                json.dumps([self.config, self.overrides, self.options])
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"fitness spec: config / overrides / options not JSON: {exc}"
            ) from None

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
        """The spec of a :class:`TrainFitness` / ``EvoMALFitness`` on a registered task.

        A :class:`Task` does not remember how it was built, so ``data_dir``, ``task_seed``
        and ``val_fraction`` are the ones given here (``tasks.get``'s defaults); the
        fingerprint makes workers refuse a task that came out different.
        """
        from metaloss.evaluators.batched import _is_evomal
        from metaloss.tasks.registry import TASKS

        task: Task | None = getattr(fitness, "task", None)
        if not isinstance(fitness, TrainFitness) and not _is_evomal(fitness):
            raise ConfigError(
                f"ray evaluator: cannot describe a {type(fitness).__name__} as data; "
                "pass a FitnessSpec, a TrainFitness or an EvoMALFitness"
            )
        assert task is not None
        if task.name.partition("+")[0] not in TASKS:  # "+...": a variant, rebuilt from its name
            raise ConfigError(
                f"ray evaluator: task {task.name!r} is not in the task registry, so workers "
                "cannot rebuild it; register it (tasks.register_task) or pass a FitnessSpec"
            )
        common: dict[str, Any] = dict(
            task=task.name,
            data_dir=data_dir,
            task_seed=task_seed,
            val_fraction=val_fraction,
            device=str(task.device),
            seed=fitness.seed,  # type: ignore[attr-defined]
            overrides=dict(fitness.overrides),  # type: ignore[attr-defined]
            fingerprint=task_fingerprint(task, fitness.seed),  # type: ignore[attr-defined]
        )
        if isinstance(fitness, TrainFitness):
            config = fitness.config.to_dict() if fitness.config is not None else None
            return cls(kind="train", steps=fitness.steps, config=config, **common)
        f: Any = fitness
        return cls(
            kind="evomal",
            steps=f.fitness_steps,
            local_steps=f.local_steps,
            local_lr=f.local_lr,
            filter_steps=f.filter_steps,
            **common,
        )

    def build_task(self) -> Task:
        """The task, rebuilt from the registry (checked against ``fingerprint``)."""
        from metaloss import tasks

        device = "cuda" if self.device.startswith("cuda") else self.device
        task = tasks.get(self.task, self.data_dir, device, self.task_seed, self.val_fraction)
        if self.fingerprint is not None and task_fingerprint(task, self.seed) != self.fingerprint:
            raise ConfigError(
                f"fitness spec: task {self.task!r} rebuilt here differs from the driver's "
                f"({task_fingerprint(task, self.seed)} != {self.fingerprint}); pass a "
                "FitnessSpec with the right data_dir / task_seed / val_fraction"
            )
        return task

    def build(self, task: Task | None = None) -> FitnessFunction:
        """The fitness callable this spec describes (``task`` skips rebuilding it)."""
        task = task if task is not None else self.build_task()
        if self.kind == "evomal":
            from metaloss.meta.gp import EvoMALFitness

            return EvoMALFitness(
                task,
                fitness_steps=self.steps,
                local_steps=self.local_steps,
                local_lr=self.local_lr,
                filter_steps=self.filter_steps,
                seed=self.seed,
                overrides=dict(self.overrides),
            )
        config = TrainConfig(**self.config) if self.config is not None else None
        fit = TrainFitness(task, self.steps, self.seed, config, dict(self.overrides))
        return _CrashTest(fit, self.options) if self.kind == "crash_test" else fit


@dataclass
class _CrashTest:
    """Test-only fault injection: exit the process on chosen candidates (see FitnessSpec)."""

    fitness: TrainFitness
    options: dict[str, Any]

    def __call__(self, candidate: Candidate) -> Fitness:
        if candidate.id in self.options.get("always_ids", []):
            os._exit(17)
        if candidate.id in self.options.get("crash_ids", []):
            marker = Path(self.options.get("marker_dir", ".")) / f"crashed-{candidate.id}"
            if not marker.exists():
                marker.touch()
                os._exit(17)
        return self.fitness(candidate)


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


# --------------------------------------------------------------------------------------
# wire format: JSON text only


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
    return json.dumps({"id": c.id, "spec": c.spec, "tensors": tensors})


def candidate_from_json(text: str) -> Candidate:
    d = json.loads(text)
    tensors = {k: _tensor_from_json(v) for k, v in d.get("tensors", {}).items()}
    return Candidate(int(d["id"]), d["spec"], tensors)


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


# --------------------------------------------------------------------------------------
# the actor


class _Worker:
    """A Ray actor body: rebuilds the fitness from its spec once, then scores candidates."""

    def __init__(self, spec_json: str, threads: int = 1) -> None:
        torch.set_num_threads(max(1, threads))
        self.error: str | None = None
        try:
            self.fitness: FitnessFunction | None = FitnessSpec.from_json(spec_json).build()
        except Exception as exc:  # noqa: BLE001 - reported to the driver by ready()
            self.fitness, self.error = None, f"{type(exc).__name__}: {exc}"

    def ready(self) -> str | None:
        """``None`` when the fitness was built, else why not."""
        return self.error

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, candidate_json: str) -> str:
        if self.fitness is None:
            return fitness_to_json(Fitness.failure(f"worker setup failed: {self.error}"))
        return fitness_to_json(guarded(self.fitness, candidate_from_json(candidate_json)))


# --------------------------------------------------------------------------------------
# the evaluator


class RayEvaluator:
    """Evaluate candidates on Ray actors that rebuild the fitness from a :class:`FitnessSpec`.

    Args:
        fitness: a :class:`FitnessSpec`, or a :class:`TrainFitness` / ``EvoMALFitness`` on a
            registered task (its spec is derived with :meth:`FitnessSpec.from_fitness`;
            :class:`~metaloss.errors.ConfigError` otherwise).
        address: a Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts
            a local instance (``num_cpus`` = ``num_workers`` or the CPU count, no
            dashboard, worker logs not forwarded) unless Ray is already initialised.
        num_workers: actors; default one per GPU for a CUDA spec, else one per
            ``threads_per_worker`` CPUs available in the cluster.
        max_retries: how many times a candidate whose actor died is re-run on a fresh
            actor before it becomes a failure record.
        threads_per_worker: torch threads (and Ray CPUs) per CPU actor.
        startup_timeout: seconds to wait for the actors to start and build the fitness.

    Actors start on the first :meth:`evaluate` (or :meth:`start`) and live until
    :meth:`close` (or the end of a ``with`` block), which also shuts down a Ray instance
    this evaluator started.
    """

    def __init__(
        self,
        fitness: FitnessFunction | FitnessSpec,
        address: str | None = None,
        num_workers: int | None = None,
        max_retries: int = 2,
        threads_per_worker: int = 1,
        startup_timeout: float = 300.0,
    ) -> None:
        if num_workers is not None and num_workers < 1:
            raise ConfigError(f"ray evaluator: num_workers must be >= 1, got {num_workers}")
        if max_retries < 0 or threads_per_worker < 1:
            raise ConfigError("ray evaluator: max_retries >= 0 and threads_per_worker >= 1")
        self.spec = (
            fitness if isinstance(fitness, FitnessSpec) else FitnessSpec.from_fitness(fitness)
        )
        self.address, self.num_workers = address, num_workers
        self.max_retries, self.threads = max_retries, threads_per_worker
        self.startup_timeout = startup_timeout
        self.actors: list[Any] = []
        self.restarts = 0  # actors replaced after dying
        self._started_ray = False
        self._actor_cls: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> RayEvaluator:
        """Connect to (or start) Ray and create the actors; raise if they cannot build."""
        if self.actors:
            return self
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ConfigError("the ray evaluator needs `pip install 'metaloss[ray]'`") from exc
        gpu = self.spec.device.startswith("cuda")
        if not ray.is_initialized():
            if self.address is not None:
                ray.init(address=self.address, logging_level="WARNING")
            else:
                ray.init(
                    num_cpus=(self.num_workers or 0) * self.threads or os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="WARNING",
                    runtime_env={"env_vars": self._worker_env()},
                )
                self._started_ray = True
        resources = ray.available_resources()
        if self.num_workers is None:
            slots = resources.get("GPU", 0) if gpu else resources.get("CPU", 1) // self.threads
            self.num_workers = max(1, int(slots))
        opts = {"num_cpus": self.threads, **({"num_gpus": 1} if gpu else {})}
        self._actor_cls = ray.remote(**opts)(_Worker)
        self.actors = [self._new_actor() for _ in range(self.num_workers)]
        try:
            ready = ray.get([a.ready.remote() for a in self.actors], timeout=self.startup_timeout)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ConfigError(
                f"ray evaluator: {self.num_workers} workers did not start within "
                f"{self.startup_timeout:g} s (not enough free CPUs / GPUs in the cluster?)"
            ) from None
        errors = [e for e in ready if e]
        if errors:
            self.close()
            raise ConfigError(f"ray evaluator: workers cannot build the fitness: {errors[0]}")
        return self

    def _worker_env(self) -> dict[str, str]:
        """Environment of local workers: find this metaloss checkout and the data sets."""
        root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {"PYTHONPATH": path, "OMP_NUM_THREADS": str(self.threads)}
        if "METALOSS_DATA_DIR" in os.environ:
            env["METALOSS_DATA_DIR"] = os.environ["METALOSS_DATA_DIR"]
        return env

    def _new_actor(self) -> Any:
        return self._actor_cls.remote(self.spec.to_json(), self.threads)

    def close(self) -> None:
        """Kill the actors; shut Ray down if this evaluator started it."""
        try:
            import ray
        except ImportError:  # pragma: no cover
            return
        for a in self.actors:
            with contextlib.suppress(Exception):  # already dead
                ray.kill(a)
        self.actors = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayEvaluator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]:
        """Fitness of every candidate, in order; dead workers' candidates are re-run."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError, WorkerCrashedError

        self.start()
        payloads = [candidate_to_json(c) for c in candidates]
        results: list[Fitness | None] = [None] * len(candidates)
        deaths = [0] * len(candidates)
        queue = deque(range(len(candidates)))
        idle = deque(range(len(self.actors)))
        in_flight: dict[Any, tuple[int, int]] = {}  # ref -> (actor slot, candidate index)
        while queue or in_flight:
            while queue and idle:
                slot, i = idle.popleft(), queue.popleft()
                in_flight[self.actors[slot].evaluate.remote(payloads[i])] = (slot, i)
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                slot, i = in_flight.pop(ref)
                try:
                    results[i] = fitness_from_json(ray.get(ref))
                except (RayActorError, WorkerCrashedError) as exc:
                    deaths[i] += 1
                    if deaths[i] > self.max_retries:
                        why = str(exc).splitlines()[0][:200]
                        results[i] = Fitness.failure(f"worker died {deaths[i]} times: {why}")
                    else:
                        queue.appendleft(i)
                    self._replace(slot)
                except RayTaskError as exc:  # an error outside guarded(): still data
                    results[i] = Fitness.failure(f"ray task error: {exc}".splitlines()[0])
                idle.append(slot)
        return [f if f is not None else Fitness.failure("not evaluated") for f in results]

    def _replace(self, slot: int) -> None:
        import ray

        with contextlib.suppress(Exception):  # it is dead already
            ray.kill(self.actors[slot])
        self.actors[slot] = self._new_actor()
        self.restarts += 1

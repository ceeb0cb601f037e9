"""The Ray evaluator: score candidates on a pool of Ray actors, one per CPU slot or GPU.

Nothing executable travels: each actor rebuilds the task and the fitness function from a
JSON :class:`~metaloss.evaluators.spec.FitnessSpec` (task name, data folder, device, the
fitness kind and its options), and candidates travel as JSON (loss spec + tensors as
nested lists); results come back as JSON too. An actor that dies (a segfault,
``os._exit``, OOM kill, ``ray.kill``) is replaced and its candidate re-run on the new
actor, up to ``max_retries`` times; after that the candidate is a failure record and the
search goes on.

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
    spec = FitnessSpec(
        task="mnist-lenet5", data_dir="/data/mnist", device="cuda", options={"steps": 500}
    )
    ev = RayEvaluator(spec, address="auto")
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction, guarded
from metaloss.evaluators.spec import (
    FitnessSpec,
    candidate_from_json,
    candidate_to_json,
    fitness_from_json,
    fitness_to_json,
    task_fingerprint,
)

__all__ = [
    "FitnessSpec",
    "RayEvaluator",
    "candidate_from_json",
    "candidate_to_json",
    "fitness_from_json",
    "fitness_to_json",
    "task_fingerprint",
]

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
        fitness: a :class:`FitnessSpec`, or a fitness of a registered kind
            (:mod:`metaloss.evaluators.fitness`) on a registered task (its spec is derived
            with :meth:`FitnessSpec.from_fitness`; :class:`~metaloss.errors.ConfigError`
            otherwise).
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
        try:
            self.spec = (
                fitness if isinstance(fitness, FitnessSpec) else FitnessSpec.from_fitness(fitness)
            )
        except ConfigError as exc:
            raise ConfigError(f"ray evaluator: {exc}") from None
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
        roots = [str(Path(__file__).resolve().parents[2]), *_module_root(self.spec.module)]
        path = os.pathsep.join(p for p in (*roots, os.environ.get("PYTHONPATH", "")) if p)
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


def _module_root(module: str | None) -> list[str]:
    """The ``sys.path`` entry this process imports ``module`` from (so that workers can
    import the module that registers the fitness kind), or nothing.

    >>> _module_root("metaloss.evaluators.ray") == [str(Path(__file__).resolve().parents[2])]
    True
    """
    if not module:
        return []
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return []
    origin = Path(spec.origin).resolve()
    depth = module.count(".") + (2 if origin.name == "__init__.py" else 1)
    root = origin.parents[depth - 1]
    return [str(root)] if str(root) in {str(Path(p).resolve()) for p in sys.path if p} else []

"""The process-pool evaluator: score candidates in parallel worker processes on this machine.

Uses every core without Ray: a :class:`concurrent.futures.ProcessPoolExecutor` with the
``spawn`` start method and one torch thread per worker. Nothing executable travels, as
with the Ray evaluator (whose wire format this module reuses): each worker rebuilds the
fitness function once from the JSON :class:`~metaloss.evaluators.spec.FitnessSpec`
(registered task name, fitness kind and options) and receives candidates as JSON text
(:func:`~metaloss.evaluators.spec.candidate_to_json`); results come back as JSON. The
``spawn`` workers start with this process's ``sys.path``, so they can import the module
that registers the fitness kind (:mod:`metaloss.evaluators.fitness`).

Results equal :class:`~metaloss.evaluators.serial.SerialEvaluator`'s for the same seed:
every evaluation is an independent, seeded training run, bitwise equal when the serial
run also uses one torch thread on the same device.

A fitness function that cannot be described as a spec (one without a registered fitness
kind, or not on a registered task),
or whose task the workers rebuild differently (another ``data_dir`` / ``task_seed`` /
``val_fraction``; a task read from a ``--data-dir`` that the workers do not find through
``$METALOSS_DATA_DIR``), is evaluated serially in this process, with a warning; the reason is
in :attr:`ProcessPoolEvaluator.fallback_reason`. A worker that dies (segfault, OOM kill)
breaks the pool: the pool is restarted and the unfinished candidates are re-run one at a
time, so that a candidate that keeps killing its worker becomes a failure record (after
``max_retries`` restarts) without taking the others with it.

Example (not run as a doctest: it starts processes)::

    import metaloss as ml
    from metaloss.evaluators import Candidate, TrainFitness
    from metaloss.evaluators.pool import ProcessPoolEvaluator

    task = ml.tasks.get("digits-mlp")
    with ProcessPoolEvaluator(TrainFitness(task, steps=500), workers=2) as ev:
        fits = ev.evaluate([Candidate(0, {"kind": "cross_entropy"})])

On the command line: ``metaloss learn taylorglo --evaluator pool`` (``--set num_workers=N``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction, guarded
from metaloss.evaluators.serial import SerialEvaluator
from metaloss.evaluators.spec import (
    FitnessSpec,
    candidate_from_json,
    candidate_to_json,
    fitness_from_json,
    fitness_to_json,
)

__all__ = ["ProcessPoolEvaluator", "available_cpus"]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1.

    >>> available_cpus() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------
# the worker side (module-level functions: the pool sends only their names and JSON text)

_FITNESS: dict[str, FitnessFunction] = {}  # spec JSON -> fitness built in this worker
_TASKS: dict[str, Any] = {}  # the spec's task fields -> the task built in this worker


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    with contextlib.suppress(RuntimeError):  # fails only after inter-op work has started
        torch.set_num_interop_threads(1)


def _task(spec: FitnessSpec) -> Any:
    """The spec's task, built once per worker: specs that differ only in their options (the
    points of a learning-rate grid) share one copy of the data."""
    fields = [spec.task, spec.data_dir, spec.device, spec.task_seed, spec.val_fraction]
    key = json.dumps([*fields, spec.fingerprint])
    if key not in _TASKS:
        _TASKS[key] = spec.build_task()  # checks the fingerprint
    return _TASKS[key]


def _evaluate_json(spec_json: str, candidate_json: str) -> str:
    """Score one candidate in a worker; a fitness that cannot be built is reported as
    ``{"setup_error": "..."}``, not as a candidate failure."""
    fitness = _FITNESS.get(spec_json)
    if fitness is None:
        try:
            spec = FitnessSpec.from_json(spec_json)
            fitness = spec.build(_task(spec))
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            return json.dumps({"setup_error": f"{type(exc).__name__}: {exc}"})
        _FITNESS[spec_json] = fitness
    return fitness_to_json(guarded(fitness, candidate_from_json(candidate_json)))


# --------------------------------------------------------------------------------------
# the evaluator


class ProcessPoolEvaluator:
    """Evaluate candidates in ``workers`` spawned processes, one torch thread each.

    Args:
        fitness: a fitness of a registered kind (:mod:`metaloss.evaluators.fitness`) on a
            registered task, or a :class:`~metaloss.evaluators.spec.FitnessSpec`. Any other
            fitness function is evaluated serially (with a warning).
        workers: worker processes; default: the CPUs available to this process (one per
            GPU for a CUDA fitness).
        threads_per_worker: torch threads of each worker.
        max_retries: restarts of a dead worker per candidate before that candidate becomes
            a failure record.

    The pool starts on the first :meth:`evaluate` and is reused by later generations until
    :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(
        self,
        fitness: FitnessFunction | FitnessSpec,
        workers: int | None = None,
        threads_per_worker: int = 1,
        max_retries: int = 2,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"pool evaluator: workers must be >= 1, got {workers}")
        if threads_per_worker < 1 or max_retries < 0:
            raise ConfigError("pool evaluator: threads_per_worker >= 1 and max_retries >= 0")
        self.threads, self.max_retries = threads_per_worker, max_retries
        self.fitness = fitness
        self.fallback_reason: str | None = None
        self.spec: FitnessSpec | None = None
        self.restarts = 0  # pools replaced after a worker died
        self._pool: ProcessPoolExecutor | None = None
        if isinstance(fitness, FitnessSpec):
            self.spec = fitness
        else:
            try:
                self.spec = FitnessSpec.from_fitness(fitness)
            except ConfigError as exc:
                self._fall_back(str(exc))
        self._spec_json = self.spec.to_json() if self.spec is not None else ""
        self.workers = workers or self._default_workers()

    def _default_workers(self) -> int:
        """One worker per GPU for a CUDA fitness (as for Ray), else one per available CPU."""
        if self.spec is not None and self.spec.device.startswith("cuda"):
            import torch

            return max(1, torch.cuda.device_count())
        return available_cpus()

    def _fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        warnings.warn(f"pool evaluator: {reason}; evaluating serially", stacklevel=3)

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads,),
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessPoolEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a search that never closes its evaluator
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.restarts += 1

    # -- evaluation ------------------------------------------------------------------------
    def evaluate(self, candidates: Sequence[Candidate]) -> list[Fitness]:
        """Fitness of every candidate, in order."""
        if self.spec is None or self.fallback_reason is not None:
            return SerialEvaluator(self.fitness).evaluate(candidates)  # type: ignore[arg-type]
        payloads = [candidate_to_json(c) for c in candidates]
        results: list[Fitness | None] = [None] * len(candidates)
        pool = self._start()
        futures: list[Future[str]] = [
            pool.submit(_evaluate_json, self._spec_json, p) for p in payloads
        ]
        broken = False
        for i, fut in enumerate(futures):
            try:
                results[i] = self._decode(fut.result())
            except BrokenProcessPool:
                broken = True
            except _SetupError as exc:
                return self._setup_failed(str(exc), candidates)
        if broken:  # a worker died: re-run the unfinished candidates one at a time
            self._restart()
            for i in (i for i, r in enumerate(results) if r is None):
                try:
                    results[i] = self._isolated(payloads[i])
                except _SetupError as exc:
                    return self._setup_failed(str(exc), candidates)
        return [r if r is not None else Fitness.failure("not evaluated") for r in results]

    def _isolated(self, payload: str) -> Fitness:
        """One candidate alone in the pool, restarting it when its worker dies."""
        for _ in range(self.max_retries + 1):
            try:
                fut = self._start().submit(_evaluate_json, self._spec_json, payload)
                return self._decode(fut.result())
            except BrokenProcessPool:
                self._restart()
        return Fitness.failure(f"worker died {self.max_retries + 1} times")

    @staticmethod
    def _decode(text: str) -> Fitness:
        if text.startswith('{"setup_error"'):
            raise _SetupError(json.loads(text)["setup_error"])
        return fitness_from_json(text)

    def _setup_failed(self, error: str, candidates: Sequence[Candidate]) -> list[Fitness]:
        """Workers cannot build the fitness: serial for a live fitness, an error for a spec."""
        self.close()
        if isinstance(self.fitness, FitnessSpec):
            raise ConfigError(f"pool evaluator: workers cannot build the fitness: {error}")
        self._fall_back(f"workers cannot rebuild the fitness ({error})")
        return SerialEvaluator(self.fitness).evaluate(candidates)

    def __repr__(self) -> str:
        mode = f"serial fallback: {self.fallback_reason}" if self.fallback_reason else "pool"
        return f"ProcessPoolEvaluator(workers={self.workers}, {mode})"


class _SetupError(Exception):
    pass


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """``make_evaluator`` options of the pool (``num_workers`` is ``workers``, as for Ray)."""
    out = dict(options)
    if "num_workers" in out:
        out["workers"] = out.pop("num_workers")
    unknown = set(out) - {"workers", "threads_per_worker", "max_retries"}
    if unknown:
        raise ConfigError(f"pool evaluator: unknown options {sorted(unknown)}")
    return out

"""Independent training runs in worker processes: the points of a learning-rate grid.

A learning-rate tuning (:mod:`metaloss.tuning`) is a grid of independent runs, one per
(learning rate, tuning seed). Where the grid cannot train as one vmapped batch (whole
online runs of AdaLFL; a convolutional model on a CPU, where ``vmap`` gains nothing), a
:class:`RunPool` runs them side by side, one torch thread per worker. Nothing executable
travels: each run is a registered fitness on a registered task
(:class:`~metaloss.evaluators.spec.FitnessSpec`) plus a candidate loss, both JSON, exactly
as for :class:`~metaloss.evaluators.pool.ProcessPoolEvaluator`, whose workers it uses. A
worker builds each task once, so the grid's runs share one copy of the data.

Each run is an independent, seeded run, so the values equal those of the same runs made
one after another in this process with one torch thread (tests check this bit for bit).

:meth:`RunPool.run` returns ``None`` (with a warning, the reason in
:attr:`RunPool.fallback_reason`) when the runs cannot go to workers: a task the workers
cannot rebuild (not registered; read from a folder the workers do not find), or a worker
that died. The caller then runs them here, so a result never depends on the pool.

Example (not run as a doctest: it starts processes)::

    import metaloss as ml
    from metaloss.evaluators import Candidate
    from metaloss.evaluators.run_pool import RunPool
    from metaloss.evaluators.serial import ValMetricFitness

    task = ml.tasks.get("digits-mlp")
    ce = Candidate(0, {"kind": "cross_entropy"})
    with RunPool(workers=2) as pool:
        vals = pool.run([(ValMetricFitness(task, steps=200, seed=s), ce) for s in (0, 1)])
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from metaloss.errors import ConfigError
from metaloss.evaluators.base import Candidate, Fitness, FitnessFunction
from metaloss.evaluators.pool import _evaluate_json, _init_worker
from metaloss.evaluators.spec import (
    FitnessSpec,
    candidate_to_json,
    fitness_from_json,
)

__all__ = ["RunPool", "check_workers"]


def check_workers(workers: object) -> int:
    """``workers`` if it is an integer >= 1, else a :class:`ConfigError`.

    >>> check_workers(2)
    2
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"tune workers must be an integer >= 1, got {workers!r}")
    return workers


class RunPool:
    """``workers`` spawned processes (one torch thread each) for independent runs.

    Args:
        workers: worker processes (at least 1; with 1, :meth:`run` still uses one worker).
        data_dir: the folder the tasks were read from, for the workers to read them too.

    The processes start on the first :meth:`run` and serve every later one (their tasks
    stay built) until :meth:`close` or the end of a ``with`` block.
    """

    def __init__(self, workers: int, data_dir: str | None = None) -> None:
        self.workers, self.data_dir = check_workers(workers), data_dir
        self.fallback_reason: str | None = None
        self._pool: ProcessPoolExecutor | None = None

    def run(
        self,
        jobs: Sequence[tuple[FitnessFunction, Candidate]],
        on_result: Callable[[int, Fitness], None] | None = None,
    ) -> list[Fitness] | None:
        """Each ``fitness(candidate)`` of ``jobs``, computed in the workers, in order; or
        ``None`` when they cannot be (the caller runs them itself); after one such answer,
        always ``None``. ``on_result(i, fitness)`` is called as each job ends (in the order
        they end), e.g. to record it before the others finish."""
        if self.fallback_reason is not None:
            return None
        try:
            specs = [FitnessSpec.from_fitness(f, data_dir=self.data_dir).to_json() for f, _ in jobs]
        except ConfigError as exc:
            return self._fall_back(f"the workers cannot rebuild the runs ({exc})")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(1,),
            )
        futures = [
            self._pool.submit(_evaluate_json, spec, candidate_to_json(c))
            for spec, (_, c) in zip(specs, jobs, strict=True)
        ]
        index = {fut: i for i, fut in enumerate(futures)}
        out: list[Fitness | None] = [None] * len(futures)
        try:
            for fut in as_completed(futures):
                text = fut.result()
                if text.startswith('{"setup_error"'):
                    return self._fall_back(f"a worker cannot build the run: {text}")
                out[index[fut]] = fitness = fitness_from_json(text)
                if on_result is not None:
                    on_result(index[fut], fitness)
        except BrokenProcessPool:
            return self._fall_back("a worker process died")
        except BaseException:  # on_result failed, or an interrupt: drop the queued runs
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise
        return out  # type: ignore[return-value]

    def _fall_back(self, reason: str) -> None:
        self.close()
        self.fallback_reason = reason
        warnings.warn(f"tune workers: {reason}; running here, one run at a time", stacklevel=3)
        return None

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> RunPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __repr__(self) -> str:
        return f"RunPool(workers={self.workers})"

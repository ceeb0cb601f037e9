"""The process-pool evaluator against the serial reference evaluator (same seed, 1 thread).

Every evaluation is an independent seeded run, and workers use one torch thread like the
tests (conftest), so the pool's fitness values must be *bitwise* equal to the serial ones.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import pytest
import torch
from helpers.crashing import CrashingFitness, crashing

from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, Fitness, SerialEvaluator, TrainFitness, make_evaluator
from metaloss.evaluators.pool import ProcessPoolEvaluator, available_cpus
from metaloss.evaluators.spec import FitnessSpec
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.symbolic import SymbolicLoss
from metaloss.losses.taylor import TaylorLoss

CE_TAYLOR = [0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0]


def taylor(i: int) -> TaylorLoss:
    g = torch.Generator().manual_seed(i)
    return TaylorLoss((torch.tensor(CE_TAYLOR) + 0.5 * torch.randn(8, generator=g)).tolist())


def population() -> list[Candidate]:
    """Taylor, hand-made, neural and symbolic losses, one NaN loss, one unknown kind."""
    cands = [Candidate.from_loss(i, taylor(i)) for i in range(3)]
    cands += [
        Candidate(3, {"kind": "cross_entropy"}),
        Candidate.from_loss(4, NeuralLoss.ml3(seed=0)),
        Candidate.from_loss(5, SymbolicLoss.from_string("mul(-1, mul(y, plog(y_hat)))")),
        Candidate.from_loss(6, TaylorLoss([math.nan] * 8)),
        Candidate(7, {"kind": "no_such_loss"}),
    ]
    return cands


def assert_identical(serial: list[Fitness], pool: list[Fitness]) -> None:
    assert len(serial) == len(pool)
    for s, p in zip(serial, pool):
        assert (s.ok, s.value, s.info) == (p.ok, p.value, p.info), (s, p)
        if not s.ok:  # the same error (the list of loss kinds loaded so far may differ)
            assert s.reason.split(";")[0] == p.reason.split(";")[0]


def test_pool_equals_serial_on_iris(iris):
    fit = TrainFitness(iris, steps=60)
    cands = population()
    serial = SerialEvaluator(fit).evaluate(cands)
    with ProcessPoolEvaluator(fit, workers=2) as ev:
        pooled = ev.evaluate(cands)
        assert ev.fallback_reason is None
        again = ev.evaluate(cands[:2])  # the pool is reused by the next generation
    assert_identical(serial, pooled)
    assert_identical(serial[:2], again)
    assert [f.ok for f in pooled] == [True] * 6 + [False, False]
    assert "diverged" in pooled[6].reason and "no_such_loss" in pooled[7].reason


def test_unrepresentable_fitness_falls_back_to_serial(iris):
    fit = TrainFitness(iris, steps=20)

    def wrapped(c: Candidate) -> Fitness:  # a plain function: cannot travel as data
        return fit(c)

    with pytest.warns(UserWarning, match="pool evaluator: cannot describe a function"):
        ev = ProcessPoolEvaluator(wrapped, workers=2)
    cands = population()[:2]
    assert_identical(SerialEvaluator(fit).evaluate(cands), ev.evaluate(cands))
    assert ev._pool is None  # no process was started


def test_make_evaluator_pool_options(iris):
    fit = TrainFitness(iris, steps=20)
    ev = make_evaluator("pool", fit, num_workers=3, threads_per_worker=2)
    assert isinstance(ev, ProcessPoolEvaluator) and (ev.workers, ev.threads) == (3, 2)
    assert make_evaluator("pool", fit).workers == available_cpus()
    cuda_spec = FitnessSpec(task="iris-linear", device="cuda")  # one worker per GPU
    assert ProcessPoolEvaluator(cuda_spec).workers == max(1, torch.cuda.device_count())
    with pytest.raises(ConfigError, match="unknown options.*chunk_size"):
        make_evaluator("pool", fit, chunk_size=4)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        ProcessPoolEvaluator(fit, workers=0)
    with pytest.raises(ConfigError, match="serial, batched, pool or ray"):
        make_evaluator("threads", fit)


@pytest.mark.slow
def test_pool_equals_serial_on_digits_and_survives_dead_workers(digits, tmp_path):
    fit = TrainFitness(digits, steps=100)
    # like TrainFitness, but ids 101 (once) and 102 (always) kill the worker; the spawned
    # workers import the test module that registers this fitness kind
    crash_fit = crashing(fit, crash_ids=[101], always_ids=[102], marker_dir=str(tmp_path))
    spec = FitnessSpec.from_fitness(crash_fit)
    assert spec.kind == "crash_test" and spec.module == CrashingFitness.__module__
    cands = population()
    serial = SerialEvaluator(fit).evaluate(cands)
    with ProcessPoolEvaluator(spec, workers=2, max_retries=1) as ev:
        assert_identical(serial, ev.evaluate(cands))
        assert ev.restarts == 0
        crash = [
            Candidate(101, {"kind": "cross_entropy"}),  # kills its worker once, then succeeds
            Candidate(102, {"kind": "cross_entropy"}),  # kills every worker it meets
            Candidate.from_loss(103, taylor(0)),
        ]
        got = ev.evaluate(crash)
        ref = SerialEvaluator(fit).evaluate(crash)
        assert got[0].ok and got[0].value == ref[0].value
        assert got[2].ok and got[2].value == ref[2].value
        assert not got[1].ok and "worker died 2 times" in got[1].reason
        assert ev.restarts >= 3  # the first breakage, then two for 102 (max_retries=1)
        assert ev.evaluate([cands[3]])[0].value == serial[3].value  # still works


@pytest.mark.slow
def test_workers_rebuilding_another_task_fall_back_to_serial():
    from metaloss import tasks

    task = tasks.get("iris-linear", seed=1)  # the spec records tasks.get's default seed 0
    fit = TrainFitness(task, steps=30)
    cands = population()[:3]
    ev = ProcessPoolEvaluator(fit, workers=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ev.evaluate(cands)
    assert ev.fallback_reason is not None and "differs from the driver" in ev.fallback_reason
    assert any("evaluating serially" in str(w.message) for w in caught)
    assert_identical(SerialEvaluator(fit).evaluate(cands), got)
    with pytest.raises(ConfigError, match="workers cannot build the fitness"):
        spec = replace(FitnessSpec.from_fitness(fit), task="no-such-task", fingerprint=None)
        ProcessPoolEvaluator(spec, workers=1).evaluate(cands[:1])


@pytest.mark.slow
def test_pool_runs_the_evomal_pipeline_like_serial(iris):
    from metaloss.meta.gp import EvoMALFitness, GPSearch

    fit = EvoMALFitness(iris, fitness_steps=30, local_steps=5, seed=0)
    cands = GPSearch(population=6, seed=0).ask()
    serial = SerialEvaluator(fit).evaluate(cands)
    with ProcessPoolEvaluator(fit, workers=2) as ev:
        pooled = ev.evaluate(cands)
        assert ev.fallback_reason is None and ev.spec is not None and ev.spec.kind == "evomal"
    assert_identical(serial, pooled)
    assert any(f.ok and "weights" in f.tensors for f in serial)
    for s, p in zip(serial, pooled):  # the tuned edge weights travel back too
        assert s.tensors.keys() == p.tensors.keys()
        assert all(torch.equal(s.tensors[k], p.tensors[k]) for k in s.tensors)

"""Fitness kinds: the registry, staged fitness functions, and evaluators that know no method."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, SerialEvaluator, TrainFitness
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.batched import BatchedEvaluator
from metaloss.evaluators.spec import FitnessSpec

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_evaluators_import_no_method_module():
    """Every evaluator module imports without metaloss.meta (no import circle)."""
    modules = ["base", "fitness", "serial", "memory", "stacked", "batched", "spec", "pool", "ray"]
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module('metaloss.evaluators.' + m)\n"
        "print(sorted(k for k in sys.modules if k.startswith('metaloss.meta')))"
    )
    assert run_python(code) == "[]"


def test_evaluator_code_names_no_method():
    """No evaluator module imports or branches on a method, a loss family or a test hook
    (docstring examples aside)."""
    words = ("metaloss.meta", "EvoMALFitness", "TaylorLoss", "crash_ids", "os._exit(")
    for path in (ROOT / "metaloss" / "evaluators").glob("*.py"):
        code = [ln for ln in path.read_text().splitlines() if not ln.strip().startswith(">>>")]
        for word in words:
            assert not any(word in ln for ln in code), f"{path.name} mentions {word}"


def test_registry_lookup_and_errors():
    assert fitness_kinds.get("train") is TrainFitness
    with pytest.raises(ConfigError, match="unknown fitness kind 'nope'"):
        fitness_kinds.get("nope")
    with pytest.raises(ConfigError, match="cannot import 'no.such.module'"):
        fitness_kinds.get("nope", "no.such.module")

    class Other(TrainFitness):
        pass

    with pytest.raises(ConfigError, match="already registered"):
        fitness_kinds.register("train", Other)
    with pytest.raises(ConfigError, match="no registered fitness kind"):
        fitness_kinds.describe(lambda c: None)


def test_a_kind_is_found_through_its_module_path():
    """A fresh process finds a kind registered by a test module, given only its path."""
    code = (
        "from metaloss.evaluators import fitness as f\n"
        "print('crash_test' in f.kinds(), f.get('crash_test', 'helpers.crashing').__name__)"
    )
    assert run_python(code) == "False CrashingFitness"


def test_spec_round_trip_rebuilds_a_registered_kind(iris):
    from helpers.crashing import CrashingFitness, crashing

    fit = crashing(TrainFitness(iris, steps=15, seed=2), crash_ids=[5])
    spec = FitnessSpec.from_json(FitnessSpec.from_fitness(fit).to_json())
    assert (spec.kind, spec.module) == ("crash_test", CrashingFitness.__module__)
    rebuilt = spec.build(task=iris)
    assert type(rebuilt) is CrashingFitness and rebuilt.to_options() == fit.to_options()
    assert rebuilt.crash == {"crash_ids": [5]} and rebuilt.steps == 15 and rebuilt.seed == 2


def test_a_staged_fitness_is_batched_after_its_prepare_stage(iris):
    """A fitness with its own prepare stage (here: rejecting one loss kind, replacing
    another) is batched by the evaluator exactly as its serial call scores it."""

    class Staged:
        def __init__(self) -> None:
            self.inner = TrainFitness(iris, steps=30)

        def prepare(self, cand):
            if cand.spec["kind"] == "mse":
                from metaloss.evaluators import Fitness

                return Fitness.failure("prepare: mse rejected")
            return Candidate(cand.id, {"kind": "cross_entropy"}), {}

        def train_fitness(self) -> TrainFitness:
            return self.inner

        def __call__(self, cand):
            return fitness_kinds.staged_call(self, cand)

    cands = [Candidate(0, {"kind": "mse"}), Candidate(1, {"kind": "mae"})]
    ev = BatchedEvaluator(Staged())
    got = ev.evaluate(cands)
    ref = SerialEvaluator(Staged()).evaluate(cands)
    assert ev.fallback_reason is None
    assert [f.ok for f in got] == [False, True] and got[0].reason == "prepare: mse rejected"
    assert (
        got[1].value
        == ref[1].value
        == TrainFitness(iris, steps=30)(Candidate(0, {"kind": "cross_entropy"})).value
    )

"""Population searches: ask/tell round trips, failures as data, caching, replay resume, SIGKILL."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import metaloss as ml
from metaloss.errors import ArtifactError
from metaloss.evaluators import Candidate, Fitness, SerialEvaluator, guarded
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.evolution import CMAES, OpenAIES, VectorFamily
from metaloss.meta.gp import GPSearch, rejection_filter
from metaloss.meta.search import run_search

ROOT = Path(__file__).resolve().parents[2]


def quadratic(c: Candidate) -> Fitness:
    theta = c.tensors["theta"].double()
    return Fitness(float(((theta - 0.5) ** 2).sum()))


@pytest.mark.parametrize("make", [
    lambda: CMAES(VectorFamily(TaylorLoss([2.0] * 8)), sigma=0.5, popsize=8, seed=0),
    lambda: OpenAIES(VectorFamily(TaylorLoss([2.0] * 8)), sigma=0.1, popsize=8, lr=0.1, seed=0),
])  # fmt: skip
def test_es_ask_tell_round_trip_minimises(make):
    es = make()
    hist = run_search(es, SerialEvaluator(quadratic), generations=30)
    assert hist[-1]["best"] < 0.2 * hist[0]["best"]
    assert es.best_fitness == min(h["best"] for h in hist)
    assert isinstance(es.best_loss(), TaylorLoss)


def test_openai_es_mean_follows_adam_by_hand():
    """The mean moves by Adam (Kingma & Ba, written out in numpy here) on the centred-rank
    gradient estimate, with L2 weight decay."""
    es = OpenAIES(VectorFamily(TaylorLoss([2.0] * 8)), sigma=0.1, popsize=6, lr=0.05, seed=1,
                  weight_decay=0.01)  # fmt: skip
    mean, m, v = es.mean.copy(), np.zeros(8), np.zeros(8)
    for t in range(1, 4):
        cands = es.ask()
        fits = [quadratic(c) for c in cands]
        values = np.array([f.value for f in fits])
        ranks = np.empty(6)
        ranks[np.argsort(values, kind="stable")] = np.arange(6)
        eps = (np.stack([c.tensors["theta"].double().numpy() for c in cands]) - mean) / 0.1
        grad = ((ranks / 5 - 0.5)[:, None] * eps).sum(0) / (6 * 0.1) + 0.01 * mean
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        mean = mean - 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        es.tell(cands, fits)
        np.testing.assert_allclose(es.mean, mean, rtol=1e-5, atol=1e-6)


def test_es_is_deterministic_for_a_seed():
    a = CMAES(VectorFamily(TaylorLoss()), popsize=6, seed=3).ask()
    b = CMAES(VectorFamily(TaylorLoss()), popsize=6, seed=3).ask()
    assert all(torch.equal(x.tensors["theta"], y.tensors["theta"]) for x, y in zip(a, b))


def test_nan_and_exceptions_are_failures_not_crashes():
    def bad(c: Candidate) -> Fitness:
        if c.id % 3 == 0:
            raise RuntimeError("boom")
        if c.id % 3 == 1:
            return Fitness(math.nan)
        return quadratic(c)

    es = CMAES(VectorFamily(TaylorLoss()), popsize=6, seed=0)
    hist = run_search(es, SerialEvaluator(bad), generations=3)
    assert all(h["rejects"] == 4 for h in hist)
    assert set(hist[0]["reasons"]) == {"RuntimeError", "non-finite fitness"}
    assert math.isfinite(es.best_fitness)


def test_taylorglo_nan_candidate_rejected():
    """A Taylor loss that blows up gives a failure record through the real fitness."""
    from metaloss.evaluators import TrainFitness

    task = ml.tasks.get("yacht-mlp")
    fit = guarded(
        TrainFitness(task, steps=30, overrides={"lr": 10.0}),
        Candidate(0, TaylorLoss([0, 0, 5, 0, 50, 0, 0, 0]).spec()),
    )
    assert not fit.ok and "diverged" in fit.reason and fit.value == math.inf


def test_gp_never_reevaluates_a_known_tree_and_caches_rejections(iris):
    search = GPSearch(population=10, seed=1, learn_weights=False)
    seen: set[str] = set()

    def fitness(c: Candidate) -> Fitness:
        key = ml.losses.symbolic.canonical(c.build().tree)
        assert key not in seen
        seen.add(key)
        return Fitness.failure("filter: test") if len(seen) % 2 else Fitness(len(seen) / 100)

    run_search(search, SerialEvaluator(fitness), generations=6)
    assert search.evaluated == len(seen) and search.cache_hits > 0
    assert search.rejections()["filter"] >= 1
    assert all(m.tree.is_valid() for m in search.members)


def test_gp_search_with_a_nan_primitive_finishes_and_reports(digits, monkeypatch):
    from metaloss.losses.symbolic import primitives

    for name in ("tanh", "square"):
        prim = primitives.PRIMITIVES[name]
        monkeypatch.setitem(
            primitives.PRIMITIVES, name, dataclasses.replace(prim, torch=lambda x: x * math.nan)
        )
    res = ml.learn("gplfl", digits, population=12, generations=3, fitness_steps=30, seed=0)
    assert res.info["rejected"] and res.hall_of_fame
    assert "tanh" not in res.hall_of_fame[0]["formula"]
    assert all(math.isfinite(r["fitness"]) for r in res.hall_of_fame)


def test_rejection_filter(iris):
    ok, _ = rejection_filter(ml.losses.get_loss("ce"), iris)
    assert ok
    const = ml.losses.symbolic.SymbolicLoss.from_string("mul(y, sub(y, y))")
    ok, reason = rejection_filter(const, iris)
    assert not ok and reason.startswith("filter")


def test_replay_resume_equals_uninterrupted(iris, tmp_path):
    def search():
        return GPSearch(population=6, seed=4, learn_weights=True)

    def fitness(c: Candidate) -> Fitness:
        loss = c.build()
        return Fitness(float(loss.tree.size) / 10, tensors={"weights": loss.weights * 2})

    full = search()
    run_search(full, SerialEvaluator(fitness), generations=5)
    part = search()
    run_search(part, SerialEvaluator(fitness), generations=2, run_dir=tmp_path)
    resumed = search()
    calls = []
    ev = SerialEvaluator(lambda c: calls.append(c.id) or fitness(c))
    run_search(resumed, ev, generations=5, run_dir=tmp_path)
    assert [m.key for m in resumed.hall_of_fame()] == [m.key for m in full.hall_of_fame()]
    assert all(
        torch.equal(a.weights, b.weights)
        for a, b in zip(resumed.hall_of_fame(), full.hall_of_fame())
    )
    assert len(calls) == full.evaluated - part.evaluated  # replayed ones were not re-run


def test_resume_with_other_settings_is_refused(tmp_path):
    run_search(GPSearch(population=4, seed=0), SerialEvaluator(quadratic_gp), 1, tmp_path)
    with pytest.raises(ml.MetalossError, match="does not match"):
        run_search(GPSearch(population=4, seed=9), SerialEvaluator(quadratic_gp), 2, tmp_path)


def test_a_method_resumed_under_other_fitness_settings_is_refused(tmp_path):
    """The candidates' digests cannot see how fitness is measured (steps, early stopping,
    data): the run's identity does, so a resume never mixes two protocols."""
    task = ml.tasks.get("iris-linear")
    kw = dict(preset="fast", seed=0, generations=1)
    ml.learn("taylorglo", task, run_dir=tmp_path, **kw)
    head = json.loads((tmp_path / "generations.jsonl").read_text().splitlines()[0])
    assert head["type"] == "identity" and head["identity"]["config.fitness_steps"] == 20
    with pytest.raises(ArtifactError, match=r"config.fitness_steps: recorded 20 vs now 30"):
        ml.learn("taylorglo", task, run_dir=tmp_path, fitness_steps=30, **kw)
    with pytest.raises(ArtifactError, match="config.early_stop_examples"):
        ml.learn("taylorglo", task, run_dir=tmp_path, early_stop_examples=0, **kw)
    # more generations, or another evaluator, leave the recorded fitness valid: resumed
    longer = ml.learn("taylorglo", task, run_dir=tmp_path, **{**kw, "generations": 2})
    fresh = ml.learn("taylorglo", task, **{**kw, "generations": 2}, evaluator="batched")
    assert [h["best"] for h in longer.history] == pytest.approx([h["best"] for h in fresh.history])
    # another training protocol of the task (a changed default lr) changes every fitness
    other = ml.tasks.get("iris-linear")
    other.defaults = other.defaults.with_(lr=0.1)
    with pytest.raises(ArtifactError, match="data: recorded"):
        ml.learn("taylorglo", other, run_dir=tmp_path, **{**kw, "generations": 2})
    # a history without an identity (an older metaloss) cannot be checked: refused
    lines = (tmp_path / "generations.jsonl").read_text().splitlines()
    (tmp_path / "generations.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ArtifactError, match="older metaloss"):
        ml.learn("taylorglo", task, run_dir=tmp_path, **{**kw, "generations": 3})


def quadratic_gp(c: Candidate) -> Fitness:
    return Fitness(float(len(json.dumps(c.spec))))


def _learn_cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "metaloss.cli", "learn", "evomal", "--task", "iris-linear",
        "--out", str(out), "--set", "population=6", "--set", "generations=5",
        "--set", "fitness_steps=40", "--set", "local_steps=5", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ref = subprocess.run(_learn_cmd(tmp_path / "ref"), env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _learn_cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    gen_file = run / "generations.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if gen_file.exists() and len(gen_file.read_text().splitlines()) >= 3:  # id + 2 gens
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "spec.json").exists()  # it really was interrupted
    again = subprocess.run(_learn_cmd(run), env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    res = subprocess.run(_learn_cmd(run, "--resume"), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    a = json.loads((tmp_path / "ref" / "spec.json").read_text())
    b = json.loads((run / "spec.json").read_text())
    assert a["hall_of_fame"] == b["hall_of_fame"] and a["formula"] == b["formula"]


def test_evaluate_report_and_welch(iris):
    report = ml.evaluate(["mse"], iris, seeds=3, baselines=["cross_entropy"], steps=100)
    assert [r.name for r in report.rows] == ["cross_entropy", "mse"]
    assert np.isnan(report.rows[0].p_value) and 0 <= report.rows[1].p_value <= 1
    assert "cross_entropy" in report.markdown()


def test_seed_trees_enter_the_first_generation_and_survive_by_elitism():
    from metaloss.meta.gp import BASELINE_TREES, resolve_seed_trees

    assert resolve_seed_trees("baselines") == list(BASELINE_TREES.values())
    assert resolve_seed_trees(["ce", "abs(sub(y, y_hat))"])[1] == "abs(sub(y, y_hat))"
    search = GPSearch(population=6, seed=0, seed_trees="baselines", learn_weights=False)
    first = [c.build().tree.to_prefix() for c in search.ask()]
    ce = ml.losses.symbolic.Tree.parse(BASELINE_TREES["ce"]).to_prefix()
    assert ce in first

    def fitness(c: Candidate) -> Fitness:  # the CE tree is the best possible here
        return Fitness(0.0 if c.build().tree.to_prefix() == ce else 1.0)

    search = GPSearch(population=6, seed=0, seed_trees="baselines", learn_weights=False)
    run_search(search, SerialEvaluator(fitness), generations=4)
    assert any(m.tree.to_prefix() == ce for m in search.members)
    with pytest.raises(ml.MetalossError, match="seed_trees"):
        GPSearch(population=2, seed=0, seed_trees=["ce", "mse", "ce"])


def test_suite_maps_only_baselines_to_the_task_loss():
    from metaloss.suite import _baseline_for

    assert _baseline_for("ce", False) == "mse" and _baseline_for("ce", True) == "ce"
    assert _baseline_for("ml3", False) == "ml3" and _baseline_for("evomal", True) == "evomal"

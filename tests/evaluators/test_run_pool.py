"""Learning-rate grids in worker processes (RunPool): the same values as the runs made here."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import pytest
import torch

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate
from metaloss.evaluators.run_pool import RunPool
from metaloss.evaluators.serial import ValMetricFitness
from metaloss.grid_log import GridLog
from metaloss.meta.whole_run import WholeRunFitness
from metaloss.tuning import LrTuning, TuneConfig, tune_lr, tune_whole_runs


def _same_grid(a: LrTuning, b: LrTuning) -> None:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("seconds")
        d.pop("workers", None)
    assert da == db


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' setting: bit-for-bit equal runs
    yield
    torch.set_num_threads(threads)


def test_a_learned_losss_grid_in_workers_equals_the_serial_grid(one_thread):
    task = ml.tasks.get("digits-mlp")
    torch.manual_seed(3)
    loss = ml.losses.NeuralLoss(bias=True)  # random weights: a loss unlike CE
    config = task.defaults.with_(steps=60)
    tune = TuneConfig(factors=(0.5, 1.0, 2.0), seeds=2, max_widen=1, batched=False)
    serial = tune_lr(task, loss, config, tune)
    with RunPool(2) as pool:
        pooled = tune_lr(task, loss, config, tune, pool=pool)
        assert pool.fallback_reason is None
    _same_grid(serial, pooled)
    assert pooled.workers == 2 and serial.workers == 1
    assert pooled.to_dict()["workers"] == 2 and "workers" not in serial.to_dict()
    assert LrTuning.from_dict(pooled.to_dict()).workers == 2


def test_adalfl_whole_runs_in_workers_equal_the_serial_grid(tmp_path, one_thread):
    task = ml.tasks.get("iris-linear")
    opts = {"steps": 30, "init_steps": 5, "snapshots": 0}

    def describe(seed: int, lr: float) -> WholeRunFitness:
        return WholeRunFitness(task, "adalfl", seed, {**opts, "lr": lr})

    def run(t, seed, lr):  # the suite's serial run before RunPool
        assert torch.equal(t.test.x, task.val.x)  # tuning never sees test data
        return ml.learn("adalfl", t, seed=seed, progress=False, **opts, lr=lr).info["val_metric"]

    tune = TuneConfig(factors=(0.5, 2.0, 8.0), seeds=2, max_widen=1)
    serial = tune_whole_runs(task, run, 0.1, tune)
    described = tune_whole_runs(task, None, 0.1, tune, describe=describe)
    log = GridLog(tmp_path / "runs.jsonl").scoped("grid")
    with RunPool(2) as pool:
        pooled = tune_whole_runs(task, None, 0.1, tune, pool=pool, describe=describe, runs=log)
    _same_grid(serial, described)
    _same_grid(serial, pooled)
    assert pooled.workers == 2 and described.workers == 1
    # each run the workers ended was recorded: a resume takes them all, running none
    assert len(GridLog(log.path).scoped("grid")) == sum(len(p.values) for p in pooled.points)

    def never(seed, lr):
        raise AssertionError("a recorded run ran again")

    resumed = tune_whole_runs(
        task, None, 0.1, tune, describe=never, runs=GridLog(log.path).scoped("grid")
    )
    _same_grid(serial, resumed)


def test_val_metric_fitness_reports_a_diverged_run_as_the_serial_grid_does(one_thread):
    ce = Candidate(0, {"kind": "cross_entropy"})
    for name, lr, value in (("digits-mlp", 1e8, 1.0), ("diabetes-mlp", 1e3, math.inf)):
        task = ml.tasks.get(name)
        config = task.defaults.with_(steps=30, lr=lr)
        res = ml.train(task, task.task_loss(), config, test=False)
        fitness = ValMetricFitness(task, 30, 0, config)
        cand = ce if task.classification else Candidate(0, {"kind": "mse"})
        assert res.diverged and fitness(cand).value == res.val_metric == value
        data = json.loads(json.dumps(fitness.to_options()))
        assert ValMetricFitness.from_options(task, data) == fitness
    task = ml.tasks.get("diabetes-mlp")  # through workers: inf comes back as inf
    tune = TuneConfig(factors=(1.0, 1e5), seeds=1, max_widen=0, batched=False)
    config = task.defaults.with_(steps=30)
    serial = tune_lr(task, task.task_loss(), config, tune)
    with RunPool(2) as pool:
        pooled = tune_lr(task, task.task_loss(), config, tune, pool=pool)
    assert pooled.points[-1].values == serial.points[-1].values == [math.inf]
    _same_grid(serial, pooled)


def test_each_result_is_reported_with_its_own_index_and_a_failed_record_stops_the_pool(
    one_thread,
):
    task = ml.tasks.get("diabetes-mlp")  # a regression: every run ends at its own value
    mse = Candidate(0, {"kind": "mse"})
    configs = [task.defaults.with_(steps=s) for s in (3000, 30, 60)]  # the slow one first
    jobs = [(ValMetricFitness(task, c.steps, 0, c), mse) for c in configs]
    serial = [f(c).value for f, c in jobs]
    assert len(set(serial)) == 3  # a mixed-up index would report another job's value
    seen: list[tuple[int, float]] = []
    with RunPool(2) as pool:
        out = pool.run(jobs, on_result=lambda i, f: seen.append((i, f.value)))
        assert [f.value for f in out] == serial
        assert sorted(seen) == list(enumerate(serial))  # in the order they ended

        def full_disk(i, f):
            raise OSError("no space left on device")

        with pytest.raises(OSError, match="no space"):
            pool.run(jobs, on_result=full_disk)
        assert pool._pool is None  # the queued runs were dropped with the workers
        assert [f.value for f in pool.run(jobs)] == serial  # and the pool starts again


def test_a_task_the_workers_cannot_rebuild_runs_here_with_a_warning(one_thread):
    task = ml.tasks.get("iris-linear")
    renamed = replace(task, name="my-own-task")  # not in the registry
    tune = TuneConfig(factors=(1.0, 4.0), seeds=1, max_widen=0, batched=False)
    serial = tune_lr(renamed, ml.losses.get_loss("ce"), renamed.defaults.with_(steps=40), tune)
    pool = RunPool(2)
    with pytest.warns(UserWarning, match="cannot rebuild"):
        pooled = tune_lr(
            renamed, ml.losses.get_loss("ce"), renamed.defaults.with_(steps=40), tune, pool=pool
        )
    _same_grid(serial, pooled)
    assert pooled.workers == 1 and "my-own-task" in pool.fallback_reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: later grids run here silently
        assert pool.run([(ValMetricFitness(renamed), Candidate(0, {"kind": "mse"}))]) is None


def test_a_conv_models_grid_goes_unbatched_only_with_several_workers(monkeypatch):
    task = ml.tasks.get("iris-linear")
    import metaloss.evaluators.auto as auto

    monkeypatch.setattr(auto, "_has_conv", lambda model: True)  # pretend: a conv model
    calls = []

    class Recorder(RunPool):
        def run(self, jobs, on_result=None):
            calls.append(len(jobs))
            self.fallback_reason = "recorded only"  # as RunPool does: the runs happen here
            return None

    loss = ml.losses.get_loss("ce")
    config = task.defaults.with_(steps=20)
    tune = TuneConfig(factors=(1.0, 2.0), seeds=1, max_widen=0)
    assert tune_lr(task, loss, config, tune).batched  # one process: one vmapped batch
    assert tune_lr(task, loss, config, tune, pool=Recorder(1)).batched
    res = tune_lr(task, loss, config, tune, pool=Recorder(2))
    assert not res.batched and calls == [2] and res.workers == 1  # fell back: ran here
    assert math.isfinite(res.best.mean)


def test_bad_worker_counts_are_config_errors():
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match="workers"):
            RunPool(bad)
    from metaloss.suite import run_suite

    with pytest.raises(ConfigError, match="workers"):
        run_suite("quick", "/nonexistent/never-written", tune_workers=0)
    with pytest.raises(ConfigError, match="workers"):
        ml.evaluate(["ce"], ml.tasks.get("iris-linear"), seeds=1, tune_workers=0)
    with pytest.raises(ConfigError, match="method"):
        WholeRunFitness.from_options(ml.tasks.get("iris-linear"), {"seed": 1})
    with pytest.raises(ConfigError, match="run or describe"):
        tune_whole_runs(ml.tasks.get("iris-linear"), None, 0.1, TuneConfig())


def test_a_suite_with_tune_workers_gives_the_one_process_cells(tmp_path, one_thread):
    from metaloss.suite import Suite, run_suite

    budgets = {"adalfl": {"init_steps": 5, "snapshots": 0}}
    tiny = Suite("tiny", tasks=["iris-linear"], methods=["ce", "adalfl"], seeds=1, budgets=budgets)
    kw = dict(steps=30, log=lambda *a: None)
    run_suite(tiny, tmp_path / "one", **kw)
    run_suite(tiny, tmp_path / "two", tune_workers=2, **kw)

    def cells(folder):
        rows = [json.loads(x) for x in (tmp_path / folder / "cells.jsonl").read_text().splitlines()]
        return {r["method"]: r for r in rows}

    one, two = cells("one"), cells("two")
    for method in ("ce", "adalfl"):
        assert (one[method]["test"], one[method]["lr"]) == (two[method]["test"], two[method]["lr"])
        grid = [p["val"] for p in one[method]["tuning"]["grid"]]
        assert grid == [p["val"] for p in two[method]["tuning"]["grid"]]
    assert two["adalfl"]["tuning"]["workers"] == 2 and "workers" not in one["adalfl"]["tuning"]
    assert "workers" not in two["ce"]["tuning"]  # a dense model's grid stays one vmapped batch


def test_evaluate_a_saved_adalfl_run_with_tune_workers(tmp_path, one_thread):
    task = ml.tasks.get("iris-linear")
    run_dir = tmp_path / "ada"
    ml.learn("adalfl", task, init_steps=5, steps=30, snapshots=0).save(run_dir)
    tune = TuneConfig(factors=(0.5, 2.0), seeds=2, max_widen=0)
    kw = dict(seeds=1, steps=30, tune_config=tune, diagnose=False, progress=False)
    one = ml.evaluate([str(run_dir)], task, **kw)
    two = ml.evaluate([str(run_dir)], task, tune_workers=2, **kw)
    for a, b in zip(one.rows, two.rows, strict=True):
        assert (a.name, a.values, a.lr) == (b.name, b.values, b.lr)
        assert [p["val"] for p in a.tuning["grid"]] == [p["val"] for p in b.tuning["grid"]]
    assert two.rows[-1].name.endswith("(online)") and two.rows[-1].tuning["workers"] == 2

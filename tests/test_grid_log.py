"""Learning-rate grids resume run by run (GridLog): a stopped tuning, resumed, equals the
uninterrupted one and trains only the runs that had not ended."""

from __future__ import annotations

import json
import math

import pytest
import torch

import metaloss as ml
import metaloss.training
from metaloss.errors import ArtifactError, ConfigError
from metaloss.grid_log import GridLog
from metaloss.tuning import TuneConfig, tune_lr, tune_whole_runs


class Stop(Exception):
    """A stand-in for a killed process."""


def _grid(t):
    return [(p.lr, p.values) for p in t.points], t.lr


def test_the_log_round_trips_and_refuses_bad_lines(tmp_path):
    path = tmp_path / "runs.jsonl"
    log = GridLog(path).scoped("a")
    log.add(1, 0.02, math.inf)
    log.add(2, 0.04, 0.25)
    log.scoped("b").add(1, 0.02, 0.5)
    again = GridLog(path)
    assert again.scoped("a").get(1, 0.02) == math.inf and again.scoped("a").get(2, 0.04) == 0.25
    assert again.scoped("b").get(1, 0.02) == 0.5 and again.scoped("b").get(2, 0.04) is None
    assert len(again.scoped("a")) == 2
    with open(path, "a") as fh:  # a record torn by a crash is ignored
        fh.write('{"key": "a", "seed": 3, "lr"')
    assert GridLog(path).scoped("a").get(3, 0.02) is None
    for bad, field in [
        ({"key": 1, "seed": 0, "lr": 0.1, "value": 0.1}, "key"),
        ({"key": "a", "seed": 0.5, "lr": 0.1, "value": 0.1}, "seed"),
        ({"key": "a", "seed": 0, "lr": -1, "value": 0.1}, "lr"),
        ({"key": "a", "seed": 0, "lr": 0.1, "value": "big"}, "value"),
        ({"key": "a", "seed": 0, "lr": True, "value": 0.1}, "lr"),
        ({"key": "a", "seed": 0, "lr": 10**400, "value": 0.1}, "lr"),
        ({"key": "a", "seed": 0, "lr": 0.1, "value": 10**400}, "value"),
    ]:
        other = tmp_path / f"bad-{field}.jsonl"
        other.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ArtifactError, match=rf"bad-{field}.jsonl, line 1: '{field}'"):
            GridLog(other)
    digits = tmp_path / "digits.jsonl"  # beyond Python's int-parsing limit
    digits.write_text('{"key": "a", "seed": ' + "9" * 5000 + ', "lr": 0.1, "value": 0.1}\n')
    with pytest.raises(ArtifactError, match="digits.jsonl, line 1: not valid JSON"):
        GridLog(digits)
    twice = tmp_path / "twice.jsonl"  # e.g. two copied logs: the same run, two values
    row = {"key": "a", "seed": 0, "lr": 0.1, "value": 0.5}
    twice.write_text(json.dumps(row) + "\n" + json.dumps({**row, "value": 0.9}) + "\n")
    with pytest.raises(ArtifactError, match=r"twice.jsonl, line 2: the run \(seed 0, lr 0.1\)"):
        GridLog(twice)
    for value in (0.5, "nan"):  # the same value twice (a run made twice alike) is kept
        twice.write_text((json.dumps({**row, "value": value}) + "\n") * 2)
        got = GridLog(twice).scoped("a").get(0, 0.1)
        assert got == 0.5 if value == 0.5 else math.isnan(got)


def test_a_stopped_serial_grid_resumes_with_the_uninterrupted_values(tmp_path, monkeypatch):
    task = ml.tasks.get("iris-linear")
    loss = ml.losses.get_loss("ce")
    config = task.defaults.with_(steps=40)
    tune = TuneConfig(factors=(0.25, 1.0, 4.0), seeds=2, batched=False)
    whole = tune_lr(task, loss, config, tune)

    real_train, calls = metaloss.training.train, []

    def counted(*args, **kw):
        calls.append(kw["lr"])
        if len(calls) == 4 and stop:
            raise Stop
        return real_train(*args, **kw)

    monkeypatch.setattr(metaloss.training, "train", counted)
    log = GridLog(tmp_path / "runs.jsonl").scoped("iris ce")
    stop = True
    with pytest.raises(Stop):
        tune_lr(task, loss, config, tune, runs=log)
    assert len(GridLog(tmp_path / "runs.jsonl").scoped("iris ce")) == 3  # runs 1-3 ended
    stop, calls[:] = False, []
    resumed = tune_lr(
        task, loss, config, tune, runs=GridLog(tmp_path / "runs.jsonl").scoped("iris ce")
    )
    assert _grid(resumed) == _grid(whole)
    assert len(calls) == 6 - 3 + resumed.widened * 2  # only the runs that had not ended


def test_a_batched_grid_is_not_logged(tmp_path):
    task = ml.tasks.get("iris-linear")
    log = GridLog(tmp_path / "runs.jsonl").scoped("k")
    tune = TuneConfig(factors=(1.0, 2.0), seeds=1, max_widen=0)
    res = tune_lr(task, ml.losses.get_loss("ce"), task.defaults.with_(steps=20), tune, runs=log)
    assert res.batched and len(log) == 0 and not (tmp_path / "runs.jsonl").exists()


def test_a_stopped_whole_run_grid_resumes_and_widens_the_same(tmp_path):
    def val_of(seed, lr):  # best at lr 0.02, below the grid: it widens down 3 times
        return abs(math.log2(lr / 0.02)) + seed % 7 / 100

    calls = []

    def run(task, seed, lr):
        calls.append((seed, lr))
        if len(calls) == budget:
            raise Stop
        return val_of(seed, lr)

    task = ml.tasks.get("iris-linear")
    tune = TuneConfig(factors=(1.0, 2.0, 4.0), seeds=2, max_widen=3)
    budget = -1
    whole = tune_whole_runs(task, run, 0.08, tune)
    n = len(calls)
    assert whole.lr == 0.02 and whole.widened == 3 and n == 12
    log = GridLog(tmp_path / "runs.jsonl")
    for stop_at in (3, 8):  # inside the first grid, then inside the widening
        calls[:], budget = [], stop_at
        with pytest.raises(Stop):
            tune_whole_runs(task, run, 0.08, tune, runs=log.scoped(f"stop {stop_at}"))
        calls[:], budget = [], -1
        again = tune_whole_runs(
            task, run, 0.08, tune, runs=GridLog(log.path).scoped(f"stop {stop_at}")
        )
        assert _grid(again) == _grid(whole) and len(calls) == n - (stop_at - 1)


def test_a_suite_stopped_in_an_online_grid_resumes_run_by_run(tmp_path, monkeypatch):
    """The end-to-end property: AdaLFL's grid of whole online runs, stopped after three runs,
    resumed by ``run_suite``, gives the cells and tuning of an uninterrupted suite."""
    from metaloss.meta.whole_run import WholeRunFitness
    from metaloss.suite import Suite, run_suite

    torch.set_num_threads(1)
    budgets = {"adalfl": {"init_steps": 5, "snapshots": 0}}
    tiny = Suite("tiny", tasks=["iris-linear"], methods=["adalfl"], seeds=1, budgets=budgets)
    kw = dict(steps=30, log=lambda *a: None)
    run_suite(tiny, tmp_path / "whole", **kw)

    real, calls = WholeRunFitness.__call__, []

    def counted(self, candidate):
        calls.append((self.seed, self.options["lr"]))
        if len(calls) == 4 and stop:
            raise Stop
        return real(self, candidate)

    monkeypatch.setattr(WholeRunFitness, "__call__", counted)
    stop = True
    with pytest.raises(Stop):
        run_suite(tiny, tmp_path / "stopped", **kw)
    assert len((tmp_path / "stopped" / "tuning-runs.jsonl").read_text().splitlines()) == 3
    other = Suite("tiny", tasks=["iris-linear"], methods=["adalfl"], seeds=1,
                  budgets={"adalfl": {"init_steps": 25, "snapshots": 0}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"other budgets \(adalfl "):  # no mixed grid
        run_suite(other, tmp_path / "stopped", **kw)
    stop, calls[:], said = False, [], []
    run_suite(tiny, tmp_path / "stopped", **{**kw, "log": said.append})
    assert any("3 finished runs read back (tuning-runs.jsonl)" in m for m in said), said

    def cell(folder):
        (row,) = [
            json.loads(x) for x in (tmp_path / folder / "cells.jsonl").read_text().splitlines()
        ]
        return row["test"], row["lr"], [p["val"] for p in row["tuning"]["grid"]]

    assert cell("stopped") == cell("whole")
    grid_runs = sum(len(p["val"]) for p in json.loads(
        (tmp_path / "stopped" / "cells.jsonl").read_text())["tuning"]["grid"])  # fmt: skip
    assert len(calls) == grid_runs - 3  # the three recorded runs are not trained again


def test_a_resume_with_tune_workers_tunes_again(tmp_path):
    """A suite's tunings are keyed by whether it had tune workers (a CPU conv model's grid
    then trains unbatched, which rounds differently), so a resume under the other setting
    does not reuse them."""
    from metaloss.suite import Suite, run_suite
    from metaloss.suite_resume import read_tunings

    tiny = Suite("tiny", tasks=["iris-linear"], methods=["ce"], seeds=1)
    kw = dict(steps=20, log=lambda *a: None)
    run_suite(tiny, tmp_path / "s", **kw)
    run_suite(tiny, tmp_path / "s", tune_workers=2, **{**kw, "seeds": 2})
    keys = list(read_tunings(tmp_path / "s" / "tunings.jsonl"))
    assert len(keys) == 2 and [json.loads(k[-1])["tune_pool"] for k in keys] == [None, True]

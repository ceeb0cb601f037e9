"""Thread settings: ml.set_threads, threads= on train/evaluate/learn, the automatic rule, CLI."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import metaloss as ml
from metaloss import threads
from metaloss.errors import ConfigError


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    saved = (dict(threads._state), torch.get_num_threads())
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    threads._state.clear()
    threads._state.update(saved[0])
    torch.set_num_threads(saved[1])


class Recorder:
    """A cross-entropy loss that records torch's thread count at every call."""

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def __call__(self, y_pred, y_true):
        self.seen.add(torch.get_num_threads())
        return nn.functional.cross_entropy(y_pred, y_true)


def test_set_threads_sets_torch_and_zero_means_default():
    ml.set_threads(1)
    assert torch.get_num_threads() == 1 and threads.get_threads() == 1
    ml.set_threads(0)
    assert torch.get_num_threads() == threads.torch_default_threads()
    ml.set_threads("auto")
    assert threads.get_threads() == "auto"


@pytest.mark.parametrize("bad", [-1, "two", 1.5, "1.5", None])
def test_set_threads_rejects_bad_values(bad):
    with pytest.raises(ConfigError, match="threads"):
        ml.set_threads(bad)


def test_auto_rule_boundary():
    assert threads.auto_threads(threads.SMALL_MODEL_PARAMS) == 1
    assert threads.auto_threads(threads.SMALL_MODEL_PARAMS + 1) == threads.torch_default_threads()


def test_make_model_applies_rule(monkeypatch, iris):
    monkeypatch.setattr(threads, "_DEFAULT", 3)
    ml.set_threads("auto")
    torch.set_num_threads(3)  # torch's (pretended) default
    iris.make_model(0)  # 15 parameters
    assert torch.get_num_threads() == 1
    big = nn.Linear(1000, 1000)  # 1,001,000 parameters > SMALL_MODEL_PARAMS
    threads.apply_auto(big)
    assert torch.get_num_threads() == 3


def test_auto_keeps_a_users_torch_choice(monkeypatch, iris):
    monkeypatch.setattr(threads, "_DEFAULT", 3)
    ml.set_threads("auto")
    torch.set_num_threads(2)  # neither the default nor what the rule set: the user's choice
    iris.make_model(0)
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(3)
    iris.make_model(0)
    assert torch.get_num_threads() == 3


def test_explicit_setting_disables_rule(monkeypatch, iris):
    monkeypatch.setattr(threads, "_DEFAULT", 3)
    ml.set_threads(2)
    iris.make_model(0)
    assert torch.get_num_threads() == 2


def test_train_threads_keyword_used_during_call_and_restored(iris):
    ml.set_threads(1)
    rec = Recorder()
    ml.train(iris, rec, steps=3, threads=2)
    assert rec.seen == {2}
    assert torch.get_num_threads() == 1 and threads.get_threads() == 1
    assert "threads" in inspect.signature(ml.train).parameters


def test_evaluate_and_learn_accept_threads(iris, monkeypatch):
    from metaloss import training

    ml.set_threads(2)
    seen: set[int] = set()
    orig = training.train

    def spy(*args, **kwargs):
        seen.add(torch.get_num_threads())
        return orig(*args, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    res = ml.evaluate("cross_entropy", iris, seeds=1, steps=2, threads=1)
    assert [r.name for r in res.rows] == ["cross_entropy"] and seen == {1}
    assert torch.get_num_threads() == 2
    assert "threads" in inspect.signature(ml.learn).parameters
    with pytest.raises(ConfigError, match="threads"):
        ml.evaluate("cross_entropy", iris, seeds=1, steps=2, threads=-3)


def test_cli_threads_option():
    from helpers.cli import run_cli

    ok = run_cli("--threads", "1", "train", "-t", "iris-linear", "--loss", "ce", "--steps", "5")
    assert ok.returncode == 0, ok.stderr
    ok = run_cli("--threads", "auto", "train", "-t", "iris-linear", "--loss", "ce", "--steps", "5")
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("--threads", "many", "tasks")
    assert bad.returncode == 2 and "--threads" in bad.stderr + bad.stdout


def test_in_process_cli_runs_leak_no_thread_setting():
    """The in-process CLI runner puts back what ``--threads`` set (no state between tests)."""
    from helpers.cli import run_cli

    torch.set_num_threads(1)
    ml.set_threads("auto")
    assert run_cli("--threads", "2", "tasks", "--json").returncode == 0
    assert torch.get_num_threads() == 1 and ml.threads.get_threads() == "auto"

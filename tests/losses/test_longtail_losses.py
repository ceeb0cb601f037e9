"""Long-tail baselines (logit adjustment, class-balanced CE): values against formulas
evaluated with plain ``math``, their class counts against the task's long-tail profile,
and their wiring into ``evaluate``, the suites and AdaLFL's meta-objective."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.losses import (
    ClassBalancedLoss,
    LogitAdjustedLoss,
    build_loss,
    class_counts,
    get_baseline,
)
from metaloss.tasks.variants import long_tail_counts

LOGITS = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-2.0, 3.0, 0.25], [0.0, 0.1, 0.2]]
LABELS = [0, 2, 1, 2]
COUNTS = [50, 30, 20]


def _value(loss: torch.nn.Module) -> float:
    return float(loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS)))


def _log_softmax(row: list[float], y: int) -> float:
    return row[y] - math.log(sum(math.exp(v) for v in row))


def _ce() -> float:
    return sum(-_log_softmax(r, y) for r, y in zip(LOGITS, LABELS)) / len(LABELS)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_logit_adjustment_is_ce_on_logits_plus_tau_log_prior(tau: float) -> None:
    prior = [c / sum(COUNTS) for c in COUNTS]
    adjusted = [[v + tau * math.log(p) for v, p in zip(r, prior)] for r in LOGITS]
    by_hand = sum(-_log_softmax(r, y) for r, y in zip(adjusted, LABELS)) / len(LABELS)
    loss = LogitAdjustedLoss(class_counts=COUNTS, tau=tau)
    assert _value(loss) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand != pytest.approx(_ce(), rel=1e-3)  # the adjustment changes the value


def test_class_balanced_weights_are_effective_numbers_normalised_to_k() -> None:
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in COUNTS]
    w = [v * len(raw) / sum(raw) for v in raw]
    by_hand = sum(-w[y] * _log_softmax(r, y) for r, y in zip(LOGITS, LABELS)) / len(LABELS)
    loss = ClassBalancedLoss(class_counts=COUNTS, beta=beta)
    assert _value(loss) == pytest.approx(by_hand, rel=1e-12)
    weights = loss.weights(torch.zeros(1, 3, dtype=torch.float64), torch.tensor([0]))
    assert weights.tolist() == pytest.approx(w, rel=1e-12)
    assert w[2] > w[1] > w[0]  # rarer classes weigh more


def test_both_are_cross_entropy_on_balanced_counts_or_at_zero_strength() -> None:
    ce = _ce()
    for loss in (
        LogitAdjustedLoss(class_counts=[7, 7, 7]),
        LogitAdjustedLoss(class_counts=COUNTS, tau=0.0),
        ClassBalancedLoss(class_counts=[7, 7, 7]),
        ClassBalancedLoss(class_counts=COUNTS, beta=0.0),
    ):
        assert _value(loss) == pytest.approx(ce, rel=1e-12), loss.config()


def test_an_empty_class_counts_as_one() -> None:
    for cls in (LogitAdjustedLoss, ClassBalancedLoss):
        empty, one = cls(class_counts=[10, 0, 5]), cls(class_counts=[10, 1, 5])
        assert math.isfinite(_value(empty)) and _value(empty) == _value(one)


def test_counts_come_from_the_tasks_training_labels_and_match_the_long_tail() -> None:
    task = ml.tasks.get("digits-mlp+imb10")
    counts = class_counts(task)
    assert counts == torch.bincount(task.train.y, minlength=10).tolist()
    assert counts == long_tail_counts(counts[0], 10, 10.0)  # the exact profile
    for name in ("logit_adjusted", "class_balanced"):
        assert get_baseline(name, task=task).class_counts == counts
    with pytest.raises(ConfigError, match="regression task"):
        class_counts(ml.tasks.get("sine"))


def test_without_counts_they_refuse_to_run_naming_the_fix() -> None:
    for name in ("logit_adjusted", "class_balanced"):
        with pytest.raises(ConfigError, match=rf"get_baseline\('{name}', task=task\)"):
            _value(get_baseline(name))
    with pytest.raises(ConfigError, match="2 class counts but the model outputs 3"):
        _value(LogitAdjustedLoss(class_counts=[3, 4]))
    with pytest.raises(ConfigError, match="integer class targets"):
        LogitAdjustedLoss(class_counts=[3, 4])(torch.zeros(2, 2), torch.zeros(2))


def test_specs_round_trip_and_bad_configs_are_config_errors() -> None:
    for loss in (LogitAdjustedLoss(COUNTS, tau=0.7), ClassBalancedLoss(COUNTS, beta=0.9)):
        rebuilt = build_loss(json.loads(json.dumps(loss.spec())))
        assert rebuilt.config() == loss.config() and _value(rebuilt) == _value(loss)
    for kind, config, needle in [
        ("logit_adjusted", {"class_counts": [1]}, "two or more integers"),
        ("logit_adjusted", {"class_counts": [1, -2]}, "two or more integers"),
        ("logit_adjusted", {"class_counts": [1, 2.5]}, "two or more integers"),
        ("logit_adjusted", {"class_counts": [True, 2]}, "two or more integers"),
        ("logit_adjusted", {"class_counts": "12"}, "two or more integers"),
        ("logit_adjusted", {"class_counts": [1, 2**60]}, "two or more integers"),
        ("logit_adjusted", {"tau": float("nan")}, "tau must be finite"),
        ("logit_adjusted", {"tau": -1.0}, "tau must be finite"),
        ("class_balanced", {"beta": 1.0}, r"beta must be in \[0, 1\)"),
        ("class_balanced", {"bogus": 1}, "bad config"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            build_loss({"kind": kind, "config": config})


def test_suite_rows_and_evaluate_use_the_tasks_counts(tmp_path) -> None:
    from metaloss.suite import run_suite

    task = ml.tasks.get("iris-linear+imb5")
    run_suite("quick", tmp_path, seeds=1, tasks=[task.name], methods=["logit_adjusted"],
              steps=40, tune=False, log=lambda *a: None)  # fmt: skip
    (cell,) = [json.loads(x) for x in (tmp_path / "cells.jsonl").read_text().splitlines()]
    direct = ml.train(task, get_baseline("logit_adjusted", task=task), seed=0, steps=40)
    assert cell["test"] == direct.test_metric
    assert cell.get("diagnostic") is None  # a hand-made row: no step diagnostic
    report = ml.evaluate([], task, seeds=1, baselines=["ce", "class_balanced"], tune=None,
                         steps=40, diagnose=True)  # fmt: skip
    assert [r.name for r in report.rows] == ["ce", "class_balanced"]
    assert all(r.hand_made for r in report.rows)
    direct = ml.train(task, get_baseline("class_balanced", task=task), seed=0, steps=40)
    assert report.rows[1].values == [direct.test_metric]


def test_cli_train_and_adalfl_meta_objective_get_the_counts() -> None:
    from metaloss.cli import app
    from metaloss.meta.online import meta_objective_loss

    out = CliRunner().invoke(app, ["train", "-t", "iris-linear", "--imbalance", "5", "--steps",
                                   "20", "--json", "--loss", "logit_adjusted"])  # fmt: skip
    assert out.exit_code == 0, out.output
    task = ml.tasks.get("iris-linear+imb5")
    direct = ml.train(task, get_baseline("logit_adjusted", task=task), seed=0, steps=20)
    assert json.loads(out.stdout)["test_metric"] == pytest.approx(direct.test_metric)
    objective = meta_objective_loss("logit_adjusted", task)
    assert objective.class_counts == class_counts(task)

"""Robust and shaped baselines (MAE, GCE, SCE, PolyLoss-1, focal, label smoothing):
values against formulas evaluated with plain ``math`` on small hand-made batches."""

from __future__ import annotations

import math

import pytest
import torch

from metaloss.api import resolve_loss
from metaloss.errors import ConfigError
from metaloss.losses import build_loss, get_baseline

LOGITS = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-2.0, 3.0, 0.25]]
LABELS = [0, 2, 1]


def _softmax(row: list[float]) -> list[float]:
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


PROBS = [_softmax(r) for r in LOGITS]
P_Y = [p[y] for p, y in zip(PROBS, LABELS)]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _value(loss: torch.nn.Module) -> float:
    return float(loss(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS)))


def _hand_mae() -> float:
    return _mean([sum(abs(pk - (k == y)) for k, pk in enumerate(p)) for p, y in zip(PROBS, LABELS)])


HAND = {
    "mae": _hand_mae,
    "gce": lambda: _mean([(1 - p**0.7) / 0.7 for p in P_Y]),
    # alpha CE + beta RCE with log 0 = -4: RCE = -sum_k p_k log t_k = 4 (1 - p_y)
    "sce": lambda: _mean([0.1 * -math.log(p) + 1.0 * 4 * (1 - p) for p in P_Y]),
    "poly1": lambda: _mean([-math.log(p) + 1.0 * (1 - p) for p in P_Y]),
    "focal": lambda: _mean([-((1 - p) ** 2) * math.log(p) for p in P_Y]),
    # (1 - eps) * CE + eps * mean_k(-log p_k), eps = 0.1
    "label_smoothing": lambda: _mean(
        [
            0.9 * -math.log(p[y]) + 0.1 * _mean([-math.log(v) for v in p])
            for p, y in zip(PROBS, LABELS)
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_baseline_matches_hand_formula(name: str) -> None:
    assert _value(get_baseline(name)) == pytest.approx(HAND[name](), rel=1e-12)


def test_mae_is_twice_one_minus_p_y_and_plain_mae_for_regression() -> None:
    assert _hand_mae() == pytest.approx(_mean([2 * (1 - p) for p in P_Y]), rel=1e-12)
    y_hat, y = torch.tensor([[1.0], [-2.0], [0.5]]), torch.tensor([0.0, 1.0, 0.5])
    assert float(get_baseline("mae")(y_hat, y)) == pytest.approx((1 + 3 + 0) / 3)


def test_non_default_parameters_follow_the_formula() -> None:
    gce = build_loss({"kind": "gce", "config": {"q": 0.3}})
    assert _value(gce) == pytest.approx(_mean([(1 - p**0.3) / 0.3 for p in P_Y]), rel=1e-12)
    sce = build_loss({"kind": "sce", "config": {"alpha": 1.0, "beta": 0.5, "log_zero": -2.0}})
    by_hand = _mean([-math.log(p) + 0.5 * 2 * (1 - p) for p in P_Y])
    assert _value(sce) == pytest.approx(by_hand, rel=1e-12)
    poly = build_loss({"kind": "poly1", "config": {"epsilon": -0.5}})
    assert _value(poly) == pytest.approx(_mean([-math.log(p) - 0.5 * (1 - p) for p in P_Y]))
    # GCE at q = 1 is MAE / 2; as q -> 0 it tends to cross-entropy.
    assert _value(build_loss({"kind": "gce", "config": {"q": 1.0}})) == pytest.approx(
        _hand_mae() / 2, rel=1e-12
    )
    ce = _mean([-math.log(p) for p in P_Y])
    assert _value(build_loss({"kind": "gce", "config": {"q": 1e-6}})) == pytest.approx(ce, rel=1e-4)


@pytest.mark.parametrize("name", ["mae", "gce", "sce", "poly1", "focal", "label_smoothing"])
def test_gradients_finite_even_when_confident(name: str) -> None:
    loss = get_baseline(name)
    # Saturated logits: p_y -> 1 for the first row, p_y -> 0 for the second.
    logits = torch.tensor([[60.0, -60.0, 0.0], [-60.0, 60.0, 0.0], *LOGITS], requires_grad=True)
    value = loss(logits, torch.tensor([0, 0, *LABELS]))
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mae", "gce", "sce", "poly1"])
def test_new_baselines_resolve_by_name_and_round_trip(name: str) -> None:
    display, loss = resolve_loss(name)
    assert display == name and loss.kind == name
    rebuilt = build_loss(loss.spec())
    assert rebuilt.config() == loss.config() and _value(rebuilt) == _value(loss)


def test_bad_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="gce q"):
        build_loss({"kind": "gce", "config": {"q": 0.0}})
    with pytest.raises(ConfigError, match="sce log_zero"):
        build_loss({"kind": "sce", "config": {"log_zero": 0.0}})
    with pytest.raises(ConfigError, match="poly1 epsilon"):
        build_loss({"kind": "poly1", "config": {"epsilon": -2.0}})
    with pytest.raises(ConfigError, match="integer class targets"):
        get_baseline("gce")(torch.zeros(2, 1), torch.zeros(2))

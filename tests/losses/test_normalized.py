"""Gradient-normalised losses: the calibrated gradient norm equals cross-entropy's, the
scale survives saving, the model is untouched by calibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import metaloss as ml
from metaloss.errors import ConfigError
from metaloss.io import save_loss
from metaloss.losses import GradNormalized, build_loss, get_baseline, grad_norm
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.taylor import TaylorLoss


def _batches(task, n: int = 3, size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(1)
    idx = [torch.randperm(len(task.train), generator=gen)[:size] for _ in range(n)]
    return [(task.train.x[i], task.train.y[i]) for i in idx]


INNER = {
    "mae": lambda: get_baseline("mae"),
    "gce": lambda: get_baseline("gce"),
    "ml3": lambda: NeuralLoss.ml3(seed=0),
    "taylor": lambda: TaylorLoss([0.1, 0.5, -1.0, 2.0, 0.3, -0.4, 0.2, 0.1]),
}


@pytest.mark.parametrize("name", sorted(INNER))
def test_calibrated_gradient_norm_equals_cross_entropy(digits, name: str) -> None:
    model, batches = digits.make_model(0), _batches(digits)
    ce = grad_norm(get_baseline("ce"), model, batches)
    loss = GradNormalized(INNER[name]()).calibrate(model, batches)
    assert loss.scale != pytest.approx(1.0)  # the raw norms differ
    assert grad_norm(loss, model, batches) == pytest.approx(ce, rel=1e-5)


def test_scale_is_the_inverse_of_a_known_factor(iris) -> None:
    model, batches = iris.make_model(0), _batches(iris, size=32)
    assert GradNormalized(get_baseline("ce")).calibrate(model, batches).scale == pytest.approx(
        1.0, rel=1e-6
    )
    five_ce = GradNormalized(get_baseline("ce"), scale=5.0)
    assert GradNormalized(five_ce).calibrate(model, batches).scale == pytest.approx(0.2, rel=1e-6)


def test_grad_norm_by_hand_on_a_linear_model() -> None:
    # CE on a linear model: dL/dW = (softmax - onehot) x^T, dL/db = softmax - onehot.
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, -0.5]]))
        model.bias.zero_()
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([2])
    r = torch.softmax(model(x).detach(), -1)[0] - torch.tensor([0.0, 0.0, 1.0])
    by_hand = ((r[:, None] * x).pow(2).sum() + r.pow(2).sum()).sqrt()
    assert grad_norm(get_baseline("ce"), model, [(x, y)]) == pytest.approx(float(by_hand))


def test_calibration_leaves_the_model_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(2)]
    GradNormalized(get_baseline("gce")).calibrate(model, batches)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_dropout_models_calibrate_exactly_and_keep_the_global_rng() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).train()
    batches = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(3)]
    state = torch.get_rng_state()
    loss = GradNormalized(get_baseline("sce")).calibrate(model, batches)
    ce = grad_norm(get_baseline("ce"), model, batches)
    assert grad_norm(loss, model, batches) == pytest.approx(ce, rel=1e-5)
    assert torch.equal(torch.get_rng_state(), state)


def test_calibrate_on_task_uses_seeded_initial_batches(digits) -> None:
    a = GradNormalized(get_baseline("mae")).calibrate_on_task(digits, seed=3)
    b = GradNormalized(get_baseline("mae")).calibrate_on_task(digits, seed=3)
    c = GradNormalized(get_baseline("mae")).calibrate_on_task(digits, seed=4)
    assert a.scale == b.scale != c.scale and a.scale > 0


def test_saved_and_loaded_with_scale_and_inner_weights(tmp_path, digits) -> None:
    inner = NeuralLoss.ml3(seed=2)
    loss = GradNormalized(inner).calibrate(digits.make_model(0), _batches(digits))
    save_loss(tmp_path / "run", loss, meta={"method": "test"})
    back = ml.load(tmp_path / "run")
    assert isinstance(back, GradNormalized) and back.scale == loss.scale
    assert back.reference == "ce" and back.loss.kind == "neural"
    logits, labels = torch.randn(5, 10), torch.randint(0, 10, (5,))
    torch.testing.assert_close(back(logits, labels), loss(logits, labels))
    assert str(round(loss.scale, 3))[:4] in back.describe()


def test_bad_configs_are_config_errors(iris) -> None:
    with pytest.raises(ConfigError, match="unknown reference"):
        GradNormalized(get_baseline("mae"), reference="hinge")
    with pytest.raises(ConfigError, match="scale"):
        build_loss({"kind": "grad_normalized", "config": {"loss": {"kind": "mae"}, "scale": 0}})
    with pytest.raises(ConfigError, match="unknown loss kind"):
        build_loss({"kind": "grad_normalized", "config": {"loss": {"kind": "os.system"}}})
    flat = GradNormalized(TaylorLoss([0.0] * 8))  # zero loss: no gradient to rescale
    with pytest.raises(ConfigError, match="cannot calibrate"):
        flat.calibrate(iris.make_model(0), _batches(iris, size=16))

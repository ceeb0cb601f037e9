"""The trainer: deterministic, learns real tasks, honours the config, flags divergence."""

from __future__ import annotations

import pytest
import torch

from metaloss import tasks
from metaloss.errors import ConfigError
from metaloss.losses import get_loss
from metaloss.tasks.base import TrainConfig, random_crop_flip
from metaloss.training import Batcher, train


def test_same_seed_same_result(digits):
    a = train(digits, get_loss("ce"), steps=200, seed=3)
    b = train(digits, get_loss("ce"), steps=200, seed=3)
    c = train(digits, get_loss("ce"), steps=200, seed=4)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert a.test_metric == b.test_metric
    assert any(not torch.equal(x, y) for x, y in zip(a.model.parameters(), c.model.parameters()))


def test_learns_digits(digits):
    res = train(digits, get_loss("ce"), steps=1000, seed=0, eval_every=250)
    assert res.test_metric < 0.1 and [h["step"] for h in res.history] == [250, 500, 750, 1000]
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_regression_task_mse():
    task = tasks.get("yacht-mlp")
    res = train(task, get_loss("mse"), steps=1500, seed=0)
    assert task.kind == "regression" and res.metric == "mse" and res.test_metric < 0.2


def test_divergence_is_flagged(iris):
    class Exploding(torch.nn.Module):
        def forward(self, y_pred, y_true):
            return -(y_pred**2).sum() * 1e30

    res = train(iris, Exploding(), steps=50, seed=0)
    assert res.diverged and res.test_metric == 1.0


def test_loss_parameters_are_not_trained(iris):
    from metaloss.losses.neural import NeuralLoss

    loss = NeuralLoss.ml3()
    before = [p.clone() for p in loss.parameters()]
    train(iris, loss, steps=20)
    assert all(torch.equal(a, b) for a, b in zip(before, loss.parameters()))
    assert all(p.requires_grad for p in loss.parameters())


def test_bad_config_names_the_field():
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig(lr=-1)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")


def test_batcher_covers_every_example_each_epoch():
    b = Batcher(10, 3, seed=0, device="cpu")
    seen = torch.cat([b.next() for _ in range(3)])
    assert len(set(seen.tolist())) == 9
    state = b.state_dict()
    nxt = b.next()
    b.load_state_dict(state)
    assert torch.equal(b.next(), nxt)


def test_crop_flip_shapes_and_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, pad=2, generator=g)
    assert out.shape == x.shape
    # with pad 0 a crop is the identity up to a horizontal flip
    same = random_crop_flip(x, pad=0, generator=g)
    for i in range(2):
        assert torch.equal(same[i], x[i]) or torch.equal(same[i], x[i].flip(-1))


def test_unknown_task_and_missing_data_dir():
    with pytest.raises(ConfigError, match="unknown task"):
        tasks.get("mnist-transformer")
    with pytest.raises(ConfigError, match="needs --data-dir"):
        tasks.get("uci-mlp")

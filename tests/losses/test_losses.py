"""Baseline, neural and Taylor losses: values against hand computations, gradients, specs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaloss.errors import ConfigError
from metaloss.losses import build_loss, get_loss, outputwise
from metaloss.losses.neural import NeuralLoss, SmoothLeakyReLU
from metaloss.losses.taylor import TaylorLoss


def test_outputwise_classification_and_regression():
    logits, labels = torch.randn(5, 4), torch.tensor([0, 3, 1, 2, 3])
    p, t = outputwise(logits, labels)
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    assert torch.equal(t.argmax(-1), labels) and t.sum() == 5
    p, t = outputwise(torch.randn(5, 1), torch.randn(5))
    assert p.shape == t.shape == (5, 1)


def test_baselines_match_torch():
    logits, labels = torch.randn(8, 6), torch.randint(0, 6, (8,))
    torch.testing.assert_close(get_loss("ce")(logits, labels), F.cross_entropy(logits, labels))
    ls = get_loss("label_smoothing")(logits, labels)
    torch.testing.assert_close(ls, F.cross_entropy(logits, labels, label_smoothing=0.1))
    focal0 = build_loss({"kind": "focal", "config": {"gamma": 0.0}})
    torch.testing.assert_close(focal0(logits, labels), F.cross_entropy(logits, labels))
    mse = get_loss("mse")(logits, labels)
    expected = ((logits.softmax(-1) - F.one_hot(labels, 6)) ** 2).sum(-1).mean()
    torch.testing.assert_close(mse, expected)
    y_hat, y = torch.randn(8, 1), torch.randn(8)
    torch.testing.assert_close(get_loss("mse")(y_hat, y), F.mse_loss(y_hat[:, 0], y))


def test_unknown_loss_and_bad_config():
    with pytest.raises(ConfigError, match="unknown baseline"):
        get_loss("hinge2")
    with pytest.raises(ConfigError, match="unknown loss kind"):
        build_loss({"kind": "os.system"})
    with pytest.raises(ConfigError, match="focal gamma"):
        build_loss({"kind": "focal", "config": {"gamma": -1}})


def test_taylor_matches_hand_expanded_polynomial():
    theta = torch.randn(8)
    loss = TaylorLoss(theta)
    p, t = torch.rand(4, 3), torch.rand(4, 3)
    t0, t1, t2, t3, t4, t5, t6, t7 = theta.tolist()
    d, e = p - t1, t - t0
    by_hand = (
        t2 * d
        + t3 / 2 * d * d
        + t4 / 6 * d**3
        + t5 * e * d
        + t6 / 2 * e * d * d
        + t7 / 2 * e * e * d
    )
    torch.testing.assert_close(loss.pointwise(p, t), by_hand)
    # batched theta (population) broadcasts over data dims
    batched = torch.stack([theta, theta * 2])
    from metaloss.losses.taylor import taylor_polynomial

    out = taylor_polynomial(batched, p, t)
    torch.testing.assert_close(out[0], by_hand)
    with pytest.raises(ConfigError, match="8 values"):
        TaylorLoss([1.0, 2.0])


def test_neural_loss_presets_and_spec_round_trip():
    ml3 = NeuralLoss.ml3(seed=3)
    assert ml3.config()["hidden"] == [50, 50] and not ml3.bias
    assert all(p.dim() == 2 for p in ml3.parameters())  # no biases
    ada = NeuralLoss.adalfl()
    assert isinstance(ada.net[1], SmoothLeakyReLU) and ada.class_reduction == "mean"
    rebuilt = build_loss(ml3.spec())
    rebuilt.load_state_dict(ml3.state_dict())
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    torch.testing.assert_close(rebuilt(logits, labels), ml3(logits, labels))
    # same seed, same weights; softplus output keeps it non-negative
    assert torch.equal(NeuralLoss.ml3(seed=3).net[0].weight, ml3.net[0].weight)
    assert float(ml3(logits, labels)) >= 0


def test_neural_loss_extra_inputs_and_residual():
    loss = NeuralLoss(hidden=(8,), extra_dim=2, residual_ce=1.0)
    logits, labels, extra = torch.randn(5, 3), torch.randint(0, 3, (5,)), torch.randn(5, 2)
    base = NeuralLoss(hidden=(8,), extra_dim=2)
    base.load_state_dict(loss.state_dict())
    expected = base(logits, labels, extra) + F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss(logits, labels, extra), expected)
    with pytest.raises(ConfigError, match="extra inputs"):
        loss(logits, labels)


def test_a_hand_made_residual_is_added_and_saved_without_changing_the_weights(tmp_path):
    from metaloss.io import load, save_loss

    torch.manual_seed(0)
    logits, labels = torch.randn(6, 4), torch.randint(0, 4, (6,))
    loss = NeuralLoss.adalfl(residual="sce", seed=3)
    net = NeuralLoss.adalfl(residual_ce=0.0, seed=3)
    assert list(loss.state_dict()) == list(net.state_dict())  # SCE adds no parameters
    # SCE by hand (alpha 0.1, beta 1, log 0 = -4): 0.1 * -log p_y + 4 * (1 - p_y)
    p_y = torch.softmax(logits, -1).gather(1, labels[:, None]).squeeze(1)
    sce = (0.1 * -p_y.log() + 4 * (1 - p_y)).mean()
    torch.testing.assert_close(loss(logits, labels), net(logits, labels) + sce)
    assert loss.describe().endswith("+ 1 * sce")
    # the default leaves the config as it was before the option (run identities unchanged)
    assert "residual" not in NeuralLoss.adalfl().config()
    loaded = load(save_loss(tmp_path / "run", loss))
    assert loaded.config()["residual"] == "sce"
    torch.testing.assert_close(loaded(logits, labels), loss(logits, labels))
    with pytest.raises(ConfigError, match="residual must be one of"):
        NeuralLoss(residual="logit_adjusted")  # needs the training class counts
    with pytest.raises(ConfigError, match="residual=sce needs residual_ce > 0"):
        NeuralLoss.ml3(residual="sce")  # ML3's residual weight is 0: sce would be ignored
    from metaloss.losses.scaled import ScaledLoss

    for bad in (5, None, ["sce"], "logit_adjusted", "task"):
        with pytest.raises(ConfigError, match="scaled loss: base must be"):
            ScaledLoss(bad)


def test_smooth_leaky_relu_formula():
    act = SmoothLeakyReLU(beta=2.0, gamma=0.1)
    x = torch.linspace(-3, 3, 7)
    expected = torch.log1p(torch.exp(2 * x)) / 2 * 0.9 + 0.1 * x
    torch.testing.assert_close(act(x), expected)


def test_neural_loss_gradcheck():
    loss = NeuralLoss(hidden=(4,), activation="tanh").double()
    logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (3,))
    assert torch.autograd.gradcheck(lambda z: loss(z, labels), (logits,))


@pytest.mark.parametrize(
    ("init", "variance"),
    [
        ("torch", lambda fi, fo: 1 / (3 * fi)),  # U(-1/sqrt(fi), 1/sqrt(fi))
        ("xavier", lambda fi, fo: 2 / (fi + fo)),  # Glorot: U(+-sqrt(6/(fi+fo)))
        ("kaiming", lambda fi, fo: 2 / fi),  # He normal
    ],
)
def test_neural_loss_init_variance(init, variance):
    loss = NeuralLoss.ml3(hidden=(200, 200), init=init, seed=0)
    w = loss.net[2].weight.detach()  # 200 x 200: 40,000 draws
    expected = variance(200, 200)
    assert abs(float(w.var()) / expected - 1) < 0.05
    assert abs(float(w.mean())) < 0.05 * expected**0.5
    if init == "xavier":
        assert float(w.abs().max()) <= (6 / 400) ** 0.5
    biased = NeuralLoss.adalfl(init=init, seed=0)
    assert (float(biased.net[0].bias.abs().max()) == 0) == (init != "torch")


def test_neural_loss_init_saved_and_loaded(tmp_path):
    from metaloss import io

    loss = NeuralLoss.ml3(init="xavier", seed=4)
    default = NeuralLoss.ml3(seed=4)
    assert not torch.equal(loss.net[0].weight, default.net[0].weight)
    io.save_loss(tmp_path, loss)
    back = io.load(tmp_path)
    assert back.init == "xavier"
    for a, b in zip(loss.parameters(), back.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(build_loss(loss.spec()).net[0].weight, loss.net[0].weight)  # seeded
    with pytest.raises(ConfigError, match="init"):
        NeuralLoss(init="orthogonal")

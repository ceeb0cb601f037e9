"""Scale-free meta-objectives (issue 19, item 1): normalised losses have cross-entropy's
gradient norm and are invariant to a loss's scale; the learned learning rate's
meta-gradient matches finite differences; the lr-grid fitness is the best of the serial
trainer's runs over the grid; the options reach every method and survive saving."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import metaloss as ml
from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.evaluators import Candidate, TrainFitness
from metaloss.evaluators import fitness as fitness_kinds
from metaloss.evaluators.lr_grid import ScaleFreeFitness, with_scale_free
from metaloss.losses import GradNormalized, get_baseline
from metaloss.losses.neural import NeuralLoss
from metaloss.losses.normalized import normalize
from metaloss.losses.scaled import ScaledLoss
from metaloss.losses.taylor import TaylorLoss
from metaloss.meta.configs import ML3MethodConfig, TaylorGLOConfig
from metaloss.meta.learned_lr import LearnedLR
from metaloss.meta.unrolled import MetaStepper, ML3Config, unrolled_meta_step
from metaloss.training import train


def _param_grad_norm(loss: nn.Module, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    grads = torch.autograd.grad(loss(model(x), y), list(model.parameters()))
    return float(torch.sqrt(sum(g.double().pow(2).sum() for g in grads)))


# -- (b) normalised losses --------------------------------------------------------------------
@pytest.mark.parametrize(
    "inner",
    [lambda: NeuralLoss.ml3(seed=0), lambda: get_baseline("mae"), lambda: TaylorLoss([0.3] * 8)],
)
def test_running_normalisation_matches_ce_output_gradient_norm(inner) -> None:
    loss = GradNormalized(inner(), mode="running")
    z = torch.randn(16, 5, requires_grad=True)
    y = torch.randint(0, 5, (16,))
    (g,) = torch.autograd.grad(loss(z, y), z)
    (g_ce,) = torch.autograd.grad(nn.functional.cross_entropy(z, y), z)
    assert float(g.norm()) == pytest.approx(float(g_ce.norm()), rel=1e-5)


def test_running_normalisation_matches_ce_parameter_gradient_on_one_example() -> None:
    # a linear model and one example: ||dL/dW|| = ||dL/dz|| * ||x||, so the norms are equal
    torch.manual_seed(3)
    model, x, y = nn.Linear(4, 3), torch.randn(1, 4), torch.tensor([2])
    loss = GradNormalized(NeuralLoss.ml3(seed=1), mode="running")
    assert _param_grad_norm(loss, model, x, y) == pytest.approx(
        _param_grad_norm(get_baseline("ce"), model, x, y), rel=1e-5
    )
    assert _param_grad_norm(NeuralLoss.ml3(seed=1), model, x, y) != pytest.approx(
        _param_grad_norm(get_baseline("ce"), model, x, y), rel=1e-2
    )


def test_ml3_init_scale_gives_the_ce_parameter_gradient_norm(iris) -> None:
    stepper = MetaStepper(NeuralLoss.ml3(seed=0), iris, ML3Config(normalize="init"))
    model = iris.make_model(0)
    x, y = iris.train.x[:32], iris.train.y[:32]
    scale = float(stepper.init_scale(mf.params_of(model), x, y))
    stepper.model = model  # init_scale uses the stepper's model for the forward pass
    scaled = _param_grad_norm(lambda p, t: scale * stepper.loss(p, t), model, x, y)
    assert scaled == pytest.approx(_param_grad_norm(get_baseline("ce"), model, x, y), rel=1e-4)


@pytest.mark.parametrize("mode", ["init", "running"])
def test_normalised_fitness_ignores_the_scale_of_a_loss(digits, mode: str) -> None:
    fit = ScaleFreeFitness(TrainFitness(digits, steps=40, seed=1), normalize=mode)
    ce = fit(Candidate(0, get_baseline("ce").spec()))
    five = fit(Candidate(1, ScaledLoss("cross_entropy", 5.0).spec()))
    plain = TrainFitness(digits, steps=40, seed=1)(Candidate(1, ScaledLoss("ce", 5.0).spec()))
    assert five.value == pytest.approx(ce.value, abs=2 / len(digits.val))
    assert plain.value != pytest.approx(ce.value, abs=1e-9)  # without it, the scale matters


def test_normalize_option_values_and_round_trip(tmp_path, iris) -> None:
    ce = get_baseline("ce")
    assert normalize(ce, "none") is ce
    with pytest.raises(ConfigError, match="normalize"):
        normalize(ce, "bogus")
    with pytest.raises(ConfigError, match="normalize"):
        ML3MethodConfig(normalize="bogus")
    res = ml.learn("ml3", iris, preset="fast", inner_lr=0.1, normalize="running")
    assert isinstance(res.loss, GradNormalized) and res.loss.mode == "running"
    res.save(tmp_path / "run")
    back = ml.load(tmp_path / "run")
    z, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    assert isinstance(back, GradNormalized) and back.mode == "running"
    torch.testing.assert_close(back(z, y), res.loss(z, y))
    ada = ml.learn("adalfl", iris, preset="fast", normalize="init")
    assert isinstance(ada.loss, GradNormalized) and ada.loss.mode == "init"
    assert ada.loss.scale != pytest.approx(1.0) and ada.loss.loss.kind == "neural"


# -- (c) the learned learning rate ------------------------------------------------------------
def _meta_value(iris, log_scale: float, phi_seed: int = 0) -> tuple[float, float]:
    """The meta-objective of a 3-step unroll at ``lr * exp(log_scale)`` and its derivative."""
    torch.manual_seed(0)
    loss = NeuralLoss(hidden=(16, 16), activation="tanh", seed=phi_seed)  # smooth: exact FD
    rate = LearnedLR(0.1).double()
    with torch.no_grad():  # set in float64: a float32 parameter would quantise the FD step
        rate.log_scale.fill_(log_scale)
    model = iris.make_model(0)
    params = mf.params_of(model)
    opt = rate.wrap(mf.sgd(0.1, momentum=0.5))
    x, y = iris.train.x[:48].double(), iris.train.y[:48]
    model.double()
    params = {k: v.detach().double().requires_grad_() for k, v in params.items()}
    loss.double()

    def inner(p: mf.Params, k: int) -> torch.Tensor:
        return loss(mf.forward(model, p, x[16 * k : 16 * k + 16]), y[16 * k : 16 * k + 16])

    def objective(p: mf.Params) -> torch.Tensor:
        return nn.functional.cross_entropy(mf.forward(model, p, x), y)

    meta_opt = torch.optim.SGD([rate.log_scale], lr=0.0)
    value, _, _ = unrolled_meta_step(
        params, opt.init(params), opt, inner, objective, 3, meta_opt, [rate.log_scale]
    )
    return float(value), float(rate.log_scale.grad)


def test_learned_lr_meta_gradient_matches_finite_differences(iris) -> None:
    value, grad = _meta_value(iris, 0.2)
    h = 1e-5
    plus, _ = _meta_value(iris, 0.2 + h)
    minus, _ = _meta_value(iris, 0.2 - h)
    assert grad != 0.0
    assert grad == pytest.approx((plus - minus) / (2 * h), rel=1e-6)


def test_learn_lr_is_reported_and_kept_out_of_the_loss(iris) -> None:
    res = ml.learn("ml3", iris, preset="fast", inner_lr=0.1, learn_lr=True, lr_meta_lr=0.05)
    info = res.info
    assert info["learned_lr"] == pytest.approx(0.1 * info["learned_lr_factor"])
    assert info["learned_lr_factor"] != 1.0  # it moved
    assert "lr" not in str(res.loss.spec()["config"]).replace("class_reduction", "")
    plain = ml.learn("ml3", iris, preset="fast", inner_lr=0.1)
    assert "learned_lr" not in plain.info
    ada = ml.learn("adalfl", iris, preset="fast", learn_lr=True)
    assert ada.info["learned_lr"] > 0 and ada.info["learned_lr_factor"] != 1.0
    with pytest.raises(ConfigError, match="learn_lr"):
        ml.learn("ml3", iris, preset="fast", learn_lr=True, inner_optimizer="adam")


# -- (a) the lr-grid fitness ------------------------------------------------------------------
def test_lr_grid_fitness_is_the_best_serial_run_over_the_grid(digits) -> None:
    stage = TrainFitness(digits, steps=60, seed=2)
    fit = ScaleFreeFitness(stage, lrs=(0.25, 1.0, 4.0))
    loss = TaylorLoss([0.0, 0.5, -1.0, 0.5, 0.2, 0.0, 0.1, 0.0])
    res = fit(Candidate.from_loss(0, loss))
    config = stage.train_config()
    serial = [
        train(digits, loss, config.with_(lr=config.lr * f), seed=2, test=False).val_metric
        for f in (0.25, 1.0, 4.0)
    ]
    assert res.ok and res.value == pytest.approx(min(serial), abs=2 / len(digits.val))
    assert res.info["lr_factor"] in (0.25, 1.0, 4.0)
    assert res.info["lr"] == pytest.approx(config.lr * res.info["lr_factor"])


def test_lr_grid_fitness_travels_as_data_and_is_off_when_empty(iris) -> None:
    stage = TrainFitness(iris, steps=20, seed=1)
    fit = ScaleFreeFitness(stage, lrs=(1.0, 2.0), normalize="init")
    kind, module, options = fitness_kinds.describe(fit)
    assert kind == "scale_free" and fitness_kinds.build(kind, iris, options, module) == fit
    assert with_scale_free(stage) is stage
    with pytest.raises(ConfigError, match="fitness_lrs"):
        ScaleFreeFitness(stage, lrs=(0.0,))
    with pytest.raises(ConfigError, match="fitness_lrs"):
        TaylorGLOConfig(fitness_lrs=(-1.0,))


def test_search_methods_take_the_scale_free_options(iris) -> None:
    res = ml.learn("taylorglo", iris, preset="fast", fitness_lrs=(0.5, 2.0), normalize="init")
    assert isinstance(res.loss, GradNormalized) and res.loss.loss.kind == "taylor"
    assert res.config["fitness_lrs"] == [0.5, 2.0] or res.config["fitness_lrs"] == (0.5, 2.0)
    gp = ml.learn("gplfl", iris, preset="fast", normalize="running")
    assert isinstance(gp.loss, GradNormalized) and gp.loss.mode == "running"


def test_adalfl_resume_keeps_the_normalisation_and_the_learned_lr(iris, tmp_path) -> None:
    opts = dict(init_steps=5, lr=0.1, checkpoint_every=20, snapshots=0, normalize="init")
    full = ml.learn("adalfl", iris, steps=60, learn_lr=True, **opts)
    ml.learn("adalfl", iris, steps=40, learn_lr=True, run_dir=tmp_path, **opts)
    resumed = ml.learn("adalfl", iris, steps=60, learn_lr=True, run_dir=tmp_path, **opts)
    assert resumed.loss.scale == pytest.approx(full.loss.scale, rel=1e-6)
    assert resumed.info["learned_lr"] == pytest.approx(full.info["learned_lr"], rel=1e-6)
    for a, b in zip(full.loss.parameters(), resumed.loss.parameters()):
        torch.testing.assert_close(a, b)

"""AdaLFL: online steps lower the look-ahead task loss; resume continues the same run."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import metaloss as ml
from metaloss import functional as mf
from metaloss.losses.neural import NeuralLoss
from metaloss.meta.online import AdaLFLConfig, online_step, online_train


def test_online_step_lowers_look_ahead_task_loss(digits):
    """One online step moves phi along -grad of the look-ahead loss (first-order check)."""
    torch.manual_seed(0)
    model = digits.make_model(0).double()
    loss = NeuralLoss.adalfl(seed=0).double()
    before = copy.deepcopy(loss)
    opt = mf.sgd(0.5)
    params = mf.params_of(model)
    state = opt.init(params)
    x, y = digits.train.x[:128].double(), digits.train.y[:128]
    xq, yq = digits.train.x[128:256].double(), digits.train.y[128:256]
    lr = 1e-3
    meta_opt = torch.optim.SGD(loss.parameters(), lr=lr)
    task_loss = digits.task_loss()

    def look_ahead(phi, grad: bool = False):
        p = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        new, _, _ = mf.inner_step(model, p, opt.init(p), opt, phi, x, y)
        value = task_loss(mf.forward(model, new, xq), yq)
        if grad:
            gs = torch.autograd.grad(value, list(phi.parameters()), allow_unused=True)
            return value.detach(), sum(float((g**2).sum()) for g in gs if g is not None)
        return value.detach()

    start, grad_sq = look_ahead(before, grad=True)
    _, _, _, reported = online_step(
        model, params, state, opt, loss, (x, y), (xq, yq), meta_opt, task_loss
    )
    assert abs(float(reported) - float(start)) < 1e-10  # the step saw the same look-ahead
    decrease = float(start - look_ahead(loss))
    assert grad_sq > 0 and decrease > 0
    assert abs(decrease - lr * grad_sq) < 0.2 * lr * grad_sq  # matches -lr * |grad|^2


def test_adalfl_trains_a_model_and_snapshots(iris):
    """AdaLFL's model is as good as cross-entropy's under the same protocol (seed, steps,
    lr): within two of the 30 test points, and far below chance (2/3)."""
    res = ml.learn("adalfl", iris, init_steps=20, steps=300, lr=0.1, snapshots=3, seed=0)
    ce = ml.train(iris, ml.losses.get_loss("cross_entropy"), steps=300, lr=0.1, seed=0)
    assert not res.info["diverged"] and ce.test_metric < 0.2  # the baseline itself learned
    assert res.info["test_metric"] <= ce.test_metric + 2 / len(iris.test) + 1e-6
    assert res.info["test_metric"] < 0.25
    steps = {k.split(".")[1] for k in res.tensors}
    assert steps == {"0", "100", "200", "300"}


def test_resume_continues_with_the_same_loss_parameters(iris, tmp_path):
    cfg = dict(steps=60, lr=0.1, checkpoint_every=20, snapshots=0)
    full_loss = NeuralLoss.adalfl(seed=1)
    full = online_train(full_loss, iris, AdaLFLConfig(**cfg), seed=0)
    part_loss = NeuralLoss.adalfl(seed=1)
    online_train(part_loss, iris, AdaLFLConfig(**{**cfg, "steps": 40}), seed=0, run_dir=tmp_path)
    resumed_loss = NeuralLoss.adalfl(seed=1)
    resumed = online_train(resumed_loss, iris, AdaLFLConfig(**cfg), seed=0, run_dir=tmp_path)
    for a, b in zip(full_loss.parameters(), resumed_loss.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed["test_metric"] == full["test_metric"]


def test_adalfl_regression(tmp_path):
    """On yacht (standardised MSE: 1.0 is the mean predictor) AdaLFL is within 10 % of the
    MSE baseline trained under the same protocol (0.367 vs 0.381 at seed 0)."""
    task = ml.tasks.get("yacht-mlp")
    res = ml.learn("adalfl", task, init_steps=10, steps=200, snapshots=2)
    mse = ml.train(task, task.task_loss(), steps=200, seed=0)
    assert mse.test_metric < 0.5  # the baseline is far better than the mean predictor
    assert res.info["test_metric"] < 1.1 * mse.test_metric
    res.save(tmp_path)
    assert (tmp_path / "extra.safetensors").exists()


def _meta_grads(method, model, opt, x, y, xq, yq, task_loss):
    torch.manual_seed(0)
    loss = NeuralLoss.adalfl(seed=1).double()
    params = mf.params_of(model)
    state = opt.init(params)
    # one warm-up step so momentum buffers / Adam moments are non-trivial
    params, state, _ = mf.inner_step(model, params, state, opt, loss, xq, yq, create_graph=False)
    params, state = mf.detach(params), mf.detach_state(state)
    meta_opt = torch.optim.SGD(loss.parameters(), lr=1.0)
    before = [p.detach().clone() for p in loss.parameters()]
    buffers = mf.buffers_of(model)
    new, _, _, look = online_step(
        model, params, state, opt, loss, (x, y), (xq, yq), meta_opt, task_loss, buffers, method
    )
    grads = [b - p.detach() for b, p in zip(before, loss.parameters())]
    return grads, new, look


@pytest.mark.parametrize(
    "opt",
    [
        mf.sgd(0.3),
        mf.sgd(0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
        mf.adam(1e-2, weight_decay=1e-4),
    ],
    ids=["sgd", "nesterov-wd", "adam"],
)
@pytest.mark.parametrize("norm", [False, True], ids=["mlp", "batchnorm"])
def test_jvp_meta_gradient_equals_double_backward(digits, opt, norm):
    """The forward-mode meta-gradient is the exact one, for every base optimiser."""
    torch.manual_seed(0)
    layers = [torch.nn.Flatten(), torch.nn.Linear(64, 32)]
    layers += [torch.nn.BatchNorm1d(32)] if norm else []
    model = torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(32, 10)).double()
    x, y = digits.train.x[:64].double(), digits.train.y[:64]
    xq, yq = digits.train.x[64:128].double(), digits.train.y[64:128]
    task_loss = digits.task_loss()
    exact, new_e, look_e = _meta_grads("exact", copy.deepcopy(model), opt, x, y, xq, yq, task_loss)
    fast, new_f, look_f = _meta_grads("jvp", copy.deepcopy(model), opt, x, y, xq, yq, task_loss)
    assert float(look_e) == pytest.approx(float(look_f), rel=1e-12)
    for k in new_e:
        torch.testing.assert_close(new_e[k], new_f[k], rtol=1e-10, atol=1e-12)
    scale = max(float(g.abs().max()) for g in exact)
    assert scale > 0
    for a, b in zip(exact, fast):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9 * scale)


def test_meta_grad_auto_picks_jvp_for_conv_models_without_dropout():
    from metaloss.meta.online import resolve_meta_grad

    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    dropped = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Dropout(0.5))
    assert resolve_meta_grad("auto", conv) == "jvp"
    assert resolve_meta_grad("auto", dropped) == "exact"
    assert resolve_meta_grad("auto", torch.nn.Linear(2, 2)) == "exact"
    assert resolve_meta_grad("jvp", torch.nn.Linear(2, 2)) == "jvp"
    with pytest.raises(ml.errors.ConfigError, match="meta_grad"):
        AdaLFLConfig(meta_grad="fast")


def _bn_task(task):
    """``task`` with an MLP that has BatchNorm (running statistics to check)."""
    import dataclasses

    def factory():
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(math.prod(task.in_shape), 16),
            torch.nn.BatchNorm1d(16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, task.num_outputs),
        )

    return dataclasses.replace(task, model_factory=factory)


@pytest.mark.parametrize("query", ["train", "val"])
@pytest.mark.parametrize("meta_grad", ["exact", "jvp"])
def test_look_ahead_leaves_batchnorm_statistics_untouched(digits, query, meta_grad):
    """With meta_lr=0 the loss never changes, so the parameter updates are those of a run
    without look-ahead (a frozen loss); the running statistics must be equal too."""
    task = _bn_task(digits)
    cfg = dict(steps=12, lr=0.1, snapshots=0, query=query, meta_grad=meta_grad)
    online = online_train(NeuralLoss.adalfl(seed=1), task, AdaLFLConfig(meta_lr=0.0, **cfg), 0)
    frozen_loss = NeuralLoss.adalfl(seed=1).requires_grad_(False)  # no meta params: no look-ahead
    plain = online_train(frozen_loss, task, AdaLFLConfig(**cfg), 0)
    a, b = dict(online["model"].named_buffers()), dict(plain["model"].named_buffers())
    assert int(b["2.num_batches_tracked"]) == 12 == int(a["2.num_batches_tracked"])
    init = dict(task.make_model(0).named_buffers())
    assert not torch.equal(b["2.running_mean"], init["2.running_mean"])  # stats did move
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    for (k, p), q in zip(online["model"].named_parameters(), plain["model"].parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=k)


def test_offline_initialisation_uses_the_tasks_optimiser(iris):
    """The ML3 phase steps the base model as torch.optim.SGD(momentum, nesterov, wd) does."""
    import dataclasses

    from metaloss.meta.online import offline_config
    from metaloss.meta.unrolled import MetaStepper

    tcfg = iris.defaults.with_(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3)
    task = dataclasses.replace(iris, defaults=tcfg)
    ml3 = offline_config(AdaLFLConfig(init_steps=3), task)
    assert (ml3.inner_optimizer, ml3.inner_lr, ml3.inner_momentum) == ("sgd", 0.05, 0.9)
    assert ml3.inner_nesterov and ml3.inner_weight_decay == 5e-3
    opt = MetaStepper(NeuralLoss.adalfl(seed=0), task, ml3).inner_opt
    model = task.make_model(0)
    params = mf.params_of(model)
    state = opt.init(params)
    sgd = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-3)
    ref = torch.optim.SGD(model.parameters(), **sgd)
    for _ in range(3):
        grads = {k: torch.randn_like(v) for k, v in params.items()}
        params, state = opt.update(params, grads, state)
        for k, p in model.named_parameters():
            p.grad = grads[k].clone()
        ref.step()
    for k, p in model.named_parameters():
        torch.testing.assert_close(params[k].detach(), p.detach(), rtol=1e-6, atol=1e-7)
    adam = offline_config(AdaLFLConfig(optimizer="adam", init_steps=1), iris)
    assert adam.inner_optimizer == "adam"


def test_continue_online_adapts_the_saved_loss_and_frozen_does_not(iris, tmp_path):
    from metaloss.meta.online_eval import continue_online, is_online_loss

    run = ml.learn("adalfl", iris, init_steps=5, steps=30, lr=0.1, snapshots=0, seed=0)
    run.save(tmp_path / "ada")
    saved = [p.detach().clone() for p in ml.load(tmp_path / "ada").parameters()]
    cfg = iris.defaults.with_(steps=40, lr=0.1)
    online = continue_online(tmp_path / "ada", iris, seed=3, config=cfg, meta_lr=1e-2)
    moved = max(
        float((a - b.detach()).abs().max()) for a, b in zip(saved, online.loss.parameters())
    )
    assert moved > 1e-4 and online.steps == 40 and not online.diverged
    assert any("look_ahead" in row for row in online.history)  # it adapted during the run
    frozen = continue_online(tmp_path / "ada", iris, seed=3, config=cfg, frozen=True)
    for a, b in zip(saved, frozen.loss.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    plain = ml.train(iris, ml.load(tmp_path / "ada"), cfg, seed=3)  # frozen = plain training
    assert (frozen.test_metric, frozen.val_metric) == (plain.test_metric, plain.val_metric)
    for a, b in zip(saved, ml.load(tmp_path / "ada").parameters()):  # the run is untouched
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert is_online_loss(tmp_path / "ada") and is_online_loss(tmp_path / "ada" / "spec.json")
    ml.learn("ml3", iris, meta_steps=2).save(tmp_path / "ml3")
    assert not is_online_loss(tmp_path / "ml3")
    with pytest.raises(ml.errors.ConfigError, match="not an AdaLFL run"):
        continue_online(tmp_path / "ml3", iris, config=cfg)
    with pytest.raises(ml.errors.ConfigError, match="unknown options"):
        continue_online(tmp_path / "ada", iris, config=cfg, init_steps=3)
    with pytest.raises(ml.errors.ConfigError, match="unknown options"):
        continue_online(tmp_path / "ada", iris, config=cfg, frozen=True, lr=0.1)


def test_continue_online_reuses_the_runs_adaptation_settings(iris, tmp_path):
    """With the run's meta_lr=0 the loss stays put, and the model equals frozen training
    under the same functional optimiser (online_train with a frozen loss)."""
    from metaloss.meta.online_eval import continue_online

    run = ml.learn("adalfl", iris, init_steps=0, steps=5, meta_lr=0.0, snapshots=0)
    run.save(tmp_path)
    cfg = iris.defaults.with_(steps=30, lr=0.1)
    res = continue_online(tmp_path, iris, seed=1, config=cfg)
    frozen = ml.load(tmp_path).requires_grad_(False)
    ref = online_train(frozen, iris, AdaLFLConfig(steps=30, lr=0.1, snapshots=0), seed=1)
    for a, b in zip(res.model.parameters(), ref["model"].parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(res.loss.parameters(), frozen.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_evaluate_continues_adalfl_online_unless_frozen(tmp_path):
    """ml.evaluate on an AdaLFL run adapts the loss online (the method's protocol)."""
    from metaloss.meta.online_eval import continue_online
    from metaloss.tuning import TuneConfig

    task = ml.tasks.get("iris-linear")
    run = ml.learn("adalfl", task, seed=0, init_steps=3, steps=30)
    run.save(tmp_path / "run")
    config = task.defaults.with_(steps=25)
    tune = TuneConfig(factors=(1.0,), seeds=1, max_widen=0)
    online = ml.evaluate([tmp_path / "run"], task, seeds=[1], config=config, tune_config=tune)
    row = online.rows[0]
    assert row.name.endswith("(online)") and row.tuning["rule"].endswith("(whole online runs)")
    ref = continue_online(tmp_path / "run", task, seed=1, config=config.with_(lr=row.lr))
    assert row.values == [ref.test_metric]
    frozen = ml.evaluate(
        [tmp_path / "run"], task, seeds=[1], config=config, tune_config=tune, frozen=True
    )
    plain = ml.train(task, ml.load(tmp_path / "run"), config.with_(lr=frozen.rows[0].lr), seed=1)
    assert frozen.rows[0].values == [plain.test_metric]
    assert not frozen.rows[0].name.endswith("(online)")


def test_meta_objective_is_the_loss_of_both_phases(iris, monkeypatch):
    import metaloss.meta.online as online_mod
    from metaloss.errors import ConfigError
    from metaloss.losses.handcrafted import SymmetricCrossEntropyLoss

    seen = {}
    real_step, real_train = online_mod.online_step, online_mod.meta_train

    def step_spy(*a, **k):
        seen.setdefault("online", a[8])  # online_step's task_loss argument
        return real_step(*a, **k)

    def train_spy(*a, objective=None, **k):
        seen.setdefault("offline", objective)
        return real_train(*a, objective=objective, **k)

    monkeypatch.setattr(online_mod, "online_step", step_spy)
    monkeypatch.setattr(online_mod, "meta_train", train_spy)
    kw = dict(init_steps=5, steps=30, lr=0.1, snapshots=0, seed=0)
    sce = ml.learn("adalfl", iris, meta_objective="sce", **kw)
    assert isinstance(seen["online"], SymmetricCrossEntropyLoss)
    model = iris.make_model(0)
    params = mf.params_of(model)
    x, y = iris.train.x[:16], iris.train.y[:16]
    expected = SymmetricCrossEntropyLoss()(mf.forward(model, params, x), y)
    torch.testing.assert_close(seen["offline"](model, params, x, y), expected)
    # iris's task loss is CE: naming it gives the paper's run exactly; sce gives another loss
    task = ml.learn("adalfl", iris, **kw)
    ce = ml.learn("adalfl", iris, meta_objective="ce", **kw)
    assert all(torch.equal(task.tensors[k], ce.tensors[k]) for k in task.tensors)
    assert any(not torch.equal(task.tensors[k], sce.tensors[k]) for k in task.tensors)
    with pytest.raises(ConfigError, match="meta_objective 'sce' needs a classification task"):
        ml.learn("adalfl", ml.tasks.get("diabetes-mlp"), meta_objective="sce", **kw)


def test_the_default_meta_objective_keeps_checkpoint_identities(iris):
    from metaloss.meta.online import _identity_config
    from metaloss.meta.unrolled import run_identity

    loss = NeuralLoss.adalfl(seed=0)
    default = run_identity("adalfl", iris, 0, _identity_config(AdaLFLConfig()), loss)
    assert "config.meta_objective" not in default  # as written before the option existed
    robust = _identity_config(AdaLFLConfig(meta_objective="sce"))
    sce = run_identity("adalfl", iris, 0, robust, loss)
    assert sce["config.meta_objective"] == "sce"


def test_meta_objectives_are_the_hand_made_baselines():
    from metaloss.losses.handcrafted import BASELINES
    from metaloss.meta.configs import META_OBJECTIVES

    assert set(META_OBJECTIVES) == {"task"} | (set(BASELINES) - {"cross_entropy"})


def test_residual_choices_are_the_losses_a_saved_loss_can_rebuild():
    from metaloss.losses.handcrafted import BASELINES
    from metaloss.losses.neural import RESIDUALS
    from metaloss.meta.configs import RESIDUALS as CONFIG_RESIDUALS
    from metaloss.meta.configs_control import BASES

    assert RESIDUALS == CONFIG_RESIDUALS == BASES
    # every hand-made loss but the long-tail ones, which read the training class counts
    needs_counts = {k for k, c in BASELINES.items() if getattr(c, "needs_class_counts", False)}
    assert needs_counts == {"logit_adjusted", "class_balanced"}
    assert set(RESIDUALS) == {"task"} | (set(BASELINES) - {"cross_entropy"} - needs_counts)
    res = ml.learn("adalfl", ml.tasks.get("iris-linear"), preset="fast", residual="gce")
    assert res.loss.config()["residual"] == "gce"  # the loss records its own options

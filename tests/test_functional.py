"""Pure inner-loop optimisers: parity with torch.optim; meta-gradients vs finite differences."""

from __future__ import annotations

import pytest
import torch

from metaloss import functional as mf
from metaloss.losses.neural import NeuralLoss


@pytest.mark.parametrize(
    "name,kw,make",
    [
        ("sgd", {}, lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            "sgd",
            {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
        ),
        ("sgd", {"momentum": 0.5}, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5)),
        ("adam", {"weight_decay": 1e-3}, lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=1e-3)),
    ],
)
def test_optimizers_match_torch(name, kw, make):
    w = torch.randn(7, requires_grad=True)
    ref = w.detach().clone().requires_grad_()
    topt = make([ref])
    opt = mf.make_optimizer(name, 0.1, **kw)
    params = {"w": w}
    state = opt.init(params)
    for _ in range(15):
        value = (params["w"] ** 2).sum() + params["w"].sin().sum()
        params, state = opt.update(params, mf.grad(value, params), state)
        topt.zero_grad()
        ((ref**2).sum() + ref.sin().sum()).backward()
        topt.step()
    assert torch.equal(params["w"].detach(), ref.detach())  # torch.optim's math, bit for bit


@pytest.mark.parametrize(
    "overrides",
    [
        {"momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "milestones": (0, 7, 7, 20)},
        {"optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-4, "milestones": (10,)},
    ],
)
def test_trainer_equals_a_torch_optim_loop(iris, overrides):
    """The trainer's functional optimiser is bitwise the torch.optim + MultiStepLR loop."""
    from metaloss.losses import get_loss
    from metaloss.training import Batcher, train

    config = iris.defaults.with_(steps=30, eval_every=0, **overrides)
    got = train(iris, get_loss("cross_entropy"), config, seed=2, test=False).model
    model = iris.make_model(2)
    if config.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(config.milestones), config.gamma)
    batcher = Batcher(len(iris.train), config.batch_size, 2, iris.device)
    for _ in range(config.steps):
        idx = batcher.next()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(iris.train.x[idx]), iris.train.y[idx]).backward()
        opt.step()
        sched.step()
    for a, b in zip(got.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_update_is_pure():
    p = {"w": torch.ones(3, requires_grad=True)}
    opt = mf.sgd(0.5, momentum=0.9)
    state = opt.init(p)
    new, state2 = opt.update(p, {"w": torch.ones(3)}, state)
    assert torch.equal(p["w"].detach(), torch.ones(3))
    assert new["w"] is not p["w"] and state["buf"]["w"] is None and state2["buf"]["w"] is not None


@pytest.mark.parametrize("optimizer,steps", [("sgd", 1), ("sgd", 3), ("adam", 2)])
def test_meta_gradient_matches_finite_differences(optimizer, steps):
    """d(query loss after K unrolled steps)/d(loss params) against central differences."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.double()
    loss = NeuralLoss(hidden=(5,), activation="tanh", output="none", bias=True).double()
    xs = [torch.randn(6, 3, dtype=torch.float64) for _ in range(steps)]
    ys = [torch.randint(0, 2, (6,)) for _ in range(steps)]
    xq, yq = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    opt = mf.make_optimizer(optimizer, 0.1, momentum=0.9 if optimizer == "sgd" else 0.0)
    init = mf.params_of(model)

    def meta_objective() -> torch.Tensor:
        params = {k: v.clone() for k, v in init.items()}
        params, _ = mf.unroll(model, params, opt.init(params), opt, loss, zip(xs, ys))
        return torch.nn.functional.cross_entropy(mf.forward(model, params, xq), yq)

    value = meta_objective()
    analytic = torch.autograd.grad(value, list(loss.parameters()), allow_unused=True)
    analytic = [
        torch.zeros_like(p) if g is None else g for p, g in zip(loss.parameters(), analytic)
    ]
    eps = 1e-6
    for param, g in zip(loss.parameters(), analytic):
        flat = param.data.view(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 4)):
            old = flat[i].item()
            flat[i] = old + eps
            up = meta_objective().item()
            flat[i] = old - eps
            down = meta_objective().item()
            flat[i] = old
            fd = (up - down) / (2 * eps)
            assert abs(fd - g.view(-1)[i].item()) < 1e-6 + 1e-4 * abs(fd)


def test_detach_truncates():
    p = {"w": torch.ones(2, requires_grad=True)}
    q = {"w": p["w"] * 2}
    d = mf.detach(q)
    assert d["w"].grad_fn is None and d["w"].requires_grad


@pytest.mark.parametrize(
    "kw", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 1e-2}]
)
def test_sgd_grad_slope_matches_autograd(kw):
    """``grad_slope`` is the exact derivative of the SGD update w.r.t. the gradient."""
    opt = mf.sgd(0.1, **kw)
    p = {"w": torch.randn(3, dtype=torch.float64)}
    state = opt.init(p)
    _, state = opt.update(p, {"w": torch.randn(3, dtype=torch.float64)}, state)  # fill buffers
    state["lr_scale"] = 0.5
    g = torch.randn(3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda g: opt.update(p, {"w": g}, state)[0]["w"], g)
    torch.testing.assert_close(jac, opt.grad_slope(state) * torch.eye(3, dtype=torch.float64))

"""RL tasks in the task registry and behind ``metaloss.learn("ml3", "rl-...")``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import metaloss as ml
from metaloss import functional as mf
from metaloss import io
from metaloss.errors import ConfigError
from metaloss.meta.unrolled import unrolled_meta_step
from metaloss.results import LearnResult
from metaloss.rl import learn_rl
from metaloss.rl import mountaincar_paper as mcp
from metaloss.rl import task as rl
from metaloss.rl.envs import CartPole, FrictionMountainCar, MountainCar, Pendulum, Reacher
from metaloss.rl.learner import meta_train_rl, train_policy
from metaloss.rl.losses import StepLoss
from metaloss.tasks.base import Task

ROOT = Path(__file__).resolve().parents[2]
ENVS = {
    "rl-cartpole": CartPole,
    "rl-pendulum": Pendulum,
    "rl-mountaincar": MountainCar,
    "rl-mountaincar-paper": FrictionMountainCar,
    "rl-reacher": Reacher,
}


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", sorted(ENVS))
def test_every_rl_name_is_a_registered_rl_task(name):
    task = ml.tasks.get(name)
    assert isinstance(task, rl.RLTask) and task.kind == "rl" and task.name == name
    assert isinstance(task.make_env(), ENVS[name])
    assert task.horizon == task.settings.horizon > 0
    policy = task.make_policy(seed=3)
    again, other = task.make_policy(seed=3), task.make_policy(seed=4)
    state = dict(policy.state_dict())
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in state.items())
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in state.items())
    # the policy evaluated functionally is the module itself
    n_in = next(iter(policy.parameters())).shape[1]
    x = torch.randn(5, n_in)
    assert torch.equal(rl.apply_policy(mf.params_of(policy), x), policy(x))


def test_registry_lists_rl_tasks_once_and_keeps_data_tasks():
    names = ml.tasks.names()
    assert set(ENVS) <= set(names) and set(rl.names()) == set(ENVS)
    assert names == sorted(set(names))  # no duplicates
    assert [r["name"] for r in ml.tasks.describe()] == names
    rows = {r["name"]: r for r in ml.tasks.describe()}
    assert rows["rl-cartpole"]["model"] == "policy" and rows["rl-cartpole"]["data_dir"] == "none"
    assert rows["iris-linear"]["data_dir"] == "optional"
    assert isinstance(ml.tasks.get("iris-linear"), Task)  # data tasks unchanged


def test_cli_task_listing_agrees_with_the_registry():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "metaloss.cli", "tasks", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert {r["name"] for r in json.loads(out.stdout)} == set(ml.tasks.names())


def test_an_rl_task_where_a_data_task_is_expected_is_a_config_error():
    task = ml.tasks.get("rl-cartpole")
    assert not hasattr(task, "train") and getattr(task, "classification", None) is None
    with pytest.raises(ConfigError, match="'rl-cartpole' is an RL task"):
        ml.train(task, "ce", steps=1)
    with pytest.raises(ConfigError, match="'rl-cartpole' is an RL task"):
        ml.evaluate(["ce"], task, seeds=1)
    for method in ("adalfl", "evomal", "mln"):
        with pytest.raises(ConfigError, match=f"meta-learned with ml3, not {method}"):
            ml.learn(method, "rl-cartpole", progress=False)


def test_cli_train_on_an_rl_task_is_a_one_line_error():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "metaloss.cli", "train", "--task", "rl-cartpole"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 2 and "is an RL task" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data_dir": "somewhere"}, "reads no data"),
        ({"label_noise": 0.2}, "variant"),
        ({"imbalance": 10.0}, "variant"),
        ({"device": "tpu"}, "tpu"),
    ],
)
def test_rl_task_refuses_data_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ml.tasks.get("rl-cartpole", **kwargs)


def test_rl_task_refuses_a_variant_name_and_unknown_rl_names():
    with pytest.raises(ConfigError, match="variant"):
        ml.tasks.get("rl-cartpole+noise0.2")
    with pytest.raises(ConfigError, match="unknown task 'rl-cartpol' .did you mean rl-cartpole"):
        ml.tasks.get("rl-cartpol")
    with pytest.raises(ConfigError, match="unknown RL task"):
        rl.get("rl-nope")


def test_rl_task_config_options():
    task = ml.tasks.get("rl-pendulum")
    cfg = task.config(hidden=[8, 8], meta_steps=3)
    assert cfg.env == "pendulum" and cfg.hidden == (8, 8) and cfg.meta_steps == 3
    assert task.settings.meta_steps == 300  # the default settings are not changed
    with pytest.raises(ConfigError, match="not_an_option"):
        task.config(not_an_option=1)


def test_policy_initialisation_is_the_seeded_pytorch_default():
    """Oracle: the draws written out by hand (weights then biases per layer, uniform with
    bound 1/sqrt(fan_in), output layer scaled)."""
    policy = rl.policy_mlp([4, 3, 2], seed=7, out_scale=0.1)
    gen = torch.Generator().manual_seed(7)
    expected = []
    for fan_in, fan_out, scale in ((4, 3, 1.0), (3, 2, 0.1)):
        bound = scale / fan_in**0.5
        expected.append((torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound)
        expected.append((torch.rand(fan_out, generator=gen) * 2 - 1) * bound)
    got = [p.detach() for p in policy.parameters()]
    assert all(torch.allclose(g, e, rtol=0, atol=1e-7) for g, e in zip(got, expected))
    assert float(got[2].abs().max()) <= 0.1 / 3**0.5


def test_paper_policy_is_linear_in_the_state():
    cfg = mcp.PaperMCConfig(policy_width=6)
    params = mcp.policy_init(cfg, 0)
    assert sorted(params) == ["0.weight", "1.weight"]
    s = torch.randn(4, 2, dtype=torch.float64)
    w0, w1 = (params[k].detach().double() for k in ("0.weight", "1.weight"))
    p64 = {k: v.detach().double() for k, v in params.items()}
    assert torch.allclose(rl.apply_policy(p64, s), s @ w0.T @ w1.T)


# ----------------------------------------------------------------------------- learning


def test_learn_ml3_on_an_rl_task_round_trips(tmp_path):
    opts = {"seed": 0, "meta_steps": 2, "batch": 4, "horizon": 20}
    res = ml.learn("ml3", "rl-cartpole", progress=False, run_dir=tmp_path / "run", **opts)
    assert isinstance(res, LearnResult) and res.method == "ml3" and res.task == "rl-cartpole"
    assert [r["meta_step"] for r in res.history] == [1, 2]
    # oracle: the RL learner called directly with the same options
    direct = learn_rl("rl-cartpole", **opts)
    assert [r["meta_loss"] for r in res.history] == [r["meta_loss"] for r in direct.history]
    # the run directory: spec, history and a loss that computes the same values
    spec, _ = io.read_spec(tmp_path / "run")
    assert spec["method"] == "ml3" and spec["task"] == "rl-cartpole"
    assert spec["config"]["meta_steps"] == 2 and spec["config"]["env"] == "cartpole"
    back = io.load(tmp_path / "run")
    assert isinstance(back, StepLoss) and back.features == res.loss.features
    feats = torch.randn(3, 7, len(back.features))
    assert torch.equal(back(feats), res.loss(feats))
    rows = io.read_jsonl(tmp_path / "run" / "history.jsonl")
    assert [r["meta_loss"] for r in rows] == [r["meta_loss"] for r in res.history]
    if hasattr(LearnResult, "load"):  # LearnResult.load comes with another part of issue 15
        loaded = LearnResult.load(tmp_path / "run")
        assert loaded.task == "rl-cartpole" and torch.equal(loaded.loss(feats), back(feats))


def test_learn_ml3_on_an_rl_task_checks_options():
    with pytest.raises(ConfigError, match="not_an_option"):
        ml.learn("ml3", "rl-cartpole", not_an_option=1, progress=False)
    with pytest.raises(ConfigError, match="starting loss"):
        ml.learn("ml3", "rl-mountaincar-paper", loss=StepLoss(), meta_steps=1, progress=False)


def test_learn_ml3_starts_from_a_given_loss():
    start = StepLoss(features=["logp", "return_to_go", "t"], hidden=[4], seed=5)
    before = [p.detach().clone() for p in start.parameters()]
    res = ml.learn("ml3", "rl-cartpole", loss=start, meta_steps=1, batch=4, horizon=10)
    assert res.loss is start and res.loss.hidden == [4]
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, start.parameters()))


def test_step_loss_refuses_targets():
    loss = StepLoss(features=["a", "b"], hidden=[4])
    with pytest.raises(ConfigError, match="no targets"):
        loss(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))


def test_unrolled_meta_step_matches_the_hand_computed_meta_gradient():
    """Loss ``-phi * w`` on ``w`` (so ``w1 = w0 + lr * phi``), objective ``(w1 - 1)^2``:
    d objective / d phi = 2 (w1 - 1) lr; one inner step from w0 = 0.2, lr 0.5, phi 0.6."""
    phi = torch.tensor([0.6], requires_grad=True)
    w = {"w": torch.tensor([0.2], requires_grad=True)}
    opt, meta_opt = mf.sgd(0.5), torch.optim.SGD([phi], lr=1.0)
    value, new, _ = unrolled_meta_step(
        w,
        opt.init(w),
        opt,
        lambda p, k: -(phi * p["w"]).sum(),
        lambda p: ((p["w"] - 1) ** 2).sum(),
        1,
        meta_opt,
        [phi],
    )
    w1 = 0.2 + 0.5 * 0.6
    assert float(value.detach()) == pytest.approx((w1 - 1) ** 2)
    assert float(new["w"].detach()) == pytest.approx(w1)
    assert float(phi.detach()) == pytest.approx(0.6 - 2 * (w1 - 1) * 0.5)
    # a non-finite meta-objective leaves the loss's parameters alone
    unrolled_meta_step(
        w, opt.init(w), opt, lambda p, k: -(phi * p["w"]).sum(),
        lambda p: p["w"].sum() * float("inf"), 1, meta_opt, [phi],
    )  # fmt: skip
    assert float(phi.detach()) == pytest.approx(0.6 - 2 * (w1 - 1) * 0.5)


def test_meta_train_rl_keep_best_restores_the_best_loss():
    """keep_best must end with the loss parameters whose recorded meta-objective was the
    lowest (recomputed here by hand), not the last ones (the last step is made the worst)."""

    def run(keep_best: bool) -> tuple[StepLoss, list[float]]:
        loss = StepLoss(features=["w"], hidden=[4], seed=1)

        def objective(p, s):
            return ((p["w"] - 1) ** 2).sum() + (10.0 if s == 5 else 0.0)

        hist = meta_train_rl(
            loss,
            lambda s: {"w": torch.zeros(1, requires_grad=True)},
            lambda p, s, k: loss(p["w"].reshape(1, 1, 1)),
            objective,
            meta_steps=6,
            meta_lr=0.05,
            keep_best=keep_best,
        )
        return loss, [h["meta_loss"] for h in hist]

    best, values = run(True)
    last, values_last = run(False)
    assert values == values_last and values.index(min(values)) < 5
    w0 = {"w": torch.zeros(1, requires_grad=True)}
    p1, _ = train_policy(w0, lambda p, i: best(p["w"].reshape(1, 1, 1)), 1, 0.1, 1.0)
    assert float(((p1["w"].detach() - 1) ** 2).sum()) == pytest.approx(min(values), rel=1e-6)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert not torch.equal(flat(best), flat(last))

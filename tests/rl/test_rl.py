"""ML3 for RL: simulator physics, gradients through rollouts, fast end-to-end experiments."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from metaloss import functional as mf
from metaloss import io
from metaloss.errors import ConfigError
from metaloss.rl import learn_rl
from metaloss.rl import mountaincar as mc
from metaloss.rl import mountaincar_paper as mcp
from metaloss.rl import policy_gradient as pg
from metaloss.rl import reacher as rc
from metaloss.rl.envs import CartPole, FrictionMountainCar, MountainCar, Pendulum, Reacher
from metaloss.rl.learner import meta_train_rl, policy_optimizer, train_policy
from metaloss.rl.losses import StepLoss

# ----------------------------------------------------------------------------- physics


def test_mountaincar_limits_and_swing():
    env = MountainCar()
    gen = torch.Generator().manual_seed(0)
    s = env.reset(64, gen)
    assert ((s[:, 0] >= -0.6) & (s[:, 0] <= -0.4)).all() and (s[:, 1] == 0).all()
    for _ in range(300):
        s = env.step(s, torch.rand(64, generator=gen) * 4 - 2)  # actions beyond [-1, 1]
        assert (s[:, 0] >= env.x_min).all() and (s[:, 0] <= env.x_max).all()
        assert (s[:, 1].abs() <= env.v_max + 1e-7).all()
    # Full throttle right from the bottom never reaches the goal: the car must swing.
    s = env.reset(16, gen)
    reached = torch.zeros(16, dtype=torch.bool)
    for _ in range(200):
        s = env.step(s, torch.ones(16))
        reached |= env.success(s)
    assert not reached.any()
    # Bang-bang in the direction of motion (energy pumping) does reach it.
    s = env.reset(16, gen)
    reached = torch.zeros(16, dtype=torch.bool)
    for _ in range(200):
        a = torch.where(s[:, 1] < 0, -1.0, 1.0)
        s = env.step(s, a)
        reached |= env.success(s)
    assert reached.all()
    # The left wall stops the car.
    s = env.step(torch.tensor([[-1.19, -0.05]]), torch.tensor([-1.0]))
    assert float(s[0, 0]) == pytest.approx(env.x_min) and float(s[0, 1]) == 0.0


def test_friction_mountaincar_needs_a_swing():
    env = FrictionMountainCar()
    s = env.reset(3, torch.float64)
    assert s.tolist() == [[-0.55, 0.0]] * 3
    # Full push right (and beyond the action bound) settles below the right hill's top.
    right = env.reset(1)
    for _ in range(300):
        right = env.step(right, torch.tensor([5.0]))
        assert not env.success(right).any() and right[0, 0] < 0
    # Pushing in the direction of motion (left first) reaches the goal within 35 steps.
    s, best = env.reset(1), -1.0
    for _ in range(env.horizon):
        s = env.step(s, torch.where(s[:, 1] <= 0, -env.a_max, env.a_max))
        best = max(best, float(s[0, 0]))
    assert best >= env.goal
    # Left wall: the car stops there; positions never leave [x_min, x_max].
    s = env.step(torch.tensor([[-1.19, -1.0]]), torch.tensor([-0.25]))
    assert float(s[0, 0]) == pytest.approx(env.x_min) and float(s[0, 1]) == 0.0
    # Straight-through limits (the reference code): same values, the free update's gradient.
    st = FrictionMountainCar(straight_through=True)
    for state in ([[-1.19, -1.0]], [[0.49, 1.0]], [[-0.5, 1.6]]):
        a, b = (torch.tensor(state, requires_grad=True) for _ in range(2))
        out, out_st = env.step(a, torch.tensor([0.25])), st.step(b, torch.tensor([0.25]))
        assert torch.equal(out, out_st)
        g, g_st = (torch.autograd.grad(o.sum(), i)[0] for o, i in ((out, a), (out_st, b)))
        assert not torch.equal(g, g_st) and (g_st[0] > 0).all()


def test_mountaincar_energy_conserved_without_force():
    env = MountainCar()
    s = torch.tensor([[-0.52, 0.0], [-0.7, 0.01]], dtype=torch.float64)
    e0 = env.energy(s)
    drift = torch.zeros(2, dtype=torch.float64)
    for _ in range(500):
        s = env.step(s, torch.zeros(2, dtype=torch.float64))
        drift = torch.maximum(drift, (env.energy(s) - e0).abs())
    # symplectic Euler: bounded oscillation, a small fraction of the potential range 2g/3
    assert (drift < 0.05 * 2 * env.gravity / 3).all()


def test_reacher_kinematics_and_energy():
    arm = Reacher(damping=0.0, dt=0.01)
    tip = arm.fingertip(
        torch.tensor([[0.0, 0.0, 0, 0], [math.pi / 2, 0, 0, 0], [0, math.pi, 0, 0]])
    )
    assert torch.allclose(tip, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), atol=1e-6)
    m = arm.mass_matrix(torch.rand(8, 2, dtype=torch.float64) * 6)
    assert torch.allclose(m, m.transpose(1, 2))
    assert (torch.linalg.eigvalsh(m) > 0).all()
    # no torque, no damping, no gravity: kinetic energy is conserved (symplectic Euler)
    s = torch.tensor([[0.3, -0.5, 1.0, -2.0]], dtype=torch.float64)
    e0 = float(arm.energy(s))
    energies = []
    for _ in range(500):
        s = arm.step(s, torch.zeros(1, 2, dtype=torch.float64))
        energies.append(float(arm.energy(s)))
    assert max(abs(e - e0) for e in energies) < 0.02 * e0
    # damping dissipates, torque along the velocity adds energy
    damped = Reacher(damping=0.5)
    s = torch.tensor([[0.3, -0.5, 1.0, -2.0]])
    s2 = damped.step(s, torch.zeros(1, 2))
    assert float(damped.energy(s2)) < float(damped.energy(s))
    s3 = damped.step(torch.zeros(1, 4), torch.ones(1, 2))
    assert float(damped.energy(s3)) > 0


def test_pendulum_and_cartpole_basics():
    pend = Pendulum()
    s, r = pend.step(torch.tensor([[0.0, 0.0], [math.pi, 0.0]]), torch.zeros(2))
    assert float(r[0]) == 0.0 and float(r[1]) == pytest.approx(-(math.pi**2), rel=1e-5)
    cp = CartPole()
    s = cp.reset(5, torch.Generator().manual_seed(0))
    assert (s.abs() <= 0.05).all() and not cp.failed(s).any()
    for _ in range(100):
        s = cp.step(s, torch.ones(5))
    assert cp.failed(s).all()  # always pushing right topples the pole


def test_envs_match_gymnasium():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("CartPole-v1").unwrapped
    obs, _ = env.reset(seed=0)
    s = torch.tensor(obs, dtype=torch.float64)[None]
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = int(rng.integers(2))
        obs, _, terminated, *_ = env.step(a)
        s = CartPole().step(s, torch.tensor([a]))
        assert np.allclose(s[0].numpy(), obs, atol=1e-5)
        assert bool(CartPole().failed(s)[0]) == terminated
        if terminated:
            break
    env = gym.make("Pendulum-v1").unwrapped
    env.reset(seed=0)
    s = torch.tensor(env.state, dtype=torch.float64)[None]
    for _ in range(20):
        u = float(rng.uniform(-2, 2))
        _, reward, *_ = env.step(np.array([u], dtype=np.float32))
        s, r = Pendulum().step(s, torch.tensor([u], dtype=torch.float64))
        assert np.allclose(s[0].numpy(), env.state, atol=1e-4)
        assert float(r[0]) == pytest.approx(float(reward), abs=1e-4)


# ----------------------------------------------------------------------------- gradients


def _fd_check(f, params: dict[str, torch.Tensor], eps: float = 1e-6) -> None:
    value = f(params)
    g = mf.grad(value, params)
    gen = torch.Generator().manual_seed(1)
    d = {k: torch.randn(p.shape, generator=gen, dtype=p.dtype) for k, p in params.items()}
    analytic = sum(float((g[k] * d[k]).sum()) for k in params)
    with torch.no_grad():
        plus = f({k: p + eps * d[k] for k, p in params.items()})
        minus = f({k: p - eps * d[k] for k, p in params.items()})
    numeric = float(plus - minus) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_mountaincar_rollout_gradient_matches_finite_differences():
    cfg = mc.MCConfig()
    params = {k: v.detach().double().requires_grad_() for k, v in mc.policy_init(cfg, 3).items()}
    starts = MountainCar().reset(4, torch.Generator().manual_seed(0), torch.float64)
    loss = mc.make_loss(cfg, 0).double()

    def f(p):
        states, actions = mc.rollout(p, starts, 30, action_repeat=2)
        return loss(mc.features(states, actions)) + states[:, -1, 0].sum()

    _fd_check(f, params)


@pytest.mark.parametrize("soft", [True, False])
def test_paper_mountaincar_rollout_gradient_matches_finite_differences(soft):
    cfg = mcp.PaperMCConfig(policy_width=8, horizon=20, soft_clip=soft, loss_hidden=(8, 8))
    params = {k: v.detach().double().requires_grad_() for k, v in mcp.policy_init(cfg, 1).items()}
    params["1.weight"].data.mul_(0.05)  # keep the hard clip inactive (no gradient where it clips)
    loss = mcp.make_loss(cfg, 0).double()

    def f(p):
        states, actions = mcp.rollout(p, cfg)
        feats = mcp.features(states, actions)  # its outcome feature is detached by design:
        feats = torch.cat([feats[..., :3], torch.ones_like(feats[..., 3:])], -1)  # held fixed
        return loss(feats) + mcp.shaped_objective(states, cfg) + mcp.task_objective(states)

    _fd_check(f, params)


def test_reacher_rollout_gradient_matches_finite_differences():
    cfg = rc.ReacherConfig()
    params = {k: v.detach().double().requires_grad_() for k, v in rc.policy_init(cfg, 3).items()}
    starts, goals = rc.sample_pairs(4, 0, cfg.train_angles, torch.float64)

    def f(p):
        states, actions = rc.rollout(p, starts, goals, 15)  # true simulator
        return rc.task_loss(states, goals) + 0.1 * rc.goal_distance(states, goals).mean()

    _fd_check(f, params)


def test_meta_gradient_matches_finite_differences():
    """d(meta-objective)/d(loss parameters) through one inner step, float64."""
    cfg = mc.MCConfig()
    loss = mc.make_loss(cfg, 0).double()
    p0 = {k: v.detach().double().requires_grad_() for k, v in mc.policy_init(cfg, 3).items()}
    starts = MountainCar().reset(4, torch.Generator().manual_seed(0), torch.float64)

    opt = policy_optimizer("sgd", 0.3, 1.0)  # the inner step: clipped SGD

    def meta() -> torch.Tensor:
        states, actions = mc.rollout(p0, starts, 20, 2)
        g = mf.grad(loss(mc.features(states, actions)), p0, create_graph=True)
        p1, _ = opt.update(p0, g, opt.init(p0))
        return mc.shaped_objective(mc.rollout(p1, starts, 20, 2)[0], cfg)

    phi = dict(loss.named_parameters())
    g = torch.autograd.grad(meta(), list(phi.values()), allow_unused=True)
    gen = torch.Generator().manual_seed(2)
    d = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in phi.values()]
    analytic = sum(float((gi * di).sum()) for gi, di in zip(g, d) if gi is not None)
    eps = 1e-6

    def shifted(scale: float) -> float:
        with torch.no_grad():
            for p, di in zip(phi.values(), d):
                p.add_(scale * di)
        value = float(meta().detach())  # needs autograd for the inner step
        with torch.no_grad():
            for p, di in zip(phi.values(), d):
                p.sub_(scale * di)
        return value

    plus, minus = shifted(eps), shifted(-eps)
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-4, abs=1e-10)


# ----------------------------------------------------------------------------- losses


def test_step_loss_roundtrip(tmp_path):
    loss = StepLoss(features=["a", "b", "c"], hidden=[8, 8], seed=3)
    x = torch.randn(2, 7, 3)
    io.save_loss(tmp_path, loss, meta={"method": "ml3"})
    back = io.load(tmp_path)
    assert isinstance(back, StepLoss) and back.features == ["a", "b", "c"]
    assert torch.allclose(back(x), loss(x))
    with pytest.raises(ConfigError):
        loss(torch.randn(2, 7, 4))
    with pytest.raises(ConfigError):
        StepLoss(activation="nope")


def test_learn_rl_unknown_task_and_option():
    with pytest.raises(ConfigError):
        learn_rl("rl-nope")
    with pytest.raises(ConfigError):
        learn_rl("rl-cartpole", not_an_option=1)


# ----------------------------------------------------------------------------- experiments

FAST_MCP_STEPS = 200


def test_mountaincar_end_to_end(tmp_path):
    res = learn_rl("rl-mountaincar", seed=0, run_dir=tmp_path, meta_steps=2, batch=4, horizon=40)
    assert len(res.history) == 2 and all(math.isfinite(r["meta_loss"]) for r in res.history)
    loss = io.load(tmp_path)
    cfg = mc.MCConfig(batch=4, horizon=40, train_steps=2, eval_starts=8)
    out = mc.train_and_eval(loss, cfg, seed=0, keep_states=True)
    assert out["x"].shape == (8, 41)
    # control: the same policy initialisation and evaluation starts, never trained
    untrained = mc.train_and_eval(loss, replace(cfg, train_steps=0), seed=0)
    assert out["final_distance"] < untrained["final_distance"] - 0.05  # 0.76 vs 0.93


def test_mountaincar_success_rate_against_controls():
    """The success rate is the share of evaluation starts whose trajectory reaches x >= 0.5;
    ten task-objective steps on the long horizon reach the goal from most starts, the
    untrained policy (the same initialisation and starts) from none."""
    cfg = mc.MCConfig(batch=4, horizon=200, train_steps=10, eval_starts=16, v_scale=0.02)
    trained = mc.train_and_eval(None, cfg, seed=0, keep_states=True)
    untrained = mc.train_and_eval(None, replace(cfg, train_steps=0), seed=0, keep_states=True)
    for out in (trained, untrained):
        by_hand = float((out["x"].max(1).values >= 0.5).float().mean())
        assert out["success"] == by_hand
    assert untrained["success"] == 0.0 and trained["success"] >= 0.75  # 13 of 16 starts
    assert trained["final_distance"] < 0.5 * untrained["final_distance"]


@pytest.mark.slow
def test_paper_mountaincar_shaped_loss_teaches_the_swing(tmp_path):
    """The ML3 paper's demonstration at a small budget: after one SGD step with the loss
    meta-learned with the privileged subgoal, the policy swings left past -0.9 and reaches
    the goal; the plain learned loss and the task objective (even 100 steps) leave it stuck."""
    opts = {"meta_steps": FAST_MCP_STEPS, "soft_clip": True}
    res = learn_rl("rl-mountaincar-paper", seed=0, run_dir=tmp_path, **opts)
    assert res.info["reaches_goal_after_inner_steps"] == "True"
    cfg = mcp.PaperMCConfig(**opts)
    shaped = mcp.train_and_eval(io.load(tmp_path), cfg, seed=0)
    assert shaped["success"] and shaped["min_x"] < -0.9
    plain, _ = mcp.meta_train_loss(cfg, "plain", seed=0)
    assert not mcp.train_and_eval(plain, cfg, seed=0)["success"]
    for steps in (1, 100):
        assert not mcp.train_and_eval(None, cfg, seed=0, steps=steps)["success"]
    hist = [r["meta_loss"] for r in res.history]
    assert min(hist[-10:]) < hist[0] - 1.0


def test_paper_mountaincar_keep_best_and_fresh_inits():
    base = {"meta_steps": 4, "loss_hidden": (8, 8), "meta_lr": 0.05}

    def run(**kw):
        cfg = mcp.PaperMCConfig(**base, **kw)
        loss, hist = mcp.meta_train_loss(cfg, "shaped", seed=0)
        flat = torch.cat([p.detach().flatten() for p in loss.parameters()])
        return cfg, loss, flat, [h["meta_loss"] for h in hist]

    cfg, loss, best, values = run()
    _, _, last, _ = run(keep_best=False)
    assert not torch.equal(best, last)
    # the kept loss is the one that produced the lowest recorded meta-objective
    step = lambda p, i: loss(mcp.features(*mcp.rollout(p, cfg)))  # noqa: E731
    p1, _ = train_policy(mcp.policy_init(cfg, 0), step, 1, cfg.inner_lr, 0.0)
    again = float(mcp.shaped_objective(mcp.rollout(p1, cfg)[0], cfg).detach())
    assert again == pytest.approx(min(values), rel=1e-5)
    # fresh initialisations: a different meta-objective, and keep_best is ignored
    _, _, fresh_best, fresh_values = run(fresh_inits=True)
    _, _, fresh_last, _ = run(fresh_inits=True, keep_best=False)
    assert torch.equal(fresh_best, fresh_last) and fresh_values[1:] != values[1:]


def test_paper_mountaincar_config_errors():
    with pytest.raises(ConfigError, match="subgoal_steps"):
        mcp.PaperMCConfig(subgoal_steps=40)
    with pytest.raises(ConfigError, match="variant"):
        mcp.meta_train_loss(mcp.PaperMCConfig(meta_steps=1), "nope")
    with pytest.raises(ConfigError, match="unknown option"):
        learn_rl("rl-mountaincar-paper", batch=3)


def test_reacher_end_to_end(tmp_path):
    res = learn_rl(
        "rl-reacher",
        seed=0,
        run_dir=tmp_path,
        episodes=32,
        model_steps=40,
        meta_steps=2,
        batch=4,
        horizon=10,
    )
    assert float(res.info["model_one_step_nmse"]) < 1.0  # better than predicting no change
    loss = io.load(tmp_path)
    cfg = rc.ReacherConfig(
        episodes=32, model_steps=40, batch=4, horizon=10, test_goals=8, train_steps=5
    )
    model = rc.fit_dynamics(cfg, 0)
    learned = rc.train_and_eval(loss, model, cfg, seed=0)
    task = rc.train_and_eval(None, model, cfg, seed=0)  # the task objective through the model
    untrained = rc.train_and_eval(loss, model, replace(cfg, train_steps=0), seed=0)
    # the untrained policy ends about where it starts; both trained ones come closer in the
    # true simulator (learned 0.89, task 0.91, untrained 1.00)
    assert untrained["final_distance"] == pytest.approx(untrained["start_distance"], abs=0.02)
    assert learned["final_distance"] < untrained["final_distance"] - 0.05
    assert task["final_distance"] < untrained["final_distance"] - 0.05


def test_cartpole_end_to_end(tmp_path):
    res = learn_rl("rl-cartpole", seed=0, run_dir=tmp_path, meta_steps=3, batch=4, horizon=30)
    assert "episode_return" in res.history[0]
    loss = io.load(tmp_path)
    cfg = pg.PGConfig(batch=4, horizon=30, train_steps=2, eval_episodes=4)
    assert pg.train_and_eval(loss, cfg, 0)["return"] >= 1
    assert pg.train_and_eval(None, cfg, 0)["return"] >= 1


def test_pendulum_return_objective():
    cfg = pg.PGConfig(env="pendulum", meta_objective="return", horizon=15, batch=4, meta_steps=2)
    loss, hist = pg.meta_train_loss(cfg, seed=0)
    assert len(hist) == 2 and all(math.isfinite(r["meta_loss"]) for r in hist)
    with pytest.raises(ConfigError):
        pg.PGConfig(env="cartpole", meta_objective="return")


def test_reacher_meta_training_lowers_meta_objective():
    """On a fixed policy init and goal batch, ML3 makes one learned-loss step reach closer
    (through the learned model) than the untrained loss does."""
    cfg = rc.ReacherConfig(episodes=64, model_steps=150, horizon=20)
    model = rc.fit_dynamics(cfg, 0)
    starts, goals = rc.sample_pairs(8, 3, cfg.train_angles)
    loss = rc.make_loss(cfg, 0)

    def inner(p, step, k):
        states, actions = rc.rollout(p, starts, goals, cfg.horizon, model)
        return loss(rc.features(states, actions, goals))

    def objective(p, step):
        return rc.task_loss(rc.rollout(p, starts, goals, cfg.horizon, model)[0], goals)

    hist = meta_train_rl(
        loss,
        lambda s: rc.policy_init(cfg, 5),
        inner,
        objective,
        meta_steps=25,
        meta_lr=0.01,
        inner_lr=0.3,
    )
    first, last = hist[0]["meta_loss"], np.mean([r["meta_loss"] for r in hist[-3:]])
    assert last < first - 0.03, f"meta-objective {first:.4f} -> {last:.4f}"


def _params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def test_reacher_refit_adds_policy_rollouts_and_is_deterministic():
    """refit_every=2 over 3 meta steps refits after steps 0 and 2 (the reference refits at
    iteration 0, 300, ...): each adds the true-simulator rollouts of that step's updated
    policy on its (start, goal) batch to the model's data and trains on; twice the same."""
    cfg = rc.ReacherConfig(episodes=16, model_steps=20, meta_steps=3, batch=4, horizon=8,
                           refit_every=2)  # fmt: skip
    x0, u0, y0 = rc.collect(cfg, 0)
    runs = []
    for _ in range(2):
        model = rc.fit_dynamics(cfg, 0)
        fitted = _params_of(model)
        loss, hist = rc.meta_train_loss(model, cfg, seed=0)
        runs.append((model, fitted, loss, hist))
    model, fitted, loss, hist = runs[0]
    n0, per_refit = len(x0), cfg.batch * cfg.horizon
    x, u, y = model.data
    assert model.refits == 2 and len(x) == n0 + 2 * per_refit
    assert torch.equal(x[:n0], x0) and torch.equal(u[:n0], u0)  # the random data stays
    new_x, new_u, new_y = x[n0:], u[n0:], y[n0:]
    # real transitions of the true simulator, by a tanh policy (actions inside (-1, 1))
    torch.testing.assert_close(rc.ENV.step(new_x, new_u), new_y)
    assert float(new_u.abs().max()) < 1.0
    # the first refit's rollouts start at the states of meta step 0's batch
    starts, _ = rc.sample_pairs(cfg.batch, 1_000_003, cfg.train_angles)
    torch.testing.assert_close(new_x[:per_refit].reshape(cfg.batch, cfg.horizon, 4)[:, 0], starts)
    assert any(not torch.equal(a, b) for a, b in zip(fitted, _params_of(model)))  # trained on
    # deterministic for the seed
    model2, _, loss2, hist2 = runs[1]
    assert all(torch.equal(a, b) for a, b in zip(_params_of(model), _params_of(model2)))
    assert all(torch.equal(a, b) for a, b in zip(model.data, model2.data))
    assert [r["meta_loss"] for r in hist] == [r["meta_loss"] for r in hist2]
    assert all(torch.equal(a, b) for a, b in zip(loss.parameters(), loss2.parameters()))

    # refit_every=0 (the default) leaves the model as fitted on the random rollouts
    off = rc.fit_dynamics(cfg, 0)
    rc.meta_train_loss(off, replace(cfg, refit_every=0), seed=0)
    assert off.refits == 0 and len(off.data[0]) == n0
    assert all(torch.equal(a, b) for a, b in zip(fitted, _params_of(off)))


def test_reacher_refit_setting_is_an_option_with_the_references_value():
    assert rc.ReacherConfig().refit_every == 0  # default: fit once on random rollouts
    paper = rc.ReacherConfig.paper_like()
    assert (paper.refit_every, paper.meta_steps, paper.inner_steps) == (300, 3000, 1)
    res = learn_rl("rl-reacher", seed=0, episodes=16, model_steps=10, meta_steps=3, batch=2,
                   horizon=6, refit_every=1)  # fmt: skip
    assert res.config["refit_every"] == 1 and res.info["model_refits"] == 3
    assert float(res.info["model_one_step_nmse_final"]) < 1.0

"""Model-based ML3 on a 2-link reacher: a learned loss trains a policy through a learned model.

1. Collect random-torque rollouts in the true simulator (:class:`~metaloss.rl.envs.Reacher`).
2. Fit an ensemble of dynamics MLPs (``(cos q, sin q, dq, torque) -> delta state``); a model
   rollout uses the ensemble mean. With ``refit_every=N`` (off by default; the reference's
   value is 300, :meth:`ReacherConfig.paper_like`) the model is refitted on-policy during
   meta-training: after every N-th meta step (the first included) the updated policy is
   rolled out in the true simulator on that step's (start, goal) pairs, the rollouts join
   the model's training data and the ensemble trains ``model_steps`` more steps on all of
   it (:func:`refit_dynamics`), as the ML3 reference refits its model every 300 meta
   iterations.
3. Meta-train a :class:`~metaloss.rl.losses.StepLoss` over per-step features
   ``(fingertip-goal distance, torques, joint velocities)``: each meta step a fresh
   goal-conditioned policy takes ``inner_steps`` gradient steps of the learned loss back-
   propagated through the *model* rollout; the meta-objective is the task loss (final
   fingertip-goal distance) of the updated policy's model rollout.
4. Meta-test on goals from a region never used at meta-train time (the other half-plane):
   train a fresh policy through the model with the learned loss, or directly with the task
   loss, and measure the final distance in the TRUE simulator.

Example:
    >>> from metaloss.rl.reacher import ReacherConfig, fit_dynamics, meta_train_loss
    >>> cfg = ReacherConfig(episodes=8, model_steps=5, meta_steps=2, batch=4, horizon=10)
    >>> model = fit_dynamics(cfg, seed=0)
    >>> loss, hist = meta_train_loss(model, cfg, seed=0)
    >>> len(hist)
    2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.rl.envs import Reacher
from metaloss.rl.learner import meta_train_rl_with, train_policy
from metaloss.rl.losses import StepLoss
from metaloss.rl.task import RLTask, apply_policy, policy_mlp

FEATURES = ("goal_dist", "tau1", "tau2", "dq1", "dq2")
ENV = Reacher()
VEL_SCALE = 5.0


@dataclass
class ReacherConfig:
    """Settings of the model-based reacher experiment.

    Attributes:
        horizon: episode length.
        episodes: random rollouts collected in the true simulator for the model.
        members, model_hidden, model_steps, model_lr: the dynamics ensemble and its fit.
        batch: (start, goal) pairs per policy rollout.
        hidden: policy hidden widths.
        meta_steps, inner_steps, inner_lr, max_norm, meta_lr: ML3 settings.
        loss_hidden: hidden widths of the learned loss.
        train_steps, train_lr, train_optimizer: policy training at meta-test time.
        test_goals: (start, goal) pairs at meta-test time.
        train_angles, test_angles: goal angle ranges (radians) at meta-train / meta-test.
        refit_every: refit the dynamics model on rollouts of the current policy every N
            meta steps, from the first (0, the default: fit once on random rollouts; the
            ML3 reference: 300 of its 3,000 meta iterations).
    """

    horizon: int = 40
    episodes: int = 200
    members: int = 3
    model_hidden: int = 64
    model_steps: int = 600
    model_lr: float = 3e-3
    batch: int = 16
    hidden: tuple[int, ...] = (32, 32)
    meta_steps: int = 100
    inner_steps: int = 1
    reset_every: int = 1
    fixed_init: bool = True
    inner_lr: float = 0.3
    max_norm: float = 1.0
    meta_lr: float = 1e-2
    loss_hidden: tuple[int, ...] = (32, 32)
    train_steps: int = 1
    train_lr: float = 0.3
    train_optimizer: str = "sgd"
    test_goals: int = 32
    train_angles: tuple[float, float] = (0.0, math.pi)
    test_angles: tuple[float, float] = (-math.pi, 0.0)
    refit_every: int = 0

    @classmethod
    def paper_like(cls, **changes: Any) -> ReacherConfig:
        """The settings closest to the ML3 reference's reacher experiment: 3,000 meta
        iterations of one inner step from one fixed policy initialisation, the dynamics model
        refitted on-policy every 300 (its simulator, horizon and loss inputs differ: see
        docs/fidelity.md).

        Example:
            >>> ReacherConfig.paper_like().refit_every
            300
        """
        base = {"meta_steps": 3000, "inner_steps": 1, "fixed_init": True, "refit_every": 300}
        return cls(**{**base, **changes})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("hidden", "loss_hidden", "train_angles", "test_angles"):
            d[k] = list(d[k])
        return d


def _obs(state: Tensor) -> Tensor:
    q, dq = state[:, :2], state[:, 2:]
    return torch.cat([torch.cos(q), torch.sin(q), dq / VEL_SCALE], -1)


class DynamicsEnsemble(nn.Module):
    """An ensemble of MLPs predicting the normalised state change; evaluated in one batch.

    ``step(state, action)`` returns the ensemble-mean next state (differentiable).

    Example:
        >>> import torch
        >>> ens = DynamicsEnsemble(members=2, hidden=8)
        >>> ens.step(torch.zeros(3, 4), torch.zeros(3, 2)).shape
        torch.Size([3, 4])
    """

    def __init__(self, members: int = 3, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        sizes = [8, hidden, hidden, 4]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / a**0.5
            self.weights.append(
                nn.Parameter((torch.rand(members, a, b, generator=gen) * 2 - 1) * bound)
            )
            self.biases.append(
                nn.Parameter((torch.rand(members, 1, b, generator=gen) * 2 - 1) * bound)
            )
        self.register_buffer("delta_scale", torch.ones(4))
        self.members = members
        # the training data (states, actions, next states) and the on-policy refits so far
        self.data: tuple[Tensor, Tensor, Tensor] | None = None
        self.refits = 0

    def predict(self, state: Tensor, action: Tensor) -> Tensor:
        """Per-member normalised deltas, shape ``(members, B, 4)``."""
        h = torch.cat([_obs(state), action], -1).unsqueeze(0).expand(self.members, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < n - 1:
                h = torch.tanh(h)
        return h

    def step(self, state: Tensor, action: Tensor) -> Tensor:
        action = torch.clamp(action, -1.0, 1.0)
        return state + self.predict(state, action).mean(0) * self.delta_scale


def collect(cfg: ReacherConfig, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Random rollouts in the true simulator: ``(states, actions, next_states)`` flattened.

    Torques are uniform in ``[-1, 1]`` and held for 1-4 steps, so that the data also
    contains fast motions.
    """
    gen = torch.Generator().manual_seed(10_000 + seed)
    s = ENV.reset(cfg.episodes, gen)
    xs, us, ys = [], [], []
    a = torch.zeros(cfg.episodes, 2)
    with torch.no_grad():
        for _ in range(cfg.horizon):
            resample = torch.rand(cfg.episodes, 1, generator=gen) < 0.5
            a = torch.where(resample, torch.rand(cfg.episodes, 2, generator=gen) * 2 - 1, a)
            s2 = ENV.step(s, a)
            xs.append(s)
            us.append(a)
            ys.append(s2)
            s = s2
    return torch.cat(xs), torch.cat(us), torch.cat(ys)


def _train_dynamics(model: DynamicsEnsemble, cfg: ReacherConfig, gen: torch.Generator) -> None:
    """``cfg.model_steps`` Adam steps (a fresh Adam) on ``model.data``, every member on its
    own uniformly drawn minibatches; the parameters stay frozen outside."""
    assert model.data is not None
    x, u, y = model.data
    target = (y - x) / model.delta_scale
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.model_lr)
    n = x.shape[0]
    for _ in range(cfg.model_steps):
        idx = torch.randint(0, n, (cfg.members, 256), generator=gen)
        h = torch.cat([_obs(x[idx].reshape(-1, 4)), u[idx].reshape(-1, 2)], -1)
        h = h.reshape(cfg.members, 256, 8)
        for i, (w, b) in enumerate(zip(model.weights, model.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(model.weights) - 1:
                h = torch.tanh(h)
        loss = ((h - target[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)


def fit_dynamics(cfg: ReacherConfig, seed: int = 0) -> DynamicsEnsemble:
    """Fit the ensemble (bootstrap minibatches per member, Adam) on random rollouts.

    The model keeps its training data, ``model.data = (states, actions, next_states)``
    (:func:`refit_dynamics` adds to it), and counts its refits in ``model.refits``.
    """
    x, u, y = collect(cfg, seed)
    model = DynamicsEnsemble(cfg.members, cfg.model_hidden, seed)
    model.delta_scale.copy_((y - x).std(0) + 1e-6)
    model.data = (x, u, y)
    _train_dynamics(model, cfg, torch.Generator().manual_seed(20_000 + seed))
    return model


def refit_dynamics(
    model: DynamicsEnsemble, states: Tensor, actions: Tensor, cfg: ReacherConfig, seed: int = 0
) -> DynamicsEnsemble:
    """Add true-simulator rollouts (``states`` ``(B, T+1, 4)``, ``actions`` ``(B, T, 2)``,
    as :func:`rollout` returns them) to the model's data and train it further, in place.

    The ensemble continues from its weights with a fresh Adam for ``cfg.model_steps`` steps
    on all its data (the ML3 reference continues training its ensemble on the aggregated
    data too); the normalisation (``delta_scale``) stays that of the first fit. Deterministic
    for ``seed`` and the number of refits so far.

    Example:
        >>> cfg = ReacherConfig(episodes=4, model_steps=2, horizon=5, members=2)
        >>> model = fit_dynamics(cfg, seed=0)
        >>> starts, goals = sample_pairs(3, 0, cfg.train_angles)
        >>> states, actions = rollout(policy_init(cfg, 0), starts, goals, cfg.horizon)
        >>> model = refit_dynamics(model, states.detach(), actions.detach(), cfg, seed=0)
        >>> model.refits, model.data[0].shape[0]  # 4 x 5 random + 3 x 5 policy transitions
        (1, 35)
    """
    if model.data is None:
        raise ConfigError("refit_dynamics: the model has no training data (use fit_dynamics)")
    x, u, y = model.data
    new = (states[:, :-1].reshape(-1, 4), actions.reshape(-1, 2), states[:, 1:].reshape(-1, 4))
    x, u, y = (torch.cat([a, b.to(a.dtype)]) for a, b in zip((x, u, y), new))
    model.data = (x, u, y)
    model.refits += 1
    gen = torch.Generator().manual_seed(30_000 + 1_009 * seed + model.refits)
    _train_dynamics(model, cfg, gen)
    return model


def model_error(model: DynamicsEnsemble, cfg: ReacherConfig, seed: int = 1) -> float:
    """One-step normalised MSE on fresh random rollouts (1.0 = predicting no change)."""
    x, u, y = collect(ReacherConfig(episodes=50, horizon=cfg.horizon), 99 + seed)
    with torch.no_grad():
        err = ((model.step(x, u) - y) / model.delta_scale) ** 2
        base = ((x - y) / model.delta_scale) ** 2
    return float(err.mean() / base.mean())


def policy_model(cfg: ReacherConfig, seed: int) -> nn.Module:
    """A fresh goal-conditioned policy ``(obs, goal, fingertip - goal) -> pre-tanh torques``
    (the zoo's tanh MLP, output layer scaled by 0.1)."""
    return policy_mlp([10, *cfg.hidden, 2], seed, out_scale=0.1)


def policy_init(cfg: ReacherConfig, seed: int) -> mf.Params:
    """Fresh policy parameters for a seed."""
    return mf.params_of(policy_model(cfg, seed))


def act(params: mf.Params, state: Tensor, goal: Tensor) -> Tensor:
    """Torques in ``[-1, 1]``."""
    tip = ENV.fingertip(state)
    return torch.tanh(apply_policy(params, torch.cat([_obs(state), goal, tip - goal], -1)))


def rollout(
    params: mf.Params, starts: Tensor, goals: Tensor, horizon: int, model: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """States ``(B, T+1, 4)`` and actions ``(B, T, 2)`` in the model (or the true simulator
    when ``model`` is None); differentiable either way."""
    step = ENV.step if model is None else model.step
    s, states, actions = starts, [starts], []
    for _ in range(horizon):
        a = act(params, s, goals)
        s = step(s, a)
        states.append(s)
        actions.append(a)
    return torch.stack(states, 1), torch.stack(actions, 1)


def goal_distance(states: Tensor, goals: Tensor) -> Tensor:
    """Fingertip-goal distance per step, ``(B, T)``."""
    b, t, _ = states.shape
    tip = ENV.fingertip(states.reshape(b * t, 4)).reshape(b, t, 2)
    return torch.linalg.vector_norm(tip - goals[:, None], dim=-1)


def features(states: Tensor, actions: Tensor, goals: Tensor) -> Tensor:
    """Per-step loss features ``(distance, tau1, tau2, dq1, dq2)`` after each action."""
    d = goal_distance(states[:, 1:], goals)
    return torch.cat([d.unsqueeze(-1), actions, states[:, 1:, 2:] / VEL_SCALE], -1)


def task_loss(states: Tensor, goals: Tensor) -> Tensor:
    """Final fingertip-goal distance, averaged over the batch."""
    return goal_distance(states[:, -1:], goals).mean()


def make_loss(cfg: ReacherConfig, seed: int) -> StepLoss:
    """A fresh learned loss for the reacher."""
    return StepLoss(
        features=FEATURES,
        hidden=cfg.loss_hidden,
        activation="tanh",
        time_reduction="mean",
        seed=seed,
    )


def _init_seed(seed: int) -> int:
    return 424_242 + seed


def sample_pairs(
    n: int, seed: int, angles: tuple[float, float], dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """``n`` random (start state, goal) pairs with goal angles in ``angles``."""
    gen = torch.Generator().manual_seed(seed)
    return ENV.reset(n, gen, dtype), ENV.sample_goals(n, gen, dtype, angle_range=angles)


def meta_train_loss(
    model: DynamicsEnsemble,
    cfg: ReacherConfig,
    seed: int = 0,
    progress: bool = False,
    loss: StepLoss | None = None,
) -> tuple[StepLoss, list[dict[str, float]]]:
    """Meta-train a loss through the learned model on the meta-train goal region.

    With ``cfg.refit_every`` the model is refitted on-policy along the way
    (:func:`refit_dynamics`, in place: ``model`` is the refitted one afterwards).
    """
    loss = loss or make_loss(cfg, seed)
    base = 1_000_003 * (seed + 1)
    pairs: dict[int, tuple[Tensor, Tensor]] = {}

    def batch(step: int) -> tuple[Tensor, Tensor]:
        if step not in pairs:
            pairs.clear()
            pairs[step] = sample_pairs(cfg.batch, base + step, cfg.train_angles)
        return pairs[step]

    def inner(params: mf.Params, step: int, k: int) -> Tensor:
        starts, goals = batch(step)
        states, actions = rollout(params, starts, goals, cfg.horizon, model)
        return loss(features(states, actions, goals))

    def objective(params: mf.Params, step: int) -> Tensor:
        starts, goals = batch(step)
        states, _ = rollout(params, starts, goals, cfg.horizon, model)
        return task_loss(states, goals)

    def refit(step: int, params: mf.Params) -> None:
        if cfg.refit_every > 0 and step % cfg.refit_every == 0:
            starts, goals = batch(step)
            with torch.no_grad():
                states, actions = rollout(params, starts, goals, cfg.horizon)  # true simulator
            refit_dynamics(model, states, actions, cfg, seed)

    history = meta_train_rl_with(
        cfg,
        loss,
        lambda step: policy_init(cfg, _init_seed(seed) if cfg.fixed_init else base + step),
        inner,
        objective,
        progress=progress,
        name="ml3 reacher (model-based)",
        on_step=refit,
    )
    return loss, history


def train_and_eval(
    loss: nn.Module | None, model: DynamicsEnsemble, cfg: ReacherConfig, seed: int = 0
) -> dict[str, Any]:
    """Train a fresh policy through the model on unseen test goals; evaluate in the true sim.

    ``loss=None`` trains on the task loss (final distance) through the model.
    """
    starts, goals = sample_pairs(cfg.test_goals, 5_000_011 + seed, cfg.test_angles)

    def objective(params: mf.Params, i: int) -> Tensor:
        states, actions = rollout(params, starts, goals, cfg.horizon, model)
        if loss is None:
            return task_loss(states, goals)
        return loss(features(states, actions, goals))

    params, curve = train_policy(
        policy_init(cfg, _init_seed(seed) if cfg.fixed_init else 7_000_003 + seed),
        objective,
        cfg.train_steps,
        cfg.train_lr,
        cfg.max_norm,
        cfg.train_optimizer,
    )
    with torch.no_grad():
        true_states, _ = rollout(params, starts, goals, cfg.horizon)
        model_states, _ = rollout(params, starts, goals, cfg.horizon, model)
        start_d = goal_distance(starts[:, None], goals).mean()
    return {
        "final_distance": float(task_loss(true_states, goals)),
        "model_final_distance": float(task_loss(model_states, goals)),
        "start_distance": float(start_d),
        "train_curve": curve,
    }


def _learn(
    cfg: ReacherConfig, seed: int, progress: bool, loss: StepLoss | None = None
) -> tuple[StepLoss, list[dict[str, float]], dict[str, Any]]:
    model = fit_dynamics(cfg, seed)
    info = {"model_one_step_nmse": f"{model_error(model, cfg):.4f}"}
    loss, history = meta_train_loss(model, cfg, seed, progress, loss)
    if cfg.refit_every > 0:
        info["model_refits"] = model.refits
        info["model_one_step_nmse_final"] = f"{model_error(model, cfg):.4f}"
    return loss, history, info


TASK = RLTask(
    name="rl-reacher",
    description="2-link reacher, loss trains a policy through a learned dynamics ensemble",
    env_factory=Reacher,
    policy_factory=policy_model,
    settings=ReacherConfig(),
    meta_learner=_learn,
)

__all__ = [
    "DynamicsEnsemble",
    "FEATURES",
    "ReacherConfig",
    "collect",
    "features",
    "fit_dynamics",
    "goal_distance",
    "make_loss",
    "meta_train_loss",
    "model_error",
    "policy_init",
    "policy_model",
    "refit_dynamics",
    "rollout",
    "sample_pairs",
    "TASK",
    "task_loss",
    "train_and_eval",
]

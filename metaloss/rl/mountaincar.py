"""ML3 on Mountain Car through a differentiable simulator, with and without a shaped meta-objective.

A deterministic policy ``a = tanh(MLP(x, v))`` is trained by back-propagating a loss
through the whole simulated trajectory. Three ways to train it are compared:

* ``task``: the task loss directly, the distance to the goal at the end of the episode,
  ``relu(0.5 - x_T)``. Its gradient pushes right; the car is too weak to drive up
  directly, so this greedy signal gets stuck in the valley.
* ``plain``: a :class:`~metaloss.rl.losses.StepLoss` over per-step features
  ``(x, v, a, goal distance)``, meta-trained ML3-style with the task loss as the
  meta-objective.
* ``shaped``: the same loss meta-trained with *extra information at meta-train time*:
  the meta-objective also asks the updated policy to first reach an intermediate goal on
  the left hill (``x <= -0.9`` within the first part of the episode), then the goal. The
  policy trained later with the learned loss never sees that information.

Example:
    >>> from metaloss.rl.mountaincar import MCConfig, meta_train_loss, train_and_eval
    >>> cfg = MCConfig(meta_steps=2, batch=4, horizon=30, train_steps=2, eval_starts=8)
    >>> loss, hist = meta_train_loss(cfg, variant="shaped", seed=0)
    >>> res = train_and_eval(loss, cfg, seed=0)
    >>> 0.0 <= res["success"] <= 1.0
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.rl.envs import MountainCar
from metaloss.rl.learner import meta_train_rl_with, train_policy
from metaloss.rl.losses import StepLoss
from metaloss.rl.task import RLTask, apply_policy, policy_mlp

FEATURES = ("x", "v", "a", "goal_dist")
VARIANTS = ("plain", "shaped")


@dataclass
class MCConfig:
    """Settings of the Mountain Car experiment.

    Attributes:
        horizon: episode length (steps).
        action_repeat: the policy acts every this many steps (holding its action between).
        v_scale: the policy sees ``v / v_scale`` (default ``v_max``; with 0.02 the policy
            resolves the small velocities of the first swings far better, which makes the
            direct task-loss baseline much stronger).
        fixed_init, reset_every: one fixed policy initialisation per seed (as in the ML3
            reference code) / re-initialise every N meta steps.
        time_feature: give the learned loss ``t / T`` as a fifth feature.
        batch: start states per rollout (inner and meta).
        hidden: policy hidden widths.
        meta_steps, inner_steps, inner_lr, max_norm, meta_lr: ML3 settings (inner loop:
            clipped SGD on the learned loss from a fresh policy each meta step).
        loss_hidden: hidden widths of the learned loss.
        subgoal: the intermediate goal of the shaped meta-objective (left hill).
        subgoal_frac: the subgoal must be reached within this fraction of the episode.
        subgoal_weight: weight of the subgoal term.
        train_steps, train_lr, train_optimizer: policy training at meta-test time.
        eval_starts: start states for the success rate.
    """

    horizon: int = 200
    batch: int = 16
    hidden: tuple[int, ...] = (32,)
    action_repeat: int = 2
    v_scale: float = 0.07
    meta_steps: int = 60
    inner_steps: int = 1
    reset_every: int = 1
    fixed_init: bool = False
    time_feature: bool = False
    inner_lr: float = 0.3
    max_norm: float = 1.0
    meta_lr: float = 1e-2
    loss_hidden: tuple[int, ...] = (32, 32)
    subgoal: float = -0.9
    subgoal_frac: float = 0.6
    subgoal_weight: float = 1.0
    shaped_mode: str = "min"
    train_steps: int = 100
    train_lr: float = 0.3
    train_optimizer: str = "sgd"
    eval_starts: int = 100

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["loss_hidden"] = list(self.hidden), list(self.loss_hidden)
        return d


ENV = MountainCar()


def policy_model(cfg: MCConfig, seed: int) -> nn.Module:
    """A fresh policy network ``(x', v') -> pre-tanh action`` (the zoo's tanh MLP)."""
    return policy_mlp([2, *cfg.hidden, 1], seed)


def policy_init(cfg: MCConfig, seed: int) -> mf.Params:
    """Fresh policy parameters for a seed."""
    return mf.params_of(policy_model(cfg, seed))


def act(params: mf.Params, state: Tensor, v_scale: float = ENV.v_max) -> Tensor:
    """``a = tanh(MLP(x', v'))`` in ``[-1, 1]``, shape ``(B,)``, with ``x' = (x + 0.3) / 0.9``
    and ``v' = v / v_scale``."""
    scale = torch.tensor([1 / 0.9, 1 / v_scale], dtype=state.dtype)
    shift = torch.tensor([0.3 / 0.9, 0.0], dtype=state.dtype)
    return torch.tanh(apply_policy(params, torch.addcmul(shift, state, scale))).squeeze(-1)


def rollout(
    params: mf.Params,
    starts: Tensor,
    horizon: int,
    action_repeat: int = 1,
    v_scale: float = ENV.v_max,
) -> tuple[Tensor, Tensor]:
    """Differentiable rollout: states ``(B, T+1, 2)`` and actions ``(B, T)``.

    The policy acts every ``action_repeat`` steps and its action is held in between.
    """
    x, v = starts[:, 0], starts[:, 1]
    xs, vs, actions = [x], [v], []
    a = x
    for t in range(horizon):
        if t % action_repeat == 0:
            a = act(params, torch.stack([x, v], -1), v_scale)
        x, v = ENV.step_xv(x, v, a)
        xs.append(x)
        vs.append(v)
        actions.append(a)
    return torch.stack([torch.stack(xs, 1), torch.stack(vs, 1)], -1), torch.stack(actions, 1)


def features(states: Tensor, actions: Tensor, time_feature: bool = False) -> Tensor:
    """Per-step features ``(x, v, a, goal distance[, t / T])`` of the state each action reaches."""
    nxt = states[:, 1:]
    x, v = nxt[..., 0], nxt[..., 1]
    cols = [(x + 0.3) / 0.9, v / ENV.v_max, actions, (ENV.goal - x) / (ENV.x_max - ENV.x_min)]
    if time_feature:
        t = torch.arange(1, x.shape[1] + 1, dtype=x.dtype) / x.shape[1]
        cols.append(t.expand_as(x))
    return torch.stack(cols, -1)


def task_loss(states: Tensor) -> Tensor:
    """Distance to the goal at the end of the episode (0 once at the goal)."""
    return torch.relu(ENV.goal - states[:, -1, 0]).mean()


def shaped_objective(states: Tensor, cfg: MCConfig) -> Tensor:
    """Privileged meta-objective: reach the left-hill subgoal early, then the goal.

    ``shaped_mode="dense"`` (as in the ML3 reference code): the mean distance past the
    subgoal over the first ``subgoal_frac`` of the episode plus the mean distance to the
    goal over the rest; ``"min"``: the closest approach to the subgoal in the first part
    plus the final distance to the goal.
    """
    x = states[:, 1:, 0]
    t_sub = max(1, int(cfg.subgoal_frac * x.shape[1]))
    if cfg.shaped_mode == "dense":
        sub = torch.relu(x[:, :t_sub] - cfg.subgoal).mean()
        rest = x[:, t_sub:] if t_sub < x.shape[1] else x[:, -1:]
        return cfg.subgoal_weight * sub + torch.relu(ENV.goal - rest).mean()
    if cfg.shaped_mode != "min":
        raise ConfigError(f"shaped_mode must be 'dense' or 'min', got {cfg.shaped_mode!r}")
    sub = torch.relu(x[:, :t_sub].min(1).values - cfg.subgoal).mean()
    return cfg.subgoal_weight * sub + task_loss(states)


def make_loss(cfg: MCConfig, seed: int) -> StepLoss:
    """A fresh learned loss for Mountain Car."""
    names = (*FEATURES, "t") if cfg.time_feature else FEATURES
    return StepLoss(features=names, hidden=cfg.loss_hidden, activation="tanh", seed=seed)


def _init_seed(seed: int) -> int:
    return 424_242 + seed


def _starts(n: int, seed: int) -> Tensor:
    return ENV.reset(n, torch.Generator().manual_seed(seed))


def meta_train_loss(
    cfg: MCConfig,
    variant: str = "shaped",
    seed: int = 0,
    progress: bool = False,
    loss: StepLoss | None = None,
) -> tuple[StepLoss, list[dict[str, float]]]:
    """Meta-train a loss ML3-style; ``variant`` ``plain`` (task loss) or ``shaped``."""
    if variant not in VARIANTS:
        raise ConfigError(f"mountain car variant must be one of {VARIANTS}, got {variant!r}")
    loss = loss or make_loss(cfg, seed)
    base = 1_000_003 * (seed + 1)

    def inner(params: mf.Params, step: int, k: int) -> Tensor:
        states, actions = rollout(
            params, _starts(cfg.batch, base + 2 * step), cfg.horizon, cfg.action_repeat, cfg.v_scale
        )
        return loss(features(states, actions, cfg.time_feature))

    def objective(params: mf.Params, step: int) -> Tensor:
        states, _ = rollout(
            params,
            _starts(cfg.batch, base + 2 * step + 1),
            cfg.horizon,
            cfg.action_repeat,
            cfg.v_scale,
        )
        return shaped_objective(states, cfg) if variant == "shaped" else task_loss(states)

    history = meta_train_rl_with(
        cfg,
        loss,
        lambda step: policy_init(cfg, _init_seed(seed) if cfg.fixed_init else base + step),
        inner,
        objective,
        progress=progress,
        name=f"ml3 mountain car ({variant})",
    )
    return loss, history


def train_and_eval(
    loss: nn.Module | None, cfg: MCConfig, seed: int = 0, keep_states: bool = False
) -> dict[str, Any]:
    """Train a fresh policy with ``loss`` (``None``: the task loss) and evaluate it.

    Returns the success rate (``max_t x_t >= 0.5``) over ``cfg.eval_starts`` standard
    starts, the mean final distance, the training curve and (optionally) the trajectories.
    """
    train_seed = 7_000_003 + seed
    init_seed = _init_seed(seed) if cfg.fixed_init else train_seed

    def objective(params: mf.Params, i: int) -> Tensor:
        states, actions = rollout(
            params, _starts(cfg.batch, train_seed + i), cfg.horizon, cfg.action_repeat, cfg.v_scale
        )
        return (
            task_loss(states) if loss is None else loss(features(states, actions, cfg.time_feature))
        )

    params, curve = train_policy(
        policy_init(cfg, init_seed),
        objective,
        cfg.train_steps,
        cfg.train_lr,
        cfg.max_norm,
        cfg.train_optimizer,
    )
    with torch.no_grad():
        states, actions = rollout(
            params,
            _starts(cfg.eval_starts, 99_991 + seed),
            cfg.horizon,
            cfg.action_repeat,
            cfg.v_scale,
        )
    reached = ENV.success(states.reshape(-1, 2)).reshape(states.shape[:2]).any(1)
    out: dict[str, Any] = {
        "success": float(reached.float().mean()),
        "final_distance": float(task_loss(states)),
        "min_x": float(states[:, :, 0].min(1).values.mean()),
        "train_curve": curve,
    }
    if keep_states:
        out["x"] = states[:, :, 0]
    return out


def _learn(
    cfg: MCConfig, seed: int, progress: bool, loss: StepLoss | None = None, variant: str = "shaped"
) -> tuple[StepLoss, list[dict[str, float]], dict[str, Any]]:
    loss, history = meta_train_loss(cfg, variant, seed, progress, loss)
    return loss, history, {"variant": variant}


TASK = RLTask(
    name="rl-mountaincar",
    description="differentiable Mountain Car, shaped (intermediate goal) or plain ML3 loss",
    env_factory=MountainCar,
    policy_factory=policy_model,
    settings=MCConfig(),
    meta_learner=_learn,
    extra_options={"variant": "shaped"},
)

__all__ = [
    "FEATURES",
    "MCConfig",
    "TASK",
    "act",
    "features",
    "make_loss",
    "meta_train_loss",
    "policy_init",
    "policy_model",
    "rollout",
    "shaped_objective",
    "task_loss",
    "train_and_eval",
]

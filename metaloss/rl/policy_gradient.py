"""Model-free ML3: a learned loss replaces the REINFORCE objective (CartPole, Pendulum).

Per time step the loss sees ``(log pi(a_t|s_t), normalised return-to-go, t / T)`` and is
averaged over the valid steps of a batch of sampled episodes. REINFORCE is the special
case ``f = -logp * G``. ML3 meta-training: the policy takes ``inner_steps`` differentiable
SGD steps on the learned loss (episodes sampled from the current policy, no gradient
through sampling); the meta-objective is either

* ``surrogate``: the REINFORCE surrogate ``-mean(log pi'(a|s) G)`` of the *updated*
  policy on fresh episodes sampled from it (an unbiased estimate of the gradient of the
  return at the updated policy), or
* ``return`` (Pendulum only): the negative return of the updated policy, differentiated
  through the differentiable pendulum with reparameterised Gaussian actions.

The policy persists between meta steps and is re-initialised every ``reset_every`` steps,
so the loss sees policies along a whole training run.

Example:
    >>> from metaloss.rl.policy_gradient import PGConfig, meta_train_loss, train_and_eval
    >>> cfg = PGConfig(meta_steps=2, batch=4, horizon=20, train_steps=2, eval_episodes=4)
    >>> loss, hist = meta_train_loss(cfg, seed=0)
    >>> res = train_and_eval(loss, cfg, seed=0)
    >>> res["return"] > 0
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError
from metaloss.rl.envs import CartPole, Pendulum
from metaloss.rl.learner import meta_train_rl_with, train_policy
from metaloss.rl.losses import StepLoss
from metaloss.rl.task import RLTask, apply_policy, policy_mlp

FEATURES = ("logp", "return_to_go", "t")
ENVS = ("cartpole", "pendulum")


@dataclass
class PGConfig:
    """Settings of the policy-gradient experiment.

    Attributes:
        env: ``cartpole`` or ``pendulum``.
        horizon: episode length cap (CartPole-v1 uses 500; 200 keeps runs short).
        batch: episodes per policy update (and per meta-objective estimate).
        hidden: policy hidden widths.
        gamma: discount of the return-to-go.
        meta_steps, inner_steps, inner_lr, max_norm, meta_lr, reset_every: ML3 settings.
        meta_objective: ``surrogate`` or ``return`` (pendulum only).
        loss_hidden: hidden widths of the learned loss.
        train_steps, train_lr, train_optimizer: policy training at meta-test time.
        eval_episodes: episodes for the final return.
    """

    env: str = "cartpole"
    horizon: int = 200
    batch: int = 16
    hidden: tuple[int, ...] = (32,)
    gamma: float = 0.99
    meta_steps: int = 300
    inner_steps: int = 1
    inner_lr: float = 0.1
    max_norm: float = 1.0
    meta_lr: float = 3e-3
    reset_every: int = 25
    meta_objective: str = "surrogate"
    loss_hidden: tuple[int, ...] = (32, 32)
    train_steps: int = 60
    train_lr: float = 0.1
    train_optimizer: str = "sgd"
    eval_episodes: int = 64

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ConfigError(f"policy-gradient env must be one of {ENVS}, got {self.env!r}")
        if self.meta_objective not in ("surrogate", "return"):
            raise ConfigError("meta_objective must be 'surrogate' or 'return'")
        if self.meta_objective == "return" and self.env != "pendulum":
            raise ConfigError("meta_objective='return' needs the differentiable pendulum")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"], d["loss_hidden"] = list(self.hidden), list(self.loss_hidden)
        return d


CARTPOLE, PENDULUM = CartPole(), Pendulum()


def policy_model(cfg: PGConfig, seed: int) -> nn.Module:
    """A fresh policy network (the zoo's tanh MLP, output layer scaled by 0.1): action
    logits (CartPole) or the pre-tanh mean torque (Pendulum)."""
    sizes = [4, *cfg.hidden, 2] if cfg.env == "cartpole" else [3, *cfg.hidden, 1]
    return policy_mlp(sizes, seed, out_scale=0.1)


def policy_init(cfg: PGConfig, seed: int) -> mf.Params:
    """A fresh policy: categorical (CartPole) or Gaussian with a learned log-std (Pendulum)."""
    params = mf.params_of(policy_model(cfg, seed))
    if cfg.env == "pendulum":
        params["log_std"] = torch.zeros(1).requires_grad_(True)
    return params


def _pend_mean(params: mf.Params, obs: Tensor) -> Tensor:
    return PENDULUM.max_torque * torch.tanh(apply_policy(params, obs)).squeeze(-1)


@dataclass
class Batch:
    """Sampled episodes, flattened to the valid steps."""

    obs: Tensor  # (N, obs_dim)
    actions: Tensor  # (N,) int for CartPole, float for Pendulum
    returns: Tensor  # (N,) normalised return-to-go
    t: Tensor  # (N,) time / horizon
    episode_return: float  # mean undiscounted return per episode


def sample(params: mf.Params, cfg: PGConfig, n: int, gen: torch.Generator) -> Batch:
    """Sample ``n`` episodes with the current policy (no gradient)."""
    T = cfg.horizon
    with torch.no_grad():
        if cfg.env == "cartpole":
            s = CARTPOLE.reset(n, gen)
            alive = torch.ones(n, dtype=torch.bool)
            obs, acts, masks, rews = [], [], [], []
            for _ in range(T):
                probs = torch.softmax(apply_policy(params, s), -1)
                a = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
                obs.append(s)
                acts.append(a)
                masks.append(alive)
                rews.append(alive.float())
                s = CARTPOLE.step(s, a)
                alive = alive & ~CARTPOLE.failed(s)
                if not alive.any():
                    break
        else:
            s = PENDULUM.reset(n, gen)
            std = params["log_std"].exp()
            obs, acts, masks, rews = [], [], [], []
            for _ in range(T):
                o = PENDULUM.observe(s)
                a = _pend_mean(params, o) + std * torch.randn(n, generator=gen)
                obs.append(o)
                acts.append(a)
                masks.append(torch.ones(n, dtype=torch.bool))
                s, r = PENDULUM.step(s, a)
                rews.append(r)
        mask = torch.stack(masks, 1)
        rew = torch.stack(rews, 1) * mask
        steps = rew.shape[1]
        g = torch.zeros(n)
        rtg = torch.zeros_like(rew)
        for t in reversed(range(steps)):
            g = rew[:, t] + cfg.gamma * g
            rtg[:, t] = g
        valid = rtg[mask]
        norm = (rtg - valid.mean()) / (valid.std() + 1e-8) if valid.numel() > 1 else rtg * 0
        times = (torch.arange(steps, dtype=torch.float32) / T).expand(n, steps)
        return Batch(
            obs=torch.stack(obs, 1)[mask],
            actions=torch.stack(acts, 1)[mask],
            returns=norm[mask],
            t=times[mask],
            episode_return=float(rew.sum(1).mean()),
        )


def log_prob(params: mf.Params, cfg: PGConfig, batch: Batch) -> Tensor:
    """``log pi(a|s)`` of the batch's actions under ``params`` (differentiable)."""
    if cfg.env == "cartpole":
        logits = apply_policy(params, batch.obs)
        return F.log_softmax(logits, -1).gather(1, batch.actions[:, None]).squeeze(1)
    mean = _pend_mean(params, batch.obs)
    log_std = params["log_std"]
    return -0.5 * ((batch.actions - mean) / log_std.exp()) ** 2 - log_std - 0.9189385332046727


def reinforce(params: mf.Params, cfg: PGConfig, batch: Batch) -> Tensor:
    """The REINFORCE surrogate ``-mean_t log pi(a_t|s_t) G_t`` (normalised returns)."""
    return -(log_prob(params, cfg, batch) * batch.returns).mean()


def learned(loss: StepLoss, params: mf.Params, cfg: PGConfig, batch: Batch) -> Tensor:
    """The learned loss averaged over the valid steps."""
    feats = torch.stack([log_prob(params, cfg, batch), batch.returns, batch.t], -1)
    return loss.per_step(feats).mean()


def differentiable_return(params: mf.Params, cfg: PGConfig, n: int, gen: torch.Generator) -> Tensor:
    """Mean per-step reward of ``n`` reparameterised pendulum episodes (differentiable)."""
    s = PENDULUM.reset(n, gen)
    std = params["log_std"].exp()
    total = torch.zeros(())
    for _ in range(cfg.horizon):
        a = _pend_mean(params, PENDULUM.observe(s)) + std * torch.randn(n, generator=gen)
        s, r = PENDULUM.step(s, a)
        total = total + r.mean()
    return total / cfg.horizon


def make_loss(cfg: PGConfig, seed: int) -> StepLoss:
    """A fresh learned policy-gradient loss."""
    return StepLoss(
        features=FEATURES,
        hidden=cfg.loss_hidden,
        activation="tanh",
        time_reduction="mean",
        seed=seed,
    )


def meta_train_loss(
    cfg: PGConfig, seed: int = 0, progress: bool = False, loss: StepLoss | None = None
) -> tuple[StepLoss, list[dict[str, float]]]:
    """Meta-train the loss ML3-style (see the module docstring)."""
    loss = loss or make_loss(cfg, seed)
    base = 1_000_003 * (seed + 1)
    gen = torch.Generator().manual_seed(base)
    returns: list[float] = []

    def inner(params: mf.Params, step: int, k: int) -> Tensor:
        batch = sample(params, cfg, cfg.batch, gen)
        returns.append(batch.episode_return)
        return learned(loss, params, cfg, batch)

    def objective(params: mf.Params, step: int) -> Tensor:
        if cfg.meta_objective == "return":
            return -differentiable_return(params, cfg, cfg.batch, gen)
        return reinforce(params, cfg, sample(params, cfg, cfg.batch, gen))

    history = meta_train_rl_with(
        cfg,
        loss,
        lambda step: policy_init(cfg, base + step),
        inner,
        objective,
        progress=progress,
        name=f"ml3 policy gradient ({cfg.env})",
    )
    for row, r in zip(history, returns[cfg.inner_steps - 1 :: cfg.inner_steps]):
        row["episode_return"] = r
    return loss, history


def train_and_eval(
    loss: nn.Module | None, cfg: PGConfig, seed: int = 0, reinforce_scale: float = 1.0
) -> dict[str, Any]:
    """Train a fresh policy with ``loss`` (``None``: REINFORCE) and evaluate its return.

    ``reinforce_scale`` multiplies the REINFORCE surrogate; a large value (e.g. 1e3) makes
    every clipped step exactly ``lr * max_norm`` long (normalised-gradient REINFORCE), the
    fair comparison for a learned loss that may simply have learned larger gradients.
    """
    gen = torch.Generator().manual_seed(7_000_003 + seed)
    curve: list[float] = []

    def objective(params: mf.Params, i: int) -> Tensor:
        batch = sample(params, cfg, cfg.batch, gen)
        curve.append(batch.episode_return)
        if loss is None:
            return reinforce_scale * reinforce(params, cfg, batch)
        return learned(loss, params, cfg, batch)

    params, _ = train_policy(
        policy_init(cfg, 7_000_003 + seed),
        objective,
        cfg.train_steps,
        cfg.train_lr,
        cfg.max_norm,
        cfg.train_optimizer,
    )
    final = sample(params, cfg, cfg.eval_episodes, torch.Generator().manual_seed(99_991 + seed))
    return {"return": final.episode_return, "train_curve": curve}


def _learn(
    cfg: PGConfig, seed: int, progress: bool, loss: StepLoss | None = None
) -> tuple[StepLoss, list[dict[str, float]], dict[str, Any]]:
    loss, history = meta_train_loss(cfg, seed, progress, loss)
    return loss, history, {}


CARTPOLE_TASK = RLTask(
    name="rl-cartpole",
    description="CartPole, learned loss replacing the REINFORCE objective",
    env_factory=CartPole,
    policy_factory=policy_model,
    settings=PGConfig(env="cartpole"),
    meta_learner=_learn,
)
PENDULUM_TASK = RLTask(
    name="rl-pendulum",
    description="Pendulum, learned loss replacing the REINFORCE objective",
    env_factory=Pendulum,
    policy_factory=policy_model,
    settings=PGConfig(env="pendulum"),
    meta_learner=_learn,
)

__all__ = [
    "Batch",
    "CARTPOLE_TASK",
    "FEATURES",
    "PGConfig",
    "differentiable_return",
    "learned",
    "log_prob",
    "make_loss",
    "meta_train_loss",
    "PENDULUM_TASK",
    "policy_init",
    "policy_model",
    "reinforce",
    "sample",
    "train_and_eval",
]

"""The learned per-time-step loss of ML³ for reinforcement learning (loss kind ``rl_step``).

A :class:`StepLoss` is an MLP ``f_phi(features_t)`` applied to every time step of a
trajectory (features such as state, action, distance to the goal, log-probability,
return-to-go) and reduced over time (sum or mean) and the batch (mean).

**Its contract differs from the supervised one.** Every supervised loss in metaloss is
called as ``loss(y_pred, y_true)`` (:mod:`metaloss.losses.base`); an RL episode has no
targets, so a step loss is called as ``loss(features)`` with ``features`` of shape
``(B, T, F)`` (or ``(B, F)``: one step), the columns named by ``loss.features``. It is a
registered :class:`~metaloss.losses.base.Loss` for everything else: its spec and weights
are saved and loaded like any loss (:func:`metaloss.io.save_loss` / :func:`metaloss.io.load`,
``LearnResult.save`` / ``load``), and ``describe()`` names it. It is meant for the RL
task it was learned on (the features are that task's); passing it targets
(``loss(y_pred, y_true)``, e.g. in ``metaloss.evaluate`` on a supervised task) is refused
with a :class:`~metaloss.errors.ConfigError`. ``docs/rl.md`` ("The per-step loss")
describes the kind.

Example:
    >>> import torch
    >>> from metaloss.rl.losses import StepLoss
    >>> loss = StepLoss(features=["x", "v", "a"], hidden=[8])
    >>> float(loss(torch.zeros(2, 5, 3)).detach()) == 0.0  # zero features, no bias: f = 0
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import Loss, register

_ACTS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "softplus": F.softplus,
}


@register
class StepLoss(Loss):
    """An MLP loss over per-time-step features, reduced over time and batch.

    Args:
        features: names of the input features, in order (documentation and a size check).
        hidden: hidden layer widths.
        activation: ``tanh`` (default, smooth), ``relu``, ``elu`` or ``softplus``.
        output: ``none`` or ``softplus`` (non-negative loss).
        bias: use biases.
        time_reduction: ``sum`` or ``mean`` over the time axis.
        seed: initialisation seed.

    ``forward(features)`` takes ``(B, T, F)`` (or ``(B, F)``, one step) and returns a scalar;
    it takes no targets (see the module docstring: the RL contract of this loss kind).

    Example:
        >>> import torch
        >>> loss = StepLoss(features=["d", "a"], hidden=[16, 16], seed=1)
        >>> loss(torch.randn(4, 10, 2)).shape
        torch.Size([])
    """

    kind = "rl_step"

    def __init__(
        self,
        features: Sequence[str] = ("x", "a"),
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        output: str = "none",
        bias: bool = True,
        time_reduction: str = "sum",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if activation not in _ACTS:
            raise ConfigError(f"rl_step activation must be one of {sorted(_ACTS)}")
        if output not in ("none", "softplus"):
            raise ConfigError(f"rl_step output must be 'none' or 'softplus', got {output!r}")
        if time_reduction not in ("sum", "mean"):
            raise ConfigError("rl_step time_reduction must be 'sum' or 'mean'")
        if not features or any(int(h) <= 0 for h in hidden):
            raise ConfigError("rl_step needs >= 1 feature and hidden widths > 0")
        self.features = [str(f) for f in features]
        self.hidden = [int(h) for h in hidden]
        self.activation, self.output, self.bias = activation, output, bool(bias)
        self.time_reduction, self.seed = time_reduction, int(seed)
        widths = [len(self.features), *self.hidden, 1]
        gen = torch.Generator().manual_seed(self.seed)
        self.layers = nn.ModuleList()
        for a, b in zip(widths[:-1], widths[1:]):
            lin = nn.Linear(a, b, bias=self.bias)
            bound = 1.0 / a**0.5
            with torch.no_grad():
                lin.weight.uniform_(-bound, bound, generator=gen)
                if self.bias:
                    lin.bias.zero_()
            self.layers.append(lin)

    @staticmethod
    def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The state-dict shapes of ``StepLoss(**config)``, computed without allocating."""
        hidden, features = config.get("hidden", (32, 32)), config.get("features", ("x", "a"))
        if not isinstance(hidden, list | tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ConfigError("rl_step 'hidden' must be a list of positive integers")
        if not isinstance(features, list | tuple) or not features:
            raise ConfigError("rl_step 'features' must be a non-empty list")
        widths = [len(features), *hidden, 1]
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            shapes[f"layers.{i}.weight"] = (b, a)
            if config.get("bias", True):
                shapes[f"layers.{i}.bias"] = (b,)
        return shapes

    def per_step(self, feats: Tensor) -> Tensor:
        """``f_phi`` per time step: ``(..., F) -> (...)``."""
        if feats.shape[-1] != len(self.features):
            raise ConfigError(
                f"rl_step loss expects {len(self.features)} features {self.features}, "
                f"got {feats.shape[-1]}"
            )
        act = _ACTS[self.activation]
        h = feats.to(self.layers[0].weight.dtype)
        for i, lin in enumerate(self.layers):
            h = lin(h)
            if i < len(self.layers) - 1:
                h = act(h)
        h = h.squeeze(-1)
        return F.softplus(h) if self.output == "softplus" else h

    def forward(self, feats: Tensor, y_true: Tensor | None = None) -> Tensor:  # type: ignore[override]
        """The loss of a batch of trajectories' features; ``y_true`` must be left out."""
        if y_true is not None:
            raise ConfigError(
                "rl_step loss: scores an RL trajectory's features, loss(features), and takes "
                "no targets; use it on the RL task it was learned for"
            )
        values = self.per_step(feats)
        if values.dim() == 1:
            return values.mean()
        per_traj = values.sum(1) if self.time_reduction == "sum" else values.mean(1)
        return per_traj.mean()

    def config(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "hidden": list(self.hidden),
            "activation": self.activation,
            "output": self.output,
            "bias": self.bias,
            "time_reduction": self.time_reduction,
            "seed": self.seed,
        }

    def describe(self) -> str:
        widths = "-".join(str(w) for w in (len(self.features), *self.hidden, 1))
        return f"per-step MLP {widths} over ({', '.join(self.features)}), {self.time_reduction}"


__all__ = ["StepLoss"]

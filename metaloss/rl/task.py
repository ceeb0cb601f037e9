"""RL tasks: the reinforcement-learning kind of task in the task registry.

An :class:`RLTask` is to ML³'s RL experiments what :class:`~metaloss.tasks.base.Task` is
to supervised learning: a named, registered bundle of what the meta-learner needs. There is
no data: a differentiable simulator (``env_factory``), a policy model (``policy_factory``,
the model zoo's MLP), an episode ``horizon`` and the experiment's default settings
(``settings``, a config dataclass whose fields are the options of
``metaloss.learn("ml3", name, ...)``). Its ``kind`` is ``"rl"``; ``metaloss.tasks.get``
returns one for every ``rl-*`` name, and the ML³ learner hands it to
:func:`metaloss.rl.learn_rl`. Used where a data task is expected (``metaloss train``,
``metaloss.evaluate``, another method), it raises :class:`NotADataTask`, a
:class:`~metaloss.errors.ConfigError` naming the task.

Policies are trained functionally (parameter dicts, :mod:`metaloss.functional`):
:meth:`RLTask.make_policy` builds the module, :func:`metaloss.functional.params_of` takes
its parameters and :func:`apply_policy` evaluates them.

Example:
    >>> import metaloss as ml
    >>> task = ml.tasks.get("rl-cartpole")
    >>> task.kind, task.horizon, type(task.make_env()).__name__
    ('rl', 200, 'CartPole')
    >>> task.make_policy(seed=0)
    Sequential(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=4, out_features=32, bias=True)
      (2): Tanh()
      (3): Linear(in_features=32, out_features=2, bias=True)
    )
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss import functional as mf
from metaloss.errors import ConfigError

# name -> "module:attribute" of its RLTask (modules are imported on first use).
SOURCES: dict[str, str] = {
    "rl-mountaincar": "metaloss.rl.mountaincar:TASK",
    "rl-mountaincar-paper": "metaloss.rl.mountaincar_paper:TASK",
    "rl-reacher": "metaloss.rl.reacher:TASK",
    "rl-cartpole": "metaloss.rl.policy_gradient:CARTPOLE_TASK",
    "rl-pendulum": "metaloss.rl.policy_gradient:PENDULUM_TASK",
}


class NotADataTask(ConfigError, AttributeError):
    """An :class:`RLTask` used where a data task is expected (a one-line ConfigError; an
    AttributeError too, so ``hasattr`` / ``getattr(task, name, default)`` keep working)."""


# (config, seed, progress, loss or None, **extra) -> (learned loss, history, info)
MetaLearner = Callable[..., tuple[nn.Module, list[dict[str, float]], dict[str, Any]]]


@dataclass(frozen=True)
class RLTask:
    """A registered RL task for ML³ (``kind == "rl"``).

    Attributes:
        name: registry name, ``rl-...``.
        description: one line for ``metaloss tasks``.
        env_factory: ``() -> simulator``, a batched differentiable environment
            (:mod:`metaloss.rl.envs`).
        policy_factory: ``(config, seed) -> nn.Module``, a freshly initialised policy
            (deterministic for ``seed``).
        settings: the experiment's default settings (a dataclass instance with a
            ``horizon`` field and ``to_dict()``); its fields are the task's options.
            (Not ``defaults``: that is a data task's :class:`~metaloss.tasks.base.TrainConfig`.)
        meta_learner: ``(config, seed, progress, loss, **extra) -> (loss, history, info)``:
            ML³ for this task (:func:`metaloss.rl.learner.meta_train_rl` with the task's
            inner loss and meta-objective); ``loss`` is a starting loss or ``None``.
        extra_options: options that are not settings fields, with their defaults
            (Mountain Car's ``variant``).
    """

    kind: ClassVar[str] = "rl"

    name: str
    description: str
    env_factory: Callable[[], Any]
    policy_factory: Callable[[Any, int], nn.Module]
    settings: Any
    meta_learner: MetaLearner
    extra_options: dict[str, Any] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        """Episode length of the default settings."""
        return int(self.settings.horizon)

    def make_env(self) -> Any:
        """A fresh simulator."""
        return self.env_factory()

    def make_policy(self, seed: int = 0, config: Any = None) -> nn.Module:
        """A freshly initialised policy for ``config`` (default: :attr:`settings`)."""
        return self.policy_factory(self.settings if config is None else config, seed)

    def config(self, **options: Any) -> Any:
        """The default settings with ``options`` changed (lists become tuples).

        Raises:
            ConfigError: an option that is not a settings field.
        """
        known = {f.name for f in dataclasses.fields(self.settings)}
        unknown = sorted(set(options) - known)
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(sorted(known))
            raise ConfigError(f"{self.name}: unknown option {unknown[0]!r}{hint}; valid: {valid}")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return dataclasses.replace(self.settings, **kw)

    def __getattr__(self, name: str) -> Any:
        # Only reached for what an RLTask lacks: a data task's splits, metric, defaults, ...
        if name.startswith("__"):
            raise AttributeError(name)
        task = self.__dict__.get("name", "?")
        raise NotADataTask(
            f"task {task!r} is an RL task (no data: no {name!r}); it is meta-learned with "
            f"ml3 only: metaloss learn ml3 --task {task}"
        )


def names() -> list[str]:
    """The registered RL task names, sorted (no import of the experiments)."""
    return sorted(SOURCES)


def get(name: str) -> RLTask:
    """The :class:`RLTask` of a registered name.

    Raises:
        ConfigError: the name is not an RL task.
    """
    if name not in SOURCES:
        raise ConfigError(f"unknown RL task {name!r}; known: {', '.join(names())}")
    module, attr = SOURCES[name].split(":")
    return getattr(import_module(module), attr)


def describe() -> list[dict[str, str]]:
    """One row per RL task, in the shape of :func:`metaloss.tasks.describe`'s rows."""
    return [
        {
            "name": n,
            "model": "policy",
            "description": get(n).description,
            "data_dir": "none",
            "lr": "",
            "lr_status": "",
        }
        for n in names()
    ]


# ----------------------------------------------------------------------------- policies


def policy_mlp(sizes: Sequence[int], seed: int, out_scale: float = 1.0) -> nn.Module:
    """The model zoo's tanh MLP ``sizes[0] -> ... -> sizes[-1]`` as a policy.

    The initialisation is PyTorch's default (uniform, bound ``1 / sqrt(fan_in)`` for
    weights and biases), drawn from a generator seeded with ``seed`` layer by layer
    (weights, then biases); ``out_scale`` shrinks the output layer (near-uniform action
    distributions at the start).

    Example:
        >>> policy = policy_mlp([2, 8, 1], seed=0)
        >>> policy(torch.zeros(3, 2)).shape
        torch.Size([3, 1])
    """
    from metaloss.tasks.models import build_model

    sizes = [int(s) for s in sizes]
    model = build_model("mlp", (sizes[0],), sizes[-1], hidden=sizes[1:-1], activation="tanh")
    gen = torch.Generator().manual_seed(seed)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for i, lin in enumerate(linears):
            bound = 1.0 / lin.in_features**0.5
            scale = out_scale if i == len(linears) - 1 else 1.0
            lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) * bound * scale)
            lin.bias.copy_((torch.rand(lin.bias.shape, generator=gen) * 2 - 1) * bound * scale)
    return model


def _skeleton(shapes: Sequence[tuple[str, tuple[int, ...]]]) -> nn.Sequential:
    """A zoo MLP (or bias-free linear stack) whose parameters have these names and shapes."""
    weights = [s for k, s in shapes if k.endswith(".weight")]
    sizes = [weights[0][1], *(w[0] for w in weights)]
    if any(k.endswith(".bias") for k, _ in shapes):
        return policy_mlp(sizes, 0)
    return nn.Sequential(*(nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])))


# parameter names -> the layers to apply: (weight name, bias name or None) or a function.
_PLANS: dict[tuple[str, ...], list[tuple[str, str | None] | Callable[[Tensor], Tensor]]] = {}


def _plan(params: mf.Params) -> list[tuple[str, str | None] | Callable[[Tensor], Tensor]]:
    key = tuple(params)
    plan = _PLANS.get(key)
    if plan is None:
        skeleton = _skeleton([(k, tuple(v.shape)) for k, v in params.items() if "." in k])
        plan = [
            (f"{i}.weight", f"{i}.bias" if layer.bias is not None else None)
            if isinstance(layer, nn.Linear)
            else layer.forward  # an activation (no hooks: the module is never seen outside)
            for i, layer in enumerate(skeleton)
            if not isinstance(layer, nn.Flatten)
        ]
        _PLANS[key] = plan
    return plan


def apply_policy(params: mf.Params, x: Tensor) -> Tensor:
    """Evaluate a policy's parameters (from :func:`policy_mlp`, or a bias-free
    ``nn.Sequential`` of linear layers) on the last dimension of ``x``, differentiably.

    Parameters under other names (a Gaussian policy's ``log_std``) are ignored. The layers
    of the policy's network are applied in sequence (``F.linear`` for the linear ones): for
    ``(B, D)`` inputs the same computation as :func:`metaloss.functional.forward`, without
    ``functional_call``'s overhead (about 40 us a call), which matters in rollouts that call
    the policy at every time step.

    Example:
        >>> policy = policy_mlp([2, 8, 1], seed=0)
        >>> x = torch.randn(3, 2)
        >>> torch.equal(apply_policy(mf.params_of(policy), x), policy(x))
        True
    """
    for layer in _plan(params):
        if isinstance(layer, tuple):
            x = F.linear(x, params[layer[0]], None if layer[1] is None else params[layer[1]])
        else:
            x = layer(x)
    return x


__all__ = [
    "NotADataTask",
    "RLTask",
    "SOURCES",
    "apply_policy",
    "describe",
    "get",
    "names",
    "policy_mlp",
]

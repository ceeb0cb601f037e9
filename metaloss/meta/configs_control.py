"""The config of the learned-step control (``ce-step``): the task loss times one learned scale.

Re-exported by :mod:`metaloss.meta.configs` (``config_class("ce-step")``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from metaloss.errors import ConfigError
from metaloss.meta.config import MethodConfig, opt

_UNROLLED, _ONLINE, _BOTH = "unrolled", "online", "unrolled,online"
# option base: metaloss.losses.neural.RESIDUALS (no torch import here)
BASES = ("task", "ce", "mse", "focal", "label_smoothing", "mae", "gce", "sce", "poly1")


@dataclass(frozen=True)
class CEStepConfig(MethodConfig):
    """The control: the task loss times one learned scale, by each method's meta-optimiser.

    ``meta=search`` uses the search options, ``unrolled`` the ML3 ones and ``online`` the
    AdaLFL ones (see :class:`ML3MethodConfig` / :class:`AdaLFLMethodConfig`); setting an
    option of another mode is refused.
    """

    method: ClassVar[str] = "ce-step"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "fast": {"candidates": 4, "fitness_steps": 20},
    }

    meta: str = opt("search", "meta-optimiser of the scale", choices=("search", "unrolled",
                    "online"))  # fmt: skip
    base: str = opt("task", "the loss the scale multiplies: the task loss or a hand-made one "
                    "(the control of a learned loss with that residual)",
                    choices=BASES)  # fmt: skip
    candidates: int = opt(24, "scales tried, log-spaced (search)", ge=1, group="search")
    min_scale: float = opt(0.125, "smallest scale (search)", gt=0, group="search")
    max_scale: float = opt(64.0, "largest scale (search)", gt=0, group="search")
    fitness_steps: int = opt(500, "training steps of each fitness run (search)", ge=1,
                             group="search")  # fmt: skip
    meta_lr: float = opt(1e-3, "Adam learning rate of the scale (unrolled, online)", ge=0,
                         group=_BOTH)  # fmt: skip
    batch_size: int | None = opt(None, "batch size (None: the task's)", gt=0, group=_BOTH)
    query: str | None = opt(None, "query batch (None: the meta-optimiser's default)",
                            group=_BOTH)  # fmt: skip
    checkpoint_every: int | None = opt(None, "checkpoint period (None: the method's)", ge=0,
                                       group=_BOTH)  # fmt: skip
    meta_steps: int = opt(250, "meta steps (unrolled)", ge=0, group=_UNROLLED)
    inner_steps: int = opt(1, "inner steps per meta step (unrolled)", ge=1, group=_UNROLLED)
    inner_lr: float | None = opt(None, "inner learning rate (unrolled)", gt=0, group=_UNROLLED)
    inner_optimizer: str = opt("sgd", "inner optimiser (unrolled)", choices=("sgd", "adam"),
                               group=_UNROLLED)  # fmt: skip
    inner_momentum: float = opt(0.0, "inner SGD momentum (unrolled)", ge=0, group=_UNROLLED)
    inner_nesterov: bool = opt(False, "inner Nesterov momentum (unrolled)", group=_UNROLLED)
    inner_weight_decay: float = opt(0.0, "inner weight decay (unrolled)", group=_UNROLLED)
    reinit: bool = opt(True, "re-initialise the model every meta step (unrolled)",
                       group=_UNROLLED)  # fmt: skip
    reset_every: int = opt(0, "re-initialise every N meta steps (unrolled)", ge=0,
                           group=_UNROLLED)  # fmt: skip
    grad_clip: float = opt(0.0, "clip the meta-gradient norm (unrolled)", ge=0, group=_UNROLLED)
    inner_max_norm: float = opt(0.0, "clip the inner gradient norm (unrolled)", ge=0,
                                group=_UNROLLED)  # fmt: skip
    init_steps: int = opt(2500, "offline initialisation steps (online)", ge=0, group=_ONLINE)
    adapt_every: int = opt(1, "adapt every N training steps (online)", ge=1, group=_ONLINE)
    meta_grad: str = opt("auto", "online meta-gradient (online)",
                         choices=("auto", "jvp", "exact"), group=_ONLINE)  # fmt: skip
    max_grad_norm: float = opt(0.0, "clip the model's gradient norm (online)", ge=0,
                               group=_ONLINE)  # fmt: skip
    snapshots: int = opt(5, "scale snapshots saved (online)", ge=0, group=_ONLINE)
    steps: int | None = opt(None, "training steps (online; None: the task's)", gt=0,
                            group=_ONLINE)  # fmt: skip
    lr: float | None = opt(None, "learning rate (online; None: the task's)", gt=0,
                           group=_ONLINE)  # fmt: skip
    optimizer: str | None = opt(None, "optimiser (online; None: the task's)",
                                choices=("sgd", "adam"), group=_ONLINE)  # fmt: skip
    momentum: float | None = opt(None, "SGD momentum (online)", ge=0, group=_ONLINE)
    nesterov: bool | None = opt(None, "Nesterov momentum (online)", group=_ONLINE)
    weight_decay: float | None = opt(None, "weight decay (online)", ge=0, group=_ONLINE)
    init_lr: float | None = opt(None, "learning rate of the offline phase (online)", gt=0,
                                group=_ONLINE)  # fmt: skip

    def check(self) -> None:
        if not self.min_scale <= self.max_scale:
            raise ConfigError(
                f"ce-step: need min_scale <= max_scale, got {self.min_scale}, {self.max_scale}"
            )
        for f in dataclasses.fields(self):
            group = f.metadata.get("group")
            if group and self.meta not in group.split(",") and getattr(self, f.name) != f.default:
                raise ConfigError(
                    f"ce-step: option {f.name} applies to meta={' or '.join(group.split(','))}, "
                    f"not meta={self.meta}"
                )

    def mode_options(self) -> dict[str, Any]:
        """The options of the chosen meta-optimiser (those left at None dropped)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if self.meta in (f.metadata.get("group") or "").split(",")
            and getattr(self, f.name) is not None
        }

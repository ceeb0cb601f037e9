"""Neural (MLP) losses: the ML3 and AdaLFL representations.

The network maps each output-wise pair ``(prediction, target)`` (plus optional extra
inputs) to a scalar; values are summed or averaged over classes and averaged over the batch.

Example:
    >>> import torch
    >>> from metaloss.losses.neural import NeuralLoss
    >>> loss = NeuralLoss.ml3()
    >>> value = loss(torch.randn(8, 10), torch.randint(0, 10, (8,)))
    >>> value.shape, bool(value >= 0)
    (torch.Size([]), True)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.errors import ConfigError
from metaloss.losses.base import OutputWiseLoss, is_classification, outputwise, register
from metaloss.losses.handcrafted import get_baseline, task_loss_for


class SmoothLeakyReLU(nn.Module):
    """``(1/beta) log(1 + exp(beta x)) (1 - gamma) + gamma x`` (AdaLFL's activation)."""

    def __init__(self, beta: float = 10.0, gamma: float = 0.01) -> None:
        super().__init__()
        self.beta, self.gamma = float(beta), float(gamma)

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x, beta=self.beta) * (1 - self.gamma) + self.gamma * x


def _activation(name: str, beta: float, gamma: float) -> nn.Module:
    table = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "softplus": nn.Softplus,
        "leaky_relu": nn.LeakyReLU,
    }
    if name == "smooth_leaky_relu":
        return SmoothLeakyReLU(beta, gamma)
    if name not in table:
        raise ConfigError(
            f"neural loss activation {name!r} unknown; use one of "
            f"{', '.join(sorted([*table, 'smooth_leaky_relu']))}"
        )
    return table[name]()


INITS = ("torch", "xavier", "kaiming")
#: the residual / base losses that also work on a regression task (the rest need class labels)
REGRESSION_RESIDUALS = ("task", "ce", "mse", "mae")
# the residual losses: the task loss, or a hand-made loss that needs no data (the long-tail
# losses read the training class counts, which a saved loss does not hold)
RESIDUALS = ("task", "ce", "mse", "focal", "label_smoothing", "mae", "gce", "sce", "poly1")


@torch.no_grad()
def _initialise(lin: nn.Linear, init: str, gen: torch.Generator) -> None:
    """Seeded initialisation of one layer of the loss network (see ``NeuralLoss(init=)``)."""
    fan_out, fan_in = lin.weight.shape
    if init == "torch":
        bound = 1.0 / fan_in**0.5
        lin.weight.uniform_(-bound, bound, generator=gen)
        if lin.bias is not None:
            lin.bias.uniform_(-bound, bound, generator=gen)
        return
    if init == "xavier":
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        lin.weight.uniform_(-bound, bound, generator=gen)
    else:  # kaiming
        lin.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
    if lin.bias is not None:
        lin.bias.zero_()


@register
class NeuralLoss(OutputWiseLoss):
    """An MLP loss ``f_phi(y_hat_c, y_c [, extra])`` applied per output.

    Args:
        hidden: hidden layer widths (ML3: ``(50, 50)``; AdaLFL: ``(40, 40)``).
        activation: ``relu``, ``smooth_leaky_relu``, ``tanh``, ``elu``, ...
        output: ``softplus`` (non-negative loss, ML3) or ``none`` (AdaLFL).
        bias: use biases in the MLP.
        inputs: for classification, ``prob`` (softmax probability and one-hot target) or
            ``logprob`` (log-softmax and one-hot, the ML3 classification variant).
        residual_ce: weight of an added residual loss term, 0 to disable.
        residual: the residual loss: ``task`` (cross-entropy, MSE for regression) or a
            hand-made loss by name (one of :data:`RESIDUALS`, default settings), e.g.
            ``sce`` to learn a correction on top of symmetric cross-entropy.
        extra_dim: number of extra per-sample inputs passed as ``forward(..., extra=...)``
            (e.g. privileged information at meta-train time).
        class_reduction: ``sum`` or ``mean`` over outputs.
        beta, gamma: smooth leaky ReLU parameters.
        seed: initialisation seed (weights are deterministic for a seed).
        init: weight initialisation: ``torch`` (uniform +-1/sqrt(fan_in), PyTorch's
            ``nn.Linear`` default, biases alike), ``xavier`` (Glorot uniform, gain 1, zero
            biases: the ML3 reference) or ``kaiming`` (He normal, std sqrt(2/fan_in), zero
            biases: EvoMAL's re-implementation of ML3).
    """

    kind = "neural"

    def __init__(
        self,
        hidden: tuple[int, ...] | list[int] = (50, 50),
        activation: str = "relu",
        output: str = "softplus",
        bias: bool = False,
        inputs: str = "prob",
        residual_ce: float = 0.0,
        residual: str = "task",
        extra_dim: int = 0,
        class_reduction: str = "sum",
        beta: float = 10.0,
        gamma: float = 0.01,
        seed: int = 0,
        init: str = "torch",
    ) -> None:
        super().__init__(class_reduction)
        if output not in ("softplus", "none"):
            raise ConfigError(f"neural loss output must be 'softplus' or 'none', got {output!r}")
        if inputs not in ("prob", "logprob"):
            raise ConfigError(f"neural loss inputs must be 'prob' or 'logprob', got {inputs!r}")
        if residual not in RESIDUALS:
            raise ConfigError(
                f"neural loss residual must be one of {', '.join(RESIDUALS)}, got {residual!r}"
            )
        if residual != "task" and not residual_ce:
            raise ConfigError(
                f"neural loss residual={residual} needs residual_ce > 0 (its weight; 0 leaves "
                "the residual out)"
            )
        if init not in INITS:
            raise ConfigError(f"neural loss init must be one of {', '.join(INITS)}, got {init!r}")
        if extra_dim < 0 or any(int(h) <= 0 for h in hidden):
            raise ConfigError("neural loss hidden widths must be > 0 and extra_dim >= 0")
        self.hidden = tuple(int(h) for h in hidden)
        self.activation, self.output, self.bias, self.inputs = activation, output, bias, inputs
        self.residual_ce, self.extra_dim = float(residual_ce), int(extra_dim)
        self.residual = residual
        # a hand-made residual has no parameters: the state dict is the MLP's alone
        self.residual_loss = None if residual == "task" else get_baseline(residual)
        self.beta, self.gamma, self.seed = float(beta), float(gamma), int(seed)
        self.init = init
        widths = [2 + self.extra_dim, *self.hidden, 1]
        layers: list[nn.Module] = []
        gen = torch.Generator().manual_seed(self.seed)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            lin = nn.Linear(a, b, bias=bias)
            _initialise(lin, init, gen)
            layers.append(lin)
            if i < len(widths) - 2:
                layers.append(_activation(activation, self.beta, self.gamma))
        if output == "softplus":
            layers.append(nn.Softplus())
        self.net = nn.Sequential(*layers)

    @staticmethod
    def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The state-dict shapes of ``NeuralLoss(**config)``, computed without allocating
        (used to check a saved loss's weights before building it).

        Example:
            >>> NeuralLoss.param_shapes({"hidden": [3], "bias": True})["net.0.weight"]
            (3, 2)
        """
        hidden, extra = config.get("hidden", (50, 50)), config.get("extra_dim", 0)
        if not isinstance(hidden, list | tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden
        ):
            raise ConfigError("neural loss 'hidden' must be a list of positive integers")
        if not isinstance(extra, int) or isinstance(extra, bool) or extra < 0:
            raise ConfigError("neural loss 'extra_dim' must be an integer >= 0")
        widths = [2 + extra, *hidden, 1]
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            shapes[f"net.{2 * i}.weight"] = (b, a)
            if config.get("bias", False):
                shapes[f"net.{2 * i}.bias"] = (b,)
        return shapes

    @classmethod
    def ml3(cls, **overrides: Any) -> NeuralLoss:
        """ML3 defaults: 2-50-50-1, ReLU, Softplus output, no biases."""
        kw: dict[str, Any] = dict(hidden=(50, 50), activation="relu", output="softplus", bias=False)
        return cls(**{**kw, **overrides})

    @classmethod
    def adalfl(cls, **overrides: Any) -> NeuralLoss:
        """AdaLFL defaults: 2-40-40-1, smooth leaky ReLU, no output activation, class mean,
        probability inputs, plus the task loss as a residual term (``residual_ce=1``).

        The residual is our stabiliser, not the paper's (``residual_ce=0`` gives the paper's
        form): without an output activation the learned loss can reward saturated wrong
        predictions, where softmax gradients vanish, so a model that falls there never
        comes back (2 of 3 LeNet-5 seeds, 2 of 5 MLP seeds on MNIST). The cross-entropy
        term always pulls such a model back; see docs/benchmarks.md.
        """
        kw: dict[str, Any] = dict(
            hidden=(40, 40),
            activation="smooth_leaky_relu",
            output="none",
            bias=True,
            class_reduction="mean",
            residual_ce=1.0,
        )
        return cls(**{**kw, **overrides})

    def pointwise(self, p: Tensor, t: Tensor, extra: Tensor | None = None) -> Tensor:
        feats = [p.unsqueeze(-1), t.unsqueeze(-1)]
        if self.extra_dim:
            if extra is None:
                raise ConfigError(f"this neural loss needs extra inputs of size {self.extra_dim}")
            extra = extra.reshape(p.shape[0], 1, -1).expand(*p.shape, self.extra_dim)
            feats.append(extra.to(p.dtype))
        return self.net(torch.cat(feats, dim=-1)).squeeze(-1)

    def forward(self, y_pred: Tensor, y_true: Tensor, extra: Tensor | None = None) -> Tensor:
        p, t = outputwise(y_pred, y_true)
        if self.inputs == "logprob" and is_classification(y_true):
            p = torch.log_softmax(y_pred, dim=-1)
        values = self.pointwise(p, t, extra)
        per_sample = values.sum(-1) if self.class_reduction == "sum" else values.mean(-1)
        out = per_sample.mean()
        if self.residual_ce:
            res = self.residual_loss or task_loss_for(is_classification(y_true))
            out = out + self.residual_ce * res(y_pred, y_true)
        return out

    def config(self) -> dict[str, Any]:
        return {
            "hidden": list(self.hidden),
            "activation": self.activation,
            "output": self.output,
            "bias": self.bias,
            "inputs": self.inputs,
            "residual_ce": self.residual_ce,
            # only when not the default, so the configs (and run identities) of losses
            # written before the option existed stay as they were
            **({"residual": self.residual} if self.residual != "task" else {}),
            "extra_dim": self.extra_dim,
            "class_reduction": self.class_reduction,
            "beta": self.beta,
            "gamma": self.gamma,
            "seed": self.seed,
            "init": self.init,
        }

    def check_task(self, task: Any) -> None:
        """Refuse, before any training, a residual that needs class labels on a regression
        task (e.g. ``residual=sce`` on ``sine``)."""
        check_residual(self.residual if self.residual_ce else "task", task, "residual")

    def describe(self) -> str:
        widths = "-".join(str(w) for w in (2 + self.extra_dim, *self.hidden, 1))
        out = f"MLP {widths} ({self.activation}, output {self.output})"
        if self.residual_ce and self.residual != "task":
            out += f" + {self.residual_ce:g} * {self.residual}"
        return out


def check_residual(name: str, task: Any, option: str) -> None:
    """A ConfigError naming ``option`` when the hand-made loss ``name`` needs class labels and
    ``task`` is a regression task.

    Example:
        >>> import metaloss as ml
        >>> check_residual("mae", ml.tasks.get("sine"), "residual")  # fine: no error
    """
    if not getattr(task, "classification", True) and name not in REGRESSION_RESIDUALS:
        raise ConfigError(
            f"{option} {name!r} needs a classification task; {task.name} is a regression task "
            f"(use {', '.join(REGRESSION_RESIDUALS)})"
        )

"""Model zoo: the base networks that learned losses are meta-trained and evaluated on.

Every model is built by name with :func:`build_model` from the input shape (without the
batch dimension: ``(D,)`` for vectors, ``(C, H, W)`` for images) and the number of outputs
(classes, or ``1`` for scalar regression). The models are written in plain ``torch.nn``:

========================  =============================================================
``linear``                logistic / linear regression: flatten + ``Linear``
``mlp``                   flatten + hidden layers (``hidden``, ``activation``)
``lenet5``                LeNet-5 (ReLU, max pool) for 28x28 (padded by 2) or 32x32 input
``allcnnc``               All-CNN-C (Springenberg et al., 2015)
``vgg16``                 CIFAR VGG-16 with BatchNorm and a linear classifier on 512 features
``resnet18``              CIFAR ResNet-18 (3x3 stem, no max pool)
``preresnet``             pre-activation ResNet for CIFAR (He et al., 2016), ``depth=20``
``wrn``                   Wide ResNet (Zagoruyko & Komodakis, 2016), ``depth=16, widen=8``
``wrn16_8``, ``wrn28_10``  aliases of ``wrn`` with the depth and width fixed
``alexnet``               small CIFAR AlexNet (five convolutions, linear classifier)
``squeezenet``            CIFAR SqueezeNet 1.1 (stride-1 stem)
``pyramidnet``            PyramidNet with additive widening (Han et al., 2017), ``depth=20``
========================  =============================================================

Models with normalisation layers take ``norm="batch" | "group" | "none"``: metaloss trains
populations of models with ``torch.func.vmap`` + ``functional_call``, where the in-place
running-statistics update of BatchNorm is a problem; ``"group"`` (GroupNorm) and ``"none"``
avoid it. Dropout is off by default everywhere (``dropout=0.0``) for the same reason: under
``vmap`` it needs ``randomness="different"`` or ``"same"``.

Initialisation is PyTorch's default, except the residual networks, whose convolutions use
Kaiming-normal (fan-out) as in their reference code; all of it is deterministic given
``torch.manual_seed``.

Example:
    >>> import torch
    >>> model = build_model("lenet5", (1, 28, 28), 10)
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

from torch import nn

from metaloss.errors import ConfigError
from metaloss.tasks.nets.conv import _alexnet, _allcnnc, _lenet5, _squeezenet, _vgg16
from metaloss.tasks.nets.dense import _linear, _mlp
from metaloss.tasks.nets.layers import ACTIVATIONS, NORMS, _check_int, _fail, has_batchnorm
from metaloss.tasks.nets.resnet import _preresnet, _pyramidnet, _resnet18, _wrn, _wrn16_8, _wrn28_10

__all__ = ["ACTIVATIONS", "MODELS", "NORMS", "build_model", "has_batchnorm", "model_options"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "linear": _linear,
    "mlp": _mlp,
    "lenet5": _lenet5,
    "allcnnc": _allcnnc,
    "vgg16": _vgg16,
    "resnet18": _resnet18,
    "preresnet": _preresnet,
    "wrn": _wrn,
    "wrn16_8": _wrn16_8,
    "wrn28_10": _wrn28_10,
    "alexnet": _alexnet,
    "squeezenet": _squeezenet,
    "pyramidnet": _pyramidnet,
}


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options that model ``name`` accepts (e.g. ``("hidden", "activation")``)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    params = inspect.signature(MODELS[name]).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def build_model(name: str, in_shape: tuple[int, ...], num_outputs: int, **kwargs: Any) -> nn.Module:
    """Build model ``name`` for inputs of shape ``in_shape`` (no batch dim) and ``num_outputs``.

    Raises:
        ConfigError: unknown model, unknown or invalid option, or an unusable input shape.
    """
    options = model_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        accepted = ", ".join(options) if options else "none"
        raise _fail(name, f"unknown option(s) {', '.join(unknown)}; it accepts: {accepted}")
    dims = list(in_shape) if isinstance(in_shape, Sequence) else []
    if not dims or any(isinstance(d, bool) or not isinstance(d, Integral) or d < 1 for d in dims):
        raise _fail(name, f"in_shape must be a tuple of positive integers, got {in_shape!r}")
    shape = tuple(int(d) for d in dims)
    _check_int(name, "num_outputs", num_outputs)
    return MODELS[name](shape, num_outputs, **kwargs)

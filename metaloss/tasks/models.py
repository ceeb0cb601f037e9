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
import math
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from metaloss.errors import ConfigError

__all__ = ["ACTIVATIONS", "MODELS", "NORMS", "build_model", "has_batchnorm", "model_options"]

NORMS = ("batch", "group", "none")

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


# --------------------------------------------------------------------------------------
# helpers


def has_batchnorm(model: nn.Module) -> bool:
    """True if any submodule of ``model`` is a BatchNorm layer (1d, 2d, 3d or sync)."""
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def _fail(model: str, msg: str) -> ConfigError:
    return ConfigError(f"model {model!r}: {msg}")


def _check_norm(model: str, norm: str) -> str:
    if norm not in NORMS:
        raise _fail(model, f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return norm


def _check_dropout(model: str, dropout: float) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, int | float):
        raise _fail(model, f"dropout must be a number in [0, 1), got {dropout!r}")
    if not 0.0 <= dropout < 1.0:
        raise _fail(model, f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def _check_int(model: str, field: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(model, f"{field} must be an integer >= {minimum}, got {value!r}")
    return value


def _image_shape(model: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(in_shape) != 3:
        raise _fail(model, f"needs an image input shape (C, H, W), got {in_shape}")
    c, h, w = in_shape
    return c, h, w


def _out_size(n: int, kernel: int, stride: int = 1, pad: int = 0, ceil: bool = False) -> int:
    """Spatial size after a convolution or pooling layer (PyTorch's formula)."""
    span = n + 2 * pad - kernel
    if span < 0:
        return 0
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= n + pad:  # last window must start inside the input
        out -= 1
    return out


def _check_spatial(model: str, in_shape: tuple[int, ...], sizes: tuple[int, int]) -> None:
    if min(sizes) < 1:
        raise _fail(model, f"input {in_shape} is too small (feature map shrinks to {sizes})")


def _group_count(channels: int) -> int:
    """GroupNorm groups: the largest divisor of ``channels`` <= min(32, channels // 2)."""
    limit = max(1, min(32, channels // 2))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def _norm2d(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(_group_count(channels), channels)
    return nn.Identity()


def _conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


def _conv1x1(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=bias)


def _kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal (fan-out, ReLU) convolutions; unit/zero affine norm parameters."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _BatchNorm | nn.GroupNorm) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _Head(nn.Module):
    """Global average pool + flatten + linear classifier."""

    def __init__(self, features: int, num_outputs: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, num_outputs)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------------------
# linear and MLP


def _linear(in_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Logistic (or linear) regression: flatten + ``Linear``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_outputs))


def _mlp(
    in_shape: tuple[int, ...],
    num_outputs: int,
    *,
    hidden: int | Sequence[int] = (100,),
    activation: str = "relu",
) -> nn.Module:
    """Flatten + ``Linear``/activation per hidden width + ``Linear`` output layer."""
    if isinstance(hidden, int) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if isinstance(hidden, str | bytes) or not isinstance(hidden, Sequence):
        raise _fail("mlp", f"hidden must be a sequence of positive integers, got {hidden!r}")
    widths = [_check_int("mlp", "hidden width", h) for h in hidden]
    if activation not in ACTIVATIONS:
        raise _fail(
            "mlp", f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
        )
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in widths:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, num_outputs))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------
# LeNet-5, All-CNN-C, VGG-16, AlexNet, SqueezeNet


def _lenet5(in_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """LeNet-5 with ReLU and max pooling; 28x28 input is zero-padded by 2 to act as 32x32."""
    c, h, w = _image_shape("lenet5", in_shape)
    pad = 2 if (h, w) == (28, 28) else 0

    def size(n: int) -> int:
        n = _out_size(_out_size(n, 5, 1, pad), 2, 2)
        return _out_size(_out_size(n, 5), 2, 2)

    sizes = (size(h), size(w))
    _check_spatial("lenet5", in_shape, sizes)
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=pad),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * sizes[0] * sizes[1], 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, num_outputs),
    )


def _allcnnc(
    in_shape: tuple[int, ...], num_outputs: int, *, dropout: bool = False, norm: str = "none"
) -> nn.Module:
    """All-CNN-C: nine convolutions, stride-2 convs instead of pooling, global average pool.

    ``dropout=True`` adds the paper's dropout (0.2 on the input, 0.5 after each stride-2
    layer). ``norm`` (default ``"none"``, as in the paper) adds a norm after every conv.
    """
    c, h, w = _image_shape("allcnnc", in_shape)
    if not isinstance(dropout, bool):
        raise _fail("allcnnc", f"dropout must be True or False, got {dropout!r}")
    _check_norm("allcnnc", norm)
    sizes = tuple(_out_size(_out_size(_out_size(n, 3, 2, 1), 3, 2, 1), 3) for n in (h, w))
    _check_spatial("allcnnc", in_shape, sizes)
    bias = norm == "none"

    def block(cin: int, cout: int, k: int, stride: int = 1, pad: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, stride, pad, bias=bias), _norm2d(norm, cout), nn.ReLU()]

    def drop(p: float) -> list[nn.Module]:
        return [nn.Dropout(p)] if dropout else []

    return nn.Sequential(
        *drop(0.2),
        *block(c, 96, 3),
        *block(96, 96, 3),
        *block(96, 96, 3, stride=2),
        *drop(0.5),
        *block(96, 192, 3),
        *block(192, 192, 3),
        *block(192, 192, 3, stride=2),
        *drop(0.5),
        *block(192, 192, 3, pad=0),
        *block(192, 192, 1, pad=0),
        nn.Conv2d(192, num_outputs, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _vgg16(in_shape: tuple[int, ...], num_outputs: int, *, norm: str = "batch") -> nn.Module:
    """CIFAR VGG-16: 13 conv3x3 (+norm, ReLU) layers, 5 max pools, ``Linear(512, out)``."""
    c, h, w = _image_shape("vgg16", in_shape)
    _check_norm("vgg16", norm)
    _check_spatial("vgg16", in_shape, (h // 32, w // 32))
    layers: list[nn.Module] = []
    cin = c
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            assert isinstance(v, int)
            layers += [_conv3x3(cin, v, bias=norm == "none"), _norm2d(norm, v), nn.ReLU()]
            cin = v
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_outputs)]
    return nn.Sequential(*layers)


def _alexnet(in_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Small CIFAR AlexNet (as in bearpaw/pytorch-classification): 5 convs, 3 max pools."""
    c, h, w = _image_shape("alexnet", in_shape)

    def size(n: int) -> int:
        n = _out_size(_out_size(n, 11, 4, 5), 2, 2)
        return _out_size(_out_size(n, 2, 2), 2, 2)

    _check_spatial("alexnet", in_shape, (size(h), size(w)))
    return nn.Sequential(
        nn.Conv2d(c, 64, 11, stride=4, padding=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(256, num_outputs),
    )


class _Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then concatenated 1x1 and 3x3 expands."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(x)), F.relu(self.expand3x3(x))], dim=1)


def _squeezenet(in_shape: tuple[int, ...], num_outputs: int, *, dropout: float = 0.0) -> nn.Module:
    """SqueezeNet 1.1 for CIFAR: 3x3 stride-1 stem, 8 fire modules, conv classifier.

    Unlike the ImageNet original, there is no ReLU on the final 1x1 conv (its outputs are
    logits, or regression outputs that may be negative), and dropout defaults to off.
    """
    c, h, w = _image_shape("squeezenet", in_shape)
    dropout = _check_dropout("squeezenet", dropout)

    def size(n: int) -> int:
        for _ in range(3):
            n = _out_size(n, 3, 2, ceil=True)
        return n

    _check_spatial("squeezenet", in_shape, (size(h), size(w)))

    def pool() -> nn.Module:
        return nn.MaxPool2d(3, stride=2, ceil_mode=True)

    return nn.Sequential(
        nn.Conv2d(c, 64, 3, padding=1),
        nn.ReLU(),
        pool(),
        _Fire(64, 16, 64),
        _Fire(128, 16, 64),
        pool(),
        _Fire(128, 32, 128),
        _Fire(256, 32, 128),
        pool(),
        _Fire(256, 48, 192),
        _Fire(384, 48, 192),
        _Fire(384, 64, 256),
        _Fire(512, 64, 256),
        nn.Dropout(dropout),
        nn.Conv2d(512, num_outputs, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


# --------------------------------------------------------------------------------------
# residual networks


class _BasicBlock(nn.Module):
    """Post-activation residual block (ResNet v1): conv-norm-relu-conv-norm + shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.conv1 = _conv3x3(cin, cout, stride, bias)
        self.bn1 = _norm2d(norm, cout)
        self.conv2 = _conv3x3(cout, cout, 1, bias)
        self.bn2 = _norm2d(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(_conv1x1(cin, cout, stride, bias), _norm2d(norm, cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _ResNet18(nn.Module):
    def __init__(self, cin: int, num_outputs: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.stem = nn.Sequential(_conv3x3(cin, 64, 1, bias), _norm2d(norm, 64), nn.ReLU())
        blocks: list[nn.Module] = []
        width = 64
        for i, planes in enumerate((64, 128, 256, 512)):
            for j in range(2):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(_BasicBlock(width, planes, stride, norm))
                width = planes
        self.blocks = nn.Sequential(*blocks)
        self.head = _Head(512, num_outputs)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


def _resnet18(in_shape: tuple[int, ...], num_outputs: int, *, norm: str = "batch") -> nn.Module:
    """CIFAR ResNet-18: 3x3 stem without max pool, 4 stages of 2 basic blocks (64..512)."""
    c, _, _ = _image_shape("resnet18", in_shape)
    return _ResNet18(c, num_outputs, _check_norm("resnet18", norm))


class _PreActBlock(nn.Module):
    """Pre-activation basic block: norm-relu-conv-norm-relu-(dropout)-conv + shortcut.

    Used by PreResNet and (with dropout) by Wide ResNet. A projection shortcut, when the
    shape changes, is applied to the pre-activated input.
    """

    def __init__(self, cin: int, cout: int, stride: int, norm: str, dropout: float = 0.0):
        super().__init__()
        bias = norm == "none"
        self.bn1 = _norm2d(norm, cin)
        self.conv1 = _conv3x3(cin, cout, stride, bias)
        self.bn2 = _norm2d(norm, cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = _conv3x3(cout, cout, 1, bias)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = _conv1x1(cin, cout, stride, bias)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + skip


class _PreActBottleneck(nn.Module):
    """Pre-activation bottleneck block (1x1, 3x3, 1x1 with 4x expansion)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        cout = planes * self.expansion
        self.bn1 = _norm2d(norm, cin)
        self.conv1 = _conv1x1(cin, planes, 1, bias)
        self.bn2 = _norm2d(norm, planes)
        self.conv2 = _conv3x3(planes, planes, stride, bias)
        self.bn3 = _norm2d(norm, planes)
        self.conv3 = _conv1x1(planes, cout, 1, bias)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = _conv1x1(cin, cout, stride, bias)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


class _PreActNet(nn.Module):
    """3x3 stem, three stages of pre-activation blocks, final norm-relu, pool, linear."""

    def __init__(
        self, stem: nn.Module, blocks: list[nn.Module], width: int, num_outputs: int, norm: str
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.bn = _norm2d(norm, width)
        self.head = _Head(width, num_outputs)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.bn(self.blocks(self.stem(x)))))


def _preresnet(
    in_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 20,
    block: str = "basic",
    norm: str = "batch",
) -> nn.Module:
    """Pre-activation ResNet for CIFAR (widths 16, 32, 64).

    ``block="basic"`` needs ``depth = 6n + 2`` (20, 32, 56, 110);
    ``block="bottleneck"`` needs ``depth = 9n + 2`` (164, 1001) and expands widths by 4.
    """
    c, _, _ = _image_shape("preresnet", in_shape)
    _check_norm("preresnet", norm)
    depth = _check_int("preresnet", "depth", depth, 8)
    if block not in ("basic", "bottleneck"):
        raise _fail("preresnet", f"block must be 'basic' or 'bottleneck', got {block!r}")
    per = 6 if block == "basic" else 9
    if (depth - 2) % per:
        raise _fail("preresnet", f"depth must be {per}n + 2 for {block} blocks, got {depth}")
    n = (depth - 2) // per
    bias = norm == "none"
    blocks: list[nn.Module] = []
    width = 16
    for i, planes in enumerate((16, 32, 64)):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            if block == "basic":
                blocks.append(_PreActBlock(width, planes, stride, norm))
                width = planes
            else:
                blocks.append(_PreActBottleneck(width, planes, stride, norm))
                width = planes * _PreActBottleneck.expansion
    return _PreActNet(_conv3x3(c, 16, 1, bias), blocks, width, num_outputs, norm)


def _wide_resnet(
    model: str,
    in_shape: tuple[int, ...],
    num_outputs: int,
    depth: int,
    widen: int,
    dropout: float,
    norm: str,
) -> nn.Module:
    c, _, _ = _image_shape(model, in_shape)
    _check_norm(model, norm)
    depth = _check_int(model, "depth", depth, 10)
    widen = _check_int(model, "widen", widen)
    dropout = _check_dropout(model, dropout)
    if (depth - 4) % 6:
        raise _fail(model, f"depth must be 6n + 4 (10, 16, 22, 28, 40), got {depth}")
    n = (depth - 4) // 6
    blocks: list[nn.Module] = []
    width = 16
    for i, planes in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            blocks.append(_PreActBlock(width, planes, stride, norm, dropout))
            width = planes
    stem = _conv3x3(c, 16, 1, norm == "none")
    return _PreActNet(stem, blocks, width, num_outputs, norm)


def _wrn(
    in_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 16,
    widen: int = 8,
    dropout: float = 0.0,
    norm: str = "batch",
) -> nn.Module:
    """Wide ResNet WRN-``depth``-``widen`` (``depth = 6n + 4``), dropout between convs."""
    return _wide_resnet("wrn", in_shape, num_outputs, depth, widen, dropout, norm)


def _wrn16_8(
    in_shape: tuple[int, ...], num_outputs: int, *, dropout: float = 0.0, norm: str = "batch"
) -> nn.Module:
    """WRN-16-8 (about 11M parameters)."""
    return _wide_resnet("wrn16_8", in_shape, num_outputs, 16, 8, dropout, norm)


def _wrn28_10(
    in_shape: tuple[int, ...], num_outputs: int, *, dropout: float = 0.0, norm: str = "batch"
) -> nn.Module:
    """WRN-28-10 (about 36.5M parameters)."""
    return _wide_resnet("wrn28_10", in_shape, num_outputs, 28, 10, dropout, norm)


class _PyramidBlock(nn.Module):
    """PyramidNet basic block: norm-conv-norm-relu-conv-norm; zero-padded identity skip."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.bn1 = _norm2d(norm, cin)
        self.conv1 = _conv3x3(cin, cout, stride, bias)
        self.bn2 = _norm2d(norm, cout)
        self.conv2 = _conv3x3(cout, cout, 1, bias)
        self.bn3 = _norm2d(norm, cout)
        self.pool = nn.AvgPool2d(2, ceil_mode=True) if stride != 1 else nn.Identity()
        self.extra = cout - cin

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.bn1(x))
        out = self.bn3(self.conv2(F.relu(self.bn2(out))))
        skip = self.pool(x)
        if self.extra:
            skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra))
        return out + skip


class _PyramidNet(nn.Module):
    def __init__(self, cin: int, num_outputs: int, depth: int, alpha: int, norm: str) -> None:
        super().__init__()
        n = (depth - 2) // 6
        step = alpha / (3 * n)
        bias = norm == "none"
        self.stem = nn.Sequential(_conv3x3(cin, 16, 1, bias), _norm2d(norm, 16))
        blocks: list[nn.Module] = []
        dim, width = 16.0, 16
        for i in range(3):
            for j in range(n):
                dim += step
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(_PyramidBlock(width, round(dim), stride, norm))
                width = round(dim)
        self.blocks = nn.Sequential(*blocks)
        self.bn = _norm2d(norm, width)
        self.head = _Head(width, num_outputs)
        _kaiming_init(self)
        nn.init.zeros_(self.head.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.relu(self.bn(self.blocks(self.stem(x)))))


def _pyramidnet(
    in_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 20,
    alpha: int = 48,
    norm: str = "batch",
) -> nn.Module:
    """PyramidNet (basic blocks, ``depth = 6n + 2``); widths grow additively 16 -> 16+alpha."""
    c, _, _ = _image_shape("pyramidnet", in_shape)
    _check_norm("pyramidnet", norm)
    depth = _check_int("pyramidnet", "depth", depth, 8)
    alpha = _check_int("pyramidnet", "alpha", alpha, 0)
    if (depth - 2) % 6:
        raise _fail("pyramidnet", f"depth must be 6n + 2 (20, 32, 110), got {depth}")
    return _PyramidNet(c, num_outputs, depth, alpha, norm)


# --------------------------------------------------------------------------------------
# registry

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

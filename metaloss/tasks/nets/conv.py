"""Plain convolutional models: LeNet-5, All-CNN-C, VGG-16, AlexNet and SqueezeNet 1.1.

Example:
    >>> import torch
    >>> _lenet5((1, 28, 28), 10)(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.tasks.nets.layers import (
    _check_dropout,
    _check_norm,
    _check_spatial,
    _conv3x3,
    _fail,
    _image_shape,
    _norm2d,
    _out_size,
)


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

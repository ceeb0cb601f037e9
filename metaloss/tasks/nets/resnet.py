"""Residual models for CIFAR-sized images: ResNet-18, pre-activation ResNet, Wide ResNet
(and its 16-8 / 28-10 aliases) and PyramidNet.

Example:
    >>> import torch
    >>> _preresnet((3, 32, 32), 10, norm="none")(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 10])
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from metaloss.tasks.nets.layers import (
    _check_dropout,
    _check_int,
    _check_norm,
    _conv1x1,
    _conv3x3,
    _fail,
    _Head,
    _image_shape,
    _kaiming_init,
    _norm2d,
)


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

"""Torch builders for the op catalog, dispatched from a registry.

Each builder takes ``(c, stride, affine)`` and returns a module mapping ``[B, c, H, W]`` to
``[B, c, ceil(H/stride), ceil(W/stride)]``. Layer layouts follow the reference DARTS code
so that parameter counts match it exactly (see :mod:`nasgal.spec.ops` for the analytic side).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..spec.ops import KNOWN_OPS
from .cpu_paths import contiguous_grad
from .depthwise import DepthwiseConv2d

OpBuilder = Callable[[int, int, bool], nn.Module]
OP_BUILDERS: dict[str, OpBuilder] = {}


def register_op(name: str) -> Callable[[OpBuilder], OpBuilder]:
    """Register a builder under ``name``; a second registration of a name is an error."""

    def deco(fn: OpBuilder) -> OpBuilder:
        if name in OP_BUILDERS:
            raise ValueError(f"op {name!r} is already registered")
        OP_BUILDERS[name] = fn
        return fn

    return deco


def build_op(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    try:
        builder = OP_BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(OP_BUILDERS)}") from None
    return builder(c, stride, affine)


class ReLUConvBN(nn.Sequential):
    """ReLU, conv (no bias), BN. With k=1: the cell's input preprocessing."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1, padding: int = 0, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise kxk (dilation d, stride s), pointwise 1x1, BN. The depthwise conv is an
    ``nn.Conv2d`` with a faster backward on the CPU (:mod:`nasgal.compiler.depthwise`)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two DilConv blocks with dilation 1; only the first is strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


def shifted_by_one(x: torch.Tensor) -> torch.Tensor:
    """``x`` moved up and left by one pixel, zero-padded at the far edge (same size): the input
    of FactorizedReduce's second conv. For even sizes the stride-2 conv then sees what the
    reference's ``x[:, :, 1:, 1:]`` gives it; odd sizes work too."""
    return F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # [B, C, H, W]


def odd_grid(x: torch.Tensor) -> torch.Tensor:
    """The pixels a 1x1 stride-2 conv of :func:`shifted_by_one` reads: rows and columns 1, 3,
    5, ... of ``x`` (a view), with a zero row/column at the far edge where a side is odd (where
    the shifted input reads its zero padding). A 1x1 stride-1 conv of this equals the
    stride-2 conv of the shifted input, without building the shifted full-size copy in the
    forward pass or its gradient in the backward pass."""
    g = x[:, :, 1::2, 1::2]
    h, w = x.shape[-2] % 2, x.shape[-1] % 2
    return F.pad(g, (0, w, 0, h)) if h or w else g


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concat, BN.

    The shifted input is zero-padded at the far edge so odd sizes work too; for even sizes
    this equals the reference's ``x[:, :, 1:, 1:]``. The second conv runs at stride 1 on the
    pixels it would read at stride 2 (:func:`odd_grid`): the same numbers, less memory traffic.
    """

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=1, bias=False)  # on odd_grid(x)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = contiguous_grad(self.relu(x))  # the odd grid's gradient comes back NCHW: the ReLU's, in x's layout
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(odd_grid(x))], dim=1))


class Zero(nn.Module):
    """The 'none' op of the search space: zeros at the output resolution."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Conv7x1_1x7(nn.Sequential):
    """ReLU, conv (1,7) stride (1,s), conv (7,1) stride (s,1), BN (NASNet/AmoebaNet)."""

    def __init__(self, c: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


@register_op("none")
def _none(c: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@register_op("max_pool_3x3")
def _max_pool(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@register_op("avg_pool_3x3")
def _avg_pool(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


@register_op("skip_connect")
def _skip(c: int, stride: int, affine: bool) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)


def _register_sep(k: int) -> None:
    register_op(f"sep_conv_{k}x{k}")(lambda c, stride, affine: SepConv(c, c, k, stride, k // 2, affine))


def _register_dil(k: int) -> None:
    register_op(f"dil_conv_{k}x{k}")(lambda c, stride, affine: DilConv(c, c, k, stride, k - 1, 2, affine))


for _k in (3, 5, 7):
    _register_sep(_k)
for _k in (3, 5):
    _register_dil(_k)


@register_op("conv_7x1_1x7")
def _conv_7x1_1x7(c: int, stride: int, affine: bool) -> nn.Module:
    return Conv7x1_1x7(c, stride, affine)


assert set(OP_BUILDERS) == set(KNOWN_OPS), set(OP_BUILDERS) ^ set(KNOWN_OPS)

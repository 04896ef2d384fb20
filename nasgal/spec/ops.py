"""The catalog of candidate operations, as data: names and analytic costs.

This module is pure Python (no torch). The compiler keeps a registry of torch builders
keyed by the same names; a test checks that the two agree on names and on parameter counts.
Op order matters: the DARTS search space's alpha columns follow :data:`DARTS_OPS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: The DARTS search space, in the order of the reference code's alpha columns.
DARTS_OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: Ops used by NASNet-A and AmoebaNet-A in addition to the DARTS space.
EXTRA_OPS: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")

KNOWN_OPS: tuple[str, ...] = DARTS_OPS + EXTRA_OPS


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded op with this stride (ceil(size / stride))."""
    return -(-size // stride)


def _bn(c: int, affine: bool) -> int:
    return 2 * c if affine else 0


@dataclass(frozen=True)
class OpCost:
    """Analytic cost of one op at ``c`` channels in and out, with ``stride``."""

    params: Callable[[int, int, bool], int]  # (c, stride, affine) -> parameters
    macs: Callable[[int, int, int, int], int]  # (c, stride, h, w) -> multiply-accumulates

    def __call__(self, c: int, stride: int, h: int, w: int, affine: bool = True) -> tuple[int, int]:
        return self.params(c, stride, affine), self.macs(c, stride, h, w)


def _zero_params(c: int, stride: int, affine: bool) -> int:
    return 0


def _zero_macs(c: int, stride: int, h: int, w: int) -> int:
    return 0


def _sep_conv(k: int) -> OpCost:
    # (ReLU, depthwise kxk stride s, pointwise 1x1, BN) then the same with stride 1.
    def params(c: int, stride: int, affine: bool) -> int:
        return 2 * (c * k * k + c * c + _bn(c, affine))

    def macs(c: int, stride: int, h: int, w: int) -> int:
        hw = out_size(h, stride) * out_size(w, stride)
        return 2 * hw * (c * k * k + c * c)

    return OpCost(params, macs)


def _dil_conv(k: int) -> OpCost:
    # ReLU, depthwise kxk dilation 2 stride s, pointwise 1x1, BN.
    def params(c: int, stride: int, affine: bool) -> int:
        return c * k * k + c * c + _bn(c, affine)

    def macs(c: int, stride: int, h: int, w: int) -> int:
        return out_size(h, stride) * out_size(w, stride) * (c * k * k + c * c)

    return OpCost(params, macs)


def factorized_reduce_params(c_in: int, c_out: int, affine: bool = True) -> int:
    """ReLU, two 1x1 stride-2 convs to c_out/2 each, concat, BN."""
    return c_in * c_out + _bn(c_out, affine)


def factorized_reduce_macs(c_in: int, c_out: int, h: int, w: int) -> int:
    return out_size(h, 2) * out_size(w, 2) * c_in * c_out


def relu_conv_bn_params(c_in: int, c_out: int, affine: bool = True) -> int:
    """ReLU, 1x1 conv, BN: the cell's input preprocessing."""
    return c_in * c_out + _bn(c_out, affine)


def relu_conv_bn_macs(c_in: int, c_out: int, h: int, w: int) -> int:
    return h * w * c_in * c_out


def _skip_params(c: int, stride: int, affine: bool) -> int:
    return factorized_reduce_params(c, c, affine) if stride == 2 else 0


def _skip_macs(c: int, stride: int, h: int, w: int) -> int:
    return factorized_reduce_macs(c, c, h, w) if stride == 2 else 0


def _conv_7x1_1x7_params(c: int, stride: int, affine: bool) -> int:
    # ReLU, conv (1,7) stride (1,s), conv (7,1) stride (s,1), BN.
    return 7 * c * c + 7 * c * c + _bn(c, affine)


def _conv_7x1_1x7_macs(c: int, stride: int, h: int, w: int) -> int:
    wo, ho = out_size(w, stride), out_size(h, stride)
    return 7 * c * c * h * wo + 7 * c * c * ho * wo


OP_COSTS: dict[str, OpCost] = {
    "none": OpCost(_zero_params, _zero_macs),
    "max_pool_3x3": OpCost(_zero_params, _zero_macs),
    "avg_pool_3x3": OpCost(_zero_params, _zero_macs),
    "skip_connect": OpCost(_skip_params, _skip_macs),
    "sep_conv_3x3": _sep_conv(3),
    "sep_conv_5x5": _sep_conv(5),
    "sep_conv_7x7": _sep_conv(7),
    "dil_conv_3x3": _dil_conv(3),
    "dil_conv_5x5": _dil_conv(5),
    "conv_7x1_1x7": OpCost(_conv_7x1_1x7_params, _conv_7x1_1x7_macs),
}

assert set(OP_COSTS) == set(KNOWN_OPS)


def op_cost(op: str, c: int, stride: int, h: int, w: int, affine: bool = True) -> tuple[int, int]:
    """(parameters, MACs) of ``op`` at ``c`` channels on an ``h``x``w`` input."""
    return OP_COSTS[op](c, stride, h, w, affine)

"""Parameters and multiply-accumulates of a network, computed from its spec alone.

MACs count the multiply-accumulates of convolutions and linear layers (what
``torch.utils.flop_counter`` reports, halved); BN, ReLU, pooling and additions are not
counted. Parameters follow the reference DARTS code and exclude the auxiliary head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .ops import (
    factorized_reduce_macs,
    factorized_reduce_params,
    op_cost,
    relu_conv_bn_macs,
    relu_conv_bn_params,
)
from .plan import CellPlan, NetworkPlan, StemPlan, plan_network

if TYPE_CHECKING:
    from .network import Network


@dataclass(frozen=True)
class PositionCost:
    position: int
    cell: str
    reduction: bool
    live: tuple[int, ...]
    out_channels: int
    size_out: tuple[int, int]
    params: int
    macs: int

    @property
    def dead(self) -> bool:
        return self.out_channels == 0


@dataclass(frozen=True)
class NetworkCost:
    stem_params: int
    stem_macs: int
    cells: list[PositionCost] = field(default_factory=list)
    head_params: int = 0
    head_macs: int = 0
    aux_params: int = 0  # not included in ``params``

    @property
    def params(self) -> int:
        return self.stem_params + sum(c.params for c in self.cells) + self.head_params

    @property
    def macs(self) -> int:
        return self.stem_macs + sum(c.macs for c in self.cells) + self.head_macs


def _conv(c_in: int, c_out: int, k: int, size_out: tuple[int, int]) -> tuple[int, int]:
    """Bias-free kxk conv followed by an affine BN: (params, MACs)."""
    return c_in * c_out * k * k + 2 * c_out, size_out[0] * size_out[1] * c_in * c_out * k * k


def stem_cost(stem: StemPlan) -> tuple[int, int]:
    """(params, MACs) of the stem's layers."""
    params = macs = 0
    for conv, size in zip((*stem.layers.first, *stem.layers.second), stem.sizes):
        p, m = _conv(conv.c_in, conv.c_out, 3, size)
        params += p
        macs += m
    return params, macs


def cell_cost(cp: CellPlan) -> tuple[int, int]:
    params = macs = 0
    (c0, c1), (s0, s1) = cp.c_in, cp.size_in
    if cp.pre[0] == "fr":
        params += factorized_reduce_params(c0, cp.c)
        macs += factorized_reduce_macs(c0, cp.c, *s0)
    elif cp.pre[0] == "conv":
        params += relu_conv_bn_params(c0, cp.c)
        macs += relu_conv_bn_macs(c0, cp.c, *s0)
    if cp.pre[1] == "conv":
        params += relu_conv_bn_params(c1, cp.c)
        macs += relu_conv_bn_macs(c1, cp.c, *s1)
    for e in cp.edges:
        p, m = op_cost(e.op, cp.c, e.stride, *s1)
        params += p
        macs += m
    return params, macs


def aux_head_params(c_in: int, classes: int) -> int:
    # ReLU, avg pool to 2x2 (no parameters), 1x1 conv to 128 + BN, ReLU, 2x2 conv to 768 + BN, ReLU, linear.
    return c_in * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * classes + classes


def network_cost(net: "Network", plan: NetworkPlan | None = None) -> NetworkCost:
    """Per-position and total parameters and MACs of ``net``."""
    plan = plan or plan_network(net)
    sp, sm = stem_cost(plan.stem)
    cells = []
    for cp in plan.cells:
        p, m = cell_cost(cp)
        cells.append(PositionCost(cp.position, cp.cell, cp.reduction, cp.live, cp.out_channels, cp.size_out, p, m))
    k = plan.classifier_in
    aux = aux_head_params(plan.aux[0], net.classes) if plan.aux else 0
    return NetworkCost(sp, sm, cells, k * net.classes + net.classes, k * net.classes, aux)


def count_params(net: "Network") -> int:
    """Parameters of the compiled network (auxiliary head excluded, as DARTS counts)."""
    return network_cost(net).params


def count_macs(net: "Network") -> int:
    """Multiply-accumulates of one forward pass of one image."""
    return network_cost(net).macs


def cost_report(net: "Network") -> dict[str, Any]:
    """Costs of ``net`` as plain data (what ``nasgal compile --json`` prints): totals, the stem,
    each position (type, cell, live nodes, channels, size, parameters, MACs) and the head."""
    plan = plan_network(net)
    cost = network_cost(net, plan)
    cells = [
        {
            "position": c.position,
            "type": "reduction" if c.reduction else "normal",
            "cell": c.cell,
            "live_nodes": list(c.live),
            "out_channels": c.out_channels,
            "size": list(c.size_out),
            "params": c.params,
            "macs": c.macs,
            "dead": c.dead,
        }
        for c in cost.cells
    ]
    return {
        "name": net.name,
        "params": cost.params,
        "macs": cost.macs,
        "cells": cells,
        "stem": {
            "kind": net.stem.kind,
            "in_channels": net.input.channels,
            "size_in": list(net.input.size),
            "out_channels": plan.stem.c_out[1],
            "size": list(plan.stem.size_out[1]),
            "params": cost.stem_params,
            "macs": cost.stem_macs,
        },
        "head": {
            "in_channels": plan.classifier_in,
            "classes": net.classes,
            "params": cost.head_params,
            "macs": cost.head_macs,
        },
        "aux_params": cost.aux_params,
    }

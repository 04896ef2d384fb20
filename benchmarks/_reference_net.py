"""A stacked DARTS network written the way the reference DARTS code writes its evaluation network.

The baseline of ``train_step.py --reference``: the same function as nasgal's compiled network
(its parameters load into this one by name, and the logits agree; see tests/test_count.py),
but built as the reference code builds it, so that what nasgal changes in its own modules
shows in the ratio:

- a cell runs its nodes in the genotype's order, each the sum of its ops' outputs, with
  drop-path applied in place to every op but the identity, and concatenates the concat nodes;
- FactorizedReduce feeds its second 1x1 stride-2 conv the input sliced by one pixel,
  ``x[:, :, 1:, 1:]`` (even sides, as in the reference);
- the stem is conv 3x3 + BN, the head global average pooling and a linear layer.

The op modules themselves (separable, dilated, pooling, ReLU-conv-BN) are nasgal's, which
equal the reference's layer for layer (the parameter-count oracle tests check them), with
torch's own depthwise convs put back in place of nasgal's (:func:`torch_convs`). CIFAR
stem only; no auxiliary head (the benchmark network has none).
"""

from __future__ import annotations

import torch
from torch import nn

from nasgal.compiler.depthwise import DepthwiseConv2d
from nasgal.compiler.ops import ReLUConvBN, build_op, shifted_by_one
from nasgal.spec.cell import INPUTS
from nasgal.spec.network import Network
from nasgal.spec.plan import plan_network


def torch_convs(module: nn.Module) -> nn.Module:
    """``module`` with every nasgal depthwise conv replaced by a plain ``nn.Conv2d`` holding the
    same weight (what the reference code runs: torch's own backward)."""
    for name, child in list(module.named_children()):
        if isinstance(child, DepthwiseConv2d):
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                             child.dilation, child.groups, bias=False)
            conv.weight = child.weight
            setattr(module, name, conv)
        else:
            torch_convs(child)
    return module


class ReferenceFactorizedReduce(nn.Module):
    """The reference's FactorizedReduce; on odd sides (which the reference cannot take) the
    shifted input is zero-padded at the far edge, as nasgal defines it."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        even = x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0
        shifted = x[:, :, 1:, 1:] if even else shifted_by_one(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class ReferenceCell(nn.Module):
    def __init__(self, plan):
        super().__init__()
        self.pre0 = ReferenceFactorizedReduce(plan.c_in[0], plan.c) if plan.pre[0] == "fr" else \
            ReLUConvBN(plan.c_in[0], plan.c)
        self.pre1 = ReLUConvBN(plan.c_in[1], plan.c)
        self.edges = nn.ModuleDict({str(e.index): torch_convs(build_op(e.op, plan.c, e.stride)) for e in plan.edges})
        self.node_edges = [[(str(e.index), e.src, e.op == "skip_connect" and e.stride == 1)
                            for e in plan.edges if e.dst == n] for n in plan.live]
        self.nodes = list(plan.live)
        self.concat = list(plan.concat)
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = {INPUTS[0]: self.pre0(s0), INPUTS[1]: self.pre1(s1)}
        for node, edges in zip(self.nodes, self.node_edges):
            total = None
            for key, src, identity in edges:
                h = self.edges[key](states[src])
                if self.training and self.drop_prob > 0 and not identity:
                    keep = 1.0 - self.drop_prob
                    mask = torch.empty(h.shape[0], 1, 1, 1, device=h.device).bernoulli_(keep)
                    h.div_(keep)
                    h.mul_(mask)
                total = h if total is None else total + h
            states[node] = total
        return torch.cat([states[n] for n in self.concat], dim=1)


class ReferenceNetwork(nn.Module):
    def __init__(self, spec: Network):
        super().__init__()
        plan = plan_network(spec)
        if plan.stem.kind != "cifar" or spec.auxiliary is not None:
            raise ValueError("the reference-style network has the CIFAR stem and no auxiliary head")
        if any(cp.dead or cp.pre[0] is None or cp.pre[1] is None for cp in plan.cells):
            raise ValueError("the reference-style network has no pruned cells or inputs")
        stem = plan.stem.layers.first[0]
        self.stem = nn.Module()
        self.stem.stem0 = nn.Sequential(nn.Conv2d(stem.c_in, stem.c_out, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(stem.c_out))
        self.cells = nn.ModuleDict({str(cp.position): ReferenceCell(cp) for cp in plan.cells})
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan.classifier_in, spec.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem.stem0(x)
        for cell in self.cells.values():
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))

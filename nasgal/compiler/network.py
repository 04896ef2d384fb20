"""Network spec -> ``torch.nn.Module``, interpreting :func:`nasgal.spec.plan_network`.

Module names are derived from the spec so weights can move between a network and its
pruned version: ``stem``, ``cells.<position>.pre0|pre1``, ``cells.<position>.edges.<edge
index in the cell spec>``, ``classifier``, ``aux_head``. ``forward`` has no data-dependent
control flow: the structure is fixed when the module is built.
"""

from __future__ import annotations

from typing import Sequence, cast

import torch
from torch import nn

from ..spec.cell import INPUTS, NodeRef
from ..spec.network import Network
from ..spec.plan import CellPlan, NetworkPlan, StemPlan, plan_network
from ..spec.stem import StemConv
from .cpu_paths import contiguous_grad
from .ops import FactorizedReduce, ReLUConvBN, build_op


def drop_path(x: torch.Tensor, p: torch.Tensor | float) -> torch.Tensor:
    """Zero whole samples with probability ``p``, rescaling the rest (training only).

    ``p`` may be a 0-d tensor, so a captured graph follows its value without recompiling.
    """
    keep = 1.0 - p
    mask = torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device) < keep  # [B, 1, 1, 1]
    return x * mask.to(x.dtype) / keep


def stem_modules(layers: Sequence[StemConv]) -> nn.Sequential:
    """A stem branch of :func:`nasgal.spec.stem.stem_layers` as modules: per conv
    ``[ReLU,] Conv2d 3x3, BatchNorm2d``. A ReLU at the start of a branch does not work in place
    (its input is also a stem output); the others do."""
    mods: list[nn.Module] = []
    for i, conv in enumerate(layers):
        if conv.relu:
            mods.append(nn.ReLU(inplace=i > 0))
        mods += [nn.Conv2d(conv.c_in, conv.c_out, 3, stride=conv.stride, padding=1, bias=False), nn.BatchNorm2d(conv.c_out)]
    return nn.Sequential(*mods)


class Stem(nn.Module):
    """Turns images into the two inputs of the first cell (layers from :mod:`nasgal.spec.stem`)."""

    def __init__(self, plan: StemPlan):
        super().__init__()
        self.kind = plan.kind
        self.stem0 = stem_modules(plan.layers.first)
        self.stem1 = stem_modules(plan.layers.second) if plan.layers.second else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        if self.stem1 is not None:
            return s0, self.stem1(s0)
        return s0, s0


class CompiledCell(nn.Module):
    """One cell position: preprocessing, the built edges, and the concat of live nodes.

    With ``gates``, each live node's sum is multiplied by a learnable non-negative scalar
    (``gate[j]`` for the j-th node of the cell spec): the soft masks of GAL pruning.
    """

    def __init__(self, plan: CellPlan, node_ids: list[int], gates: bool = False):
        super().__init__()
        self.position = plan.position
        self.pre0: nn.Module | None = None
        self.pre1: nn.Module | None = None
        if plan.pre[0] == "fr":
            self.pre0 = FactorizedReduce(plan.c_in[0], plan.c)
        elif plan.pre[0] == "conv":
            self.pre0 = ReLUConvBN(plan.c_in[0], plan.c)
        if plan.pre[1] == "conv":
            self.pre1 = ReLUConvBN(plan.c_in[1], plan.c)
        self.edges = nn.ModuleDict({str(e.index): build_op(e.op, plan.c, e.stride) for e in plan.edges})
        # Static wiring: state slots 0 and 1 are the inputs, then one slot per live node.
        slot: dict[NodeRef, int] = {INPUTS[0]: 0, INPUTS[1]: 1}
        for j, n in enumerate(plan.live):
            slot[n] = 2 + j
        self._node_inputs: list[list[tuple[str, int, bool]]] = []
        self._gate_index: list[int] = []
        for n in plan.live:
            ins = [
                (str(e.index), slot[e.src], e.op != "skip_connect" or e.stride != 1)
                for e in plan.edges
                if e.dst == n
            ]
            self._node_inputs.append(ins)
            self._gate_index.append(node_ids.index(n))
        self._concat = [slot[n] for n in plan.concat]
        self.gate = nn.Parameter(torch.ones(len(node_ids))) if gates else None

    def forward(
        self, s0: torch.Tensor | None, s1: torch.Tensor | None, drop_prob: torch.Tensor | None = None
    ) -> torch.Tensor:
        # contiguous_grad: on the CPU, each state's gradient reaches its ops' batch norms laid out
        # as the state is (it comes back from the concat below as a channel slice)
        states: list[torch.Tensor | None] = [
            contiguous_grad(self.pre0(s0)) if self.pre0 is not None else None,
            contiguous_grad(self.pre1(s1)) if self.pre1 is not None else None,
        ]
        p_drop = drop_prob if self.training else None
        for ins, g in zip(self._node_inputs, self._gate_index):
            acc: torch.Tensor | None = None
            for key, src, droppable in ins:
                h = self.edges[key](states[src])
                if p_drop is not None and droppable:
                    h = drop_path(h, p_drop)
                acc = h if acc is None else acc + h
            assert acc is not None  # a live node has a live input (the plan guarantees it)
            if self.gate is not None:
                acc = acc * self.gate[g]
            states.append(contiguous_grad(acc))
        return torch.cat(cast(list[torch.Tensor], [states[i] for i in self._concat]), dim=1)


#: Input sides (pixels) on which the reference DARTS head's pooling, AvgPool2d(5, stride 3),
#: gives the 2x2 map its 2x2 convolution reduces to one 768-vector: 8, 9 and 10.
REFERENCE_AUX_SIDES = range(8, 11)


def aux_pool(size: tuple[int, int]) -> nn.Module:
    """The auxiliary head's pooling for an input of ``size`` (H, W).

    Where the reference DARTS CIFAR head is defined (both sides 8-10 px, the 8x8 map of every
    32 px network) this is its own pooling, 5x5 windows at stride 3 that overlap by two
    pixels. Elsewhere (e.g. 7x7 on 28 px inputs) the reference head cannot run; there an
    adaptive average pool to 2x2 keeps the head size-agnostic.
    """
    if all(s in REFERENCE_AUX_SIDES for s in size):
        return nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)
    return nn.AdaptiveAvgPool2d(2)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier of the reference DARTS CIFAR code: ReLU, pool to 2x2, 1x1 conv to
    128 + BN, ReLU, 2x2 conv to 768 + BN, ReLU, linear. The pooling is :func:`aux_pool`'s."""

    def __init__(self, c_in: int, classes: int, size: tuple[int, int]):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),  # the cell output it reads also feeds the next cells
            aux_pool(size),  # [B, c_in, 2, 2]
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),  # [B, 768, 1, 1]
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class CompiledNetwork(nn.Module):
    """The module of a network spec. ``forward(x)`` returns logits ``[B, classes]``; in
    training mode with an auxiliary head it returns ``(logits, aux_logits)``.

    Drop-path is on in training when the spec's ``drop_path`` is above 0 (or after
    ``set_drop_path(p, enabled=True)``); its current rate is the 0-d buffer ``drop_prob``,
    so trainers ramp it without recompiling a captured step.
    """

    drop_prob: torch.Tensor  # a buffer (see __init__)

    def __init__(self, spec: Network, gates: bool = False):
        super().__init__()
        self.spec = spec
        plan: NetworkPlan = plan_network(spec)
        self.plan = plan
        self.stem = Stem(plan.stem)
        self.cells = nn.ModuleDict()
        self._live_cells: list[int] = []
        for cp in plan.cells:
            if cp.dead:
                continue
            node_ids = list(spec.cell_at(cp.position).nodes)
            self.cells[str(cp.position)] = CompiledCell(cp, node_ids, gates=gates)
            self._live_cells.append(cp.position)
        self._aux_position = spec.auxiliary.position if spec.auxiliary is not None else -1
        self.aux_head = AuxiliaryHead(plan.aux[0], spec.classes, plan.aux[1]) if plan.aux else None
        self.classifier = nn.Linear(plan.classifier_in, spec.classes)
        self.drop_path_enabled = spec.drop_path > 0
        self.register_buffer("drop_prob", torch.tensor(0.0), persistent=False)

    def set_drop_path(self, p: float, enabled: bool | None = None) -> None:
        """Set the drop-path rate in place (and switch drop-path on or off if ``enabled`` is given)."""
        if enabled is not None:
            self.drop_path_enabled = enabled
        elif p > 0:
            self.drop_path_enabled = True
        with torch.no_grad():
            self.drop_prob.fill_(float(p))

    @property
    def drop_path_prob(self) -> float:
        return float(self.drop_prob)

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        self.set_drop_path(p)

    def gates(self) -> dict[int, nn.Parameter]:
        """The soft node masks per position (empty unless compiled with ``gates=True``)."""
        cells = cast(dict[str, CompiledCell], self.cells)
        return {int(k): c.gate for k, c in cells.items() if c.gate is not None}

    def forward(self, x: torch.Tensor):
        s0, s1 = self.stem(x)
        states: list[torch.Tensor | None] = [s0, s1]
        drop_prob = self.drop_prob if self.drop_path_enabled else None
        aux = None
        for cp in self.plan.cells:
            if cp.dead:
                states.append(None)
                continue
            out = self.cells[str(cp.position)](states[-2], states[-1], drop_prob)
            states.append(out)
            if cp.position == self._aux_position and self.aux_head is not None and self.training:
                aux = self.aux_head(out)
        last = cast(torch.Tensor, states[-1])  # the spec guarantees a connected network
        logits = self.classifier(last.mean(dim=(2, 3)))
        if aux is not None:
            return logits, aux
        return logits


def compile_network(network: Network, gates: bool = False) -> CompiledNetwork:
    """Build the torch module of ``network`` (weights freshly initialised)."""
    return CompiledNetwork(network, gates=gates)

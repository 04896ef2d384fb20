"""The derived structure of a network: what gets built where, at which width and size.

Both the compiler (torch modules) and the cost model (parameters, MACs) interpret this
plan, so they cannot disagree about the architecture. Pure Python, no torch.

Dead-signal rules (docs/design.md, "What pruning a node means"): a node is live iff it is kept and one of its sources is
live; only edges from live sources into live nodes are built; a cell's output is the
concat of its live concat nodes; a cell with no live output is dead, keeps its place in the
resolution and channel schedule, and the cells reading it lose that input. An input
preprocessing layer is built only when some built edge reads that input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..errors import Problem
from .cell import INPUTS, NodeRef
from .graph import live_nodes
from .limits import MAX_CHANNELS, MAX_PARAMS
from .ops import out_size
from .stem import StemLayers

if TYPE_CHECKING:
    from .network import Network

Size = tuple[int, int]


@dataclass(frozen=True)
class EdgePlan:
    index: int  # position of the edge in cell.edges (stable across pruning)
    src: NodeRef
    dst: int
    op: str
    stride: int


@dataclass(frozen=True)
class CellPlan:
    position: int
    cell: str
    reduction: bool
    reduction_prev: bool  # input k-2 is at twice the resolution of input k-1
    c: int  # channels of every node of this cell
    c_in: tuple[int, int]  # channels of inputs (k-2, k-1); 0 when that input is dead
    size_in: tuple[Size, Size]  # resolutions of inputs (k-2, k-1)
    size_out: Size
    pre: tuple[Literal["fr", "conv"] | None, Literal["conv"] | None]  # input preprocessing built
    live: tuple[int, ...]  # live intermediate nodes, in evaluation order
    edges: tuple[EdgePlan, ...]  # built edges, in spec order
    concat: tuple[int, ...]  # live concat nodes, in concat order

    @property
    def out_channels(self) -> int:
        return len(self.concat) * self.c

    @property
    def dead(self) -> bool:
        return not self.concat


@dataclass(frozen=True)
class StemPlan:
    kind: str
    c_out: tuple[int, int]  # channels of the two states the stem provides (k-2, k-1 of cell 0)
    size_out: tuple[Size, Size]
    reduction_prev: bool
    layers: StemLayers  # what gets built (nasgal.spec.stem)
    sizes: tuple[Size, ...] = ()  # output size of each layer, first then second


@dataclass(frozen=True)
class NetworkPlan:
    stem: StemPlan
    cells: tuple[CellPlan, ...]
    classifier_in: int  # channels into the global pool and linear head (0 = disconnected)
    aux: tuple[int, Size] | None  # (channels, size) into the auxiliary head


def _half(s: Size) -> Size:
    return (out_size(s[0], 2), out_size(s[1], 2))


def _stem_plan(net: "Network") -> StemPlan:
    layers = net.stem.layers(net.input.channels, net.channels)
    size: Size = net.input.size
    sizes: list[Size] = []
    outs: list[Size] = []
    for branch in (layers.first, layers.second):
        for conv in branch:
            size = (out_size(size[0], conv.stride), out_size(size[1], conv.stride))
            sizes.append(size)
        outs.append(size)
    s0, s1 = layers.strides
    return StemPlan(net.stem.kind, layers.out_channels, (outs[0], outs[1]), s1 != s0, layers, tuple(sizes))


def plan_network(net: "Network") -> NetworkPlan:
    """Derive the built structure of ``net``."""
    stem = _stem_plan(net)
    states_c: list[int] = list(stem.c_out)  # channels of every state; 0 = dead
    states_s: list[Size] = list(stem.size_out)
    reduction_prev = stem.reduction_prev
    c = net.channels
    cells: list[CellPlan] = []
    for p, pos in enumerate(net.positions):
        cell = net.cells[pos.cell]
        if pos.reduction:
            c *= 2
        c_in = (states_c[p], states_c[p + 1])
        size_in = (states_s[p], states_s[p + 1])
        live = live_nodes(cell, pos.kept, (c_in[0] > 0, c_in[1] > 0))
        live_set = set(live) | {name for name, ch in zip(INPUTS, c_in) if ch > 0}
        edges = tuple(
            EdgePlan(i, e.src, e.dst, e.op, 2 if pos.reduction and isinstance(e.src, str) else 1)
            for i, e in enumerate(cell.edges)
            if e.dst in live_set and e.src in live_set
        )
        read = {e.src for e in edges}
        pre0: Literal["fr", "conv"] | None = ("fr" if reduction_prev else "conv") if INPUTS[0] in read else None
        pre1: Literal["conv"] | None = "conv" if INPUTS[1] in read else None
        concat = tuple(n for n in cell.concat if n in live_set)
        if not concat:  # a dead position builds nothing: no edge, no preprocessing (nor any cost)
            edges, pre0, pre1 = (), None, None
        size_out = _half(size_in[1]) if pos.reduction else size_in[1]
        plan = CellPlan(
            position=p,
            cell=pos.cell,
            reduction=pos.reduction,
            reduction_prev=reduction_prev,
            c=c,
            c_in=c_in,
            size_in=size_in,
            size_out=size_out,
            pre=(pre0, pre1),
            live=tuple(live),
            edges=edges,
            concat=concat,
        )
        cells.append(plan)
        states_c.append(plan.out_channels)
        states_s.append(size_out)
        reduction_prev = pos.reduction
    aux = None
    if net.auxiliary is not None:
        a = cells[net.auxiliary.position]
        aux = (a.out_channels, a.size_out)
    return NetworkPlan(stem, tuple(cells), states_c[-1], aux)


def build_problems(net: "Network") -> list[Problem]:
    """Why the network's plan cannot be built (empty when it can): the structural conditions
    the compiler relies on, checked once here so that a valid spec always compiles.

    - the stem's layers have at least one channel each;
    - a FactorizedReduce (input k-2 at twice the resolution, or a stride-2 skip_connect) splits
      its output channels into two halves, so they are even;
    - no point of the network is wider than :data:`~nasgal.spec.limits.MAX_CHANNELS` and the
      network has at most :data:`~nasgal.spec.limits.MAX_PARAMS` parameters (auxiliary head
      included), so compiling it is bounded work;
    - the classifier (and the auxiliary head) have an input (:func:`connectivity_problems`).
    """
    plan = plan_network(net)
    out: list[Problem] = []
    for conv in (*plan.stem.layers.first, *plan.stem.layers.second):
        if conv.c_out < 1:
            out.append(Problem(
                "channels", f"the {plan.stem.kind} stem halves {net.channels} channels to none; give at least 2"
            ))
            break
    for cp in plan.cells:
        at = f"positions[{cp.position}]"
        if cp.c > MAX_CHANNELS:
            out.append(Problem(at, f"cell '{cp.cell}' is {cp.c} channels wide after the reductions; at most {MAX_CHANNELS}"))
            return out
        if cp.c % 2 and cp.pre[0] == "fr":
            why = "the stem's" if cp.position == 0 else "the previous position's"
            out.append(Problem(
                at, f"input {INPUTS[0]} is at twice the resolution of {INPUTS[1]} ({why} reduction), so a "
                f"FactorizedReduce brings it to {cp.c} channels in two equal halves; {cp.c} is odd "
                "(give an even number of channels)",
            ))
        odd_skips = [e.index for e in cp.edges if cp.c % 2 and e.op == "skip_connect" and e.stride == 2]
        if odd_skips:
            out.append(Problem(
                at, f"a stride-2 skip_connect (edge {', '.join(map(str, odd_skips))} of cell '{cp.cell}') is a "
                f"FactorizedReduce to {cp.c} channels in two equal halves; {cp.c} is odd (give an even number of channels)",
            ))
    if out:
        return out
    out = connectivity_problems(net, plan)
    if out:
        return out
    from .costs import network_cost  # costs imports this module

    cost = network_cost(net, plan)
    total = cost.params + cost.aux_params
    if total > MAX_PARAMS:
        out.append(Problem("", f"{total:,} parameters; a network has at most {MAX_PARAMS:,} (compiling it would need "
                           f"{4 * total / 2**30:.1f} GiB)"))
    return out


def connectivity_problems(net: "Network", plan: NetworkPlan | None = None) -> list[Problem]:
    """Why the network cannot produce logits (empty when it can)."""
    plan = plan or plan_network(net)
    out: list[Problem] = []
    last = plan.cells[-1]
    if last.dead:
        dead = [str(cp.position) for cp in plan.cells if cp.dead]
        out.append(Problem(
            "",
            f"network is disconnected: position {last.position} ('{last.cell}') has no live node in its "
            f"output, so the classifier has no input (dead positions: {', '.join(dead)}); keep at least "
            "one node whose inputs are live",
        ))
    if plan.aux is not None and plan.aux[0] == 0 and net.auxiliary is not None:
        out.append(Problem(
            "auxiliary.position", f"position {net.auxiliary.position} is dead, so the auxiliary head has no input"
        ))
    return out

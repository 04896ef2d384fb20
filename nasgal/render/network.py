"""Figures of a network spec: one cell position, or the whole stack.

The stack figure follows the DARTS-GAL paper's Fig. 2 and Fig. 17: the stem, every cell
position (normal or reduction) with its channels and resolution, the two inputs each cell
reads (``c_{k-1}`` solid, ``c_{k-2}`` thin grey), and the classifier head. Dead positions
(no live node left after pruning) stay in place, faded and dashed, as do the inputs that
read them.
"""

from __future__ import annotations

from html import escape

import graphviz

from ..spec.costs import NetworkCost, network_cost
from ..spec.network import Network
from ..spec.plan import NetworkPlan, plan_network
from . import style
from .cell import new_graph, render_cell


def _size(s: tuple[int, int]) -> str:
    return f"{s[0]}×{s[1]}"


def _count(n: int) -> str:
    """Parameters in a compact, deterministic form: 812, 23.4k, 3.35M."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def position_title(net: Network, position: int, plan: NetworkPlan | None = None) -> str:
    """The HTML-like title of a position figure: what, where, how wide, how much is kept."""
    plan = plan or plan_network(net)
    cp = plan.cells[position]
    cell = net.cell_at(position)
    kind = "reduction" if cp.reduction else "normal"
    head = f"position {position}: {kind} cell '{escape(cp.cell)}'"
    kept = net.positions[position].kept
    live = f"{len(cp.live)}/{len(cell.nodes)} nodes live"
    if kept is not None:
        live += f" ({len(kept)} kept)"
    if cp.dead:
        live = "dead: no live node"
    sub = f"C={cp.c} · {_size(cp.size_in[1])} → {_size(cp.size_out)} · {live}"
    return f'<b>{head}</b><br/><font point-size="14">{sub}</font>'


def render_position(
    net: Network, position: int, *, hide_pruned: bool = False, plan: NetworkPlan | None = None
) -> graphviz.Digraph:
    """The cell at ``position`` under that position's kept-node mask and mask values.

    An input that comes from a dead position is drawn as dead; so is everything that only
    it fed.
    """
    n = net.num_positions
    if not 0 <= position < n:
        from ..errors import NasgalError

        raise NasgalError(f"position {position} is out of range; positions are 0..{n - 1}")
    plan = plan or plan_network(net)
    cp = plan.cells[position]
    pos = net.positions[position]
    return render_cell(
        net.cell_at(position),
        kept=pos.kept,
        mask=pos.mask,
        live_inputs=(cp.c_in[0] > 0, cp.c_in[1] > 0),
        hide_pruned=hide_pruned,
        title=position_title(net, position, plan),
        name=f"pos{position}",
        threshold=(net.pruning.threshold or 0.0) if net.pruning is not None else 0.0,
        scores=_scores(net, position),
        score_name=net.pruning.method if net.pruning is not None else "score",
    )


def _scores(net: Network, position: int) -> dict[int, float] | None:
    """A baseline pruning method's recorded score per node of ``position`` (``pruning.params.scores``)."""
    if net.pruning is None or not isinstance(net.pruning.params.get("scores"), list):
        return None
    rows = net.pruning.params["scores"]
    if position >= len(rows) or not isinstance(rows[position], dict):
        return None
    try:
        return {int(n): float(v) for n, v in rows[position].items()}
    except (TypeError, ValueError):  # a hand-edited spec: draw it without scores
        return None


def render_network(
    net: Network, *, plan: NetworkPlan | None = None, cost: NetworkCost | None = None
) -> graphviz.Digraph:
    """The stacking of ``net``: stem, positions with channels and resolution, head."""
    plan = plan or plan_network(net)
    cost = cost or network_cost(net, plan)
    title = (
        f"<b>{escape(net.name)}</b><br/>"
        f'<font point-size="14">{net.num_positions} cells · C={net.channels} · {net.classes} classes · '
        f"{_count(cost.params)} params · {_count(cost.macs)} MACs</font>"
    )
    g = new_graph("network", title)
    g.attr("node", fontsize="14", penwidth="1.5")
    g.attr("edge", penwidth="1.2")
    h, w = net.input.size
    g.node("input", f"<input<br/>{net.input.channels}×{h}×{w}>", shape="plain", style="")
    st = plan.stem
    g.node(
        "stem",
        f"<<b>stem</b> ({escape(st.kind)})<br/>{st.c_out[1]} ch · {_size(st.size_out[1])}>",
        fillcolor=style.STEM_FILL,
    )
    g.edge("input", "stem")
    # states[i] is the node producing state i: states 0 and 1 come from the stem.
    states = ["stem", "stem"]
    for cp, pc in zip(plan.cells, cost.cells):
        nid = f"cell{cp.position}"
        kind = "reduction" if cp.reduction else "normal"
        cell = net.cell_at(cp.position)
        lines = [
            f"<b>{cp.position}: {kind}</b>",
            f"C={cp.c} · {_size(cp.size_out)}",
        ]
        if cp.dead:
            lines.append("dead")
        else:
            lines.append(f"{cp.out_channels} ch out")
            if len(cp.live) < len(cell.nodes):
                which = ", ".join(map(str, cp.live))
                lines.append(f"live node{'s' if len(cp.live) > 1 else ''} {which} ({len(cp.live)} of {len(cell.nodes)})")
            lines.append(f"{_count(pc.params)} params")
        label = "<" + "<br/>".join(lines) + ">"
        if cp.dead:
            g.node(
                nid, label, style="filled,dashed", fillcolor=style.FADED_FILL,
                color=style.FADED_LINE, fontcolor=style.FADED_TEXT,
            )
        else:
            g.node(nid, label, fillcolor=style.REDUCTION_FILL if cp.reduction else style.NODE_FILL)
        k2, k1 = states[cp.position], states[cp.position + 1]
        for src, ch, main in ((k1, cp.c_in[1], True), (k2, cp.c_in[0], False)):
            attrs: dict[str, str] = {}
            if not main:
                attrs.update(color="#8c8c8c", penwidth="0.8", arrowsize="0.6", constraint="false")
            else:
                attrs.update(weight="10")
            if ch == 0:
                attrs.update(style="dashed", color=style.FADED_LINE)
            g.edge(src, nid, **attrs)
        states.append(nid)
    g.node(
        "head",
        f"<<b>head</b><br/>pool + linear<br/>{plan.classifier_in} → {net.classes}>",
        fillcolor=style.OUTPUT_FILL,
    )
    g.edge(states[-1], "head", weight="10")
    if net.auxiliary is not None and plan.aux is not None:
        g.node("aux", "<auxiliary<br/>head>", fillcolor=style.STEM_FILL, style="filled,dotted", fontsize="12")
        g.edge(f"cell{net.auxiliary.position}", "aux", style="dotted", weight="0")
    return g

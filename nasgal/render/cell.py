"""A cell as a figure, drawn like the DARTS and DARTS-GAL papers draw cells.

Left to right: the inputs ``c_{k-2}`` (top) and ``c_{k-1}``, the numbered intermediate
nodes, the output ``c_{k}``; every edge is labelled with its op and coloured by op family.
Under a kept-node mask, pruned nodes (not kept), dead nodes (kept, but no live input) and
the edges that are not built are drawn faded and dashed, or left out with ``hide_pruned``.
"""

from __future__ import annotations

from html import escape
from typing import Iterable, Literal, Mapping

import graphviz

from ..spec.cell import INPUTS, Cell
from ..spec.graph import live_nodes, topological_order
from . import style

NodeState = Literal["live", "pruned", "dead"]

_INPUT_IDS = {INPUTS[0]: "c_k-2", INPUTS[1]: "c_k-1"}
_INPUT_SUB = {INPUTS[0]: "k-2", INPUTS[1]: "k-1"}
OUTPUT_ID = "c_k"


def node_id(ref: int | str) -> str:
    """The DOT id of a cell input or intermediate node."""
    return _INPUT_IDS[ref] if isinstance(ref, str) else str(ref)


def _c(sub: str, extra: str = "") -> str:
    return f"<c<sub>{escape(sub)}</sub>{extra}>"


def format_mask(value: float) -> str:
    """A mask value as shown in figures: three significant digits."""
    return f"{value:.3g}"


def node_states(
    cell: Cell, kept: Iterable[int] | None = None, live_inputs: tuple[bool, bool] = (True, True)
) -> dict[int, NodeState]:
    """Each intermediate node's state under a kept-node mask."""
    keep = set(cell.nodes) if kept is None else set(kept)
    live = set(live_nodes(cell, kept, live_inputs))
    return {n: "live" if n in live else ("dead" if n in keep else "pruned") for n in cell.nodes}


def new_graph(name: str, title: str | None = None) -> graphviz.Digraph:
    """An empty left-to-right figure in the house style."""
    g = graphviz.Digraph(name=name)
    g.attr(rankdir="LR", fontname=style.FONT, nodesep="0.3", ranksep="0.6")
    if title:
        g.attr(label=f"<{title}>", labelloc="t", labeljust="c", fontsize="18")
    g.attr(
        "node",
        style="filled",
        shape="rect",
        fontname=style.FONT,
        fontsize="20",
        height="0.5",
        width="0.5",
        penwidth="2",
    )
    g.attr("edge", fontname=style.FONT, fontsize="16", penwidth="1.5", arrowsize="0.8")
    return g


def _faded_node(g: graphviz.Digraph, nid: str, label: str) -> None:
    g.node(
        nid,
        label,
        style="filled,dashed",
        fillcolor=style.FADED_FILL,
        color=style.FADED_LINE,
        fontcolor=style.FADED_TEXT,
    )


def render_cell(
    cell: Cell,
    *,
    kept: Iterable[int] | None = None,
    mask: Mapping[int, float] | None = None,
    live_inputs: tuple[bool, bool] = (True, True),
    hide_pruned: bool = False,
    title: str | None = None,
    name: str = "cell",
    threshold: float = 0.0,
    scores: Mapping[int, float] | None = None,
    score_name: str = "score",
) -> graphviz.Digraph:
    """The figure of one cell, optionally under a kept-node mask.

    ``kept`` is the set of kept intermediate nodes (``None``: all), ``mask`` the learned
    mask value per node (shown under the node number). A live node whose mask is at or below
    ``threshold`` (one a budget or the connectivity guard kept although its mask says remove)
    is marked "kept" and drawn with a double border, so it does not read as a pruned one.
    ``scores`` (a baseline pruning method's score per node, e.g. its ablation sensitivity) are
    shown under the node number as ``<score_name>=value``. ``live_inputs`` whether
    ``c_{k-2}`` and ``c_{k-1}`` carry a signal (an input from a dead cell does not).
    ``title`` is an HTML-like graphviz label fragment (plain text is fine). Pure: the
    result depends only on the arguments, so its DOT source is deterministic.
    """
    states = node_states(cell, kept, live_inputs)
    live_inputs_set = {n for n, ok in zip(INPUTS, live_inputs) if ok}
    alive = live_inputs_set | {n for n, s in states.items() if s == "live"}
    g = new_graph(name, title)

    with g.subgraph(name=f"{name}_inputs") as s:
        s.attr(rank="source")
        for ref in INPUTS:
            if ref in live_inputs_set:
                s.node(_INPUT_IDS[ref], _c(_INPUT_SUB[ref]), fillcolor=style.INPUT_FILL)
            elif not hide_pruned:
                _faded_node(s, _INPUT_IDS[ref], _c(_INPUT_SUB[ref], " (dead)"))
        # keep c_{k-2} above c_{k-1}
        if not hide_pruned or live_inputs == (True, True):
            s.edge(_INPUT_IDS[INPUTS[0]], _INPUT_IDS[INPUTS[1]], style="invis")

    for n in topological_order(cell):
        state = states[n]
        extra = []
        kept_below = state == "live" and mask is not None and n in mask and mask[n] <= threshold
        if mask is not None and n in mask:
            extra.append(f"m={format_mask(mask[n])}")
        if scores is not None and n in scores:
            extra.append(f"{score_name}={format_mask(scores[n])}")
        if state != "live":
            extra.append(state)
        elif kept_below:
            extra.append("kept")
        label = str(n)
        if extra:
            small = escape(", ".join(extra))
            label = f'<{n}<br/><font point-size="12">{small}</font>>'
        if state == "live":
            g.node(str(n), label, fillcolor=style.NODE_FILL, **({"peripheries": "2"} if kept_below else {}))
        elif not hide_pruned:
            _faded_node(g, str(n), label)

    for e in cell.edges:
        built = e.src in alive and e.dst in alive
        if not built and hide_pruned:
            continue
        src, dst = node_id(e.src), node_id(e.dst)
        if built:
            color = style.op_color(e.op)
            g.edge(src, dst, label=e.op, color=color, fontcolor=color)
        else:
            g.edge(src, dst, label=e.op, color=style.FADED_LINE, fontcolor=style.FADED_TEXT, style="dashed")

    concat_live = [n for n in cell.concat if n in alive]
    with g.subgraph(name=f"{name}_output") as s:
        s.attr(rank="sink")
        if concat_live:
            s.node(OUTPUT_ID, _c("k"), fillcolor=style.OUTPUT_FILL)
        else:
            _faded_node(s, OUTPUT_ID, _c("k", " (dead)"))
    for n in cell.concat:
        if n in alive:
            g.edge(str(n), OUTPUT_ID, color=style.CONCAT_LINE)
        elif not hide_pruned:
            g.edge(str(n), OUTPUT_ID, color=style.FADED_LINE, style="dashed")
    return g

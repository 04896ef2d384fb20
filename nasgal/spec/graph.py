"""Graph queries on a cell, computed with networkx.

``to_networkx`` gives users a plain ``networkx.MultiDiGraph`` to analyse; the rest of
nasgal uses the queries here for acyclicity, order, liveness under a kept-node mask and a
canonical hash that ignores how the intermediate nodes are numbered.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import TYPE_CHECKING, Iterable

from .cell import INPUTS, OUTPUT

if TYPE_CHECKING:
    import networkx as nx

    from .cell import Cell

# networkx is imported inside the functions that use it: it costs a fifth of a second, and the
# command line (help, usage errors, shell completion) imports this module without needing it.


def to_networkx(cell: "Cell", with_output: bool = True) -> nx.MultiDiGraph:
    """The cell as a multigraph: inputs, intermediate nodes and (optionally) the output.

    Node attribute ``role`` is ``input``, ``node`` or ``output``; every cell edge becomes a
    graph edge with attributes ``op`` and ``index`` (its position in ``cell.edges``); the
    output has ``op="concat"`` edges from the concat nodes, with ``index`` their slot.
    """
    import networkx as nx

    g = nx.MultiDiGraph()
    for name in INPUTS:
        g.add_node(name, role="input")
    for n in cell.nodes:
        g.add_node(n, role="node")
    for i, e in enumerate(cell.edges):
        g.add_edge(e.src, e.dst, op=e.op, index=i)
    if with_output:
        g.add_node(OUTPUT, role="output")
        for slot, n in enumerate(cell.concat):
            g.add_edge(n, OUTPUT, op="concat", index=slot)
    return g


def find_cycle(cell: "Cell") -> list | None:
    """Nodes of one cycle (first node repeated at the end), or None if the cell is acyclic."""
    import networkx as nx

    g = to_networkx(cell, with_output=False)
    try:
        cyc = nx.find_cycle(g)
    except nx.NetworkXNoCycle:
        return None
    return [u for u, *_ in cyc] + [cyc[0][0]]


def topological_order(cell: "Cell") -> list[int]:
    """Intermediate nodes in a valid evaluation order, ties broken by the ``nodes`` list."""
    import networkx as nx

    rank = {n: i for i, n in enumerate(cell.nodes)}
    g = nx.DiGraph()
    g.add_nodes_from(cell.nodes)
    g.add_edges_from((e.src, e.dst) for e in cell.edges if isinstance(e.src, int))
    return list(nx.lexicographical_topological_sort(g, key=rank.__getitem__))


def live_nodes(
    cell: "Cell",
    kept: Iterable[int] | None = None,
    live_inputs: tuple[bool, bool] = (True, True),
) -> list[int]:
    """Intermediate nodes that are live under a kept-node mask, in evaluation order.

    A node is live iff it is kept and at least one of its sources is live; a cell input is
    live iff its flag in ``live_inputs`` (for ``c_{k-2}``, ``c_{k-1}``) is set.
    """
    keep = set(cell.nodes) if kept is None else set(kept)
    live: set = {name for name, ok in zip(INPUTS, live_inputs) if ok}
    out: list[int] = []
    for n in topological_order(cell):
        if n in keep and any(e.src in live for _, e in cell.in_edges(n)):
            live.add(n)
            out.append(n)
    return out


def canonical_hash(cell: "Cell") -> str:
    """A hash equal for cells that differ only in the numbering of their nodes.

    Weisfeiler-Lehman hashing of the cell graph labelled with roles (which input, node,
    output) and ops. The concat order is ignored (it permutes output channels only).
    """
    import networkx as nx

    g = nx.DiGraph()
    for name in INPUTS:
        g.add_node(name, label=f"in:{name}")
    for n in cell.nodes:
        g.add_node(n, label="node")
    g.add_node(OUTPUT, label="out")
    labels: dict[tuple, list[str]] = {}
    for e in cell.edges:
        labels.setdefault((e.src, e.dst), []).append(e.op)
    for n in cell.concat:
        labels.setdefault((n, OUTPUT), []).append("concat")
    for (u, v), ops in labels.items():
        g.add_edge(u, v, label="+".join(sorted(ops)))
    with warnings.catch_warnings():  # networkx 3.5 notes that its hashes changed; ours are recomputed, never stored
        warnings.simplefilter("ignore")
        wl = nx.weisfeiler_lehman_graph_hash(g, node_attr="label", edge_attr="label", iterations=5)
    return hashlib.sha256(wl.encode()).hexdigest()[:16]


def renumbering(a: "Cell", b: "Cell") -> dict[int, int] | None:
    """A mapping of ``a``'s intermediate nodes onto ``b``'s under which the two cells are the same
    graph (inputs onto the same inputs, the same ops on every edge, the same output concat
    set), or None when there is none. Deterministic for given cells."""
    if len(a.nodes) != len(b.nodes) or len(a.edges) != len(b.edges):
        return None
    if canonical_hash(a) != canonical_hash(b):  # a same graph has the same hash; this bounds the search below
        return None
    ga, gb = to_networkx(a), to_networkx(b)
    # inputs must map to the same inputs: tag them with their names
    for g in (ga, gb):
        for name in INPUTS:
            g.nodes[name]["role"] = f"input:{name}"

    def node_match(x: dict, y: dict) -> bool:
        return x["role"] == y["role"]

    def edge_match(x: dict, y: dict) -> bool:  # multigraph: dicts keyed by edge key
        return sorted(d["op"] for d in x.values()) == sorted(d["op"] for d in y.values())

    from networkx.algorithms.isomorphism import MultiDiGraphMatcher

    matcher = MultiDiGraphMatcher(ga, gb, node_match=node_match, edge_match=edge_match)
    for mapping in matcher.isomorphisms_iter():
        return {n: mapping[n] for n in a.nodes}
    return None


def same_graph(a: "Cell", b: "Cell") -> bool:
    """True iff the cells are the same graph up to the numbering of intermediate nodes."""
    return renumbering(a, b) is not None

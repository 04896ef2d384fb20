"""A cell: an explicit, named graph of operations.

A cell has two inputs, ``c_{k-2}`` and ``c_{k-1}`` (the outputs of the two previous
positions), intermediate nodes numbered by integers, edges ``{src, dst, op}`` and an
explicit output concat list. A node sums the ops of its incoming edges.
"""

from __future__ import annotations

from typing import Final, Iterable, Literal, TypeVar, Union

from pydantic import Field, StrictInt, model_validator
from ..errors import Problem
from .base import SpecModel, raise_problems
from .limits import MAX_EDGES, MAX_NODES
from .ops import KNOWN_OPS

INPUT_PREV_PREV: Final = "c_{k-2}"
INPUT_PREV: Final = "c_{k-1}"
#: The two cell inputs, in DARTS order (state 0 and state 1).
INPUTS: tuple[Literal["c_{k-2}"], Literal["c_{k-1}"]] = (INPUT_PREV_PREV, INPUT_PREV)
#: The name of the cell output in graphs and renders.
OUTPUT = "c_{k}"

T = TypeVar("T", int, str)

InputName = Literal["c_{k-2}", "c_{k-1}"]
NodeRef = Union[StrictInt, InputName]


def ref_of_state(state: int) -> NodeRef:
    """The node a DARTS state index names: states 0 and 1 are the cell inputs
    (``c_{k-2}``, ``c_{k-1}``), state ``2 + j`` is intermediate node ``j``."""
    if state < 0:
        raise ValueError(f"state index {state} is negative")
    return INPUTS[state] if state < 2 else state - 2


def state_of_ref(ref: NodeRef) -> int:
    """The DARTS state index of a node reference (the inverse of :func:`ref_of_state`)."""
    return INPUTS.index(ref) if isinstance(ref, str) else ref + 2


def repeated(items: Iterable[T]) -> list[T]:
    """The items listed more than once, sorted."""
    seen: set = set()
    twice: set = set()
    for x in items:
        (twice if x in seen else seen).add(x)
    return sorted(twice)


def fmt_ids(ids) -> str:
    return ", ".join(str(i) for i in ids) if ids else "(none)"


class Edge(SpecModel):
    """One operation from a source node (or cell input) into an intermediate node."""

    src: NodeRef = Field(
        description="Where the edge reads from: 'c_{k-2}', 'c_{k-1}' or an intermediate node id."
    )
    dst: StrictInt = Field(description="The intermediate node the edge adds into.")
    op: str = Field(description="Operation name, e.g. 'sep_conv_3x3' (see the op catalog).")

    def describe(self) -> str:
        return f"{self.src} -> {self.dst} ({self.op})"


class Cell(SpecModel):
    """A DARTS-style cell as a graph: nodes, edges and output concat."""

    nodes: list[StrictInt] = Field(
        description="Intermediate node ids, in the order they are computed (ids need not be contiguous)."
    )
    edges: list[Edge] = Field(description="Every operation of the cell; a node sums its incoming edges.")
    concat: list[StrictInt] = Field(
        description="Intermediate nodes concatenated (in this order) into the cell output."
    )

    @model_validator(mode="after")
    def _graph_is_well_formed(self) -> "Cell":
        raise_problems(self.problems())
        return self

    def problems(self) -> list[Problem]:
        """Every structural problem of this cell, each at its place in the cell (``edges[3]``,
        ``concat``, ...) and naming the offending values."""
        out: list[Problem] = []
        if len(self.nodes) > MAX_NODES:
            out.append(Problem("nodes", f"{len(self.nodes)} nodes; a cell has at most {MAX_NODES}"))
        if len(self.edges) > MAX_EDGES:
            out.append(Problem("edges", f"{len(self.edges)} edges; a cell has at most {MAX_EDGES}"))
        if out:
            return out
        if not self.nodes:
            out.append(Problem("nodes", "a cell needs at least one intermediate node"))
        seen: set[int] = set()
        for i, n in enumerate(self.nodes):
            if n < 0:
                out.append(Problem(f"nodes[{i}]", f"node id {n} is negative; ids are non-negative integers"))
            if n in seen:
                out.append(Problem(f"nodes[{i}]", f"node {n} is listed twice"))
            seen.add(n)
        node_set = set(self.nodes)
        for i, e in enumerate(self.edges):
            at = f"edges[{i}]"
            if e.dst not in node_set:
                out.append(Problem(
                    at, f"{e.describe()}: target {e.dst} is not a node of this cell; nodes are {fmt_ids(self.nodes)}"
                ))
            if isinstance(e.src, int) and e.src not in node_set:
                out.append(Problem(
                    at, f"{e.describe()}: source {e.src} is not a node of this cell; "
                    f"sources are {INPUT_PREV_PREV}, {INPUT_PREV} and nodes {fmt_ids(self.nodes)}"
                ))
            if e.op not in KNOWN_OPS:
                out.append(Problem(at, f"{e.describe()}: unknown op '{e.op}'; known ops: {', '.join(KNOWN_OPS)}"))
            if e.op == "none":
                out.append(Problem(
                    at, f"{e.describe()}: op 'none' contributes nothing; "
                    "remove the edge instead (it exists only in the search space)"
                ))
        fed = {e.dst for e in self.edges}
        for i, n in enumerate(self.nodes):
            if n not in fed:
                out.append(Problem(
                    f"nodes[{i}]", f"node {n} has no input edge; every intermediate node needs at least one"
                ))
        if not self.concat:
            out.append(Problem("concat", "the output concat names no node"))
        for i, n in enumerate(self.concat):
            if n not in node_set:
                out.append(Problem(f"concat[{i}]", f"{n} is not a node of this cell; nodes are {fmt_ids(self.nodes)}"))
        dup = repeated(self.concat)
        if dup:
            out.append(Problem("concat", f"node(s) {fmt_ids(dup)} listed more than once"))
        if not out:
            from .graph import find_cycle  # networkx, imported lazily

            cycle = find_cycle(self)
            if cycle:
                out.append(Problem("edges", "the edges form a cycle: " + " -> ".join(str(n) for n in cycle)))
        return out

    # Convenience views ---------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def in_edges(self, node: int) -> list[tuple[int, Edge]]:
        """(edge index, edge) pairs that feed ``node``, in spec order."""
        return [(i, e) for i, e in enumerate(self.edges) if e.dst == node]

    def ops_used(self) -> set[str]:
        return {e.op for e in self.edges}

"""The search space as data: candidate ops, nodes, cells and sizes of a DARTS supernet.

A spec file kind (``"kind": "search_space"``) like genotypes and networks, so it lives in the
spec layer; the supernet built from it lives in :mod:`nasgal.search`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, StrictInt, model_validator
from ..errors import Problem
from .base import SpecModel, raise_problems
from .cell import NodeRef, ref_of_state, repeated, state_of_ref
from .genotype import FORMAT_VERSION
from .limits import MAX_CHANNELS, MAX_POSITIONS, MAX_SEARCH_NODES
from .network import default_reductions
from .ops import KNOWN_OPS
from .stem import SearchStemKind


class SearchSpace(SpecModel):
    """What a DARTS search chooses from, and the size of the supernet it trains."""

    schema_: str | None = Field(
        "../schemas/search_space.schema.json", alias="$schema", description="JSON Schema of this file, for editors."
    )
    kind: Literal["search_space"] = Field("search_space", description="File kind tag.")
    format_version: Literal[1] = Field(FORMAT_VERSION, description="Version of the spec format.")
    name: str = Field(description="Short name, e.g. 'darts'.")
    ops: list[str] = Field(
        description="Candidate ops of every edge, in the order of the alpha columns "
        "(DARTS: none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5)."
    )
    nodes: PositiveInt = Field(4, description="Intermediate nodes per cell; node i reads both cell inputs and nodes 0..i-1.")
    cells: PositiveInt = Field(8, description="Cell positions of the supernet.")
    channels: PositiveInt = Field(16, description="Initial cell channels C of the supernet (doubled at each reduction).")
    stem: SearchStemKind = Field(
        "cifar", description="'cifar': 3x3 conv at full resolution; 'stride2': halve the resolution first (large images)."
    )
    stem_multiplier: PositiveInt = Field(3, description="Stem output channels as a multiple of C.")
    reductions: list[StrictInt] | None = Field(
        None, description="Reduction positions (0-indexed); null: DARTS's rule, positions L//3 and 2L//3."
    )
    edges_per_node: PositiveInt = Field(
        2, description="Incoming edges each node keeps when the genotype is derived (DARTS: 2)."
    )
    description: str | None = Field(None, description="Free text.")

    @model_validator(mode="after")
    def _ops_and_positions_are_valid(self) -> "SearchSpace":
        raise_problems(self.problems())
        return self

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        if self.nodes > MAX_SEARCH_NODES:
            out.append(Problem("nodes", f"{self.nodes} nodes; a search-space cell has at most {MAX_SEARCH_NODES}"))
        if self.cells > MAX_POSITIONS:
            out.append(Problem("cells", f"{self.cells} cells; a supernet has at most {MAX_POSITIONS}"))
        if self.stem_multiplier * self.channels > MAX_CHANNELS:
            out.append(Problem(
                "channels", f"the stem gives {self.stem_multiplier} x {self.channels} channels; at most {MAX_CHANNELS}"
            ))
        elif self.reductions is None or all(0 <= r < self.cells for r in self.reductions):
            widest = self.channels * 2 ** len(set(self.reduction_positions()))
            if widest > MAX_CHANNELS:
                out.append(Problem(
                    "channels", f"{self.channels} channels doubled at each reduction reach {widest}; at most {MAX_CHANNELS}"
                ))
        if len(self.ops) > len(KNOWN_OPS) * 2:
            out.append(Problem("ops", f"{len(self.ops)} ops listed; there are {len(KNOWN_OPS)} known ops"))
            return out
        for i, op in enumerate(self.ops):
            if op not in KNOWN_OPS:
                out.append(Problem(f"ops[{i}]", f"unknown op '{op}'; known ops: {', '.join(KNOWN_OPS)}"))
        dup = repeated(self.ops)
        if dup:
            out.append(Problem("ops", f"{', '.join(dup)} listed more than once"))
        if not [op for op in self.ops if op != "none"]:
            out.append(Problem("ops", "a search space needs at least one op other than 'none'"))
        if self.reductions is not None:
            bad = [r for r in self.reductions if not 0 <= r < self.cells]
            if bad:
                out.append(Problem(
                    "reductions",
                    f"position(s) {', '.join(map(str, bad))} out of range for {self.cells} cells; "
                    f"positions are 0..{self.cells - 1} (0-indexed)",
                ))
            dupr = repeated(self.reductions)
            if dupr:
                out.append(Problem("reductions", f"position(s) {', '.join(map(str, dupr))} listed more than once"))
        return out

    # Derived views ----------------------------------------------------------------
    def reduction_positions(self) -> list[int]:
        return default_reductions(self.cells) if self.reductions is None else sorted(self.reductions)

    @property
    def num_edges(self) -> int:
        """Edges of one supernet cell: node i has 2 + i inputs (14 for 4 nodes)."""
        return sum(2 + i for i in range(self.nodes))

    def edges(self) -> list[tuple[str | int, int]]:
        """``(src, dst)`` of every supernet edge, in alpha-row order (node by node, inputs first)."""
        out: list[tuple[str | int, int]] = []
        for j in range(self.nodes):
            out.extend((ref_of_state(s), j) for s in range(2 + j))
        return out

    def node_rows(self) -> list[range]:
        """Per intermediate node, the alpha rows of its incoming edges (the groups that PC-DARTS's
        edge normalisation takes a softmax over): ``range(0, 2)``, ``range(2, 5)``, ..."""
        return [range(self.edge_row(0, j), self.edge_row(0, j) + 2 + j) for j in range(self.nodes)]

    def edge_row(self, src: int, dst: int) -> int:
        """Alpha row of the edge from source ``src`` (0, 1: cell inputs; 2 + i: node i) into node ``dst``."""
        if not 0 <= src < 2 + dst:
            raise ValueError(f"node {dst} has sources 0..{1 + dst}, not {src}")
        return sum(2 + i for i in range(dst)) + src

    def edge_row_of(self, src: NodeRef, dst: int) -> int:
        """Alpha row of the edge from node reference ``src`` (a cell input name or node id) into ``dst``."""
        return self.edge_row(state_of_ref(src), dst)

    def resized(self, **update) -> "SearchSpace":
        """A copy with some fields changed (``None`` values are ignored), validated."""
        from .io import validate_spec  # io imports this module

        data = self.model_dump(by_alias=True)
        data.update({k: v for k, v in update.items() if v is not None})
        return validate_spec(SearchSpace, data, source="search space")

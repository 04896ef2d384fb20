"""DARTS's derivation rule: softmaxed architecture weights -> a genotype spec. Pure Python.

Per node keep the ``edges_per_node`` incoming edges whose strongest non-'none' op weighs
most; each kept edge takes its strongest non-'none' op; the cell output concatenates all
intermediate nodes. Ties go to the earlier edge and the earlier op (the reference code's
stable sort and strict comparison). With PC-DARTS edge normalisation, an edge's strength
is multiplied by its normalised edge weight before ranking.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import NasgalError
from ..spec.cell import Cell, ref_of_state
from ..spec.genotype import Genotype, Provenance
from ..spec.io import validate_spec
from ..spec.space import SearchSpace

Matrix = Sequence[Sequence[float]]


def _check_shape(space: SearchSpace, weights: Matrix, what: str) -> None:
    rows, cols = len(weights), {len(r) for r in weights}
    if rows != space.num_edges or cols != {len(space.ops)}:
        raise NasgalError(
            f"{what}: expected {space.num_edges} rows (edges) of {len(space.ops)} op weights, "
            f"got {rows} rows of {sorted(cols)}"
        )


def derive_cell(space: SearchSpace, weights: Matrix, edge_weights: Sequence[float] | None = None) -> Cell:
    """The discrete cell of one cell type from its softmaxed weights ``[edges][ops]``."""
    _check_shape(space, weights, "weights")
    ops = list(space.ops)
    keep = [k for k, op in enumerate(ops) if op != "none"]
    edges: list[dict[str, Any]] = []
    for j in range(space.nodes):
        rows = [space.edge_row(s, j) for s in range(2 + j)]

        def strength(s: int) -> float:
            w = max(weights[rows[s]][k] for k in keep)
            return w * edge_weights[rows[s]] if edge_weights is not None else w

        chosen = sorted(range(2 + j), key=lambda s: -strength(s))[: space.edges_per_node]
        for s in chosen:
            row = weights[rows[s]]
            best = keep[0]
            for k in keep[1:]:
                if row[k] > row[best]:
                    best = k
            edges.append({"src": ref_of_state(s), "dst": j, "op": ops[best]})
    return validate_spec(
        Cell,
        {"nodes": list(range(space.nodes)), "edges": edges, "concat": list(range(space.nodes))},
        source="derived cell",
    )


def derive_genotype(
    space: SearchSpace,
    normal: Matrix,
    reduce: Matrix,
    *,
    name: str = "searched",
    normal_edges: Sequence[float] | None = None,
    reduce_edges: Sequence[float] | None = None,
    search: dict[str, Any] | None = None,
    notes: str | None = None,
) -> Genotype:
    """A genotype spec from softmaxed α of both cell types (``[edges][ops]`` lists).

    ``normal_edges``/``reduce_edges``: PC-DARTS normalised edge weights per edge row.
    ``search``: run facts stored in the provenance.
    """
    cells = {"normal": derive_cell(space, normal, normal_edges)}
    if space.reduction_positions():
        cells["reduction"] = derive_cell(space, reduce, reduce_edges)
    prov = Provenance(
        source="nasgal search",
        paper="Liu et al., DARTS: Differentiable Architecture Search, ICLR 2019",
        search=search,
        notes=notes,
    )
    return Genotype(name=name, cells=cells, provenance=prov)


def softmax_rows(matrix: Matrix) -> list[list[float]]:
    """Row-wise softmax of a list-of-lists (for α stored as plain numbers)."""
    import math

    out = []
    for row in matrix:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        s = sum(e)
        out.append([v / s for v in e])
    return out


def edge_normalisation(space: SearchSpace, beta: Sequence[float]) -> list[float]:
    """PC-DARTS edge weights: per node, a softmax of β over its incoming edges."""
    out: list[float] = []
    for rows in space.node_rows():
        out.extend(softmax_rows([[beta[r] for r in rows]])[0])
    return out


def summary(genotype: Genotype) -> str:
    """One line per cell type, e.g. ``normal: 0<-c_{k-1}:sep_conv_3x3 ...``."""
    parts = []
    for name, cell in genotype.cells.items():
        parts.append(f"{name}: " + " ".join(f"{e.dst}<-{e.src}:{e.op}" for e in cell.edges))
    return " | ".join(parts)

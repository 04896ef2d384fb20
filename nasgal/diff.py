"""A structural diff of two specs: what pruning (or an edit) changed, cell by cell.

Two networks are compared position by position, on the structure that is actually built
(live nodes, built edges, live concat; see :func:`nasgal.spec.plan_network`), with the
parameters and MACs of each position before and after. Anything else (two genotypes, a
genotype and a network) is compared cell by cell, by cell name, on the cells as defined.
A cell that is the same graph up to the numbering of its nodes is reported as such, with
the renumbering. Imports no torch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Union

from .spec.cell import INPUTS, Cell, Edge, NodeRef
from .spec.costs import network_cost
from .spec.genotype import Genotype
from .spec.graph import renumbering
from .spec.network import Network
from .spec.plan import plan_network

Spec = Union[Genotype, Network]


@dataclass(frozen=True)
class EdgeRef:
    """One edge: ``src`` (a node id or a cell input) into node ``dst`` through ``op``."""

    src: NodeRef
    dst: int
    op: str

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} ({self.op})"


@dataclass(frozen=True)
class OpChange:
    """The edge ``src -> dst`` kept its place but changed op."""

    src: NodeRef
    dst: int
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}: {self.before} => {self.after}"


@dataclass(frozen=True)
class FieldChange:
    """A spec field outside the cells that differs (``path`` in dotted form)."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class CellView:
    """The structure compared: nodes, edges and concat (the built part, for a network)."""

    nodes: tuple[int, ...]
    edges: tuple[EdgeRef, ...]
    concat: tuple[int, ...]
    all_nodes: tuple[int, ...] = ()  # every node of the cell definition
    kept: tuple[int, ...] | None = None  # the position's kept nodes (None: all)
    dead_inputs: tuple[str, ...] = ()  # cell inputs that carry no signal (read a dead position)

    @property
    def dead(self) -> bool:
        return not self.concat

    def as_cell(self) -> Cell:
        """The view as a cell (unvalidated: a dead view has no node)."""
        return Cell.model_construct(
            nodes=list(self.nodes),
            edges=[Edge.model_construct(src=e.src, dst=e.dst, op=e.op) for e in self.edges],
            concat=list(self.concat),
        )


@dataclass(frozen=True)
class CellDiff:
    """The differences of one cell (genotypes) or one position (networks)."""

    key: str  # cell name, or "pos<i>" for a network position
    position: int | None
    cell_a: str | None  # cell name on each side; None: absent on that side
    cell_b: str | None
    reduction_a: bool | None = None
    reduction_b: bool | None = None
    nodes_a: tuple[int, ...] = ()  # live nodes (all nodes, for a cell compared as defined)
    nodes_b: tuple[int, ...] = ()
    edges_a: int = 0
    edges_b: int = 0
    nodes_removed: tuple[int, ...] = ()
    nodes_added: tuple[int, ...] = ()
    why_removed: dict[int, str] = field(default_factory=dict)  # node -> pruned | dead | absent
    edges_removed: tuple[EdgeRef, ...] = ()
    edges_added: tuple[EdgeRef, ...] = ()
    ops_changed: tuple[OpChange, ...] = ()
    concat_a: tuple[int, ...] = ()
    concat_b: tuple[int, ...] = ()
    concat_removed: tuple[int, ...] = ()
    concat_added: tuple[int, ...] = ()
    dead_a: bool = False
    dead_b: bool = False
    dead_inputs_a: tuple[str, ...] = ()  # inputs reading a dead position
    dead_inputs_b: tuple[str, ...] = ()
    same_graph: bool | None = None  # both sides present and live: isomorphic up to numbering
    renumbering: dict[int, int] | None = None  # A node -> B node, when only the numbering differs
    kept_changed: bool = False
    mask_changed: bool = False
    params_a: int | None = None
    params_b: int | None = None
    macs_a: int | None = None
    macs_b: int | None = None

    @property
    def structure_changed(self) -> bool:
        return bool(
            self.nodes_removed or self.nodes_added or self.edges_removed or self.edges_added
            or self.ops_changed or self.concat_a != self.concat_b
        )

    @property
    def identical(self) -> bool:
        return (
            self.cell_a is not None and self.cell_b is not None and self.cell_a == self.cell_b
            and self.reduction_a == self.reduction_b and not self.structure_changed
            and not self.kept_changed and not self.mask_changed
        )

    @property
    def status(self) -> str:
        """One word: same, added, removed, died, revived, renumbered, changed."""
        if self.cell_a is None:
            return "added"
        if self.cell_b is None:
            return "removed"
        if self.identical:
            return "same"
        if self.dead_b and not self.dead_a:
            return "died"
        if self.dead_a and not self.dead_b:
            return "revived"
        if self.renumbering is not None:
            return "renumbered"
        return "changed"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("edges_removed", "edges_added", "ops_changed"):
            d[k] = [dict(x) for x in d[k]]
        d["why_removed"] = {str(k): v for k, v in self.why_removed.items()}
        if self.renumbering is not None:
            d["renumbering"] = {str(k): v for k, v in self.renumbering.items()}
        d["status"] = self.status
        d["identical"] = self.identical
        return d


@dataclass(frozen=True)
class DiffResult:
    """Everything :func:`diff_specs` found; ``same_architecture`` decides the exit code of ``diff``."""

    name_a: str
    name_b: str
    kind_a: str
    kind_b: str
    cells: list[CellDiff]
    fields: list[FieldChange]
    params_a: int | None = None
    params_b: int | None = None
    macs_a: int | None = None
    macs_b: int | None = None

    @property
    def by_position(self) -> bool:
        return self.kind_a == self.kind_b == "network"

    @property
    def identical(self) -> bool:
        return not self.fields and all(c.identical for c in self.cells)

    @property
    def same_architecture(self) -> bool:
        """Identical, or cells that differ only in how their nodes are numbered (same graph)."""
        return not self.fields and all(c.identical or c.status == "renumbered" for c in self.cells)

    @property
    def live_nodes_a(self) -> int:
        return sum(len(c.nodes_a) for c in self.cells)

    @property
    def live_nodes_b(self) -> int:
        return sum(len(c.nodes_b) for c in self.cells)

    @property
    def pruning_rate(self) -> float | None:
        """Fraction of parameters removed from A to B (negative when B is larger)."""
        if not self.params_a or self.params_b is None:
            return None
        return 1.0 - self.params_b / self.params_a

    @property
    def macs_rate(self) -> float | None:
        if not self.macs_a or self.macs_b is None:
            return None
        return 1.0 - self.macs_b / self.macs_a

    @property
    def node_rate(self) -> float | None:
        """Fraction of live intermediate nodes removed from A to B."""
        if not self.live_nodes_a:
            return None
        return 1.0 - self.live_nodes_b / self.live_nodes_a

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"name": self.name_a, "kind": self.kind_a, "params": self.params_a, "macs": self.macs_a,
                  "live_nodes": self.live_nodes_a},
            "b": {"name": self.name_b, "kind": self.kind_b, "params": self.params_b, "macs": self.macs_b,
                  "live_nodes": self.live_nodes_b},
            "identical": self.identical,
            "compared": "positions" if self.by_position else "cells",
            "pruning_rate": self.pruning_rate,
            "macs_rate": self.macs_rate,
            "node_rate": self.node_rate,
            "fields": [asdict(f) for f in self.fields],
            "cells": [c.to_dict() for c in self.cells],
        }


# Views ---------------------------------------------------------------------------------
def cell_view(cell: Cell) -> CellView:
    """A cell as defined."""
    edges = tuple(EdgeRef(e.src, e.dst, e.op) for e in cell.edges)
    return CellView(tuple(cell.nodes), edges, tuple(cell.concat), tuple(cell.nodes))


def position_views(net: Network) -> list[CellView]:
    """What each position of ``net`` builds under its kept-node mask."""
    plan = plan_network(net)
    out = []
    for cp, pos in zip(plan.cells, net.positions):
        edges = tuple(EdgeRef(e.src, e.dst, e.op) for e in cp.edges)
        kept = None if pos.kept is None else tuple(pos.kept)
        dead_in = tuple(name for name, ch in zip(INPUTS, cp.c_in) if ch == 0)
        out.append(CellView(cp.live, edges, cp.concat, tuple(net.cell_at(cp.position).nodes), kept, dead_in))
    return out


# Comparison ----------------------------------------------------------------------------
def _edge_changes(a: CellView, b: CellView) -> tuple[list[EdgeRef], list[EdgeRef], list[OpChange]]:
    def by_pair(v: CellView) -> dict[tuple[str, int], Counter]:
        out: dict[tuple[str, int], Counter] = {}
        for e in v.edges:
            out.setdefault((str(e.src), e.dst), Counter())[e.op] += 1
        return out

    src_of = {(str(e.src), e.dst): e.src for e in a.edges + b.edges}
    pa, pb = by_pair(a), by_pair(b)
    removed: list[EdgeRef] = []
    added: list[EdgeRef] = []
    changed: list[OpChange] = []
    order = list(dict.fromkeys([(str(e.src), e.dst) for e in a.edges + b.edges]))
    for key in order:
        ca, cb = pa.get(key, Counter()), pb.get(key, Counter())
        gone = sorted((ca - cb).elements())
        new = sorted((cb - ca).elements())
        src, dst = src_of[key], key[1]
        for before, after in zip(gone, new):
            changed.append(OpChange(src, dst, before, after))
        n = min(len(gone), len(new))
        removed += [EdgeRef(src, dst, op) for op in gone[n:]]
        added += [EdgeRef(src, dst, op) for op in new[n:]]
    return removed, added, changed


def _renumbering(a: CellView, b: CellView) -> dict[int, int] | None:
    """A node mapping A -> B that makes the views equal, or None when none exists."""
    if a.dead or b.dead:
        return None
    return renumbering(a.as_cell(), b.as_cell())


def _why_removed(n: int, b: CellView | None) -> str:
    if b is None or n not in b.all_nodes:
        return "absent"
    if b.kept is not None and n not in b.kept:
        return "pruned"
    return "dead"


def diff_cell(
    key: str,
    a: CellView | None,
    b: CellView | None,
    *,
    position: int | None = None,
    cell_a: str | None = None,
    cell_b: str | None = None,
    **extra: Any,
) -> CellDiff:
    """Compare two views (either may be absent)."""
    empty = CellView((), (), ())
    va, vb = a or empty, b or empty
    removed, added, changed = _edge_changes(va, vb)
    nodes_removed = tuple(n for n in va.nodes if n not in set(vb.nodes))
    nodes_added = tuple(n for n in vb.nodes if n not in set(va.nodes))
    exact = not (nodes_removed or nodes_added or removed or added or changed) and va.concat == vb.concat
    renum = None
    same = None
    if a is not None and b is not None and not va.dead and not vb.dead:
        if exact:
            same = True
        else:
            renum = _renumbering(va, vb)
            same = renum is not None
    return CellDiff(
        key=key,
        position=position,
        cell_a=cell_a if a is not None else None,
        cell_b=cell_b if b is not None else None,
        nodes_a=va.nodes,
        nodes_b=vb.nodes,
        edges_a=len(va.edges),
        edges_b=len(vb.edges),
        nodes_removed=nodes_removed,
        nodes_added=nodes_added,
        why_removed={n: _why_removed(n, b) for n in nodes_removed},
        edges_removed=tuple(removed),
        edges_added=tuple(added),
        ops_changed=tuple(changed),
        concat_a=va.concat,
        concat_b=vb.concat,
        concat_removed=tuple(n for n in va.concat if n not in vb.concat),
        concat_added=tuple(n for n in vb.concat if n not in va.concat),
        dead_a=a is not None and va.dead,
        dead_b=b is not None and vb.dead,
        dead_inputs_a=va.dead_inputs,
        dead_inputs_b=vb.dead_inputs,
        same_graph=same,
        renumbering=renum,
        kept_changed=a is not None and b is not None and va.kept != vb.kept,
        **extra,
    )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def _field_changes(a: Spec, b: Spec) -> list[FieldChange]:
    if type(a) is not type(b):
        out = [FieldChange("kind", a.kind, b.kind)]
        if a.name != b.name:
            out.append(FieldChange("name", a.name, b.name))
        return out
    skip = {"$schema", "cells", "positions"}
    da = {k: v for k, v in a.model_dump(mode="json", by_alias=True).items() if k not in skip}
    db = {k: v for k, v in b.model_dump(mode="json", by_alias=True).items() if k not in skip}
    fa, fb = _flatten(da), _flatten(db)
    out = [FieldChange(p, fa.get(p), fb.get(p)) for p in dict.fromkeys([*fa, *fb]) if fa.get(p) != fb.get(p)]
    if isinstance(a, Network):
        # cell definitions: the positions show what is built; say which definitions differ
        for name in dict.fromkeys([*a.cells, *b.cells]):
            ca, cb = a.cells.get(name), b.cells.get(name)
            if ca != cb:
                out.append(FieldChange(
                    f"cells.{name}",
                    None if ca is None else ca.model_dump(mode="json"),
                    None if cb is None else cb.model_dump(mode="json"),
                ))
    return out


def _cells_of(spec: Spec) -> dict[str, Cell]:
    return dict(spec.cells)


def diff_specs(a: Spec, b: Spec) -> DiffResult:
    """Compare two specs: networks position by position, anything else cell by cell."""
    from .errors import NasgalError

    for spec in (a, b):
        if not isinstance(spec, (Genotype, Network)):
            raise NasgalError(
                f"diff compares genotypes and networks, not a {getattr(spec, 'kind', type(spec).__name__)} file",
                hint="give two genotype or network files (or library genotype names)",
            )
    fields = _field_changes(a, b)
    if isinstance(a, Network) and isinstance(b, Network):
        va, vb = position_views(a), position_views(b)
        ca, cb = network_cost(a), network_cost(b)
        diffs = []
        for p in range(max(len(va), len(vb))):
            pa = a.positions[p] if p < len(va) else None
            pb = b.positions[p] if p < len(vb) else None
            diffs.append(diff_cell(
                f"pos{p}",
                va[p] if pa else None,
                vb[p] if pb else None,
                position=p,
                cell_a=pa.cell if pa else None,
                cell_b=pb.cell if pb else None,
                reduction_a=pa.reduction if pa else None,
                reduction_b=pb.reduction if pb else None,
                mask_changed=bool(pa and pb and pa.mask != pb.mask),
                params_a=ca.cells[p].params if pa else None,
                params_b=cb.cells[p].params if pb else None,
                macs_a=ca.cells[p].macs if pa else None,
                macs_b=cb.cells[p].macs if pb else None,
            ))
        return DiffResult(a.name, b.name, a.kind, b.kind, diffs, fields, ca.params, cb.params, ca.macs, cb.macs)
    cells_a, cells_b = _cells_of(a), _cells_of(b)
    diffs = []
    for name in dict.fromkeys([*cells_a, *cells_b]):
        xa, xb = cells_a.get(name), cells_b.get(name)
        diffs.append(diff_cell(
            name,
            cell_view(xa) if xa is not None else None,
            cell_view(xb) if xb is not None else None,
            cell_a=name,
            cell_b=name,
        ))
    return DiffResult(a.name, b.name, a.kind, b.kind, diffs, fields)


__all__ = [
    "CellDiff",
    "CellView",
    "DiffResult",
    "EdgeRef",
    "FieldChange",
    "OpChange",
    "cell_view",
    "diff_cell",
    "diff_specs",
    "position_views",
]

"""Which figures a spec yields, each with a short key used in file names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import graphviz

from ..errors import NasgalError
from ..spec.genotype import Genotype
from ..spec.network import Network
from ..spec.plan import plan_network
from .cell import render_cell
from .network import render_network, render_position


@dataclass(frozen=True)
class Figure:
    """One figure: ``key`` names it in file names (``normal``, ``pos3``, ``network``)."""

    key: str
    graph: graphviz.Digraph


def _cell_title(spec_name: str, cell_name: str) -> str:
    from html import escape

    return f"<b>{escape(spec_name)}: {escape(cell_name)} cell</b>"


def figures(
    spec: Any,
    *,
    cells: list[str] | None = None,
    network: bool = False,
    hide_pruned: bool = False,
) -> list[Figure]:
    """The figures of a genotype or network spec.

    ``cells`` selects cells: a cell name (``normal``, ``reduction``) draws that cell as
    defined, a position number (networks only) draws that position under its kept-node
    mask. ``network`` selects the stacking figure. With neither, a genotype gives every
    cell and a network gives the stacking figure followed by every position.
    """
    if isinstance(spec, Genotype):
        if network:
            raise NasgalError(
                f"'{spec.name}' is a genotype, which has no stacking to draw",
                hint="stack it into a network first (nasgal stack), or leave out --network",
            )
        names = cells if cells else list(spec.cells)
        out = []
        for name in names:
            if name not in spec.cells:
                raise NasgalError(
                    f"genotype '{spec.name}' has no cell '{name}'",
                    hint=f"its cells are: {', '.join(spec.cells)}",
                )
            out.append(Figure(name, render_cell(spec.cells[name], title=_cell_title(spec.name, name), name=name)))
        return out
    if isinstance(spec, Network):
        plan = plan_network(spec)
        out = []
        if network or not cells:
            out.append(Figure("network", render_network(spec, plan=plan)))
        if not cells and not network:
            cells = [str(p) for p in range(spec.num_positions)]
        for sel in cells or []:
            if sel in spec.cells:
                out.append(
                    Figure(sel, render_cell(spec.cells[sel], title=_cell_title(spec.name, sel), name=sel))
                )
                continue
            try:
                p = int(sel.removeprefix("pos"))
            except ValueError:
                raise NasgalError(
                    f"network '{spec.name}' has no cell or position '{sel}'",
                    hint=f"use a position 0..{spec.num_positions - 1} or a cell name: {', '.join(spec.cells)}",
                ) from None
            out.append(Figure(f"pos{p}", render_position(spec, p, hide_pruned=hide_pruned, plan=plan)))
        return out
    raise NasgalError(f"cannot render a {type(spec).__name__}; render reads genotype and network specs")

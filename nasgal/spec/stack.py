"""Stacking: a genotype plus sizes becomes a network spec."""

from __future__ import annotations

from typing import Iterable

from ..errors import SpecError
from .genotype import Genotype
from .io import validate_spec
from .network import Network, default_reductions
from .stem import StemKind


__all__ = ["StemKind", "default_reductions", "stack"]


def stack(
    genotype: Genotype,
    *,
    cells: int,
    channels: int,
    classes: int,
    in_channels: int,
    input_size: int | tuple[int, int],
    reductions: Iterable[int] | None = None,
    stem: StemKind = "cifar",
    auxiliary: bool | int = False,
    drop_path: float = 0.0,
    name: str | None = None,
) -> Network:
    """Stack ``genotype``'s normal and reduction cells into a network spec.

    ``reductions`` are 0-indexed positions (default :func:`default_reductions`);
    ``auxiliary`` is ``True`` for a head after the second reduction position (the last one
    if there is only one), or an explicit position.
    """
    problems: list[tuple[str, str]] = []
    if cells < 1:
        problems.append(("cells", f"need at least 1 cell, got {cells}"))
    red = default_reductions(cells) if reductions is None else sorted(set(int(r) for r in reductions))
    bad = [r for r in red if not 0 <= r < cells]
    if bad:
        problems.append(
            ("reductions", f"position(s) {', '.join(map(str, bad))} out of range for {cells} cells; "
             f"positions are 0..{cells - 1} (0-indexed)")
        )
    need = {"normal"} if len(red) < cells else set()
    if red:
        need.add("reduction")
    missing = sorted(need - set(genotype.cells))
    if missing:
        problems.append(
            ("cells", f"genotype '{genotype.name}' has no cell named {', '.join(missing)}; "
             f"it has {', '.join(sorted(genotype.cells))}")
        )
    aux_pos: int | None = None
    if auxiliary is True:
        if not red:
            problems.append(("auxiliary", "the default auxiliary position follows a reduction; there is none"))
        else:
            aux_pos = red[1] if len(red) > 1 else red[-1]
    elif auxiliary is not False and auxiliary is not None:
        aux_pos = int(auxiliary)
    if problems:
        raise SpecError(problems, source="stack")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    used = sorted(need)
    data = {
        "name": name or f"{genotype.name}-{cells}c-C{channels}",
        "input": {"channels": in_channels, "size": list(size)},
        "classes": classes,
        "channels": channels,
        "stem": {"kind": stem},
        "cells": {k: genotype.cells[k].model_dump() for k in used},
        "positions": [
            {"cell": "reduction" if i in red else "normal", "reduction": i in red} for i in range(cells)
        ],
        "auxiliary": None if aux_pos is None else {"position": aux_pos},
        "drop_path": drop_path,
        "genotype": genotype.name,
        "provenance": genotype.provenance.model_dump(),
    }
    return validate_spec(Network, data, source="stack")

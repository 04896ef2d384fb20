"""A heat map of softmaxed α per edge (rows) and op (columns), drawn with Pillow only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont


def _colour(v: float) -> tuple[int, int, int]:
    """White (0) through yellow and orange to dark red (1)."""
    v = min(max(v, 0.0), 1.0)
    stops = [(0.0, (255, 255, 255)), (0.35, (253, 219, 99)), (0.65, (240, 110, 40)), (1.0, (140, 20, 20))]
    for (a, ca), (b, cb) in zip(stops, stops[1:]):
        if v <= b:
            t = (v - a) / (b - a)
            return tuple(round(x + t * (y - x)) for x, y in zip(ca, cb))  # type: ignore[return-value]
    return stops[-1][1]


def write_heatmap(
    path: str | os.PathLike,
    weights: Sequence[Sequence[float]],
    ops: Sequence[str],
    edges: Sequence[str],
    title: str = "",
    kept: set[tuple[int, int]] | None = None,
) -> Path:
    """Save a PNG: one row per edge, one column per op, each cell shaded by its weight and
    labelled with it; ``kept`` (row, column) pairs (the derived genotype) are outlined."""
    font = ImageFont.load_default()
    cell_w, cell_h = 64, 20
    label_w = max(8 + 7 * len(e) for e in edges) if edges else 40
    head_h = 30 + 7 * max(len(o) for o in ops)
    width = label_w + cell_w * len(ops) + 10
    height = head_h + cell_h * len(edges) + 10
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    draw.text((6, 4), title, fill="black", font=font)
    # Column labels, drawn rotated.
    for j, op in enumerate(ops):
        txt = Image.new("RGB", (7 * len(op) + 6, 14), "white")
        ImageDraw.Draw(txt).text((2, 1), op, fill="black", font=font)
        rot = txt.rotate(90, expand=True)
        img.paste(rot, (label_w + j * cell_w + cell_w // 2 - 7, head_h - rot.size[1] - 4))
    for i, (edge, row) in enumerate(zip(edges, weights)):
        y = head_h + i * cell_h
        draw.text((6, y + 4), edge, fill="black", font=font)
        for j, v in enumerate(row):
            x = label_w + j * cell_w
            draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], fill=_colour(float(v)), outline=(220, 220, 220))
            draw.text((x + 12, y + 4), f"{float(v):.3f}", fill="black" if v < 0.6 else "white", font=font)
            if kept and (i, j) in kept:
                draw.rectangle([x, y, x + cell_w - 1, y + cell_h - 1], outline=(0, 90, 200), width=2)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, p)
    return p

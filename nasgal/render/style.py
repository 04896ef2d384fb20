"""Colours and fonts of the renders, as data: one place to restyle every figure.

Nodes follow the DARTS paper's figures (green inputs, blue intermediate nodes, a
yellow output, Times); edges are coloured by op family with a colour-blind-safe palette
(Okabe-Ito), so the same op reads the same in every figure.
"""

from __future__ import annotations

FONT = "Times"

#: Colour per op family (edge, and its label).
FAMILY_COLORS: dict[str, str] = {
    "sep_conv": "#0072B2",  # blue
    "dil_conv": "#CC79A7",  # reddish purple
    "pool": "#E69F00",  # orange
    "skip": "#404040",  # near black
    "conv": "#009E73",  # bluish green
    "none": "#999999",
    "other": "#000000",
}

INPUT_FILL = "darkseagreen2"
NODE_FILL = "lightblue"
OUTPUT_FILL = "palegoldenrod"
REDUCTION_FILL = "#f6c9b9"  # network figure: reduction positions
STEM_FILL = "#e0e0e0"

#: A pruned or dead node or edge: faded and dashed.
FADED_FILL = "#f4f4f4"
FADED_LINE = "#bbbbbb"
FADED_TEXT = "#9a9a9a"
CONCAT_LINE = "#7f7f7f"


def op_family(op: str) -> str:
    """The family of an op name: sep_conv, dil_conv, pool, skip, conv, none or other."""
    if op.startswith("sep_conv"):
        return "sep_conv"
    if op.startswith("dil_conv"):
        return "dil_conv"
    if op.endswith("pool_3x3") or "pool" in op:
        return "pool"
    if op == "skip_connect":
        return "skip"
    if op.startswith("conv"):
        return "conv"
    if op == "none":
        return "none"
    return "other"


def op_color(op: str) -> str:
    return FAMILY_COLORS[op_family(op)]

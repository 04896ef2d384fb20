"""Renders: pure functions from a spec to a ``graphviz.Digraph``, and writing them to files.

Imports no torch. Only writing SVG, PNG or PDF needs the Graphviz ``dot`` program; DOT
text never does.
"""

from .cell import format_mask, node_states, render_cell
from .figures import Figure, figures
from .network import position_title, render_network, render_position
from .output import FORMATS, dot_available, figure_paths, format_of, graph_bytes, write_graph
from .style import FAMILY_COLORS, op_color, op_family

__all__ = [
    "FAMILY_COLORS",
    "FORMATS",
    "Figure",
    "dot_available",
    "figure_paths",
    "figures",
    "format_mask",
    "format_of",
    "graph_bytes",
    "node_states",
    "op_color",
    "op_family",
    "position_title",
    "render_cell",
    "render_network",
    "render_position",
    "write_graph",
]

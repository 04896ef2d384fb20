"""Upper bounds on spec files, so that reading, validating, costing and compiling one is
bounded work. Far above any published cell architecture; documented in docs/spec.md.
"""

from __future__ import annotations

from typing import Final

#: Largest spec file read (bytes).
MAX_FILE_BYTES: Final = 8 * 1024 * 1024
#: Deepest nesting of JSON arrays and objects in a spec file.
MAX_DEPTH: Final = 32
#: Most intermediate nodes of one cell.
MAX_NODES: Final = 64
#: Most edges of one cell.
MAX_EDGES: Final = 1024
#: Most cells (by name) of a genotype or network.
MAX_CELLS: Final = 64
#: Most cell positions of a network or search space.
MAX_POSITIONS: Final = 256
#: Most channels at any point of a network (stem, cells, classifier input) and most image channels.
MAX_CHANNELS: Final = 16384
#: Largest image side (pixels).
MAX_IMAGE_SIDE: Final = 16384
#: Most classes.
MAX_CLASSES: Final = 1_000_000
#: Most parameters of a network (what compiling it allocates, at 4 bytes each).
MAX_PARAMS: Final = 200_000_000
#: Most intermediate nodes of a search-space cell (its supernet has n(n+3)/2 edges per cell).
MAX_SEARCH_NODES: Final = 16

#: Largest DARTS ``Genotype(...)`` text or Python file ``nasgal import`` reads (characters).
MAX_DARTS_TEXT: Final = 1024 * 1024
#: Most ``Genotype(...)`` calls plus ``NAME = OTHER`` aliases ``nasgal import`` follows in one text.
MAX_DARTS_NAMES: Final = 1000

__all__ = [name for name in dir() if name.startswith("MAX_")]

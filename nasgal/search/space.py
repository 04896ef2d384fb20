"""The packaged default search space, and loading search-space files.

The model itself, :class:`~nasgal.spec.space.SearchSpace`, is spec data and lives in the spec
layer. The DARTS space ships as the default (``nasgal/search/spaces/darts.json``, identical to
``spaces/darts.json`` in the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..spec.io import load
from ..spec.space import SearchSpace

#: The packaged default search space (DARTS).
DEFAULT_SPACE_PATH = Path(__file__).parent / "spaces" / "darts.json"

__all__ = ["DEFAULT_SPACE_PATH", "SearchSpace", "default_space", "load_space"]


def default_space() -> SearchSpace:
    """The DARTS search space (8 ops, 4 nodes, 8 cells, C=16)."""
    return load(DEFAULT_SPACE_PATH, SearchSpace)


def load_space(path: str | os.PathLike | None = None) -> SearchSpace:
    """A search space file, or the default DARTS space when ``path`` is None."""
    return default_space() if path is None else load(path, SearchSpace)

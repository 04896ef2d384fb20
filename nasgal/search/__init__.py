"""DARTS search: the search space as data, the supernet, the bilevel loop, the derivation rule.

The search-space model itself is spec data (:mod:`nasgal.spec.space`, re-exported here).
``nasgal.search.space`` and ``nasgal.search.derive`` need no torch; the rest is imported on
first use, so ``import nasgal.search`` stays light.
"""

from __future__ import annotations

from ..lazy import lazy_exports
from .derive import derive_cell, derive_genotype, edge_normalisation, softmax_rows, summary
from .space import DEFAULT_SPACE_PATH, SearchSpace, default_space, load_space

_LAZY = {
    "Supernet": "supernet",
    "Architecture": "supernet",
    "SearchConfig": "config",
    "search_config": "config",
    "SearchStage": "run",
    "search": "run",
    "first_order": "architect",
    "second_order": "architect",
    "write_heatmap": "heatmap",
    "SearchStep": "step",
    "make_optimizers": "step",
    "KeepOutputBatchNorm2d": "bn",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DEFAULT_SPACE_PATH",
    "SearchSpace",
    "default_space",
    "derive_cell",
    "derive_genotype",
    "edge_normalisation",
    "load_space",
    "softmax_rows",
    "summary",
    *_LAZY,
]

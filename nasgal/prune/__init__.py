"""GAL pruning (DARTS-GAL): learn sparse node masks against a frozen teacher, emit a pruned spec.

The settings (:mod:`~nasgal.prune.config`) need no torch; the rest is imported on first use, so
the command line starts fast.
"""

from __future__ import annotations

from ..lazy import lazy_exports
from .config import PruneConfig, resolve_prune_config

_LAZY = {
    "Selection": "budget",
    "candidates": "budget",
    "rank_nodes": "budget",
    "select_nodes": "budget",
    "Critic": "critic",
    "MaskFista": "fista",
    "PruneStage": "gal",
    "load_teacher": "gal",
    "prune": "gal",
    "weights_fingerprint": "gal",
    "inherit_weights": "..engine.inherit",
    "GALStep": "step",
}


__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = ["PruneConfig", "resolve_prune_config", *_LAZY]

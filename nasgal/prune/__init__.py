"""GAL pruning (DARTS-GAL): learn sparse node masks against a frozen teacher, emit a pruned spec.

The settings (:mod:`~nasgal.prune.config`) need no torch; the rest is imported on first use, so
the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        return getattr(importlib.import_module(where if where.startswith(".") else f".{where}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PruneConfig", "resolve_prune_config", *_LAZY]

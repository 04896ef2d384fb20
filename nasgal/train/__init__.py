"""Training network specs on real datasets (recipes, resumable run directories, fast steps).

The runtime they share with search and pruning (run directories, the epoch loop, optimizers,
capture, precision, data splits) lives in :mod:`nasgal.engine`. The settings
(:mod:`~nasgal.train.config`) need no torch; the rest is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import RECIPES, TrainConfig, resolve_config

_LAZY = {
    "TrainStage": "runner",
    "load_weights": "..engine.weights",
    "lr_at": "runner",
    "prepare_data": "runner",
    "train": "runner",
    "TrainStep": "step",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        where = _LAZY[name]
        return getattr(importlib.import_module(where if where.startswith(".") else f".{where}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RECIPES", "TrainConfig", "resolve_config", *_LAZY]

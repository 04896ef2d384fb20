"""Training network specs on real datasets (recipes, resumable run directories, fast steps).

The runtime they share with search and pruning (run directories, the epoch loop, optimizers,
capture, precision, data splits) lives in :mod:`nasgal.engine`. The settings
(:mod:`~nasgal.train.config`) need no torch; the rest is imported on first use.
"""

from __future__ import annotations

from ..lazy import lazy_exports
from .config import RECIPES, TrainConfig, resolve_config

_LAZY = {
    "TrainStage": "runner",
    "load_weights": "..engine.weights",
    "lr_at": "runner",
    "prepare_data": "runner",
    "train": "runner",
    "TrainStep": "step",
}


__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = ["RECIPES", "TrainConfig", "resolve_config", *_LAZY]

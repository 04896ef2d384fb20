"""Training network specs on real datasets (recipes, resumable run directories, fast steps)."""

from .config import RECIPES, TrainConfig, resolve_config
from .runner import DataSplits, load_weights, lr_at, prepare_data, train
from .step import TrainStep, evaluate, make_optimizer, set_lr

__all__ = [
    "RECIPES",
    "DataSplits",
    "TrainConfig",
    "TrainStep",
    "evaluate",
    "load_weights",
    "lr_at",
    "make_optimizer",
    "prepare_data",
    "resolve_config",
    "set_lr",
    "train",
]

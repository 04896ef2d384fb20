"""Training network specs on real datasets (recipes, resumable run directories, fast steps)."""

from .config import RECIPES, TrainConfig, resolve_config
from .runner import DataSplits, load_weights, lr_at, prepare_data, train
from .optim import DeviceAdam, DeviceSGD
from .step import CAPTURE_MODES, CapturedStep, StateSnapshot, TrainStep, evaluate, make_optimizer, set_lr

__all__ = [
    "CAPTURE_MODES",
    "RECIPES",
    "CapturedStep",
    "DeviceAdam",
    "DeviceSGD",
    "StateSnapshot",
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

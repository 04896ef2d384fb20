"""Datasets in their real file formats, and a loader that keeps them on the device.

>>> ds = load_dataset("fashion_mnist", split="train")          # doctest: +SKIP
>>> train, val = ds.split_validation(0.1, seed=0)              # doctest: +SKIP
>>> loader = DeviceLoader(train, batch_size=128, device="cuda") # doctest: +SKIP

The errors, the dataset info and the voice settings need no torch; the rest is imported on
first use, so that the command line (which reads the settings models) starts without torch.
"""

from ..lazy import lazy_exports
from .errors import DataError
from .info import DatasetInfo
from .voice_config import VoiceSettings

_LAZY = {
    "DATASETS": "sources",
    "DatasetSource": "sources",
    "default_augment": "sources",
    "resolve_name": "sources",
    "ENV_DATA_CACHE": "image_cache",
    "ENV_DATA_MEMORY": "image_cache",
    "ENV_DATA_DIR": "locate",
    "ENV_NO_DOWNLOAD": "locate",
    "Augment": "augment",
    "check_compatible": "compat",
    "Dataset": "dataset",
    "load_dataset": "dataset",
    "DeviceLoader": "loader",
    "PreparedVoice": "voice",
    "load_voice": "voice",
    "prepare_voice": "voice",
}

__getattr__ = lazy_exports(__name__, _LAZY)

__all__ = ["DataError", "DatasetInfo", "VoiceSettings", *_LAZY]

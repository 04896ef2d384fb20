"""Datasets in their real file formats, and a loader that keeps them on the device.

>>> ds = load_dataset("fashion_mnist", split="train")          # doctest: +SKIP
>>> train, val = ds.split_validation(0.1, seed=0)              # doctest: +SKIP
>>> loader = DeviceLoader(train, batch_size=128, device="cuda") # doctest: +SKIP
"""

from .augment import Augment
from .compat import check_compatible
from .dataset import Dataset, load_dataset
from .errors import DataError
from .image_cache import ENV_DATA_CACHE, ENV_DATA_MEMORY
from .info import DatasetInfo
from .loader import DeviceLoader
from .locate import ENV_DATA_DIR, ENV_NO_DOWNLOAD
from .sources import DATASETS, DatasetSource, default_augment, resolve_name
from .voice import PreparedVoice, load_voice, prepare_voice
from .voice_config import VoiceSettings

__all__ = [
    "DATASETS",
    "ENV_DATA_CACHE",
    "ENV_DATA_DIR",
    "ENV_DATA_MEMORY",
    "ENV_NO_DOWNLOAD",
    "Augment",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "DatasetSource",
    "DeviceLoader",
    "PreparedVoice",
    "VoiceSettings",
    "check_compatible",
    "default_augment",
    "load_dataset",
    "load_voice",
    "prepare_voice",
    "resolve_name",
]

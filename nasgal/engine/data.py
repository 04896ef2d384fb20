"""Training, validation and test splits of a dataset, the same for every stage that uses them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import check_compatible, load_dataset
from ..spec import Network


@dataclass
class DataSplits:
    train: Any
    val: Any | None
    test: Any
    info: Any


def prepare_splits(network: Network, dataset: str, data_dir: str | None, *, subset: int | None,
                   val_fraction: float, seed: int, download: bool = True) -> DataSplits:
    """Load train/val/test splits that fit ``network``; validation is held out of the training set.

    ``subset`` keeps that many training images (stratified) before the validation part is held
    out; both draws are seeded with ``seed``, so ``train`` and ``prune`` of one run see one split.
    """
    ch, size = network.input.channels, tuple(network.input.size)
    kwargs: dict[str, Any] = {"download": download}
    if dataset.startswith("image_folder"):
        kwargs.update(image_size=size, channels=ch, split_seed=seed)
    train = load_dataset(dataset, data_dir, split="train", **kwargs)
    check_compatible(train.info, ch, size, network.classes)
    test = load_dataset(dataset, data_dir, split="test", **kwargs)
    if subset is not None and subset < len(train):
        train = train.subset(subset, seed=seed)
    val = None
    if val_fraction > 0:
        train, val = train.split_validation(val_fraction, seed=seed)
    return DataSplits(train, val, test, train.info)

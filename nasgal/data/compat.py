"""Checking that a dataset fits a network before training starts."""

from __future__ import annotations

from .errors import DataError
from .info import DatasetInfo


def check_compatible(info: DatasetInfo, in_channels: int, input_size: int | tuple[int, int], classes: int) -> None:
    """Raise :class:`DataError` unless the network's input and classes match the dataset."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if info.channels == in_channels and tuple(info.size) == size and info.classes == classes:
        return
    # In the command line's terms: the network is what a user changes (nasgal stack's options).
    fixes = []
    if info.channels != in_channels:
        fixes.append(f"--in-channels {info.channels}")
    if tuple(info.size) != size:
        fixes.append(f"--input-size {info.size[0] if info.size[0] == info.size[1] else 'x'.join(map(str, info.size))}")
    if info.classes != classes:
        fixes.append(f"--classes {info.classes}")
    hints = [f"stack the network for this dataset: nasgal stack GENOTYPE {' '.join(fixes)} ..."]
    raise DataError(
        f"{info.describe()}, but the network expects {in_channels}×{size[0]}×{size[1]} inputs and {classes} classes",
        hint="; ".join(hints),
    )

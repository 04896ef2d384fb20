"""Checking that a dataset fits a network before training starts."""

from __future__ import annotations

from .errors import DataError
from .info import DatasetInfo


def check_compatible(info: DatasetInfo, in_channels: int, input_size: int | tuple[int, int], classes: int) -> None:
    """Raise :class:`DataError` unless the network's input and classes match the dataset."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if info.channels == in_channels and tuple(info.size) == size and info.classes == classes:
        return
    hints = []
    if info.channels != in_channels:
        fix = f"build the network with {info.channels} input channel{'s' if info.channels > 1 else ''}"
        if info.channels == 1 and in_channels == 3:
            fix += ", or load the dataset with channels=3 (grey replicated)"
        hints.append(fix)
    if tuple(info.size) != size:
        hints.append(f"load the dataset with image_size={size[0] if size[0] == size[1] else size}, "
                     f"or build the network for input size {info.size[0]}")
    if info.classes != classes:
        hints.append(f"build the network with {info.classes} classes")
    raise DataError(
        f"{info.describe()}, but the network expects {in_channels}×{size[0]}×{size[1]} inputs and {classes} classes",
        hint="; ".join(hints),
    )

"""A data loader for datasets that fit on the device (docs/design.md, "Speed: reference figures").

The whole split lives on the device as uint8. Each epoch draws a permutation with a
``torch.Generator`` on that device; each batch is an index gather, then crop/flip on uint8,
conversion and normalization, and cutout -- all batched tensor ops, with no Python loop
over images and no host synchronisation (no ``.item()``, no ``.cpu()``) while iterating.
With ``drop_last=True`` every batch has the same shape, which CUDA-graph capture and
``torch.compile`` like.

The random stream of epoch ``e`` depends only on ``(seed, e)``, so on the CPU a run is
reproducible, and ``set_epoch`` resumes the stream mid-training.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .augment import Augment, crop_flip, cutout
from .dataset import Dataset
from .errors import DataError

_EPOCH_STRIDE = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads (seed, epoch) over the seed space


class DeviceLoader:
    """Iterate ``(x, y)`` batches of a device-resident dataset.

    x: ``dtype [B, C, H, W]`` on ``device``, normalized with the dataset's mean/std (or on the
    0..1 scale when ``normalize=False``); y: int64 ``[B]`` on ``device``.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 128,
        shuffle: bool = True,
        drop_last: bool = True,
        device: str | torch.device = "cpu",
        augment: Augment | None = None,
        normalize: bool = True,
        seed: int = 0,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if not dtype.is_floating_point:
            raise DataError(f"dtype must be a floating type, got {dtype}")
        if drop_last and len(dataset) < batch_size:
            raise DataError(
                f"{dataset.info.name} {dataset.split} has {len(dataset)} images, fewer than one batch of "
                f"{batch_size} (drop_last=True would give no batches)",
                hint="use a smaller batch size or drop_last=False",
            )
        self.device = torch.device(device)
        self.dataset = dataset.to(self.device)
        self.info = dataset.info
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment or Augment()
        self.normalize = normalize
        self.seed = seed
        self.channels_last = channels_last
        self.dtype = dtype
        self.epoch = 0
        self._generator = torch.Generator(device=self.device)
        # x_float = x_uint8 * scale + shift  ==  (x / 255 - mean) / std
        mean = torch.tensor(self.info.mean if normalize else (0.0,) * self.info.channels, dtype=torch.float32)
        std = torch.tensor(self.info.std if normalize else (1.0,) * self.info.channels, dtype=torch.float32)
        self._scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(self.device)  # [1, C, 1, 1]
        self._shift = (-mean / std).view(1, -1, 1, 1).to(self.device)  # [1, C, 1, 1]

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use the random stream of ``epoch`` (for resuming)."""
        self.epoch = epoch

    def _epoch_seed(self, epoch: int) -> int:
        return (self.seed * _EPOCH_STRIDE + epoch) % (1 << 63)

    def transform(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` → augmented, normalized ``dtype [B, C, H, W]``."""
        aug = self.augment
        if aug.random_crop_padding > 0 or aug.hflip:
            x = crop_flip(x, aug.random_crop_padding, aug.hflip, generator)
        out = x.to(torch.float32).mul_(self._scale).add_(self._shift)
        if aug.cutout > 0:
            out = cutout(out, aug.cutout, generator)
        if self.dtype != torch.float32:
            out = out.to(self.dtype)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = self._generator
        gen.manual_seed(self._epoch_seed(self.epoch))
        self.epoch += 1
        images, labels = self.dataset.images, self.dataset.labels
        n, bs = len(self.dataset), self.batch_size
        order = torch.randperm(n, generator=gen, device=self.device) if self.shuffle else None
        for i in range(len(self)):
            lo, hi = i * bs, min((i + 1) * bs, n)
            if order is None:
                x, y = images[lo:hi], labels[lo:hi]
            else:
                idx = order[lo:hi]  # [B] on device
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            yield self.transform(x, gen), y

"""A data loader for datasets that fit on the device (docs/design.md, "Speed: reference figures").

The whole split lives on the device as uint8. Each epoch draws a permutation with a
``torch.Generator`` on that device; each batch is an index gather, then crop/flip on uint8,
conversion and normalization, and cutout -- all batched tensor ops, with no Python loop
over images and no host synchronisation (no ``.item()``, no ``.cpu()``) while iterating.
With ``drop_last=True`` every batch has the same shape, which CUDA-graph capture and
``torch.compile`` like.

A disk-cache dataset (an image folder larger than the memory budget, see
:mod:`nasgal.data.image_cache`) is the exception: it stays on the host, worker threads gather
each batch from the cache file a few batches ahead (pinned for CUDA) and it is copied to the
device without blocking; the permutation is copied to the host once per epoch. Augmentation
and normalization are the same, on the device, so the batches equal those of the same set in
memory.

The random stream of epoch ``e`` depends only on ``(seed, e)``, so on the CPU a run is
reproducible, and ``set_epoch`` resumes the stream mid-training.

Data-parallel runs (``rank``, ``world``): ``batch_size`` is the global batch. Every process
draws the same permutation of the whole split for an epoch and takes its own contiguous part of
each global batch (``batch_size / world`` images; a short last batch is split as evenly as it
goes, and a process whose part is empty skips it). The processes together therefore see exactly
the batches of one process, in the same order, augmented alike: each process draws the random
numbers of the whole batch and uses those of its images.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .augment import Augment, crop_flip, cutout
from .dataset import Dataset
from .errors import DataError

_EPOCH_STRIDE = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads (seed, epoch) over the seed space
GATHER_WORKERS = 2  # threads reading batches of a disk-cache dataset
GATHER_AHEAD = 4  # batches of a disk-cache dataset read ahead of the one in use


class DeviceLoader:
    """Iterate ``(x, y)`` batches of a dataset on ``device``.

    x: ``dtype [B, C, H, W]`` on ``device``, normalized with the dataset's mean/std (or on the
    0..1 scale when ``normalize=False``); y: int64 ``[B]`` on ``device``. A memory dataset is
    copied to the device whole; a disk-cache one (``streamed``) is gathered batch by batch on
    the host, with the same batches, order and augmentation for the same seed.
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
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world:
            raise DataError(f"rank {rank} is outside 0..{world - 1}")
        if drop_last and batch_size % world:
            raise DataError(
                f"a batch of {batch_size} images (the global batch) does not divide among {world} processes",
                hint=f"give a batch size that is a multiple of {world}",
            )
        if not dtype.is_floating_point:
            raise DataError(f"dtype must be a floating type, got {dtype}")
        if drop_last and len(dataset) < batch_size:
            raise DataError(
                f"{dataset.info.name} {dataset.split} has {len(dataset)} images, fewer than one batch of "
                f"{batch_size} (drop_last=True would give no batches)",
                hint="use a smaller batch size or drop_last=False",
            )
        self.device = torch.device(device)
        self.streamed = dataset.storage == "disk-cache"
        # A disk-cache dataset stays where it is (the cache file); only its labels go to the device.
        self.dataset = dataset if self.streamed else dataset.to(self.device)
        self._labels = dataset.labels.to(self.device) if self.streamed else self.dataset.labels
        self.info = dataset.info
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment or Augment()
        self.normalize = normalize
        self.seed = seed
        self.channels_last = channels_last
        self.dtype = dtype
        self.rank, self.world = rank, world
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

    def _part(self, i: int) -> tuple[int, int, tuple[int, int] | None]:
        """This process's part ``[lo, hi)`` of global batch ``i`` — contiguous, the first
        ``size % world`` processes one image more — and (size, offset) of the part in the batch
        (``None`` for one process)."""
        first, last = i * self.batch_size, min((i + 1) * self.batch_size, len(self.dataset))
        if self.world == 1:
            return first, last, None
        base, extra = divmod(last - first, self.world)
        start = first + self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0), (last - first, start - first)

    def _epoch_seed(self, epoch: int) -> int:
        return (self.seed * _EPOCH_STRIDE + epoch) % (1 << 63)

    def transform(self, x: torch.Tensor, generator: torch.Generator, part: tuple[int, int] | None = None) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` → augmented, normalized ``dtype [B, C, H, W]``; ``part``: the
        size of the whole batch and the offset of ``x`` in it (:mod:`nasgal.data.augment`)."""
        aug = self.augment
        if aug.random_crop_padding > 0 or aug.hflip:
            x = crop_flip(x, aug.random_crop_padding, aug.hflip, generator, part)
        out = x.to(torch.float32).mul_(self._scale).add_(self._shift)
        if aug.cutout > 0:
            out = cutout(out, aug.cutout, generator, part)
        if self.dtype != torch.float32:
            out = out.to(self.dtype)
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = self._generator
        gen.manual_seed(self._epoch_seed(self.epoch))
        self.epoch += 1
        n = len(self.dataset)
        order = torch.randperm(n, generator=gen, device=self.device) if self.shuffle else None
        if self.streamed:
            yield from self._streamed(order, gen)
            return
        images, labels = self.dataset.images, self.dataset.labels
        for i in range(len(self)):
            lo, hi, part = self._part(i)
            if lo == hi:  # nothing for this process; its generator still draws the batch's numbers
                if self.augment.enabled:
                    self.transform(images[lo:hi], gen, part)
                continue
            if order is None:
                x, y = images[lo:hi], labels[lo:hi]
            else:
                idx = order[lo:hi]  # [B] on device
                x, y = images.index_select(0, idx), labels.index_select(0, idx)
            yield self.transform(x, gen, part), y

    def _host_batch(self, i: int, order: torch.Tensor | None) -> torch.Tensor:
        """uint8 batch ``i`` of a disk-cache dataset, read on the host (pinned when the device is CUDA)."""
        lo, hi, _ = self._part(i)
        idx = torch.arange(lo, hi) if order is None else order[lo:hi]  # [B] on the host
        x = self.dataset.gather(idx)  # [B, C, H, W] uint8: pages of the cache file are read here
        return x.pin_memory() if self.device.type == "cuda" else x

    def _streamed(
        self, order: torch.Tensor | None, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        host_order = None if order is None else order.cpu()  # one host copy per epoch
        count = len(self)
        pool = ThreadPoolExecutor(max_workers=GATHER_WORKERS, thread_name_prefix="nasgal-gather")
        try:
            ahead: deque[Future[torch.Tensor]] = deque(
                pool.submit(self._host_batch, i, host_order) for i in range(min(GATHER_AHEAD, count))
            )
            for i in range(count):
                x = ahead.popleft().result().to(self.device, non_blocking=True)
                if i + GATHER_AHEAD < count:
                    ahead.append(pool.submit(self._host_batch, i + GATHER_AHEAD, host_order))
                lo, hi, part = self._part(i)
                if lo == hi:  # as in __iter__
                    if self.augment.enabled:
                        self.transform(x, gen, part)
                    continue
                y = self._labels[lo:hi] if order is None else self._labels.index_select(0, order[lo:hi])
                yield self.transform(x, gen, part), y
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

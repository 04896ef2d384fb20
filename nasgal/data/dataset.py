"""A dataset split (uint8 images in memory or in a disk cache, int64 labels) and :func:`load_dataset`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DataError
from .image_cache import cached_images, format_bytes, resolve_budget
from .image_folder import GREY_MEAN, GREY_STD, IMAGENET_MEAN, IMAGENET_STD, folder_split, image_mode, read_images
from .info import DatasetInfo
from .locate import locate
from .sources import IMAGE_FOLDER, SPLITS, VOICE, resolve_name
from .split import stratified_indices

log = logging.getLogger(__name__)


STORAGES = ("memory", "disk-cache")


class Dataset:
    """A dataset split: ``images`` uint8 ``[N, C, H, W]``, ``labels`` int64 ``[N]``.

    ``storage`` says where the pixels are. ``"memory"``: one tensor in memory or on a device.
    ``"disk-cache"``: rows of a uint8 cache file mapped from disk (``cache_path``; see
    :mod:`nasgal.data.image_cache`), read as batches need them through :meth:`gather`;
    :meth:`select`, :meth:`subset` and :meth:`split_validation` keep row numbers instead of
    copying pixels, and :class:`~nasgal.data.DeviceLoader` gathers each batch on the host.
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo, split: str,
        *, cache_path: Path | None = None, rows: torch.Tensor | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataError(f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}")
        if tuple(images.shape[1:]) != info.shape:
            raise DataError(f"images have shape {list(images.shape[1:])} per item but info says {list(info.shape)}")
        if rows is not None and cache_path is None:
            raise DataError("rows select items of a disk-cache dataset only; index a tensor in memory directly")
        count = images.shape[0] if rows is None else rows.shape[0]
        if labels.dtype != torch.int64 or labels.shape != (count,):
            raise DataError(f"labels must be int64 [{count}], got {labels.dtype} {list(labels.shape)}")
        self._pixels = images  # memory: the images themselves; disk-cache: every row of the cache file
        self._rows = rows  # disk-cache only: the rows of this dataset (None: all, in order)
        self.labels = labels
        self.info = info
        self.split = split
        self.cache_path = cache_path
        self.storage = "memory" if cache_path is None else "disk-cache"

    @property
    def images(self) -> torch.Tensor:
        """All images, uint8 ``[N, C, H, W]``. For a disk-cache dataset with selected rows this reads them
        into memory (a copy); iterate with :class:`~nasgal.data.DeviceLoader` or use :meth:`gather` instead."""
        if self._rows is None:
            return self._pixels
        return self._pixels.index_select(0, self._rows)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` (int64 ``[B]``, on this dataset's device) as a new uint8 ``[B, C, H, W]`` tensor."""
        rows = indices if self._rows is None else self._rows[indices]
        return self._pixels.index_select(0, rows)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __repr__(self) -> str:
        c, h, w = self.info.shape
        where = f"{self.device}" if self.cache_path is None else f"disk cache {self.cache_path}"
        return f"Dataset({self.info.name}, {self.split}, {len(self)} images {c}×{h}×{w}, {self.info.classes} classes, {where})"

    @property
    def device(self) -> torch.device:
        return self._pixels.device

    def to(self, device: str | torch.device) -> Dataset:
        """This dataset on ``device`` (itself when already there).

        A disk-cache dataset is already on the CPU; moving it to another device copies every
        selected image there (the loader never does this, it gathers batch by batch).
        """
        device = torch.device(device)
        if self.device == device:
            return self
        return Dataset(self.images.to(device), self.labels.to(device), self.info, self.split)

    def class_counts(self) -> torch.Tensor:
        """Images per class, int64 ``[classes]``."""
        return torch.bincount(self.labels, minlength=self.info.classes)

    def select(self, indices: torch.Tensor, split: str | None = None) -> Dataset:
        """The images at ``indices``, as a new dataset."""
        if self.cache_path is not None:  # keep row numbers, read no pixels
            idx = indices.to("cpu", torch.int64)
            rows = idx if self._rows is None else self._rows[idx]
            return Dataset(self._pixels, self.labels[idx], self.info, split or self.split,
                           cache_path=self.cache_path, rows=rows)
        idx = indices.to(self.images.device)
        return Dataset(self.images[idx], self.labels[idx], self.info, split or self.split)

    def _count(self, n: int | float, what: str) -> int:
        total = len(self)
        if isinstance(n, float):
            if not 0.0 < n < 1.0:
                raise DataError(f"{what} fraction must lie strictly between 0 and 1, got {n}")
            n = round(n * total)
        if not 0 < n < total:
            raise DataError(f"{what} of {n} items is impossible from {total} {self.info.name} {self.split} images")
        return int(n)

    def subset(self, n: int | float, seed: int = 0) -> Dataset:
        """``n`` images (or a fraction) chosen at random but with the class proportions kept."""
        if isinstance(n, int) and n == len(self):
            return self
        n = self._count(n, "a subset")
        return self.select(stratified_indices(self.labels, n, self.info.classes, seed))

    def split_validation(self, fraction: int | float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
        """Disjoint ``(train, val)`` parts of the training split; ``val`` keeps the class proportions.

        ``fraction`` is a share (0.1) or a count (5000) of images held out for validation.
        """
        if self.split != "train":
            raise DataError(
                f"split_validation holds out images of the training split, but this is the {self.split} split",
                hint="load the dataset with split='train' and split that",
            )
        n = self._count(fraction, "a validation set")
        val = stratified_indices(self.labels, n, self.info.classes, seed)
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[val] = False
        return self.select(keep.nonzero().flatten(), "train"), self.select(val, "val")


def _resize(images: torch.Tensor, size: tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 ``[N, C, H, W]`` images, done once at load time."""
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for i in range(0, images.shape[0], chunk):
        x = images[i : i + chunk].float()
        y = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _as_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    image_size: int | tuple[int, int] | None = None,
    download: bool = True,
    *,
    channels: int | None = None,
    split_seed: int = 0,
    memory_budget: int | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Read one split of a dataset into memory (large image folders: into a cache file on disk).

    name: ``fashion_mnist``, ``mnist``, ``cifar10``, ``cifar100`` (aliases such as
        ``FashionMNIST`` or ``CIFAR-10`` work), ``image_folder:<path>``, or ``voice`` (speech
        prepared by :func:`nasgal.data.voice.prepare_voice`; ``data_dir`` is its folder).
    data_dir: a folder searched first for the files (see :mod:`nasgal.data.locate`); for
        ``image_folder`` without a path, the image folder itself.
    image_size: resize to this size (bilinear, once, at load time); for image folders the
        centre-crop size (default 224).
    download: fetch missing official files into the user cache (never when
        ``NASGAL_NO_DOWNLOAD`` is set).
    channels: 1 or 3; grey images are replicated to 3 channels, image folders are read as
        L or RGB. Default: the dataset's own.
    split_seed: seed of the 80/20 split of image folders without train/test subfolders.
    memory_budget: image folders (and prepared voice sets) whose decoded split is larger than this go to a uint8 cache
        file on disk instead of memory (``storage == "disk-cache"``): bytes, or a string such
        as ``"4G"`` or ``"25%"`` (of the free memory). Default: ``$NASGAL_DATA_MEMORY``, else
        half the free memory. See :mod:`nasgal.data.image_cache`.
    cache_dir: folder of those cache files. Default: ``$NASGAL_DATA_CACHE``, else
        ``$XDG_CACHE_HOME/nasgal/image-cache``.
    """
    source, path = resolve_name(name)
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    size = _as_size(image_size)
    if source is IMAGE_FOLDER:
        return _load_folder(path, data_dir, split, size, channels, split_seed, memory_budget, cache_dir)
    if source is VOICE:
        from .voice import load_voice

        if channels not in (None, 1):
            raise DataError(f"voice spectrograms have 1 channel, not {channels}")
        return load_voice(path if path is not None else data_dir, split, size, memory_budget)

    files = locate(source, split, data_dir, download)
    assert source.read is not None
    images_np, labels_np, names = source.read(files, split)
    info = source.info
    if names is not None:
        info = info.model_copy(update={"class_names": names})
    images = torch.from_numpy(np.array(images_np, dtype=np.uint8, copy=True))
    labels = torch.from_numpy(np.array(labels_np, dtype=np.int64, copy=True))
    if channels is not None and channels != info.channels:
        if info.channels == 1 and channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
            info = info.model_copy(update={"channels": 3, "mean": info.mean * 3, "std": info.std * 3})
        else:
            raise DataError(f"dataset {info.name} has {info.channels} channels; it can give 1→3 (replicated) but not {channels}")
    if size is not None and size != info.size:
        images = _resize(images, size)
        info = info.model_copy(update={"size": size})
    log.info("loaded %s %s: %d images from %s", info.name, split, len(labels), next(iter(files.values())).parent)
    return Dataset(images, labels, info, split)


def _load_folder(path, data_dir, split, size, channels, seed, budget, cache_dir) -> Dataset:
    if path is None:
        if data_dir is None:
            raise DataError("image_folder needs a path: use 'image_folder:<path>' or pass data_dir / --data-dir")
        path = data_dir
    root = Path(path).expanduser().resolve()
    if size is not None and size[0] != size[1]:
        raise DataError(f"image folders are centre-cropped to squares; got image_size {size}")
    crop = size[0] if size is not None else 224
    channels = 3 if channels is None else channels
    mode = image_mode(channels)
    limit, origin = resolve_budget(budget)
    paths, labels, classes = folder_split(root, split, seed)
    info = DatasetInfo(
        name=f"image_folder:{root}",
        channels=channels,
        size=(crop, crop),
        classes=len(classes),
        class_names=classes,
        mean=IMAGENET_MEAN if channels == 3 else GREY_MEAN,
        std=IMAGENET_STD if channels == 3 else GREY_STD,
    )
    labels_t = torch.tensor(labels, dtype=torch.int64)
    need = len(paths) * channels * crop * crop
    if limit is None or need <= limit:
        within = "no known limit" if limit is None else f"within {format_bytes(limit)} ({origin})"
        log.info("reading %d %s images from %s into memory: %s, %s", len(paths), split, root, format_bytes(need), within)
        return Dataset(torch.from_numpy(read_images(paths, mode, crop)), labels_t, info, split)
    array, cache = cached_images(root, split, paths, labels, mode, crop, cache_dir)
    # a warning so that the command line shows it without -v: slower batches and a large file on disk
    log.warning("%s %s: %d images (%s) exceed the memory budget %s (%s); reading them from the disk cache %s",
             info.name, split, len(paths), format_bytes(need), format_bytes(limit), origin, cache)
    return Dataset(torch.from_numpy(array), labels_t, info, split, cache_path=cache)

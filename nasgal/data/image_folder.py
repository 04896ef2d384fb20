"""Reader for a folder of images with one subfolder per class.

Layouts:

* ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` (``val`` also counts as the test
  folder): the split is the one on disk;
* ``<root>/<class>/*``: a seeded, stratified 80/20 train/test split is drawn, the same for
  every call with the same seed.

Class names are the subfolder names, sorted. Each image is decoded with Pillow, converted to
RGB (or L when one channel is asked for), its shorter side resized to ``size·256/224``
(256 for the default 224) and centre-cropped to ``size``×``size``.

:func:`folder_split` finds the files of a split, :func:`decode_chunks` decodes them in a thread
pool; :mod:`nasgal.data.image_cache` decides whether the pixels go to memory or to a cache file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .split import stratified_indices

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
TEST_FRACTION = 0.2
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN = (0.449,)  # the ImageNet statistics averaged over channels
GREY_STD = (0.226,)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def scan_classes(root: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Class names (sorted subfolders), image paths and their labels under ``root``."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and _visible(p)))
    if not classes:
        raise DataError(
            f"image folder {root} has no class subfolders",
            hint="put the images of each class in its own subfolder: <root>/<class>/<image>.jpg",
        )
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (root / name).rglob("*") if p.is_file() and _visible(p) and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DataError(f"class folder {root / name} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths += files
        labels += [label] * len(files)
    return classes, paths, labels


def explicit_split_dirs(root: Path) -> dict[str, Path] | None:
    """``{"train": ..., "test": ...}`` when ``root`` has a train folder and a test (or val) folder."""
    train = root / "train"
    test = next((root / n for n in ("test", "val", "valid", "validation") if (root / n).is_dir()), None)
    if train.is_dir() and test is not None:
        return {"train": train, "test": test}
    return None


def read_image(path: Path, mode: str, size: int) -> np.ndarray:
    """One image as ``uint8 [C, size, size]``: converted, shorter side resized, centre-cropped."""
    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            w, h = img.size
            short = round(size * 256 / 224)
            scale = short / min(w, h)
            new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
            left, top = (new_w - size) // 2, (new_h - size) // 2
            img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_chunks(paths: list[Path], mode: str, size: int, chunk: int) -> Iterator[np.ndarray]:
    """Decode ``paths`` in order, ``chunk`` images at a time: one ``uint8 [n, C, S, S]`` array per chunk.

    Threads decode in parallel (Pillow releases the GIL while decoding); a chunk bounds the
    memory held at once when the pixels go to a file.
    """
    channels = 1 if mode == "L" else 3
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for lo in range(0, len(paths), chunk):
            part = paths[lo : lo + chunk]
            out = np.empty((len(part), channels, size, size), dtype=np.uint8)

            def work(i: int, part: list[Path] = part, out: np.ndarray = out) -> None:
                out[i] = read_image(part[i], mode, size)

            list(pool.map(work, range(len(part))))
            yield out


def read_images(paths: list[Path], mode: str, size: int) -> np.ndarray:
    """Decode many images into one ``uint8 [N, C, S, S]`` array in memory."""
    return next(decode_chunks(paths, mode, size, max(1, len(paths))))


def folder_split(root: Path, split: str, seed: int = 0) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Image paths, labels and class names of one split of the folder ``root`` (nothing is decoded)."""
    dirs = explicit_split_dirs(root)
    if dirs is not None:
        classes, paths, labels = scan_classes(dirs["train"])
        if split == "test":
            test_classes, paths, test_labels = scan_classes(dirs["test"])
            unknown = sorted(set(test_classes) - set(classes))
            if unknown:
                raise DataError(f"{dirs['test']} has classes {unknown} that {dirs['train']} lacks")
            index = {name: i for i, name in enumerate(classes)}
            labels = [index[test_classes[t]] for t in test_labels]
    else:
        classes, paths, labels = scan_classes(root)
        all_labels = torch.tensor(labels, dtype=torch.int64)
        test = stratified_indices(all_labels, round(TEST_FRACTION * len(labels)), len(classes), seed)
        keep = torch.zeros(len(labels), dtype=torch.bool)
        keep[test] = True
        if split == "train":
            keep = ~keep
        chosen = keep.nonzero().flatten().tolist()
        paths = [paths[i] for i in chosen]
        labels = [labels[i] for i in chosen]
    if not paths:
        raise DataError(f"image folder {root} gives no {split} images")
    return paths, labels, classes


def image_mode(channels: int) -> str:
    """Pillow's mode for 1 (``L``) or 3 (``RGB``) channels."""
    if channels not in (1, 3):
        raise DataError(f"image folders give 1 (grey) or 3 (RGB) channels, not {channels}")
    return "L" if channels == 1 else "RGB"

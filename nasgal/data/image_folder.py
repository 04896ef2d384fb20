"""Reader for a folder of images with one subfolder per class.

Layouts:

* ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` (``val`` also counts as the test
  folder): the split is the one on disk;
* ``<root>/<class>/*``: a seeded, stratified 80/20 train/test split is drawn, the same for
  every call with the same seed.

Class names are the subfolder names, sorted. Each image is decoded with Pillow, converted to
RGB (or L when one channel is asked for), its shorter side resized to ``size·256/224``
(256 for the default 224) and centre-cropped to ``size``×``size``.
"""

from __future__ import annotations

import logging
import os
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


def read_images(paths: list[Path], mode: str, size: int) -> np.ndarray:
    """Decode many images (threads: Pillow releases the GIL while decoding) into ``uint8 [N, C, S, S]``."""
    channels = 1 if mode == "L" else 3
    out = np.empty((len(paths), channels, size, size), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = read_image(paths[i], mode, size)

    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(paths))))
    return out


def load_image_folder(
    root: Path, split: str, size: int = 224, channels: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images ``uint8 [N, C, size, size]``, labels ``int64 [N]`` and class names of one split."""
    if channels not in (1, 3):
        raise DataError(f"image folders give 1 (grey) or 3 (RGB) channels, not {channels}")
    mode = "L" if channels == 1 else "RGB"
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
    log.info("reading %d %s images from %s", len(paths), split, root)
    return read_images(paths, mode, size), np.asarray(labels, dtype=np.int64), classes

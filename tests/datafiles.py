"""Write tiny datasets in the real file formats, for tests.

Each writer returns the arrays it wrote so a test can compare what a reader gives back.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX blob: magic 0x0000, type 0x08, ndim, big-endian dims, values."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz") if path.suffix != ".gz" else path
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def balanced_labels(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Labels with every class as equally often as n allows, shuffled."""
    return rng.permutation(np.arange(n) % classes).astype(np.uint8)


def write_mnist_like(
    folder: Path,
    n_train: int = 40,
    n_test: int = 20,
    size: int = 28,
    gz: bool = True,
    seed: int = 0,
    dotted: bool = False,
) -> dict[str, np.ndarray]:
    """The four MNIST/FashionMNIST IDX files in ``folder``. ``dotted``: ``train-images.idx3-ubyte`` names."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = random_images(rng, n, (size, size))
        labels = balanced_labels(rng, n, 10)
        sep = "." if dotted else "-"
        write_idx(folder / f"{prefix}-images{sep}idx3-ubyte", images, gz)
        write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte", labels, gz)
        split = "train" if prefix == "train" else "test"
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels.astype(np.int64)
    return out


def offline(monkeypatch) -> None:
    """No downloads, and no data folder taken from the environment."""
    monkeypatch.setenv("NASGAL_NO_DOWNLOAD", "1")
    monkeypatch.delenv("NASGAL_DATA_DIR", raising=False)


def fashion_mnist_root(tmp_path: Path, n_train: int, n_test: int) -> Path:
    """A data folder (for ``--data-dir``) whose ``fashion_mnist/`` holds tiny FashionMNIST files."""
    write_mnist_like(tmp_path / "data" / "fashion_mnist", n_train=n_train, n_test=n_test)
    return tmp_path / "data"


def _pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(folder: Path, per_batch: int = 10, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """``folder/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``."""
    rng = np.random.default_rng(seed)
    base = folder / "cifar-10-batches-py"
    train_x, train_y = [], []
    for i in range(1, 6):
        x = random_images(rng, per_batch, (3072,))
        y = [int(v) for v in balanced_labels(rng, per_batch, 10)]
        _pickle(base / f"data_batch_{i}", {b"batch_label": b"training batch", b"data": x, b"labels": y})
        train_x.append(x)
        train_y += y
    test_x = random_images(rng, n_test, (3072,))
    test_y = [int(v) for v in balanced_labels(rng, n_test, 10)]
    _pickle(base / "test_batch", {b"batch_label": b"testing batch", b"data": test_x, b"labels": test_y})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _pickle(base / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return {
        "train_data": np.concatenate(train_x),
        "train_labels": np.asarray(train_y, dtype=np.int64),
        "test_data": test_x,
        "test_labels": np.asarray(test_y, dtype=np.int64),
    }


def write_cifar100(folder: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """``folder/cifar-100-python/{train, test, meta}``."""
    rng = np.random.default_rng(seed)
    base = folder / "cifar-100-python"
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = random_images(rng, n, (3072,))
        fine = [int(v) for v in rng.permutation(np.arange(n) % 100)]
        coarse = [v // 5 for v in fine]
        _pickle(base / split, {b"data": x, b"fine_labels": fine, b"coarse_labels": coarse, b"filenames": []})
        out[f"{split}_data"], out[f"{split}_labels"] = x, np.asarray(fine, dtype=np.int64)
    _pickle(base / "meta", {b"fine_label_names": [f"class{i:02d}".encode() for i in range(100)]})
    return out


def write_image_folder(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (32, 32), seed: int = 0, mode: str = "RGB"
) -> dict[str, list[np.ndarray]]:
    """``root/<class>/<i>.png`` with random lossless images; returns each class's pixel arrays (H, W[, C])."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    for name, n in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        out[name] = []
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
            out[name].append(pixels)
    return out

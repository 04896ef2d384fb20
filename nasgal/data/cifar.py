"""Reader for the "python version" pickles of CIFAR-10 and CIFAR-100.

Each batch file is a pickled dict (written by Python 2, so keys are bytes) with
``b"data"``: ``uint8 [N, 3072]`` (1024 red, 1024 green, 1024 blue values per image, rows
top to bottom) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).

Pickle can run code while loading, so only read files from a source you trust. As a guard,
the unpickler here refuses every global except the few numpy constructors these files need.
"""

from __future__ import annotations

import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): (f"{_NUMPY_CORE}.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): (f"{_NUMPY_CORE}.multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),  # how Python 3 protocol-2 pickles spell bytes
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(*target)


def load_pickle(path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR batch file into its dict (keys as bytes)."""
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable CIFAR batch file ({type(exc).__name__}: {exc})",
            hint="the file is probably truncated or not from the CIFAR 'python version' archive; fetch it again",
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR batch file: it holds a {type(obj).__name__}, not a dict")
    return obj


def read_cifar_batch(path: Path, label_key: bytes, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]`` from one batch file."""
    batch = load_pickle(path)
    for key in (b"data", label_key):
        if key not in batch:
            found = ", ".join(repr(k) for k in batch) or "nothing"
            raise DataError(f"{path} has no {key!r} entry (found {found})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: b'data' is {data.dtype} {list(data.shape)}, expected uint8 [N, 3072] (3×32×32 images)"
        )
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DataError(f"{path} holds {data.shape[0]} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise DataError(f"{path} has labels from {labels.min()} to {labels.max()}, expected 0..{classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def read_label_names(path: Path, key: bytes) -> tuple[str, ...] | None:
    """Class names from a ``batches.meta`` / ``meta`` file, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        names = load_pickle(path).get(key)
    except DataError:
        return None
    if not names:
        return None
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
